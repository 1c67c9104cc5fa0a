"""Engines, sessions and programmatic Alembic migrations.

Embedded default: one SQLite file in the data directory, in WAL mode with foreign keys on and
``secure_delete`` (erased rows are overwritten on disk, not left in free pages). Every SQLite
transaction starts with ``BEGIN IMMEDIATE`` so a read-check-write (consent check then insert,
audit head then append) cannot interleave with another writer. PostgreSQL through psycopg 3:
``postgresql://`` URLs are rewritten to ``postgresql+psycopg://``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# pg_advisory_lock key so several gate processes starting at once migrate one at a time.
_MIGRATION_LOCK = 0x66616365  # "face"


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` / ``postgres://`` and use psycopg 3 for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine with facegate's connection settings for SQLite or PostgreSQL."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            db_file = Path(parsed.database)
            db_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not db_file.exists():
                # Names and contact details live here: owner-only from the start (SQLite
                # gives its -wal and -shm files the same mode).
                os.close(os.open(db_file, os.O_WRONLY | os.O_CREAT, 0o600))
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        _sqlite_setup(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own is deferred).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA secure_delete=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def alembic_config(connection: Any | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration; a no-op when already there."""
    if current_revision(engine) == head_revision():
        return
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        command.upgrade(alembic_config(conn), "head")


def database_has_data(url: str) -> bool:
    """Whether the database already holds a facegate site (looked at without creating it).

    Used before a new site key is made: a key is never created beside existing data
    (issue 13 item 14), since the data keys in the database are wrapped by the old one.
    """
    from sqlalchemy import inspect

    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            return False
        db_file = Path(parsed.database)
        if not db_file.exists() or db_file.stat().st_size == 0:
            return False
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("sites"):
                return False
            return conn.execute(text("SELECT 1 FROM sites LIMIT 1")).first() is not None
    finally:
        engine.dispose()


class Store:
    """An engine plus a session factory, migrated on first use."""

    def __init__(self, url: str, *, auto_migrate: bool = True, **engine_kwargs: Any) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url, **engine_kwargs)
        if auto_migrate:
            migrate(self.engine)
        self.session_factory = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self) -> Session:
        return self.session_factory()

    def dispose(self) -> None:
        self.engine.dispose()
