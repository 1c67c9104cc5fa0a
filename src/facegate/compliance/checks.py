"""Checks over a ``Deployment`` description; each yields findings named by rule id.

A check sees only the deployment model, never the database, so it audits facegate's own live
state and a YAML inventory of someone else's cameras alike. Every check is registered in
``CHECKS`` under the name the catalog's ``checks`` lists use.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from facegate.compliance.findings import Finding, make_finding, sort_findings
from facegate.compliance.model import (
    COMMON_PART_KINDS,
    NOTICE_FIELDS,
    PRIVATE_LOCATIONS,
    PUBLIC_CAPTURE_LOCATIONS,
    AccessPoint,
    Deployment,
    Site,
)
from facegate.compliance.purpose import rules_for_use
from facegate.compliance.workdays import filing_deadline
from facegate.errors import HolidayDataMissing

FILING_THRESHOLD = 100_000
DEFAULT_WARN_AT = 80_000
# Global hard cap on any retention rule (best practice from BIPA 15(a): 3 years).
RETENTION_CAP_DAYS = 3 * 365

NOTICE_FIELD_LABELS: dict[str, tuple[str, str]] = {
    "N1": ("处理者身份与联系方式", "processor identity and contact"),
    "N2": ("处理目的与比对方式", "specific purpose and matching mode"),
    "N3": ("处理方式与存储位置", "processing method and storage"),
    "N4": ("信息类别", "categories of data"),
    "N5": ("保存期限与删除条件", "retention and deletion triggers"),
    "N6": ("必要性及对个人权益的影响", "necessity and impact on rights"),
    "N7": ("自愿与替代方式", "voluntariness and alternatives"),
    "N8": ("行使权利的方式", "how to exercise rights"),
    "N9": ("未成年人", "minors"),
    "N10": ("单独同意声明", "separate-consent statement"),
    "N11": ("公共场所标识", "public-place sign"),
    "N12": ("版本、生效日期与变更通知", "version, effective date and change notice"),
    "N13": ("无障碍版本", "accessible version"),
}


@dataclass(frozen=True)
class CheckContext:
    as_of: date = field(default_factory=lambda: datetime.now(UTC).date())
    warn_at: int = DEFAULT_WARN_AT
    retention_cap_days: int = RETENTION_CAP_DAYS


CheckFn = Callable[[Deployment, CheckContext], Iterator[Finding]]
CHECKS: dict[str, CheckFn] = {}


def check(name: str) -> Callable[[CheckFn], CheckFn]:
    def register(fn: CheckFn) -> CheckFn:
        CHECKS[name] = fn
        return fn

    return register


def _t(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "?"


def ap_label(site: Site, ap: AccessPoint) -> str:
    return f"{site.id}/{ap.id}"


def notice_digest(fields: dict[str, str], text: str) -> str:
    """SHA-256 of a notice version: canonical JSON of its N1..N13 fields and its text."""
    body = json.dumps(
        {"fields": {k: fields.get(k, "") for k in NOTICE_FIELDS}, "text": text},
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


# --- CAC-FR-10, SPC-10, HZ-PM, HOTEL-CHECKIN ------------------------------------------------


@check("alternatives")
def check_alternatives(d: Deployment, ctx: CheckContext) -> Iterator[Finding]:
    """Face is never the only way in, at any access point or common part."""
    for site in d.sites:
        face_only = [ap for ap in site.access_points if ap.kind != "camera" and ap.face_only]
        for ap in face_only:
            obj = ap_label(site, ap)
            if site.kind == "hotel" and ap.kind == "front_desk":
                # HOTEL-CHECKIN: guests with valid ID are never forced to scan.
                yield make_finding("HOTEL-CHECKIN", "forced_checkin", obj)
            yield make_finding("CAC-FR-10", "face_only", obj)
            if site.kind == "residential_compound" and ap.kind in COMMON_PART_KINDS:
                yield make_finding("HZ-PM", "common_part", obj, kind=ap.kind)
        if face_only and site.kind == "residential_compound":
            points = ", ".join(ap.id for ap in face_only)
            yield make_finding("SPC-10", "site_face_only", site.id, points=points)


# --- CAC-FR-13b, NJ-2020, PIPL-26, CAC-DRAFT23-2 ------------------------------------------


@check("location")
def check_location(d: Deployment, ctx: CheckContext) -> Iterator[Finding]:
    """No face devices in private spaces, sales offices, or scanning passers-by."""
    for site, ap in d.access_points():
        if not ap.face_enabled:
            continue
        obj = ap_label(site, ap)
        if ap.location_type in PRIVATE_LOCATIONS:
            yield make_finding("CAC-FR-13b", "private_space", obj, location=ap.location_type)
        if ap.location_type == "sales_office" or site.kind == "sales_office":
            yield make_finding("NJ-2020", "sales_office", obj)
        # PIPL-26: a camera (or passive scanner) in a public place captures passers-by who
        # never opted in; a terminal people walk up to and use is cooperative.
        captures_passers_by = ap.capture == "passive" or ap.kind == "camera"
        public = ap.location_type in PUBLIC_CAPTURE_LOCATIONS or site.kind == "sales_office"
        if public and captures_passers_by:
            yield make_finding(
                "PIPL-26", "public_capture", obj, location=ap.location_type.replace("_", " ")
            )
        if ap.capture == "passive":
            yield make_finding("CAC-DRAFT23-2", "passive_capture", obj)


# --- CAC-FR-05a/b/c --------------------------------------------------------------------------


@check("notice")
def check_notice(d: Deployment, ctx: CheckContext) -> Iterator[Finding]:
    """The published notice has every field N1-N13 and is newer than the configuration."""
    n = d.notice
    if n is None:
        yield make_finding("CAC-FR-05a", "no_notice", "notice")
    else:
        obj = f"v{n.version}"
        for key in NOTICE_FIELDS:
            if not n.fields.get(key, "").strip():
                zh, en = NOTICE_FIELD_LABELS[key]
                yield make_finding(
                    "CAC-FR-05a", "missing_field", obj, field=key, label_zh=zh, label_en=en
                )
        if n.sha256_verified is False or (
            n.sha256_verified is None and n.sha256 and n.sha256 != notice_digest(n.fields, n.text)
        ):
            yield make_finding("CAC-FR-05a", "hash_mismatch", obj)
        changed = d.config.changed_at
        if changed is not None and (n.generated_at is None or n.generated_at < changed):
            yield make_finding(
                "CAC-FR-05b",
                "stale_notice",
                obj,
                generated_at=_t(n.generated_at),
                changed_at=_t(changed),
            )
    missing = [
        name
        for name, ok in (
            ("large print", d.accessibility.large_print),
            ("audio", d.accessibility.audio),
            ("staff assistance", d.accessibility.staff_assistance),
        )
        if not ok
    ]
    if missing:
        yield make_finding("CAC-FR-05c", "not_accessible", "notice", missing=", ".join(missing))


# --- CAC-FR-13a ------------------------------------------------------------------------------


@check("signage")
def check_signage(d: Deployment, ctx: CheckContext) -> Iterator[Finding]:
    """Every face-enabled access point has a sign generated for the current notice."""
    current = d.notice.version if d.notice else None
    for site, ap in d.access_points():
        if not ap.face_enabled:
            continue
        obj = ap_label(site, ap)
        if ap.signage is None or current is None:
            yield make_finding("CAC-FR-13a", "no_signage", obj)
        elif ap.signage.notice_version != current:
            yield make_finding(
                "CAC-FR-13a",
                "stale_signage",
                obj,
                sign_version=ap.signage.notice_version,
                notice_version=current,
            )


# --- CAC-FR-09a/b, CAC-FR-04 -----------------------------------------------------------------


@check("pia")
def check_pia(d: Deployment, ctx: CheckContext) -> Iterator[Finding]:
    """A signed PIA with a necessity statement, newer than any re-consent-trigger change."""
    pia = d.latest_pia()
    if pia is None:
        yield make_finding("CAC-FR-09a", "no_pia", "pia")
        return
    obj = f"v{pia.version}"
    if not pia.signer.strip():
        yield make_finding("CAC-FR-09a", "unsigned", obj)
    if not pia.necessity_statement.strip():
        yield make_finding("CAC-FR-04", "no_necessity", obj)
    trig = d.config.reconsent_trigger_changed_at
    if trig is not None and pia.date < trig.date():
        yield make_finding("CAC-FR-09b", "stale_pia", obj, pia_date=pia.date, changed_at=_t(trig))
    incident = d.security.last_major_incident_at
    if incident is not None and pia.date < incident.date():
        yield make_finding(
            "CAC-FR-09b", "incident", obj, pia_date=pia.date, incident_at=_t(incident)
        )


# --- CAC-FR-08b ------------------------------------------------------------------------------


@check("retention")
def check_retention(d: Deployment, ctx: CheckContext) -> Iterator[Finding]:
    """Every person category has a bounded retention rule and nothing is kept past it."""
    rules = {r.category: r for r in d.retention}
    for cat in d.person_categories:
        r = rules.get(cat)
        if r is None or r.max_days is None:
            yield make_finding("CAC-FR-08b", "no_rule", cat)
        elif r.max_days > ctx.retention_cap_days:
            yield make_finding(
                "CAC-FR-08b", "over_cap", cat, days=r.max_days, cap=ctx.retention_cap_days
            )
    past = d.counts.templates_past_retention
    if past:
        yield make_finding("CAC-FR-08b", "past_retention", "templates", count=past)


# --- CAC-FR-06a, CAC-FR-07, CAC-FR-12, STD-41819-03 --------------------------------------------


@check("consent")
def check_consent(d: Deployment, ctx: CheckContext) -> Iterator[Finding]:
    """Separate consent for every template; guardian consent for every minor's template."""
    if d.consent_method is not None and d.consent_method != "separate":
        yield make_finding("CAC-FR-06a", "consent_method", "consent", method=d.consent_method)
    if d.consent_method == "pre_ticked":
        yield make_finding("CAC-FR-12", "pre_ticked", "consent")
    n = d.counts.templates_without_active_consent
    if n:
        yield make_finding("CAC-FR-06a", "templates_without_consent", "templates", count=n)
    m = d.counts.minor_templates_without_guardian_consent
    if m:
        yield make_finding("CAC-FR-07", "minor_templates", "templates", count=m)
    if d.face_for_minors:
        yield make_finding("STD-41819-03", "minors_on", "face_for_minors")


