"""Non-biometric credentials (card, PIN, QR pass) and API keys.

Secrets are stored only hashed: PINs with argon2 (a PIN has little entropy), QR pass and API
key secrets with SHA-256 (they are 256-bit random, so a fast hash is enough and lookups stay
O(1)). A secret is returned once, at issue, and never again.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from facegate import audit
from facegate.domain.common import (
    PURPOSE_ACCESS,
    PURPOSE_SECURITY,
    get_person,
    get_site,
    record_change,
    run,
)
from facegate.errors import Conflict, Forbidden, InvalidInput, NotFound
from facegate.store.models import ApiKey, Credential, new_id, utcnow

API_SCOPES = ("gate:decide", "admin", "enroll", "rights")
_ph = PasswordHasher()


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def hash_pin(pin: str) -> str:
    return _ph.hash(pin)


def verify_pin_hash(pin_hash: str, pin: str) -> bool:
    try:
        return _ph.verify(pin_hash, pin)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class IssuedCredential:
    credential: Credential
    # The QR token (``<credential id>.<secret>``) or PIN, shown once; None for a card.
    secret: str | None


def _new_credential(
    session: Session,
    *,
    site_id: str,
    person_id: str | None,
    kind: str,
    actor: str,
    identifier: str | None = None,
    secret_hash: str | None = None,
    access_point_ids: Sequence[str] | None = None,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    max_uses: int | None = None,
) -> Credential:
    cred = Credential(
        id=new_id("cred"),
        site_id=site_id,
        person_id=person_id,
        kind=kind,
        identifier=identifier,
        secret_hash=secret_hash,
        access_point_ids=list(access_point_ids) if access_point_ids is not None else None,
        valid_from=valid_from,
        valid_until=valid_until,
        max_uses=max_uses,
        issued_by=actor,
    )
    session.add(cred)
    session.flush()
    # Gates keep a copy of the credentials to decide when the database is away (issue 18).
    record_change(session, site_id, person_id, "credential")
    audit.append(
        session,
        actor=actor,
        operation="credential_issue",
        subject=person_id,
        purpose=PURPOSE_ACCESS,
        outcome="ok",
        details={"credential_id": cred.id, "kind": kind},
    )
    return cred


def issue_qr_in_tx(
    session: Session,
    *,
    site_id: str,
    person_id: str | None,
    actor: str,
    access_point_ids: Sequence[str] | None = None,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    max_uses: int | None = None,
) -> IssuedCredential:
    if max_uses is not None and max_uses < 1:
        raise InvalidInput("max_uses must be at least 1")
    if valid_from and valid_until and valid_until <= valid_from:
        raise InvalidInput("valid_until must be after valid_from")
    secret = secrets.token_urlsafe(24)
    cred = _new_credential(
        session,
        site_id=site_id,
        person_id=person_id,
        kind="qr",
        actor=actor,
        secret_hash=sha256_hex(secret),
        access_point_ids=access_point_ids,
        valid_from=valid_from,
        valid_until=valid_until,
        max_uses=max_uses,
    )
    cred.identifier = cred.id
    session.flush()
    return IssuedCredential(cred, f"{cred.id}.{secret}")


def issue_qr_pass(
    session: Session,
    *,
    actor: str,
    person_id: str | None = None,
    site_id: str | None = None,
    access_point_ids: Sequence[str] | None = None,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    max_uses: int | None = None,
) -> IssuedCredential:
    """A QR pass for a person, or a visitor pass for no one registered (no face needed)."""

    def work() -> IssuedCredential:
        sid = get_person(session, person_id).site_id if person_id else get_site(session, site_id).id
        return issue_qr_in_tx(
            session,
            site_id=sid,
            person_id=person_id,
            actor=actor,
            access_point_ids=access_point_ids,
            valid_from=valid_from,
            valid_until=valid_until,
            max_uses=max_uses,
        )

    return run(
        session,
        work,
        actor=actor,
        operation="credential_issue",
        subject=person_id,
        purpose=PURPOSE_ACCESS,
    )


# Who may invite a visitor, and the bounds of a pass they issue. A visitor pass carries no
# face and names no one: visitors are never captured or enrolled (NJ-2020, CAC-FR-08b).
VISITOR_HOSTS = ("resident", "tenant", "staff")
VISITOR_PASS_MAX_HOURS = 7 * 24
VISITOR_PASS_MAX_USES = 10


def issue_visitor_pass(
    session: Session,
    *,
    actor: str,
    host_id: str,
    hours: int,
    max_uses: int = 1,
) -> IssuedCredential:
    """A resident, tenant or staff member invites a visitor with a time-boxed QR pass."""
    host = get_person(session, host_id)
    if host.status != "active" or host.category not in VISITOR_HOSTS:
        raise Forbidden("only an active resident, tenant or staff member can invite a visitor")
    if not 1 <= hours <= VISITOR_PASS_MAX_HOURS:
        raise InvalidInput(f"a visitor pass lasts 1 to {VISITOR_PASS_MAX_HOURS} hours")
    if not 1 <= max_uses <= VISITOR_PASS_MAX_USES:
        raise InvalidInput(f"a visitor pass opens 1 to {VISITOR_PASS_MAX_USES} times")
    now = utcnow()
    return issue_qr_pass(
        session,
        actor=actor,
        site_id=host.site_id,
        valid_from=now,
        valid_until=now + timedelta(hours=hours),
        max_uses=max_uses,
    )


def parse_qr_token(token: str) -> tuple[str, str]:
    """Split ``<credential id>.<secret>``; the gate looks up the id and compares the hash."""
    cred_id, sep, secret = token.partition(".")
    if not sep or not cred_id or not secret:
        raise InvalidInput("not a facegate QR pass")
    return cred_id, secret


def qr_secret_matches(cred: Credential, secret: str) -> bool:
    return cred.secret_hash is not None and hmac.compare_digest(
        cred.secret_hash, sha256_hex(secret)
    )


def issue_card(
    session: Session,
    *,
    actor: str,
    person_id: str,
    card_number: str,
    access_point_ids: Sequence[str] | None = None,
) -> IssuedCredential:
    def work() -> IssuedCredential:
        person = get_person(session, person_id)
        if not card_number.strip():
            raise InvalidInput("card number is empty")
        clash = session.execute(
            select(Credential.id).where(
                Credential.site_id == person.site_id,
                Credential.kind == "card",
                Credential.identifier == card_number,
                Credential.revoked_at.is_(None),
            )
        ).first()
        if clash:
            raise Conflict("this card number is already in use at this site")
        cred = _new_credential(
            session,
            site_id=person.site_id,
            person_id=person.id,
            kind="card",
            actor=actor,
            identifier=card_number,
            access_point_ids=access_point_ids,
        )
        return IssuedCredential(cred, None)

    return run(
        session,
        work,
        actor=actor,
        operation="credential_issue",
        subject=person_id,
        purpose=PURPOSE_ACCESS,
    )


def issue_pin(
    session: Session,
    *,
    actor: str,
    person_id: str,
    pin: str,
    identifier: str | None = None,
    access_point_ids: Sequence[str] | None = None,
) -> IssuedCredential:
    """A PIN (hashed with argon2); ``identifier`` (e.g. a unit number) says whose PIN it is."""

    def work() -> IssuedCredential:
        person = get_person(session, person_id)
        if not (pin.isdigit() and 4 <= len(pin) <= 12):
            raise InvalidInput("a PIN is 4 to 12 digits")
        cred = _new_credential(
            session,
            site_id=person.site_id,
            person_id=person.id,
            kind="pin",
            actor=actor,
            identifier=identifier,
            secret_hash=hash_pin(pin),
            access_point_ids=access_point_ids,
        )
        return IssuedCredential(cred, None)

    return run(
        session,
        work,
        actor=actor,
        operation="credential_issue",
        subject=person_id,
        purpose=PURPOSE_ACCESS,
    )


def active_credentials(session: Session, person_id: str) -> list[Credential]:
    now = utcnow()
    creds = session.execute(
        select(Credential).where(Credential.person_id == person_id, Credential.revoked_at.is_(None))
    ).scalars()
    return [
        c
        for c in creds
        if (c.valid_until is None or c.valid_until > now)
        and (c.max_uses is None or c.uses < c.max_uses)
    ]


# --- API keys --------------------------------------------------------------------------------


def create_api_key(
    session: Session,
    *,
    actor: str,
    scopes: Sequence[str],
    site_id: str | None = None,
    access_point_ids: Sequence[str] | None = None,
    name: str = "",
) -> tuple[ApiKey, str]:
    """Create a key; returns (row, secret). The secret is shown once and stored as SHA-256."""

    def work() -> tuple[ApiKey, str]:
        site = get_site(session, site_id)
        bad = [s for s in scopes if s not in API_SCOPES]
        if bad or not scopes:
            raise InvalidInput(f"scopes must be among {', '.join(API_SCOPES)}")
        key_id = new_id("key")
        secret = f"fg_{key_id}_{secrets.token_urlsafe(32)}"
        row = ApiKey(
            id=key_id,
            site_id=site.id,
            name=name,
            key_hash=sha256_hex(secret),
            scopes=list(dict.fromkeys(scopes)),
            access_point_ids=list(access_point_ids) if access_point_ids is not None else None,
        )
        session.add(row)
        session.flush()
        record_change(session, site.id, None, "api_key")  # gates' key cache (issue 18)
        audit.append(
            session,
            actor=actor,
            operation="api_key_create",
            purpose=PURPOSE_SECURITY,
            outcome="ok",
            details={"key_id": key_id, "scopes": row.scopes},
        )
        return row, secret

    return run(
        session,
        work,
        actor=actor,
        operation="api_key_create",
        subject=None,
        purpose=PURPOSE_SECURITY,
    )


def lookup_api_key(session: Session, secret: str) -> ApiKey | None:
    """The active key with this secret, or None (the caller answers 401)."""
    row = session.execute(
        select(ApiKey).where(ApiKey.key_hash == sha256_hex(secret))
    ).scalar_one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    return row


def revoke_api_key(session: Session, *, actor: str, key_id: str) -> ApiKey:
    def work() -> ApiKey:
        row = session.get(ApiKey, key_id)
        if row is None:
            raise NotFound(f"no API key {key_id!r}")
        row.revoked_at = row.revoked_at or utcnow()
        record_change(session, row.site_id, None, "api_key")  # gates' key cache (issue 18)
        audit.append(
            session,
            actor=actor,
            operation="api_key_revoke",
            purpose=PURPOSE_SECURITY,
            outcome="ok",
            details={"key_id": key_id},
        )
        return row

    return run(
        session,
        work,
        actor=actor,
        operation="api_key_revoke",
        subject=None,
        purpose=PURPOSE_SECURITY,
    )
