"""What every page handler shares: the runtime, rendering, cookies, CSRF and errors."""

from __future__ import annotations

import hmac
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from facegate.domain.notice import NOTICE_TITLES, notice_sections
from facegate.errors import CsrfRejected, FacegateError
from facegate.web.i18n import LANGS, QUALITY_WORDS, Translator, pick_lang

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))


def local_time(value: Any, tz: str = "Asia/Shanghai", fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A stored UTC instant (datetime or ISO text) as the site's wall-clock time with its UTC
    offset, e.g. ``2026-12-03 20:03 +08:00`` (issue 16 item 7); naive values are UTC."""
    if value is None or value == "":
        return ""
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(at, datetime):
        return str(value)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    at = at.astimezone(ZoneInfo(tz))
    offset = at.strftime("%z")
    return f"{at.strftime(fmt)} {offset[:3]}:{offset[3:]}"


templates.env.filters["localtime"] = local_time

OPERATOR_COOKIE = "fg_op"
PERSON_COOKIE = "fg_me"
PRE_CSRF_COOKIE = "fg_csrf"  # double-submit token for forms shown before any session
LANG_COOKIE = "fg_lang"
DEVICE_COOKIE = "fg_dev"  # a browser an operator signed in from before (sign-in throttling)


class WebFailure(Exception):
    """Raised by page handlers; rendered as an HTML error page (never JSON, never a trace)."""

    def __init__(
        self,
        status: int,
        title_key: str,
        message: str,
        back: str = "/",
        page: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.title_key, self.message, self.back = status, title_key, message, back
        # The signed-in operator's name and role: the refusal page keeps the navigation.
        self.page = page or {}


class Redirect(Exception):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


def runtime(request: Request) -> Any:
    return request.app.state.runtime


def keyring(request: Request) -> Any:
    """The site keyring, loaded once per app (it wraps and unwraps person data keys)."""
    kr = getattr(request.app.state, "web_keyring", None)
    if kr is None:
        from facegate.store.crypto import load_keyring

        kr = load_keyring(runtime(request).settings)
        request.app.state.web_keyring = kr
    return kr


def _site_time_zone(request: Request) -> str:
    rt = getattr(request.app.state, "runtime", None)
    return getattr(getattr(rt, "settings", None), "site_time_zone", "Asia/Shanghai")


def lang_of(request: Request) -> str:
    return pick_lang(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))


def translator(request: Request) -> Translator:
    return Translator(lang_of(request))


def is_tls(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    """HttpOnly, SameSite=Strict, and Secure whenever the page came over TLS."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=is_tls(request),
        path="/",
    )


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    csrf: str = "",
) -> HTMLResponse:
    tr = translator(request)
    ctx = {
        "t": tr,
        "lang": tr.lang,
        "other_lang": [lg for lg in LANGS if lg != tr.lang][0],
        "csrf": csrf,
        "path": request.url.path,
        "notice_titles": {k: v[0 if tr.lang == "zh-CN" else 1] for k, v in NOTICE_TITLES.items()},
        "notice_sections": lambda fields: notice_sections(fields or {}, tr.lang),
        "tz": _site_time_zone(request),
    }
    ctx.update(context or {})
    resp = templates.TemplateResponse(request, name, ctx, status_code=status)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"  # invitation tokens never leak onwards
    resp.headers["X-Frame-Options"] = "DENY"
    # Only our own scripts and styles; camera frames go to our own server and nowhere else.
    resp.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "media-src 'self' blob: mediastream:; connect-src 'self'; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'"
    )
    return resp


def pre_csrf(request: Request) -> str:
    """The double-submit token for forms shown before a session exists."""
    return request.cookies.get(PRE_CSRF_COOKIE) or secrets.token_urlsafe(24)


def with_pre_csrf(request: Request, response: Response, token: str) -> Response:
    if request.cookies.get(PRE_CSRF_COOKIE) != token:
        set_cookie(request, response, PRE_CSRF_COOKIE, token, 3600)
    return response


def check_csrf(sent: str | None, expected: str | None) -> None:
    """Every state-changing form carries the session's token (or the pre-session cookie)."""
    if not sent or not expected or not hmac.compare_digest(str(sent), str(expected)):
        raise CsrfRejected()


_ZH_HALF = re.compile(r" / (?=[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef])")


def refusal_words(tr: Translator, exc: FacegateError) -> str:
    """Why something was refused, in the reader's language: the page's own words for the
    error's code (``err_<code>``); else, for a Chinese reader, the error's own Chinese sentence
    (``exc.zh``, or the half after " / " of an "English / 中文" message); else its message."""
    words = tr(f"err_{exc.code}")
    if words != f"err_{exc.code}":
        return words
    if tr.lang != "zh-CN":
        return exc.message
    zh = getattr(exc, "zh", None)
    if zh:
        return zh + _quality_why(tr, exc)
    halves = _ZH_HALF.split(exc.message, maxsplit=1)
    return halves[1] if len(halves) == 2 else exc.message


def _quality_why(tr: Translator, exc: FacegateError) -> str:
    """Why a photo's face was refused, in the page's words for each quality reason (too
    small, blurred, too dark, not frontal...): ``（请靠近一点；太暗了，请到更亮的地方）``.
    Empty when the error carries no reason a person can act on."""
    reasons = (exc.details or {}).get("reasons")
    if not isinstance(reasons, list):
        return ""
    words = [tr.quality(str(r)) for r in reasons if str(r) in QUALITY_WORDS and r != "ok"]
    words = list(dict.fromkeys(words))
    return f"（{'；'.join(words)}）" if words else ""


def fail(request: Request, exc: FacegateError, back: str) -> WebFailure:
    return WebFailure(exc.http_status, "error_title", refusal_words(translator(request), exc), back)


def public_base(request: Request) -> str:
    """The base of links people are given (issue 16 item 9): FACEGATE_PUBLIC_URL, else the
    address set in the console, else the address this browser used."""
    from facegate.compliance.live import load_facts
    from facegate.domain.links import public_base as pick

    settings = runtime(request).settings
    return pick(settings.public_url, load_facts(settings).public_url, str(request.base_url))


def qr_pass_context(issued: Any | None, store: Any = None) -> dict[str, object]:
    """A QR pass just issued, for ``_qrpass.html``: the picture a reader scans, the short code
    to type at a kiosk or keypad, the full token as a spare, and the entrances that take it
    (only those: issue 16 item 10). ``store`` is needed for the entrances."""
    from facegate.compliance.documents import qr_svg

    secret = issued.secret if issued else None
    doors: list[str] = []
    if issued is not None and store is not None:
        from facegate.domain.selfservice import pass_entrances

        with store.session() as s:
            doors = pass_entrances(s, issued.credential.id)
    return {
        "qr_secret": secret,
        "qr_code": issued.code if issued else None,
        "qr_image": qr_svg(secret or "", scale=5) if secret else "",
        "qr_doors": doors,
    }


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)
