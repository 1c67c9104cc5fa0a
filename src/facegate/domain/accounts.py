"""Operator accounts and browser sessions of the web console.

No default password exists. The first admin is created either on the machine
(``facegate admin create``) or on ``/console/setup`` with the one-time code that
``facegate serve`` printed on its own console while no account existed: reaching the page
first is not enough (CAC-FR-14, issue 13 item 6). Passwords are hashed with argon2id. Failed
sign-ins are throttled per user name and per client address with growing delays, answered
alike for known and unknown names (issue 13 item 7). Operators and auditors belong to sites
and see only those (item 8). Session tokens are random and stored only as SHA-256, each with
its own anti-forgery (CSRF) token.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from facegate import audit
from facegate.config import Settings
from facegate.domain.common import PURPOSE_SECURITY, run, utcnow
from facegate.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    LoginThrottled,
    NotFound,
    SetupCodeInvalid,
    Unauthorized,
)
from facegate.store.models import AccessPoint, Person, RightsRequest, Site, new_id
from facegate.store.web_models import (
    OPERATOR_ROLES,
    KnownDevice,
    LoginThrottle,
    OperatorAccount,
    OperatorSite,
    SetupCode,
    WebSession,
)

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
        raise InvalidInput(
            f"role must be one of {', '.join(OPERATOR_ROLES)}",
            zh="角色须为管理员、前台或审计（只读）之一",
        )
    if not (3 <= len(username) <= 64) or not username.replace("_", "").replace(".", "").isalnum():
        raise InvalidInput(
            "a user name is 3 to 64 letters, digits, '.' or '_'",
            zh="用户名须为 3 到 64 个字母、数字、“.”或“_”。",
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"the password must have at least {MIN_PASSWORD_LENGTH} characters",
            zh=f"密码至少 {MIN_PASSWORD_LENGTH} 个字符。",
        )
    if password.lower() in {username.lower(), "password", "admin12345", "1234567890"}:
        raise InvalidInput(
            "this password is too easy to guess; choose another",
            zh="这个密码太容易被猜到，请换一个。",
        )
    taken = session.execute(
        select(OperatorAccount.id).where(OperatorAccount.username == username)
    ).first()
    if taken:
        raise Conflict("this user name is taken", zh="这个用户名已被使用。")


def _site_ids_for(session: Session, role: str, site_ids: Iterable[str] | None) -> list[str]:
    """The sites a new operator or auditor works for: those named, or the only site."""
    if role == "admin":
        return []  # an admin sees every site
    wanted = list(dict.fromkeys(s for s in (site_ids or ()) if s))
    if not wanted:
        all_sites = list(session.execute(select(Site.id).limit(2)).scalars())
        if len(all_sites) != 1:
            raise InvalidInput(
                "choose the site or sites this account works for", zh="请选择这个账号负责的场所。"
            )
        return all_sites
    known = set(session.execute(select(Site.id).where(Site.id.in_(wanted))).scalars())
    missing = [s for s in wanted if s not in known]
    if missing:
        raise NotFound(f"no site {missing[0]!r}", zh="找不到所选的场所")
    return wanted


def _add_account(
    session: Session,
    *,
    actor: str,
    username: str,
    password: str,
    role: str,
    site_ids: Iterable[str] | None = None,
) -> OperatorAccount:
    _check_new_account(session, username, password, role)
    sites = _site_ids_for(session, role, site_ids)
    account = OperatorAccount(
        id=new_id("op"), username=username, password_hash=_ph.hash(password), role=role
    )
    session.add(account)
    session.flush()
    for site_id in sites:
        session.add(OperatorSite(operator_id=account.id, site_id=site_id))
    session.flush()
    audit.append(
        session,
        actor=actor,
        operation="operator_create",
        purpose=PURPOSE_SECURITY,
        outcome="ok",
        details={"operator_id": account.id, "role": role, "sites": sites},
    )
    return account


# --- first run: the one-time setup code -------------------------------------------------------

_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread


def _normalise_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def issue_setup_code(
    session: Session, settings: Settings, *, actor: str, now: datetime | None = None
) -> str | None:
    """While no account exists: a new one-time code for ``/console/setup`` (80 random bits,
    stored only as SHA-256, valid once for ``web_setup_code_minutes``). None once an account
    exists. Shown only on the machine: the console of ``facegate serve`` or the CLI."""
    if has_operators(session):
        return None
    now = now or utcnow()
    code = "-".join("".join(secrets.choice(_CODE_ALPHABET) for _ in range(4)) for _ in range(4))
    row = SetupCode(
        id=new_id("setup"),
        code_hash=_token_hash(_normalise_code(code)),
        created_at=now,
        expires_at=now + timedelta(minutes=settings.web_setup_code_minutes),
    )
    session.add(row)
    session.flush()
    audit.append(
        session,
        actor=actor,
        operation="setup_code_issue",
        purpose=PURPOSE_SECURITY,
        outcome="ok",
        details={"setup_code_id": row.id, "expires_at": row.expires_at.isoformat()},
    )
    session.commit()
    return code


def create_first_admin(
    session: Session, *, username: str, password: str, setup_code: str
) -> OperatorAccount:
    """The first-run flow: create the first admin with the one-time setup code printed on the
    machine; refused once any account exists, or with a wrong, used or expired code."""

    def work() -> OperatorAccount:
        if has_operators(session):
            raise Conflict(
                "the first administrator already exists; sign in instead",
                zh="第一个管理员已经创建，请直接登录",
            )
        now = utcnow()
        row = session.execute(
            select(SetupCode)
            .where(SetupCode.code_hash == _token_hash(_normalise_code(setup_code)))
            .with_for_update()
        ).scalar_one_or_none()
        if row is None or row.used_at is not None or row.expires_at <= now:
            raise SetupCodeInvalid(
                "the setup code is wrong, already used or expired: enter the code that "
                "`facegate serve` printed on its console when it started (or run "
                "`facegate admin setup-code` for a new one, or `facegate admin create`)",
                zh="设置码错误、已使用或已过期：请输入 `facegate serve` 启动时"
                "在控制台上显示的设置码（或运行 `facegate admin setup-code` 获取新的设置码，"
                "或运行 `facegate admin create`）",
            )
        account = _add_account(
            session,
            actor=f"first-run:{username}",
            username=username,
            password=password,
            role="admin",
        )
        # Valid once: this code and every other outstanding one are spent.
        session.execute(update(SetupCode).where(SetupCode.used_at.is_(None)).values(used_at=now))
        return account

    return run(
        session,
        work,
        actor="first-run",
        operation="operator_create",
        subject=None,
        purpose=PURPOSE_SECURITY,
    )


def create_operator(
    session: Session,
    *,
    actor: str,
    username: str,
    password: str,
    role: str,
    site_ids: Iterable[str] | None = None,
) -> OperatorAccount:
    """An admin (or ``facegate admin create`` on the machine) adds a console account: admin,
    operator = front desk, auditor = read-only. Operators and auditors work for the sites
    named (the only site when there is one)."""

    def work() -> OperatorAccount:
        return _add_account(
            session,
            actor=actor,
            username=username,
            password=password,
            role=role,
            site_ids=site_ids,
        )

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


def operator_site_map(session: Session) -> dict[str, list[str]]:
    """Operator id -> the site ids it works for (admins: none listed, they see all)."""
    out: dict[str, list[str]] = {}
    for op_id, site_id in session.execute(select(OperatorSite.operator_id, OperatorSite.site_id)):
        out.setdefault(op_id, []).append(site_id)
    return out


# --- sign-in: growing delays per user name and per address -------------------------------------


def _throttle_key(kind: str, value: str) -> str:
    return f"{kind}:{hashlib.sha256(value.encode()).hexdigest()}"


def _throttle_rows(
    session: Session, keys: list[str], now: datetime, forget: timedelta
) -> list[LoginThrottle]:
    rows = []
    for key in keys:
        row = session.get(LoginThrottle, key, with_for_update=True)
        if row is not None and row.last_failure_at + forget <= now:
            row.failures, row.blocked_until = 0, None  # quiet for long enough: start afresh
        rows.append(row)
    return rows


def authenticate(
    session: Session,
    settings: Settings,
    *,
    username: str,
    password: str,
    client: str = "",
    device_token: str | None = None,
    now: datetime | None = None,
) -> OperatorAccount:
    """Check a sign-in.

    Wrong name or password: ``Unauthorized``, the same message for a name that does not exist
    (whose password is checked against a dummy hash, so it costs the same work). Failures are
    counted per user name (known or not) and per client address; past the free failures each
    one makes the next attempt wait a growing delay, capped (``LoginThrottled``, 429, again the
    same for every name). Attempts during a delay are answered at once, not checked and not
    counted, so a delay never grows into a lock an attacker holds at will; and a browser the
    operator signed in from before (``device_token``, see ``remember_device``) skips the
    per-name delay altogether, so failures others send under that name cannot keep its owner
    out. Every failure and every delay started is in the audit log (CAC-FR-14)."""
    now = now or utcnow()
    forget = timedelta(minutes=settings.web_login_forget_minutes)
    name_key = _throttle_key("name", username)
    addr_key = _throttle_key("addr", client or "unknown")
    # Old counts go as new ones come, so guessed names do not pile up.
    # (Not the gates' counts of wrong pass codes, ``code:<access point>``: those end on their
    # own schedule, issue 16 item 10.)
    session.execute(
        delete(LoginThrottle).where(
            LoginThrottle.last_failure_at < now - forget, ~LoginThrottle.key.startswith("code:")
        )
    )
    rows = _throttle_rows(session, [name_key, addr_key], now, forget)
    known = _known_device(session, device_token, username, now)
    waits = [
        math.ceil((r.blocked_until - now).total_seconds())
        for key, r in zip((name_key, addr_key), rows, strict=True)
        if r is not None
        and r.blocked_until is not None
        and r.blocked_until > now
        and not (known and key == name_key)
    ]
    if waits:
        session.commit()
        raise LoginThrottled(max(waits))

    account = session.execute(
        select(OperatorAccount).where(OperatorAccount.username == username)
    ).scalar_one_or_none()
    ok = False
    if account is None or account.disabled_at is not None:
        with contextlib.suppress(VerificationError, InvalidHashError):
            _ph.verify(_DUMMY_HASH, password)
        account = None
    else:
        try:
            ok = _ph.verify(account.password_hash, password)
        except (VerificationError, InvalidHashError):
            ok = False

    if ok and account is not None:
        # A success clears the name's count; the address keeps its count (a guesser that
        # knows one password must not reset its budget for guessing others).
        if rows[0] is not None:
            session.delete(rows[0])
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
            details={"operator_id": account.id, "known_device": known},
        )
        session.commit()
        return account

    limits = {
        name_key: (
            "name",
            settings.web_login_max_failures,
            settings.web_login_account_max_delay_s,
        ),
        addr_key: (
            "address",
            settings.web_login_address_free_failures,
            settings.web_login_address_max_delay_s,
        ),
    }
    operator_id = account.id if account is not None else None
    if account is not None:
        account.failed_attempts += 1
    audit.append(
        session,
        actor="web-login",
        operation="operator_login",
        purpose=PURPOSE_SECURITY,
        outcome="failed",
        details={"operator_id": operator_id, "client": client},
    )
    for key, row in zip((name_key, addr_key), rows, strict=True):
        if row is None:
            row = LoginThrottle(key=key, failures=0, last_failure_at=now)
            session.add(row)
        row.failures += 1
        row.last_failure_at = now
        scope, free, cap = limits[key]
        over = row.failures - free
        if over >= 0:
            delay = min(cap, settings.web_login_base_delay_s * 2 ** min(over, 30))
            row.blocked_until = now + timedelta(seconds=delay)
            audit.append(
                session,
                actor="web-login",
                operation="operator_login_throttled",
                purpose=PURPOSE_SECURITY,
                outcome="throttled",
                details={
                    "scope": scope,
                    "failures": row.failures,
                    "delay_s": delay,
                    # Which account, when the name is one; never the typed name itself.
                    "operator_id": operator_id if scope == "name" else None,
                    "client": client,
                },
            )
    try:
        session.commit()
    except IntegrityError:
        # Another failure for the same new name or address was counted at the same instant;
        # this one is not counted, and the answer is the same.
        session.rollback()
    raise Unauthorized("wrong user name or password", zh="用户名或密码错误")


def _known_device(session: Session, token: str | None, username: str, now: datetime) -> bool:
    """True when ``token`` is a live known-device token of the account named ``username``."""
    if not token or len(token) > 200:
        return False
    row = session.get(KnownDevice, _token_hash(token))
    if row is None or row.expires_at <= now:
        return False
    account = session.get(OperatorAccount, row.operator_id)
    return account is not None and account.username == username


def remember_device(
    session: Session, settings: Settings, *, operator_id: str, token: str | None = None
) -> str:
    """After a successful sign-in: the token for this browser's known-device cookie (a new
    one, or ``token`` renewed when it is already this operator's)."""
    now = utcnow()
    session.execute(delete(KnownDevice).where(KnownDevice.expires_at <= now))
    expires = now + timedelta(days=settings.web_known_device_days)
    row = session.get(KnownDevice, _token_hash(token)) if token and len(token) <= 200 else None
    if row is not None and row.operator_id == operator_id:
        row.expires_at = expires
        session.commit()
        return str(token)
    token = secrets.token_urlsafe(32)
    session.add(
        KnownDevice(
            token_hash=_token_hash(token),
            operator_id=operator_id,
            created_at=now,
            expires_at=expires,
        )
    )
    session.commit()
    return token


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
        raise Unauthorized(
            "this account no longer exists; sign in again", zh="此账户已不存在，请重新登录"
        )
    return account


