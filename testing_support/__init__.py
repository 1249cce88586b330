"""What the tests and the benchmarks share to run crontrio for real (as arq ships arq.testing).

Top-level on purpose, beside tests/ and bench/ rather than inside either:
both import it and neither imports the other, and it is not part of the
product (setup.cfg packages only crontrio). `services` starts crontrio
services as processes (`ServiceProcess`, the one launcher) and waits on
conditions (`wait_for`, `wait_until`); `servers` starts private MariaDB,
Redis, etcd and Prometheus servers on free ports.
"""
