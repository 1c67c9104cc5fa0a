"""``facegate serve --events`` as a real process, on SQLite and on PostgreSQL: a card
decision over HTTP reaches a subscriber of the machine's Mosquitto."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time

import httpx
from events_support import (
    CARD,
    MACHINE_BROKER,
    Subscriber,
    clear_retained,
    free_port,
    wait_until,
)
from server_support import make_site
from store_support import *  # noqa: F403

from facegate.config import Settings
from facegate.domain import add_person, issue_card
from facegate.store.db import Store


def test_serve_events_flag_publishes_every_decision(db_url, tmp_path):
    settings = Settings(data_dir=tmp_path / "data", db_url=db_url)
    setup = make_site(settings)
    store = Store(db_url)
    with store.session() as s:
        person = add_person(s, actor="t", category="resident", site_id=setup.site_id).id
        issue_card(s, actor="t", person_id=person, card_number=CARD)
    store.dispose()
    host, port = MACHINE_BROKER
    prefix = f"fgserve{secrets.token_hex(4)}"
    sub = Subscriber(host, port, [f"{prefix}/+/+/event"])
    http_port = free_port()
    cmd = [sys.executable, "-m", "facegate", "serve", "--db", db_url, "--port", str(http_port)]
    cmd += ["--data-dir", str(settings.data_dir), "--events", f"mqtt://{host}:{port}/{prefix}"]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={
            **os.environ,
            "FACEGATE_INFERENCE_WORKERS": "1",
            "FACEGATE_EVENT_DEDUP_S": "0",
            "FACEGATE_EVENTS_DISCOVERY": "false",
        },
    )
    base = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "server did not start"
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        sent = []
        for card in (CARD, "NOPE", CARD):
            r = httpx.post(
                f"{base}/v1/access-points/{setup.ap_side}/decide",
                json={"card": card},
                headers={"X-API-Key": setup.keys["gate"]},
                timeout=30,
            )
            assert r.status_code == 200, r.text
            sent.append(r.json())
        assert wait_until(lambda: len(sub.events()) >= 3, 60)
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
    finally:
        proc.terminate()
        proc.wait(20)
        sub.close()
        clear_retained(host, port, [f"{prefix}/status"])  # leave the machine's broker clean
    got = sub.events()
    assert [e["request_id"] for e in got] == [r["request_id"] for r in sent]
    assert [e["decision"] for e in got] == ["allow", "deny", "allow"]
    assert all(e["subject"] in (person, None) for e in got)
    assert 'facegate_events_destination_up{destination="mqtt://' in metrics
    assert json.dumps(got).count(person) == 2
