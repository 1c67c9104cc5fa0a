"""Issue 13 items 1, 2 and 5: bodies limited on the byte stream, keys before bodies, client
disconnects mid-upload.

The app is driven through raw ASGI so each test counts exactly how many body bytes the
server pulled from the client: an unauthenticated or oversized request must be answered
without the server buffering the body.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from server_support import make_site

from facegate.api import create_app
from facegate.config import Settings
from facegate.domain import accounts, add_person
from facegate.store.db import Store

MB = 1024 * 1024


class Client:
    """A client that feeds a body chunk by chunk and records what the server pulled."""

    def __init__(self, chunks: Iterator[bytes], disconnect_after: int | None = None) -> None:
        self.chunks = chunks
        self.ahead = next(chunks, None)
        self.disconnect_after = disconnect_after
        self.pulled = 0
        self.messages = 0
        self.sent: list[dict] = []

    async def receive(self) -> dict:
        if self.disconnect_after is not None and self.messages >= self.disconnect_after:
            return {"type": "http.disconnect"}
        self.messages += 1
        chunk = self.ahead
        if chunk is None:
            await asyncio.sleep(3600)  # the body is over: a client waits for the answer
        self.ahead = next(self.chunks, None)
        self.pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": self.ahead is not None}

    async def send(self, message: dict) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int | None:
        for m in self.sent:
            if m["type"] == "http.response.start":
                return m["status"]
        return None

    @property
    def body(self) -> dict:
        raw = b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")
        return json.loads(raw) if raw else {}


def run(app, method: str, path: str, headers: dict[str, str], client: Client) -> Client:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }

    async def go() -> None:
        await asyncio.wait_for(app(scope, client.receive, client.send), 30)

    asyncio.run(go())
    return client


def endless(chunk: int = MB, count: int = 40) -> Iterator[bytes]:
    """``count`` chunks of JSON-looking filler: a client that never stops sending."""
    yield b'{"category": "resident", "name": "'
    for _ in range(count):
        yield b"x" * chunk


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cfg = Settings(
        data_dir=tmp_path_factory.mktemp("hard"),
        max_frame_bytes=MB,
        max_json_body_bytes=64 * 1024,
        body_timeout_s=2.0,
    )
    setup = make_site(cfg)
    store = Store(cfg.database_url)
    with store.session() as s:
        person = add_person(s, actor="test", category="resident", site_id=setup.site_id).id
        opened = accounts.open_session(
            s, kind="person", subject_id=person, lifetime=timedelta(hours=1)
        )
    store.dispose()
    app = create_app(cfg)  # no models: nothing here gets as far as decoding
    return app, setup, opened


def test_no_key_no_body_read(env):
    """Item 1: 20 MB of JSON without a key is refused before the server reads a byte of it."""
    app, _, _ = env
    for headers in (
        {"content-type": "application/json", "transfer-encoding": "chunked"},
        {"content-type": "application/json", "x-api-key": "not-a-key", "content-length": "60000"},
    ):
        c = run(app, "POST", "/v1/persons", headers, Client(endless(count=20)))
        assert c.status == 401 and c.body["code"] == "unauthorized"
        assert c.pulled == 0, f"the server read {c.pulled:,} bytes before answering 401"


def test_declared_length_over_the_limit_is_refused_unread(env):
    app, setup, _ = env
    headers = {
        "content-type": "application/json",
        "content-length": str(100 * MB),
        "x-api-key": setup.keys["admin"],
    }
    c = run(app, "POST", "/v1/notices", headers, Client(endless(count=100)))
    assert c.status == 413 and c.body["code"] == "payload_too_large"
    assert c.pulled == 0


def test_streamed_json_is_cut_off_at_the_limit(env):
    """A valid key and a body with no (or a lying) length: read only up to the JSON limit."""
    app, setup, _ = env
    for extra in ({"transfer-encoding": "chunked"}, {"content-length": "1000"}):
        headers = {"content-type": "application/json", "x-api-key": setup.keys["admin"], **extra}
        c = run(app, "POST", "/v1/persons", headers, Client(endless(chunk=16 * 1024, count=2000)))
        assert c.status in (400, 413), c.body
        assert c.pulled <= 64 * 1024 + 2 * 16 * 1024, f"read {c.pulled:,} bytes"
    # An ordinary request still works.
    body = b'{"category": "resident"}'
    headers = {
        "content-type": "application/json",
        "content-length": str(len(body)),
        "x-api-key": setup.keys["admin"],
    }
    c = run(app, "POST", "/v1/persons", headers, Client(iter([body])))
    assert c.status == 201, c.body


@pytest.mark.parametrize(
    ("path", "ctype", "frames"),
    [
        ("/me/quality", "image/jpeg", 1),
        # The enrollment challenge's answer: at most 5 frames and the nonce (issue 14).
        ("/me/enroll", "multipart/form-data; boundary=B", 5),
    ],
)
def test_raw_camera_body_is_limited_on_the_stream(env, path, ctype, frames):
    """Item 2: a resident's session sending 40 MB as a 'photo' is cut off at the frame limit."""
    app, _, opened = env
    headers = {
        "content-type": ctype,
        "cookie": f"fg_me={opened.token}",
        "x-csrf-token": opened.csrf_token,
        "transfer-encoding": "chunked",
    }
    head = b""
    if ctype.startswith("multipart/"):  # one endless frame
        head = b'--B\r\nContent-Disposition: form-data; name="frame"; filename="f.jpg"\r\n\r\n'
    body = itertools.chain([head], endless(chunk=256 * 1024, count=160))
    c = run(app, "POST", path, headers, Client(body))
    assert c.status == 413
    limit = frames * MB + (64 * 1024 if frames > 1 else 0)
    assert c.pulled <= limit + 2 * 256 * 1024, f"read {c.pulled:,} bytes"