def require_role(account: OperatorAccount, *roles: str) -> None:
    """Auditors read; operators run the front desk; admins configure (roles are a rule)."""
    if account.role not in roles:
        raise Forbidden(
            f"your role ({account.role}) may not do this", zh="您的账户角色无权执行此操作"
        )


# --- sites an account may see (issue 13 item 8) ----------------------------------------------


def visible_sites(session: Session, account: OperatorAccount) -> frozenset[str] | None:
    """The site ids an account works for; None for an admin, who sees every site."""
    if account.role == "admin":
        return None
    return frozenset(
        session.execute(
            select(OperatorSite.site_id).where(OperatorSite.operator_id == account.id)
        ).scalars()
    )


def check_site_visible(sites: frozenset[str] | None, site_id: str | None) -> None:
    """Refuse a site the account does not work for, as if it did not exist (least privilege,
    CAC-FR-14: an operator of one compound sees nothing of another)."""
    if sites is not None and site_id not in sites:
        raise NotFound(
            "no such site among the sites you work for", zh="在您负责的场所中找不到这个场所"
        )


def visible_person(session: Session, sites: frozenset[str] | None, person_id: str) -> Person:
    """The person, when they belong to a site the account works for; else ``NotFound`` (the
    same answer as for a person who does not exist)."""
    person = session.get(Person, person_id)
    if person is None or (sites is not None and person.site_id not in sites):
        raise NotFound(
            f"no person {person_id!r} at the sites you work for", zh="在您负责的场所中找不到此人"
        )
    return person


def visible_rights_request(
    session: Session, sites: frozenset[str] | None, request_id: str
) -> RightsRequest:
    """A rights request of a person of the account's sites; else ``NotFound``."""
    req = session.get(RightsRequest, request_id)
    if req is None:
        raise NotFound(f"no rights request {request_id!r}", zh="找不到这项个人信息权利请求")
    if sites is not None:
        person = session.get(Person, req.person_id)
        if person is None or person.site_id not in sites:
            raise NotFound(f"no rights request {request_id!r}", zh="找不到这项个人信息权利请求")
    return req


def visible_access_point(session: Session, sites: frozenset[str] | None, ap_id: str) -> AccessPoint:
    """An access point of the account's sites; else ``NotFound``."""
    ap = session.get(AccessPoint, ap_id)
    if ap is None or (sites is not None and ap.site_id not in sites):
        raise NotFound(f"no access point {ap_id!r}", zh="找不到这个出入口")
    return ap
