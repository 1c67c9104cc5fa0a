"""Access events: one row and one audit entry per decision, never a template or image."""

from __future__ import annotations

from datetime import datetime
from typing import Any

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
    occurred_at: datetime | None = None,
    extra_details: dict[str, Any] | None = None,
) -> AccessEvent:
    """Add the event and its audit entry to the caller's transaction (principle 7).

    ``occurred_at`` and ``extra_details``: a decision made offline and merged later keeps the
    time it happened, and its audit entry says where it came from (issue 18)."""
    event = new_access_event(
        site_id=site_id,
        access_point_id=access_point_id,
        method=method,
        outcome=outcome,
        reason=reason,
        person_pseudonym=person_pseudonym,
        score=score,
        request_id=request_id,
        operator=operator,
        occurred_at=occurred_at,
    )
    session.add(event)
    if person_pseudonym and outcome == "allow":
        mark_seen(session, person_pseudonym, event.occurred_at)
    session.flush()
    audit.append(session, **access_audit_entry(event, actor=actor, extra=extra_details))
    return event


def new_access_event(
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
    occurred_at: datetime | None = None,
) -> AccessEvent:
    """An access event row, checked (not yet added to a session)."""
    # A decision may combine methods (e.g. "card+face": the card names, the face confirms).
    if not method or any(m not in METHODS for m in method.split("+")):
        raise InvalidInput(f"method must be one of {', '.join(METHODS)} or a '+' combination")
    if outcome not in OUTCOMES:
        raise InvalidInput("outcome must be allow or deny")
    return AccessEvent(
        site_id=site_id,
        access_point_id=access_point_id,
        person_pseudonym=person_pseudonym,
        method=method,
        outcome=outcome,
        reason=reason[:100],
        score=score,
        request_id=request_id[:64],
        operator=operator,
        occurred_at=occurred_at or utcnow(),
    )


def access_audit_entry(
    event: AccessEvent, *, actor: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The audit entry of one access event (its id must be known: flushed)."""
    return {
        "actor": event.operator or actor,
        "operation": "match_decision",
        "subject": event.person_pseudonym,
        "purpose": PURPOSE_ACCESS,
        "outcome": event.outcome,
        "details": {
            "event_id": event.id,
            "access_point_id": event.access_point_id,
            "method": event.method,
            "reason": event.reason,
            "request_id": event.request_id,
            **(extra or {}),
        },
    }


def mark_abandoned(session: Session, event_id: int) -> None:
    """The caller gave up while its decision was being committed: the event says
    ``abandoned`` (never ``allow`` for an answer nobody received), and the audit log says so
    too (issue 18)."""
    event = session.get(AccessEvent, event_id)
    if event is None:
        return
    was = event.outcome
    event.outcome = "abandoned"
    audit.append(
        session,
        actor="gate",
        operation="decision_abandoned",
        subject=event.person_pseudonym,
        purpose=PURPOSE_ACCESS,
        outcome="abandoned",
        details={"event_id": event_id, "decided": was, "request_id": event.request_id},
    )
    session.commit()


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
