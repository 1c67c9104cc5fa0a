"""The FastAPI app factory: ``create_app(settings)`` builds one gate server."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from facegate import __version__
from facegate.access.offline import DRAINING, OFFLINE, ONLINE
from facegate.api import admin, gate
from facegate.api.errors import ErrorBody, install_error_handlers
from facegate.api.limits import BodyLimitMiddleware, HstsMiddleware
from facegate.api.observability import RequestIdMiddleware, current_request_id
from facegate.api.runtime import DB_AWAY_ERRORS, GateRuntime
from facegate.config import Settings
from facegate.errors import DatabaseUnavailable
from facegate.web import install as install_web

log = logging.getLogger("facegate.server")


class Health(BaseModel):
    status: str = Field(
        description="ok; offline (deciding from memory, database away); draining (database "
        "back, merging the offline journal); unavailable (cannot decide: HTTP 503)"
    )
    database: bool
    models_loaded: bool
    gallery_templates: int
    gallery_people: int
    sync: str
    can_decide: bool = True
    offline_since: str | None = None
    offline_seconds: float = 0.0
    journal_depth: int = 0
    cause: str | None = None


# Served while the database is away: the decisions themselves and what a monitor reads.
_OFFLINE_PATHS = ("/healthz", "/metrics", "/docs", "/openapi.json", "/redoc")


class OfflineRefusal:
    """While the database is away, everything but decisions answers 503 at once with
    ``Retry-After``, instead of waiting on a database that does not answer (issue 18)."""

    def __init__(self, app: Any, runtime: GateRuntime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.runtime.offline.state == OFFLINE:
            path = scope.get("path", "")
            if not (path in _OFFLINE_PATHS or path.endswith("/decide")):
                exc = DatabaseUnavailable()
                headers = {"Retry-After": str(exc.details.get("retry_after", 5))}
                response: Response
                if path.startswith("/v1/"):
                    response = JSONResponse(
                        {
                            "code": exc.code,
                            "message": exc.message,
                            "request_id": current_request_id(),
                        },
                        status_code=503,
                        headers=headers,
                    )
                else:  # a page a person reads: both languages
                    from html import escape

                    from facegate.web.i18n import _T

                    title, body = _T["db_away_title"], _T["db_away_body"]
                    html = "".join(
                        f'<section lang="{lang}"><h1>{escape(title[i])}</h1>'
                        f"<p>{escape(body[i])}</p></section>"
                        for i, lang in enumerate(("zh-CN", "en"))
                    )
                    response = HTMLResponse(
                        f"<!doctype html><meta charset=utf-8><title>{escape(title[0])}</title>"
                        f"{html}",
                        status_code=503,
                        headers=headers,
                    )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    *,
    store: Any | None = None,
    pipeline: Any | None = None,
    warm_up: bool = False,
) -> FastAPI:
    """One gate server. ``store`` and ``pipeline`` may be injected (tests share the models)."""
    settings = settings or Settings()
    runtime = GateRuntime(settings, store=store, pipeline=pipeline)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if warm_up:
            await run_in_threadpool(runtime.warm_up)
        await run_in_threadpool(runtime.start_offline)
        runtime.start_sync()
        runtime.start_events()
        yield
        runtime.close()

    app = FastAPI(
        title="facegate gate server",
        version=__version__,
        description="Face access control that is lawful by construction. Errors are JSON "
        '`{"code", "message", "request_id"}`; no response ever carries a template or an image.',
        lifespan=lifespan,
        # Swagger UI and ReDoc load their scripts from a public CDN: off unless asked for
        # (issue 13 item 11; an on-site product makes no call off the site).
        docs_url="/docs" if settings.api_docs else None,
        redoc_url="/redoc" if settings.api_docs else None,
        responses={500: {"model": ErrorBody, "description": "Internal error (nothing leaked)"}},
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    # Bodies limited on the stream and keys checked before any body (issue 13 items 1, 2, 4);
    # inside the request-id middleware so its answers carry the request id.
    app.add_middleware(BodyLimitMiddleware, settings=settings)

    async def _database_away(_: Request, exc: Exception) -> JSONResponse:
        # A database that is away is a 503 with Retry-After, never a 500 (issue 18).
        runtime.offline.report_failure(type(exc).__name__)
        err = DatabaseUnavailable()
        return JSONResponse(
            {"code": err.code, "message": err.message, "request_id": current_request_id()},
            status_code=503,
            headers={"Retry-After": str(err.details["retry_after"])},
        )

    for exc_class in DB_AWAY_ERRORS:
        app.add_exception_handler(exc_class, _database_away)  # type: ignore[arg-type]

    app.add_middleware(OfflineRefusal, runtime=runtime)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(HstsMiddleware)
    app.include_router(gate.router)
    app.include_router(admin.router)
    install_web(app)  # console, kiosk and self-service pages (facegate.web, issue 8)

    @app.get(
        "/healthz",
        response_model=Health,
        tags=["operations"],
        responses={503: {"model": Health, "description": "The gate cannot decide"}},
    )
    async def healthz(response: Response) -> Health:
        """Whether the gate can decide, from the state the background probe keeps: it never
        waits on the database. HTTP 503 when it cannot decide."""
        off = runtime.offline
        off._tick()
        state = off.state
        can = off.can_decide()
        templates, people = runtime._galleries.sizes() if runtime._galleries else (0, 0)
        sync = "in_process"
        if runtime.is_postgres:
            listener = runtime._listener
            connected = listener is not None and listener.connected.is_set()
            sync = "listening" if connected else "disconnected"
        if not can:
            status = "unavailable"
        else:
            status = {ONLINE: "ok", OFFLINE: "offline", DRAINING: "draining"}.get(state, state)
        cause = None
        if state != ONLINE:
            cause = off.too_long() or (
                f"database unreachable ({off.probe.last_error or 'no answer'})"
                if state == OFFLINE
                else None
            )
        since = off.offline_since
        runtime.update_offline_metrics()
        response.status_code = 200 if can else 503
        return Health(
            status=status,
            database=off.probe.reachable,
            models_loaded=runtime.pipeline_loaded,
            gallery_templates=templates,
            gallery_people=people,
            sync=sync,
            can_decide=can,
            offline_since=since.isoformat() if since else None,
            offline_seconds=round(off.offline_for_s(), 3),
            journal_depth=runtime.journal.depth,
            cause=cause,
        )

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    def metrics(request: Request) -> PlainTextResponse:
        """Prometheus text format: decisions, latency, gallery size, revocation lag."""
        runtime.update_gallery_metrics()
        runtime.update_offline_metrics()
        return PlainTextResponse(
            generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST
        )

    return app
