"""facegate's own deployment description, built from its live database and settings.

The database holds the organisation, sites, access points, published notices, people,
consents, templates and the audit chain. What it does not hold (site kind, registered PIAs,
signage records, listeners, outbound destinations, accessibility, URLs) lives in a small
YAML file beside it, ``<data_dir>/compliance.yaml`` (``LiveFacts``), written by
``facegate register ...`` and ``facegate docs signage`` or by hand. Nothing unknown is
guessed: an absent fact stays empty and the checks say so.

Counting rules (documented because they decide findings):
* ``templates_without_active_consent``: templates of people with no consent that is not
  withdrawn. A consent that only awaits renewal after a notice change still counts as
  present: the store already stops matching those templates until the person renews.
* ``minor_templates_without_guardian_consent``: templates of under-14s with no unwithdrawn
  consent given by a guardian.
* ``templates_past_retention``: templates of people whose relationship ended longer ago than
  their category's retention, or whose last interaction is older than the hard cap.
"""

from __future__ import annotations

import math
import os
import re
import secrets
from collections import defaultdict
from datetime import date, datetime
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic import Field, ValidationError, field_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from facegate import audit
from facegate.compliance.gate import activation_blockers, assert_can_activate
from facegate.compliance.inventory import DEFAULT_MAX_BYTES, parse_yaml, read_limited
from facegate.compliance.model import (
    NOTICE_FIELDS,
    Accessibility,
    AccessPoint,
    ConfigState,
    Deployment,
    Filing,
    Listener,
    LocationType,
    Notice,
    Operator,
    Outbound,
    PersonCounts,
    PiaRecord,
    RetentionRule,
    Rights,
    SecurityState,
    Signage,
    Site,
    SiteKind,
    StrictModel,
)
from facegate.compliance.purpose import require_allowed_use
from facegate.config import PERSON_CATEGORIES, Settings
from facegate.domain.common import (
    PURPOSE_CONFIG,
    get_site,
    is_under_14,
    record_change,
    run,
    utcnow,
)
from facegate.domain.notice import (
    RECONSENT_TRIGGERS,
    accessibility_words,
    current_notice,
    flat_notice_fields,
    notice_sha256,
    publish_site_notice,
    site_notice_fields,
)
from facegate.errors import InvalidInput, NotFound
from facegate.store import models as m

FACTS_FILE = "compliance.yaml"
# Parts of a stored notice field that may be empty without the field being incomplete.
OPTIONAL_NOTICE_PARTS = {("N1", "pipo_contact"), ("N3", "processors")}
# The store's free-text location types, mapped onto the catalog's closed list.
LOCATION_ALIASES = {
    "entrance": "building_entrance",
    "gate": "compound_entrance",
    "guest_room": "hotel_room",
    "room": "hotel_room",
    "bath": "bathroom",
    "bathhouse": "bathroom",
    "locker_room": "changing_room",
    "restroom": "toilet",
    "wc": "toilet",
}
_LOCATIONS = set(LocationType.__args__)  # type: ignore[attr-defined]
_TRIGGERS = {
    "resident": "move-out",
    "tenant": "lease end",
    "guest": "checkout",
    "staff": "end of employment",
    "visitor": "end of the visit (no template kept)",
}


class SiteLocation(StrictModel):
    """Where a site is (city rules such as HZ-PM and TJ-16 apply only there)."""

    province: str | None = None
    city: str | None = None
    division_code: str | None = Field(default=None, pattern=r"^[1-8][0-9]{5}$")


class LiveFacts(StrictModel):
    """Deployment facts the database does not hold (``<data_dir>/compliance.yaml``)."""

    # Unknown until stated: the checks that need a site's kind or place say so.
    site_kinds: dict[str, SiteKind] = Field(default_factory=dict)
    site_locations: dict[str, SiteLocation] = Field(default_factory=dict)
    vendors: list[str] = Field(default_factory=list)
    uses: list[str] = Field(default_factory=lambda: ["access_control"])
    pia: list[PiaRecord] = Field(default_factory=list)
    signage: dict[str, Signage] = Field(default_factory=dict, description="by access point id")
    listeners: list[Listener] = Field(default_factory=list)
    default_admin_credentials: bool | None = None
    weak_admin_credentials: bool | None = None
    last_major_incident_at: datetime | None = None
    outbound: list[Outbound] = Field(default_factory=list)
    accessibility: Accessibility = Field(default_factory=Accessibility)
    rights_channels: list[str] = Field(default_factory=list)
    complaint_route: str = ""
    notice_url: str = ""
    self_service_url: str = ""
    # Base of every printed link and QR code, set in the console (FACEGATE_PUBLIC_URL wins).
    public_url: str = ""
    minors_rules_url: str = ""
    necessity_statement: str = ""
    # Set by `facegate notice publish --processors/--accessibility` (free text for N3 / N13);
    # the console's accessibility boxes replace the note when saved.
    processors_note: str = ""
    accessibility_note: str = ""
    face_for_minors: bool = False
    threshold_reached_on: date | None = None
    filing: Filing = Field(default_factory=Filing)

    @field_validator("uses")
    @classmethod
    def _purpose_lock(cls, uses: list[str]) -> list[str]:
        # Purpose lock: this system refuses to be configured for anything but access control
        # (raises ProhibitedUse naming the rule); an inventory of another system only reports.
        for use in uses:
            require_allowed_use(use)
        return uses


