"""Consent and its withdrawal (CAC-FR-06a/b, CAC-FR-07, PIPL-14/15/16/29/31, SPC-04)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from facegate import audit
from facegate.domain.common import (
    PURPOSE_ACCESS,
    get_person,
    is_under_14,
    record_change,
    run,
    utcnow,
)
from facegate.domain.credentials import IssuedCredential, active_credentials, issue_qr_in_tx
from facegate.domain.notice import current_notice, require_informed
from facegate.errors import (
    EnrollmentNotAllowed,
    GuardianConsentRequired,
    InvalidInput,
)
from facegate.store.models import (
    AccessPoint,
    Consent,
    GuardianLink,
    Person,
    PersonKey,
    Template,
    new_id,
)

CHANNELS = ("front_desk", "web", "kiosk", "terminal", "app")


def valid_consent(session: Session, person: Person) -> Consent | None:
    """The consent that currently allows face processing for this person, if any.

    Valid means: not withdrawn, not waiting for renewal after a notice change, at the person's
    site, and for a child under 14 given by a guardian (CAC-FR-06a, 05b, 07)."""
    rows = session.execute(
        select(Consent)
        .where(
            Consent.person_id == person.id,
            Consent.site_id == person.site_id,
            Consent.withdrawn_at.is_(None),
            Consent.renewal_required_at.is_(None),
        )
        .order_by(Consent.given_at.desc())
    ).scalars()
    return pick_valid_consent(person, rows)


def pick_valid_consent(person: Person, consents: Iterable[Consent]) -> Consent | None:
    """The rule of ``valid_consent`` over consents already read (the gate's offline copy
    reads them in bulk, issue 18): newest first, not withdrawn, not awaiting renewal, at the
    person's site, a guardian's for an under-14."""
    minor = is_under_14(person)
    live = [
        c
        for c in consents
        if c.site_id == person.site_id and c.withdrawn_at is None and c.renewal_required_at is None
    ]
    live.sort(key=lambda c: c.given_at, reverse=True)
    for c in live:
        if minor and c.guardian_id is None:
            continue
        return c
    return None


def record_consent(
    session: Session,
    *,
    actor: str,
    person_id: str,
    channel: str = "front_desk",
    guardian_id: str | None = None,
    guardian_relation: str | None = None,
    scope: Sequence[str] | None = None,
    device_id: str | None = None,
) -> Consent:
    """Record a separate consent to the site's current notice version.

    Consent is its own act, never implied by a lease or check-in (CAC-FR-06a, SPC-04). For a
    child under 14 it must come from a guardian (CAC-FR-07, PIPL-31). The scope is the list
    of face access points it covers; by default every face access point of the site now.
    """

    def work() -> Consent:
        person = get_person(session, person_id, lock=True)
        if person.category == "visitor":
            raise EnrollmentNotAllowed(
                "visitors use a single-use pass; no face template is kept for them (CAC-FR-08b)",
                zh="访客使用一次性通行码，不保存其人脸模板（CAC-FR-08b）",
            )
        if channel not in CHANNELS:
            raise InvalidInput(f"channel must be one of {', '.join(CHANNELS)}")
        notice = current_notice(session, person.site_id)
        # Consent to a notice lacking a required field is not informed (CAC-FR-05a, 06a).
        require_informed(notice)
        assert notice is not None
        relation = None
        if guardian_id is not None:
            guardian = get_person(session, guardian_id)
            if guardian.id == person.id or is_under_14(guardian):
                raise InvalidInput(
                    "the guardian must be another person aged 14 or over",
                    zh="监护人须为年满 14 周岁的另一人。",
                )
            link = session.execute(
                select(GuardianLink).where(
                    GuardianLink.minor_id == person.id,
                    GuardianLink.guardian_id == guardian.id,
                    GuardianLink.revoked_at.is_(None),
                )
            ).scalar_one_or_none()
            if link is None:
                if not guardian_relation:
                    raise GuardianConsentRequired(
                        "this guardian is not linked to the child yet; give the relation "
                        "(e.g. parent) to record the link with the consent",
                        zh="这位监护人尚未与孩子关联：请填写关系（例如父母），与同意一并记录",
                    )
                link = GuardianLink(
                    minor_id=person.id, guardian_id=guardian.id, relation=guardian_relation
                )
                session.add(link)
            relation = guardian_relation or link.relation
        elif is_under_14(person):
            raise GuardianConsentRequired(
                "this person is under 14: a parent or guardian must give the consent (CAC-FR-07)",
                zh="此人未满 14 周岁：须由父母或其他监护人作出同意（CAC-FR-07）",
            )
        face_points = [
            ap.id
            for ap in session.execute(
                select(AccessPoint).where(AccessPoint.site_id == person.site_id)
            ).scalars()
            if "face" in (ap.methods or [])
        ]
        if scope is None:
            chosen = face_points
        else:
            unknown = sorted(set(scope) - set(face_points))
            if unknown:
                raise InvalidInput(
                    f"not face access points of this site: {', '.join(unknown)}",
                    zh="所选的出入口中有的不属于本场所，或没有启用人脸识别",
                )
            chosen = list(dict.fromkeys(scope))
        consent = Consent(
            id=new_id("consent"),
            person_id=person.id,
            site_id=person.site_id,
            notice_version_id=notice.id,
            notice_sha256=notice.sha256,
            scope=chosen,
            channel=channel,
            recorded_by=actor,
            device_id=device_id,
            guardian_id=guardian_id,
            guardian_relation=relation,
            given_at=utcnow(),
        )
        session.add(consent)
        person.face_declined_at = None
        session.flush()
        record_change(session, person.site_id, person.id, "consent")
        audit.append(
            session,
            actor=actor,
            operation="consent_record",
            subject=person.id,
            purpose=PURPOSE_ACCESS,
            outcome="ok",
            details={
                "consent_id": consent.id,
                "notice_version": notice.version,
                "notice_sha256": notice.sha256,
                "channel": channel,
                "guardian": guardian_id,
                "scope": chosen,
            },
        )
        return consent

    return run(
        session,
        work,
        actor=actor,
        operation="consent_record",
        subject=person_id,
        purpose=PURPOSE_ACCESS,
    )


@dataclass(frozen=True)
class WithdrawResult:
    person_id: str
    consents_withdrawn: int
    templates_erased: int
    key_destroyed: bool
    # Issued when the person had no working non-biometric credential (CAC-FR-06b, SPC-10).
    issued: IssuedCredential | None


def erase_face_data_in_tx(session: Session, person: Person) -> tuple[int, bool]:
    """Delete the person's templates and their data key (crypto-shredding). Real deletes,
    not flags (PIPL-47); SQLite's secure_delete overwrites the freed pages."""
    n = session.execute(delete(Template).where(Template.person_id == person.id)).rowcount
    k = session.execute(delete(PersonKey).where(PersonKey.person_id == person.id)).rowcount
    return int(n or 0), bool(k)


