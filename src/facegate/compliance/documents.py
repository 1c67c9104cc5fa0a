"""Documents generated from the deployment description (never hand-typed).

Privacy notice (N1-N13), signage per access point (N11), PIA draft (section 3), filing pack
(CAC-FR-15b) and the minors' processing rules (CAC-FR-07), in zh-CN or en, as self-contained
HTML with print CSS (print to PDF from any browser). Values the configuration does not provide
are shown as visibly empty placeholders, never invented; parts a person must judge are marked.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import segno
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from facegate.compliance.checks import (
    FILING_THRESHOLD,
    CheckContext,
    ap_label,
    notice_digest,
    run_checks,
)
from facegate.compliance.model import NOTICE_FIELDS, AccessPoint, Deployment, Notice, Site
from facegate.compliance.workdays import filing_deadline
from facegate.domain.notice import (
    KIND_WORDS,
    METHOD_WORDS,
    NOTICE_TITLES,
    SIGN_HEADLINE,
    build_notice_fields,
    flat_notice_fields,
    render_notice_text,
)
from facegate.errors import HolidayDataMissing, InvalidInput

DOC_KINDS: tuple[str, ...] = ("notice", "signage", "pia", "filing", "minors")
LANGS: tuple[str, ...] = ("zh-CN", "en")


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("facegate.compliance", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


TEMPLATES = _env()


def qr_svg(url: str, scale: int = 4) -> Markup:
    """A QR code as inline SVG (segno); empty when there is no URL to encode."""
    if not url:
        return Markup("")
    return Markup(segno.make(url, error="m").svg_inline(scale=scale, title=url))


# What a configured use means, in people's words (issue 16 item 8).
USE_NAMES = {"access_control": ("出入控制（门禁通行）", "Access control (entry to the premises)")}


def _mode_words(mode: int | None, lang: str) -> str:
    """A file mode as a sentence: who can read the file (issue 16 item 8)."""
    if mode is None:
        return ""
    octal = f"{mode & 0o777:03o}"
    if mode & 0o077 == 0:
        zh, en = "仅服务账户可读写", "readable and writable by the service account only"
    else:
        zh, en = "其他账户也可读取，应改为仅服务账户可读写", "other accounts can read it too"
    return f"{zh}（{octal}）" if lang == "zh-CN" else f"{en} ({octal})"


def _render(template: str, d: Deployment, lang: str, **extra: object) -> str:
    if lang not in LANGS:
        raise InvalidInput(f"Unsupported language {lang!r}; use one of {', '.join(LANGS)}.")

    def L(zh: str, en: str) -> str:  # noqa: N802 - short on purpose, used everywhere in templates
        return zh if lang == "zh-CN" else en

    return TEMPLATES.get_template(template).render(
        d=d,
        lang=lang,
        L=L,
        storage_name=lambda v: {
            "device": L("识别设备内", "in the recognition device"),
            "on_site": L("现场服务器", "on an on-site server"),
            "cloud": L("云端", "in the cloud"),
        }.get(v or "", ""),
        retention_by_cat={r.category: r for r in d.retention},
        kind_name=lambda k: KIND_WORDS.get(k, (k, k))[0 if lang == "zh-CN" else 1],
        use_name=lambda u: USE_NAMES.get(u, (u, u))[0 if lang == "zh-CN" else 1],
        mode_words=lambda mode: _mode_words(mode, lang),
        uses_text=lambda uses: ("、" if lang == "zh-CN" else ", ").join(
            USE_NAMES.get(u, (u, u))[0 if lang == "zh-CN" else 1] for u in uses or []
        ),
        methods_text=lambda ms: ("、" if lang == "zh-CN" else ", ").join(
            METHOD_WORDS.get(m, (m, m))[0 if lang == "zh-CN" else 1] for m in ms
        ),
        generated_at=extra.pop("now", None) or datetime.now(UTC).replace(microsecond=0),
        **extra,
    )


def notice_for(
    d: Deployment,
    lang: str,
    version: str | None = None,
    effective_date: date | None = None,
    now: datetime | None = None,
) -> Notice:
    """The notice version to publish for ``d``, with the given or current version: built by
    the one notice builder (``facegate.domain.notice.build_notice_fields``), every field in
    zh-CN and en, hashed over the fields and text in ``lang``."""
    if lang not in LANGS:
        raise InvalidInput(f"Unsupported language {lang!r}; use one of {', '.join(LANGS)}.")
    current = d.notice
    version = version or (current.version if current else "draft")
    effective = effective_date or (current.effective_date if current else None)
    fields = build_notice_fields(d, version=version, effective_date=effective)
    by_lang = {lg: flat_notice_fields(fields, lg) for lg in LANGS}
    text = render_notice_text(fields, d.name, lang)
    return Notice(
        version=version,
        effective_date=effective,
        fields=by_lang[lang],
        fields_by_lang=by_lang,
        text=text,
        sha256=notice_digest(by_lang[lang], text),
        generated_at=now or datetime.now(UTC).replace(microsecond=0),
    )


def render_notice(
    d: Deployment,
    lang: str = "zh-CN",
    *,
    version: str | None = None,
    effective_date: date | None = None,
    published: bool = False,
) -> str:
    """The full privacy notice (layer 2): every field N1-N13, version and SHA-256.

    ``published``: show the notice version ``d`` records (what people consented to) instead
    of generating a new one from the configuration."""
    if published and d.notice is not None:
        n = d.notice
    else:
        n = notice_for(d, lang, version, effective_date)
    labels = {k: NOTICE_TITLES[k][0 if lang == "zh-CN" else 1] for k in NOTICE_FIELDS}
    shown = n.fields_by_lang.get(lang) or n.fields
    missing = [k for k in NOTICE_FIELDS if not n.fields.get(k, "").strip()]
    return _render(
        "notice.html",
        d,
        lang,
        notice=n,
        shown=shown,
        labels=labels,
        fields=NOTICE_FIELDS,
        missing=missing,
    )


def render_signage(d: Deployment, site: Site, ap: AccessPoint, lang: str = "zh-CN") -> str:
    """The sign for one access point (N11), with QR codes to the notice and self-service page.

    Refused (``PublicUrlUnusable``, saying how to fix it) when a QR code would point at an
    address a resident's phone cannot open: this machine or plain HTTP (CAC-FR-13a)."""
    from facegate.domain.links import require_printable

    require_printable(d.notice_url)
    if d.self_service_url:
        require_printable(d.self_service_url)
    return _render(
        "signage.html",
        d,
        lang,
        site=site,
        ap=ap,
        headline=SIGN_HEADLINE,
        notice_version=d.notice.version if d.notice else "",
        qr_notice=qr_svg(d.notice_url),
        qr_self=qr_svg(d.self_service_url),
    )


