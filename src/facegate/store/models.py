"""SQLAlchemy 2 models of the people store.

Layout follows STD-35273-6.3: names and contact details (``person_identities``) live apart
from templates (``templates``), which reference only the pseudonymous person id and hold
nothing but AES-256-GCM ciphertext. Each person's data key (``person_keys``) is wrapped by a
site key kept outside the database (CAC-FR-14), so the database alone reveals no template.

Schema changes go through Alembic (``facegate/store/migrations``); a test checks that the
migrated schema equals these models.
"""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

CATEGORIES = ("resident", "tenant", "guest", "staff", "visitor")
# A kiosk: an access point used through /kiosk, where a person faces a screen (issue 14).
ACCESS_POINT_KINDS = ("gate", "door", "elevator", "lobby", "kiosk")
METHODS = ("face", "card", "pin", "qr", "staffed")
NON_BIOMETRIC_METHODS = ("card", "pin", "qr", "staffed")
CREDENTIAL_KINDS = ("card", "pin", "qr")
RIGHTS_KINDS = ("access", "export", "correction", "erasure", "withdrawal", "explanation")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """A random opaque id; for persons this is the pseudonym used everywhere else."""
    return f"{prefix}-{secrets.token_hex(8)}"


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes stored the same way on SQLite and PostgreSQL."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# --- organisation and places -----------------------------------------------------------------


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    address: Mapped[str] = mapped_column(String(300), default="")
    contact: Mapped[str] = mapped_column(String(200), default="")
    pipo_contact: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Site(Base):
    __tablename__ = "sites"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    # Switched on only through the compliance activation gate (issue 7); off by default.
    face_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AccessPoint(Base):
    __tablename__ = "access_points"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # gate / door / elevator / lobby
    # e.g. entrance, lobby, corridor, elevator, guest_room, bathroom, sales_office, public_area
    location_type: Mapped[str] = mapped_column(String(32), default="entrance")
    methods: Mapped[list[str]] = mapped_column(JSON, default=list)  # subset of METHODS
    face_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # Presentation-attack check: passive | challenge | off (issue 14; off only with 1:1).
    liveness: Mapped[str] = mapped_column(String(16), default="passive", server_default="passive")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NoticeVersion(Base):
    """One published version of the processing rules (CAC-FR-05a/b, PIPL-17, notice §2)."""

    __tablename__ = "notice_versions"
    __table_args__ = (UniqueConstraint("site_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    language: Mapped[str] = mapped_column(String(16), default="en")
    fields: Mapped[dict[str, Any]] = mapped_column(JSON)  # N1..N13, each a dict of strings
    text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    # True when a re-consent trigger (purpose, method, categories, retention, scope) changed.
    requires_reconsent: Mapped[bool] = mapped_column(Boolean, default=True)
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100), default="")


class NoticeDraft(Base):
    """A site's notice being prepared: saved and previewed, never consented to. A notice that
    lacks a required field can only be a draft (CAC-FR-05a; issue 13 item 16)."""

    __tablename__ = "notice_drafts"

    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    language: Mapped[str] = mapped_column(String(16), default="en")
    fields: Mapped[dict[str, Any]] = mapped_column(JSON)
    text: Mapped[str] = mapped_column(Text)
    missing: Mapped[list[str]] = mapped_column(JSON, default=list)
    saved_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    saved_by: Mapped[str] = mapped_column(String(100), default="")


# --- people ----------------------------------------------------------------------------------


class Person(Base):
    """A person known only by a pseudonymous id; no name here (STD-35273-6.3)."""

    __tablename__ = "persons"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # the pseudonym
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    category: Mapped[str] = mapped_column(String(16))
    birth_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    # Set when only an age band is known (CAC-FR-07); birth_date wins when present.
    minor_under_14: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active / erased
    # End of the relationship: move-out, lease end, checkout, employment end, pass end.
    relationship_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Said no to face (or withdrew): never asked again unprompted (STD-35273-6.3), and
    # always holds a non-biometric credential (SPC-10 "objector").
    face_declined_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    identity: Mapped[PersonIdentity | None] = relationship(
        back_populates="person", cascade="all, delete-orphan", uselist=False
    )


