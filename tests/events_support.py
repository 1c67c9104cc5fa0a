"""Helpers for the event tests: a gate server with events on, an MQTT subscriber, and a
Mosquitto of the test's own on a free port (the machine's broker is never stopped)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from fastapi.testclient import TestClient
from server_support import make_site

from facegate.api import create_app
from facegate.audit import anchor as audit_anchor
from facegate.config import Settings
from facegate.domain import add_person, issue_card
from facegate.store.crypto import load_keyring

MACHINE_BROKER = ("127.0.0.1", 1883)
PERSON_NAME = "Zhang Wei 张伟"
UNIT = "Block 7-1203"
CARD = "10007001"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float = 30.0, every: float = 0.05) -> bool:
    """Poll ``predicate`` until true; the timeout only bounds a failing test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return bool(predicate())


class Subscriber:
    """A real MQTT client that records every message on ``topics`` (QoS 1)."""

    def __init__(
        self,
        host: str,
        port: int,
        topics: list[str],
        *,
        client_id: str | None = None,
        persistent: bool = False,
    ) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        # Event payloads the broker sent as a first delivery (DUP flag clear): a broker that
        # restarts re-sends to a persistent session what its subscriber had not acknowledged,
        # with DUP set; that is MQTT's at-least-once, not the publisher sending twice.
        self.first_deliveries: list[bytes] = []
        self.subscribed = threading.Event()
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-sub-{os.getpid()}-{time.monotonic_ns()}",
            protocol=mqtt.MQTTv311,
            clean_session=not persistent,
        )

        def on_connect(client, userdata, flags, reason_code, properties):
            client.subscribe([(t, 1) for t in topics])

        def on_subscribe(client, userdata, mid, reason_codes, properties):
            self.subscribed.set()

        def on_message(client, userdata, msg):
            with self._lock:
                self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
                if not msg.dup and msg.topic.endswith("/event"):
                    self.first_deliveries.append(bytes(msg.payload))

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = on_message
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect(host, port, keepalive=10)
        self.client.loop_start()
        assert self.subscribed.wait(10), "the test subscriber could not subscribe"

    def on(self, suffix: str) -> list[tuple[str, bytes, bool]]:
        with self._lock:
            return [m for m in self.messages if m[0].endswith(suffix)]

    def events(self) -> list[dict]:
        return [json.loads(p) for _, p, _ in self.on("/event")]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def clear_retained(host: str, port: int, topics: list[str]) -> None:
    """An empty retained message deletes the retained one: leave the broker as found."""
    c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
    c.connect(host, port)
    c.loop_start()
    try:
        for t in topics:
            c.publish(t, b"", qos=1, retain=True).wait_for_publish(10)
    finally:
        c.disconnect()
        c.loop_stop()


class Mosquitto:
    """The test's own broker: persistence on, so a subscriber's queued messages survive a
    restart of the broker (as a production broker would be configured)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {workdir}/\n"
            "autosave_interval 1\n"
            f"log_dest file {workdir}/mosquitto.log\n",
            encoding="utf-8",
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert wait_until(self._listening, 15), "mosquitto did not start"

    def _listening(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        """SIGTERM (mosquitto saves its persistence file) and wait for the port to close."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(15)
        self.proc = None
        assert wait_until(lambda: not self._listening(), 15)


@dataclass
class Gate:
    client: TestClient
    settings: Settings
    site_id: str
    ap: str  # the card door
    person: str
    card: str
    key: str

    def decide(self, card: str) -> dict:
        r = self.client.post(
            f"/v1/access-points/{self.ap}/decide",
            json={"card": card},
            headers={"X-API-Key": self.key},
        )
        assert r.status_code == 200, r.text
        return r.json()


@contextmanager
def gate_server(tmp_path: Path, events: list[str], **settings_kw) -> Iterator[Gate]:
    """A gate server (its lifespan runs the event relay) with one named person holding a
    card valid at the side door. Decisions repeat within the de-dup window are kept apart
    by ``event_dedup_s=0``."""
    settings = Settings(data_dir=tmp_path / "gate", events=events, event_dedup_s=0.0, **settings_kw)
    setup = make_site(settings)
    store = audit_anchor.open_store(settings)  # its audit entries sealed, as the server's
    with store.session() as s:
        person = add_person(
            s,
            actor="test",
            category="resident",
            name=PERSON_NAME,
            unit=UNIT,
            site_id=setup.site_id,
            keyring=load_keyring(settings),  # names are sealed under the site key
        ).id
        issue_card(s, actor="test", person_id=person, card_number=CARD)
    store.dispose()
    app = create_app(settings)
    with TestClient(app) as client:
        yield Gate(
            client,
            settings,
            setup.site_id,
            setup.ap_side,
            person,
            CARD,
            setup.keys["gate"],
        )
