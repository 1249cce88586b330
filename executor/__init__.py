"""The crontrio executor: a gRPC server on every worker host that runs shell
and HTTP tasks, streams their output, enforces timeouts, kills on request and
keeps each result in a local journal until a dispatcher acknowledges it."""

from __future__ import annotations

VERSION = "0.1.0"
