"""The privacy notice fields N1-N13 (regulations.md section 2), built from configuration.

Every sentence is derived from the deployment description. Where the configuration does not
say something a field needs (no operator address, no retention rule for a category, an access
point without an alternative), the field is left EMPTY rather than filled with a plausible
value: an empty field is a finding (CAC-FR-05a) that the operator must fix at the source.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from facegate.compliance.checks import notice_digest
from facegate.compliance.model import NOTICE_FIELDS, Deployment, Notice

SIGN_HEADLINE = {"zh-CN": "人脸识别区域", "en": "Facial recognition in use"}

METHOD_NAMES = {
    "zh-CN": {
        "card": "门禁卡",
        "pin": "密码",
        "qr": "二维码",
        "staffed": "人工核验",
        "key": "钥匙",
        "id_card": "身份证件核验",
        "mobile": "手机开门",
    },
    "en": {
        "card": "access card",
        "pin": "PIN",
        "qr": "QR code",
        "staffed": "staffed check",
        "key": "key",
        "id_card": "ID-document check",
        "mobile": "mobile app",
    },
}
KIND_NAMES = {
    "zh-CN": {
        "gate": "大门",
        "door": "门",
        "turnstile": "闸机",
        "elevator": "电梯",
        "lobby": "大堂",
        "parking": "停车场",
        "common_facility": "公共设施",
        "front_desk": "前台",
        "room_door": "房门",
        "camera": "摄像头",
        "other": "出入口",
    },
    "en": {
        "gate": "gates",
        "door": "doors",
        "turnstile": "turnstiles",
        "elevator": "elevators",
        "lobby": "lobbies",
        "parking": "parking",
        "common_facility": "shared facilities",
        "front_desk": "front desk",
        "room_door": "room doors",
        "camera": "cameras",
        "other": "entrances",
    },
}
_CATEGORY = {
    "zh-CN": {
        "resident": "住户",
        "tenant": "租户",
        "guest": "住客",
        "staff": "员工",
        "visitor": "访客",
        "student": "学生",
        "customer": "顾客",
    },
    "en": {},
}


def _sep(lang: str) -> str:
    return "、" if lang == "zh-CN" else ", "


def _cat(c: str, lang: str) -> str:
    return _CATEGORY.get(lang, {}).get(c, c)


def _face_points(d: Deployment) -> list:
    return [(s, ap) for s, ap in d.access_points() if ap.face_on or "face" in ap.accepted_methods]


def _n1(d: Deployment, lang: str) -> str:
    op = d.operator
    contact = " / ".join(x for x in (op.phone, op.email) if x)
    if not (op.legal_name and op.address and contact):
        return ""
    if lang == "zh-CN":
        text = f"个人信息处理者：{op.legal_name}；地址：{op.address}；联系方式：{contact}。"
        if op.pipo_name or op.pipo_contact:
            text += f"个人信息保护负责人：{op.pipo_name} {op.pipo_contact}".rstrip() + "。"
    else:
        text = f"Processor: {op.legal_name}; address: {op.address}; contact: {contact}."
        if op.pipo_name or op.pipo_contact:
            text += f" Personal-information protection officer: {op.pipo_name} {op.pipo_contact}"
            text = text.rstrip() + "."
    return text


def _n2(d: Deployment, lang: str) -> str:
    pts = _face_points(d)
    if d.purpose != "access_control" or not pts or any(ap.mode is None for _, ap in pts):
        return ""
    sites = _sep(lang).join(dict.fromkeys(s.name or s.id for s, _ in pts))
    kinds = _sep(lang).join(dict.fromkeys(KIND_NAMES[lang][ap.kind] for _, ap in pts))
    modes = sorted({ap.mode for _, ap in pts})
    if lang == "zh-CN":
        mode_txt = "；".join(
            "1:1（先出示卡或二维码，再与本人模板比对）"
            if m == "1:1"
            else "1:N（仅在已登记本出入口的人员中比对）"
            for m in modes
        )
        return f"处理目的：{sites}的{kinds}出入控制，不用于其他任何目的。比对方式：{mode_txt}。"
    mode_txt = "; ".join(
        "1:1 (a card or QR code is shown first, then compared with that person's template)"
        if m == "1:1"
        else "1:N (among the people enrolled for that access point only)"
        for m in modes
    )
    return (
        f"Purpose: entry control for the {kinds} of {sites}, and nothing else. "
        f"Matching mode: {mode_txt}."
    )


def _n3(d: Deployment, lang: str) -> str:
    if d.face_storage is None or d.images_kept() is None:
        return ""  # never state what the description does not say
    if any(o.can_carry_biometric is None or o.off_site is None for o in d.outbound):
        return ""
    vendors = _sep(lang).join(d.operator.vendors)
    zh = lang == "zh-CN"
    where = {
        "device": ("存储在识别设备内", "stored in the recognition device"),
        "on_site": ("存储在现场服务器上", "stored on a server on site"),
        "cloud": ("存储在云端服务器上", "stored on a cloud server"),
    }[d.face_storage][0 if zh else 1]
    net = d.face_storage != "cloud" and not any(
        o.can_carry_biometric and o.off_site for o in d.outbound
    )
    if zh:
        text = "在您主动刷脸时采集实时图像，转换为人脸特征模板后用于比对；"
        text += "图像会被保存；" if d.images_kept() else "图像不保存，比对后立即丢弃；"
        text += f"模板加密后{where}，"
        text += "不通过互联网传输。" if net else "会通过网络传出现场。"
        text += "只有经授权的管理人员可以管理登记记录，无人能查看或导出模板。"
        if vendors:
            text += f"受托处理方：{vendors}。"
        return text
    text = "A live image is taken when you present your face and converted into a face template; "
    text += (
        "the image is kept; "
        if d.images_kept()
        else "the image is not kept and is discarded right after matching; "
    )
    text += f"the template is encrypted and {where}, "
    text += "and is not transmitted over the internet. " if net else "and is sent off site. "
    text += (
        "Only authorised administrators manage enrollments; nobody can view or export templates."
    )
    if vendors:
        text += f" Entrusted processors: {vendors}."
    return text


def _n4(d: Deployment, lang: str) -> str:
    if d.images_kept() is None:
        return ""
    if lang == "zh-CN":
        img = "保存人脸图像。" if d.images_kept() else "不保存人脸图像。"
        return f"人脸特征模板（加密）；关联身份信息（姓名、房号或单元，单独存放）；通行记录。{img}"
    img = "Face images are kept." if d.images_kept() else "No face image is kept."
    return (
        "Face template (encrypted); linked identity (name, unit or room, stored separately); "
        f"access log. {img}"
    )


def _n5(d: Deployment, lang: str) -> str:
    rules = {r.category: r for r in d.retention}
    cats = d.person_categories or list(rules)
    if not cats or any(c not in rules or rules[c].max_days is None for c in cats):
        return ""
    parts = []
    for c in cats:
        r = rules[c]
        if lang == "zh-CN":
            trig = f"{r.trigger}后" if r.trigger else ""
            parts.append(f"{_cat(c, lang)}：{trig}最长 {r.max_days} 天")
        else:
            trig = f" after {r.trigger}" if r.trigger else ""
            unit = "day" if r.max_days == 1 else "days"
            parts.append(f"{c}: at most {r.max_days} {unit}{trig}")
    if lang == "zh-CN":
        return "；".join(parts) + "。撤回同意、搬离、退房或停止使用时立即删除。"
    return (
        "; ".join(parts)
        + ". Deleted at once on withdrawal of consent, move-out, checkout or shut-down."
    )


def _n6(d: Deployment, lang: str) -> str:
    pia = d.latest_pia()
    necessity = d.necessity_statement or (pia.necessity_statement if pia else "")
    if not necessity:
        return ""
    if lang == "zh-CN":
        return (
            f"必要性：{necessity} 影响：人脸信息一旦泄露无法更改；"
            "为此模板加密、不保存图像、数据不出现场，且您可随时撤回。"
        )
    return (
        f"Necessity: {necessity} Impact: a leaked face cannot be changed like a password; "
        "therefore templates are encrypted, no image is kept, data stays on site, and you can "
        "withdraw at any time."
    )


def _n7(d: Deployment, lang: str) -> str:
    pts = [(s, ap) for s, ap in _face_points(d) if ap.kind != "camera"]
    ways = [ap.ways_without_face() for _, ap in pts]
    if not pts or any(not w for w in ways):
        return ""  # a face-only (or unknown) point makes any statement about alternatives untrue
    methods = list(dict.fromkeys(m for w in ways for m in w or []))
    alt = _sep(lang).join(METHOD_NAMES[lang][m] for m in methods)
    if lang == "zh-CN":
        return (
            f"人脸识别完全自愿。不同意或撤回同意时，可使用：{alt}。"
            "拒绝或撤回不影响您的通行和服务，也不收取任何费用。"
        )
    return (
        f"Face recognition is optional. If you do not agree, or withdraw, you can use: {alt}. "
        "Declining or withdrawing changes nothing about your access or service and costs nothing."
    )


def _n8(d: Deployment, lang: str) -> str:
    r = d.rights
    if not r.channels or r.response_days is None:
        return ""
    ch = _sep(lang).join(r.channels + ([d.self_service_url] if d.self_service_url else []))
    if lang == "zh-CN":
        text = (
            f"您可以查阅、复制、更正、删除您的信息，撤回同意或要求解释处理规则。渠道：{ch}；"
            f"我们在 {r.response_days} 天内答复。"
        )
        if r.complaint_route:
            text += f"投诉渠道：{r.complaint_route}。"
        return text
    text = (
        "You can access, copy, correct or delete your data, withdraw consent or ask for an "
        f"explanation of these rules. Channels: {ch}; we answer within {r.response_days} "
        f"{'day' if r.response_days == 1 else 'days'}."
    )
    if r.complaint_route:
        text += f" Complaints: {r.complaint_route}."
    return text


def _n9(d: Deployment, lang: str) -> str:
    if not d.minors_rules_url or d.face_for_minors is None:
        return ""
    if lang == "zh-CN":
        state = (
            "经监护人同意后可为其开启人脸识别"
            if d.face_for_minors
            else "默认不对其使用人脸识别，使用卡或二维码通行"
        )
        return (
            f"未满十四周岁的未成年人须由父母或监护人同意；{state}。"
            f"未成年人专门规则：{d.minors_rules_url}"
        )
    state = (
        "face can be switched on for them with a guardian's consent"
        if d.face_for_minors
        else "face recognition is off for them by default; they use a card or QR code"
    )
    return (
        f"Children under 14 need a parent's or guardian's consent; {state}. "
        f"Dedicated rules for minors: {d.minors_rules_url}"
    )


def _n10(d: Deployment, lang: str) -> str:
    if d.consent_method != "separate":
        return ""
    extras = [o.name for o in d.outbound if o.can_carry_biometric and o.off_site]
    if lang == "zh-CN":
        text = (
            "人脸识别需要您单独、明确的同意，不与租约、入住登记或其他条款捆绑，同意框不会预先勾选。"
        )
        if extras:
            text += f"以下功能另需单独同意：{'、'.join(extras)}。"
        return text
    text = (
        "Face recognition needs your separate, explicit consent; it is never bundled with a "
        "lease, check-in form or other terms, and the box is never pre-ticked."
    )
    if extras:
        text += f" Each of these needs its own separate consent: {', '.join(extras)}."
    return text


def _n11(d: Deployment, lang: str) -> str:
    op = d.operator
    contact = op.phone or op.email
    if not (d.notice_url and op.legal_name and contact):
        return ""
    if lang == "zh-CN":
        return (
            f"{SIGN_HEADLINE['zh-CN']} / {SIGN_HEADLINE['en']}：用于出入控制；"
            f"运营方：{op.legal_name}（{contact}）；完整规则请扫码：{d.notice_url}"
        )
    return (
        f"{SIGN_HEADLINE['zh-CN']} / {SIGN_HEADLINE['en']}: for entry control; operator: "
        f"{op.legal_name} ({contact}); full rules via the QR code: {d.notice_url}"
    )


def _n12(version: str, effective: date | None, lang: str) -> str:
    if not version or effective is None:
        return ""
    if lang == "zh-CN":
        return (
            f"版本 {version}，自 {effective.isoformat()} 起生效。"
            "规则变更时，我们会在现场和网页公布，并在新版本生效前通知已登记人员重新确认。"
        )
    return (
        f"Version {version}, effective {effective.isoformat()}. When these rules change we publish "
        "the change on site and online and ask enrolled people to confirm again before it applies."
    )


def _n13(d: Deployment, lang: str) -> str:
    a = d.accessibility
    zh = lang == "zh-CN"
    parts = [
        txt
        for ok, txt in (
            (a.large_print, "大字版" if zh else "large print"),
            (a.audio, "语音播报" if zh else "audio read-out"),
            (
                a.staff_assistance,
                "工作人员协助登记与撤回" if zh else "staff help to enroll or withdraw",
            ),
        )
        if ok
    ]
    if not parts:
        return ""
    if zh:
        return f"为老年人和残障人士提供：{'、'.join(parts)}。"
    return f"For elderly and disabled people: {', '.join(parts)}."


def build_notice_fields(
    d: Deployment, *, version: str, effective_date: date | None, lang: str = "zh-CN"
) -> dict[str, str]:
    """N1..N13 for ``d`` in ``lang``; a field whose source is not configured stays empty."""
    if lang not in ("zh-CN", "en"):
        raise ValueError(f"unsupported language {lang!r}")
    return {
        "N1": _n1(d, lang),
        "N2": _n2(d, lang),
        "N3": _n3(d, lang),
        "N4": _n4(d, lang),
        "N5": _n5(d, lang),
        "N6": _n6(d, lang),
        "N7": _n7(d, lang),
        "N8": _n8(d, lang),
        "N9": _n9(d, lang),
        "N10": _n10(d, lang),
        "N11": _n11(d, lang),
        "N12": _n12(version, effective_date, lang),
        "N13": _n13(d, lang),
    }


def notice_text(fields: dict[str, str]) -> str:
    """The plain-text body stored with a notice version: one line per field."""
    return "\n".join(f"{k}: {fields.get(k, '')}" for k in NOTICE_FIELDS)


def build_notice(
    d: Deployment,
    *,
    version: str,
    effective_date: date | None,
    lang: str = "zh-CN",
    now: datetime | None = None,
) -> Notice:
    """A complete notice version: fields, text, sha256 and generation time."""
    fields = build_notice_fields(d, version=version, effective_date=effective_date, lang=lang)
    text = notice_text(fields)
    return Notice(
        version=version,
        effective_date=effective_date,
        fields=fields,
        text=text,
        sha256=notice_digest(fields, text),
        generated_at=now or datetime.now(UTC).replace(microsecond=0),
    )
