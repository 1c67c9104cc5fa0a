"""The camera agent against real peers: a GStreamer RTSP server and an MJPEG HTTP camera,
each playing a clip made at test time from a LIVE webcam sequence of ../shared/data, an HTTP
door receiver counting calls, and in-process or ``facegate serve`` decisions.

One play of a clip is one approach (the person enters, stays about 2 s, leaves). Asserted: the
door opens once per approach for the enrolled person and never for the stranger, the agent
survives the camera dropping and coming back, and the door stays closed when facegate cannot
decide. Behaviour only, never timings.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time

import httpx
import pytest
from edge_support import (
    ENROLLED,
    STRANGER,
    DoorReceiver,
    MjpegServer,
    RtspServer,
    approach_clip,
    free_port,
    live_frames,
    rtsp_available,
    upscale,
    wait_for,
    write_avi,
)
from server_support import make_site, pipeline
from sqlalchemy import select

from facegate.config import Settings
from facegate.domain import add_person, issue_card, record_consent
from facegate.domain.enrollment import enroll
from facegate.edge.agent import Agent, AgentConfig, LocalDecider, RemoteDecider
from facegate.edge.agent.camera import FrameSource
from facegate.edge.agent.readers import LineReader
from facegate.edge.doors.http import HttpDoor
from facegate.store.crypto import load_keyring
from facegate.store.db import Store
from facegate.store.models import AccessEvent, AuditEntry

CARD = "73059182"


@pytest.fixture(scope="module")
def gate(tmp_path_factory, shared_data):
    """A site whose main gate has face on; the enrolled person enrolled from ANOTHER of their
    live videos (upscaled: 320x240 webcam frames are below the enroll profile's size)."""
    data = tmp_path_factory.mktemp("agent-site")
    settings = Settings(data_dir=data)
    setup = make_site(settings)
    enroll_frames = live_frames(shared_data, ENROLLED, "controlled_1")
    store = Store(settings.database_url)
    try:
        with store.session() as s:
            pid = add_person(s, actor="test", category="resident", site_id=setup.site_id).id
            record_consent(s, actor="test", person_id=pid)
            enroll(
                s,
                load_keyring(settings),
                pipeline(),
                actor="test",
                person_id=pid,
                images=[upscale(f, (640, 480))[..., ::-1] for f in enroll_frames[:3]],
            )
            issue_card(s, actor="test", person_id=pid, card_number=CARD)
    finally:
        store.dispose()
    clips = {
        "enrolled": approach_clip(live_frames(shared_data, ENROLLED, "adverse_1")),
        "stranger": approach_clip(live_frames(shared_data, STRANGER, "adverse_1")),
    }
    return setup, pid, clips


def _agent(setup, decider, doors, **over) -> Agent:
    config = AgentConfig.from_settings(setup.settings, setup.ap_main, **over)
    detector = decider.pipeline.detector if isinstance(decider, LocalDecider) else None
    return Agent(config, decider, doors, detector=detector)


def _door(receiver: DoorReceiver, fragment: str = "") -> HttpDoor:
    door = HttpDoor(f"{receiver.url}/relay/0?turn=on&timer={{open_s}}{fragment}")
    door.use_defaults(timeout_s=2.0, retries=1, open_s=3.0)
    door.backoff_s = 0.01
    return door


def _run_plays(agent: Agent, url: str, plays: int, timeout: float = 120) -> FrameSource:
    """Let the agent watch ``plays`` complete plays of the clip (one approach each)."""
    source = FrameSource(url, agent.on_frame, on_state=agent.on_camera_state, timeout_s=10)
    agent.start(source)
    try:
        wait_for(lambda: source.stream_ends >= plays, timeout, f"{plays} plays of {url}")
    finally:
        agent.stop()  # waits for decisions in flight and their door outputs
    return source


def _local(setup) -> LocalDecider:
    return LocalDecider(setup.settings, setup.ap_main, pipeline=pipeline())


def test_rtsp_door_opens_once_per_approach_for_the_enrolled_never_for_a_stranger(gate, tmp_path):
    why = rtsp_available()
    if why:
        pytest.skip(why)
    setup, pid, clips = gate
    server = RtspServer(
        {
            "/enrolled": write_avi(clips["enrolled"], tmp_path / "enrolled.avi"),
            "/stranger": write_avi(clips["stranger"], tmp_path / "stranger.avi"),
        }
    ).start()
    receiver = DoorReceiver()
    decider = _local(setup)
    try:
        agent = _agent(setup, decider, [_door(receiver)])
        _run_plays(agent, server.url("/enrolled"), plays=2)
        decided = [o for o in agent.outcomes if o.track_id is not None]
        assert [o.decision for o in decided] == ["allow", "allow"], decided
        assert len({o.track_id for o in decided}) == 2  # one decision per approach
        assert len(receiver.calls) == 2
        assert receiver.calls[0].method == "POST"
        assert receiver.calls[0].path == "/relay/0?turn=on&timer=3"
        assert agent.metrics.door_opens.labels(_door(receiver).describe())._value.get() == 2

        stranger = _agent(setup, decider, [_door(receiver)])
        _run_plays(stranger, server.url("/stranger"), plays=2)
        decided = [o for o in stranger.outcomes if o.track_id is not None]
        assert [(o.decision, o.reason) for o in decided] == [("deny", "no_match")] * 2
        assert len(receiver.calls) == 2  # never for the stranger
    finally:
        decider.close()
        server.stop()
        receiver.stop()
    with Store(setup.settings.database_url).session() as s:
        allowed = s.execute(
            select(AccessEvent).where(
                AccessEvent.person_pseudonym == pid, AccessEvent.outcome == "allow"
            )
        ).scalars()
        assert all(e.method == "face" for e in allowed)


def test_agent_survives_the_rtsp_server_going_away_and_coming_back(gate, tmp_path):
    why = rtsp_available()
    if why:
        pytest.skip(why)
    setup, _, clips = gate
    clip = write_avi(clips["enrolled"], tmp_path / "enrolled.avi")
    server = RtspServer({"/cam": clip}).start()
    receiver = DoorReceiver()
    decider = _local(setup)
    agent = _agent(setup, decider, [_door(receiver)])
    source = FrameSource(
        server.url("/cam"),
        agent.on_frame,
        on_state=agent.on_camera_state,
        reconnect_min_s=0.2,
        reconnect_max_s=1.0,
        timeout_s=5,
    )
    agent.start(source)
    try:
        wait_for(lambda: len(receiver.calls) >= 1, 90, "the first door opening")
        server.stop()  # the camera goes away mid-stream or between plays
        wait_for(lambda: not agent.camera_up, 30, "the agent to see the camera down")
        connects = source.connects
        time.sleep(1.5)  # it keeps trying while the camera is away
        assert source.connects == connects
        server = RtspServer({"/cam": clip}, port=server.port).start()
        wait_for(lambda: agent.camera_up, 60, "the agent to reconnect")
        wait_for(lambda: len(receiver.calls) >= 2, 90, "a door opening after the reconnect")
    finally:
        agent.stop()
        decider.close()
        server.stop()
        receiver.stop()
    assert agent.metrics.camera_reconnects._value.get() >= 1
    assert all(o.decision == "allow" for o in agent.outcomes)


def test_mjpeg_door_opens_once_per_approach_for_the_enrolled_never_for_a_stranger(gate):
    setup, _, clips = gate
    camera = MjpegServer({"/enrolled.mjpg": clips["enrolled"], "/stranger.mjpg": clips["stranger"]})
    receiver = DoorReceiver()
    decider = _local(setup)
    try:
        agent = _agent(setup, decider, [_door(receiver)])
        _run_plays(agent, camera.url("/enrolled.mjpg"), plays=2)
        decided = [o for o in agent.outcomes if o.track_id is not None]
        assert [o.decision for o in decided] == ["allow", "allow"], decided
        assert len(receiver.calls) == 2
        stranger = _agent(setup, decider, [_door(receiver)])
        _run_plays(stranger, camera.url("/stranger.mjpg"), plays=1)
        decided = [o for o in stranger.outcomes if o.track_id is not None]
        assert [(o.decision, o.reason) for o in decided] == [("deny", "no_match")]
        assert len(receiver.calls) == 2
    finally:
        decider.close()
        camera.stop()
        receiver.stop()


def test_a_failed_door_output_is_logged_counted_and_recorded_the_decision_stays(gate):
    setup, pid, clips = gate
    camera = MjpegServer({"/enrolled.mjpg": clips["enrolled"]})
    receiver = DoorReceiver(fail_next=100)  # the relay answers 500 to every call
    decider = _local(setup)
    door = _door(receiver)
    try:
        agent = _agent(setup, decider, [door])
        _run_plays(agent, camera.url("/enrolled.mjpg"), plays=1)
    finally:
        decider.close()
        camera.stop()
        receiver.stop()
    (allowed,) = [o for o in agent.outcomes if o.decision == "allow"]
    assert len(receiver.calls) == 2  # one try and one retry
    assert allowed.doors_failed == 1
    assert agent.metrics.door_failures.labels(door.describe())._value.get() == 1
    assert agent.metrics.door_opens.labels(door.describe())._value.get() == 0
    with Store(setup.settings.database_url).session() as s:
        entries = s.execute(
            select(AuditEntry).where(AuditEntry.operation == "door_output_failed")
        ).scalars()
        failed = [e for e in entries if e.details.get("request_id") == allowed.request_id]
        assert len(failed) == 1
        assert failed[0].details["door"] == door.describe()
        assert "500" in failed[0].details["error"]
        event = s.execute(
            select(AccessEvent).where(AccessEvent.request_id == allowed.request_id)
        ).scalar_one_or_none()
    # The decision stays recorded (unless folded into an identical one seconds earlier).
    assert event is None or (event.outcome == "allow" and event.person_pseudonym == pid)


def test_card_alone_and_card_with_face_from_a_keyboard_wedge_reader(gate):
    setup, pid, clips = gate
    receiver = DoorReceiver()
    decider = _local(setup)
    try:
        # Card alone: the reader's line decides at once, no camera needed.
        agent = _agent(setup, decider, [_door(receiver)])
        agent.start()
        LineReader(io.StringIO(f"{CARD}\n9999\n\n"), agent.on_credential).start()
        wait_for(lambda: len(agent.outcomes) == 2, 60, "two card decisions")
        agent.stop()
        got = sorted((o.method, o.decision, o.reason) for o in agent.outcomes)
        assert got == [("card", "allow", "ok"), ("card", "deny", "unknown_credential")]
        assert len(receiver.calls) == 1

        # Card + face (1:1): the card waits for the face; the burst goes with it.
        camera = MjpegServer({"/enrolled.mjpg": clips["enrolled"]})
        agent = _agent(setup, decider, [_door(receiver)], credential_with_face=True)
        agent.on_credential(LineReader.parse(f"{CARD}\n"))
        try:
            _run_plays(agent, camera.url("/enrolled.mjpg"), plays=2)
        finally:
            camera.stop()
        # The second approach brought no card: a card+face door makes no face-only decision.
        assert [(o.method, o.decision) for o in agent.outcomes] == [("card+face", "allow")]
        assert len(receiver.calls) == 2
    finally:
        decider.close()
        receiver.stop()


def test_door_stays_closed_when_the_gate_server_cannot_be_reached(gate):
    setup, _, clips = gate
    camera = MjpegServer({"/enrolled.mjpg": clips["enrolled"]})
    receiver = DoorReceiver()
    port = free_port()  # nothing listens here
    decider = RemoteDecider(f"http://127.0.0.1:{port}", setup.keys["gate"], setup.ap_main, 2.0)
    try:
        agent = _agent(setup, decider, [_door(receiver)])
        _run_plays(agent, camera.url("/enrolled.mjpg"), plays=1)
    finally:
        decider.close()
        camera.stop()
        receiver.stop()
    assert agent.outcomes and all(o.decision == "error" for o in agent.outcomes)
    assert receiver.calls == []
    assert agent.metrics.decisions.labels("error")._value.get() >= 1


def test_server_mode_decides_through_a_real_facegate_serve(gate):
    setup, pid, clips = gate
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "facegate",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(setup.settings.data_dir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "FACEGATE_INFERENCE_WORKERS": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    camera = MjpegServer({"/enrolled.mjpg": clips["enrolled"], "/stranger.mjpg": clips["stranger"]})
    receiver = DoorReceiver(fail_next=2)  # the first opening fails (try + retry)
    decider = RemoteDecider(base, setup.keys["gate"], setup.ap_main, 30.0)
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read().decode()[-2000:])
            try:
                return httpx.get(f"{base}/healthz", timeout=1).json()["models_loaded"]
            except (httpx.TransportError, ValueError, KeyError):
                return False

        wait_for(ready, 120, "facegate serve")
        agent = _agent(setup, decider, [_door(receiver)])
        _run_plays(agent, camera.url("/enrolled.mjpg"), plays=2)
        stranger = _agent(setup, decider, [_door(receiver)])
        _run_plays(stranger, camera.url("/stranger.mjpg"), plays=1)
    finally:
        decider.close()
        camera.stop()
        receiver.stop()
        proc.terminate()
        proc.wait(30)
    decided = [o for o in agent.outcomes if o.track_id is not None]
    assert [(o.decision, o.method) for o in decided] == [("allow", "face")] * 2
    assert [o.decision for o in stranger.outcomes] == ["deny"]
    assert len(receiver.calls) == 3  # 2 for the failed first opening, 1 for the second
    assert [o.doors_failed for o in decided] == [1, 0]
    with Store(setup.settings.database_url).session() as s:
        entries = s.execute(
            select(AuditEntry).where(AuditEntry.operation == "door_output_failed")
        ).scalars()
        assert decided[0].request_id in {e.details.get("request_id") for e in entries}


def test_agent_command_refuses_without_a_door_or_key(tmp_path):
    from typer.testing import CliRunner

    from facegate.cli.main import app

    r = CliRunner().invoke(app, ["agent", "--access-point", "ap-x", "--camera", "x.mp4"])
    assert r.exit_code == 2 and "--door" in r.output
    r = CliRunner().invoke(
        app,
        [
            "agent",
            "--access-point",
            "ap-x",
            "--camera",
            "x.mp4",
            "--door",
            "http://h/",
            "--server",
            "http://127.0.0.1:1",
        ],
        env={"FACEGATE_AGENT_KEY": ""},
    )
    assert r.exit_code == 2 and "gate key" in r.output
    r = CliRunner().invoke(
        app,
        ["agent", "--access-point", "ap-x", "--camera", "x.mp4", "--door", "ftp://h/"],
    )
    assert r.exit_code == 2 and "not supported" in r.output


def test_facegate_agent_command_end_to_end_with_a_video_file_and_a_wedge_reader(gate, tmp_path):
    """The command itself: a video file as the camera, a card typed on stdin, /metrics."""
    setup, _, clips = gate
    clip = write_avi(clips["enrolled"], tmp_path / "door.avi")
    receiver = DoorReceiver()
    metrics_port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "facegate",
            "agent",
            "--access-point",
            setup.ap_main,
            "--camera",
            str(clip),
            "--door",
            f"{receiver.url}/open#retries=0",
            "--reader",
            "-",
            "--metrics-port",
            str(metrics_port),
            "--data-dir",
            str(setup.settings.data_dir),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def metrics() -> str:
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read()[-2000:])
            try:
                return httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=1).text
            except httpx.TransportError:
                return ""

        wait_for(lambda: "facegate_agent_camera_up 1.0" in metrics(), 120, "the camera up")
        proc.stdin.write(f"{CARD}\n")
        proc.stdin.flush()
        wait_for(lambda: len(receiver.calls) >= 2, 120, "a card and a face opening")
        text = metrics()
        assert 'facegate_agent_decisions_total{outcome="allow"}' in text
        assert "facegate_agent_frames_read_total" in text
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
        receiver.stop()
    assert proc.returncode == 0, err[-2000:]
    assert CARD not in err  # a credential value is never logged
    assert "decision allow" in err


