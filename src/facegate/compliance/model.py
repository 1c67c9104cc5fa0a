"""The deployment description every compliance check runs over.

It is deliberately independent of facegate's database: the same model is built from
facegate's own live state (``facegate.compliance.live``) or read from a YAML inventory a
property manager, hotel or consultant writes for cameras that are not facegate at all.
Unknown values are ``None`` (the checks that need them are skipped and say so in
``Deployment.unknowns``); a value is never guessed.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _utc(value: datetime) -> datetime:
    # A time without a zone is read as UTC, so every comparison between times is valid.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


Instant = Annotated[datetime, AfterValidator(_utc)]

NOTICE_FIELDS: tuple[str, ...] = tuple(f"N{i}" for i in range(1, 14))

AccessPointKind = Literal[
    "gate",
    "door",
    "turnstile",
    "elevator",
    "lobby",
    "parking",
    "common_facility",
    "front_desk",
    "room_door",
    "camera",
    "other",
]
LocationType = Literal[
    "compound_entrance",
    "building_entrance",
    "lobby",
    "elevator",
    "parking",
    "common_facility",
    "office",
    "front_desk",
    "classroom",
    "school_entrance",
    "sales_office",
    "public_area",
    "retail_floor",
    "corridor",
    "hotel_room",
    "bathroom",
    "shower",
    "changing_room",
    "toilet",
    "other_private",
]
# CAC-FR-13b: face devices are prohibited inside private spaces of public places.
PRIVATE_LOCATIONS: frozenset[str] = frozenset(
    {"hotel_room", "bathroom", "shower", "changing_room", "toilet", "other_private"}
)
# NJ-2020 / PIPL-26: places where passers-by, not enrolled people, stand in front of a camera.
PUBLIC_CAPTURE_LOCATIONS: frozenset[str] = frozenset(
    {"sales_office", "public_area", "retail_floor"}
)
# HZ-PM: common parts a property manager must not force biometrics on.
COMMON_PART_KINDS: frozenset[str] = frozenset(
    {"gate", "turnstile", "elevator", "lobby", "parking", "common_facility", "door"}
)

Method = Literal["face", "card", "pin", "qr", "staffed", "key", "id_card", "mobile"]
NON_BIOMETRIC_METHODS: frozenset[str] = frozenset(
    {"card", "pin", "qr", "staffed", "key", "id_card", "mobile"}
)

SiteKind = Literal[
    "residential_compound", "hotel", "office", "mall", "school", "sales_office", "other"
]
ConsentMethod = Literal["separate", "bundled", "pre_ticked", "none"]
OutboundKind = Literal["webhook", "sync", "export", "backup", "support", "mqtt", "other"]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Operator(StrictModel):
    """The processor (个人信息处理者): property-management company or hotel operator."""

    legal_name: str = ""
    address: str = ""
    phone: str = ""
    email: str = ""
    # PIPO (PIPL-52): optional below the threshold, published when appointed.
    pipo_name: str = ""
    pipo_contact: str = ""
    vendors: list[str] = Field(
        default_factory=list, description="Entrusted processors and integrators (N3)."
    )


class Signage(StrictModel):
    """A sign placed at the boundary of an access point's capture zone (CAC-FR-13a, N11)."""

    notice_version: str
    generated_at: Instant | None = None
    placed_at: Instant | None = None
    location_note: str = ""


class AccessPoint(StrictModel):
    id: str
    name: str = ""
    kind: AccessPointKind
    location_type: LocationType
    accepted_methods: list[Method] = Field(default_factory=list)
    face_enabled: bool = False
    mode: Literal["1:1", "1:N"] = "1:N"
    # cooperative: a person presents their face at the terminal; passive: a camera scans
    # everyone in view (CAC-FR-13a, CAC-DRAFT23-2).
    capture: Literal["cooperative", "passive"] = "cooperative"
    uses: list[str] = Field(default_factory=lambda: ["access_control"])
    signage: Signage | None = None

    @property
    def alternatives(self) -> list[str]:
        return [m for m in self.accepted_methods if m in NON_BIOMETRIC_METHODS]

    @property
    def face_only(self) -> bool:
        """Face is on and no non-biometric method opens this point (CAC-FR-10)."""
        return self.face_enabled and not self.alternatives


class Site(StrictModel):
    id: str
    name: str = ""
    kind: SiteKind = "residential_compound"
    address: str = ""
    access_points: list[AccessPoint] = Field(default_factory=list)