# --- CAC-FR-08a, STD-41819-04, PIPL-38-40 ----------------------------------------------------


@check("data_egress")
def check_data_egress(d: Deployment, ctx: CheckContext) -> Iterator[Finding]:
    """No images kept, no face data in the cloud, abroad or on any outbound destination."""
    if d.store_images:
        yield make_finding("STD-41819-04", "images_kept", "store_images")
    if d.face_storage == "cloud":
        yield make_finding("CAC-FR-08a", "cloud_storage", "face_storage")
    for o in d.outbound:
        if not o.can_carry_biometric:
            continue
        if o.off_site:
            yield make_finding("CAC-FR-08a", "outbound", o.name, kind=o.kind)
        if d.store_images or o.off_site:
            yield make_finding("STD-41819-04", "outbound", o.name)
        if o.country.upper() not in ("CN", "PRC"):
            yield make_finding("PIPL-38-40", "abroad", o.name, country=o.country)


# Field names that are face information (or a name) if a destination receives them.
PAYLOAD_BIOMETRIC_FIELDS = frozenset(
    {"template", "embedding", "vector", "image", "frame", "photo", "face", "score", "name"}
)


@check("outbound_payload")
def check_outbound_payload(d: Deployment, ctx: CheckContext) -> Iterator[Finding]:
    """A destination off site whose declared payload names face data is reported even when
    it is described as unable to carry any (the declared fields win over the flag)."""
    for o in d.outbound:
        carried = sorted(PAYLOAD_BIOMETRIC_FIELDS.intersection(f.lower() for f in o.payload_fields))
        if o.off_site and carried and not o.can_carry_biometric:
            yield make_finding(
                "CAC-FR-08a", "payload_field", o.name, kind=o.kind, fields=", ".join(carried)
            )


