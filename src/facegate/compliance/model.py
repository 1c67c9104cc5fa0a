"""The deployment description every compliance check runs over.

It is deliberately independent of facegate's database: the same model is built from
facegate's own live state (``facegate.compliance.live``) or read from a YAML inventory a
property manager, hotel or consultant writes for cameras that are not facegate at all.
A fact the description does not give is ``None`` (unknown): the check that needs it reports
"cannot be assessed: state <field>" (a warning naming the field), never a pass. No field has
a default that states a fact nobody gave; only facegate's own live deployment
(``facegate.compliance.live``) knows its facts, and states them all.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from facegate.compliance.purpose import USE_VOCABULARY


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
NonBiometricMethod = Literal["card", "pin", "qr", "staffed", "key", "id_card", "mobile"]
NON_BIOMETRIC_METHODS: frozenset[str] = frozenset(NonBiometricMethod.__args__)  # type: ignore[attr-defined]

_USE_DOC = "; ".join(f"{k}: {en}" for k, (en, _zh) in USE_VOCABULARY.items())
# A use of face data, from a closed vocabulary (an unknown word is an error naming the allowed
# ones). The schema carries each word's meaning (enumDescriptions, read by editors).
Use = Annotated[
    Literal[tuple(USE_VOCABULARY)],  # type: ignore[valid-type]
    WithJsonSchema(
        {
            "type": "string",
            "enum": list(USE_VOCABULARY),
            "enumDescriptions": [f"{en} / {zh}" for en, zh in USE_VOCABULARY.values()],
            "description": f"A use of face data. {_USE_DOC}.",
        }
    ),
]
# How long images are kept: a number and a unit, or "indefinite".
PERIOD_PATTERN = (
    r"^(0|[1-9][0-9]{0,4}) (hour|hours|day|days|week|weeks|month|months|year|years)$"
    r"|^indefinite$"
)
_UNIT_DAYS = {"hour": 1 / 24, "day": 1, "week": 7, "month": 30, "year": 365}


def period_days(period: str) -> float:
    """Days in a period of PERIOD_PATTERN (``inf`` for "indefinite")."""
    if period == "indefinite":
        return float("inf")
    n, unit = period.split()
    return int(n) * _UNIT_DAYS[unit.rstrip("s")]


# City-level rules apply only where the site is: rule id -> city key (CITIES).
CITY_RULES: dict[str, str] = {"HZ-PM": "hangzhou", "TJ-16": "tianjin", "NJ-2020": "nanjing"}
# city key -> (administrative-division code prefix, city names, province names, municipality)
_HZ = frozenset({"杭州", "杭州市", "hangzhou"})
_ZJ = frozenset({"浙江", "浙江省", "zhejiang"})
_TJ = frozenset({"天津", "天津市", "tianjin"})
_NJ = frozenset({"南京", "南京市", "nanjing"})
_JS = frozenset({"江苏", "江苏省", "jiangsu"})
CITIES: dict[str, tuple[str, frozenset[str], frozenset[str], bool]] = {
    "hangzhou": ("3301", _HZ, _ZJ, False),
    "tianjin": ("12", _TJ, _TJ, True),
    "nanjing": ("3201", _NJ, _JS, False),
}
CITY_NAMES: dict[str, tuple[str, str]] = {
    "hangzhou": ("杭州", "Hangzhou"),
    "tianjin": ("天津", "Tianjin"),
    "nanjing": ("南京", "Nanjing"),
}


def _norm_place(value: str) -> str:
    v = value.strip().lower()
    for suffix in (" city", " municipality", " province", " shi", " sheng"):
        v = v.removesuffix(suffix)
    return v


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
    text: str = Field(
        default="",
        description="The words on the sign, verbatim; read for statements that face is "
        "required (CAC-FR-12).",
    )


class AccessPoint(StrictModel):
    id: str
    name: str = ""
    kind: AccessPointKind
    location_type: LocationType
    accepted_methods: list[Method] = Field(
        default_factory=list,
        description="Every method used at this point, face included, and the credential shown "
        "for a 1:1 check.",
    )
    alternatives: list[NonBiometricMethod] | None = Field(
        default=None,
        description="The ways in WITHOUT face, for a person who declines it (CAC-FR-10). When "
        "absent, the non-biometric accepted_methods count, except at a 1:1 point whose "
        "credential_for_1to1 is unknown: there a listed card may be the credential the face is "
        "compared against, not a way in.",
    )
    credential_for_1to1: Method | None = Field(
        default=None,
        description="At a 1:1 point, what the person shows to say who they are before the face "
        "is compared (e.g. the ID card read at a hotel desk). It is part of the face check, "
        "never an alternative to it.",
    )
    face_enabled: bool | None = Field(
        default=None,
        description="Whether face recognition is on here; when absent, on if accepted_methods "
        "lists face.",
    )
    mode: Literal["1:1", "1:N"] | None = None
    # cooperative: a person presents their face at the terminal; passive: a camera scans
    # everyone in view (CAC-FR-13a, CAC-DRAFT23-2).
    capture: Literal["cooperative", "passive"] | None = None
    uses: list[Use] | None = Field(
        default=None, description="Uses at this point; when absent, the deployment's uses."
    )
    signage: Signage | None = None
    practice: str = Field(
        default="",
        description="What staff or the operator actually do or say here, in their words "
        "(e.g. 'guards send residents without a face enrolment back'); read for coercion.",
    )
    face_presented_as_required: bool | None = Field(
        default=None,
        description="Whether people are told or made to believe face is required here "
        "(CAC-FR-12, HZ-PM).",
    )
    liveness: Literal["passive", "challenge", "off"] | None = Field(
        default=None,
        description="The presentation-attack (liveness) check here; off is a CAC-FR-14 finding.",
    )

    @property
    def face_on(self) -> bool:
        if self.face_enabled is not None:
            return self.face_enabled
        return "face" in self.accepted_methods

    def ways_without_face(self) -> list[str] | None:
        """The non-biometric ways in; None when the inventory does not say (CAC-FR-10)."""
        if self.alternatives is not None:
            return list(self.alternatives)
        others = [m for m in self.accepted_methods if m in NON_BIOMETRIC_METHODS]
        if not others or not self.face_on or self.mode == "1:N":
            return others
        if self.mode == "1:1" and self.credential_for_1to1 is not None:
            return [m for m in others if m != self.credential_for_1to1]
        return None  # 1:1 (or unknown mode) and unknown credential: a card may be the claim

    @property
    def face_only(self) -> bool | None:
        """Face is on and no non-biometric method opens this point (CAC-FR-10); None unknown."""
        if not self.face_on:
            return False
        ways = self.ways_without_face()
        return None if ways is None else not ways


class Site(StrictModel):
    id: str
    name: str = ""
    kind: SiteKind | None = Field(
        default=None, description="The kind of site; when absent, rules that depend on it "
        "(SPC-10, HZ-PM, HOTEL-CHECKIN) cannot be assessed."
    )  # fmt: skip
    address: str = ""
    province: str | None = Field(default=None, description="Province, e.g. 浙江省 or Zhejiang.")
    city: str | None = Field(default=None, description="City, e.g. 杭州市 or Hangzhou.")
    division_code: str | None = Field(
        default=None,
        pattern=r"^[1-8][0-9]{5}$",
        description="Administrative-division code (行政区划代码, 6 digits, e.g. 330106). City "
        "rules apply only in their city: HZ-PM in Hangzhou, TJ-16 in Tianjin, NJ-2020 in "
        "Nanjing.",
    )
    access_points: list[AccessPoint] = Field(default_factory=list)

    def in_city(self, city: str) -> bool | None:
        """Whether the site is in ``city`` (a CITIES key); None when its location is unknown."""
        prefix, names, provinces, municipality = CITIES[city]
        if self.division_code:
            return self.division_code.startswith(prefix)
        province = _norm_place(self.province) if self.province else None
        if self.city:
            c = _norm_place(self.city)
            if any(c == n or c.startswith(n) for n in names):
                return True
            # a district of a municipality given as the city (e.g. 滨海新区, province 天津)
            return municipality and province in provinces
        if province is not None:
            if province not in provinces:
                return False
            return True if municipality else None
        return None

    @property
    def location_known(self) -> bool:
        return bool(self.division_code or self.city or self.province)


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
    # The same fields as people read them in each language, when the source has them.
    fields_by_lang: dict[str, dict[str, str]] = Field(default_factory=dict)


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
    can_carry_biometric: bool | None = Field(
        default=None, description="Whether face images or templates can be sent there."
    )
    off_site: bool | None = None
    country: str | None = Field(default=None, description="ISO country code, e.g. CN.")
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
    purpose: Use | None = Field(default=None, description="The one declared purpose.")
    uses: list[Use] | None = Field(
        default=None, description="Every use of the face data, at the deployment level."
    )
    sites: list[Site] = Field(default_factory=list)
    notice: Notice | None = None
    pia: list[PiaRecord] = Field(default_factory=list)
    config: ConfigState = Field(default_factory=ConfigState)
    person_categories: list[str] = Field(default_factory=list)
    retention: list[RetentionRule] = Field(default_factory=list)
    store_images: bool | None = Field(
        default=None, description="Whether face images (not only templates) are kept."
    )
    image_retention: str | None = Field(
        default=None,
        pattern=PERIOD_PATTERN,
        description="How long face images are kept: e.g. '30 days', '6 months', 'indefinite'; "
        "'0 days' when each image is dropped right after matching.",
    )
    face_storage: Literal["device", "on_site", "cloud"] | None = None
    software: str = Field(
        default="",
        max_length=100,
        description="The software that matches the faces, named in the notice (N3, N6); "
        "e.g. facegate.",
    )
    outbound: list[Outbound] = Field(default_factory=list)
    counts: PersonCounts = Field(default_factory=PersonCounts)
    security: SecurityState = Field(default_factory=SecurityState)
    consent_method: ConsentMethod | None = None
    face_for_minors: bool | None = Field(
        default=None, description="Whether faces of children under 14 are processed."
    )
    minors_guardian_consent: bool | None = Field(
        default=None,
        description="Whether a parent or guardian consented for every child under 14 whose "
        "face is processed (CAC-FR-07).",
    )
    told: list[str] = Field(
        default_factory=list,
        description="What people were told besides the notice (announcements, letters, chat "
        "messages, staff scripts), verbatim; read for statements that face is required.",
    )
    practice: str = Field(
        default="",
        description="What the operator actually does, in its words; read for coercion.",
    )
    face_presented_as_required: bool | None = Field(
        default=None,
        description="Whether face is presented to people as required (CAC-FR-12, HZ-PM).",
    )
    filing: Filing = Field(default_factory=Filing)
    accessibility: Accessibility = Field(default_factory=Accessibility)
    rights: Rights = Field(default_factory=Rights)
    notice_url: str = ""
    self_service_url: str = ""
    minors_rules_url: str = ""
    necessity_statement: str = ""

    def images_kept(self) -> bool | None:
        """Whether face images are kept at all (a stated period > 0 counts); None unknown."""
        if self.image_retention is not None and period_days(self.image_retention) > 0:
            return True
        if self.store_images is not None:
            return self.store_images
        return False if self.image_retention is not None else None

    def uses_at(self, ap: AccessPoint) -> list[str] | None:
        return ap.uses if ap.uses is not None else self.uses

    def access_points(self) -> list[tuple[Site, AccessPoint]]:
        return [(s, ap) for s in self.sites for ap in s.access_points]

    def latest_pia(self) -> PiaRecord | None:
        return max(self.pia, key=lambda p: p.date, default=None)
