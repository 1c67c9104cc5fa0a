"""Tables of the web console and self-service (issue 8): operator accounts, browser sessions
and one-time invitations. (A person's "no" to face is the store's ``persons.face_declined_at``.)

Kept in their own module so the people store's models stay as they are; ``facegate.store``
imports it, so the tables are always part of ``Base.metadata`` (migration ``0003``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from facegate.store.models import Base, UTCDateTime, utcnow

OPERATOR_ROLES = ("admin", "operator", "auditor")


class OperatorAccount(Base):
    """A console user. The password is stored only as an argon2 hash; no default exists."""

    __tablename__ = "operator_accounts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))  # admin / operator / auditor
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WebSession(Base):
    """A browser session (operator or self-service person); only the token's SHA-256 is kept."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # operator / person
    subject_id: Mapped[str] = mapped_column(String(40), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Invitation(Base):
    """A one-time self-service link for one person; the token is stored hashed, with expiry."""

    __tablename__ = "invitations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # For a child under 14 the link goes to a guardian, who decides for them (CAC-FR-07).
    guardian_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class OperatorSite(Base):
    """The sites an operator or auditor account works for (issue 13 item 8). Admins see every
    site and need no row here; an operator or auditor with no row sees no one (least
    privilege, CAC-FR-14)."""

    __tablename__ = "operator_sites"

    operator_id: Mapped[str] = mapped_column(
        ForeignKey("operator_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), primary_key=True)


class SetupCode(Base):
    """A one-time code printed by ``facegate serve`` on its own console while no account
    exists; whoever creates the first admin on the web must enter it (issue 13 item 6).
    Only its SHA-256 is kept; it is valid once, for a short time."""

    __tablename__ = "setup_codes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class LoginThrottle(Base):
    """Failed sign-ins counted per client address and per user name (known or not), each
    with a growing delay before the next attempt is checked (issue 13 item 7). The key is a
    SHA-256, so no typed user name (or password typed into the wrong field) is stored.

    The gates count wrong QR pass short codes per access point in the same table, keyed
    ``code:<access point id>`` (issue 16 item 10, ``facegate.access.decide._check_code``)."""

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class KnownDevice(Base):
    """A browser an operator signed in from before: a random token in a long-lived cookie,
    only its SHA-256 kept. Sign-ins from it skip the per-name delay, so failures that others
    send under that name cannot keep the operator out (issue 13 item 7; OWASP "device
    cookies"). The per-address delay still applies."""

    __tablename__ = "known_devices"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    operator_id: Mapped[str] = mapped_column(
        ForeignKey("operator_accounts.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
