"""Operator accounts and browser sessions of the web console.

No default password exists: the first admin is created by whoever opens a fresh install
(CAC-FR-14, "default or weak admin credentials absent"). Passwords are hashed with argon2id;
repeated failures lock the account for a while. Session tokens are random and stored only as
SHA-256, each with its own anti-forgery (CSRF) token.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from facegate import audit
from facegate.config import Settings
from facegate.domain.common import PURPOSE_SECURITY, run, utcnow
from facegate.errors import AccountLocked, Conflict, Forbidden, InvalidInput, Unauthorized
from facegate.store.models import new_id
from facegate.store.web_models import OPERATOR_ROLES, OperatorAccount, WebSession

_ph = PasswordHasher()
# Verified against when the username is unknown, so a wrong name costs as long as a wrong
# password and does not reveal which accounts exist.
_DUMMY_HASH = _ph.hash(secrets.token_hex(16))
MIN_PASSWORD_LENGTH = 10


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def has_operators(session: Session) -> bool:
    return bool(session.execute(select(func.count(OperatorAccount.id))).scalar_one())


def _check_new_account(session: Session, username: str, password: str, role: str) -> None:
    if role not in OPERATOR_ROLES:
        raise InvalidInput(f"role must be one of {', '.join(OPERATOR_ROLES)}")
    if not (3 <= len(username) <= 64) or not username.replace("_", "").replace(".", "").isalnum():
        raise InvalidInput("a user name is 3 to 64 letters, digits, '.' or '_'")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if password.lower() in {username.lower(), "password", "admin12345", "1234567890"}:
        raise InvalidInput("this password is too easy to guess; choose another")
    taken = session.execute(
        select(OperatorAccount.id).where(OperatorAccount.username == username)
    ).first()
    if taken:
        raise Conflict("this user name is taken")


def _add_account(
    session: Session, *, actor: str, username: str, password: str, role: str
) -> OperatorAccount:
    _check_new_account(session, username, password, role)
    account = OperatorAccount(
        id=new_id("op"), username=username, password_hash=_ph.hash(password), role=role
    )
    session.add(account)
    session.flush()
    audit.append(
        session,
        actor=actor,
        operation="operator_create",
        purpose=PURPOSE_SECURITY,
        outcome="ok",
        details={"operator_id": account.id, "role": role},
    )
    return account


def create_first_admin(session: Session, *, username: str, password: str) -> OperatorAccount:
    """The first-run flow: create the first admin; refused once any account exists."""

    def work() -> OperatorAccount:
        if has_operators(session):
            raise Conflict("the first administrator already exists; sign in instead")
        return _add_account(
            session,
            actor=f"first-run:{username}",
            username=username,
            password=password,
            role="admin",
        )

    return run(
        session,
        work,
        actor="first-run",
        operation="operator_create",
        subject=None,
        purpose=PURPOSE_SECURITY,
    )


def create_operator(
    session: Session, *, actor: str, username: str, password: str, role: str
) -> OperatorAccount:
    """An admin adds a console account (admin, operator = front desk, auditor = read-only)."""

    def work() -> OperatorAccount:
        return _add_account(session, actor=actor, username=username, password=password, role=role)

    return run(
        session,
        work,
        actor=actor,
        operation="operator_create",
        subject=None,
        purpose=PURPOSE_SECURITY,
    )


def list_operators(session: Session) -> list[OperatorAccount]:
    return list(
        session.execute(select(OperatorAccount).order_by(OperatorAccount.created_at)).scalars()
    )


def authenticate(
    session: Session, settings: Settings, *, username: str, password: str
) -> OperatorAccount:
    """Check a login. Wrong credentials: ``Unauthorized``; too many failures: ``AccountLocked``
    for ``web_lockout_minutes`` (each attempt while locked is refused without checking)."""
    now = utcnow()
    account = session.execute(
        select(OperatorAccount).where(OperatorAccount.username == username).with_for_update()
    ).scalar_one_or_none()
    if account is None or account.disabled_at is not None:
        with contextlib.suppress(VerificationError, InvalidHashError):
            _ph.verify(_DUMMY_HASH, password)
        session.rollback()
        raise Unauthorized("wrong user name or password")
    if account.locked_until is not None and account.locked_until > now:
        session.rollback()
        raise AccountLocked(
            "too many failed sign-ins: this account is locked until "
            f"{account.locked_until:%H:%M} UTC; an admin can also unlock it"
        )
    try:
        ok = _ph.verify(account.password_hash, password)
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok:
        account.failed_attempts += 1
        locked = account.failed_attempts >= settings.web_login_max_failures
        if locked:
            account.locked_until = now + timedelta(minutes=settings.web_lockout_minutes)
            account.failed_attempts = 0
        audit.append(
            session,
            actor=account.username,
            operation="operator_login",
            purpose=PURPOSE_SECURITY,
            outcome="locked" if locked else "failed",
            details={"operator_id": account.id},
        )
        session.commit()
        if locked:
            raise AccountLocked(
                f"too many failed sign-ins: this account is locked for "
                f"{settings.web_lockout_minutes} minutes"
            )
        raise Unauthorized("wrong user name or password")
    account.failed_attempts = 0
    account.locked_until = None
    account.last_login_at = now
    if _ph.check_needs_rehash(account.password_hash):
        account.password_hash = _ph.hash(password)
    audit.append(
        session,
        actor=account.username,
        operation="operator_login",
        purpose=PURPOSE_SECURITY,
        outcome="ok",
        details={"operator_id": account.id},
    )
    session.commit()
    return account


@dataclass(frozen=True)
class OpenedSession:
    token: str  # goes in the cookie, never stored
    csrf_token: str


def open_session(
    session: Session, *, kind: str, subject_id: str, lifetime: timedelta
) -> OpenedSession:
    """A new browser session for an operator or (self-service) a person."""
    if kind not in ("operator", "person"):
        raise InvalidInput("session kind must be operator or person")
    now = utcnow()
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    # Expired sessions are cleaned up as new ones open.
    session.execute(delete(WebSession).where(WebSession.expires_at < now))
    session.add(
        WebSession(
            token_hash=_token_hash(token),
            kind=kind,
            subject_id=subject_id,
            csrf_token=csrf,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    session.commit()
    return OpenedSession(token, csrf)


def lookup_session(session: Session, token: str | None, kind: str) -> WebSession | None:
    """The live session of this kind for a cookie token, or None."""
    if not token:
        return None
    row = session.get(WebSession, _token_hash(token))
    if row is None or row.kind != kind or row.expires_at <= utcnow():
        return None
    return row


def close_session(session: Session, token: str | None) -> None:
    if token:
        session.execute(delete(WebSession).where(WebSession.token_hash == _token_hash(token)))
        session.commit()


def operator_for(session: Session, web_session: WebSession) -> OperatorAccount:
    account = session.get(OperatorAccount, web_session.subject_id)
    if account is None or account.disabled_at is not None:
        raise Unauthorized("this account no longer exists; sign in again")
    return account


def require_role(account: OperatorAccount, *roles: str) -> None:
    """Auditors read; operators run the front desk; admins configure (roles are a rule)."""
    if account.role not in roles:
        raise Forbidden(f"your role ({account.role}) may not do this")
