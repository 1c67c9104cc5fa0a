"""Retention purge (CAC-FR-08b, PIPL-19, PIPL-47) and key rotation (CAC-FR-14)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from facegate import audit
from facegate.config import Settings
from facegate.domain.common import (
    PURPOSE_RETENTION,
    PURPOSE_SECURITY,
    checkpoint_wal,
    get_person,
    record_change,
    run,
    utcnow,
)
from facegate.domain.consent import erase_face_data_in_tx
from facegate.domain.identities import rewrap_field_keys
from facegate.domain.rights import erase_in_tx
from facegate.store.crypto import Keyring
from facegate.store.models import Consent, Person, PersonKey, Site, SiteFieldKey, Template


def retention_deadline(settings: Settings, person: Person) -> datetime | None:
    """When the person's data must be gone: end of the relationship plus the category's
    retention; None while the relationship has no end date."""
    if person.relationship_ends_at is None:
        return None
    return person.relationship_ends_at + settings.retention_for(person.category)


def _last_interaction(session: Session, person: Person) -> datetime:
    newest_template = session.execute(
        select(func.max(Template.created_at)).where(Template.person_id == person.id)
    ).scalar()
    newest_consent = session.execute(
        select(func.max(Consent.given_at)).where(Consent.person_id == person.id)
    ).scalar()
    times = [t for t in (person.last_seen_at, newest_template, newest_consent) if t is not None]
    return max(times, default=person.created_at)


@dataclass
class PurgeResult:
    erased: list[str] = field(default_factory=list)  # relationship ended + retention passed
    face_data_expired: list[str] = field(default_factory=list)  # hard cap since last use


def purge_expired(
    session: Session,
    settings: Settings,
    *,
    actor: str = "system:retention",
    now: datetime | None = None,
) -> PurgeResult:
    """Erase what retention says is due and record each erasure.

    A person whose relationship ended more than their category's retention ago is erased
    (face data, key, identity, credentials). Face data unused for longer than the hard cap is
    erased even while the relationship lasts; the person keeps their other credentials."""
    now = now or utcnow()
    result = PurgeResult()
    for person in list(session.execute(select(Person).where(Person.status == "active")).scalars()):
        deadline = retention_deadline(settings, person)
        if deadline is not None and deadline <= now:
            pid, category = person.id, person.category

            def erase_person(pid: str = pid, category: str = category) -> None:
                p = get_person(session, pid, lock=True)
                erase_in_tx(
                    session,
                    p,
                    actor=actor,
                    channel="terminal",
                    reason=f"retention:{category}",
                )

            run(
                session,
                erase_person,
                actor=actor,
                operation="purge",
                subject=pid,
                purpose=PURPOSE_RETENTION,
            )
            result.erased.append(pid)
            continue
        has_face = session.get(PersonKey, person.id) is not None
        if has_face and _last_interaction(session, person) + settings.retention_hard_cap <= now:
            pid = person.id

            def expire_face(pid: str = pid) -> None:
                p = get_person(session, pid, lock=True)
                n, _ = erase_face_data_in_tx(session, p)
                record_change(session, p.site_id, p.id, "withdrawn")
                audit.append(
                    session,
                    actor=actor,
                    operation="purge_face",
                    subject=p.id,
                    purpose=PURPOSE_RETENTION,
                    outcome="ok",
                    details={"reason": "hard_cap", "templates_erased": n},
                )

            run(
                session,
                expire_face,
                actor=actor,
                operation="purge_face",
                subject=pid,
                purpose=PURPOSE_RETENTION,
            )
            result.face_data_expired.append(pid)

    def summary() -> None:
        audit.append(
            session,
            actor=actor,
            operation="purge",
            purpose=PURPOSE_RETENTION,
            outcome="ok",
            details={
                "erased": len(result.erased),
                "face_data_expired": len(result.face_data_expired),
                "as_of": now.isoformat(),
            },
        )

    run(session, summary, actor=actor, operation="purge", subject=None, purpose=PURPOSE_RETENTION)
    if result.erased or result.face_data_expired:
        checkpoint_wal(session)
    return result


@dataclass(frozen=True)
class RotateResult:
    new_key_id: str
    rewrapped: int
    retired: list[str]


def rotate_keys(session: Session, keyring: Keyring, *, actor: str) -> RotateResult:
    """Re-wrap every person's data key with a new site key; template ciphertext is untouched.

    With the key file, a new key is added first (the old one stays until every data key is
    re-wrapped and committed, so a crash loses nothing) and retired afterwards. With the
    environment or a hook, the new key must already be active (``FACEGATE_SITE_KEY``, the old
    one in ``FACEGATE_SITE_KEY_PREVIOUS``) and this re-wraps onto it."""
    if keyring.key_file is not None:
        keyring.key_file.add_active_key()
        keyring.reload()
    new_id = keyring.active.key_id

    def work() -> int:
        n = 0
        rows = session.execute(
            select(PersonKey).where(PersonKey.key_id != new_id).with_for_update()
        ).scalars()
        now = utcnow()
        for row in rows:
            dek = keyring.unwrap_data_key(row.person_id, row.key_id, row.wrapped)
            row.key_id, row.wrapped = keyring.wrap_data_key(row.person_id, dek)
            row.rotated_at = now
            n += 1
        fields = rewrap_field_keys(session, keyring, new_id)  # identities (issue 13 item 15)
        session.flush()
        for site_id in session.execute(select(Site.id)).scalars():
            record_change(session, site_id, None, "keys_rotated")
        audit.append(
            session,
            actor=actor,
            operation="key_rotate",
            purpose=PURPOSE_SECURITY,
            outcome="ok",
            details={"new_key_id": new_id, "rewrapped": n, "field_keys": fields},
        )
        return n

    n = run(
        session, work, actor=actor, operation="key_rotate", subject=None, purpose=PURPOSE_SECURITY
    )
    retired: list[str] = []
    if keyring.key_file is not None:
        in_use = set(session.execute(select(PersonKey.key_id).distinct()).scalars())
        in_use |= set(session.execute(select(SiteFieldKey.key_id).distinct()).scalars())
        retired = [k for k in keyring.key_ids if k != new_id and k not in in_use]
        keyring.key_file.retire(retired)
        keyring.reload()
    return RotateResult(new_id, n, retired)


def mark_seen(session: Session, person_id: str, at: datetime | None = None) -> None:
    """Note a person's last interaction (the hard cap counts from it); caller commits."""
    session.execute(
        update(Person).where(Person.id == person_id).values(last_seen_at=at or utcnow())
    )