# --- purpose lock: TJ-16, STD-41819-01, CAC-DRAFT23-1/2, CAC-FR-02, CAC-FR-04, PIPL-26 --------


@check("purpose_lock")
def check_purpose_lock(d: Deployment, ctx: CheckContext) -> Iterator[Finding]:
    """Access control is the only configured use, at the deployment and at every device."""
    if d.purpose != "access_control":
        yield make_finding("CAC-FR-04", "wrong_purpose", "purpose", purpose=d.purpose)
    places: list[tuple[str, list[str]]] = [("deployment", d.uses)]
    places += [(ap_label(s, ap), ap.uses) for s, ap in d.access_points()]
    for obj, uses in places:
        for use in uses:
            for rule_id in rules_for_use(use):
                yield make_finding(rule_id, "prohibited_use", obj, use=use)


# --- CAC-FR-15a/c ----------------------------------------------------------------------------


@check("filing_threshold")
def check_filing_threshold(d: Deployment, ctx: CheckContext) -> Iterator[Finding]:
    """Warn before 100,000 people; past it, the 30-working-day filing deadline."""
    count = d.counts.people_with_face_data
    filed = d.filing.filed_on
    if count is not None and count >= FILING_THRESHOLD and filed is None:
        reached = d.counts.threshold_reached_on
        if reached is None:
            yield make_finding("CAC-FR-15a", "date_unknown", "people_with_face_data", count=count)
        else:
            try:
                deadline = filing_deadline(reached)
            except HolidayDataMissing as exc:
                yield make_finding(
                    "CAC-FR-15a",
                    "deadline_unknown",
                    "people_with_face_data",
                    count=count,
                    reason=exc.message,
                )
            else:
                key = "overdue" if ctx.as_of > deadline else "due"
                yield make_finding(
                    "CAC-FR-15a",
                    key,
                    "people_with_face_data",
                    count=count,
                    reached_on=reached,
                    deadline=deadline,
                )
    elif count is not None and ctx.warn_at <= count < FILING_THRESHOLD:
        yield make_finding(
            "CAC-FR-15a", "approaching", "people_with_face_data", count=count, warn_at=ctx.warn_at
        )
    trig = d.config.reconsent_trigger_changed_at
    if filed is not None and trig is not None and trig.date() > filed:
        try:
            deadline_txt = str(filing_deadline(trig.date()))
        except HolidayDataMissing as exc:
            deadline_txt = f"? ({exc.message})"
        yield make_finding(
            "CAC-FR-15c",
            "update_due",
            "filing",
            filed_on=filed,
            changed_at=trig,
            deadline=deadline_txt,
        )