def facts_path(settings: Settings) -> Path:
    return settings.data_dir / FACTS_FILE


def load_facts(settings: Settings) -> LiveFacts:
    path = facts_path(settings)
    if not path.exists():
        return LiveFacts()
    # Read like an inventory (size limit, no aliases, bounded nesting, one-line errors).
    data = parse_yaml(read_limited(path, DEFAULT_MAX_BYTES, "facts file"), str(path)) or {}
    try:
        return LiveFacts.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(
            f"{path} is not valid: {exc}", zh=f"保存的设置文件 {path} 内容有误，请联系管理员修复"
        ) from exc


def save_facts(settings: Settings, facts: LiveFacts) -> Path:
    """Write the facts file atomically (a crash leaves the old or the new file, never half)."""
    path = facts_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f"{path.name}.tmp-{secrets.token_hex(4)}")
    body = yaml.safe_dump(
        facts.model_dump(mode="json", exclude_defaults=True), allow_unicode=True, sort_keys=False
    )
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(body)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def record_listener(settings: Settings, host: str, port: int, *, tls: bool) -> bool:
    """Record what ``facegate serve`` listens on, for CAC-FR-14's TLS check (issue 13 item 12).

    A listener beyond loopback is always recorded (so plain HTTP chosen with
    ``--insecure-http`` is reported by ``facegate comply`` as ``no_tls``); a loopback one
    only replaces an earlier record of the same port. Returns whether the file changed.
    """
    facts = load_facts(settings)
    others = [li for li in facts.listeners if li.port != port]
    entry = Listener(host=host, port=port, tls=tls)
    loopback = host == "localhost" or _is_loopback_address(host)
    if loopback and len(others) == len(facts.listeners):
        return False
    listeners = others if loopback else [*others, entry]
    if listeners == facts.listeners:
        return False
    save_facts(settings, facts.model_copy(update={"listeners": listeners}))
    return True


