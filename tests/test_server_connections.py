"""Issue 13 item 4: stalled connections are closed on a deadline, and /healthz and card
decisions keep answering while hundreds of them are open (the bench measures 2,000:
``bench/stalled_connections.py``)."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
import uvicorn
from server_support import make_site
from web_support import free_port

from facegate.api import create_app
from facegate.api.connections import uvicorn_options
from facegate.config import Settings
from facegate.domain import add_person, issue_card
from facegate.store.db import Store

STALLED = 300


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    cfg = Settings(
        data_dir=tmp_path_factory.mktemp("conn"),
        header_timeout_s=2.0,
        body_timeout_s=3.0,
        keep_alive_s=2,
    )
    setup = make_site(cfg)
    store = Store(cfg.database_url)
    with store.session() as s:
        person = add_person(s, actor="test", category="resident", site_id=setup.site_id).id
        issue_card(s, actor="test", person_id=person, card_number="C-77")
    store.dispose()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(cfg),
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            **uvicorn_options(cfg),
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    yield port, setup
    server.should_exit = True
    thread.join(10)


def _stall(port: int, kind: int, gate_key: str, ap: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    if kind == 1:  # half a request line, then nothing
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    elif kind == 2:  # an upload that stops after its headers and a few bytes
        s.sendall(
            f"POST /v1/access-points/{ap}/decide HTTP/1.1\r\nHost: x\r\n"
            f"X-API-Key: {gate_key}\r\nContent-Type: image/jpeg\r\n"
            "Content-Length: 500000\r\n\r\n".encode()
            + b"\xff\xd8" * 10
        )
    return s  # kind 0: connected, silent


def _closed_by_server(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        while True:
            data = s.recv(65536)  # a 408 answer first, then the end of the stream
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_stalled_connections_are_closed_and_the_gate_keeps_answering(served):
    port, setup = served
    socks = [_stall(port, i % 3, setup.keys["gate"], setup.ap_main) for i in range(STALLED)]
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30) as c:
            assert c.get("/healthz").status_code == 200
            r = c.post(
                f"/v1/access-points/{setup.ap_main}/decide",
                json={"card": "C-77"},
                headers={"X-API-Key": setup.keys["gate"]},
            )
            assert r.status_code == 200 and r.json()["decision"] == "allow"
        # Header deadline 2 s, body deadline 3 s (408) then keep-alive 2 s: all gone after
        # about 5 s; polled for up to 30 s (a loaded machine delays timers, not deadlines).
        still_open = list(socks)
        deadline = time.monotonic() + 30
        while still_open and time.monotonic() < deadline:
            time.sleep(1)
            still_open = [s for s in still_open if not _closed_by_server(s)]
        assert not still_open, f"{len(still_open)} of {STALLED} stalled connections still open"
    finally:
        for s in socks:
            s.close()


def test_connections_beyond_the_cap_are_closed(tmp_path):
    cfg = Settings(data_dir=tmp_path, max_connections=20, header_timeout_s=30.0)
    make_site(cfg)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(cfg),
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            **uvicorn_options(cfg),
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(40)]
        time.sleep(2)
        closed = sum(_closed_by_server(s) for s in socks)
        assert closed >= 15, f"only {closed} of 40 connections over a cap of 20 were closed"
        for s in socks:
            s.close()
    finally:
        server.should_exit = True
        thread.join(10)
