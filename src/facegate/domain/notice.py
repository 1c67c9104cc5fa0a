"""Notice versions: the N1..N13 fields of regulations.md §2, rendered text and hash.

``build_notice_fields`` is the one place that turns configuration into notice fields; the
compliance engine may call or replace it. A value the system does not know is left as ``""``
for the compliance checks to flag (CAC-FR-05a); nothing is filled with a placeholder.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from facegate import audit
from facegate.config import PERSON_CATEGORIES, Settings
from facegate.domain.common import PURPOSE_CONFIG, get_site, record_change, run, utcnow
from facegate.errors import ConsentNotInformed, InvalidInput, NoticeIncomplete
from facegate.store.models import (
    NON_BIOMETRIC_METHODS,
    AccessPoint,
    Consent,
    NoticeDraft,
    NoticeVersion,
    Organization,
    Site,
)

if TYPE_CHECKING:
    from facegate.compliance.model import Deployment

NOTICE_FIELDS = tuple(f"N{i}" for i in range(1, 14))
# A change in any of these asks every enrolled person to consent again (CAC-FR-05b, 06c).
RECONSENT_TRIGGERS = ("N2", "N3", "N4", "N5", "N10")
# The stored notice holds its Chinese text under this key, beside the English parts N1..N13
# (the canonical wording, compared for re-consent); both are hashed into the version's sha256.
ZH = "zh-CN"
LANGS = (ZH, "en")

# Field titles (zh-CN, en): the one table the CLI, the console, /me and the documents use.
NOTICE_TITLES = {
    "N1": ("处理者及联系方式", "Who processes your data"),
    "N2": ("目的和识别方式", "Purpose and how matching works"),
    "N3": ("处理方式", "How it is processed"),
    "N4": ("处理的信息", "What data"),
    "N5": ("保存期限与删除", "How long it is kept"),
    "N6": ("必要性及对您的影响", "Why it is needed and its impact on you"),
    "N7": ("自愿；其他方式", "It is voluntary; the alternatives"),
    "N8": ("您的权利", "Your rights"),
    "N9": ("不满 14 周岁的儿童", "Children under 14"),
    "N10": ("单独同意", "Separate consent"),
    "N11": ("现场标识", "Signs at the entrance"),
    "N12": ("版本与变更", "Version and changes"),
    "N13": ("无障碍版本", "Accessible version"),
}
# Parts of a field a notice may leave empty: the PI protection officer where none is appointed
# and the entrusted processors where there are none (regulations.md section 2, N1 and N3).
# Every other part of N1..N13 is required (CAC-FR-05a).
OPTIONAL_NOTICE_PARTS = frozenset({("N1", "pipo_contact"), ("N3", "processors")})


def missing_notice_fields(fields: Mapping[str, Any]) -> dict[str, list[str]]:
    """Each required field N1..N13 that is absent or has an empty required part, with the
    empty parts (an empty list: the whole field is missing). N12's version and date are
    filled in at publication and never count as missing."""
    out: dict[str, list[str]] = {}
    for key in NOTICE_FIELDS:
        value = fields.get(key)
        if isinstance(value, str):
            if not value.strip():
                out[key] = []
            continue
        if not value:
            out[key] = []
            continue
        empty = [
            part
            for part, v in value.items()
            if not str(v or "").strip()
            and (key, part) not in OPTIONAL_NOTICE_PARTS
            and not (key == "N12" and part in ("version", "effective_date"))
        ]
        if empty:
            out[key] = empty
    return out


def _lower_first(label: str) -> str:
    """A part label inside a sentence: "Why it is needed" -> "why it is needed"; an acronym
    stays as it is ("QR code address", never "qR code address")."""
    return label if label[1:2].isupper() else label[:1].lower() + label[1:]


def describe_missing(missing: Mapping[str, list[str]]) -> tuple[str, str]:
    """The missing fields as a sentence in zh-CN and in en, with the notice's own titles and
    part labels (``NOTICE_TITLES``, ``PART_LABELS``)."""
    zh, en = [], []
    for key, parts in missing.items():
        words = [PART_LABELS.get(p, (p.replace("_", " "), p.replace("_", " "))) for p in parts]
        title_zh, title_en = NOTICE_TITLES[key]
        zh.append(f"{key} {title_zh}" + (f"（{'、'.join(w[0] for w in words)}）" if words else ""))
        en.append(
            f"{key} {title_en}"
            + (f" ({', '.join(_lower_first(w[1]) for w in words)})" if words else "")
        )
    return "；".join(zh), "; ".join(en)


def require_complete_notice(fields: Mapping[str, Any]) -> None:
    """Refuse to publish a notice with a missing required field (CAC-FR-05a): it stays a
    draft that can be saved and previewed (``save_notice_draft``)."""
    missing = missing_notice_fields(fields)
    if missing:
        zh, en = describe_missing(missing)
        raise NoticeIncomplete(
            f"The notice cannot be published: it lacks {en}. It can be saved as a draft and "
            f"previewed; fill these in, then publish. / 告知书缺少必填项，只能保存为草稿并预览，"
            f"不能发布：{zh}。请补全后再发布。",
            missing=sorted(missing),
        )


def require_informed(notice: NoticeVersion | None) -> None:
    """Consent (and so enrollment) only against a complete notice (CAC-FR-05a, CAC-FR-06a)."""
    if notice is None:
        raise ConsentNotInformed(
            "There is no published notice to consent to yet: publish a complete notice first. "
            "/ 尚未发布告知书，无法取得知情同意：请先发布完整的告知书。"
        )
    missing = missing_notice_fields(notice.fields or {})
    if missing:
        zh, en = describe_missing(missing)
        raise ConsentNotInformed(
            f"Consent cannot be recorded against notice v{notice.version}: it lacks {en}, so "
            f"the consent would not be informed. Publish a complete notice first. / "
            f"告知书第{notice.version}版缺少必填项（{zh}），据此作出的同意不是知情同意，"
            f"不能记录。请先发布完整的告知书。",
            missing=sorted(missing),
        )


# Labels of the named parts of each field (zh-CN, en): people read these, never the part ids.
PART_LABELS = {
    "operator_name": ("处理者", "Operator"),
    "address": ("地址", "Address"),
    "contact": ("联系方式", "Contact"),
    "pipo_contact": ("个人信息保护负责人", "Personal-information protection officer"),
    "purpose": ("目的", "Purpose"),
    "matching_mode": ("比对方式", "Matching"),
    "capture": ("采集", "Capture"),
    "storage": ("存储", "Storage"),
    "access": ("谁可以处理", "Who can handle it"),
    "processors": ("受托处理方", "Entrusted processors"),
    "categories": ("信息种类", "Kinds of data"),
    "images_kept": ("保存的图像", "Images kept"),
    "retention": ("保存期限", "Retention"),
    "deletion_triggers": ("何时删除", "When it is deleted"),
    "necessity": ("必要性", "Why it is needed"),
    "impact": ("对您的影响", "Impact on you"),
    "voluntary": ("自愿", "Voluntary"),
    "alternatives": ("其他通行方式", "Other ways in"),
    "rights": ("您的权利", "Your rights"),
    "channels": ("办理渠道", "Where to ask"),
    "response_time": ("答复时限", "Time to answer"),
    "complaint": ("投诉", "Complaints"),
    "minors": ("未成年人", "Children"),
    "minors_rules": ("未成年人专门规则", "Rules for children"),
    "separate_consent": ("单独同意", "Separate consent"),
    "optional_features": ("其他功能", "Optional features"),
    "sign_text": ("标识文字", "Sign text"),
    "operator": ("运营方", "Operator"),
    "qr_target": ("二维码地址", "QR code address"),
    "version": ("版本", "Version"),
    "effective_date": ("生效日期", "Effective date"),
    "change_notice": ("变更", "Changes"),
    "accessible_version": ("无障碍版本", "Accessible version"),
}
# Words for stored values (zh-CN, en), shared by the notice, signs and the other documents.
METHOD_WORDS = {
    "card": ("门禁卡", "card"),
    "pin": ("密码", "PIN"),
    "qr": ("二维码通行证", "QR pass"),
    "staffed": ("前台或保安人工核验", "staffed desk or guard"),
    "key": ("钥匙", "key"),
    "id_card": ("身份证件核验", "ID-document check"),
    "mobile": ("手机开门", "mobile app"),
}
KIND_WORDS = {
    "gate": ("大门", "gate"),
    "door": ("门", "door"),
    "entrance": ("出入口", "entrance"),
    "turnstile": ("闸机", "turnstile"),
    "elevator": ("电梯", "elevator"),
    "lobby": ("大堂", "lobby"),
    "parking": ("停车场", "parking"),
    "room_door": ("房门", "room door"),
    "front_desk": ("前台", "front desk"),
    "common_facility": ("公共设施", "shared facility"),
    "camera": ("摄像头", "camera"),
    "other": ("出入口", "entrance"),
}
SIGN_HEADLINE = {ZH: "人脸识别区域", "en": "Facial recognition in use"}
_CATEGORY_WORDS = {
    "resident": ("住户", "residents"),
    "tenant": ("租户", "tenants"),
    "guest": ("住客", "guests"),
    "staff": ("员工", "staff"),
    "visitor": ("访客", "visitors"),
    "student": ("学生", "students"),
    "customer": ("顾客", "customers"),
}
_END_WORDS = {
    "guest": ("退房", "the end of the stay"),
    "visitor": ("来访结束", "the end of the visit"),
}
# Deletion triggers as inventories state them (either language), in both languages.
_TRIGGER_WORDS = {
    w: pair
    for pair in (
        ("搬离", "move-out"),
        ("租约结束", "lease end"),
        ("退房", "checkout"),
        ("离职", "end of employment"),
        ("毕业", "graduation"),
        ("来访结束（不保存模板）", "end of the visit (no template kept)"),
    )
    for w in pair
}
# Wording fixed since a version was published (same meaning): not a reason to ask again.
_LEGACY_WORDING = ((re.compile(r"\b1 days\b"), "1 day"), (re.compile(r"\b1 hours\b"), "1 hour"))


def _pick(lang: str, zh: str, en: str) -> str:
    return zh if lang == ZH else en


# A fact the operator states once for both languages, or in each: {"zh-CN": ..., "en": ...}.
Wording = str | Mapping[str, str]


def _in(value: Wording, lang: str) -> str:
    if isinstance(value, str):
        return value
    return str(value.get(lang) or value.get("en") or "")


def _hours_text(hours: int, lang: str = "en") -> str:
    if hours == 0:
        return _pick(lang, "不保存人脸模板", "no face template is kept")
    if hours % 24 == 0:
        days = hours // 24
        return _pick(lang, f"{days} 天", f"{days} day" if days == 1 else f"{days} days")
    return _pick(lang, f"{hours} 小时", "1 hour" if hours == 1 else f"{hours} hours")


@dataclass(frozen=True)
class Retention:
    """How long one category's face data is kept: ``hours`` after ``after`` (zh, en)."""

    category: str
    hours: int
    after: tuple[str, str] | None = None


