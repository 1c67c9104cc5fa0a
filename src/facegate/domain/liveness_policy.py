"""Set an access point's liveness policy (issue 14): one act, for CLI, API and console."""

from __future__ import annotations

from sqlalchemy.orm import Session

from facegate import audit
from facegate.access.liveness import check_policy
from facegate.domain.common import PURPOSE_CONFIG, record_change, run
from facegate.errors import NotFound
from facegate.store.models import AccessPoint


def set_access_point_liveness(
    session: Session,
    *,
    actor: str,
    access_point_id: str,
    policy: str,
    sites: frozenset[str] | None = None,
) -> AccessPoint:
    """passive | challenge | off. ``off`` only where a card, PIN or QR pass accompanies the face
    (1:1); the compliance report lists every such point against CAC-FR-14."""

    def work() -> AccessPoint:
        ap = session.get(AccessPoint, access_point_id)
        if ap is None or (sites is not None and ap.site_id not in sites):
            raise NotFound(f"no access point {access_point_id!r}", zh="找不到这个出入口")
        check_policy(policy, ap.methods or [])
        before = ap.liveness
        ap.liveness = policy
        session.flush()
        record_change(session, ap.site_id, None, "access_point")
        audit.append(
            session,
            actor=actor,
            operation="access_point_liveness",
            purpose=PURPOSE_CONFIG,
            outcome="ok",
            details={"access_point_id": ap.id, "from": before, "to": policy},
        )
        return ap

    return run(
        session,
        work,
        actor=actor,
        operation="access_point_liveness",
        subject=None,
        purpose=PURPOSE_CONFIG,
    )
