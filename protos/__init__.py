"""The gRPC API: crontrio.proto and the stubs generated from it."""

# One module, one name: installed there is only crontrio.protos; in the checkout a
# top-level `protos` would load every module a second time under another name.
if __name__ != "crontrio.protos":
    raise ImportError(f"import crontrio.protos, not {__name__} (python -m crontrio.<service>)")