def _is_loopback_address(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_location_type(value: str, what: str = "This access point") -> str:
    """The catalog's location type for a stored one (aliases mapped); unknown ones refused.

    The store and the console can call this when an access point is added, so a location the
    compliance checks cannot judge (CAC-FR-13b, NJ-2020, PIPL-26) never gets in."""
    loc = LOCATION_ALIASES.get(value, value)
    if loc not in _LOCATIONS:
        raise InvalidInput(
            f"{what} has location type {value!r}, which the compliance catalog does not know; "
            f"use one of {', '.join(sorted(_LOCATIONS))}.",
            zh=f"出入口的位置类型“{value}”无法识别，请从列表中选择",
        )
    return loc


def _location(ap: m.AccessPoint) -> str:
    return normalize_location_type(ap.location_type, f"Access point {ap.id}")


def _flatten(fields: dict[str, Any], lang: str = "en") -> dict[str, str]:
    """The store keeps each field as named parts; see ``domain.notice.flat_notice_fields``."""
    return flat_notice_fields(fields, lang)


def _notice(
    session: Session, settings: Settings, site: m.Site
) -> tuple[Notice | None, datetime | None, datetime | None]:
    """The site's current notice, when it went stale (if it did) and the last re-consent change."""
    versions = (
        session.execute(
            select(m.NoticeVersion)
            .where(m.NoticeVersion.site_id == site.id)
            .order_by(m.NoticeVersion.version)
        )
        .scalars()
        .all()
    )
    if not versions:
        return None, None, None
    cur = versions[-1]
    notice = Notice(
        version=str(cur.version),
        effective_date=cur.effective_at.date(),
        fields=_flatten(cur.fields),
        fields_by_lang={lang: _flatten(cur.fields, lang) for lang in ("zh-CN", "en")},
        text=cur.text,
        sha256=cur.sha256,
        sha256_verified=notice_sha256(cur.fields, cur.text) == cur.sha256,
        generated_at=cur.effective_at,
    )
    reconsent = max((v.effective_at for v in versions if v.requires_reconsent), default=None)
    # The parts of the notice that describe the access points (purpose, alternatives) must
    # still match them; otherwise the configuration changed after the notice (CAC-FR-05b).
    now_fields = site_notice_fields(session, settings, site)
    stale_parts = [
        ("N2", "purpose"),
        ("N7", "alternatives"),
    ]
    changed_at = None
    if any((cur.fields.get(k) or {}).get(p) != now_fields[k][p] for k, p in stale_parts):
        changed_at = (
            session.execute(
                select(func.max(m.ChangeLog.at)).where(
                    m.ChangeLog.site_id == site.id, m.ChangeLog.kind == "access_point"
                )
            ).scalar()
            or utcnow()
        )
    return notice, changed_at, reconsent


def _counts(session: Session, settings: Settings, now: datetime) -> PersonCounts:
    tpl = dict(
        session.execute(
            select(m.Template.person_id, func.count()).group_by(m.Template.person_id)
        ).all()
    )
    consents: dict[str, list[m.Consent]] = defaultdict(list)
    for c in session.execute(select(m.Consent).where(m.Consent.withdrawn_at.is_(None))).scalars():
        consents[c.person_id].append(c)
    newest_tpl = dict(
        session.execute(
            select(m.Template.person_id, func.max(m.Template.created_at)).group_by(
                m.Template.person_id
            )
        ).all()
    )
    no_consent = minors = past = 0
    for person in session.execute(select(m.Person).where(m.Person.id.in_(list(tpl)))).scalars():
        n = tpl[person.id]
        mine = [c for c in consents.get(person.id, []) if c.site_id == person.site_id]
        if not mine:
            no_consent += n
        if is_under_14(person, now.date()) and not any(c.guardian_id for c in mine):
            minors += n
        ends = person.relationship_ends_at
        if ends is not None and ends + settings.retention_for(person.category) <= now:
            past += n
            continue
        seen = [t for t in (person.last_seen_at, newest_tpl.get(person.id)) if t is not None]
        seen += [c.given_at for c in mine]
        if max(seen, default=person.created_at) + settings.retention_hard_cap <= now:
            past += n
    return PersonCounts(
        people_with_face_data=len(tpl),
        templates_without_active_consent=no_consent,
        minor_templates_without_guardian_consent=minors,
        templates_past_retention=past,
    )


def _admin_credentials(session: Session, facts: LiveFacts) -> tuple[bool | None, bool | None]:
    """CAC-FR-14 "default or weak admin credentials" from the ``operator_accounts`` table.

    No code path creates an account with a default password (the first admin is made by the
    first-run page, every later one by an admin), so a default credential cannot exist once an
    account does. Passwords are kept only as argon2id hashes, so their strength cannot be read
    back; what can be read is whether every enabled admin's hash was made by the account code,
    which enforces the minimum length and refuses guessable passwords. An admin hash of any
    other form (written by hand or by another tool) counts as weak. With no account at all the
    console is waiting for its first admin: both facts stay unknown (``None``) unless the
    facts file states them."""
    from facegate.store.web_models import OperatorAccount

    admins = session.execute(
        select(OperatorAccount.password_hash).where(
            OperatorAccount.role == "admin", OperatorAccount.disabled_at.is_(None)
        )
    ).scalars()
    hashes = list(admins)
    if not hashes:
        return facts.default_admin_credentials, facts.weak_admin_credentials
    weak = any(not h.startswith("$argon2id$") for h in hashes)
    return False, weak or bool(facts.weak_admin_credentials)


def _security(
    session: Session, settings: Settings, facts: LiveFacts, verify_audit: bool
) -> SecurityState:
    mode: int | None = None
    if not settings.site_key and not settings.site_key_hook and settings.key_file_path.exists():
        mode = settings.key_file_path.stat().st_mode & 0o777
    default_creds, weak_creds = _admin_credentials(session, facts)
    return SecurityState(
        key_file_mode=mode,
        # The site key is a file, an environment variable or a KMS hook: never in the database.
        key_outside_database=True,
        # The store has no plaintext template column: every template is AES-256-GCM ciphertext.
        templates_encrypted=True,
        listeners=facts.listeners,
        default_admin_credentials=default_creds,
        weak_admin_credentials=weak_creds,
        # Walking the chain costs ~50 us per entry; callers on a hot path may skip it.
        audit_chain_intact=audit.verify(session).ok if verify_audit else None,
        last_major_incident_at=facts.last_major_incident_at,
    )


def _on_site_host(host: str) -> bool:
    """Loopback, private and link-local addresses, and names that only resolve inside a site
    (no dot, ``.local``, ``.lan``, ``.internal``, ``.home.arpa``), count as on the site's
    network; anything else is assumed to cross the internet (the cautious reading)."""
    import ipaddress

    host = host.strip("[]").lower()
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return "." not in host or host.endswith((".local", ".lan", ".internal", ".home.arpa"))
    return ip.is_loopback or ip.is_private or ip.is_link_local


def event_destinations(settings: Settings) -> list[Outbound]:
    """Every ``Settings.events`` destination as an outbound destination (issue 15). The
    payload is the whitelist of ``facegate.domain.events``: whether it could carry face data
    is decided from that schema, so an off-site broker is reported under CAC-FR-08a only if
    the payload ever could (it cannot)."""
    from urllib.parse import urlsplit

    from facegate.domain.events import EVENT_FIELDS, payload_can_carry_biometric

    out = []
    for url in settings.events:
        parts = urlsplit(url)
        host = parts.hostname or ""
        shown = f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"
        on_site = _on_site_host(host)
        out.append(
            Outbound(
                name=f"events {shown}",
                kind="mqtt" if parts.scheme.startswith("mqtt") else "webhook",
                url=shown,  # never the password or the signing secret
                can_carry_biometric=payload_can_carry_biometric(EVENT_FIELDS),
                off_site=not on_site,
                # On the site's own network it is where the site is; elsewhere: not known.
                country="CN" if on_site else None,
                payload_fields=list(EVENT_FIELDS),
            )
        )
    return out


def deployment_from_store(
    session: Session,
    settings: Settings,
    *,
    facts: LiveFacts | None = None,
    now: datetime | None = None,
    verify_audit: bool = True,
) -> Deployment:
    """This installation as a ``Deployment``: database state plus ``compliance.yaml`` facts.

    ``verify_audit=False`` skips walking the audit chain (then CAC-FR-14's chain check is not
    made); the CLI report and the activation gate always verify it."""
    facts = facts if facts is not None else load_facts(settings)
    links = public_links(settings, facts)
    now = now or utcnow()
    org = session.execute(select(m.Organization).order_by(m.Organization.created_at)).scalar()
    db_sites = session.execute(select(m.Site).order_by(m.Site.created_at)).scalars().all()
    sites: list[Site] = []
    notice = changed_at = reconsent = None
    for s in db_sites:
        aps = (
            session.execute(
                select(m.AccessPoint)
                .where(m.AccessPoint.site_id == s.id)
                .order_by(m.AccessPoint.created_at)
            )
            .scalars()
            .all()
        )
        sites.append(
            Site(
                id=s.id,
                name=s.name,
                kind=facts.site_kinds.get(s.id),
                **(loc.model_dump() if (loc := facts.site_locations.get(s.id)) else {}),
                access_points=[
                    AccessPoint(
                        id=ap.id,
                        name=ap.name,
                        # A kiosk is a terminal a person faces: "other" in the inventory.
                        kind="other" if ap.kind == "kiosk" else ap.kind,  # type: ignore[arg-type]
                        location_type=_location(ap),  # type: ignore[arg-type]
                        accepted_methods=list(ap.methods or []),
                        face_enabled=bool(s.face_enabled and ap.face_enabled),
                        mode="1:N",  # the gate searches the people enrolled for that point
                        # A person steps up to the gate's terminal or lane camera and presents
                        # their face; nothing identifies passers-by (CAC-DRAFT23-2).
                        capture="cooperative",
                        # Purpose lock: the gate decides entry and does nothing else.
                        uses=["access_control"],
                        signage=facts.signage.get(ap.id),
                        liveness=ap.liveness or "passive",  # type: ignore[arg-type]
                    )
                    for ap in aps
                ],
            )
        )
        if notice is None:  # the model holds one notice: the first site's
            notice, changed_at, reconsent = _notice(session, settings, s)
    contact = org.contact if org else ""
    retention = [
        RetentionRule(
            category=c,
            max_days=math.ceil(settings.retention_for(c).total_seconds() / 86400),
            trigger=_TRIGGERS[c],
        )
        for c in PERSON_CATEGORIES
    ]
    counts = _counts(session, settings, now)
    counts.threshold_reached_on = facts.threshold_reached_on
    return Deployment(
        name=(org.name if org and org.name else "this facegate installation"),
        operator=Operator(
            legal_name=org.name if org else "",
            address=org.address if org else "",
            phone="" if "@" in contact else contact,
            email=contact if "@" in contact else "",
            pipo_contact=org.pipo_contact if org else "",
            vendors=facts.vendors,
        ),
        purpose="access_control",  # purpose lock (facegate.compliance.purpose)
        uses=facts.uses,
        sites=sites,
        notice=notice,
        pia=facts.pia,
        config=ConfigState(
            version=f"notice-{notice.version}" if notice else "",
            changed_at=changed_at,
            reconsent_trigger_changed_at=reconsent,
        ),
        person_categories=list(PERSON_CATEGORIES),
        retention=retention,
        store_images=False,  # frames are decoded, used and dropped; no image column exists
        image_retention="0 days",
        face_storage="on_site",
        software="facegate",
        outbound=facts.outbound + event_destinations(settings),
        counts=counts,
        security=_security(session, settings, facts, verify_audit),
        consent_method="separate",  # the store refuses enrollment without its own consent record
        face_for_minors=facts.face_for_minors,
        # Counted exactly from the store (counts.minor_templates_without_guardian_consent).
        minors_guardian_consent=counts.minor_templates_without_guardian_consent == 0,
        filing=facts.filing,
        accessibility=facts.accessibility,
        rights=Rights(
            channels=facts.rights_channels,
            response_days=settings.rights_response_days,
            complaint_route=facts.complaint_route,
        ),
        notice_url=links.notice_url,
        self_service_url=links.self_service_url,
        minors_rules_url=facts.minors_rules_url,
        necessity_statement=facts.necessity_statement,
    )


def live_deployment(settings: Settings, *, verify_audit: bool = True) -> Deployment:
    """Open the configured database and describe this installation."""
    from facegate.audit import anchor as audit_anchor

    store = audit_anchor.open_store(settings)
    try:
        with store.session() as session:
            if session.execute(select(m.Site)).first() is None:
                raise NotFound(
                    f"No site in {settings.database_url}; run `facegate init` first, or audit "
                    "a description with --inventory FILE."
                )
            return deployment_from_store(session, settings, verify_audit=verify_audit)
    finally:
        store.dispose()


def set_face(
    session: Session,
    settings: Settings,
    *,
    actor: str,
    site_id: str | None,
    access_point_id: str | None = None,
    enabled: bool,
) -> list[str]:
    """Switch face on (through the activation gate) or off at a site or one access point.

    Returns the access point ids changed. Switching on raises ``ComplianceBlocked`` listing
    every failing blocker rule; switching off is always allowed.
    """

    def work() -> list[str]:
        site = get_site(session, site_id)  # none named: the only site
        sid = site.id
        q = select(m.AccessPoint).where(m.AccessPoint.site_id == sid)
        if access_point_id is not None:
            q = q.where(m.AccessPoint.id == access_point_id)
        aps = session.execute(q).scalars().all()
        if access_point_id is not None and not aps:
            raise NotFound(
                f"no access point {access_point_id!r} at site {sid!r}",
                zh="本场所没有这个出入口",
            )
        if enabled:
            assert_can_activate(deployment_from_store(session, settings), sid, access_point_id)
            aps = [ap for ap in aps if "face" in (ap.methods or [])]
            for ap in aps:
                ap.face_enabled = True
            site.face_enabled = True
        elif access_point_id is None:
            site.face_enabled = False
        else:
            for ap in aps:
                ap.face_enabled = False
        record_change(session, sid, None, "access_point")
        audit.append(
            session,
            actor=actor,
            operation="face_on" if enabled else "face_off",
            purpose=PURPOSE_CONFIG,
            outcome="ok",
            details={"site_id": sid, "access_point_ids": [ap.id for ap in aps]},
        )
        return [ap.id for ap in aps]

    return run(
        session,
        work,
        actor=actor,
        operation="face_on" if enabled else "face_off",
        subject=None,
        purpose=PURPOSE_CONFIG,
    )


# The console page that fixes each activation blocker (issue 16 item 1: what to do next).
FIX_PAGES = {
    "CAC-FR-05a": "/console/notice",
    "CAC-FR-05b": "/console/notice",
    "CAC-FR-05c": "/console/notice",
    "CAC-FR-09a": "/console/pia",
    "CAC-FR-09b": "/console/pia",
    "CAC-FR-10": "/console/sites",
    "CAC-FR-13a": "/console/signage",
    "CAC-FR-13b": "/console/sites",
}


def next_steps(
    session: Session, settings: Settings, site_ids: frozenset[str] | None = None
) -> dict[str, list[dict[str, str]]]:
    """For each site (of ``site_ids``) where face is still off: the blockers that would stop
    switching it on, each with its fix and the console page for it, in zh-CN and en. Sites
    whose face is on, or that nothing blocks, are left out."""
    d = deployment_from_store(session, settings, verify_audit=False)
    out: dict[str, list[dict[str, str]]] = {}
    for site in d.sites:
        if site_ids is not None and site.id not in site_ids:
            continue
        if not site.access_points or any(ap.face_enabled for ap in site.access_points):
            continue
        seen: set[tuple[str, str]] = set()
        steps = []
        for f in activation_blockers(d, site.id):
            if (f.rule_id, f.object) in seen:
                continue
            seen.add((f.rule_id, f.object))
            steps.append(
                {
                    "rule_id": f.rule_id,
                    "zh-CN": f"{f.message_zh} {f.fix_zh}",
                    "en": f"{f.message_en} {f.fix}",
                    "page": FIX_PAGES.get(f.rule_id, "/console/compliance"),
                }
            )
        if steps:
            out[site.id] = steps
    return out


def register_pia(
    session: Session, settings: Settings, record: PiaRecord, *, actor: str
) -> PiaRecord:
    """Register a signed PIA (CAC-FR-09a) in the facts file and the audit chain."""
    if not record.signer.strip():
        raise InvalidInput(
            "A PIA is registered with the name of the person who signed it.",
            zh="登记影响评估（PIA）时须写明签署人姓名。",
        )
    facts = load_facts(settings)
    if any(p.version == record.version for p in facts.pia):
        raise InvalidInput(
            f"PIA version {record.version} is already registered.",
            zh=f"影响评估（PIA）第 {record.version} 版已经登记过。",
        )

    def work() -> PiaRecord:
        audit.append(
            session,
            actor=actor,
            operation="pia_register",
            purpose=PURPOSE_CONFIG,
            outcome="ok",
            details={"version": record.version, "date": record.date.isoformat()},
        )
        facts.pia.append(record)
        save_facts(settings, facts)
        return record

    return run(
        session, work, actor=actor, operation="pia_register", subject=None, purpose=PURPOSE_CONFIG
    )


def record_signage(
    settings: Settings, access_point_ids: list[str], notice_version: str, at: datetime
) -> None:
    """Record that signs for the current notice were generated for these access points."""
    facts = load_facts(settings)
    for ap_id in access_point_ids:
        facts.signage[ap_id] = Signage(notice_version=notice_version, generated_at=at)
    save_facts(settings, facts)


def accessibility_text(a: Accessibility, lang: str = "en") -> str:
    """N13 from the accessibility facts in ``lang``; empty when none is offered."""
    return accessibility_words(a.large_print, a.audio, a.staff_assistance)[lang]


def _site(session: Session, site_id: str | None) -> m.Site:
    site = (
        session.get(m.Site, site_id)
        if site_id
        else session.execute(select(m.Site).order_by(m.Site.created_at)).scalar()
    )
    if site is None:
        raise NotFound(
            "no site yet; run `facegate init` first", zh="还没有场所：请先运行 `facegate init`"
        )
    return site


# Where printed QR codes lead when no address is stated (issue 16 item 9): the notice page
# anyone can open (web/selfservice.py: /notice) and the self-service page.
NOTICE_PAGE = "/notice"
SELF_SERVICE_PAGE = "/me"


class PublicLinks(NamedTuple):
    public_url: str
    notice_url: str
    self_service_url: str


def public_links(settings: Settings, facts: LiveFacts | None = None) -> PublicLinks:
    """The addresses printed on signs and in the notice (N11, CAC-FR-13a): the ones stated,
    else derived from the public address (``FACEGATE_PUBLIC_URL``, else the one set in the
    console or with ``--public-url``): ``<public>/notice`` and ``<public>/me``. Empty when
    neither is known: nothing is guessed, and the loopback address a browser used is never
    printed."""
    facts = facts if facts is not None else load_facts(settings)
    base = (settings.public_url or facts.public_url).strip().rstrip("/")
    return PublicLinks(
        public_url=base,
        notice_url=facts.notice_url or (base + NOTICE_PAGE if base else ""),
        self_service_url=facts.self_service_url or (base + SELF_SERVICE_PAGE if base else ""),
    )


def _notice_options(facts: LiveFacts, settings: Settings) -> dict[str, Any]:
    """The notice facts ``compliance.yaml`` holds, as ``domain.site_notice_fields`` takes them."""
    note = facts.accessibility_note
    return {
        "necessity": facts.necessity_statement
        or (facts.pia[-1].necessity_statement if facts.pia else ""),
        "processors": facts.processors_note or ", ".join(facts.vendors),
        "minors_rules_link": facts.minors_rules_url,
        "notice_link": public_links(settings, facts).notice_url,
        "accessibility": note
        or {lang: accessibility_text(facts.accessibility, lang) for lang in ("zh-CN", "en")},
    }


def notice_fields_from_config(
    session: Session, settings: Settings, site: m.Site
) -> dict[str, dict[str, str]]:
    """The notice fields N1-N13 the database and ``compliance.yaml`` describe now."""
    return site_notice_fields(
        session, settings, site, **_notice_options(load_facts(settings), settings)
    )


def publish_notice_from_config(
    session: Session, settings: Settings, *, actor: str, site_id: str | None = None
) -> m.NoticeVersion:
    """Publish the site's notice from the database and ``compliance.yaml`` (a new version only
    when a field changed; a re-consent-trigger change asks everyone to consent again)."""
    # The one notice-publishing path; the preview builds its fields with the same function.
    options = _notice_options(load_facts(settings), settings)
    return publish_site_notice(session, settings, actor=actor, site_id=site_id, **options)


class NoticePreview(StrictModel):
    """What publishing the notice now would change, before anyone presses the button."""

    current_version: int | None
    changed_fields: list[str]
    requires_reconsent: bool
    active_consents: int = Field(description="consents that would need renewal if re-consent")
    awaiting_renewal: int = Field(description="consents already waiting for renewal")


def preview_notice(
    session: Session, settings: Settings, site_id: str | None = None
) -> NoticePreview:
    """Which fields a publish would change and whether it asks everyone to consent again
    (CAC-FR-05b / 06c: a change of N2-N5 or N10 suspends every consent until renewed)."""
    site = _site(session, site_id)
    fields = notice_fields_from_config(session, settings, site)
    cur = current_notice(session, site.id)
    old = cur.fields if cur is not None else {}
    changed = [k for k in NOTICE_FIELDS if k != "N12" and (old.get(k) or {}) != fields.get(k)]
    live = select(func.count(m.Consent.id)).where(
        m.Consent.site_id == site.id, m.Consent.withdrawn_at.is_(None)
    )
    return NoticePreview(
        current_version=cur.version if cur is not None else None,
        changed_fields=changed,
        requires_reconsent=cur is None or any(k in RECONSENT_TRIGGERS for k in changed),
        active_consents=session.execute(
            live.where(m.Consent.renewal_required_at.is_(None))
        ).scalar_one(),
        awaiting_renewal=session.execute(
            live.where(m.Consent.renewal_required_at.is_not(None))
        ).scalar_one(),
    )


def _checked_public_url(public_url: str | None) -> str | None:
    """``public_url`` without a trailing slash (None: unchanged); refused unless a web address."""
    if public_url is None:
        return None
    public = public_url.strip().rstrip("/")
    if public and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", public):
        raise InvalidInput(
            f"The public address {public!r} is not a web address; write it like "
            "https://gate.example.cn (issue 16 item 9).",
            zh=f"公网地址 {public!r} 不是网址，请写成 https://gate.example.cn 这样的形式。",
        )
    return public


def update_operator_facts(
    session: Session,
    settings: Settings,
    *,
    actor: str,
    name: str,
    address: str,
    contact: str,
    pipo_contact: str | None = "",
    necessity_statement: str | None = "",
    notice_url: str | None = "",
    self_service_url: str | None = "",
    minors_rules_url: str | None = "",
    accessibility: Accessibility | None = None,
    public_url: str | None = None,
) -> None:
    """Set the operator facts the notice needs (N1, N6, N9, N11, N13); publishing is separate.

    The organisation row holds who processes the data; ``compliance.yaml`` the rest. An
    optional fact given as None is left as it is (the CLI's omitted options); the console's
    form gives every fact, an empty one clears it. Empty notice and self-service addresses
    are derived from the public address (``public_links``)."""
    values = {"name": name, "address": address, "contact": contact}
    missing = [k for k, v in values.items() if not v.strip()]
    if missing:
        words_zh = {"name": "处理者名称", "address": "地址", "contact": "联系方式"}
        raise InvalidInput(
            "The notice names who processes the data (CAC-FR-05a, N1): fill in "
            + ", ".join(missing)
            + ".",
            zh="告知书须写明处理者（CAC-FR-05a，第 1 项）：请填写"
            + "、".join(words_zh[k] for k in missing)
            + "。",
        )
    public = _checked_public_url(public_url)
    facts = load_facts(settings)

    def work() -> None:
        site = _site(session, None)
        org = session.get(m.Organization, site.organization_id)
        if org is None:
            raise NotFound(
                "no organisation yet; run `facegate init` first",
                zh="还没有运营单位：请先运行 `facegate init`",
            )
        org.name, org.address, org.contact = name.strip(), address.strip(), contact.strip()
        if pipo_contact is not None:
            org.pipo_contact = pipo_contact.strip()
        if necessity_statement is not None:
            facts.necessity_statement = necessity_statement.strip()
        if notice_url is not None:
            facts.notice_url = notice_url.strip()
        if self_service_url is not None:
            facts.self_service_url = self_service_url.strip()
        if minors_rules_url is not None:
            facts.minors_rules_url = minors_rules_url.strip()
        if public is not None:
            facts.public_url = public
        if accessibility is not None:
            facts.accessibility = accessibility
            facts.accessibility_note = ""  # the boxes ticked replace a note written earlier
        audit.append(
            session,
            actor=actor,
            operation="operator_facts_update",
            purpose=PURPOSE_CONFIG,
            outcome="ok",
            details={"organization_id": org.id},
        )
        save_facts(settings, facts)

    run(
        session,
        work,
        actor=actor,
        operation="operator_facts_update",
        subject=None,
        purpose=PURPOSE_CONFIG,
    )


def publish_notice_with(
    session: Session,
    settings: Settings,
    *,
    actor: str,
    necessity: str = "",
    processors: str = "",
    accessibility: str = "",
    minors_rules_url: str = "",
    notice_url: str = "",
    public_url: str = "",
    site_id: str | None = None,
) -> m.NoticeVersion:
    """``facegate notice publish``: keep the notice facts given (an empty one stays as it was)
    in ``compliance.yaml``, then publish from them as the console does, so the CLI and the
    console publish the same notice and neither drops what the other set (CAC-FR-05a)."""
    given = {
        "necessity_statement": necessity.strip(),
        "processors_note": processors.strip(),
        "accessibility_note": accessibility.strip(),
        "minors_rules_url": minors_rules_url.strip(),
        "notice_url": notice_url.strip(),
        "public_url": _checked_public_url(public_url) or "",
    }
    changes = {k: v for k, v in given.items() if v}
    if changes:
        facts = load_facts(settings)

        def work() -> None:
            audit.append(
                session,
                actor=actor,
                operation="notice_facts_update",
                purpose=PURPOSE_CONFIG,
                outcome="ok",
                details={"facts": sorted(changes)},
            )
            save_facts(settings, facts.model_copy(update=changes))

        run(
            session,
            work,
            actor=actor,
            operation="notice_facts_update",
            subject=None,
            purpose=PURPOSE_CONFIG,
        )
    return publish_notice_from_config(session, settings, actor=actor, site_id=site_id)


def place_signage(
    session: Session,
    settings: Settings,
    *,
    actor: str,
    access_point_id: str,
    placed_on: date,
    location_note: str,
    now: datetime | None = None,
) -> Signage:
    """Record that the sign for the current notice was put up at an access point (CAC-FR-13a)."""
    if not location_note.strip():
        raise InvalidInput(
            "Say where the sign was put up (e.g. 'left of the gate, eye level').",
            zh="请写明标识张贴的位置（例如“大门左侧，与视线齐平”）。",
        )
    ap = session.get(m.AccessPoint, access_point_id)
    if ap is None:
        raise NotFound(
            f"no access point {access_point_id!r}", zh=f"没有出入口 {access_point_id!r}。"
        )
    if "face" not in (ap.methods or []):
        raise InvalidInput(
            f"Access point {ap.name!r} does not accept face; it needs no sign.",
            zh=f"出入口“{ap.name}”不使用刷脸，不需要标识。",
        )
    cur = current_notice(session, ap.site_id)
    if cur is None:
        raise NotFound(
            "no notice published yet; publish the notice first",
            zh="告知书尚未发布，请先发布告知书。",
        )
    now = now or utcnow()
    placed = datetime.combine(placed_on, datetime.min.time(), tzinfo=now.tzinfo)
    if placed_on > now.date():
        raise InvalidInput(
            "A sign is recorded once it is up: the date cannot be in the future.",
            zh="标识张贴后才能登记：日期不能晚于今天。",
        )
    sign = Signage(
        notice_version=str(cur.version),
        generated_at=now,
        placed_at=placed,
        location_note=location_note.strip(),
    )

    def work() -> Signage:
        audit.append(
            session,
            actor=actor,
            operation="signage_placed",
            purpose=PURPOSE_CONFIG,
            outcome="ok",
            details={"access_point_id": ap.id, "notice_version": sign.notice_version},
        )
        facts = load_facts(settings)
        facts.signage[ap.id] = sign
        save_facts(settings, facts)
        return sign

    return run(
        session, work, actor=actor, operation="signage_placed", subject=None, purpose=PURPOSE_CONFIG
    )


def record_threshold(settings: Settings, reached_on: date) -> None:
    """Record the date the stored count reached 100,000 people (CAC-FR-15a)."""
    facts = load_facts(settings)
    facts.threshold_reached_on = reached_on
    save_facts(settings, facts)


def record_filing(settings: Settings, filed_on: date, reference: str = "") -> None:
    """Record the CAC filing (CAC-FR-15a) or its update after a material change (15c)."""
    facts = load_facts(settings)
    facts.filing = Filing(filed_on=filed_on, reference=reference)
    save_facts(settings, facts)