def test_console_raw_and_form_routes_are_limited(env):
    """/console/quality and every form: a declared or streamed body past its limit is refused
    before it is read (no operator session needed to show it: the limit comes first)."""
    app, _, _ = env
    headers = {"content-type": "image/jpeg", "content-length": str(50 * MB)}
    c = run(app, "POST", "/console/quality", headers, Client(endless(count=50)))
    assert c.status == 413 and c.pulled == 0
    headers = {"content-type": "application/x-www-form-urlencoded", "transfer-encoding": "chunked"}
    c = run(app, "POST", "/console/login", headers, Client(endless(chunk=32 * 1024, count=500)))
    assert c.status == 413
    assert c.pulled <= 64 * 1024 + 2 * 32 * 1024


def test_client_disconnect_mid_upload_is_not_a_server_error(env, caplog):
    """Item 5: a gate that drops the connection mid-upload is a client disconnect, logged as
    one, never a 500 'unhandled' error."""
    app, setup, _ = env
    headers = {
        "content-type": "multipart/form-data; boundary=XyZ",
        "transfer-encoding": "chunked",
        "x-api-key": setup.keys["gate"],
    }
    head = b'--XyZ\r\nContent-Disposition: form-data; name="frame"; filename="f.jpg"\r\n\r\n'

    def chunks() -> Iterator[bytes]:
        yield head
        while True:
            yield b"\xff" * 4096

    caplog.set_level(logging.INFO, logger="facegate")
    c = run(
        app,
        "POST",
        f"/v1/access-points/{setup.ap_main}/decide",
        headers,
        Client(chunks(), disconnect_after=3),
    )
    assert c.status != 500
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    assert any("client disconnected" in r.getMessage() for r in caplog.records)


def _get(app, path: str, scheme: str = "http", **headers: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=f"{scheme}://t") as c:
            return await c.get(path, headers=headers)

    return asyncio.run(go())