@dataclass(frozen=True)
class NoticeFacts:
    """What a notice states, from a facegate site (``build_notice_fields(settings, ...)``) or
    from any deployment description (``build_notice_fields(deployment)``). ``None`` or ``""``
    means the configuration does not say: the parts built from it stay empty, for the
    compliance checks to flag (CAC-FR-05a); nothing is filled in with a plausible value."""

    operator_name: str = ""
    operator_address: str = ""
    operator_contact: str = ""
    pipo_contact: str = ""
    site_names: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()  # of the access points that use face
    purpose_stated: bool = True  # access control is the declared purpose (purpose lock)
    modes: tuple[str, ...] | None = ("1:N", "1:1")
    storage: str | None = "on_site"  # device, on_site, cloud
    server: str = "facegate"  # the name of the on-site server's software, if known
    images_kept: bool | None = False
    sent_off_site: bool | None = False
    processors: str = ""
    retention: tuple[Retention, ...] | None = ()
    retention_cap_days: int | None = None
    necessity: str = ""
    alternatives: tuple[str, ...] | None = ()
    rights_channels: Wording | None = None  # None: the front desk and the self-service page
    response_days: int | None = None
    complaint: Wording = ""  # "": the CAC reporting centre (12377)
    minors_face_with_guardian: bool | None = True
    minors_rules_link: str = ""
    separate_consent: bool | None = True
    extra_consents: tuple[str, ...] = ()
    notice_link: str = ""
    accessibility: Wording = ""
    version: str = ""
    effective_date: str = ""


