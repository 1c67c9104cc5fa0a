"""What every page handler shares: the runtime, rendering, cookies, CSRF and errors."""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from facegate.errors import CsrfRejected, FacegateError
from facegate.web.i18n import LANGS, Translator, pick_lang

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))

OPERATOR_COOKIE = "fg_op"
PERSON_COOKIE = "fg_me"
PRE_CSRF_COOKIE = "fg_csrf"  # double-submit token for forms shown before any session
LANG_COOKIE = "fg_lang"
DEVICE_COOKIE = "fg_dev"  # a browser an operator signed in from before (sign-in throttling)

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


def fail(request: Request, exc: FacegateError, back: str) -> WebFailure:
    return WebFailure(exc.http_status, "error_title", exc.message, back)


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
