"""The crontrio executor: a gRPC server on every worker host that runs shell
and HTTP tasks, streams their output, enforces timeouts, kills on request and
keeps each result in a local journal until a dispatcher acknowledges it."""

from __future__ import annotations

# One module, one name: installed there is only crontrio.executor; in the checkout a
# top-level `executor` would load every module a second time under another name.
if __name__ != "crontrio.executor":
    raise ImportError(f"import crontrio.executor, not {__name__} (python -m crontrio.<service>)")
