"""Resident and guest self-service: one-time invitations, saying yes or no to face access.

An invitation is a random token shown once (link and QR), stored only as SHA-256, with an
expiry; opening it spends it and starts a short self-service session. Saying "no" is the
store's ``decline_face``: remembered so the person is not asked again (STD-41819-02), nothing
about their access changes, and a QR pass is issued when they had no other way in (SPC-10).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from facegate import audit
from facegate.config import Settings
from facegate.domain.accounts import OpenedSession, open_session
from facegate.domain.common import PURPOSE_ACCESS, get_person, is_under_14, run, utcnow
from facegate.domain.consent import WithdrawResult, record_consent, valid_consent
from facegate.domain.consent import decline_face as store_decline_face
from facegate.errors import GuardianConsentRequired, InvalidInput, InvitationInvalid
from facegate.store.models import AccessEvent, AccessPoint, Consent, GuardianLink, Template, new_id
from facegate.store.web_models import Invitation


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    token: str  # shown once, in the link and its QR code


def create_invitation(
    session: Session,
    settings: Settings,
    *,
    actor: str,
    person_id: str,
    guardian_id: str | None = None,
) -> IssuedInvitation:
    """A one-time self-service link for a person (for a child under 14: for their guardian)."""

    def work() -> IssuedInvitation:
        person = get_person(session, person_id)
        if is_under_14(person):
            if guardian_id is None:
                raise GuardianConsentRequired(
                    "this person is under 14: invite a linked parent or guardian to decide "
                    "for them (CAC-FR-07)",
                    zh="此人未满 14 周岁：请邀请已关联的父母或其他监护人替其决定（CAC-FR-07）",
                )
            linked = session.execute(
                select(GuardianLink.id).where(
                    GuardianLink.minor_id == person.id,
                    GuardianLink.guardian_id == guardian_id,
                    GuardianLink.revoked_at.is_(None),
                )
            ).first()
            if not linked:
                raise InvalidInput(
                    "link the guardian to the child first", zh="请先把监护人与儿童关联。"
                )
        elif guardian_id is not None:
            raise InvalidInput(
                "only a child under 14 is invited through a guardian",
                zh="只有不满 14 周岁的儿童才通过监护人邀请。",
            )
        token = secrets.token_urlsafe(24)
        now = utcnow()
        inv = Invitation(
            id=new_id("inv"),
            person_id=person.id,
            guardian_id=guardian_id,
            token_hash=_hash(token),
            created_by=actor,
            created_at=now,
            expires_at=now + timedelta(hours=settings.web_invitation_hours),
        )
        session.add(inv)
        session.flush()
        audit.append(
            session,
            actor=actor,
            operation="invitation_create",
            subject=person.id,
            purpose=PURPOSE_ACCESS,
            outcome="ok",
            details={"invitation_id": inv.id, "expires_at": inv.expires_at.isoformat()},
        )
        return IssuedInvitation(inv, token)

    return run(
        session,
        work,
        actor=actor,
        operation="invitation_create",
        subject=person_id,
        purpose=PURPOSE_ACCESS,
    )


@dataclass(frozen=True)
class Redeemed:
    person_id: str
    guardian_id: str | None
    opened: OpenedSession


def redeem_invitation(session: Session, settings: Settings, *, token: str) -> Redeemed:
    """Spend a one-time link and open a self-service session; expired or used: refused."""
    now = utcnow()
    inv = session.execute(
        select(Invitation).where(Invitation.token_hash == _hash(token or "")).with_for_update()
    ).scalar_one_or_none()
    if inv is None or inv.used_at is not None or inv.expires_at <= now:
        session.rollback()
        raise InvitationInvalid()
    person = get_person(session, inv.person_id)
    inv.used_at = now
    audit.append(
        session,
        actor="self-service",
        operation="invitation_redeem",
        subject=person.id,
        purpose=PURPOSE_ACCESS,
        outcome="ok",
        details={"invitation_id": inv.id},
    )
    session.commit()
    # The session remembers who decides: the person, or the guardian acting for a child.
    subject = person.id if inv.guardian_id is None else f"{person.id}|{inv.guardian_id}"[:40]
    opened = open_session(
        session,
        kind="person",
        subject_id=subject,
        lifetime=timedelta(minutes=settings.web_self_session_minutes),
    )
    return Redeemed(person.id, inv.guardian_id, opened)


def split_subject(subject_id: str) -> tuple[str, str | None]:
    """(person id, guardian id or None) of a self-service session's subject."""
    person, _, guardian = subject_id.partition("|")
    return person, guardian or None


def decline_face(
    session: Session, *, actor: str, person_id: str, channel: str = "web"
) -> WithdrawResult:
    """Record "no thanks" to face access: the store's ``decline_face`` (access unchanged, a
    QR pass when the person had no other way in, not asked again: STD-41819-02, SPC-10)."""
    return store_decline_face(session, actor=actor, person_id=person_id, channel=channel)


def accept_face(
    session: Session,
    *,
    actor: str,
    person_id: str,
    guardian_id: str | None = None,
    channel: str = "web",
) -> Consent:
    """The person (or the guardian of a child) chose face access: their separate consent
    (CAC-FR-06a); recording it also clears an earlier "no", since they changed their mind."""
    return record_consent(
        session, actor=actor, person_id=person_id, channel=channel, guardian_id=guardian_id
    )


