"""Creating engines and bringing the schema up to date with Alembic.

SQLite runs in WAL mode with ``synchronous=FULL`` and foreign keys on, so an acknowledged
commit survives a crash of the process or of the machine; PostgreSQL is used as it is.

The key vault on SQLite is different: it runs with a rollback journal and ``secure_delete``, so
that a destroyed key is overwritten in the file at once instead of lingering in a write-ahead log
or in free pages. (On PostgreSQL a deleted row stays on disk until ``VACUUM`` reclaims it and the
space is reused; run ``VACUUM`` on the vault's table after erasures if that matters to you.)
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

__all__ = ["alembic_config", "create_database_engine", "create_vault_engine", "upgrade"]


def create_database_engine(url: str) -> Engine:
    return _create_engine(url, _sqlite_pragmas)


def create_vault_engine(url: str) -> Engine:
    return _create_engine(url, _sqlite_vault_pragmas)


def _create_engine(url: str, pragmas: Callable[[Any, Any], None]) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    _run(connection, "journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON")


def _sqlite_vault_pragmas(connection: Any, _record: Any) -> None:
    _run(connection, "synchronous=FULL", "secure_delete=ON")
    cursor = connection.cursor()
    try:
        if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "delete":
            # A vault made before this setting; leaving WAL needs the only connection, so when
            # another process has it open the switch waits for a later connection.
            with contextlib.suppress(sqlite3.OperationalError):
                cursor.execute("PRAGMA journal_mode=DELETE")
    finally:
        cursor.close()


def _run(connection: Any, *pragmas: str) -> None:
    cursor = connection.cursor()
    for pragma in ("busy_timeout=30000", *pragmas):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("faceaccord.store") / "migrations")
    )
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine) -> None:
    """Apply every migration not yet applied (creating the schema on an empty database)."""
    command.upgrade(alembic_config(engine), "head")
