"""Access events: one row, one audit entry and one outbox row per decision, never a template
or an image.

The outbox row (issue 15) carries the event's published form, built here by a whitelist:
``EVENT_FIELDS`` and nothing else, each value a short string of a closed alphabet (or an
integer id), so no payload can carry a name, an image, a template or a score (CAC-FR-08a,
principle 4). ``payload_can_carry_biometric`` states that from the schema itself, and the
compliance engine reports it for every event destination.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from facegate import audit
from facegate.domain.common import PURPOSE_ACCESS, run, utcnow
from facegate.domain.retention import mark_seen
from facegate.errors import InvalidInput
from facegate.store.models import METHODS, AccessEvent, AccessPoint, EventDelivery, EventOutbox

OUTCOMES = ("allow", "deny")

# The published form of an access event: these fields, in this order, and nothing else.
EVENT_FIELDS: tuple[str, ...] = (
    "event_id",
    "decision",
    "method",
    "subject",
    "reason",
    "time",
    "request_id",
    "site_id",
    "access_point_id",
)
# What each field may hold: an integer id, or a string of at most N characters of a closed
# alphabet (ids, codes, an ISO time). No field is free text, binary, a list or a float.
_ID_TEXT = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")  # no MQTT wildcard, no "/"
_REASON = re.compile(r"^[a-z0-9_]{1,40}(:[a-z0-9_]{1,40})?$")
EVENT_FIELD_TYPES: dict[str, str] = {
    "event_id": "integer",
    "decision": "allow|deny",
    "method": "method code",
    "subject": "pseudonym or null",
    "reason": "reason code",
    "time": "ISO 8601 UTC",
    "request_id": "id",
    "site_id": "id",
    "access_point_id": "id or null",
}
# Names of data that would be face information (or identify a person by name) if a
# destination ever received it; no EVENT_FIELDS entry may be one of them.
BIOMETRIC_FIELDS = frozenset(
    {"template", "embedding", "vector", "image", "frame", "photo", "face", "score", "name"}
)


def _id_or_none(value: object) -> str | None:
    if value is None or value == "":
        return None
    text = str(value)
    return text if _ID_TEXT.match(text) else "invalid"


def _reason_code(reason: str) -> str:
    """A reason code, never free text: an operator's override note stays in the audit log."""
    if reason.startswith("manual_override"):
        return "manual_override"
    return reason if _REASON.match(reason or "") else "other"


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_payload(event: AccessEvent) -> dict[str, Any]:
    """The published form of ``event`` (see EVENT_FIELDS): a whitelist, field by field.

    Only these attributes of the event are read; its score and operator never are."""
    method = event.method if all(m in METHODS for m in (event.method or "").split("+")) else ""
    return {
        "event_id": int(event.id),
        "decision": event.outcome if event.outcome in OUTCOMES else "deny",
        "method": method or "other",
        "subject": _id_or_none(event.person_pseudonym),
        "reason": _reason_code(event.reason or ""),
        "time": _iso(event.occurred_at),
        "request_id": _id_or_none(event.request_id) or "",
        "site_id": _id_or_none(event.site_id) or "",
        "access_point_id": _id_or_none(event.access_point_id),
    }