def face_state(session: Session, person_id: str) -> dict[str, Any]:
    """What the self-service page needs to know to show the right choice (never a vector)."""
    person = get_person(session, person_id)
    consent = valid_consent(session, person)
    declined = person.face_declined_at
    templates = session.execute(select(Template.id).where(Template.person_id == person.id)).all()
    withdrew = (
        consent is None
        and session.execute(
            select(Consent.id).where(
                Consent.person_id == person.id, Consent.withdrawn_at.is_not(None)
            )
        ).first()
        is not None
    )
    return {
        "person_id": person.id,
        "category": person.category,
        "under_14": is_under_14(person),
        "consent_active": consent is not None,
        "enrolled": bool(templates),
        "declined": declined is not None and consent is None and not withdrew,
        "withdrawn": withdrew,
        "declined_at": declined.isoformat() if declined else None,
        # Ask only someone who has neither said yes nor no (STD-41819-02).
        "should_ask": consent is None and declined is None and person.category != "visitor",
    }


def face_states(session: Session, person_ids: list[str]) -> dict[str, dict[str, Any]]:
    """``face_state`` for several people (the console's people list)."""
    return {pid: face_state(session, pid) for pid in person_ids}


def recent_access_events(
    session: Session,
    *,
    person_id: str | None = None,
    limit: int = 100,
    site_ids: frozenset[str] | None = None,
) -> list[dict[str, Any]]:
    """Latest access events, newest first: pseudonym, method, outcome, reason. There is no
    face to show: none is ever kept (principle 3). ``site_ids``: only those sites' events."""
    stmt = select(AccessEvent).order_by(AccessEvent.occurred_at.desc(), AccessEvent.id.desc())
    if person_id is not None:
        stmt = stmt.where(AccessEvent.person_pseudonym == person_id)
    if site_ids is not None:
        stmt = stmt.where(AccessEvent.site_id.in_(site_ids))
    events = session.execute(stmt.limit(limit)).scalars().all()
    ap_ids = {e.access_point_id for e in events}
    rows = session.execute(
        select(AccessPoint.id, AccessPoint.name).where(AccessPoint.id.in_(ap_ids))
    ).all()
    names = {ap_id: name for ap_id, name in rows}
    return [
        {
            "at": e.occurred_at.isoformat(timespec="seconds"),
            "access_point_id": e.access_point_id,
            "access_point_name": names.get(e.access_point_id, ""),
            "person": e.person_pseudonym,
            "method": e.method,
            "outcome": e.outcome,
            "reason": e.reason,
        }
        for e in events
    ]


def notice_for_person(session: Session, person_id: str) -> dict[str, Any]:
    """The current notice of the person's site (fields N1..N13, version, hash)."""
    from facegate.domain.notice import current_notice

    person = get_person(session, person_id)
    notice = current_notice(session, person.site_id)
    if notice is None:
        return {"version": None, "fields": {}, "sha256": ""}
    return {"version": notice.version, "fields": notice.fields, "sha256": notice.sha256}


# --- which ways in work where (issue 16 item 10) ----------------------------------------------


def _credential_fits(cred: Any, ap: Any, now: Any) -> bool:
    if cred.revoked_at is not None or cred.site_id != ap.site_id:
        return False
    if cred.valid_until is not None and now >= cred.valid_until:
        return False
    if cred.max_uses is not None and (cred.uses or 0) >= cred.max_uses:
        return False
    return not cred.access_point_ids or ap.id in cred.access_point_ids


def ways_in(session: Session, person_id: str) -> list[dict[str, Any]]:
    """Each entrance of the person's site with the ways in it accepts that this person has:
    only methods the entrance is configured for, never a generic list (a resident must not be
    told "use your PIN" at a door without a keypad). Face counts where their valid consent
    covers the entrance, their face is enrolled and face is switched on there; a staffed
    check where the entrance has one."""
    from facegate.store.models import AccessPoint, Credential, Site

    person = get_person(session, person_id)
    now = utcnow()
    consent = valid_consent(session, person)
    scope = set(consent.scope or ()) if consent is not None else set()
    enrolled = (
        session.execute(select(Template.id).where(Template.person_id == person.id)).first()
        is not None
    )
    site = session.get(Site, person.site_id)
    creds = session.execute(select(Credential).where(Credential.person_id == person.id)).scalars()
    creds = list(creds)
    out = []
    aps = session.execute(
        select(AccessPoint).where(AccessPoint.site_id == person.site_id).order_by(AccessPoint.name)
    ).scalars()
    for ap in aps:
        accepted = list(ap.methods or [])
        have = {c.kind for c in creds if _credential_fits(c, ap, now)}
        if (
            ap.id in scope
            and enrolled
            and ap.face_enabled
            and site is not None
            and site.face_enabled
        ):
            have.add("face")
        have.add("staffed")
        out.append(
            {
                "access_point_id": ap.id,
                "name": ap.name,
                "methods": [m for m in accepted if m in have],
            }
        )
    return out


def pass_entrances(session: Session, credential_id: str) -> list[str]:
    """The names of the entrances where this QR pass (and its short code) opens: those of its
    site that accept QR passes, within the pass's own access points if it names any."""
    from facegate.store.models import AccessPoint, Credential

    cred = session.get(Credential, credential_id)
    if cred is None:
        return []
    aps = session.execute(
        select(AccessPoint).where(AccessPoint.site_id == cred.site_id).order_by(AccessPoint.name)
    ).scalars()
    return [
        ap.name
        for ap in aps
        if "qr" in (ap.methods or [])
        and (not cred.access_point_ids or ap.id in cred.access_point_ids)
    ]
