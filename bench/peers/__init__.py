"""Peer benchmarks: the fire-lag workload on the schedulers a Python team would
otherwise pick (APScheduler 3 in memory and on SQLite, Celery beat + RedBeat).
`python -m bench.peers --help`. The drivers run in bench/.venv-peers; this
package imports nothing outside the standard library at import time."""
