"""crontrio benchmarks: each scenario starts the real services as processes,
measures, and writes one JSON result (bench/SCHEMA.md). `python -m bench.run --help`."""

import os

# The bench forks services with a preexec_fn (open-files limit, parent-death
# signal) while its own gRPC client threads run; gRPC's fork handlers would
# run in that child before it execs. Off for the bench process only (set
# before grpc is first imported); the services get the environment as it was.
ORIGINAL_ENVIRON = dict(os.environ)
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