class RecordingDecider:
    """Observes what the agent sends (the real deciders are exercised by the tests above)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, object]] = []

    def decide(self, frames, credential):
        self.calls.append((len(frames), credential))
        return {
            "decision": "allow",
            "method": "face",
            "subject": "p-x",
            "reason": "ok",
            "request_id": f"r{len(self.calls)}",
        }

    def report_door_failure(self, *args) -> None:
        raise AssertionError("no door output here")


def test_one_decision_per_approach_and_again_only_after_the_interval(gate):
    """Frames fed on a simulated camera clock: a person staying 25 s is decided at the start
    and every ``redecide_s`` (10 s) after; after leaving and coming back, once more."""
    setup, _, clips = gate
    frames = clips["enrolled"]
    empty = frames[0]
    stay = frames[15:35]  # the person fully in view
    decider = RecordingDecider()
    agent = _agent(setup, decider, [], redecide_s=10.0, idle_fps=0.0)
    agent.detector = pipeline().detector
    t = 0.0

    def feed(frame) -> None:
        nonlocal t
        agent.process(frame, t)
        agent.wait_idle()
        t += 0.1

    for i in range(250):  # 25 s in view
        feed(stay[i % len(stay)])
    assert len(decider.calls) == 3
    for _ in range(20):  # 2 s nobody: the person has gone
        feed(empty)
    for i in range(30):  # back for 3 s: a new approach
        feed(stay[i % len(stay)])
    agent.stop()
    assert len(decider.calls) == 4
    burst = min(agent.config.burst_window, agent.config.max_burst_frames)
    assert all(n == burst and c is None for n, c in decider.calls)
    assert all(o.frames == burst for o in agent.outcomes)


def test_agent_warns_at_a_challenge_point_and_runs_on(tmp_path):
    """A camera agent asks nobody to move: at an access point whose liveness is `challenge`
    no face would open, so `facegate agent` says so, in both languages, with the fix."""
    import select

    import numpy as np

    from facegate.domain.liveness_policy import set_access_point_liveness

    settings = Settings(data_dir=tmp_path / "site")
    setup = make_site(settings)
    store = Store(settings.database_url)
    try:
        with store.session() as s:
            set_access_point_liveness(
                s, actor="test", access_point_id=setup.ap_main, policy="challenge"
            )
    finally:
        store.dispose()
    clip = write_avi([np.full((240, 320, 3), 96, np.uint8)] * 10, tmp_path / "empty.avi")
    proc = subprocess.Popen(
        [sys.executable, "-m", "facegate", "agent", "--access-point", setup.ap_main]
        + ["--camera", str(clip), "--door", "http://127.0.0.1:9/open", "--metrics-port", "0"]
        + ["--data-dir", str(settings.data_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen = ""
        deadline = time.monotonic() + 120
        while "警告" not in seen and time.monotonic() < deadline and proc.poll() is None:
            # Never block on a silent process: read only what is there.
            if select.select([proc.stderr], [], [], 1.0)[0]:
                seen += proc.stderr.readline()
        assert f"facegate access-point liveness {setup.ap_main} passive" in seen, seen
        assert "no face will open it" in seen and "刷脸不会开门" in seen
        assert proc.poll() is None  # a warning: cards and QR passes still work there
    finally:
        proc.terminate()
        proc.wait(timeout=30)
