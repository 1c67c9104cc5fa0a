"""Read-only overviews for the console and the kiosk: sites, access points, head counts.

(Switching face on or off is the compliance engine's ``facegate.compliance.live.set_face``,
gated by the blocking rules.)"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from facegate.errors import NotFound
from facegate.store.models import AccessPoint, Person, Site, Template


def site_overview(session: Session, site_ids: frozenset[str] | None = None) -> list[dict[str, Any]]:
    """Every site (or those of ``site_ids``) with its access points and head counts (no
    names, no face data)."""
    out = []
    stmt = select(Site).order_by(Site.created_at)
    if site_ids is not None:
        stmt = stmt.where(Site.id.in_(site_ids))
    for site in session.execute(stmt).scalars():
        aps = (
            session.execute(
                select(AccessPoint)
                .where(AccessPoint.site_id == site.id)
                .order_by(AccessPoint.created_at)
            )
            .scalars()
            .all()
        )
        people = session.execute(
            select(func.count(Person.id)).where(
                Person.site_id == site.id, Person.status == "active"
            )
        ).scalar_one()
        enrolled = session.execute(
            select(func.count(func.distinct(Template.person_id)))
            .join(Person, Person.id == Template.person_id)
            .where(Person.site_id == site.id)
        ).scalar_one()
        out.append(
            {
                "id": site.id,
                "name": site.name,
                "face_enabled": site.face_enabled,
                "people": int(people),
                "enrolled": int(enrolled),
                "access_points": [
                    {
                        "id": ap.id,
                        "name": ap.name,
                        "kind": ap.kind,
                        "location_type": ap.location_type,
                        "methods": list(ap.methods or []),
                        "face_enabled": ap.face_enabled,
                        "liveness": ap.liveness or "passive",
                    }
                    for ap in aps
                ],
            }
        )
    return out


def access_point_info(session: Session, access_point_id: str) -> dict[str, Any]:
    """What a kiosk shows beside its camera: the entrance, its methods and the operator."""
    from facegate.domain.notice import current_notice

    ap = session.get(AccessPoint, access_point_id)
    if ap is None:
        raise NotFound(f"no access point {access_point_id!r}", zh="找不到这个出入口")
    notice = current_notice(session, ap.site_id)
    n1 = (notice.fields or {}).get("N1", {}) if notice else {}
    return {
        "id": ap.id,
        "name": ap.name,
        "methods": list(ap.methods or []),
        "face_enabled": bool(ap.face_enabled),
        "liveness": ap.liveness or "passive",  # the kiosk runs a challenge where asked
        "operator_name": n1.get("operator_name", ""),
        "operator_contact": n1.get("contact", ""),
    }
