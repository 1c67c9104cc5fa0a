"""Events out over MQTT, against the machine's Mosquitto (127.0.0.1:1883): one message per
decision with the documented fields and nothing else; Home Assistant discovery retained.

Each test uses its own topic prefix and site id, so parallel runs never see each other's
messages."""

from __future__ import annotations

import json
import secrets

import pytest
from events_support import (
    MACHINE_BROKER,
    PERSON_NAME,
    UNIT,
    Subscriber,
    clear_retained,
    gate_server,
    wait_until,
)

from facegate.domain.events import EVENT_FIELDS
from facegate.edge.events import StatusPublisher

HOST, PORT = MACHINE_BROKER


@pytest.fixture
def prefix() -> str:
    return f"fgtest{secrets.token_hex(4)}"


def test_every_decision_is_one_event_with_the_documented_fields(tmp_path, prefix):
    sub = Subscriber(HOST, PORT, [f"{prefix}/#", "homeassistant/event/+/config"])
    announced: list[str] = []
    try:
        with gate_server(tmp_path, [f"mqtt://{HOST}:{PORT}/{prefix}"]) as gate:
            results = [gate.decide(gate.card), gate.decide("NO-SUCH-CARD"), gate.decide(gate.card)]
            assert [r["decision"] for r in results] == ["allow", "deny", "allow"]
            assert wait_until(lambda: len(sub.events()) >= 3)
            topic = f"{prefix}/{gate.site_id}/{gate.ap}/event"
            # Discovery: the side door is announced as an event entity (retained).
            unique = f"facegate_{gate.site_id}_{gate.ap}"
            announced.append(f"homeassistant/event/facegate_{gate.site_id}_")
            assert wait_until(
                lambda: any(t == f"homeassistant/event/{unique}/config" for t, _, _ in sub.messages)
            )
        events = sub.events()
        assert len(events) == 3, events  # exactly one per decision, none twice
        assert all(t == topic for t, _, _ in sub.on("/event"))
        for event, result in zip(events, results, strict=True):
            assert tuple(event) == EVENT_FIELDS
            assert event["decision"] == result["decision"]
            assert event["request_id"] == result["request_id"]
            assert event["method"] == "card"
            assert (event["site_id"], event["access_point_id"]) == (gate.site_id, gate.ap)
        assert [e["subject"] for e in events] == [gate.person, None, gate.person]
        assert [e["reason"] for e in events] == ["ok", "unknown_credential", "ok"]
        assert len({e["event_id"] for e in events}) == 3
        for _, payload, _ in sub.on("/event"):
            text = payload.decode()
            assert PERSON_NAME not in text and "Zhang" not in text and UNIT not in text
            assert "score" not in text and "template" not in text
            assert len(payload) < 400 and payload.isascii()
        [(_, raw, _)] = [m for m in sub.messages if m[0].endswith(f"{unique}/config")]
        config = json.loads(raw)
        assert config["state_topic"] == topic
        assert config["event_types"] == ["allow", "deny"]
        assert config["unique_id"] == unique
        assert config["availability_topic"] == f"{prefix}/status"
        status = [p for t, p, _ in sub.messages if t == f"{prefix}/status"]
        assert status and status[0] == b"online"
    finally:
        sub.close()
        retained = [t for t, _, r in sub.messages if t.startswith(prefix) and "/event" not in t]
        clear_retained(HOST, PORT, [*retained, f"{prefix}/status"])
        ours = {t for t, _, _ in sub.messages for a in announced if t.startswith(a)}
        clear_retained(HOST, PORT, sorted(ours))


def test_door_state_and_agent_health_are_retained(prefix):
    pub = StatusPublisher(f"mqtt://{HOST}:{PORT}/{prefix}")
    try:
        pub.door_state("site-x", "door-1", "open")
        pub.health("site-x", "door-1", camera_up=True, frames_read=120, decisions_sent=2)
    finally:
        pub.close()
    # A client that connects afterwards still gets both: they are retained.
    late = Subscriber(HOST, PORT, [f"{prefix}/#"])
    try:
        assert wait_until(lambda: len(late.messages) >= 2)
        got = {t: (json.loads(p), retained) for t, p, retained in late.messages}
        door, retained = got[f"{prefix}/site-x/door-1/door"]
        assert retained and door["state"] == "open"
        health, retained = got[f"{prefix}/site-x/door-1/health"]
        assert retained and health["camera_up"] is True and health["frames_read"] == 120
    finally:
        late.close()
        clear_retained(HOST, PORT, [t for t, _, _ in late.messages])
