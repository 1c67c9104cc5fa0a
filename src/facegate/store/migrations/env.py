"""Alembic environment: runs on the connection facegate hands over (see store.db.migrate)."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine

from facegate.store.db import normalize_url
from facegate.store.models import Base, UTCDateTime

target_metadata = Base.metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Render facegate's UTCDateTime as a plain DateTime, so migrations never import models."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime()"
    return False


OPTIONS = {"target_metadata": target_metadata, "render_item": render_item}


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, **OPTIONS)
        with context.begin_transaction():
            context.run_migrations()
        return
    # Fallback for the alembic command line: sqlalchemy.url from the ini file.
    url = normalize_url(context.config.get_main_option("sqlalchemy.url") or "")
    engine = create_engine(url)
    with engine.begin() as conn:
        context.configure(connection=conn, **OPTIONS)
        with context.begin_transaction():
            context.run_migrations()


run_migrations()
