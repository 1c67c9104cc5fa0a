"""Read-only queries the adapters (CLI, API, web) need, so they hold no SQL of their own."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from facegate.errors import NotFound
from facegate.store.models import AccessEvent, AccessPoint, ApiKey


def get_access_point(session: Session, access_point_id: str) -> AccessPoint:
    ap = session.get(AccessPoint, access_point_id)
    if ap is None:
        raise NotFound(f"no access point {access_point_id!r}", zh="找不到这个出入口")
    return ap


def list_access_points(session: Session, site_id: str | None = None) -> list[AccessPoint]:
    """Access points in the order they were added, of one site or of all."""
    stmt = select(AccessPoint).order_by(AccessPoint.created_at)
    if site_id is not None:
        stmt = stmt.where(AccessPoint.site_id == site_id)
    return list(session.execute(stmt).scalars())


def list_access_events(session: Session, site_id: str, limit: int = 100) -> list[AccessEvent]:
    """The newest access events of a site (no faces: none are kept)."""
    stmt = (
        select(AccessEvent)
        .where(AccessEvent.site_id == site_id)
        .order_by(AccessEvent.id.desc())
        .limit(limit)
    )
    return list(session.execute(stmt).scalars())


def list_api_keys(session: Session, site_id: str | None = None) -> list[ApiKey]:
    """Every API key, or those of one site (hashed; the secret is never stored)."""
    stmt = select(ApiKey).order_by(ApiKey.created_at)
    if site_id is not None:
        stmt = stmt.where(ApiKey.site_id == site_id)
    return list(session.execute(stmt).scalars())