def accessibility_words(large_print: bool, audio: bool, staff_assistance: bool) -> dict[str, str]:
    """N13 from the accessibility facts, in each language; empty when none is offered."""
    offered = [
        words
        for ok, words in (
            (large_print, ("大字版告知书", "large-print notice")),
            (audio, ("语音播报", "audio read-out")),
            (staff_assistance, ("前台工作人员协助登记或撤回", _STAFF_HELP)),
        )
        if ok
    ]
    return {
        ZH: "；".join(zh for zh, _ in offered),
        "en": "; ".join(en for _, en in offered),
    }


_STAFF_HELP = "staff help to enroll or withdraw at the front desk"


def build_notice_fields(
    source: Settings | Deployment,
    *,
    operator_name: str = "",
    operator_address: str = "",
    operator_contact: str = "",
    pipo_contact: str = "",
    site_name: str = "",
    access_points: Sequence[AccessPoint] = (),
    necessity: str = "",
    processors: str = "",
    minors_rules_link: str = "",
    notice_link: str = "",
    accessibility: Wording = "",
    overrides: Mapping[str, Mapping[str, str]] | None = None,
    version: str = "",
    effective_date: date | None = None,
) -> dict[str, Any]:
    """The one notice builder: fields N1..N13, each a dict of named parts ("" = not known),
    in English (the canonical wording re-consent is judged on), and the same fields in
    Chinese under ``fields["zh-CN"]`` so a resident can read the whole notice in Chinese
    (CAC-FR-05a). Operator-typed values (names, address, necessity) appear as typed.

    ``source`` is this installation's settings (with the site's facts as keywords) or a
    compliance ``Deployment`` (an inventory, or ``compliance.live.deployment_from_store``):
    ``facegate comply --inventory`` documents and drafts come from here too."""
    if isinstance(source, Settings):
        facts = _settings_facts(
            source,
            operator_name=operator_name,
            operator_address=operator_address,
            operator_contact=operator_contact,
            pipo_contact=pipo_contact,
            site_name=site_name,
            access_points=access_points,
            necessity=necessity,
            processors=processors,
            minors_rules_link=minors_rules_link,
            notice_link=notice_link,
            accessibility=accessibility,
        )
    else:
        facts = deployment_notice_facts(source)
    facts = replace(
        facts,
        version=version,
        effective_date=effective_date.isoformat() if effective_date else "",
    )
    en = _fields_in(facts, "en")
    zh = _fields_in(facts, ZH)
    for key, parts in (overrides or {}).items():
        if key not in en:
            raise ValueError(f"unknown notice field {key!r}")
        en[key] = {**en[key], **{k: str(v) for k, v in parts.items()}}
        zh[key] = {**zh[key], **{k: str(v) for k, v in parts.items()}}
    return {**en, ZH: zh}


