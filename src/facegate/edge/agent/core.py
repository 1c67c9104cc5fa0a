"""The camera agent: frames in, one decision per person per approach, the door obeys.

Per frame: detect faces on a downscaled copy (YuNet), follow them across frames (IoU,
``tracker``), and check each gate-size face on the full frame with the gate quality profile
(sharp, lit, frontal: ``vision.quality``). Once a person has ``agent_burst_window`` such
frames, at least ``agent_burst_gap_s`` apart (liveness reads motion across them), the best
``max_burst_frames`` of them go to the decider as one burst, in a worker so the camera keeps
being read. An ``allow`` drives every door output; anything else, including
facegate being unable to decide, leaves the door closed. The person is not decided again
until they leave (unseen for ``agent_track_lost_s``) or ``agent_redecide_s`` passes.

Frames are held only in memory, at most one burst per person, and dropped when the decision
returns (principle 3); no frame, face or credential value is ever logged.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from facegate.edge.agent.deciders import Credential, DecideUnavailable
from facegate.edge.agent.metrics import AgentMetrics
from facegate.edge.agent.tracker import Candidate, Track, Tracker
from facegate.edge.doors import DoorCommand, DoorDriver

log = logging.getLogger("facegate.edge.agent")


@dataclass(frozen=True)
class AgentConfig:
    access_point_id: str
    detect_side: int = 480
    idle_fps: float = 5.0
    min_face_px: int = 80
    burst_window: int = 2
    burst_gap_s: float = 0.4
    max_burst_frames: int = 3
    track_lost_s: float = 1.0
    redecide_s: float = 10.0
    retry_s: float = 2.0
    credential_with_face: bool = False  # card+face door (1:1): a card waits for a face
    credential_wait_s: float = 10.0
    open_s: float = 3.0

    @classmethod
    def from_settings(cls, settings: Any, access_point_id: str, **over: Any) -> AgentConfig:
        values: dict[str, Any] = {
            "detect_side": settings.agent_detect_side,
            "idle_fps": settings.agent_idle_fps,
            "min_face_px": settings.agent_min_face_px,
            "burst_window": max(settings.agent_burst_window, 1),
            "burst_gap_s": settings.agent_burst_gap_s,
            "max_burst_frames": settings.max_burst_frames,
            "track_lost_s": settings.agent_track_lost_s,
            "redecide_s": settings.agent_redecide_s,
            "retry_s": settings.agent_retry_s,
            "credential_wait_s": settings.agent_credential_wait_s,
            "open_s": settings.door_open_s,
        }
        return cls(access_point_id=access_point_id, **{**values, **over})


@dataclass
class Outcome:
    """What the agent did for one decision, kept in memory for tests and benchmarks."""

    track_id: int | None
    decision: str  # allow, deny, error
    reason: str
    method: str
    request_id: str
    frames: int
    usable_at: float | None  # first gate-size frame (monotonic)
    door_at: float | None = None  # when the door outputs fired (all of them returned)
    doors_failed: int = 0


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        decider: Any,
        doors: list[DoorDriver],
        *,
        detector: Any = None,
        metrics: AgentMetrics | None = None,
    ) -> None:
        from facegate.vision.quality import get_profile

        self.config = config
        self.decider = decider
        self.doors = doors
        if detector is None:
            from facegate.vision.detect import YuNetDetector

            detector = YuNetDetector()
        self.detector = detector
        self.metrics = metrics or AgentMetrics()
        self.tracker = Tracker(lost_s=config.track_lost_s)
        self.profile = get_profile("gate")
        self.outcomes: list[Outcome] = []
        self.camera: Any = None
        self.camera_up = False
        self._forget = False
        self._last_processed = float("-inf")
        self._slot: tuple[np.ndarray, float] | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._credentials: queue.Queue[Credential] = queue.Queue()
        self._pending_cred: tuple[Credential, float] | None = None
        self._decide_pool = ThreadPoolExecutor(1, thread_name_prefix="decide")
        self._door_pool = ThreadPoolExecutor(max(2, len(doors)), thread_name_prefix="door")
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # --- inputs --------------------------------------------------------------------------

    def on_frame(self, frame: np.ndarray, t: float) -> None:
        """From the camera thread: the newest frame replaces any not yet looked at."""
        self.metrics.frames_read.inc()
        with self._cond:
            self._slot = (frame, t)
            self._cond.notify()

    def on_camera_state(self, up: bool) -> None:
        if self.camera_up and not up:
            self.metrics.camera_reconnects.inc()
            self._forget = True  # the next frames are a new observation
        self.camera_up = up
        self.metrics.camera_up.set(1 if up else 0)

    def on_credential(self, cred: Credential) -> None:
        self._credentials.put(cred)
        with self._cond:
            self._cond.notify()

    # --- the loop ------------------------------------------------------------------------

    def start(self, camera: Any = None) -> Agent:
        self._thread = threading.Thread(target=self.run, name="agent", daemon=True)
        self._thread.start()
        if camera is not None:
            self.camera = camera
            camera.start()
        return self

    def run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                if self._slot is None and self._credentials.empty():
                    self._cond.wait(0.2)
                item, self._slot = self._slot, None
            self._take_credentials(time.monotonic())
            if item is not None:
                try:
                    self.process(*item)
                except Exception:  # noqa: BLE001 - one bad frame must not stop the door
                    log.exception("frame processing failed")

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify()
        if self.camera is not None:
            self.camera.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._decide_pool.shutdown(wait=True)
        self._door_pool.shutdown(wait=True)

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until queued decisions and door outputs are done (tests, benchmarks)."""
        for pool in (self._decide_pool, self._door_pool):
            pool.submit(lambda: None).result(timeout=timeout)

    # --- one frame -----------------------------------------------------------------------

    def detect(self, frame: np.ndarray) -> list[Any]:
        """Faces on a downscaled copy, mapped back to camera pixels."""
        from facegate.vision.detect import Detection

        h, w = frame.shape[:2]
        scale = min(1.0, self.config.detect_side / max(h, w))
        # Keep a gate-size face at least 32 px in the copy, where YuNet finds it reliably.
        scale = max(scale, min(1.0, 32.0 / self.config.min_face_px))
        if scale < 1.0:
            small = cv2.resize(frame, (round(w * scale), round(h * scale)), cv2.INTER_AREA)
        else:
            small = frame
        dets = self.detector.detect(np.ascontiguousarray(small[..., ::-1]))
        if scale >= 1.0:
            return dets
        k = 1.0 / scale
        return [
            Detection(tuple(v * k for v in d.box), d.landmarks * np.float32(k), d.score)
            for d in dets
        ]

    def process(self, frame: np.ndarray, t: float) -> None:
        from facegate.vision.embed import align_112
        from facegate.vision.quality import assess

        if self._forget:
            self._forget = False
            self.tracker.clear()
        idle = self.config.idle_fps
        collecting = any(tr.state == "collecting" for tr in self.tracker.tracks)
        if idle and not collecting and t - self._last_processed < 1.0 / idle:
            # Nobody in view (a person takes longer than this to reach gate size), or only
            # people already decided: following them needs no more than this rate.
            return
        self._last_processed = t
        self.metrics.frames_processed.inc()
        dets = self.detect(frame)
        started = self.tracker.started
        matched, ended = self.tracker.update([d.box for d in dets], t)
        if log.isEnabledFor(logging.DEBUG):
            for track, _ in matched[len(matched) - (self.tracker.started - started) :]:
                log.debug("track %d starts at %.2f box %s", track.id, t, track.box)
            for track in ended:
                log.debug("track %d ends at %.2f (%s)", track.id, t, track.state)
        for track in ended:
            # Gone before the burst was full: no decision (a split track of someone already
            # decided must not open the door again); the frames go.
            track.drop_frames()
        h, w = frame.shape[:2]
        rgb = None
        for track, i in matched:
            det = dets[i]
            if not self._wants_frames(track, t):
                continue
            if det.size < self.config.min_face_px:
                continue
            if track.candidates and t - track.candidates[-1].t < self.config.burst_gap_s:
                # Liveness reads motion across the burst (issue 14): frames 1/15 s apart show
                # a live face as still as a photo, so the burst's frames are spread in time.
                continue
            if rgb is None:
                rgb = np.ascontiguousarray(frame[..., ::-1])
            chip = align_112(rgb, [det])[0]
            q = assess(det, chip, (w, h), dets, self.profile)
            if not q.ok:
                continue
            if track.first_usable is None:
                track.first_usable = t
            sharp = float(q.metrics.get("sharpness", 1.0))
            track.candidates.append(Candidate(frame, det.size * det.score * min(sharp, 200), t))
            self._maybe_decide(track, t)

    def _wants_frames(self, track: Track, t: float) -> bool:
        if track.state == "pending":
            return False
        if track.state == "decided":
            again = track.retry_at if track.retry_at is not None else None
            if again is None and track.decided_at is not None:
                again = track.decided_at + self.config.redecide_s
            if again is None or t < again:
                return False
            track.state, track.retry_at, track.first_usable = "collecting", None, None
        return True

    def _take_credentials(self, now: float) -> None:
        while True:
            try:
                cred = self._credentials.get_nowait()
            except queue.Empty:
                break
            if self.config.credential_with_face:
                self._pending_cred = (cred, now)  # the newest card wins
                for track in self.tracker.tracks:
                    self._maybe_decide(track, now)
            else:
                self._submit(None, [], cred, None, now)
        if self._pending_cred and now - self._pending_cred[1] > self.config.credential_wait_s:
            log.info(
                "reader: a %s was not followed by a face within %.0f s; dropped",
                self._pending_cred[0].kind,
                self.config.credential_wait_s,
            )
            self._pending_cred = None

    def _maybe_decide(self, track: Track, t: float) -> None:
        c = self.config
        if track.state != "collecting" or not track.candidates:
            return
        if c.credential_with_face:
            # 1:1 door: frames wait for a card; keep the newest window only.
            del track.candidates[: -c.burst_window]
            if self._pending_cred is None:
                return
            if len(track.candidates) < c.burst_window:
                return
            cred, self._pending_cred = self._pending_cred[0], None
        else:
            if len(track.candidates) < c.burst_window:
                return
            cred = None
        log.debug("track %d: burst of %d at %.2f", track.id, len(track.candidates), t)
        best = sorted(track.candidates, key=lambda x: x.rank, reverse=True)[: c.max_burst_frames]
        frames = [x.frame for x in sorted(best, key=lambda x: x.t)]  # time order, for liveness
        track.drop_frames()
        track.state = "pending"
        self._submit(track, frames, cred, track.first_usable, t)

    def _submit(
        self,
        track: Track | None,
        frames: list[np.ndarray],
        cred: Credential | None,
        usable_at: float | None,
        t: float,
    ) -> None:
        self._decide_pool.submit(self._decide_job, track, frames, cred, usable_at, t)

    def _decide_job(self, track, frames, cred, usable_at, t: float) -> None:
        """``t``: the camera time the burst was sent; the re-decide interval counts from it."""
        n = len(frames)
        try:
            answer = self.decider.decide(frames, cred)
        except DecideUnavailable as exc:
            answer = None
            log.error("no decision, the door stays closed: %s", exc.message)
        except Exception:  # noqa: BLE001 - fail closed on anything unexpected
            answer = None
            log.exception("no decision, the door stays closed")
        finally:
            frames.clear()  # principle 3: the frames go with the decision
        if track is not None:
            track.decisions += 1
            track.decided_at = t
            track.retry_at = t + self.config.retry_s if answer is None else None
            track.state = "decided"
        if answer is None:
            self.metrics.decisions.labels("error").inc()
            self._record(Outcome(track.id if track else None, "error", "", "", "", n, usable_at))
            return
        outcome = Outcome(
            track.id if track else None,
            answer["decision"],
            answer.get("reason", ""),
            answer.get("method", ""),
            answer.get("request_id", ""),
            n,
            usable_at,
        )
        self.metrics.decisions.labels(outcome.decision).inc()
        log.info(
            "decision %s (%s, %s) request %s",
            outcome.decision,
            outcome.method,
            outcome.reason,
            outcome.request_id,
        )
        self._record(outcome)
        if outcome.decision == "allow" and self.doors:
            cmd = DoorCommand(
                access_point_id=self.config.access_point_id,
                request_id=outcome.request_id,
                subject=answer.get("subject"),
                card_number=cred.value if cred is not None and cred.kind == "card" else None,
                open_s=self.config.open_s,
            )
            self._door_pool.submit(self._open_doors, cmd, outcome)

    def _open_doors(self, cmd: DoorCommand, outcome: Outcome) -> None:
        from facegate.edge.doors import DoorError

        for door in self.doors:
            name = door.describe()
            try:
                door.open(cmd)
            except Exception as exc:  # noqa: BLE001 - any driver failure is a failed output
                msg = exc.message if isinstance(exc, DoorError) else type(exc).__name__
                log.error("door output %s failed for request %s: %s", name, cmd.request_id, msg)
                self.metrics.door_failures.labels(name).inc()
                outcome.doors_failed += 1
                try:
                    self.decider.report_door_failure(cmd.request_id, name, msg)
                except Exception:  # noqa: BLE001 - the log line above still says it
                    log.exception("door_output_failed could not be recorded")
                continue
            self.metrics.door_opens.labels(name).inc()
        outcome.door_at = time.monotonic()
        if outcome.usable_at is not None and outcome.doors_failed < len(self.doors):
            self.metrics.usable_to_door.observe(outcome.door_at - outcome.usable_at)

    def _record(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)
            del self.outcomes[:-1000]
