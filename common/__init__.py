"""What the dispatcher, executor, monitor and cronctl share."""

# One module, one name: installed there is only crontrio.common; in the checkout a
# top-level `common` would load every module a second time under another name.
if __name__ != "crontrio.common":
    raise ImportError(f"import crontrio.common, not {__name__} (python -m crontrio.<service>)")
