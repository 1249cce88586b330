"""Engine creation with the settings each database needs."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import Engine, create_engine, event

from crontrio.common.config import DatabaseConfig


def make_engine(cfg: DatabaseConfig) -> Engine:
    if cfg.driver == "sqlite":
        os.makedirs(os.path.dirname(os.path.abspath(cfg.path)), exist_ok=True)
        # Several processes (dispatcher, monitor, cronctl via them) share the
        # file: WAL lets readers run beside the writer, and busy_timeout turns
        # a momentary lock into a short wait instead of an error.
        engine = create_engine(cfg.url(), connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(
        cfg.url(),
        pool_size=cfg.pool_size,
        pool_recycle=cfg.pool_recycle_seconds,
        # A MySQL server restart must cost one reconnect, not an error per pooled connection.
        pool_pre_ping=True,
    )
