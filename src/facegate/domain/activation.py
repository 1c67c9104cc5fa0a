"""Switching face recognition on or off at an access point, and the overview of sites.

Switching on is gated by the compliance engine over the live state: while any blocker fails
(no PIA, face-only door, missing notice field, prohibited location, ...) it is refused with
the failing rules (issue 7, ENF-2025). Switching off is always allowed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from facegate import audit
from facegate.config import Settings
from facegate.domain.common import PURPOSE_CONFIG, record_change, run
from facegate.errors import ComplianceBlocked, NotFound
from facegate.store.models import AccessPoint, Person, Site, Template


def set_face_enabled(
    session: Session, settings: Settings, *, actor: str, access_point_id: str, enabled: bool
) -> AccessPoint:
    """Face on (through the compliance activation gate) or off at one access point."""

    def work() -> AccessPoint:
        ap = session.get(AccessPoint, access_point_id)
        if ap is None:
            raise NotFound(f"no access point {access_point_id!r}")
        site = session.get(Site, ap.site_id)
        assert site is not None
        if enabled:
            from facegate.compliance.gate import assert_can_activate

            try:
                from facegate.compliance.live import live_deployment
            except ImportError:
                raise ComplianceBlocked(
                    "face cannot be switched on: the compliance engine cannot read the live "
                    "state of this installation yet, so the blocking rules cannot be checked"
                ) from None
            assert_can_activate(live_deployment(settings), site.id, ap.id)
            site.face_enabled = True
        ap.face_enabled = enabled
        session.flush()
        record_change(session, site.id, None, "access_point")
        audit.append(
            session,
            actor=actor,
            operation="face_activation",
            purpose=PURPOSE_CONFIG,
            outcome="on" if enabled else "off",
            details={"access_point_id": ap.id},
        )
        return ap

    return run(
        session,
        work,
        actor=actor,
        operation="face_activation",
        subject=None,
        purpose=PURPOSE_CONFIG,
    )


def site_overview(session: Session) -> list[dict[str, Any]]:
    """Every site with its access points and head counts (no names, no face data)."""
    out = []
    for site in session.execute(select(Site).order_by(Site.created_at)).scalars():
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
        raise NotFound(f"no access point {access_point_id!r}")
    notice = current_notice(session, ap.site_id)
    n1 = (notice.fields or {}).get("N1", {}) if notice else {}
    return {
        "id": ap.id,
        "name": ap.name,
        "methods": list(ap.methods or []),
        "face_enabled": bool(ap.face_enabled),
        "operator_name": n1.get("operator_name", ""),
        "operator_contact": n1.get("contact", ""),
    }
