"""The HTTP door driver against a real HTTP receiver, the tracker, and reader line parsing."""

from __future__ import annotations

import base64
import json

import pytest
from edge_support import DoorReceiver, free_port

from facegate.edge.agent.readers import parse_line
from facegate.edge.agent.tracker import Tracker
from facegate.edge.doors import DoorCommand, DoorError, DoorSpecError, door_from_spec
from facegate.edge.doors.http import HttpDoor

CMD = DoorCommand(access_point_id="ap-1", request_id="req-7", subject="p-abc", open_s=4.0)


@pytest.fixture
def relay():
    r = DoorReceiver()
    yield r
    r.stop()


def _door(spec: str, **defaults) -> HttpDoor:
    door = door_from_spec(spec)
    assert isinstance(door, HttpDoor)
    door.use_defaults(
        timeout_s=defaults.get("timeout_s", 2.0),
        retries=defaults.get("retries", 2),
        open_s=defaults.get("open_s", 3.0),
    )
    door.backoff_s = 0.01
    return door


def test_default_call_is_a_json_post_naming_the_decision_and_the_open_time(relay):
    door = _door(f"{relay.url}/open")
    door.open(CMD)
    (call,) = relay.calls
    assert call.method == "POST" and call.path == "/open"
    assert call.headers["Content-Type"] == "application/json"
    assert json.loads(call.body) == {
        "action": "open",
        "access_point": "ap-1",
        "request_id": "req-7",
        "open_s": 3.0,
    }


def test_method_body_headers_and_open_time_from_the_spec(relay):
    spec = (
        f"{relay.url}/relay/0?turn=on&timer={{open_s}}"
        "#method=PUT&header=X-Token:%20s3cret&header=X-Site:north"
        '&body={"pulse_ms":{open_ms},"who":"{subject}"}&content_type=application/json&open_s=1.5'
    )
    door = _door(spec)
    door.open(CMD)
    (call,) = relay.calls
    assert call.method == "PUT"
    assert call.path == "/relay/0?turn=on&timer=1.5"
    assert call.headers["X-Token"] == "s3cret" and call.headers["X-Site"] == "north"
    assert json.loads(call.body) == {"pulse_ms": 1500, "who": "p-abc"}
    assert "s3cret" not in door.describe() and "#" not in door.describe()


def test_basic_auth_from_the_url_is_sent_and_never_described(relay):
    door = _door(relay.url.replace("http://", "http://admin:pw%21@") + "/cgi#method=GET")
    door.open(CMD)
    (call,) = relay.calls
    assert call.method == "GET" and call.body == b""
    assert call.headers["Authorization"] == "Basic " + base64.b64encode(b"admin:pw!").decode()
    assert "admin" not in door.describe() and "pw" not in door.describe()


def test_a_server_error_is_retried_then_succeeds(relay):
    relay.fail_next = 2
    _door(f"{relay.url}/open", retries=2).open(CMD)
    assert len(relay.calls) == 3


def test_output_fails_after_its_retries_and_a_refusal_is_not_retried(relay):
    relay.fail_next = 10
    with pytest.raises(DoorError, match="HTTP 500"):
        _door(f"{relay.url}/open", retries=2).open(CMD)
    assert len(relay.calls) == 3
    relay.calls.clear()
    relay.fail_status = 403
    with pytest.raises(DoorError, match="HTTP 403"):
        _door(f"{relay.url}/open", retries=2).open(CMD)
    assert len(relay.calls) == 1


def test_an_unreachable_relay_fails_with_a_door_error():
    door = _door(f"http://127.0.0.1:{free_port()}/open#timeout=0.5&retries=1")
    with pytest.raises(DoorError, match="failed"):
        door.open(CMD)


@pytest.mark.parametrize(
    "spec",
    [
        "http://relay/open#method=BREW",
        "http://relay/open#colour=red",
        "http://relay/open#timeout=soon",
        "http://relay/open#retries=99",
        "http://relay/open#method=GET&body=x",
        "http:///nohost",
        "gopher://relay/open",
    ],
)
def test_bad_specs_are_refused_with_a_message(spec):
    with pytest.raises(DoorSpecError):
        door_from_spec(spec)


def test_reader_lines_become_cards_or_qr_passes():
    assert parse_line("0042\n").kind == "card"
    assert parse_line("0042\n").value == "0042"
    assert parse_line("c-12ab.secretpart").kind == "qr"
    assert parse_line("qr:c-1.s").value == "c-1.s"
    assert parse_line("card:77").kind == "card"
    assert parse_line("   ") is None
    assert parse_line("9" * 300) is None


def test_tracker_follows_one_moving_face_and_starts_over_after_it_leaves():
    tr = Tracker(lost_s=1.0, lost_frames=3)
    box = (100.0, 100.0, 120.0, 120.0)
    first = None
    for i in range(10):  # walking towards the camera: moving and growing
        b = (box[0] + 6 * i, box[1] + 3 * i, box[2] + 4 * i, box[3] + 4 * i)
        matched, _ = tr.update([b], t=i * 0.1)
        first = first or matched[0][0]
        assert matched[0][0] is first
    # Gone for less than the timeout: still the same approach.
    for i in range(10, 14):
        tr.update([], t=1.0 + (i - 10) * 0.1)
    assert tr.tracks == [first]
    _, ended = tr.update([], t=2.5)
    assert ended == [first] and tr.tracks == []
    matched, _ = tr.update([box], t=3.0)
    assert matched[0][0] is not first and tr.started == 2
