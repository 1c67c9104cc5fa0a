"""Rights requests: access/export, correction, erasure (PIPL-44-48, PIPL-50, SPC-12).

Each act records a ``RightsRequest`` with its deadline and outcome in the same transaction.
An export carries no template and no image: face data stays on site (principle 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from facegate import audit
from facegate.config import Settings
from facegate.domain.common import (
    PURPOSE_RIGHTS,
    dump,
    get_person,
    record_change,
    run,
    utcnow,
)
from facegate.domain.consent import CHANNELS, withdraw_in_tx
from facegate.domain.identities import read_identity, set_identity
from facegate.domain.people import person_summary
from facegate.errors import Conflict, InvalidInput, NotFound
from facegate.store.crypto import Keyring
from facegate.store.models import (
    CATEGORIES,
    RIGHTS_KINDS,
    AccessEvent,
    AuditEntry,
    Credential,
    GuardianLink,
    Person,
    PersonIdentity,
    RightsRequest,
    new_id,
)


def _request(
    session: Session,
    settings: Settings,
    *,
    person_id: str,
    kind: str,
    channel: str,
    actor: str,
    request_id: str | None,
) -> RightsRequest:
    """The open request being answered, or a new one received now."""
    if channel not in CHANNELS:
        raise InvalidInput(f"channel must be one of {', '.join(CHANNELS)}")
    if request_id is not None:
        req = session.get(RightsRequest, request_id)
        if req is None or req.person_id != person_id:
            raise NotFound(
                f"no rights request {request_id!r} for this person",
                zh="此人没有这项个人信息权利请求",
            )
        if req.status != "open":
            raise Conflict("this rights request is already closed", zh="这个请求已经办结。")
        return req
    now = utcnow()
    req = RightsRequest(
        id=new_id("rr"),
        person_id=person_id,
        kind=kind,
        channel=channel,
        received_at=now,
        deadline_at=now + timedelta(days=settings.rights_response_days),
        handled_by=actor,
    )
    session.add(req)
    return req


def _close(req: RightsRequest, actor: str, outcome: str) -> None:
    req.status, req.outcome, req.handled_by, req.closed_at = "done", outcome, actor, utcnow()


def submit_rights_request(
    session: Session,
    settings: Settings,
    *,
    actor: str,
    person_id: str,
    kind: str,
    channel: str = "front_desk",
) -> RightsRequest:
    """Record a request to answer later; its deadline follows ``rights_response_days``."""

    def work() -> RightsRequest:
        get_person(session, person_id)
        if kind not in RIGHTS_KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(RIGHTS_KINDS)}", zh="请求类型无效")
        req = _request(
            session,
            settings,
            person_id=person_id,
            kind=kind,
            channel=channel,
            actor=actor,
            request_id=None,
        )
        session.flush()
        audit.append(
            session,
            actor=actor,
            operation="rights_request",
            subject=person_id,
            purpose=PURPOSE_RIGHTS,
            outcome="received",
            details={"request_id": req.id, "kind": kind, "deadline": req.deadline_at.isoformat()},
        )
        return req

    return run(
        session,
        work,
        actor=actor,
        operation="rights_request",
        subject=person_id,
        purpose=PURPOSE_RIGHTS,
    )


def reject_rights_request(
    session: Session, *, actor: str, request_id: str, reason: str
) -> RightsRequest:
    """Reject an open request; a reason is mandatory and is told to the person (PIPL-50)."""

    def work() -> RightsRequest:
        if not reason.strip():
            raise InvalidInput(
                "a rejection needs a reason (PIPL-50)", zh="拒绝请求须说明理由（PIPL-50）。"
            )
        req = session.get(RightsRequest, request_id)
        if req is None:
            raise NotFound(f"no rights request {request_id!r}", zh="找不到这项个人信息权利请求")
        if req.status != "open":
            raise Conflict("this rights request is already closed", zh="这个请求已经办结。")
        req.status, req.rejection_reason = "rejected", reason
        req.handled_by, req.closed_at = actor, utcnow()
        audit.append(
            session,
            actor=actor,
            operation="rights_reject",
            subject=req.person_id,
            purpose=PURPOSE_RIGHTS,
            outcome="rejected",
            details={"request_id": req.id},
        )
        return req

    return run(
        session,
        work,
        actor=actor,
        operation="rights_reject",
        subject=None,
        purpose=PURPOSE_RIGHTS,
    )


def list_rights_requests(
    session: Session, *, open_only: bool = False, site_ids: frozenset[str] | None = None
) -> list[RightsRequest]:
    """Rights requests by deadline; ``site_ids``: only those of people of these sites."""
    stmt = select(RightsRequest).order_by(RightsRequest.deadline_at)
    if open_only:
        stmt = stmt.where(RightsRequest.status == "open")
    if site_ids is not None:
        stmt = stmt.join(Person, Person.id == RightsRequest.person_id).where(
            Person.site_id.in_(site_ids)
        )
    return list(session.execute(stmt).scalars())


def export_my_data(
    session: Session,
    settings: Settings,
    *,
    actor: str,
    person_id: str,
    channel: str = "front_desk",
    request_id: str | None = None,
    keyring: Keyring | None = None,
) -> dict[str, Any]:
    """Everything kept about the person, as JSON-ready data; templates appear only as ids with
    model and date, never as vectors, and no image exists to export (PIPL-45, principle 4).
    The name, contact and unit are opened with ``keyring`` (the site key)."""

    def work() -> dict[str, Any]:
        person = get_person(session, person_id)
        req = _request(
            session,
            settings,
            person_id=person.id,
            kind="export",
            channel=channel,
            actor=actor,
            request_id=request_id,
        )
        data = person_summary(session, person.id)
        ident = read_identity(session, keyring, person)
        data["identity"] = ident.as_dict() if ident is not None else None
        data["retention"] = {
            "relationship_ends_at": data["relationship_ends_at"],
            "kept_after_end": str(settings.retention_for(person.category)),
            "hard_cap_days": settings.retention_hard_cap_days,
        }
        data["access_events"] = [
            dump(e, ("occurred_at", "access_point_id", "method", "outcome", "reason"))
            for e in session.execute(
                select(AccessEvent)
                .where(AccessEvent.person_pseudonym == person.id)
                .order_by(AccessEvent.occurred_at)
            ).scalars()
        ]
        data["processing_log"] = [
            {"at": a.at, "operation": a.operation, "outcome": a.outcome, "actor": a.actor}
            for a in session.execute(
                select(AuditEntry).where(AuditEntry.subject == person.id).order_by(AuditEntry.seq)
            ).scalars()
        ]
        data["rights_requests"] = [
            dump(
                r,
                (
                    "id",
                    "kind",
                    "status",
                    "received_at",
                    "deadline_at",
                    "closed_at",
                    "outcome",
                    "rejection_reason",
                ),
            )
            for r in session.execute(
                select(RightsRequest).where(RightsRequest.person_id == person.id)
            ).scalars()
        ]
        data["face_images_kept"] = 0
        _close(req, actor, "exported")
        session.flush()
        audit.append(
            session,
            actor=actor,
            operation="export",
            subject=person.id,
            purpose=PURPOSE_RIGHTS,
            outcome="ok",
            details={"request_id": req.id, "channel": channel},
        )
        return data

    return run(
        session, work, actor=actor, operation="export", subject=person_id, purpose=PURPOSE_RIGHTS
    )


_UNSET: Any = object()


def correct(
    session: Session,
    settings: Settings,
    *,
    actor: str,
    person_id: str,
    name: str | None = None,
    contact: str | None = None,
    unit: str | None = None,
    category: str | None = None,
    birth_date: date | None = _UNSET,
    relationship_ends_at: datetime | None = _UNSET,
    channel: str = "front_desk",
    request_id: str | None = None,
    keyring: Keyring | None = None,
) -> Person:
    """Correct identity or relationship data (PIPL-46). The audit names the fields changed,
    never their values. A new name, contact or unit is sealed with ``keyring``."""

    def work() -> Person:
        person = get_person(session, person_id, lock=True)
        req = _request(
            session,
            settings,
            person_id=person.id,
            kind="correction",
            channel=channel,
            actor=actor,
            request_id=request_id,
        )
        changed = []
        if category is not None and category != person.category:
            if category not in CATEGORIES:
                raise InvalidInput(
                    f"category must be one of {', '.join(CATEGORIES)}",
                    zh="类别无效：请选择业主/住户、租户、酒店住客、员工或访客",
                )
            if category == "visitor":
                raise InvalidInput(
                    "a registered person cannot become a visitor; erase instead",
                    zh="已登记的人员不能改为访客；请改为删除。",
                )
            person.category = category
            changed.append("category")
        if birth_date is not _UNSET and birth_date != person.birth_date:
            if birth_date is not None and birth_date > utcnow().date():
                raise InvalidInput("birth date is in the future", zh="出生日期不能晚于今天")
            person.birth_date = birth_date
            changed.append("birth_date")
        if (
            relationship_ends_at is not _UNSET
            and relationship_ends_at != person.relationship_ends_at
        ):
            person.relationship_ends_at = relationship_ends_at
            changed.append("relationship_ends_at")
        changed += set_identity(session, keyring, person, name=name, contact=contact, unit=unit)
        if not changed:
            raise InvalidInput(
                "nothing to correct: give at least one new value",
                zh="没有需要更正的内容：请至少填写一项新值。",
            )
        _close(req, actor, "corrected: " + ", ".join(changed))
        session.flush()
        # A corrected birth date can change who may be matched (CAC-FR-07): tell the gates.
        record_change(session, person.site_id, person.id, "corrected")
        audit.append(
            session,
            actor=actor,
            operation="correct",
            subject=person.id,
            purpose=PURPOSE_RIGHTS,
            outcome="ok",
            details={"request_id": req.id, "fields": changed},
        )
        return person

    return run(
        session,
        work,
        actor=actor,
        operation="correct",
        subject=person_id,
        purpose=PURPOSE_RIGHTS,
    )


@dataclass(frozen=True)
class EraseResult:
    person_id: str
    templates_erased: int
    key_destroyed: bool
    credentials_removed: int
    request_id: str | None


def erase_in_tx(
    session: Session, person: Person, *, actor: str, channel: str, reason: str
) -> tuple[int, bool, int]:
    """Erase a person: face data and key (crypto-shredding), identity, credentials and guardian
    links are deleted; what remains is the bare pseudonym on consent, access and audit records
    kept as evidence of lawful processing (SPC-10-2), which no longer leads to anyone."""
    wd = withdraw_in_tx(
        session, person, actor=actor, channel=channel, operation="erase_face", keep_access=False
    )
    creds = session.execute(delete(Credential).where(Credential.person_id == person.id)).rowcount
    session.execute(
        delete(GuardianLink).where(
            or_(GuardianLink.minor_id == person.id, GuardianLink.guardian_id == person.id)
        )
    )
    session.execute(delete(PersonIdentity).where(PersonIdentity.person_id == person.id))
    session.expire(person, ["identity"])
    person.status, person.erased_at = "erased", utcnow()
    person.birth_date, person.minor_under_14 = None, False
    person.relationship_ends_at = person.last_seen_at = None
    session.flush()
    record_change(session, person.site_id, person.id, "erased")
    audit.append(
        session,
        actor=actor,
        operation="erase",
        subject=person.id,
        purpose=PURPOSE_RIGHTS,
        outcome="ok",
        details={
            "reason": reason,
            "templates_erased": wd.templates_erased,
            "credentials_removed": int(creds or 0),
        },
    )
    return wd.templates_erased, wd.key_destroyed, int(creds or 0)


def erase(
    session: Session,
    settings: Settings,
    *,
    actor: str,
    person_id: str,
    channel: str = "front_desk",
    request_id: str | None = None,
) -> EraseResult:
    """Erase a person on request (PIPL-47, SPC-12); irreversible."""

    def work() -> EraseResult:
        person = get_person(session, person_id, lock=True)
        req = _request(
            session,
            settings,
            person_id=person.id,
            kind="erasure",
            channel=channel,
            actor=actor,
            request_id=request_id,
        )
        n, key, creds = erase_in_tx(session, person, actor=actor, channel=channel, reason="request")
        _close(req, actor, "erased")
        return EraseResult(person.id, n, key, creds, req.id)

    return run(
        session,
        work,
        actor=actor,
        operation="erase",
        subject=person_id,
        purpose=PURPOSE_RIGHTS,
        shred=True,
    )
