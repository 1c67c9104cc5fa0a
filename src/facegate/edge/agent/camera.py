"""Camera frames in: RTSP, HTTP(S) MJPEG, a local device or a video file, with reconnects.

Frames are read with OpenCV's FFmpeg backend, not PyAV: ``opencv-python-headless`` is already
a dependency (no new package), its wheel carries an FFmpeg built with RTSP, HTTP(S) and MJPEG
(``cv2.getBuildInformation()``: FFMPEG YES), it has open and read timeouts, and it hands over
BGR ``numpy`` arrays that YuNet takes as they are. PyAV would give finer control of the
demuxer (per-packet timestamps, hardware decoders) at the cost of a second FFmpeg in the
environment; nothing the agent does needs that. Local devices (``/dev/videoN``) use OpenCV's
V4L2 backend.

Frames live only in memory: each one replaces the previous in a one-frame slot (principle 3,
nothing written to disk), so a slow consumer skips frames instead of falling behind.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger("facegate.edge.camera")

# RTSP over TCP: a gate camera on a busy LAN loses UDP packets, which shows as smeared frames.
os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")

_DEVICE = re.compile(r"^(/dev/video(\d+)|\d+)$")


def describe_source(source: str) -> str:
    """The source without user and password, for logs."""
    return re.sub(r"//[^/@]*@", "//***@", source)


class FrameSource:
    """Reads one camera in a thread and reconnects with backoff while it is down.

    ``on_frame(frame_bgr, t_monotonic)`` gets every frame read; ``on_state(up)`` is told when
    the camera comes up or goes down. A video file plays at its own frame rate and starts again
    at its end, like a camera that never stops (for demos and tests).
    """

    def __init__(
        self,
        source: str,
        on_frame: Callable[[np.ndarray, float], None],
        *,
        on_state: Callable[[bool], None] | None = None,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 10.0,
        timeout_s: float = 5.0,
    ) -> None:
        self.source = source
        self.on_frame = on_frame
        self.on_state = on_state or (lambda up: None)
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = max(reconnect_max_s, reconnect_min_s)
        self.timeout_ms = int(timeout_s * 1000)
        self.is_file = Path(source).is_file()
        self.stream_ends = 0  # the stream ended or dropped after delivering frames
        self.connects = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _open(self) -> cv2.VideoCapture:
        m = _DEVICE.match(self.source)
        if m:
            index = int(m[2] if m[2] is not None else m[1])
            return cv2.VideoCapture(index, cv2.CAP_V4L2)
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            self.timeout_ms,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            self.timeout_ms,
        ]
        return cv2.VideoCapture(self.source, cv2.CAP_FFMPEG, params)

    def start(self) -> FrameSource:
        self._thread = threading.Thread(target=self.run, name="camera", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_ms / 1000 + 5)

    def run(self) -> None:
        backoff = self.reconnect_min_s
        name = describe_source(self.source)
        while not self._stop.is_set():
            cap = self._open()
            if not cap.isOpened():
                cap.release()
                log.warning("camera %s: cannot connect; retrying in %.1f s", name, backoff)
                if self._stop.wait(backoff):
                    break
                backoff = min(backoff * 2, self.reconnect_max_s)
                continue
            self.connects += 1
            delivered = self._read(cap, name)
            cap.release()
            if delivered:
                self.stream_ends += 1
                self.on_state(False)
                backoff = self.reconnect_min_s
                if not self.is_file:
                    log.warning("camera %s: stream dropped; reconnecting", name)
            else:
                log.warning("camera %s: no frame; retrying in %.1f s", name, backoff)
                if self._stop.wait(backoff):
                    break
                backoff = min(backoff * 2, self.reconnect_max_s)
        self.on_state(False)

    def _read(self, cap: cv2.VideoCapture, name: str) -> int:
        """Deliver frames until the stream ends; the number delivered."""
        fps = cap.get(cv2.CAP_PROP_FPS) if self.is_file else 0.0
        period = 1.0 / fps if self.is_file and 1.0 <= fps <= 240.0 else 0.0
        n = 0
        next_t = time.monotonic()
        while not self._stop.is_set():
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            if n == 0:
                log.info("camera %s: up (%dx%d)", name, frame.shape[1], frame.shape[0])
                self.on_state(True)
            n += 1
            if period:  # a file plays in real time, as a camera would deliver it
                next_t += period
                delay = next_t - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
            self.on_frame(frame, time.monotonic())
        return n
