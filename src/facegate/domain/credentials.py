"""Non-biometric credentials (card, PIN, QR pass) and API keys.

Secrets are stored only hashed: PINs with argon2 (a PIN has little entropy), QR pass and API
key secrets with SHA-256 (they are 256-bit random, so a fast hash is enough and lookups stay
O(1)), a QR pass's short code with HMAC-SHA256 under a key derived from the site's field key
(50 bits: a fast unkeyed hash would be reversible; ``facegate.domain.passcodes``). A secret is
returned once, at issue, and never again.
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
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from facegate import audit
from facegate.domain import passcodes
from facegate.domain.common import (
    PURPOSE_ACCESS,
    PURPOSE_SECURITY,
    enforce_limit,
    get_person,
    get_site,
    record_change,
    run,
)
from facegate.errors import Conflict, Forbidden, InvalidInput, NotFound
from facegate.store.models import AccessPoint, ApiKey, Credential, new_id, utcnow

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
    # A QR pass's short code to type (``7KQ2M-XC94D``), shown once beside the picture; None
    # for other kinds, or when the site keyring was not at hand (the token still works).
    code: str | None = None


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
        raise InvalidInput("max_uses must be at least 1", zh="可用次数至少为 1 次")
    if valid_from and valid_until and valid_until <= valid_from:
        raise InvalidInput("valid_until must be after valid_from", zh="失效时间须晚于生效时间")
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
    code = _give_short_code(session, cred)
    session.flush()
    shown = passcodes.format_code(code) if code else None
    return IssuedCredential(cred, f"{cred.id}.{secret}", shown)


def _give_short_code(session: Session, cred: Credential) -> str | None:
    """A short code for this pass, stored only as its keyed hash (issue 16 item 10)."""
    fields = passcodes.site_fields(session, cred.site_id, create=True)
    if fields is None:
        return None
    for _ in range(5):
        code = passcodes.new_code()
        index = fields.code_index(code)
        clash = session.execute(
            select(Credential.id).where(
                Credential.site_id == cred.site_id, Credential.code_hash == index
            )
        ).first()
        if clash is None:  # 2^50 codes: a clash is all but impossible, but never reuse one
            cred.code_hash = index
            return code
    return None


def revoke_credential(session: Session, *, actor: str, credential_id: str) -> Credential:
    """Revoke a card, PIN or QR pass (its short code with it); gates are told at once."""

    def work() -> Credential:
        cred = session.get(Credential, credential_id)
        if cred is None:
            raise NotFound(f"no credential {credential_id!r}", zh="找不到这个凭证")
        cred.revoked_at = cred.revoked_at or utcnow()
        record_change(session, cred.site_id, cred.person_id, "credential")
        audit.append(
            session,
            actor=actor,
            operation="credential_revoke",
            subject=cred.person_id,
            purpose=PURPOSE_ACCESS,
            outcome="ok",
            details={"credential_id": cred.id, "kind": cred.kind},
        )
        return cred

    return run(
        session,
        work,
        actor=actor,
        operation="credential_revoke",
        subject=None,
        purpose=PURPOSE_ACCESS,
    )


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
        raise Forbidden(
            "only an active resident, tenant or staff member can invite a visitor",
            zh="只有在住的业主、租户或员工可以邀请访客。",
        )
    if not 1 <= hours <= VISITOR_PASS_MAX_HOURS:
        raise InvalidInput(
            f"a visitor pass lasts 1 to {VISITOR_PASS_MAX_HOURS} hours",
            zh=f"访客通行码的有效时长为 1 到 {VISITOR_PASS_MAX_HOURS} 小时。",
        )
    if not 1 <= max_uses <= VISITOR_PASS_MAX_USES:
        raise InvalidInput(
            f"a visitor pass opens 1 to {VISITOR_PASS_MAX_USES} times",
            zh=f"访客通行码可通行 1 到 {VISITOR_PASS_MAX_USES} 次。",
        )
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
        raise InvalidInput("not a facegate QR pass", zh="这不是本系统的二维码通行证")
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
            raise InvalidInput("card number is empty", zh="请填写卡号")
        clash = session.execute(
            select(Credential.id).where(
                Credential.site_id == person.site_id,
                Credential.kind == "card",
                Credential.identifier == card_number,
                Credential.revoked_at.is_(None),
            )
        ).first()
        if clash:
            raise Conflict(
                "this card number is already in use at this site",
                zh="这个卡号在本场所已有人使用，请换一张卡",
            )
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
            raise InvalidInput("a PIN is 4 to 12 digits", zh="密码须为 4 到 12 位数字。")
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


def card_for(session: Session, person_id: str, access_point_id: str) -> str | None:
    """The number of the person's card valid at this access point now, or None.

    What a door output that reports a credential (an OSDP reader on a panel, issue 15) tells
    the panel after facegate allowed the person: the panel already knows this card. The oldest
    live card wins, so the answer is stable while the person holds several."""
    from facegate.store.models import AccessPoint

    ap = session.get(AccessPoint, access_point_id)
    if ap is None:
        return None
    now = utcnow()
    cards = session.execute(
        select(Credential)
        .where(
            Credential.person_id == person_id,
            Credential.site_id == ap.site_id,
            Credential.kind == "card",
            Credential.revoked_at.is_(None),
        )
        .order_by(Credential.created_at, Credential.id)
    ).scalars()
    for c in cards:
        if c.valid_from is not None and now < c.valid_from:
            continue
        if c.valid_until is not None and now >= c.valid_until:
            continue
        if c.access_point_ids and access_point_id not in c.access_point_ids:
            continue
        if c.identifier:
            return c.identifier
    return None


# --- API keys --------------------------------------------------------------------------------


def _access_points_site(
    session: Session, access_point_ids: Sequence[str], site_id: str | None
) -> str:
    """The one site of these access points (each must exist); refuses a mix of sites."""
    sites = set()
    for ap_id in access_point_ids:
        ap = session.get(AccessPoint, ap_id)
        if ap is None:
            raise NotFound(
                f"no access point {ap_id!r}: list them with `facegate access-point list` "
                "or on the console's Sites page",
                zh="找不到这个出入口：可运行 `facegate access-point list`"
                "，或在控制台的“场所与出入口”页查看",
            )
        sites.add(ap.site_id)
    if len(sites) > 1:
        raise InvalidInput(
            "a key serves the access points of one site; make one key per site",
            zh="一个密钥只能用于一个场所的出入口：请为每个场所分别创建密钥",
        )
    (only,) = sites
    if site_id is not None and site_id != only:
        raise InvalidInput(
            "these access points belong to another site than the one named",
            zh="所选的出入口属于另一个场所",
        )
    return only


def _new_api_key(
    session: Session,
    *,
    actor: str,
    scopes: Sequence[str],
    site_id: str | None,
    access_point_ids: Sequence[str] | None,
    all_access_points: bool,
    name: str,
    expires_at: datetime | None,
    kiosk_access_point_id: str | None = None,
) -> tuple[ApiKey, str]:
    bad = [s for s in scopes if s not in API_SCOPES]
    if bad or not scopes:
        raise InvalidInput(f"scopes must be among {', '.join(API_SCOPES)}")
    aps = list(dict.fromkeys(access_point_ids or ()))
    if aps and all_access_points:
        raise InvalidInput(
            "name access points or ask for all access points, not both",
            zh="请选择出入口，或选择适用于所有出入口，二者只能选一",
        )
    # Issue 16 item 4: a gate key opens only the doors it is bound to, unless an all-doors
    # key is asked for explicitly (least privilege, CAC-FR-14).
    if "gate:decide" in scopes and not aps and not all_access_points:
        raise InvalidInput(
            "a gate:decide key is bound to the access points it serves: name one or more "
            "access points (--access-point ID), or ask explicitly for a key valid at every "
            "access point of the site (--all-access-points)",
            zh="门禁密钥须绑定它所服务的出入口：请指定一个或多个出入口（--access-point ID），"
            "或明确要求适用于本场所所有出入口的密钥（--all-access-points）",
        )
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidInput("the expiry must be in the future", zh="到期时间须晚于现在。")
    sid = _access_points_site(session, aps, site_id) if aps else get_site(session, site_id).id
    n = session.scalar(
        select(func.count())
        .select_from(ApiKey)
        .where(ApiKey.site_id == sid, ApiKey.revoked_at.is_(None))
    )
    enforce_limit(session, "max_api_keys_per_site", int(n or 0), "API keys in use", "API 密钥")
    key_id = new_id("key")
    secret = f"fg_{key_id}_{secrets.token_urlsafe(32)}"
    row = ApiKey(
        id=key_id,
        site_id=sid,
        name=name,
        key_hash=sha256_hex(secret),
        scopes=list(dict.fromkeys(scopes)),
        access_point_ids=aps or None,
        expires_at=expires_at,
        kiosk_access_point_id=kiosk_access_point_id,
    )
    session.add(row)
    session.flush()
    record_change(session, sid, None, "api_key")  # gates' key cache (issue 18)
    audit.append(
        session,
        actor=actor,
        operation="api_key_create",
        purpose=PURPOSE_SECURITY,
        outcome="ok",
        details={
            "key_id": key_id,
            "scopes": row.scopes,
            "access_point_ids": row.access_point_ids,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return row, secret


def create_api_key(
    session: Session,
    *,
    actor: str,
    scopes: Sequence[str],
    site_id: str | None = None,
    access_point_ids: Sequence[str] | None = None,
    all_access_points: bool = False,
    name: str = "",
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns (row, secret). The secret is shown once and stored as SHA-256.

    The site is the access points' site (each must exist), else ``site_id`` or the only site.
    A ``gate:decide`` key needs ``access_point_ids`` unless ``all_access_points`` is set
    explicitly. ``expires_at``: optional end of validity."""

    def work() -> tuple[ApiKey, str]:
        return _new_api_key(
            session,
            actor=actor,
            scopes=scopes,
            site_id=site_id,
            access_point_ids=access_point_ids,
            all_access_points=all_access_points,
            name=name,
            expires_at=expires_at,
        )

    return run(
        session,
        work,
        actor=actor,
        operation="api_key_create",
        subject=None,
        purpose=PURPOSE_SECURITY,
    )


