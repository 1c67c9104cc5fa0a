"""Request ids, one structured JSON log line per request, Prometheus metrics.

Nothing here ever logs a body, a query string, a template, an image or a name: only the
route, status, timing and the request id (principle 4, CAC-FR-14 security audit).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import traceback
import uuid
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("facegate.api")
_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def current_request_id() -> str | None:
    return _request_id.get()


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra fields passed as ``extra={"fields": {...}}``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or current_request_id()
        if rid:
            out["request_id"] = rid
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        return json.dumps(out, default=str)


def configure_logging(json_logs: bool = True, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_logs else logging.Formatter("%(message)s"))
    root = logging.getLogger("facegate")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


class RequestIdMiddleware:
    """Pure ASGI middleware: request id in and out, access log, and a 500 that leaks nothing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        rid = incoming if incoming and _SAFE_ID.match(incoming) else uuid.uuid4().hex
        token = _request_id.set(rid)
        scope.setdefault("state", {})["request_id"] = rid
        started = time.perf_counter()
        status = {"code": 500, "sent": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["sent"] = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            # The client went away mid-request (e.g. a gate dropping an upload): nobody is
            # left to answer and nothing failed on our side (issue 13 item 5).
            status["code"] = 499
            log.info("client disconnected before the request was read")
        except Exception as exc:  # noqa: BLE001 - the catch-all: log the type, answer 500
            # The exception's message may quote SQL parameters (a name): log only where it
            # happened, never what it said.
            frames = traceback.extract_tb(exc.__traceback__)
            ours = [f for f in frames if "/facegate/" in f.filename] or frames[-1:]
            where = " <- ".join(f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}" for f in ours[::-1])
            log.error(
                "unhandled %s",
                type(exc).__name__,
                extra={"fields": {"where": where}},
            )
            if not status["sent"]:
                body = json.dumps(
                    {
                        "code": "internal_error",
                        "message": "internal error; nothing was changed if the request failed "
                        "midway. Quote the request id when reporting it.",
                        "request_id": rid,
                    }
                ).encode()
                await send_with_id(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            log.info(
                "request",
                extra={
                    "fields": {
                        "method": scope.get("method"),
                        "route": path,
                        "status": status["code"],
                        "ms": round((time.perf_counter() - started) * 1000, 2),
                    }
                },
            )
            _request_id.reset(token)


class Metrics:
    """The server's Prometheus metrics, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.decisions = Counter(
            "facegate_decisions",
            "Access decisions by method and outcome",
            ["method", "outcome"],
            registry=self.registry,
        )
        self.decision_seconds = Histogram(
            "facegate_decision_seconds",
            "Time to decide, from request body read to response, by method",
            ["method"],
            buckets=(0.005, 0.01, 0.02, 0.04, 0.06, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2),
            registry=self.registry,
        )
        self.gallery_templates = Gauge(
            "facegate_gallery_templates",
            "Templates held in the in-memory galleries of this process",
            registry=self.registry,
        )
        self.gallery_subjects = Gauge(
            "facegate_gallery_subjects",
            "People with a template in the in-memory galleries of this process",
            registry=self.registry,
        )
        self.revocation_lag = Histogram(
            "facegate_revocation_lag_seconds",
            "Delay from a gallery change being committed to this process applying it",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        # Issue 18: whether the database answers and whether the gate decides from memory.
        self.database_up = Gauge(
            "facegate_database_up",
            "1 when the background probe reaches the database in time, else 0",
            registry=self.registry,
        )
        self.offline = Gauge(
            "facegate_offline",
            "1 while the gate decides from its in-memory copy (database away, or merging)",
            registry=self.registry,
        )
        self.offline_seconds = Gauge(
            "facegate_offline_seconds",
            "Seconds since the database went away (0 when online)",
            registry=self.registry,
        )
        self.journal_depth = Gauge(
            "facegate_offline_journal_depth",
            "Offline decisions in the local journal not yet in the database",
            registry=self.registry,
        )
        self.can_decide = Gauge(
            "facegate_can_decide",
            "1 when the gate can decide (online, or offline within offline_max_s), else 0",
            registry=self.registry,
        )
        self.abandoned = Counter(
            "facegate_decisions_abandoned",
            "Decide requests answered 503 because no decision was possible in the deadline",
            registry=self.registry,
        )
        self.busy = Counter(
            "facegate_busy_rejections",
            "Face requests refused with 503 because the inference pool was full",
            registry=self.registry,
        )

    def add_event_metrics(self, relay: Any) -> None:
        """Outbox delivery per destination (issue 15): up, and events acknowledged."""
        up = Gauge(
            "facegate_events_destination_up",
            "1 while the event destination acknowledges, 0 while events wait in the outbox",
            ["destination"],
            registry=self.registry,
        )
        sent = Gauge(
            "facegate_events_delivered",
            "Events acknowledged by the destination since the server started",
            ["destination"],
            registry=self.registry,
        )
        for sink in relay.sinks:
            up.labels(sink.name).set_function(lambda k=sink.key: float(relay.up[k]))
            sent.labels(sink.name).set_function(lambda k=sink.key: float(relay.delivered[k]))
