"""The web console and the JSON API: an aiohttp app that is a client of the
dispatchers' admin gRPC API (roles, validation and audit stay there).

Served by the monitor on its HTTP port, or alone with ``python -m crontrio.console``.
It imports only common/ and protos/, never dispatcher/executor/monitor.
"""