def make_kiosk_key(
    session: Session, *, actor: str, access_point_id: str, expires_at: datetime | None = None
) -> tuple[ApiKey, str]:
    """The gate key of a kiosk link: bound to this one access point (whatever its site), and
    replacing (revoking) the key of any earlier kiosk link for it (issue 13 items 9, 10)."""

    def work() -> tuple[ApiKey, str]:
        ap = session.get(AccessPoint, access_point_id)
        if ap is None:
            raise NotFound(
                f"no access point {access_point_id!r}: make the kiosk link from an entrance "
                "listed on the Sites page",
                zh="找不到这个出入口：请从“场所与出入口”页列出的出入口生成自助终端链接",
            )
        previous = session.execute(
            select(ApiKey).where(ApiKey.kiosk_access_point_id == ap.id, ApiKey.revoked_at.is_(None))
        ).scalars()
        now = utcnow()
        for old in previous:
            old.revoked_at = now
            record_change(session, old.site_id, None, "api_key")  # gates' key cache (issue 18)
            audit.append(
                session,
                actor=actor,
                operation="api_key_revoke",
                purpose=PURPOSE_SECURITY,
                outcome="ok",
                details={"key_id": old.id, "reason": "replaced by a new kiosk link"},
            )
        return _new_api_key(
            session,
            actor=actor,
            scopes=["gate:decide"],
            site_id=ap.site_id,
            access_point_ids=[ap.id],
            all_access_points=False,
            name=f"kiosk {ap.name}",
            expires_at=expires_at,
            kiosk_access_point_id=ap.id,
        )

    return run(
        session,
        work,
        actor=actor,
        operation="api_key_create",
        subject=None,
        purpose=PURPOSE_SECURITY,
    )


def lookup_api_key(
    session: Session, secret: str, *, touch_interval_s: int = 60, now: datetime | None = None
) -> ApiKey | None:
    """The active, unexpired key with this secret, or None (the caller answers 401).

    Records ``last_used_at``, at most once per ``touch_interval_s`` per key, so a gate
    deciding many times a second costs no write per request."""
    row = session.execute(
        select(ApiKey).where(ApiKey.key_hash == sha256_hex(secret))
    ).scalar_one_or_none()
    now = now or utcnow()
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None
    if row.last_used_at is None or row.last_used_at <= now - timedelta(seconds=touch_interval_s):
        row.last_used_at = now
        session.commit()
    return row


def revoke_api_key(session: Session, *, actor: str, key_id: str) -> ApiKey:
    def work() -> ApiKey:
        row = session.get(ApiKey, key_id)
        if row is None:
            raise NotFound(f"no API key {key_id!r}", zh="找不到这个 API 密钥")
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
