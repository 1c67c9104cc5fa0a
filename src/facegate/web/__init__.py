"""The web console, the gate kiosk and resident self-service, served by ``facegate serve``.

Jinja2 templates and a little plain JavaScript; every page calls the same domain functions
as the API and the CLI (no business rule here). ``install(app)`` adds the pages to the gate
server's FastAPI app.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from facegate.errors import CsrfRejected
from facegate.web import activation, console, documents, kiosk, selfservice
from facegate.web.common import HERE, Redirect, WebFailure, render


def install(app: FastAPI) -> None:
    """Mount the pages, the static files and the HTML error pages on ``app``."""
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="web-static")
    app.include_router(console.router)
    app.include_router(documents.router)
    app.include_router(activation.router)
    app.include_router(selfservice.router)
    app.include_router(kiosk.router)

    @app.exception_handler(Redirect)
    async def _redirect(_: Request, exc: Redirect) -> Response:
        return RedirectResponse(exc.url, status_code=303)

    @app.exception_handler(WebFailure)
    async def _failure(request: Request, exc: WebFailure) -> Response:
        return render(
            request,
            "error.html",
            {**exc.page, "title_key": exc.title_key, "message": exc.message, "back": exc.back},
            status=exc.status,
        )

    @app.exception_handler(CsrfRejected)
    async def _csrf(request: Request, exc: CsrfRejected) -> Response:
        # A clear page, not a bare 403: the person learns what to do (reload, try again).
        return render(
            request,
            "error.html",
            {"title_key": "csrf_title", "message": "", "body_key": "csrf_body", "back": "/"},
            status=403,
        )

    @app.get("/lang/{code}", include_in_schema=False)
    def switch_language(request: Request, code: str) -> Response:
        from facegate.web.common import LANG_COOKIE, set_cookie
        from facegate.web.i18n import LANGS

        back = request.query_params.get("next") or "/"
        if not back.startswith("/") or back.startswith("//"):
            back = "/"
        resp = RedirectResponse(back, status_code=303)
        if code in LANGS:
            set_cookie(request, resp, LANG_COOKIE, code, 365 * 24 * 3600)
        return resp


__all__ = ["install"]