def _settings_facts(
    settings: Settings,
    *,
    operator_name: str,
    operator_address: str,
    operator_contact: str,
    pipo_contact: str,
    site_name: str,
    access_points: Sequence[AccessPoint],
    necessity: str,
    processors: str,
    minors_rules_link: str,
    notice_link: str,
    accessibility: Wording,
) -> NoticeFacts:
    """This installation: what facegate itself does, and the site's stated facts."""
    face_points = [ap for ap in access_points if "face" in (ap.methods or [])]
    return NoticeFacts(
        operator_name=operator_name,
        operator_address=operator_address,
        operator_contact=operator_contact,
        pipo_contact=pipo_contact,
        site_names=(site_name,) if site_name else (),
        kinds=tuple(sorted({ap.kind for ap in face_points})),
        processors=processors,
        retention=tuple(
            Retention(
                c,
                getattr(settings, f"retention_{c}_hours"),
                _END_WORDS.get(c, ("关系结束", "the end of the relationship")),
            )
            for c in PERSON_CATEGORIES
        ),
        retention_cap_days=settings.retention_hard_cap_days,
        necessity=necessity,
        alternatives=tuple(
            sorted(
                {m for ap in face_points for m in (ap.methods or []) if m in NON_BIOMETRIC_METHODS}
            )
        ),
        response_days=settings.rights_response_days,
        minors_rules_link=minors_rules_link,
        notice_link=notice_link,
        accessibility=accessibility,
    )


def deployment_notice_facts(d: Deployment) -> NoticeFacts:
    """What a compliance ``Deployment`` says, as notice facts; what it leaves unsaid stays
    unknown (``None``/``""``), so the notice's parts built from it are empty (CAC-FR-05a)."""
    op = d.operator
    points = [(s, ap) for s, ap in d.access_points() if ap.face_on or "face" in ap.accepted_methods]
    modes = None if any(ap.mode is None for _, ap in points) else {ap.mode for _, ap in points}
    rules = {r.category: r for r in d.retention}
    cats = d.person_categories or list(rules)
    retention: tuple[Retention, ...] | None = None
    if cats and all(c in rules and rules[c].max_days is not None for c in cats):
        retention = tuple(
            Retention(
                c,
                int(rules[c].max_days or 0) * 24,
                _TRIGGER_WORDS.get(rules[c].trigger, (rules[c].trigger, rules[c].trigger))
                if rules[c].trigger
                else None,
            )
            for c in cats
        )
    doors = [(s, ap) for s, ap in points if ap.kind != "camera"]
    ways = [ap.ways_without_face() for _, ap in doors]
    outbound_known = all(
        o.can_carry_biometric is not None and o.off_site is not None for o in d.outbound
    )
    sent = None
    if d.face_storage is not None and outbound_known:
        sent = d.face_storage == "cloud" or any(
            o.can_carry_biometric and o.off_site for o in d.outbound
        )
    pia = d.latest_pia()
    a = d.accessibility
    channels = [
        *d.rights.channels,
        *([d.self_service_url] if d.rights.channels and d.self_service_url else []),
    ]
    return NoticeFacts(
        operator_name=op.legal_name,
        operator_address=op.address,
        operator_contact=" / ".join(x for x in (op.phone, op.email) if x),
        pipo_contact=f"{op.pipo_name} {op.pipo_contact}".strip(),
        site_names=tuple(dict.fromkeys(s.name or s.id for s, _ in points)),
        kinds=tuple(dict.fromkeys(ap.kind for _, ap in points)),
        purpose_stated=d.purpose == "access_control",
        modes=None
        if not points or modes is None
        else tuple(m for m in ("1:N", "1:1") if m in modes),
        storage=d.face_storage,
        server=d.software,
        images_kept=d.images_kept(),
        sent_off_site=sent,
        processors=", ".join(op.vendors),
        retention=retention,
        necessity=d.necessity_statement or (pia.necessity_statement if pia else ""),
        alternatives=None
        if not doors or any(not w for w in ways)
        else tuple(dict.fromkeys(m for w in ways for m in w or [])),
        rights_channels={ZH: "、".join(channels), "en": ", ".join(channels)},
        response_days=d.rights.response_days,
        complaint=d.rights.complaint_route,
        minors_face_with_guardian=d.face_for_minors,
        minors_rules_link=d.minors_rules_url,
        separate_consent=None if d.consent_method is None else d.consent_method == "separate",
        extra_consents=tuple(o.name for o in d.outbound if o.can_carry_biometric and o.off_site),
        notice_link=d.notice_url,
        accessibility=accessibility_words(a.large_print, a.audio, a.staff_assistance),
    )


