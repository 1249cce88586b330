"""The dispatcher: fires jobs on time, exactly once, and records their runs."""

# One module, one name: installed there is only crontrio.dispatcher; in the checkout a
# top-level `dispatcher` would load every module a second time under another name.
if __name__ != "crontrio.dispatcher":
    raise ImportError(f"import crontrio.dispatcher, not {__name__} (python -m crontrio.<service>)")
