"""Helpers of the browser tests: camera frames made at test time from ../shared/data photos.

Nothing made here is committed: the frames and the Y4M video go to a temporary directory.
"""

from __future__ import annotations

import socket
from pathlib import Path

import cv2
import numpy as np

W, H = 640, 480


def camera_frame(photo: Path, face_height: int = 400) -> np.ndarray:
    """A 640x480 BGR frame: the photo scaled so the face is gate-sized, centred on grey."""
    img = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    assert img is not None, photo
    scale = face_height / img.shape[0]
    img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    frame = np.full((H, W, 3), 128, np.uint8)
    h, w = img.shape[:2]
    y0, x0 = (H - h) // 2, (W - w) // 2
    frame[y0 : y0 + h, x0 : x0 + w] = img
    return frame


def write_y4m(frame: np.ndarray, path: Path, n_frames: int = 10) -> Path:
    """A short still video Chromium's fake camera plays in a loop (4:2:0, 10 fps)."""
    yuv = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420)
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{W} H{H} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(n_frames):
            f.write(b"FRAME\n")
            f.write(yuv.tobytes())
    return path


def jpeg(frame: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return buf.tobytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def live_camera_frames(shared_data: Path, video: str) -> list[np.ndarray]:
    """The 5 frames of a live pad_replayattack sequence, upscaled to a 640x480 camera frame.

    A still photo is a presentation attack (issue 14): a test that needs a live person at the
    camera plays one of these real live sequences instead."""
    folder = shared_data / "pad_replayattack" / "images" / video
    frames = []
    for i in range(5):
        img = cv2.imread(str(folder / f"f{i}.jpg"), cv2.IMREAD_COLOR)
        assert img is not None, folder
        frames.append(cv2.resize(img, (W, H), interpolation=cv2.INTER_CUBIC))
    return frames


def write_y4m_frames(frames: list[np.ndarray], path: Path, repeat: int = 5) -> Path:
    """A video of several frames (each shown ``repeat`` times at 10 fps) for the fake camera."""
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{W} H{H} F10:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            yuv = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes()
            for _ in range(repeat):
                f.write(b"FRAME\n")
                f.write(yuv)
    return path
