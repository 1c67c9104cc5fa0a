"""Camera agent figures: latency to the door, decisions per approach, CPU use.

    PYTHONPATH=src python bench/agent_latency.py latency [--fps 15]
    PYTHONPATH=src python bench/agent_latency.py latency-cpu [--fps 15]
    PYTHONPATH=src python bench/agent_latency.py cpu [--seconds 20]

``latency``: the 15 identities of ../shared/data/pad_replayattack are enrolled from one of
their live videos (controlled_1, upscaled to 640x480); their other live videos (adverse_1,
adverse_2, controlled_2) are played one after another as approaches (empty scene, the person
slides into view, stays 2 s, leaves) from one video file at its frame rate, through the real
agent (in-process decisions, gallery of 15, an HTTP door receiver on loopback). Reported: from
the first gate-size frame of an approach (the first frame processed in which the face is at
least ``agent_min_face_px`` and passes the gate quality profile) to the door output returning,
p50/p95 over the approaches that were allowed; decisions per approach; allowed approaches.

``latency-cpu``: the same approaches, load-independent: each frame is processed to the end
(its decision and door output included) on the camera's clock before the next, and the CPU
time of each step stands for its duration on an idle core.

``cpu``: the agent (in process) watches a 1280x720, 15 fps H.264 stream from the GStreamer
RTSP server (a separate process, not counted) with nobody in view, then with a person
staying in view; CPU seconds of the agent process per wall second, as % of one core.

The process is pinned to one core (``sched_setaffinity``); all model runtimes use one thread.
This machine has 2 cores shared with other workloads: figures are upper bounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from edge_support import (  # noqa: E402
    DoorReceiver,
    RtspServer,
    approach_clip,
    live_videos,
    upscale,
    wait_for,
    write_avi,
)
from server_support import make_site, pipeline  # noqa: E402

from facegate.config import Settings  # noqa: E402
from facegate.domain import add_person, record_consent  # noqa: E402
from facegate.domain.enrollment import enroll  # noqa: E402
from facegate.edge.agent import Agent, AgentConfig, LocalDecider  # noqa: E402
from facegate.edge.agent.camera import FrameSource  # noqa: E402
from facegate.edge.doors.http import HttpDoor  # noqa: E402
from facegate.store.crypto import load_keyring  # noqa: E402
from facegate.store.db import Store  # noqa: E402

SHARED = Path(
    os.environ.get("FACEGATE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


def pin_one_core() -> int:
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    cv2.setNumThreads(1)
    return core


def frames_of(paths: list[Path]) -> list[np.ndarray]:
    return [cv2.imread(str(p)) for p in paths]


def site_with_everyone(data: Path) -> tuple[Settings, str, dict[str, dict[str, list[Path]]]]:
    settings = Settings(data_dir=data)
    setup = make_site(settings)
    vids = live_videos(SHARED)
    store = Store(settings.database_url)
    keyring = load_keyring(settings)
    try:
        for by_video in (vids[k] for k in sorted(vids)):
            (ctrl,) = [v for v in by_video if v.endswith("controlled_1")]
            images = [upscale(f, (640, 480))[..., ::-1] for f in frames_of(by_video[ctrl])[:3]]
            with store.session() as s:
                pid = add_person(s, actor="bench", category="resident", site_id=setup.site_id).id
                record_consent(s, actor="bench", person_id=pid)
                enroll(s, keyring, pipeline(), actor="bench", person_id=pid, images=images)
    finally:
        store.dispose()
    return settings, setup.ap_main, vids


def door_for(receiver: DoorReceiver) -> HttpDoor:
    door = HttpDoor(f"{receiver.url}/open")
    door.use_defaults(timeout_s=2.0, retries=0, open_s=3.0)
    return door


def approaches_clip(vids, fps: int) -> tuple[list[np.ndarray], int]:
    clip: list[np.ndarray] = []
    approaches = 0
    for by_video in (vids[k] for k in sorted(vids)):
        for v in sorted(by_video):
            if v.endswith(("adverse_1", "adverse_2", "controlled_2")):
                clip += approach_clip(frames_of(by_video[v]), fps=fps, empty_s=1.5)
                approaches += 1
    return clip, approaches


def latency_cpu(args: argparse.Namespace) -> None:
    """Load-independent: frames on the camera's clock, each processed to the end (its decision
    and door output included) before the next; the CPU time of that step (whole process,
    pinned to one core) stands for its duration on an otherwise idle core."""
    core = pin_one_core()
    with tempfile.TemporaryDirectory() as tmp:
        settings, ap, vids = site_with_everyone(Path(tmp) / "site")
        clip, approaches = approaches_clip(vids, args.fps)
        receiver = DoorReceiver()
        decider = LocalDecider(settings, ap, pipeline=pipeline())
        agent = Agent(
            AgentConfig.from_settings(settings, ap),
            decider,
            [door_for(receiver)],
            detector=decider.pipeline.detector,
        )
        lat, step_cpu, decide_cpu = [], [], []
        for i, frame in enumerate(clip):
            t = i / args.fps
            before = len(agent.outcomes)
            c0 = time.process_time()
            agent.process(frame, t)
            agent.wait_idle()
            cpu = time.process_time() - c0
            if len(agent.outcomes) > before:
                o = agent.outcomes[-1]
                decide_cpu.append(cpu)
                if o.decision == "allow" and o.usable_at is not None:
                    lat.append((t - o.usable_at + cpu) * 1000)
            else:
                step_cpu.append(cpu)
        agent.stop()
        decider.close()
        receiver.stop()
    decided = [o for o in agent.outcomes if o.track_id is not None]
    for a, b in zip(decided, decided[1:], strict=False):
        if b.usable_at is not None and a.usable_at is not None and b.usable_at - a.usable_at < 4:
            print(f"two decisions {b.usable_at - a.usable_at:.1f} s apart at t={a.usable_at:.1f}")
    lat.sort()
    q = statistics.quantiles(lat, n=20)
    print(f"core {core}; {approaches} approaches, {args.fps} fps 640x480 (CPU-time model)")
    print(
        f"per frame: {1000 * statistics.mean(step_cpu):.1f} ms CPU mean "
        f"(p95 {1000 * statistics.quantiles(step_cpu, n=20)[18]:.1f}); "
        f"frame with decision + door: {1000 * statistics.median(decide_cpu):.0f} ms median"
    )
    print(
        f"decisions: {len(decided)} ({len(decided) / approaches:.2f} per approach), "
        f"allowed {sum(o.decision == 'allow' for o in decided)}, doors {len(receiver.calls)}"
    )
    print(
        f"first gate-size frame -> door output fired: p50 {statistics.median(lat):.0f} ms, "
        f"p95 {q[18]:.0f} ms, max {lat[-1]:.0f} ms (n={len(lat)})"
    )


def latency(args: argparse.Namespace) -> None:
    """Wall clock: the clip played in real time through the threaded agent."""
    core = pin_one_core()
    with tempfile.TemporaryDirectory() as tmp:
        settings, ap, vids = site_with_everyone(Path(tmp) / "site")
        clip, approaches = approaches_clip(vids, args.fps)
        path = write_avi(clip, Path(tmp) / "approaches.avi", fps=args.fps)
        del clip
        receiver = DoorReceiver()
        decider = LocalDecider(settings, ap, pipeline=pipeline())
        agent = Agent(
            AgentConfig.from_settings(settings, ap),
            decider,
            [door_for(receiver)],
            detector=decider.pipeline.detector,
        )
        source = FrameSource(str(path), agent.on_frame, on_state=agent.on_camera_state)
        started = time.monotonic()
        agent.start(source)
        wait_for(lambda: source.stream_ends >= 1, 3600, "the clip to play")
        agent.stop()
        decider.close()
        receiver.stop()
        wall = time.monotonic() - started
    decided = [o for o in agent.outcomes if o.track_id is not None]
    opened = [o for o in decided if o.decision == "allow" and o.door_at and o.usable_at]
    lat = sorted((o.door_at - o.usable_at) * 1000 for o in opened)
    q = statistics.quantiles(lat, n=20) if len(lat) >= 2 else lat * 19
    frames_read = agent.metrics.frames_read._value.get()
    processed = agent.metrics.frames_processed._value.get()
    print(f"core {core}; {approaches} approaches, {args.fps} fps 640x480, {wall:.0f} s played")
    print(f"frames read {frames_read:.0f}, searched for faces {processed:.0f}")
    print(f"decisions: {len(decided)} ({len(decided) / approaches:.2f} per approach)")
    reasons: dict[str, int] = {}
    for o in decided:
        reasons[f"{o.decision}:{o.reason}"] = reasons.get(f"{o.decision}:{o.reason}", 0) + 1
    print(f"outcomes: {reasons}; door openings {len(receiver.calls)}")
    if lat:
        print(
            f"first gate-size frame -> door output fired: p50 {statistics.median(lat):.0f} ms, "
            f"p95 {q[18]:.0f} ms, max {lat[-1]:.0f} ms (n={len(lat)})"
        )


def background(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """A textured scene (a blank frame would make the decoder's work unrealistically light)."""
    img = np.full((h, w, 3), 110, np.uint8)
    for _ in range(60):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        c = tuple(int(v) for v in rng.integers(40, 220, 3))
        cv2.rectangle(
            img, (x, y), (x + int(rng.integers(20, 300)), y + int(rng.integers(20, 200))), c, -1
        )
    return cv2.GaussianBlur(img, (9, 9), 0)


def cpu_clip(person: list[np.ndarray] | None, seconds: int, fps: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    w, h = 1280, 720
    bg = background(w, h, rng)
    out = []
    n = seconds * fps
    for i in range(n):
        f = bg.copy()
        if person is not None:
            # back and forth through the live frames, the person filling the middle 960x720
            pos = (i / fps) % (2 * (len(person) - 1))
            pos = pos if pos <= len(person) - 1 else 2 * (len(person) - 1) - pos
            a, frac = int(pos), pos - int(pos)
            b = min(a + 1, len(person) - 1)
            f[:, 160:1120] = cv2.addWeighted(person[a], 1 - frac, person[b], frac, 0)
        noise = rng.integers(-6, 7, (h, w, 1), dtype=np.int16)  # sensor noise
        out.append(np.clip(f.astype(np.int16) + noise, 0, 255).astype(np.uint8))
    return out


def h264(frames: list[np.ndarray], stem: Path, fps: int) -> Path:
    """Encode once, offline, to H.264 MP4 (as an IP camera would send; the RTSP server then
    only packetises it, so its own CPU use does not starve the stream on a loaded machine)."""
    avi = write_avi(frames, stem.with_suffix(".avi"), fps)
    mp4 = stem.with_suffix(".mp4")
    subprocess.run(
        [
            "gst-launch-1.0",
            "-q",
            "filesrc",
            f"location={avi}",
            "!",
            "avidemux",
            "!",
            "jpegdec",
            "!",
            "videoconvert",
            "!",
            "x264enc",
            "speed-preset=veryfast",
            "key-int-max=30",
            "bitrate=2500",
            "!",
            "h264parse",
            "!",
            "mp4mux",
            "!",
            "filesink",
            f"location={mp4}",
        ],
        check=True,
    )
    return mp4


def cpu(args: argparse.Namespace) -> None:
    core = pin_one_core()
    fps = 15
    with tempfile.TemporaryDirectory() as tmp:
        settings, ap, vids = site_with_everyone(Path(tmp) / "site")
        ident = sorted(vids)[0]
        (v,) = [v for v in vids[ident] if v.endswith("adverse_1")]
        person = [upscale(f, (960, 720)) for f in frames_of(vids[ident][v])]
        clips = {
            "/empty": h264(cpu_clip(None, args.seconds + 8, fps), Path(tmp) / "e", fps),
            "/person": h264(cpu_clip(person, args.seconds + 8, fps), Path(tmp) / "p", fps),
        }
        server = RtspServer(clips).start()
        receiver = DoorReceiver()
        decider = LocalDecider(settings, ap, pipeline=pipeline())
        try:
            for mount, label in (("/empty", "nobody in view"), ("/person", "a person in view")):
                agent = Agent(
                    AgentConfig.from_settings(settings, ap),
                    decider,
                    [door_for(receiver)],
                    detector=decider.pipeline.detector,
                )
                source = FrameSource(
                    server.url(mount), agent.on_frame, on_state=agent.on_camera_state
                )
                agent.start(source)
                wait_for(lambda a=agent: a.camera_up, 60, "the camera")
                time.sleep(3)  # past the stream start
                c0, w0 = time.process_time(), time.monotonic()
                r0 = agent.metrics.frames_read._value.get()
                p0 = agent.metrics.frames_processed._value.get()
                time.sleep(args.seconds)
                c1, w1 = time.process_time(), time.monotonic()
                r1 = agent.metrics.frames_read._value.get()
                p1 = agent.metrics.frames_processed._value.get()
                agent.stop()
                load = 100 * (c1 - c0) / (w1 - w0)
                read = (r1 - r0) / (w1 - w0)
                print(
                    f"1280x720 {fps} fps, {label}: {load:.1f}% of one core (core {core}); "
                    f"frames read {read:.1f}/s, searched {(p1 - p0) / (w1 - w0):.1f}/s; "
                    f"decisions {len(agent.outcomes)}; at a full {fps} fps read: "
                    f"{load * fps / max(read, 0.1):.1f}%"
                )
        finally:
            decider.close()
            server.stop()
            receiver.stop()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("latency")
    p.add_argument("--fps", type=int, default=15)
    p = sub.add_parser("latency-cpu")
    p.add_argument("--fps", type=int, default=15)
    p = sub.add_parser("cpu")
    p.add_argument("--seconds", type=int, default=20)
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"face data not found at {SHARED}")
    {"latency": latency, "latency-cpu": latency_cpu, "cpu": cpu}[args.cmd](args)


if __name__ == "__main__":
    main()