def test_api_docs_are_off_by_default_and_openapi_stays(env, tmp_path):
    """Item 11: /docs and /redoc would load Swagger UI / ReDoc from a public CDN."""
    app, _, _ = env
    assert _get(app, "/docs").status_code == 404
    assert _get(app, "/redoc").status_code == 404
    assert _get(app, "/openapi.json").status_code == 200
    on = create_app(Settings(data_dir=tmp_path, api_docs=True))
    assert _get(on, "/docs").status_code == 200


def test_kiosk_page_shows_nothing_until_the_key_is_presented(env):
    """Item 11: the kiosk page names no access point; its script asks the API with the key."""
    app, setup, _ = env
    page = _get(app, f"/kiosk/{setup.ap_main}")
    unknown = _get(app, "/kiosk/ap-does-not-exist")
    assert page.status_code == unknown.status_code == 200  # not even whether it exists
    assert "main gate" not in page.text.lower()
    assert 'data-kind="card"' in page.text  # the forms are there, hidden until filled in
    url = f"/v1/access-points/{setup.ap_main}/kiosk"
    assert _get(app, url).status_code == 401
    assert _get(app, url, **{"x-api-key": setup.keys["other_gate"]}).status_code == 403
    lobby = f"/v1/access-points/{setup.ap_lobby}/kiosk"
    assert _get(app, lobby, **{"x-api-key": setup.keys["gate_main_only"]}).status_code == 403
    info = _get(app, url, **{"x-api-key": setup.keys["gate"]}).json()
    assert info["name"] == "main gate" and set(info["methods"]) == {"face", "card", "pin", "qr"}


def test_hsts_over_https_only(env):
    """Item 12: browsers are told to keep to HTTPS once they reached the server over it."""
    app, _, _ = env
    assert "max-age=" in _get(app, "/healthz", scheme="https").headers["strict-transport-security"]
    assert "strict-transport-security" not in _get(app, "/healthz").headers


def test_console_photo_upload_never_touches_the_disk(env, monkeypatch):
    """Item 1 (multipart): the console's photo form is parsed in memory within the frame
    limit; Starlette's form parser would spool a photo over 1 MB to a temporary file."""
    import tempfile

    import starlette.formparsers as fp

    app, setup, _ = env
    store = app.state.runtime.store
    with store.session() as s:
        code = accounts.issue_setup_code(s, app.state.runtime.settings, actor="test")
        op = accounts.create_first_admin(
            s, username="desk", password="a long passphrase", setup_code=code
        ).id
        opened = accounts.open_session(
            s, kind="operator", subject_id=op, lifetime=timedelta(hours=1)
        )
        person = add_person(s, actor="test", category="resident", site_id=setup.site_id).id
    rolled: list[int] = []

    class Spy(tempfile.SpooledTemporaryFile):
        def rollover(self) -> None:
            rolled.append(1)
            super().rollover()

    monkeypatch.setattr(fp, "SpooledTemporaryFile", Spy)
    photo = b"\xff\xd8\xff\xe0" + b"\x17" * (MB - 100_000)  # ~0.9 MB, not a readable image
    body = (
        b'--B\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n'
        + opened.csrf_token.encode()
        + b'\r\n--B\r\nContent-Disposition: form-data; name="photo"; filename="p.jpg"\r\n'
        + b"Content-Type: image/jpeg\r\n\r\n"
        + photo * 2  # 1.8 MB in all: over Starlette's 1 MB spool size, within 2 frames
        + b"\r\n--B--\r\n"
    )
    headers = {
        "content-type": "multipart/form-data; boundary=B",
        "content-length": str(len(body)),
        "cookie": f"fg_op={opened.token}",
    }
    big = Settings(data_dir=app.state.runtime.settings.data_dir, max_frame_bytes=2 * MB)
    app2 = create_app(big)
    c = run(app2, "POST", f"/console/people/{person}/enroll", headers, Client(iter([body])))
    assert c.status in (400, 409, 422), c.status  # refused as not an image: an HTML page
    assert not rolled, "the photo was written to a temporary file"
