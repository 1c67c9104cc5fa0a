"""Access events: one row and one audit entry per decision, never a template or image."""

from __future__ import annotations

from sqlalchemy.orm import Session

from facegate import audit
from facegate.domain.common import PURPOSE_ACCESS, run, utcnow
from facegate.domain.retention import mark_seen
from facegate.errors import InvalidInput
from facegate.store.models import METHODS, AccessEvent

OUTCOMES = ("allow", "deny")


def record_access_event_in_tx(
    session: Session,
    *,
    site_id: str,
    access_point_id: str | None,
    method: str,
    outcome: str,
    reason: str = "",
    person_pseudonym: str | None = None,
    score: float | None = None,
    request_id: str = "",
    operator: str | None = None,
    actor: str = "gate",
) -> AccessEvent:
    """Add the event and its audit entry to the caller's transaction (principle 7)."""
    # A decision may combine methods (e.g. "card+face": the card names, the face confirms).
    if not method or any(m not in METHODS for m in method.split("+")):
        raise InvalidInput(f"method must be one of {', '.join(METHODS)} or a '+' combination")
    if outcome not in OUTCOMES:
        raise InvalidInput("outcome must be allow or deny")
    now = utcnow()
    event = AccessEvent(
        site_id=site_id,
        access_point_id=access_point_id,
        person_pseudonym=person_pseudonym,
        method=method,
        outcome=outcome,
        reason=reason[:100],
        score=score,
        request_id=request_id[:64],
        operator=operator,
        occurred_at=now,
    )
    session.add(event)
    if person_pseudonym and outcome == "allow":
        mark_seen(session, person_pseudonym, now)
    session.flush()
    audit.append(
        session,
        actor=operator or actor,
        operation="match_decision",
        subject=person_pseudonym,
        purpose=PURPOSE_ACCESS,
        outcome=outcome,
        details={
            "event_id": event.id,
            "access_point_id": access_point_id,
            "method": method,
            "reason": reason[:100],
            "request_id": request_id[:64],
        },
    )
    return event


def record_access_event(session: Session, **kwargs: object) -> AccessEvent:
    """``record_access_event_in_tx`` as its own unit of work (commits)."""
    return run(
        session,
        lambda: record_access_event_in_tx(session, **kwargs),  # type: ignore[arg-type]
        actor=str(kwargs.get("operator") or kwargs.get("actor") or "gate"),
        operation="match_decision",
        subject=kwargs.get("person_pseudonym"),  # type: ignore[arg-type]
        purpose=PURPOSE_ACCESS,
    )
