"""Request bodies are limited on the byte stream, and API keys are checked before any body.

One pure-ASGI middleware in front of every route (issue 13 items 1, 2 and 4, CAC-FR-14):

* the limit depends on the route: a decide burst, an enrollment upload, a camera photo of a
  web page, or a JSON / form body (``Settings.max_json_body_bytes``,
  ``Settings.max_form_body_bytes``); a declared Content-Length over it is answered 413 before
  one byte is read, and streamed bytes are counted so a chunked or lying client is cut off at
  the limit, whatever the route's handler does with the stream;
* a ``/v1/`` request carrying a body needs a valid API key before its body is read (401
  otherwise), so an unauthenticated client cannot make the server buffer anything;
* the body must arrive within ``Settings.body_timeout_s`` (408 otherwise): a stalled upload
  does not hold a request open for ever.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

from fastapi import HTTPException
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facegate.api.observability import current_request_id
from facegate.config import Settings

MAX_ENROLL_IMAGES = 5
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

# Routes whose body is an image upload, with how many frames they may carry.
_DECIDE = re.compile(r"^/v1/access-points/[^/]+/decide$")
_API_ENROLL = re.compile(r"^/v1/persons/[^/]+/enroll$")
_WEB_RAW = re.compile(r"^/(?:me/quality|console/quality)$")
# A camera enrollment page's challenge answer: a few frames and the nonce (issue 14).
_WEB_BURST = re.compile(r"^/(?:me/enroll|console/people/[^/]+/enroll-camera)$")
_WEB_MULTIPART = re.compile(r"^/console/people/[^/]+/enroll$")


class BodyTooLarge(HTTPException):
    """The body went past its limit on the stream (rendered as JSON 413 by the API)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than the limit of {limit:,} bytes")


class BodyTimeout(HTTPException):
    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"the request body did not arrive within {seconds:g} seconds")


def body_limit_for(settings: Settings, method: str, path: str, content_type: str) -> int:
    """The most bytes a request to this route may send (issue 13 item 1)."""
    frame = settings.max_frame_bytes
    if _DECIDE.match(path):
        return frame * settings.max_burst_frames + 64 * 1024
    if _API_ENROLL.match(path):
        return frame * MAX_ENROLL_IMAGES + 64 * 1024
    if _WEB_RAW.match(path):
        return frame
    if _WEB_BURST.match(path):
        return frame * MAX_ENROLL_IMAGES + 64 * 1024
    if _WEB_MULTIPART.match(path):
        return frame + 64 * 1024
    if content_type.startswith("application/json"):
        return settings.max_json_body_bytes
    return settings.max_form_body_bytes


def _error(status: int, code: str, message: str) -> tuple[dict[str, Any], list]:
    body = json.dumps(
        {"code": code, "message": message, "request_id": current_request_id()}
    ).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    }
    return start, [{"type": "http.response.body", "body": body}]


async def _answer(send: Send, status: int, code: str, message: str) -> None:
    start, rest = _error(status, code, message)
    await send(start)
    for m in rest:
        await send(m)


def _secret(headers: dict[bytes, bytes]) -> str | None:
    key = headers.get(b"x-api-key")
    if key:
        return key.decode("latin-1")
    auth = headers.get(b"authorization", b"")
    scheme, _, token = auth.decode("latin-1").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def _key_is_valid(store: Any, secret: str, runtime: Any = None) -> bool:
    """Whether the key exists, before any body is read. Asked of the gate's offline copy of
    its keys when the database is away (issue 18), so a gate keeps deciding; the route then
    checks the key again, scope, site and access point included."""
    from facegate.domain.credentials import lookup_api_key, sha256_hex

    if len(secret) > 200:
        return False
    offline = getattr(runtime, "offline", None)
    if offline is None:
        with store.session() as s:
            return lookup_api_key(s, secret) is not None
    from facegate.api.runtime import DB_AWAY_ERRORS

    snapshot = getattr(runtime, "snapshot", None)
    copy_ready = bool(getattr(snapshot, "ready", False))
    if offline.decide_online() or not copy_ready:
        try:
            with runtime.store.decision_session() as s:
                return lookup_api_key(s, secret) is not None
        except DB_AWAY_ERRORS as exc:
            offline.report_failure(type(exc).__name__)
            if not copy_ready:
                return False
    return offline.key(sha256_hex(secret)) is not None


class BodyLimitMiddleware:
    """Route limits on the byte stream, key before body on ``/v1/``, a body deadline."""

    def __init__(self, app: ASGIApp, settings: Settings, store: Any = None) -> None:
        self.app = app
        self.settings = settings
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        path = scope["path"]
        ctype = headers.get(b"content-type", b"").decode("latin-1").lower()
        limit = body_limit_for(self.settings, scope["method"], path, ctype)
        declared = headers.get(b"content-length")
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await _answer(send, 400, "bad_request", "Content-Length is not a number")
                return
            if size > limit:
                await _answer(
                    send,
                    413,
                    "payload_too_large",
                    f"the request body is {size:,} bytes; the limit is {limit:,}",
                )
                return
        has_body = chunked or (declared is not None and declared.strip() not in (b"", b"0"))
        if has_body and path.startswith("/v1/"):
            # Authenticate before reading a byte of the body (issue 13 item 1). The route
            # checks the key's scope, site and access point afterwards as always.
            secret = _secret(headers)
            if not secret:
                await _answer(
                    send,
                    401,
                    "unauthorized",
                    "send an API key in X-API-Key (make one with `facegate keys create`)",
                )
                return
            runtime = _runtime(scope) if self.store is None else None
            store = self.store or getattr(runtime, "store", None)
            if store is not None and not await run_in_threadpool(
                _key_is_valid, store, secret, runtime
            ):
                await _answer(send, 401, "unauthorized", "the API key is not valid or was revoked")
                return
        received = 0
        done = not has_body
        timeout = self.settings.body_timeout_s
        deadline = time.monotonic() + timeout

        async def limited_receive() -> Message:
            nonlocal received, done
            if done:
                return await receive()
            remaining = deadline - time.monotonic()
            try:
                message = await asyncio.wait_for(receive(), max(remaining, 0.001))
            except TimeoutError:
                done = True
                raise BodyTimeout(timeout) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    done = True
                    raise BodyTooLarge(limit)
                if not message.get("more_body", False):
                    done = True
            else:
                done = True
            return message

        await self.app(scope, limited_receive, send)


def _runtime(scope: Scope) -> Any:
    app = scope.get("app")
    return getattr(getattr(app, "state", None), "runtime", None)


class HstsMiddleware:
    """``Strict-Transport-Security`` on every answer given over HTTPS (issue 13 item 12).

    Browsers that once reached the server over TLS refuse plain HTTP to it afterwards, so a
    forged plain-HTTP page on the LAN cannot collect an operator's password (CAC-FR-14).
    """

    HEADER = (b"strict-transport-security", b"max-age=31536000")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("scheme") != "https":
            await self.app(scope, receive, send)
            return

        async def send_hsts(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.HEADER]}
            await send(message)

        await self.app(scope, receive, send_hsts)