def _fields_in(f: NoticeFacts, lang: str) -> dict[str, dict[str, str]]:
    def t(zh: str, en: str) -> str:
        return _pick(lang, zh, en)

    i = 0 if lang == ZH else 1
    sep = "、" if lang == ZH else ", "
    purpose = ""
    if f.purpose_stated and f.site_names:
        places = sep.join(f.site_names)
        purpose = t(f"{places}出入控制", f"Entry control at {places}")
        if f.kinds:
            if lang == ZH:
                purpose += "（" + sep.join(KIND_WORDS.get(k, (k, k))[0] for k in f.kinds) + "）"
            else:  # the kind ids as before, so published English notices compare equal (N2)
                purpose += " (" + ", ".join(f.kinds) + ")"
    matching = {
        "1:N": t(
            "1:N，仅在登记了本出入口的人员中比对",
            "1:N among the people enrolled for this access point only",
        ),
        "1:1": t(
            "出示卡或通行证时为 1:1，只与该人比对", "1:1 when a card or pass names the person"
        ),
    }
    where = {
        "on_site": t(f"现场的 {f.server} 服务器上", f"the on-site {f.server} server")
        if f.server
        else t("现场服务器上", "a server on site"),
        "device": t("识别设备内", "the recognition device"),
        "cloud": t("云端服务器上", "a cloud server"),
    }
    storage = ""
    if f.storage in where and f.sent_off_site is not None:
        storage = t(f"加密存储在{where[f.storage]}", f"encrypted on {where[f.storage]}")
        storage += (
            t("；会通过网络传出现场", "; sent off site over the network")
            if f.sent_off_site
            else t("；从不通过互联网传输", "; never transmitted over the internet")
        )
    capture = ""
    if f.images_kept is not None:
        capture = t(
            "摄像头实时图像转换为人脸特征模板；"
            + ("图像会被保存" if f.images_kept else "图像不保存"),
            "a live camera image is converted to a face template; "
            + ("the image is kept" if f.images_kept else "the image is not kept"),
        )
    if f.storage == "on_site" and f.images_kept is False and f.sent_off_site is False:
        impact = t(
            f"人脸信息一旦泄露无法更改；{f.server + ' ' if f.server else '系统'}只在现场保存"
            "加密模板，不保存图像，撤回同意时即删除",
            f"a face cannot be changed if its data leaks; {f.server or 'the system'} keeps only "
            "encrypted templates on site, no images, and erases them on withdrawal",
        )
    else:
        impact = t(
            "人脸信息一旦泄露无法更改；模板在撤回同意时即删除",
            "a face cannot be changed if its data leaks; templates are erased on withdrawal",
        )
    days = f.response_days
    channels = (
        t("前台或物业办公室；自助页面", "front desk or property office; self-service page")
        if f.rights_channels is None
        else _in(f.rights_channels, lang)
    )
    if f.minors_face_with_guardian is None:
        minors = ""
    elif f.minors_face_with_guardian:
        minors = t(
            "不满 14 周岁的儿童须由父母或监护人同意；否则不对其使用人脸识别",
            "for a child under 14 a parent or guardian must consent; face "
            "recognition stays off for them otherwise",
        )
    else:
        minors = t(
            "不对不满 14 周岁的儿童使用人脸识别；他们使用门卡或二维码通行",
            "face recognition is off for children under 14; they use a card or QR code",
        )
    if f.extra_consents:
        optional = t(
            "以下功能另需单独同意：" + "、".join(f.extra_consents),
            "each of these needs its own separate consent: " + ", ".join(f.extra_consents),
        )
    elif f.sent_off_site is False:
        optional = t(
            "无：人脸信息从不通过互联网传输",
            "none: face data is never transferred over the internet",
        )
    else:
        optional = t("无", "none")
    return {
        "N1": {
            "operator_name": f.operator_name,
            "address": f.operator_address,
            "contact": f.operator_contact,
            "pipo_contact": f.pipo_contact,
        },
        "N2": {
            "purpose": purpose,
            "matching_mode": ("；" if lang == ZH else "; ").join(matching[m] for m in f.modes)
            if f.modes
            else "",
        },
        "N3": {
            "capture": capture,
            "storage": storage,
            "access": t(
                f"{f.operator_name}负责登记和权利请求的授权工作人员",
                f"staff of {f.operator_name} authorised for enrollment and rights requests",
            )
            if f.operator_name
            else "",
            "processors": f.processors,
        },
        "N4": {
            "categories": t(
                "人脸特征模板；关联身份信息（姓名、单元或房号），与模板分开存放；通行记录",
                "face template; linked identity (name, unit or room), kept apart "
                "from the template; access log",
            ),
            "images_kept": ""
            if f.images_kept is None
            else (t("保存人脸图像", "face images") if f.images_kept else t("不保存", "none")),
        },
        "N5": {
            "retention": _retention_text(f, lang),
            "deletion_triggers": t(
                "搬离、租约结束、退房、离职、撤回同意、停止使用本系统",
                "move-out, lease end, checkout, end of employment, "
                "withdrawal of consent, site shut-down",
            ),
        },
        "N6": {"necessity": f.necessity, "impact": impact},
        "N7": {
            "voluntary": t(
                "人脸识别是自愿的；拒绝或撤回同意不影响您的通行和任何服务",
                "face recognition is optional; refusing or withdrawing consent does "
                "not affect your access or any service",
            ),
            "alternatives": sep.join(METHOD_WORDS.get(m, (m, m))[i] for m in f.alternatives)
            if f.alternatives
            else "",
        },
        "N8": {
            "rights": t(
                "查阅和复制、更正、删除、撤回同意、要求解释这些规则",
                "access and copy, correction, deletion, withdrawal of consent, "
                "explanation of these rules",
            ),
            "channels": channels,
            "response_time": ""
            if days is None
            else t(f"{days} 天内", f"within {days} day{'' if days == 1 else 's'}"),
            "complaint": _in(f.complaint, lang)
            or t(
                "国家网信办违法和不良信息举报中心：12377，www.12377.cn",
                "CAC illegal and harmful information reporting centre: 12377, www.12377.cn",
            ),
        },
        "N9": {"minors": minors, "minors_rules": f.minors_rules_link},
        "N10": {
            "separate_consent": t(
                "人脸识别需要您单独同意，单独给出，从不作为租约、入住登记或其他条款的一部分；"
                "您可以随时撤回",
                "face recognition needs your separate consent, given on its "
                "own and never as part of a lease, check-in or other terms; you may withdraw it "
                "at any time",
            )
            if f.separate_consent
            else "",
            "optional_features": optional,
        },
        "N11": {
            "sign_text": f"{SIGN_HEADLINE[ZH]} / {SIGN_HEADLINE['en']}",
            "purpose": purpose,
            "operator": f.operator_name,
            "contact": f.operator_contact,
            "qr_target": f.notice_link,
        },
        "N12": {
            "version": f.version,
            "effective_date": f.effective_date,
            "change_notice": t(
                "变更生效前会在现场和自助页面公布；目的、方式、信息种类、保存期限或范围变更时，"
                "会再次征求您的同意",
                "changes are announced at the site and on the self-service page "
                "before they take effect; a change of purpose, method, data, retention or scope "
                "asks for your consent again",
            ),
        },
        "N13": {"accessible_version": _in(f.accessibility, lang)},
    }


