"""cronctl: the admin command-line client of crontrio."""

import os

# gRPC's C core prints handshake chatter to stderr before cronctl can say
# what went wrong in one line; keep only its real errors.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

# One module, one name: installed there is only crontrio.cronctl; in the checkout a
# top-level `cronctl` would load every module a second time under another name.
if __name__ != "crontrio.cronctl":
    raise ImportError(f"import crontrio.cronctl, not {__name__} (python -m crontrio.<service>)")
