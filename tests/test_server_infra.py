"""Server building blocks that need neither the store nor the models (fast, no I/O)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from datetime import UTC, datetime

import httpx
import numpy as np
import pytest
from fastapi import FastAPI, Request

from facegate.access.burst import FrameProbe, ProbeOutcome, combine, select_probes
from facegate.access.dedup import EventDeduplicator
from facegate.access.galleries import Change, GalleryEntry, GalleryLoader, GalleryService
from facegate.access.pool import InferencePool
from facegate.access.single_process import lock_for_database
from facegate.api.errors import install_error_handlers
from facegate.api.observability import RequestIdMiddleware
from facegate.api.uploads import read_decide_input
from facegate.config import Settings
from facegate.errors import AlreadyServing, Busy, NotFound


def _app(settings: Settings) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        got = await read_decide_input(request, settings)
        return {"frames": [len(f) for f in got.frames], "card": got.card, "pin": got.pin}

    @app.get("/missing")
    async def missing() -> dict:
        raise NotFound("no such thing")

    @app.get("/crash")
    async def crash() -> dict:
        raise RuntimeError("secret name Zhang San in an SQL error")

    return app


async def _call(app: FastAPI, method: str, url: str, **kw) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        return await c.request(method, url, **kw)


def call(app: FastAPI, method: str, url: str, **kw) -> httpx.Response:
    return asyncio.run(_call(app, method, url, **kw))


SETTINGS = Settings(max_frame_bytes=2048, max_burst_frames=2)


def test_upload_forms_and_limits() -> None:
    app = _app(SETTINGS)
    r = call(app, "POST", "/echo", files=[("frame", ("a.jpg", b"x" * 10)), ("frame", ("b", b"yy"))])
    assert r.status_code == 200 and r.json()["frames"] == [10, 2]
    r = call(app, "POST", "/echo", data={"card": "C-1", "pin": "1234"})
    assert r.json()["card"] == "C-1" and r.json()["pin"] == "1234"
    r = call(app, "POST", "/echo", json={"card": "C-2"})
    assert r.json()["card"] == "C-2"
    r = call(app, "POST", "/echo", content=b"\x89PNG..", headers={"content-type": "image/png"})
    assert r.json()["frames"] == [6]
    # One frame over the per-frame limit, streamed without a Content-Length.
    big = [("frame", ("a.jpg", b"x" * 3000))]
    r = call(app, "POST", "/echo", files=big)
    assert r.status_code == 413 and r.json()["code"] == "image_too_large"

    async def gen():
        for _ in range(10):
            yield b"x" * 1000

    r = call(app, "POST", "/echo", content=gen(), headers={"content-type": "image/jpeg"})
    assert r.status_code == 413 and r.json()["code"] == "image_too_large"
    # A declared Content-Length over the body limit is refused before reading.
    r = call(
        app,
        "POST",
        "/echo",
        content=b"x",
        headers={"content-length": "999999999", "content-type": "image/jpeg"},
    )
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
    three = [("frame", ("a", b"1")), ("frame", ("b", b"2")), ("frame", ("c", b"3"))]
    assert call(app, "POST", "/echo", files=three).status_code == 422
    r = call(app, "POST", "/echo", content=b"hello", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and r.json()["code"] == "unsupported_media_type"
    r = call(app, "POST", "/echo", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_input"
    r = call(
        app,
        "POST",
        "/echo",
        content=b"--zz\r\ngarbage",
        headers={"content-type": "multipart/form-data; boundary=zz"},
    )
    assert 400 <= r.status_code < 500
    r = call(app, "POST", "/echo", data={"colour": "red"})
    assert r.status_code == 422


def test_errors_are_json_and_leak_nothing() -> None:
    app = _app(SETTINGS)
    r = call(app, "GET", "/missing", headers={"x-request-id": "abc-123"})
    assert r.status_code == 404
    assert r.json() == {"code": "not_found", "message": "no such thing", "request_id": "abc-123"}
    assert r.headers["x-request-id"] == "abc-123"
    r = call(app, "GET", "/nowhere")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = call(app, "GET", "/crash")
    assert r.status_code == 500 and r.json()["code"] == "internal_error"
    assert "Zhang" not in r.text and "SQL" not in r.text
    # A hostile request id is replaced, not echoed.
    r = call(app, "GET", "/missing", headers={"x-request-id": "<script>"})
    assert r.headers["x-request-id"] != "<script>"


def test_pool_refuses_at_once_when_full() -> None:
    pool = InferencePool(workers=1, queue=1)
    gate = threading.Event()

    async def main() -> list:
        a = asyncio.ensure_future(pool.run(gate.wait, 5))
        b = asyncio.ensure_future(pool.run(gate.wait, 5))
        await asyncio.sleep(0.05)
        with pytest.raises(Busy) as exc:
            await pool.run(lambda: 1)
        assert exc.value.details["retry_after"] == 1
        gate.set()
        return [await a, await b, await pool.run(lambda: 7)]

    assert asyncio.run(main()) == [True, True, 7]
    pool.shutdown()


def test_burst_selects_best_frames_and_requires_agreement() -> None:
    t = np.ones(4, dtype=np.float32)
    frames = [
        FrameProbe(None, 0.0, "low_quality:too_blurry"),
        FrameProbe(t, 5.0),
        FrameProbe(t, 9.0),
        FrameProbe(t, 1.0),
    ]
    chosen, why = select_probes(frames, agree=2)
    assert why == "ok" and [f.quality for f in chosen] == [9.0, 5.0]
    assert select_probes([FrameProbe(None, 0, "no_face")], 2) == ([], "no_face")
    assert (
        select_probes([FrameProbe(None, 0, "no_face"), FrameProbe(None, 0, "low_quality:x")], 2)[1]
        == "low_quality:x"
    )
    a, b = ProbeOutcome("p1", "match", 0.8), ProbeOutcome("p1", "match", 0.7)
    assert combine([a, b]) == b
    assert combine([a, ProbeOutcome("p2", "match", 0.9)]).reason == "burst_disagree"
    assert combine([a, ProbeOutcome(None, "ambiguous")]).reason == "ambiguous"
    assert combine([a, ProbeOutcome(None, "no_match")]).subject is None


def test_dedup_interval() -> None:
    now = [0.0]
    d = EventDeduplicator(10.0, clock=lambda: now[0])
    assert d.should_record(("ap", "p", "allow"))
    now[0] = 5.0
    assert not d.should_record(("ap", "p", "allow"))
    assert d.should_record(("ap", "p", "deny"))
    now[0] = 10.5
    assert d.should_record(("ap", "p", "allow"))
    d.forget(lambda k: k[1] == "p")
    assert d.should_record(("ap", "p", "allow"))


class _Loader(GalleryLoader):
    def __init__(self) -> None:
        self.entries: dict[str, list[GalleryEntry]] = {}
        self.changes: list[Change] = []

    def load_site(self, site_id):
        return [e for es in self.entries.values() for e in es]

    def load_person(self, site_id, person_id):
        return self.entries.get(person_id, [])

    def changes_since(self, seq):
        return [c for c in self.changes if c.seq > seq]

    def last_seq(self):
        return max((c.seq for c in self.changes), default=0)


def _vec(i: int) -> np.ndarray:
    v = np.zeros(8, dtype=np.float32)
    v[i] = 1.0
    return v


def test_gallery_service_scope_and_changes() -> None:
    loader = _Loader()
    loader.entries["p1"] = [GalleryEntry("p1", "t1", _vec(0), "m", None)]
    loader.entries["p2"] = [GalleryEntry("p2", "t2", _vec(1), "m", frozenset({"ap-b"}))]
    loader.entries["p3"] = [GalleryEntry("p3", "t3", _vec(2), "other-model", None)]
    lags: list[float] = []
    svc = GalleryService(loader, dim=8, model_id="m", on_applied=lags.append)
    svc.start()
    sg = svc.site("s1")
    assert svc.sizes() == (2, 2) and sg.stale_model == {"p3"}
    assert [h.subject for h in sg.search(_vec(1), "ap-a")] != ["p2"]  # p2 not in scope at ap-a
    assert sg.search(_vec(1), "ap-b")[0].subject == "p2"
    assert sg.score_of(_vec(1), "p2") == pytest.approx(1.0)
    del loader.entries["p1"]
    loader.changes.append(Change(1, "s1", "p1", "withdrawn", datetime.now(UTC)))
    assert svc.catch_up() == 1 and svc.catch_up() == 0
    assert not sg.has_person("p1") and len(lags) == 1
    assert all(h.subject != "p1" for h in sg.search(_vec(0), "ap-b"))


def test_second_process_on_same_sqlite_refuses(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'facegate.sqlite'}"
    lock = lock_for_database(url)
    assert lock is not None
    code = (
        "import sys; from facegate.access.single_process import lock_for_database as l\n"
        "from facegate.errors import AlreadyServing\n"
        f"try:\n    l({url!r})\nexcept AlreadyServing as e:\n    print(e.message); sys.exit(3)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 3 and "already serves this SQLite database" in out.stdout
    with pytest.raises(AlreadyServing):  # also within one process (a second open)
        lock_for_database(url)
    lock.release()
    lock_for_database(url).release()
    assert lock_for_database("postgresql://x@h/db") is None
