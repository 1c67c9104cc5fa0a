"""Engines, sessions and programmatic Alembic migrations.

Embedded default: one SQLite file in the data directory, in WAL mode with foreign keys on and
``secure_delete`` (erased rows are overwritten on disk, not left in free pages). Every SQLite
transaction starts with ``BEGIN IMMEDIATE`` so a read-check-write (consent check then insert,
audit head then append) cannot interleave with another writer. PostgreSQL through psycopg 3:
``postgresql://`` URLs are rewritten to ``postgresql+psycopg://``.

Deadlines (issue 18): every connection has a connect timeout, a statement and a lock timeout
(PostgreSQL ``options -c``, SQLite ``busy_timeout``) and TCP keepalives with a user timeout,
so a database that stops answering turns into an error instead of a wait. A server frozen
outright (SIGSTOP) still ACKs at the TCP level on the same host, so the decision path also
bounds every call by a thread deadline (``facegate.access.offline``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
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


@dataclass(frozen=True)
class DbTimeouts:
    """How long any one database call may take (issue 18)."""

    statement_ms: int = 30_000  # statement and lock timeout; SQLite busy timeout
    connect_s: int = 2
    pool_s: float = 30.0  # waiting for a pooled connection

    @classmethod
    def decision_path(cls, settings: Any) -> DbTimeouts:
        ms = settings.db_decision_timeout_ms
        return cls(ms, settings.db_connect_timeout_s, ms / 1000)

    @classmethod
    def general(cls, settings: Any) -> DbTimeouts:
        ms = settings.db_timeout_ms
        return cls(ms, settings.db_connect_timeout_s, ms / 1000)


def pg_connect_args(t: DbTimeouts) -> dict[str, Any]:
    """libpq parameters: connect, statement and lock timeouts, keepalives, TCP user timeout."""
    return {
        "connect_timeout": max(2, t.connect_s),
        "options": f"-c statement_timeout={t.statement_ms} -c lock_timeout={t.statement_ms}",
        "keepalives": 1,
        "keepalives_idle": 1,
        "keepalives_interval": 1,
        "keepalives_count": 2,
        "tcp_user_timeout": max(1000, t.statement_ms),
    }


def make_engine(
    url: str, *, timeouts: DbTimeouts | None = None, immediate: bool = True, **kwargs: Any
) -> Engine:
    """Create an engine with facegate's connection settings for SQLite or PostgreSQL.

    ``immediate=False``: SQLite transactions start deferred (for readers that must never
    hold the write lock)."""
    t = timeouts or DbTimeouts()
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
        engine = create_engine(
            url, connect_args={"timeout": t.statement_ms / 1000}, pool_timeout=t.pool_s, **kwargs
        )
        _sqlite_setup(engine, t.statement_ms, immediate)
        return engine
    args = pg_connect_args(t)
    if "options" in parsed.query:
        # The URL sets options of its own (e.g. search_path): keep them, add ours.
        args.pop("options")
        opts = parsed.query["options"]
        opts = opts if isinstance(opts, str) else " ".join(opts)
        url = parsed.update_query_dict(
            {"options": f"{opts} {pg_connect_args(t)['options']}"}
        ).render_as_string(hide_password=False)
    return create_engine(
        url, pool_pre_ping=True, pool_timeout=t.pool_s, connect_args=args, **kwargs
    )


def _sqlite_setup(engine: Engine, busy_ms: int = 30_000, immediate: bool = True) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own is deferred).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA secure_delete=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


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

    def __init__(
        self,
        url: str,
        *,
        auto_migrate: bool = True,
        timeouts: DbTimeouts | None = None,
        decision_timeouts: DbTimeouts | None = None,
        **engine_kwargs: Any,
    ) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url, timeouts=timeouts, **engine_kwargs)
        if auto_migrate:
            migrate(self.engine)
        self.session_factory = sessionmaker(self.engine, expire_on_commit=False)
        # The decision path's own engine and pool, with its short deadlines (issue 18).
        self._decision_timeouts = decision_timeouts
        self._decision_engine: Engine | None = None
        self._decision_factory: sessionmaker | None = None

    def decision_session(self) -> Session:
        """A session whose every call is bounded by the decision path's timeouts."""
        if self._decision_timeouts is None:
            return self.session()
        if self._decision_factory is None:
            self._decision_engine = make_engine(self.url, timeouts=self._decision_timeouts)
            self._decision_factory = sessionmaker(self._decision_engine, expire_on_commit=False)
        session = self._decision_factory()
        # What the store's own sessions carry (the audit anchor that seals entries, the
        # refusal counter): a decision's audit entry is sealed like any other.
        session.info.update(self.session_factory.kw.get("info") or {})
        return session

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self) -> Session:
        return self.session_factory()

    def dispose(self) -> None:
        self.engine.dispose()
        if self._decision_engine is not None:
            self._decision_engine.dispose()
