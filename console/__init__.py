"""The web console and the JSON API: an aiohttp app that is a client of the
dispatchers' admin gRPC API (roles, validation and audit stay there).

Served by the monitor on its HTTP port, or alone with ``python -m crontrio.console``.
It imports only common/ and protos/, never dispatcher/executor/monitor.
"""

# One module, one name: installed there is only crontrio.console; in the checkout a
# top-level `console` would load every module a second time under another name.
if __name__ != "crontrio.console":
    raise ImportError(f"import crontrio.console, not {__name__} (python -m crontrio.<service>)")