# --- CAC-FR-14 -------------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


@check("security")
def check_security(d: Deployment, ctx: CheckContext) -> Iterator[Finding]:
    """Key file 0600 outside the database, encryption, TLS, no default admin, audit chain."""
    s = d.security
    if s.key_file_mode is not None and s.key_file_mode & 0o077:
        yield make_finding("CAC-FR-14", "key_permissions", "key_file", mode=oct(s.key_file_mode))
    if s.key_outside_database is False:
        yield make_finding("CAC-FR-14", "key_in_db", "key")
    if s.templates_encrypted is False:
        yield make_finding("CAC-FR-14", "unencrypted", "templates")
    for li in s.listeners:
        if not li.tls and not _is_loopback(li.host):
            yield make_finding("CAC-FR-14", "no_tls", f"{li.host}:{li.port}")
    if s.default_admin_credentials:
        yield make_finding("CAC-FR-14", "default_credentials", "admin")
    if s.weak_admin_credentials:
        yield make_finding("CAC-FR-14", "weak_credentials", "admin")
    if s.audit_chain_intact is False:
        yield make_finding("CAC-FR-14", "audit_broken", "audit_log")


def run_checks(d: Deployment, ctx: CheckContext | None = None) -> list[Finding]:
    """Every check over ``d``, sorted blockers first."""
    ctx = ctx or CheckContext()
    found: list[Finding] = []
    for fn in CHECKS.values():
        found.extend(fn(d, ctx))
    return sort_findings(found)
