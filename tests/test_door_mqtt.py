"""``mqtt://`` door output against the machine's Mosquitto: one open command per allow,
acknowledged by the broker; a broker that is not there is a DoorError, not a silent no-op."""

from __future__ import annotations

import json
import secrets

import pytest
from events_support import MACHINE_BROKER, Mosquitto, Subscriber, free_port, wait_until

from facegate.edge.doors import DoorCommand, DoorError, DoorSpecError, door_from_spec

HOST, PORT = MACHINE_BROKER


def test_open_command_reaches_a_subscriber():
    topic = f"fgdoor{secrets.token_hex(4)}/main/set"
    sub = Subscriber(HOST, PORT, [topic])
    door = door_from_spec(f"mqtt://{HOST}:{PORT}/{topic}")
    plain = door_from_spec(f"mqtt://{HOST}:{PORT}/{topic}?payload=ON")
    try:
        door.open(DoorCommand("main", "req-1", subject="p-1234", open_s=4.0))
        plain.open(DoorCommand("main", "req-2"))
        assert wait_until(lambda: len(sub.messages) == 2)
        first, second = (p for _, p, _ in sub.messages)
        assert json.loads(first) == {
            "command": "open",
            "access_point_id": "main",
            "request_id": "req-1",
            "open_s": 4.0,
        }
        assert b"p-1234" not in first  # the lock needs no pseudonym
        assert second == b"ON"
        assert door.describe() == f"mqtt://{HOST}:{PORT}/{topic}"
    finally:
        door.close()
        plain.close()
        sub.close()


def test_broker_down_is_a_door_error_and_recovers(tmp_path):
    broker = Mosquitto(tmp_path / "mq")
    door = door_from_spec(f"mqtt://127.0.0.1:{broker.port}/gate/set?timeout=2")
    try:
        with pytest.raises(DoorError, match="did not take the open command"):
            door.open(DoorCommand("main", "req-1"))
        broker.start()
        sub = Subscriber("127.0.0.1", broker.port, ["gate/set"])
        door.open(DoorCommand("main", "req-2"))
        assert wait_until(lambda: len(sub.messages) == 1)
        sub.close()
    finally:
        door.close()
        broker.stop()


def test_spec_without_topic_is_refused():
    with pytest.raises(DoorSpecError, match="command topic"):
        door_from_spec(f"mqtt://127.0.0.1:{free_port()}")
