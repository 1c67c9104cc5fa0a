"""Checks over a ``Deployment`` description; each yields findings named by rule id.

A check sees only the deployment model, never the database, so it audits facegate's own live
state and a YAML inventory of someone else's cameras alike. Every check is registered in
``CHECKS`` under the name the catalog's ``checks`` lists use; to add one, decorate a function
with ``@check("name")`` and add "name" to its rules' ``checks`` in catalog.yaml. ``run_checks``
stamps each finding with that name (the report's stable ``check`` key).

Unknown is not compliant: where the description does not give a fact a rule needs, the check
yields ``make_unknown`` (a warning "cannot be assessed: state <field>"), never nothing.
City rules (``CITY_RULES``: HZ-PM, TJ-16, NJ-2020) apply only where the site is.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime

from facegate.compliance.findings import Finding, make_finding, make_unknown, sort_findings
from facegate.compliance.model import (
    CITY_NAMES,
    CITY_RULES,
    COMMON_PART_KINDS,
    NOTICE_FIELDS,
    PRIVATE_LOCATIONS,
    PUBLIC_CAPTURE_LOCATIONS,
    AccessPoint,
    Deployment,
    Site,
    period_days,
)
from facegate.compliance.purpose import rules_for_use
from facegate.compliance.workdays import filing_deadline
from facegate.domain.notice import NOTICE_TITLES
from facegate.errors import HolidayDataMissing

FILING_THRESHOLD = 100_000
DEFAULT_WARN_AT = 80_000
# Global hard cap on any retention rule (best practice from BIPA 15(a): 3 years).
RETENTION_CAP_DAYS = 3 * 365


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


def ap_field(site: Site, ap: AccessPoint, name: str) -> str:
    """The inventory field of an access point, by ids: sites[ghy].access_points[gate].mode."""
    return f"sites[{site.id}].access_points[{ap.id}].{name}"


# What to state for each unknown fact: (en, zh).
SITE_KIND = ("the kind of site, e.g. residential_compound or hotel", "场所类型，如住宅小区或酒店")
SITE_PLACE = (
    "where the site is: province and city, or division_code",
    "场所所在地：省、市或行政区划代码",
)


def _site_unknown(rule_id: str, obj: str, site: Site, what: str) -> Finding:
    if what == "kind":
        return make_unknown(rule_id, obj, f"sites[{site.id}].kind", *SITE_KIND)
    return make_unknown(rule_id, obj, f"sites[{site.id}].city", *SITE_PLACE)


def city_rule(
    rule_id: str,
    sites: Iterable[Site],
    obj: str,
    raise_it: Callable[[], Finding],
    kinds: frozenset[str] | None = None,
) -> Iterator[Finding]:
    """``raise_it()`` when ``rule_id`` applies at one of ``sites``; a "cannot be assessed"
    warning when that depends on an unknown kind or place; nothing when it cannot apply.

    National rules apply everywhere; a city rule (CITY_RULES) only in its city, and only at
    sites of ``kinds`` when given (HZ-PM: residential compounds)."""
    sites = list(sites)
    city = CITY_RULES.get(rule_id)
    if city is None and kinds is None:  # a national rule: everywhere
        yield raise_it()
        return
    missing: Finding | None = None if sites else _fallback_unknown(rule_id, obj, city)
    for site in sites:
        if kinds is not None and site.kind is not None and site.kind not in kinds:
            continue
        where = True if city is None else site.in_city(city)
        if where is False:
            continue
        if kinds is not None and site.kind is None:
            missing = missing or _site_unknown(rule_id, obj, site, "kind")
        elif where is None:
            missing = missing or _site_unknown(rule_id, obj, site, "place")
        else:
            yield raise_it()
            return
    if missing is not None:
        yield missing


def _fallback_unknown(rule_id: str, obj: str, city: str | None) -> Finding | None:
    if city is None:
        return None
    zh, en = CITY_NAMES[city]
    return make_unknown(
        rule_id,
        obj,
        "sites",
        f"the sites and where they are ({en} rule)",
        f"场所及所在地（{zh}规定）",
    )


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
    residential = frozenset({"residential_compound"})
    for site in d.sites:
        face_only: list[AccessPoint] = []
        for ap in site.access_points:
            if ap.kind == "camera" or not ap.face_on:
                continue
            obj = ap_label(site, ap)
            only = ap.face_only
            if only is None:
                yield make_unknown(
                    "CAC-FR-10",
                    obj,
                    ap_field(site, ap, "alternatives"),
                    "the ways in without face; at a 1:1 point the credential shown for the "
                    "face check (credential_for_1to1) is not one",
                    "不刷脸的通行方式；1:1 比对时出示的证件（credential_for_1to1）不算替代方式",
                )
                continue
            if not only:
                continue
            face_only.append(ap)
            if ap.kind == "front_desk":
                # HOTEL-CHECKIN: guests with valid ID are never forced to scan.
                if site.kind == "hotel":
                    yield make_finding("HOTEL-CHECKIN", "forced_checkin", obj)
                elif site.kind is None:
                    yield _site_unknown("HOTEL-CHECKIN", obj, site, "kind")
            yield make_finding("CAC-FR-10", "face_only", obj)
            if ap.kind in COMMON_PART_KINDS:
                yield from city_rule(
                    "HZ-PM",
                    [site],
                    obj,
                    lambda obj=obj, kind=ap.kind: make_finding(
                        "HZ-PM", "common_part", obj, kind=kind
                    ),
                    kinds=residential,
                )
        if face_only:
            if site.kind == "residential_compound":
                points = ", ".join(ap.id for ap in face_only)
                yield make_finding("SPC-10", "site_face_only", site.id, points=points)
            elif site.kind is None:
                yield _site_unknown("SPC-10", site.id, site, "kind")


# --- CAC-FR-12, HZ-PM: face presented as required --------------------------------------------

# Statements that present face as required (zh and en). Each is anchored on words that only
# occur in such a statement; negated forms (无须刷脸, "face is not required") do not match.
COERCION_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        r"刷脸(?:后)?才(?:能|可|可以|允许)",
        r"(?<![不无非])必须(?:要|先|进行|通过|使用|采用)?(?:刷脸|人脸识别|人脸验证|录入人脸|采集人脸)",
        r"(?<![无毋不必])[须需](?:要|先)?(?:刷脸|录入人脸)(?:才|方|后方)",
        r"(?:只能|只可|仅能|仅可|仅支持|只支持|仅限|一律|统一|强制)(?:通过|使用|采用|进行)?"
        r"(?:刷脸|人脸识别|录入人脸|采集人脸)",
        r"不刷脸(?:的)?(?:就)?(?:不能|不得|无法|不予|不可|禁止|将无法|不让)",
        r"未(?:录入|登记|采集)人脸(?:信息)?(?:的)?(?:住户|业主|人员|住客)?(?:将)?"
        r"(?:不能|不得|无法|不予|不可|禁止)",
        r"(?:不再|停止)(?:支持|提供|使用|接受)?(?:门禁卡|刷卡|密码|二维码|钥匙)",
        r"\bface[- ](?:scan |recognition |id |verification |check )?"
        r"(?:is |are )?(?<!not )(?:required|mandatory|compulsory|obligatory)\b",
        r"\b(?:must|have to|has to|need to|needs to|required to)\s+(?:scan|use|present|show|"
        r"register|enrol|enroll|verify)\s+(?:(?:your|their|his|her|a)\s+)?face",
        r"(?<!no )(?<!not )\bface[- ]only\b",
        r"\bonly (?:by|with|via|through) (?:face|facial)",
        r"\bno (?:entry|access|check-in|admission) without (?:a )?(?:face|facial)",
        r"\b(?:mandatory|compulsory|forced) (?:face|facial)",
        r"\bcards? (?:are|is|will be) no longer (?:accepted|valid|supported)",
    )
)


def coercive_phrase(text: str) -> str | None:
    """The first statement in ``text`` that presents face as required, or None."""
    for pattern in COERCION_PATTERNS:
        m = pattern.search(text)
        if m:
            return m.group(0)
    return None


@check("coercion")
def check_coercion(d: Deployment, ctx: CheckContext) -> Iterator[Finding]:
    """No text or practice presents face as required: notice, signs, messages, practice."""
    residential = frozenset({"residential_compound"})

    def raise_both(obj: str, where: tuple[str, str], phrase: str, sites: list[Site]):
        fmt = {"where_zh": where[0], "where_en": where[1], "phrase": phrase}
        yield make_finding("CAC-FR-12", "coercive_text", obj, **fmt)
        yield from city_rule(
            "HZ-PM",
            sites,
            obj,
            lambda: make_finding("HZ-PM", "coercive_text", obj, **fmt),
            kinds=residential,
        )

    texts: list[tuple[str, tuple[str, str], str]] = []
    if d.notice is not None:
        body = [d.notice.text, *d.notice.fields.values()]
        texts += [(f"v{d.notice.version}", ("告知书", "the notice"), t) for t in body]
    texts += [("told", ("告知内容", "what people were told"), t) for t in d.told]
    texts.append(("practice", ("实际做法", "the stated practice"), d.practice))
    for obj, where, text in texts:
        phrase = coercive_phrase(text)
        if phrase:
            yield from raise_both(obj, where, phrase, d.sites)
            break  # one finding for the deployment-wide texts is enough to act on
    if d.face_presented_as_required:
        yield from raise_both(
            "deployment", ("陈述", "the description"), "face_presented_as_required", d.sites
        )
    for site, ap in d.access_points():
        obj = ap_label(site, ap)
        sign = ap.signage.text if ap.signage else ""
        for where, text in (
            (("标识", "the sign"), sign),
            (("实际做法", "the stated practice"), ap.practice),
        ):
            phrase = coercive_phrase(text)
            if phrase:
                yield from raise_both(obj, where, phrase, [site])
                break
        else:
            if ap.face_presented_as_required:
                yield from raise_both(
                    obj, ("陈述", "the description"), "face_presented_as_required", [site]
                )


# --- CAC-FR-13b, NJ-2020, PIPL-26, CAC-DRAFT23-2 ------------------------------------------


@check("location")
def check_location(d: Deployment, ctx: CheckContext) -> Iterator[Finding]:
    """No face devices in private spaces, sales offices, or scanning passers-by."""
    for site, ap in d.access_points():
        if not ap.face_on:
            continue
        obj = ap_label(site, ap)
        if ap.location_type in PRIVATE_LOCATIONS:
            yield make_finding("CAC-FR-13b", "private_space", obj, location=ap.location_type)
        if ap.location_type == "sales_office" or site.kind == "sales_office":
            # NJ-2020 is Nanjing's order; elsewhere PIPL-26 below still applies.
            yield from city_rule(
                "NJ-2020", [site], obj, lambda obj=obj: make_finding("NJ-2020", "sales_office", obj)
            )
        # PIPL-26: a camera (or passive scanner) in a public place captures passers-by who
        # never opted in; a terminal people walk up to and use is cooperative.
        public = ap.location_type in PUBLIC_CAPTURE_LOCATIONS or site.kind == "sales_office"
        capture = ap.capture or ("passive" if ap.kind == "camera" else None)
        if public and capture == "passive":
            yield make_finding(
                "PIPL-26", "public_capture", obj, location=ap.location_type.replace("_", " ")
            )
        if ap.capture == "passive":
            yield make_finding("CAC-DRAFT23-2", "passive_capture", obj)
        elif ap.capture is None:
            yield make_unknown(
                "CAC-DRAFT23-2",
                obj,
                ap_field(site, ap, "capture"),
                "cooperative: people present their face; passive: it scans everyone in view",
                "cooperative：本人主动刷脸；passive：扫描视野内所有人",
            )


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
                zh, en = NOTICE_TITLES[key]
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
            (("大字版", "large print"), d.accessibility.large_print),
            (("语音播报", "audio"), d.accessibility.audio),
            (("工作人员协助", "staff assistance"), d.accessibility.staff_assistance),
        )
        if not ok
    ]
    if missing:
        words = ("、".join(z for z, _ in missing), ", ".join(e for _, e in missing))
        yield make_finding("CAC-FR-05c", "not_accessible", "notice", missing=words)


# --- CAC-FR-13a ------------------------------------------------------------------------------


@check("signage")
def check_signage(d: Deployment, ctx: CheckContext) -> Iterator[Finding]:
    """Every face-enabled access point has a sign generated for the current notice."""
    from facegate.domain.links import url_problem

    current = d.notice.version if d.notice else None
    if any(ap.face_on for _, ap in d.access_points()):
        # The sign's QR codes are opened on residents' phones (issue 16 item 9).
        for url in dict.fromkeys(u for u in (d.notice_url, d.self_service_url) if u):
            why = url_problem(url)
            if why is not None:
                yield make_finding(
                    "CAC-FR-13a", "unreachable_link", url, why_zh=why[0], why_en=why[1]
                )
    for site, ap in d.access_points():
        if not ap.face_on:
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
    if d.consent_method is None:
        yield make_unknown(
            "CAC-FR-06a",
            "consent",
            "consent_method",
            "how consent is collected: separate, bundled, pre_ticked or none",
            "同意方式：separate、bundled、pre_ticked 或 none",
        )
    elif d.consent_method != "separate":
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
        # CAC-FR-07: children's faces are processed; guardian consent must be shown, and a
        # count is never invented where the description gives none.
        if d.minors_guardian_consent is False and not m:
            yield make_finding("CAC-FR-07", "no_guardian_consent", "minors")
        elif d.minors_guardian_consent is None and m is None:
            yield make_finding("CAC-FR-07", "guardian_consent_unknown", "minors")
    elif d.face_for_minors is None:
        what = ("whether faces of children under 14 are processed", "是否处理未满十四周岁者的人脸")
        yield make_unknown("STD-41819-03", "minors", "face_for_minors", *what)
        if m is None:
            yield make_unknown("CAC-FR-07", "minors", "face_for_minors", *what)


# --- CAC-FR-08a, STD-41819-04, PIPL-38-40 ----------------------------------------------------


@check("data_egress")
def check_data_egress(d: Deployment, ctx: CheckContext) -> Iterator[Finding]:
    """No images kept, no face data in the cloud, abroad or on any outbound destination."""
    kept = d.images_kept()
    if kept:
        period = d.image_retention
        if period is not None and period_days(period) == 0:
            period = None  # "0 days" and store_images: true contradict; the period is unknown
        yield make_finding(
            "STD-41819-04",
            "images_kept",
            "image_retention" if period else "store_images",
            period_en=f"kept {period}" if period else "period not stated: state image_retention",
            period_zh=f"保存期限 {period}" if period else "未说明保存期限：请填写 image_retention",
        )
    elif kept is None:
        yield make_unknown(
            "STD-41819-04",
            "store_images",
            "store_images",
            "whether face images are kept, and image_retention: for how long",
            "是否保存人脸图像，以及 image_retention：保存多久",
        )
    if d.face_storage == "cloud":
        yield make_finding("CAC-FR-08a", "cloud_storage", "face_storage")
    elif d.face_storage is None:
        yield make_unknown(
            "CAC-FR-08a",
            "face_storage",
            "face_storage",
            "where templates are stored: device, on_site or cloud",
            "模板存储位置：device、on_site 或 cloud",
        )
    for o in d.outbound:
        field_ = f"outbound[{o.name}]"
        if o.can_carry_biometric is None:
            yield make_unknown(
                "CAC-FR-08a",
                o.name,
                f"{field_}.can_carry_biometric",
                "whether face images or templates can be sent there",
                "是否可能发送人脸图像或模板",
            )
            continue
        if not o.can_carry_biometric:
            continue
        if o.off_site:
            yield make_finding("CAC-FR-08a", "outbound", o.name, kind=o.kind)
        elif o.off_site is None:
            yield make_unknown(
                "CAC-FR-08a", o.name, f"{field_}.off_site", "whether it is off site", "是否在场外"
            )
        if kept or o.off_site:
            yield make_finding("STD-41819-04", "outbound", o.name)
        if o.country is None:
            yield make_unknown(
                "PIPL-38-40", o.name, f"{field_}.country", "its country, e.g. CN", "所在国家，如 CN"
            )
        elif o.country.upper() not in ("CN", "PRC"):
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
    if d.purpose is None:
        yield make_unknown(
            "CAC-FR-04",
            "purpose",
            "purpose",
            "the one declared purpose, e.g. access_control",
            "声明的处理目的，如 access_control",
        )
    elif rules_for_use(d.purpose):
        yield make_finding("CAC-FR-04", "wrong_purpose", "purpose", purpose=d.purpose)
    places: list[tuple[str, list[str], list[Site]]] = []
    if d.uses is not None:
        places.append(("deployment", d.uses, d.sites))
    elif any(ap.uses is None and ap.face_on for _, ap in d.access_points()) or not d.sites:
        yield make_unknown(
            "CAC-FR-04",
            "uses",
            "uses",
            "every use of the face data, from the schema's vocabulary",
            "人脸数据的全部用途（取自清单格式的词表）",
        )
    places += [(ap_label(s, ap), ap.uses, [s]) for s, ap in d.access_points() if ap.uses]
    for obj, uses, sites in places:
        for use in uses:
            for rule_id in rules_for_use(use):
                yield from city_rule(
                    rule_id,
                    sites,
                    obj,
                    lambda r=rule_id, o=obj, u=use: make_finding(r, "prohibited_use", o, use=u),
                )


# --- CAC-FR-15a/c ----------------------------------------------------------------------------


@check("filing_threshold")
def check_filing_threshold(d: Deployment, ctx: CheckContext) -> Iterator[Finding]:
    """Warn before 100,000 people; past it with no filing recorded, a blocker with the
    30-working-day deadline (provisional when a year's holiday schedule is not installed)."""
    count = d.counts.people_with_face_data
    filed = d.filing.filed_on
    if count is None:
        yield make_unknown(
            "CAC-FR-15a",
            "people_with_face_data",
            "counts.people_with_face_data",
            "how many people's face data is stored",
            "存储了多少人的人脸信息",
        )
    elif count >= FILING_THRESHOLD and filed is None:
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
                key = "overdue" if ctx.as_of > deadline.day else "due"
                yield make_finding(
                    "CAC-FR-15a",
                    key,
                    "people_with_face_data",
                    count=count,
                    reached_on=reached,
                    deadline=deadline.text("en"),
                    deadline_zh=deadline.text("zh-CN"),
                )
    elif ctx.warn_at <= count < FILING_THRESHOLD:
        yield make_finding(
            "CAC-FR-15a", "approaching", "people_with_face_data", count=count, warn_at=ctx.warn_at
        )
    trig = d.config.reconsent_trigger_changed_at
    if filed is not None and trig is not None and trig.date() > filed:
        try:
            dl = filing_deadline(trig.date())
            deadline_txt, deadline_zh = dl.text("en"), dl.text("zh-CN")
        except HolidayDataMissing as exc:
            deadline_txt = deadline_zh = f"? ({exc.message})"
        yield make_finding(
            "CAC-FR-15c",
            "update_due",
            "filing",
            filed_on=filed,
            changed_at=trig,
            deadline=deadline_txt,
            deadline_zh=deadline_zh,
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
    elif s.key_outside_database is None:
        yield make_unknown(
            "CAC-FR-14",
            "key",
            "security.key_outside_database",
            "whether the encryption key is kept outside the database",
            "加密密钥是否存放在数据库之外",
        )
    if s.templates_encrypted is False:
        yield make_finding("CAC-FR-14", "unencrypted", "templates")
    elif s.templates_encrypted is None:
        yield make_unknown(
            "CAC-FR-14",
            "templates",
            "security.templates_encrypted",
            "whether face templates are encrypted at rest",
            "人脸模板是否加密存储",
        )
    for li in s.listeners:
        if not li.tls and not _is_loopback(li.host):
            yield make_finding("CAC-FR-14", "no_tls", f"{li.host}:{li.port}")
    if s.default_admin_credentials:
        yield make_finding("CAC-FR-14", "default_credentials", "admin")
    if s.weak_admin_credentials:
        yield make_finding("CAC-FR-14", "weak_credentials", "admin")
    if s.audit_chain_intact is False:
        yield make_finding("CAC-FR-14", "audit_broken", "audit_log")
    for site in d.sites:  # issue 14: a photo must not pass for an enrolled person
        for ap in site.access_points:
            if ap.face_on and ap.liveness == "off":
                yield make_finding("CAC-FR-14", "liveness_off", ap_label(site, ap))


def run_checks(d: Deployment, ctx: CheckContext | None = None) -> list[Finding]:
    """Every check over ``d``, sorted blockers first."""
    ctx = ctx or CheckContext()
    found: list[Finding] = []
    for name, fn in CHECKS.items():
        found.extend(replace(f, check=name) for f in fn(d, ctx))
    return sort_findings(found)