def payload_json(payload: dict[str, Any]) -> str:
    """Canonical JSON of a payload: the exact bytes every destination receives."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True)


def egress_safe(payload: str) -> bool:
    """The runtime egress assertion (CAC-FR-08a): a payload about to leave is exactly the
    whitelist, every value of its declared kind. Checked on every send, so even a row written
    by something else (an old version, a hand-edited database) cannot carry face data out."""
    try:
        data = json.loads(payload)
    except ValueError:
        return False
    if not isinstance(data, dict) or tuple(data) != EVENT_FIELDS or len(payload) > 1024:
        return False
    if type(data["event_id"]) is not int or data["decision"] not in OUTCOMES:
        return False
    if not all(m in (*METHODS, "other") for m in str(data["method"]).split("+")):
        return False
    if not _REASON.match(str(data["reason"])):
        return False
    for key in ("subject", "request_id", "site_id", "access_point_id", "time"):
        value = data[key]
        if value is None or value == "":
            continue
        if not isinstance(value, str) or not _ID_TEXT.match(value):
            return False
    return True


def payload_can_carry_biometric(fields: tuple[str, ...] = EVENT_FIELDS) -> bool:
    """Whether a payload of ``fields`` could carry face data, decided from the schema: a field
    named like face data, or one without a declared closed type (it could hold anything)."""
    return any(f in BIOMETRIC_FIELDS or f not in EVENT_FIELD_TYPES for f in fields)


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
    add_outbox_row(session, event)
    return event


def add_outbox_row(session: Session, event: AccessEvent) -> EventOutbox:
    """The event's outbox row, in the event's own transaction: an event is published iff it
    was recorded (issue 15); a decision made offline gets its row when the journal is merged."""
    row = EventOutbox(
        event_id=event.id,
        site_id=event.site_id,
        access_point_id=event.access_point_id,
        payload=payload_json(event_payload(event)),
        created_at=utcnow(),
    )
    session.add(row)
    return row


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
        raise InvalidInput(
            f"method must be one of {', '.join(METHODS)} or a '+' combination", zh="通行方式无效"
        )
    if outcome not in OUTCOMES:
        raise InvalidInput("outcome must be allow or deny", zh="结果须为允许或拒绝")
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
    # A destination must not hear "allow" for a door nobody opened: the row not yet sent
    # says what the event says now.
    for row in session.execute(
        select(EventOutbox).where(EventOutbox.event_id == event_id)
    ).scalars():
        row.payload = payload_json(event_payload(event))
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


# --- the outbox: what the event relay reads and marks (issue 15) -----------------------------


@dataclass(frozen=True)
class OutboxItem:
    id: int
    event_id: int
    site_id: str
    access_point_id: str | None
    payload: str  # the exact JSON to publish
    created_at: datetime


def pending_events(session: Session, destination: str, limit: int = 100) -> list[OutboxItem]:
    """Outbox rows not yet acknowledged by ``destination``, oldest first.

    A NOT EXISTS on the delivery rows, not a cursor: on PostgreSQL ids may commit out of
    order, and a cursor would skip the late one."""
    delivered = (
        select(EventDelivery.outbox_id)
        .where(EventDelivery.outbox_id == EventOutbox.id)
        .where(EventDelivery.destination == destination)
        .exists()
    )
    rows = session.execute(
        select(EventOutbox).where(~delivered).order_by(EventOutbox.id).limit(limit)
    ).scalars()
    return [
        OutboxItem(r.id, r.event_id, r.site_id, r.access_point_id, r.payload, r.created_at)
        for r in rows
    ]


def relay_lock(session: Session, destination: str) -> bool:
    """On PostgreSQL, where several gate processes share one database, only one relays a
    destination at a time: a transaction-scoped advisory lock per destination, held from
    reading the pending rows to marking them delivered (so no two processes send the same
    event). SQLite is served by one process only, so there is nothing to take."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    key = int(hashlib.sha256(b"facegate-events:" + destination.encode()).hexdigest()[:15], 16)
    return bool(session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}).scalar())


def mark_delivered(session: Session, destination: str, outbox_ids: list[int]) -> None:
    """Record the destination's acknowledgement (after the broker's PUBACK or a 2xx)."""
    if not outbox_ids:
        return
    now = utcnow()
    session.add_all(
        EventDelivery(outbox_id=i, destination=destination, delivered_at=now) for i in outbox_ids
    )
    session.commit()


def purge_outbox(session: Session, destinations: list[str], keep: timedelta) -> int:
    """Drop rows every destination acknowledged, and any row older than ``keep`` (delivered
    or not: a pseudonym does not wait forever for a receiver that never comes back)."""
    cutoff = utcnow() - keep
    old = select(EventOutbox.id).where(EventOutbox.created_at < cutoff)
    ids = set(session.execute(old).scalars())
    if destinations:
        done = (
            select(EventDelivery.outbox_id)
            .where(EventDelivery.destination.in_(destinations))
            .group_by(EventDelivery.outbox_id)
            .having(func.count(func.distinct(EventDelivery.destination)) == len(destinations))
        )
        ids |= set(session.execute(done).scalars())
    if ids:
        for chunk in range(0, len(ids), 500):
            part = sorted(ids)[chunk : chunk + 500]
            session.execute(delete(EventDelivery).where(EventDelivery.outbox_id.in_(part)))
            session.execute(delete(EventOutbox).where(EventOutbox.id.in_(part)))
    session.commit()
    return len(ids)


def expired_undelivered(session: Session, destinations: list[str], keep: timedelta) -> int:
    """Rows older than ``keep`` that some destination never acknowledged (purge drops them)."""
    if not destinations:
        return 0
    cutoff = utcnow() - keep
    acked_by_all = (
        select(EventDelivery.outbox_id)
        .where(EventDelivery.destination.in_(destinations))
        .group_by(EventDelivery.outbox_id)
        .having(func.count(func.distinct(EventDelivery.destination)) == len(destinations))
    )
    stmt = select(func.count(EventOutbox.id)).where(
        EventOutbox.created_at < cutoff, EventOutbox.id.not_in(acked_by_all)
    )
    return int(session.execute(stmt).scalar() or 0)


def outbox_backlog(session: Session, destination: str) -> int:
    """How many rows ``destination`` has not acknowledged yet (for /metrics and tests)."""
    delivered = (
        select(EventDelivery.outbox_id)
        .where(EventDelivery.outbox_id == EventOutbox.id)
        .where(EventDelivery.destination == destination)
        .exists()
    )
    return int(session.execute(select(func.count(EventOutbox.id)).where(~delivered)).scalar())


def access_points_for_discovery(session: Session) -> list[tuple[str, str, str]]:
    """(site id, access point id, access point name) of every access point, for MQTT
    discovery: a door's name is a place, never a person."""
    rows = session.execute(
        select(AccessPoint.site_id, AccessPoint.id, AccessPoint.name).order_by(
            AccessPoint.site_id, AccessPoint.id
        )
    ).all()
    return [(str(s), str(a), str(n or a)) for s, a, n in rows]