class PersonIdentity(Base):
    """Name and contact details, kept apart from templates (STD-35273-6.3) and sealed under
    the site's field key (issue 13 item 15, PIPL-51): ``sealed`` is AES-GCM of the name,
    contact and unit; ``unit_index`` a keyed hash (HMAC) of the unit for exact look-up. Read
    and write them only through ``facegate.domain.identities``.

    ``name``, ``contact`` and ``unit`` are the plaintext columns of before: always empty for
    rows written now; rows of an older install are sealed and blanked on first start
    (``seal_plaintext_identities``)."""

    __tablename__ = "person_identities"

    person_id: Mapped[str] = mapped_column(
        ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(200), default="")
    contact: Mapped[str] = mapped_column(String(200), default="")
    unit: Mapped[str] = mapped_column(String(100), default="")
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    unit_index: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)

    person: Mapped[Person] = relationship(back_populates="identity")


class GuardianLink(Base):
    """A guardian of a child under 14 (CAC-FR-07, PIPL-31)."""

    __tablename__ = "guardian_links"
    __table_args__ = (UniqueConstraint("minor_id", "guardian_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    minor_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)
    guardian_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)
    relation: Mapped[str] = mapped_column(String(40), default="guardian")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Consent(Base):
    """A separate, explicit consent to face processing under one notice version (CAC-FR-06a)."""

    __tablename__ = "consents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    notice_version_id: Mapped[int] = mapped_column(ForeignKey("notice_versions.id"))
    notice_sha256: Mapped[str] = mapped_column(String(64))
    scope: Mapped[list[str]] = mapped_column(JSON, default=list)  # access point ids
    channel: Mapped[str] = mapped_column(String(32))  # front_desk / web / kiosk / terminal
    recorded_by: Mapped[str] = mapped_column(String(100))
    device_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # PIPL-13: separate consent is the only lawful basis this product uses for face data.
    basis: Mapped[str] = mapped_column(String(32), default="separate_consent")
    guardian_id: Mapped[str | None] = mapped_column(ForeignKey("persons.id"), nullable=True)
    guardian_relation: Mapped[str | None] = mapped_column(String(40), nullable=True)
    given_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Set when a later notice changed a re-consent trigger (CAC-FR-05b, CAC-FR-06c).
    renewal_required_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PersonKey(Base):
    """A person's data key, wrapped by a site key (envelope encryption)."""

    __tablename__ = "person_keys"

    person_id: Mapped[str] = mapped_column(
        ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True
    )
    key_id: Mapped[str] = mapped_column(String(80))  # which site key wraps it
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SiteFieldKey(Base):
    """A site's field key (seals identities, keys their blind index), stored only wrapped by
    the site key like a person's data key (issue 13 item 15, CAC-FR-14)."""

    __tablename__ = "site_field_keys"

    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(80))  # which site key wraps it
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Template(Base):
    """One encrypted face template; references only the pseudonym (STD-35273-6.3)."""

    __tablename__ = "templates"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    model_id: Mapped[str] = mapped_column(String(100))
    dim: Mapped[int] = mapped_column(Integer)
    quality: Mapped[float | None] = mapped_column(Float, nullable=True)
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Credential(Base):
    """A non-biometric way in: card, PIN (argon2 hash) or QR / visitor pass (CAC-FR-10)."""

    __tablename__ = "credentials"
    __table_args__ = (
        Index("ix_credentials_site_kind_identifier", "site_id", "kind", "identifier"),
        Index("ix_credentials_site_code_hash", "site_id", "code_hash"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    # Null for a visitor pass issued to someone who is not a registered person.
    person_id: Mapped[str | None] = mapped_column(
        ForeignKey("persons.id", ondelete="CASCADE"), nullable=True, index=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # card / pin / qr
    # Card number, or the public id of a QR pass (its secret is in secret_hash).
    identifier: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # argon2 hash of a PIN; sha256 hex of a QR pass secret.
    secret_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # A QR pass's short code to type (issue 16 item 10), as HMAC-SHA256 under a key derived
    # from the site's field key (``SiteFields.code_index``); never the code itself.
    code_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    access_point_ids: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    max_uses: Mapped[int | None] = mapped_column(Integer, nullable=True)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    issued_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ApiKey(Base):
    """A device or operator key; only the SHA-256 of its random secret is stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # also the key's prefix
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    access_point_ids: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Refreshed at most once a minute per key, so that use costs no write per request.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Optional end of validity (issue 13 item 9); None = until revoked.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Set on a key made by "Make a kiosk link": a new link for the same access point
    # revokes the previous one (issue 13 item 9).
    kiosk_access_point_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)


class AccessEvent(Base):
    """One access decision. Never a template or an image (principle 4)."""

    __tablename__ = "access_events"
    __table_args__ = (Index("ix_access_events_site_time", "site_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"))
    access_point_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    person_pseudonym: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    method: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))  # allow / deny
    reason: Mapped[str] = mapped_column(String(100), default="")
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    request_id: Mapped[str] = mapped_column(String(64), default="")
    operator: Mapped[str | None] = mapped_column(String(100), nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EventOutbox(Base):
    """An access event waiting to leave for the event destinations (issue 15).

    Written in the same transaction as its AccessEvent, so an event exists here exactly when
    the decision was recorded. ``payload`` is the exact JSON published, built by a whitelist
    (``facegate.domain.events.event_payload``): a pseudonym at most, never a name, image,
    template or score (CAC-FR-08a).
    """

    __tablename__ = "event_outbox"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    # No foreign key: delivery bookkeeping must never block anything done to access events.
    event_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), unique=True)
    site_id: Mapped[str] = mapped_column(String(40))
    access_point_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class EventDelivery(Base):
    """One outbox row acknowledged by one destination (the broker's PUBACK, a 2xx)."""

    __tablename__ = "event_deliveries"

    outbox_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("event_outbox.id", ondelete="CASCADE"),
        primary_key=True,
    )
    # A short stable digest of the destination URL (never the URL: it may hold a secret).
    destination: Mapped[str] = mapped_column(String(32), primary_key=True)
    delivered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RightsRequest(Base):
    """A rights request with its deadline and outcome (PIPL-44-48, PIPL-50)."""

    __tablename__ = "rights_requests"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # No foreign key: the record of an erasure request outlives the erased person.
    person_id: Mapped[str] = mapped_column(String(40), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(32), default="front_desk")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open/done/rejected
    outcome: Mapped[str] = mapped_column(Text, default="")
    rejection_reason: Mapped[str] = mapped_column(Text, default="")
    handled_by: Mapped[str] = mapped_column(String(100), default="")
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ChangeLog(Base):
    """Gallery changes in commit order; gates poll ``seq > last`` (and get NOTIFY on PG)."""

    __tablename__ = "change_log"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    site_id: Mapped[str] = mapped_column(String(40), index=True)
    person_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # enrolled / withdrawn / erased / consent / renewal / credential / access_point
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OfflineMerge(Base):
    """A decision a gate made while the database was away, once merged from its journal.

    The journal entry's id is the key, so merging the same journal twice adds nothing
    (issue 18); ``conflict`` says when the merge found the decision at odds with another
    gate's (e.g. a single-use QR pass used at two gates while both were offline)."""

    __tablename__ = "offline_merges"

    event_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    gate: Mapped[str] = mapped_column(String(60))
    journal_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    journal_hash: Mapped[str] = mapped_column(String(64))
    access_event_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), nullable=True
    )
    conflict: Mapped[str | None] = mapped_column(String(100), nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    merged_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LivenessChallenge(Base):
    """An issued, not yet answered liveness challenge (issue 14 item 3): kept in the database
    so that every server process behind one address can check the answer, used once (the
    row is deleted when taken) and short-lived. The nonce is kept as its SHA-256 only."""

    __tablename__ = "liveness_challenges"

    nonce_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    scope: Mapped[str] = mapped_column(String(80), index=True)  # access point or enroll:<id>
    prompt: Mapped[str] = mapped_column(String(16))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


# --- audit -----------------------------------------------------------------------------------


class AuditEntry(Base):
    """One link of the SHA-256 audit chain. No template, image or name (principle 7)."""

    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    # Stored as the exact ISO string that was hashed, so verification is byte-exact.
    at: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(100))
    operation: Mapped[str] = mapped_column(String(50), index=True)
    subject: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    purpose: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(100))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # HMAC-SHA256 of ``hash`` under a key derived from the audit key, which lives outside the
    # database (issue 13 item 17): a row written without that key has no valid seal.
    mac: Mapped[str | None] = mapped_column(String(64), nullable=True)


class AuditHead(Base):
    """The chain's head (one row): locked to serialise appends, and detects tail deletion."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    hash: Mapped[str] = mapped_column(String(64))
