"""Notice versions: the N1..N13 fields of regulations.md §2, rendered text and hash.

``build_notice_fields`` is the one place that turns configuration into notice fields; the
compliance engine may call or replace it. A value the system does not know is left as ``""``
for the compliance checks to flag (CAC-FR-05a); nothing is filled with a placeholder.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

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

NOTICE_FIELDS = tuple(f"N{i}" for i in range(1, 14))
# A change in any of these asks every enrolled person to consent again (CAC-FR-05b, 06c).
RECONSENT_TRIGGERS = ("N2", "N3", "N4", "N5", "N10")

_TITLES = {
    "N1": "Processor",
    "N2": "Purpose and matching mode",
    "N3": "Processing method",
    "N4": "Categories of data",
    "N5": "Retention and deletion",
    "N6": "Necessity and impact on your rights",
    "N7": "Face recognition is voluntary; the alternatives",
    "N8": "Your rights and how to exercise them",
    "N9": "Children under 14",
    "N10": "Separate consent",
    "N11": "Sign at the capture area",
    "N12": "Version and changes",
    "N13": "Accessible version",
}
# Bilingual field names for people reading a refusal (the compliance catalog has the same).
_TITLES_ZH = {
    "N1": "处理者",
    "N2": "处理目的和比对方式",
    "N3": "处理方式",
    "N4": "个人信息种类",
    "N5": "保存期限和删除",
    "N6": "必要性及对个人权益的影响",
    "N7": "自愿原则和替代方式",
    "N8": "个人权利及行使方式",
    "N9": "不满十四周岁的未成年人",
    "N10": "单独同意",
    "N11": "采集区域提示标识",
    "N12": "版本和变更",
    "N13": "无障碍版本",
}
# Parts of a field a notice may leave empty: the PI protection officer where none is appointed
# and the entrusted processors where there are none (regulations.md section 2, N1 and N3).
# Every other part of N1..N13 is required (CAC-FR-05a).
OPTIONAL_NOTICE_PARTS = frozenset({("N1", "pipo_contact"), ("N3", "processors")})
_PART_WORDS = {
    "operator_name": ("名称", "legal name"),
    "address": ("地址", "address"),
    "contact": ("联系方式", "contact"),
    "purpose": ("目的", "purpose"),
    "necessity": ("必要性说明", "necessity statement"),
    "alternatives": ("替代方式", "alternatives"),
    "minors_rules": ("未成年人规则链接", "link to the minors' rules"),
    "qr_target": ("二维码指向的告知书网址", "notice address for the QR code"),
    "access": ("可访问人员", "who can access it"),
    "operator": ("处理者", "operator"),
    "accessible_version": ("无障碍版本", "accessible version"),
}


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


def describe_missing(missing: Mapping[str, list[str]]) -> tuple[str, str]:
    """The missing fields as a sentence in zh-CN and in en."""
    zh, en = [], []
    for key, parts in missing.items():
        words = [_PART_WORDS.get(p, (p.replace("_", " "), p.replace("_", " "))) for p in parts]
        zh.append(
            f"{key} {_TITLES_ZH[key]}" + (f"（{'、'.join(w[0] for w in words)}）" if words else "")
        )
        en.append(
            f"{key} {_TITLES[key]}" + (f" ({', '.join(w[1] for w in words)})" if words else "")
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


_METHOD_WORDS = {"card": "card", "pin": "PIN", "qr": "QR pass", "staffed": "staffed desk or guard"}


def _hours_text(hours: int) -> str:
    if hours == 0:
        return "no face template is kept"
    if hours % 24 == 0:
        return f"{hours // 24} days"
    return f"{hours} hours"


def build_notice_fields(
    settings: Settings,
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
    accessibility: str = "",
    overrides: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, dict[str, str]]:
    """The N1..N13 notice fields, each a dict of named parts (strings; "" = not known)."""
    purpose = f"Entry control at {site_name}" if site_name else ""
    face_points = [ap for ap in access_points if "face" in (ap.methods or [])]
    if purpose and face_points:
        purpose += " (" + ", ".join(sorted({ap.kind for ap in face_points})) + ")"
    alternatives = sorted(
        {m for ap in face_points for m in (ap.methods or []) if m in NON_BIOMETRIC_METHODS}
    )
    retention = "; ".join(
        f"{c}: {_hours_text(getattr(settings, f'retention_{c}_hours'))} after the end of "
        f"{'the stay' if c == 'guest' else 'the visit' if c == 'visitor' else 'the relationship'}"
        for c in PERSON_CATEGORIES
    )
    retention += f"; at most {settings.retention_hard_cap_days} days after the last use"
    fields: dict[str, dict[str, str]] = {
        "N1": {
            "operator_name": operator_name,
            "address": operator_address,
            "contact": operator_contact,
            "pipo_contact": pipo_contact,
        },
        "N2": {
            "purpose": purpose,
            "matching_mode": "1:N among the people enrolled for this access point only; "
            "1:1 when a card or pass names the person",
        },
        "N3": {
            "capture": "a live camera image is converted to a face template; the image is not kept",
            "storage": "encrypted on the on-site facegate server; "
            "never transmitted over the internet",
            "access": f"staff of {operator_name} authorised for enrollment and rights requests"
            if operator_name
            else "",
            "processors": processors,
        },
        "N4": {
            "categories": "face template; linked identity (name, unit or room), kept apart "
            "from the template; access log",
            "images_kept": "none",
        },
        "N5": {
            "retention": retention,
            "deletion_triggers": "move-out, lease end, checkout, end of employment, "
            "withdrawal of consent, site shut-down",
        },
        "N6": {
            "necessity": necessity,
            "impact": "a face cannot be changed if its data leaks; facegate keeps only "
            "encrypted templates on site, no images, and erases them on withdrawal",
        },
        "N7": {
            "voluntary": "face recognition is optional; refusing or withdrawing consent does "
            "not affect your access or any service",
            "alternatives": ", ".join(_METHOD_WORDS[m] for m in alternatives),
        },
        "N8": {
            "rights": "access and copy, correction, deletion, withdrawal of consent, "
            "explanation of these rules",
            "channels": "front desk or property office; self-service page",
            "response_time": f"within {settings.rights_response_days} days",
            "complaint": "CAC illegal and harmful information reporting centre: 12377, "
            "www.12377.cn",
        },
        "N9": {
            "minors": "for a child under 14 a parent or guardian must consent; face "
            "recognition stays off for them otherwise",
            "minors_rules": minors_rules_link,
        },
        "N10": {
            "separate_consent": "face recognition needs your separate consent, given on its "
            "own and never as part of a lease, check-in or other terms; you may withdraw it "
            "at any time",
            "optional_features": "none: face data is never transferred over the internet",
        },
        "N11": {
            "sign_text": "人脸识别区域 / Facial recognition in use",
            "purpose": purpose,
            "operator": operator_name,
            "contact": operator_contact,
            "qr_target": notice_link,
        },
        "N12": {
            "version": "",
            "effective_date": "",
            "change_notice": "changes are announced at the site and on the self-service page "
            "before they take effect; a change of purpose, method, data, retention or scope "
            "asks for your consent again",
        },
        "N13": {"accessible_version": accessibility},
    }
    for key, parts in (overrides or {}).items():
        if key not in fields:
            raise ValueError(f"unknown notice field {key!r}")
        fields[key] = {**fields[key], **{k: str(v) for k, v in parts.items()}}
    return fields


# A field is either a dict of named parts (this module's builder) or one string (the
# compliance engine's bilingual builder); publishing accepts both.
NoticeFields = Mapping[str, "str | Mapping[str, str]"]


def render_notice_text(fields: NoticeFields, site_name: str = "") -> str:
    """Plain text of the notice; a missing part shows as ``[missing]``, never invented."""
    lines = [f"Facial recognition processing rules{' - ' + site_name if site_name else ''}", ""]
    for key in NOTICE_FIELDS:
        lines.append(f"{key}. {_TITLES[key]}")
        value = fields.get(key, "")
        if isinstance(value, str):
            lines.append(f"  {value or '[missing]'}")
        else:
            for part, v in value.items():
                lines.append(f"  {part.replace('_', ' ')}: {v or '[missing]'}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


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
    return {k: v for k, v in fields.items() if k != "N12"}


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
    unknown = sorted(set(fields) - set(NOTICE_FIELDS))
    if unknown:
        raise InvalidInput(f"unknown notice fields: {', '.join(unknown)}")
    stored: dict[str, Any] = {k: v if isinstance(v, str) else dict(v) for k, v in fields.items()}
    n12 = stored.get("N12", {})
    if isinstance(n12, dict):  # fill in the version being published (N12)
        stored["N12"] = {
            **n12,
            "version": str(version),
            "effective_date": effective_at.date().isoformat(),
        }
    text = text if text is not None else render_notice_text(stored, site.name)
    requires = prev is None or any(prev.fields.get(k) != stored.get(k) for k in RECONSENT_TRIGGERS)
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
    unknown = sorted(set(fields) - set(NOTICE_FIELDS))
    if unknown:
        raise InvalidInput(f"unknown notice fields: {', '.join(unknown)}")
    stored: dict[str, Any] = {k: v if isinstance(v, str) else dict(v) for k, v in fields.items()}
    missing = sorted(missing_notice_fields(stored), key=NOTICE_FIELDS.index)
    draft = session.get(NoticeDraft, site.id) or NoticeDraft(site_id=site.id)
    draft.language = language
    draft.fields = stored
    draft.text = render_notice_text(stored, site.name)
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
    accessibility: str = "",
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
    accessibility: str = "",
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
