"""cronctl: the admin command-line client of crontrio."""

import os

# gRPC's C core prints handshake chatter to stderr before cronctl can say
# what went wrong in one line; keep only its real errors.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