def render_pia(d: Deployment, lang: str = "zh-CN", ctx: CheckContext | None = None) -> str:
    """The PIA draft: facts pre-filled from configuration, judgments marked for a person."""
    found = run_checks(d, ctx)
    return _render("pia.html", d, lang, findings=found, ap_label=ap_label)


def filing_status(d: Deployment) -> dict[str, object]:
    """Count, threshold and (when computable) the CAC-FR-15a deadline."""
    count = d.counts.people_with_face_data
    reached = d.counts.threshold_reached_on
    deadline: date | None = None
    problem = ""
    if reached is not None:
        try:
            dl = filing_deadline(reached)
        except HolidayDataMissing as exc:
            problem = exc.message
        else:
            deadline = dl.day
            problem = dl.reason("en")  # provisional: say so, and why
    return {
        "count": count,
        "threshold": FILING_THRESHOLD,
        "reached_on": reached,
        "deadline": deadline,
        "problem": problem,
    }


def render_filing(d: Deployment, lang: str = "zh-CN") -> str:
    """The CAC-FR-15b filing pack, ready before the threshold is reached."""
    n = notice_for(d, lang)
    return _render("filing.html", d, lang, status=filing_status(d), notice=n)


def render_minors(d: Deployment, lang: str = "zh-CN") -> str:
    """The dedicated processing rules for children under 14 (CAC-FR-07, PIPL-31)."""
    return _render("minors.html", d, lang)


def signage_points(d: Deployment) -> list[tuple[Site, AccessPoint]]:
    """Access points that need a sign: face on, or configured to accept face."""
    return [
        (site, ap) for site, ap in d.access_points() if ap.face_on or "face" in ap.accepted_methods
    ]


def write_documents(
    d: Deployment, kind: str, out: Path, lang: str = "zh-CN", *, published: bool = False
) -> list[Path]:
    """Render one kind of document into ``out``; signage gives one file per face access point."""
    if kind not in DOC_KINDS:
        raise InvalidInput(f"Unknown document {kind!r}; use one of {', '.join(DOC_KINDS)}.")
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def put(name: str, html: str) -> None:
        path = out / name
        path.write_text(html, encoding="utf-8")
        written.append(path)

    if kind == "notice":
        put(f"notice.{lang}.html", render_notice(d, lang, published=published))
    elif kind == "signage":
        for site, ap in signage_points(d):
            put(f"signage-{site.id}-{ap.id}.{lang}.html", render_signage(d, site, ap, lang))
    elif kind == "pia":
        put(f"pia-draft.{lang}.html", render_pia(d, lang))
    elif kind == "filing":
        put(f"filing-pack.{lang}.html", render_filing(d, lang))
    else:
        put(f"minors-rules.{lang}.html", render_minors(d, lang))
    return written