def _retention_text(f: NoticeFacts, lang: str) -> str:
    if f.retention is None:
        return ""
    parts = []
    for r in f.retention:
        cat_zh = _CATEGORY_WORDS.get(r.category, (r.category, r.category))[0]
        if lang == ZH:
            kept = _hours_text(r.hours, ZH)
            after = f"{r.after[0]}后 " if r.after and r.hours else ""
            parts.append(f"{cat_zh}：{after}{kept}")
        else:
            # English keeps the category id as before: existing notices compare equal (N5).
            after = f" after {r.after[1]}" if r.after else ""
            parts.append(f"{r.category}: {_hours_text(r.hours)}{after}")
    cap = f.retention_cap_days
    if lang == ZH:
        return "；".join(parts) + (f"；最后一次使用后最长 {cap} 天" if cap is not None else "")
    if cap is None:
        return "; ".join(parts)
    return "; ".join(parts) + f"; at most {cap} day{'' if cap == 1 else 's'} after the last use"


# A field is either a dict of named parts (this module's builder) or one string (a notice
# imported from an inventory); publishing accepts both.
NoticeFields = Mapping[str, Any]


def notice_sections(
    fields: Mapping[str, Any], lang: str = "en"
) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """The notice as people read it in ``lang``: (field id, title, [(label, text)]).

    Chinese comes from the stored Chinese fields; a version published before they existed
    shows its stored parts under Chinese labels until it is re-published."""
    i = 0 if lang == ZH else 1
    source = fields.get(ZH) if lang == ZH and isinstance(fields.get(ZH), Mapping) else fields
    out = []
    for key in NOTICE_FIELDS:
        value = source.get(key, fields.get(key, ""))
        if isinstance(value, str):
            parts = [("", value)]
        else:
            parts = [
                (PART_LABELS.get(part, (part, part))[i], str(v))
                for part, v in value.items()
                if part != "sign_text"
            ]
        out.append((key, NOTICE_TITLES[key][i], parts))
    return out


def flat_notice_fields(fields: Mapping[str, Any], lang: str = "en") -> dict[str, str]:
    """Each field N1..N13 as one line in ``lang`` ("label: text; label: text", never the part
    ids), as the compliance engine and its documents read a notice. A field with an empty
    required part is ``""``: the compliance checks report it missing (CAC-FR-05a)."""
    out: dict[str, str] = {}
    sections = {key: parts for key, _title, parts in notice_sections(fields, lang)}
    sep = "；" if lang == ZH else "; "
    colon = "：" if lang == ZH else ": "
    for key in NOTICE_FIELDS:
        parts = fields.get(key) or {}
        if isinstance(parts, str):
            out[key] = parts
            continue
        missing = [p for p, v in parts.items() if not str(v).strip()]
        if not parts or any((key, p) not in OPTIONAL_NOTICE_PARTS for p in missing):
            out[key] = ""
        else:
            out[key] = sep.join(
                f"{label}{colon}{v}" if label else v for label, v in sections[key] if v
            )
    return out