class Notice(StrictModel):
    """A published notice version: fields N1..N13 (regulations.md section 2), text and hash."""

    version: str
    effective_date: date | None = None
    fields: dict[str, str] = Field(default_factory=dict)
    text: str = ""
    sha256: str = ""
    # Set by a source that hashes notices its own way (facegate's people store): whether the
    # stored sha256 matched the stored content. None: recompute with ``notice_digest``.
    sha256_verified: bool | None = None
    generated_at: Instant | None = None


class PiaRecord(StrictModel):
    """A registered personal-information protection impact assessment (CAC-FR-09a)."""

    version: str
    date: date
    signer: str = ""
    necessity_statement: str = ""
    covers_config_version: str = ""
    document: str = ""


class RetentionRule(StrictModel):
    category: str
    max_days: int | None = Field(default=None, ge=0)
    trigger: str = ""


class Outbound(StrictModel):
    """A configured destination data leaves the system for (CAC-FR-08a, PIPL-38-40)."""

    name: str
    kind: OutboundKind
    url: str = ""
    can_carry_biometric: bool = False
    off_site: bool = True
    country: str = "CN"
    # What the destination receives, field by field (empty: not declared). facegate fills it
    # for its event destinations from the payload whitelist (issue 15).
    payload_fields: list[str] = Field(default_factory=list)


class ConfigState(StrictModel):
    version: str = ""
    changed_at: Instant | None = None
    # Last change of a re-consent trigger (CAC-FR-06c): purpose, mode, sites/doors,
    # internet sync, image retention. A PIA older than this is stale (CAC-FR-09b).
    reconsent_trigger_changed_at: Instant | None = None


class PersonCounts(StrictModel):
    """Aggregates only; no list of people ever enters the compliance engine."""

    people_with_face_data: int | None = Field(default=None, ge=0)
    templates_without_active_consent: int | None = Field(default=None, ge=0)
    minor_templates_without_guardian_consent: int | None = Field(default=None, ge=0)
    templates_past_retention: int | None = Field(default=None, ge=0)
    # Date the stored count first reached 100,000 (CAC-FR-15a); None if not reached or unknown.
    threshold_reached_on: date | None = None


class Listener(StrictModel):
    host: str
    port: int = Field(ge=0, le=65535)
    tls: bool = False


class SecurityState(StrictModel):
    key_file_mode: int | None = Field(
        default=None, description="POSIX permission bits of the key file, e.g. 384 (0o600)."
    )
    key_outside_database: bool | None = None
    templates_encrypted: bool | None = None
    listeners: list[Listener] = Field(default_factory=list)
    default_admin_credentials: bool | None = None
    weak_admin_credentials: bool | None = None
    audit_chain_intact: bool | None = None
    last_major_incident_at: Instant | None = None


class Filing(StrictModel):
    """The CAC filing at >= 100,000 persons (CAC-FR-15a/c)."""

    filed_on: date | None = None
    reference: str = ""


class Accessibility(StrictModel):
    """N13: accessible notice and consent path (CAC-FR-05c)."""

    large_print: bool = False
    audio: bool = False
    staff_assistance: bool = False


class Rights(StrictModel):
    """N8: how people exercise their rights."""

    channels: list[str] = Field(default_factory=list)
    response_days: int | None = Field(default=None, ge=0)
    complaint_route: str = ""


class Deployment(StrictModel):
    """Everything the compliance checks look at, for one processor."""

    schema_version: Literal[1] = 1
    name: str = ""
    operator: Operator = Field(default_factory=Operator)
    purpose: str = "access_control"
    uses: list[str] = Field(default_factory=lambda: ["access_control"])
    sites: list[Site] = Field(default_factory=list)
    notice: Notice | None = None
    pia: list[PiaRecord] = Field(default_factory=list)
    config: ConfigState = Field(default_factory=ConfigState)
    person_categories: list[str] = Field(default_factory=list)
    retention: list[RetentionRule] = Field(default_factory=list)
    store_images: bool = False
    face_storage: Literal["device", "on_site", "cloud"] | None = None
    outbound: list[Outbound] = Field(default_factory=list)
    counts: PersonCounts = Field(default_factory=PersonCounts)
    security: SecurityState = Field(default_factory=SecurityState)
    consent_method: ConsentMethod | None = None
    face_for_minors: bool = False
    filing: Filing = Field(default_factory=Filing)
    accessibility: Accessibility = Field(default_factory=Accessibility)
    rights: Rights = Field(default_factory=Rights)
    notice_url: str = ""
    self_service_url: str = ""
    minors_rules_url: str = ""
    necessity_statement: str = ""

    def access_points(self) -> list[tuple[Site, AccessPoint]]:
        return [(s, ap) for s in self.sites for ap in s.access_points]

    def latest_pia(self) -> PiaRecord | None:
        return max(self.pia, key=lambda p: p.date, default=None)
