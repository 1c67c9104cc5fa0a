"""Cost of liveness per gate decision on one core: one face, 640x480 frames.

    PYTHONPATH=src python bench/liveness_speed.py [--runs 50] [--image PHOTO]

Times ``pipe.liveness_of`` (faces already found by ``analyze``, as at the gate: no second
detection) for bursts of 1 and 3 frames, and the two passive models alone. The burst frames
are the same photo shifted by a few pixels (a person standing still). Prints p50 and p95 in
ms, wall clock and this process's CPU time (the machine is shared with other work: the wall
clock includes waiting for a core, the CPU time does not).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np

from facegate.cli.vision_cmds import _default_face_image, _frame
from facegate.vision import FacePipeline


def pcts(values: list[tuple[float, float]]) -> str:
    a = np.asarray(values) * 1000
    return (
        f"wall p50 {np.percentile(a[:, 0], 50):6.2f} ms p95 {np.percentile(a[:, 0], 95):6.2f} ms"
        f" | CPU p50 {np.percentile(a[:, 1], 50):6.2f} ms p95 {np.percentile(a[:, 1], 95):6.2f} ms"
    )


def timed(fn, runs: int) -> list[tuple[float, float]]:
    out = []
    for _ in range(runs):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        out.append((time.perf_counter() - w0, time.process_time() - c0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--image", type=Path, default=None)
    a = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    cv2.setNumThreads(1)
    pipe = FacePipeline()
    jpeg, has_face = _frame((640, 480), a.image or _default_face_image())
    if not has_face:
        raise SystemExit("no face photo found (pass --image)")
    rgb = pipe.decode(jpeg)
    frames = [rgb, np.roll(rgb, 3, axis=1), np.roll(rgb, -2, axis=0)]
    faces = [pipe.analyze(f, max_faces=1)[0] for f in frames]
    checker = pipe.liveness_checker
    for n in (1, 3):
        pipe.liveness_of(frames[:n], faces[:n])  # warm-up
        times = timed(lambda n=n: pipe.liveness_of(frames[:n], faces[:n]), a.runs)
        print(f"liveness_of, {n} frame(s) of 640x480, one core: {pcts(times)}")
    bgr = [np.ascontiguousarray(rgb[..., ::-1])]
    times = timed(lambda: checker.passive.probabilities(bgr, [faces[0].box]), a.runs)
    print(f"passive pair alone (crops + 2 models), one frame:  {pcts(times)}")


if __name__ == "__main__":
    main()
