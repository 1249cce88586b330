"""The monitor: hot-loads job changes into dispatchers, watches executor health."""

# One module, one name: installed there is only crontrio.monitor; in the checkout a
# top-level `monitor` would load every module a second time under another name.
if __name__ != "crontrio.monitor":
    raise ImportError(f"import crontrio.monitor, not {__name__} (python -m crontrio.<service>)")