def render_notice_text(fields: NoticeFields, site_name: str = "", lang: str = "en") -> str:
    """Plain text of the notice in ``lang``; a missing part shows as such, never invented."""
    missing = _pick(lang, "[未填写]", "[missing]")
    title = _pick(lang, "人脸信息处理规则", "Facial recognition processing rules")
    lines = [f"{title}{' - ' + site_name if site_name else ''}", ""]
    for key, heading, parts in notice_sections(fields, lang):
        lines.append(f"{key}. {heading}")
        for label, v in parts:
            colon = "：" if lang == ZH else ": "
            lines.append(f"  {label + colon if label else ''}{v or missing}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def bilingual_notice_text(fields: NoticeFields, site_name: str = "") -> str:
    """The stored text of a version: the Chinese notice, then the English one."""
    return render_notice_text(fields, site_name, ZH) + "\n" + render_notice_text(fields, site_name)


def notice_sha256(fields: Mapping[str, Any], text: str) -> str:
    body = json.dumps({"fields": fields, "text": text}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


def current_notice(session: Session, site_id: str) -> NoticeVersion | None:
    return session.execute(
        select(NoticeVersion)
        .where(NoticeVersion.site_id == site_id)
        .order_by(NoticeVersion.version.desc())
        .limit(1)
    ).scalar_one_or_none()


def _comparable(fields: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in fields.items() if k != "N12"}
    if isinstance(out.get(ZH), Mapping):
        out[ZH] = {k: v for k, v in out[ZH].items() if k != "N12"}
    return out


def _meaning(value: Any) -> Any:
    """A stored field with wording fixed since (same meaning) replaced by today's wording."""
    if isinstance(value, str):
        for pattern, fixed in _LEGACY_WORDING:
            value = pattern.sub(fixed, value)
        return value
    if isinstance(value, Mapping):
        return {k: _meaning(v) for k, v in value.items()}
    return value


def needs_reconsent(prev: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether publishing ``new`` after ``prev`` asks every enrolled person again: a
    re-consent trigger changed in meaning (CAC-FR-05b, 06c). Judged on the English parts
    only: a better Chinese wording, or a fixed plural, is a new version, not a new consent."""
    return any(_meaning(prev.get(k)) != _meaning(new.get(k)) for k in RECONSENT_TRIGGERS)


def publish_notice_in_tx(
    session: Session,
    site_id: str,
    fields: NoticeFields,
    *,
    actor: str,
    language: str = "en",
    effective_at: datetime | None = None,
    text: str | None = None,
) -> NoticeVersion:
    """Publish inside the caller's transaction (used by ``init``); see ``publish_notice``."""
    site = get_site(session, site_id)
    # The one publish path (API, CLI, console, init): a draft is never published (CAC-FR-05a),
    # so an empty notice can neither ask everyone to renew consent nor empty the galleries.
    require_complete_notice(fields)
    prev = current_notice(session, site.id)
    if prev is not None and _comparable(prev.fields) == _comparable(fields):
        return prev  # nothing changed: no new version, nobody asked again
    effective_at = effective_at or utcnow()
    version = 1 if prev is None else prev.version + 1
    unknown = sorted(set(fields) - set(NOTICE_FIELDS) - {ZH})
    if unknown:
        raise InvalidInput(f"unknown notice fields: {', '.join(unknown)}")
    stored: dict[str, Any] = json.loads(json.dumps(dict(fields)))  # a deep, JSON-clean copy
    for target in (stored, stored.get(ZH)):
        n12 = target.get("N12", {}) if isinstance(target, dict) else None
        if isinstance(n12, dict):  # fill in the version being published (N12)
            target["N12"] = {
                **n12,
                "version": str(version),
                "effective_date": effective_at.date().isoformat(),
            }
    if text is None:
        text = bilingual_notice_text(stored, site.name) if ZH in stored else None
        text = text or render_notice_text(stored, site.name)
    requires = prev is None or needs_reconsent(prev.fields, stored)
    notice = NoticeVersion(
        site_id=site.id,
        version=version,
        language=language,
        fields=stored,
        text=text,
        sha256=notice_sha256(stored, text),
        requires_reconsent=requires,
        effective_at=effective_at,
        created_by=actor,
    )
    session.add(notice)
    session.flush()
    renewals = 0
    if requires and prev is not None:
        # CAC-FR-05b / 06c: consents given under the old terms stop counting until renewed.
        renewals = session.execute(
            update(Consent)
            .where(
                Consent.site_id == site.id,
                Consent.withdrawn_at.is_(None),
                Consent.renewal_required_at.is_(None),
            )
            .values(renewal_required_at=effective_at)
        ).rowcount
        record_change(session, site.id, None, "renewal")
    audit.append(
        session,
        actor=actor,
        operation="notice_publish",
        purpose=PURPOSE_CONFIG,
        outcome="ok",
        details={
            "site_id": site.id,
            "version": version,
            "sha256": notice.sha256,
            "requires_reconsent": requires,
            "consents_needing_renewal": renewals,
        },
    )
    return notice


def publish_notice(
    session: Session,
    site_id: str,
    fields: NoticeFields,
    *,
    actor: str,
    language: str = "en",
    effective_at: datetime | None = None,
    text: str | None = None,
) -> NoticeVersion:
    """Publish a new notice version when the fields changed; if a re-consent trigger
    (purpose, method, data categories, retention, optional features) changed, every active
    consent at the site needs renewal and its templates stop matching (CAC-FR-05b, 06c)."""
    return run(
        session,
        lambda: publish_notice_in_tx(
            session,
            site_id,
            fields,
            actor=actor,
            language=language,
            effective_at=effective_at,
            text=text,
        ),
        actor=actor,
        operation="notice_publish",
        subject=None,
        purpose=PURPOSE_CONFIG,
    )


def save_notice_draft_in_tx(
    session: Session,
    site_id: str,
    fields: NoticeFields,
    *,
    actor: str,
    language: str = "en",
) -> NoticeDraft:
    """Save (replace) the site's draft; see ``save_notice_draft``."""
    site = get_site(session, site_id)
    unknown = sorted(set(fields) - set(NOTICE_FIELDS) - {ZH})
    if unknown:
        raise InvalidInput(f"unknown notice fields: {', '.join(unknown)}")
    stored: dict[str, Any] = json.loads(json.dumps(dict(fields)))  # a deep, JSON-clean copy
    missing = sorted(missing_notice_fields(stored), key=NOTICE_FIELDS.index)
    draft = session.get(NoticeDraft, site.id) or NoticeDraft(site_id=site.id)
    draft.language = language
    draft.fields = stored
    draft.text = (
        bilingual_notice_text(stored, site.name)
        if isinstance(stored.get(ZH), Mapping)
        else render_notice_text(stored, site.name)
    )
    draft.missing = missing
    draft.saved_at = utcnow()
    draft.saved_by = actor[:100]
    session.add(draft)
    session.flush()
    audit.append(
        session,
        actor=actor,
        operation="notice_draft_save",
        purpose=PURPOSE_CONFIG,
        outcome="ok",
        details={"site_id": site.id, "missing": missing},
    )
    return draft


def save_notice_draft(
    session: Session,
    site_id: str,
    fields: NoticeFields,
    *,
    actor: str,
    language: str = "en",
) -> NoticeDraft:
    """Save a notice as a draft, complete or not, to preview it (the rendered text and the
    missing fields). A draft is never shown to anyone as the notice, never consented to, and
    changes no consent; only ``publish_notice`` publishes, and only a complete notice."""
    return run(
        session,
        lambda: save_notice_draft_in_tx(session, site_id, fields, actor=actor, language=language),
        actor=actor,
        operation="notice_draft_save",
        subject=None,
        purpose=PURPOSE_CONFIG,
    )


def notice_draft(session: Session, site_id: str) -> NoticeDraft | None:
    return session.get(NoticeDraft, site_id)


def site_notice_fields(
    session: Session,
    settings: Settings,
    site: Site,
    *,
    necessity: str = "",
    processors: str = "",
    accessibility: Wording = "",
    minors_rules_link: str = "",
    notice_link: str = "",
) -> dict[str, dict[str, str]]:
    """A site's notice fields as its operator, access points and configuration describe now."""
    org = session.get(Organization, site.organization_id)
    aps = session.execute(select(AccessPoint).where(AccessPoint.site_id == site.id)).scalars()
    return build_notice_fields(
        settings,
        operator_name=org.name if org else "",
        operator_address=org.address if org else "",
        operator_contact=org.contact if org else "",
        pipo_contact=org.pipo_contact if org else "",
        site_name=site.name,
        access_points=list(aps),
        necessity=necessity,
        processors=processors,
        accessibility=accessibility,
        minors_rules_link=minors_rules_link,
        notice_link=notice_link,
    )


def publish_site_notice(
    session: Session,
    settings: Settings,
    *,
    actor: str,
    site_id: str | None = None,
    necessity: str = "",
    processors: str = "",
    accessibility: Wording = "",
    minors_rules_link: str = "",
    notice_link: str = "",
) -> NoticeVersion:
    """Regenerate a site's notice from its operator, access points and configuration, and
    publish it (a new version only when a field changed; see ``publish_notice``)."""
    site = get_site(session, site_id)
    fields = site_notice_fields(
        session,
        settings,
        site,
        necessity=necessity,
        processors=processors,
        accessibility=accessibility,
        minors_rules_link=minors_rules_link,
        notice_link=notice_link,
    )
    return publish_notice(session, site.id, fields, actor=actor)
