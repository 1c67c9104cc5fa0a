"""The FastAPI app factory: ``create_app(settings)`` builds one gate server."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from facegate import __version__
from facegate.api import admin, gate
from facegate.api.errors import ErrorBody, install_error_handlers
from facegate.api.limits import BodyLimitMiddleware, HstsMiddleware
from facegate.api.observability import RequestIdMiddleware
from facegate.api.runtime import GateRuntime
from facegate.config import Settings
from facegate.web import install as install_web

log = logging.getLogger("facegate.server")


class Health(BaseModel):
    status: str
    database: bool
    models_loaded: bool
    gallery_templates: int
    gallery_people: int
    sync: str


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
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(HstsMiddleware)
    app.include_router(gate.router)
    app.include_router(admin.router)
    install_web(app)  # console, kiosk and self-service pages (facegate.web, issue 8)

    @app.get("/healthz", response_model=Health, tags=["operations"])
    def healthz() -> Health:
        """Process up, database reachable, models and gallery loaded."""
        db_ok = True
        try:
            with runtime.store.session() as s:
                s.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - reported, not raised
            db_ok = False
        templates, people = runtime._galleries.sizes() if runtime._galleries else (0, 0)
        sync = "in_process"
        if runtime.is_postgres:
            listener = runtime._listener
            connected = listener is not None and listener.connected.is_set()
            sync = "listening" if connected else "disconnected"
        return Health(
            status="ok" if db_ok else "degraded",
            database=db_ok,
            models_loaded=runtime.pipeline_loaded,
            gallery_templates=templates,
            gallery_people=people,
            sync=sync,
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
        return PlainTextResponse(
            generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST
        )

    return app
