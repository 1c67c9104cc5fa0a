"""Signed webhooks: a receiver in the test verifies every delivery with the documented
function; a tampered body or a replayed (stale) request is refused; a receiver that fails
first gets the event again later, and once it acknowledges, never again."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from events_support import gate_server, wait_until

from facegate.config import Settings
from facegate.domain.events import EVENT_FIELDS
from facegate.edge.events import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    verify_signature,
)

SECRET = "s3cret-for-this-test-only-0123456789"


class Receiver:
    """A webhook receiver as an integrator would write it: verify, then accept."""

    def __init__(self, fail_first: int = 0) -> None:
        self.accepted: list[dict] = []
        self.raw: list[tuple[dict[str, str], bytes]] = []
        self.rejected = 0
        self.fail_first = fail_first
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ok = verify_signature(
                    SECRET,
                    body,
                    self.headers.get(TIMESTAMP_HEADER, ""),
                    self.headers.get(SIGNATURE_HEADER, ""),
                )
                if not ok:
                    outer.rejected += 1
                    self.send_response(401)
                elif outer.fail_first > 0:
                    outer.fail_first -= 1
                    self.send_response(503)
                else:
                    outer.raw.append((dict(self.headers), body))
                    outer.accepted.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def post(self, headers: dict[str, str], body: bytes) -> int:
        req = urllib.request.Request(self.url, data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def close(self) -> None:
        self.server.shutdown()


def test_signed_deliveries_verified_and_tampering_rejected(tmp_path):
    rx = Receiver(fail_first=2)  # the first two attempts fail: the relay retries
    try:
        url = f"{rx.url}#secret={SECRET}"
        with gate_server(tmp_path, [url], events_retry_max_s=0.3) as gate:
            results = [gate.decide(gate.card), gate.decide("NOPE"), gate.decide(gate.card)]
            assert wait_until(lambda: len(rx.accepted) >= 3)
            marker = gate.decide(gate.card)
            assert wait_until(lambda: rx.accepted[-1]["request_id"] == marker["request_id"])
        assert rx.rejected == 0
        ids = [e["event_id"] for e in rx.accepted]
        assert len(ids) == len(set(ids)) == 4  # each acknowledged event exactly once
        assert [e["request_id"] for e in rx.accepted] == [
            r["request_id"] for r in [*results, marker]
        ]
        assert all(tuple(e) == EVENT_FIELDS for e in rx.accepted)
        headers, body = rx.raw[0]
        assert headers[EVENT_ID_HEADER] == str(rx.accepted[0]["event_id"])

        # Tampering: the same signature over a changed body is refused by the receiver.
        sig_headers = {
            TIMESTAMP_HEADER: headers[TIMESTAMP_HEADER],
            SIGNATURE_HEADER: headers[SIGNATURE_HEADER],
            "Content-Type": "application/json",
        }
        tampered = body.replace(b'"allow"', b'"deny"')
        assert tampered != body
        assert rx.post(sig_headers, tampered) == 401
        # A replay of a stale request (an old timestamp, correctly signed) is refused too.
        old = str(int(time.time()) - 3600)
        stale = {
            **sig_headers,
            TIMESTAMP_HEADER: old,
            SIGNATURE_HEADER: sign(SECRET.encode(), old, body),
        }
        assert rx.post(stale, body) == 401
        # The genuine request still verifies (the receiver, not luck, made the difference).
        assert rx.post(sig_headers, body) == 204
        assert rx.rejected == 2
    finally:
        rx.close()


def test_verify_signature_rules():
    body = b'{"event_id":1}'
    now = 1_800_000_000
    ts = str(now)
    good = sign(b"k" * 20, ts, body)
    assert verify_signature(b"k" * 20, body, ts, good, now=now)
    assert not verify_signature(b"x" * 20, body, ts, good, now=now)  # wrong secret
    assert not verify_signature(b"k" * 20, body + b" ", ts, good, now=now)  # changed body
    assert not verify_signature(b"k" * 20, body, str(now + 1), good, now=now)  # changed time
    assert not verify_signature(b"k" * 20, body, ts, good, now=now + 301)  # too old
    assert not verify_signature(b"k" * 20, body, "soon", good, now=now)


@pytest.mark.parametrize(
    "url",
    [
        "http://192.168.1.20/hook#secret=0123456789abcdef",  # plain HTTP off this machine
        "https://hooks.example/x",  # no signing secret
        "ftp://example/x",
    ],
)
def test_bad_destinations_are_refused_with_a_reason(url):
    with pytest.raises(ValueError, match="event destination|signing secret"):
        Settings(events=[url])


def test_serve_refuses_a_bad_destination_without_echoing_its_secret(tmp_path):
    from typer.testing import CliRunner

    from facegate.cli.main import app

    bad = "http://10.1.1.1/hook#secret=do-not-print-this-secret"
    r = CliRunner().invoke(
        app, ["serve", "--data-dir", str(tmp_path), "--port", "0", "--events", bad]
    )
    assert r.exit_code == 2
    out = r.output + (r.stderr if r.stderr_bytes is not None else "")
    assert "event destination 'http://10.1.1.1/hook'" in out
    assert "do-not-print-this-secret" not in out