def withdraw_in_tx(
    session: Session,
    person: Person,
    *,
    actor: str,
    channel: str,
    operation: str = "withdraw",
    keep_access: bool = True,
) -> WithdrawResult:
    now = utcnow()
    consents = (
        session.execute(
            select(Consent).where(Consent.person_id == person.id, Consent.withdrawn_at.is_(None))
        )
        .scalars()
        .all()
    )
    for c in consents:
        c.withdrawn_at = now
    erased, key = erase_face_data_in_tx(session, person)
    person.face_declined_at = now
    record_change(session, person.site_id, person.id, "withdrawn")
    issued = None
    if keep_access and not active_credentials(session, person.id):
        # Declining face never removes access (PIPL-16, SPC-10, CAC-FR-10).
        issued = issue_qr_in_tx(session, site_id=person.site_id, person_id=person.id, actor=actor)
    audit.append(
        session,
        actor=actor,
        operation=operation,
        subject=person.id,
        purpose=PURPOSE_ACCESS,
        outcome="ok",
        details={
            "channel": channel,
            "consents_withdrawn": len(consents),
            "templates_erased": erased,
            "key_destroyed": key,
            "credential_issued": issued.credential.id if issued else None,
        },
    )
    return WithdrawResult(person.id, len(consents), erased, key, issued)


def withdraw(
    session: Session, *, actor: str, person_id: str, channel: str = "front_desk"
) -> WithdrawResult:
    """Withdraw consent: templates and data key are erased at once, gates are told, and the
    person keeps (or is given) a non-biometric credential (CAC-FR-06b, PIPL-15/16)."""

    def work() -> WithdrawResult:
        person = get_person(session, person_id, lock=True)
        if channel not in CHANNELS:
            raise InvalidInput(f"channel must be one of {', '.join(CHANNELS)}")
        return withdraw_in_tx(session, person, actor=actor, channel=channel)

    return run(
        session,
        work,
        actor=actor,
        operation="withdraw",
        subject=person_id,
        purpose=PURPOSE_ACCESS,
        shred=True,
    )


def decline_face(
    session: Session, *, actor: str, person_id: str, channel: str = "front_desk"
) -> WithdrawResult:
    """The person says no to face recognition. Nothing about their access changes: they keep
    (or are given) a card, PIN or QR credential (PIPL-16, SPC-10), any earlier consent and
    face data are removed, and they are not asked again unprompted (STD-35273-6.3)."""

    def work() -> WithdrawResult:
        person = get_person(session, person_id, lock=True)
        if channel not in CHANNELS:
            raise InvalidInput(f"channel must be one of {', '.join(CHANNELS)}")
        return withdraw_in_tx(session, person, actor=actor, channel=channel, operation="decline")

    return run(
        session,
        work,
        actor=actor,
        operation="decline",
        subject=person_id,
        purpose=PURPOSE_ACCESS,
        shred=True,
    )
