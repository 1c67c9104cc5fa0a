"""dlib's ResNet: dlib vs the locally converted ONNX graph, side by side on one core.

    PYTHONPATH=src taskset -c 0 .venv/bin/python bench/dlib_onnx_speed.py

1. Per-face latency (one chip per call, the gate case) and batch throughput, both backends
   in one run, pinned to one core with every thread pool at one thread.
2. Agreement over every face dlib's HOG detector finds in lfw_dev (all faces of every image,
   chips from the 5-point predictor): min / mean cosine between the two backends' vectors.
   The HOG detector is used here only to produce chips for the comparison.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import dlib  # noqa: E402
import face_recognition_models as frm  # noqa: E402
import numpy as np  # noqa: E402

from facegate.vision.dlib_onnx import (  # noqa: E402
    DlibDescriptor,
    OnnxDlibDescriptor,
    cosine_rows,
)

DATA = Path(
    os.environ.get("FACEGATE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


def chips_of(paths: list[Path]) -> tuple[np.ndarray, int]:
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    chips, no_face = [], 0
    for path in paths:
        bgr = cv2.imread(str(path))
        if bgr is None:
            no_face += 1
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        boxes = detector(rgb, 1)
        if not boxes:
            no_face += 1
        for box in boxes:
            chips.append(dlib.get_face_chip(rgb, predictor(rgb, box), size=150, padding=0.25))
    return np.stack(chips), no_face


def latency(backend, chips: np.ndarray, rounds: int) -> tuple[np.ndarray, np.ndarray]:
    """Wall-clock and calling-thread CPU milliseconds per single-chip call."""
    backend.descriptors_from_chips(chips[:1])  # warm-up
    wall, cpu = [], []
    for i in range(rounds):
        chip = chips[i % len(chips)][None]
        t, c = time.perf_counter(), time.thread_time()
        backend.descriptors_from_chips(chip)
        wall.append(time.perf_counter() - t)
        cpu.append(time.thread_time() - c)
    return np.array(wall) * 1e3, np.array(cpu) * 1e3


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--limit", type=int, default=0, help="only the first N lfw_dev images")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    print(f"cores available to this process: {len(os.sched_getaffinity(0))}")

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        onnx = OnnxDlibDescriptor(cache_dir=Path(tmp), threads=1)
        print(f"conversion + session: {time.perf_counter() - t:.2f} s (first use only)")
        ref = DlibDescriptor()

        paths = sorted((DATA / "lfw_dev" / "images").rglob("*.jpg"))
        if args.limit:
            paths = paths[: args.limit]
        t = time.perf_counter()
        chips, no_face = chips_of(paths)
        print(
            f"lfw_dev: {len(paths)} images, {len(chips)} faces, {no_face} without a face "
            f"({time.perf_counter() - t:.0f} s to detect and align)"
        )

        print(f"\nper-face latency, one chip per call, {args.rounds} calls (ms)")
        print(f"{'backend':<14}{'wall p50':>9}{'p95':>8}{'cpu p50':>9}{'p95':>8}")
        res = {}
        for name, backend in (("dlib", ref), ("onnxruntime", onnx)):
            wall, cpu = latency(backend, chips, args.rounds)
            res[name] = (np.percentile(wall, 50), np.percentile(cpu, 50))
            print(
                f"{name:<14}{np.percentile(wall, 50):9.2f}{np.percentile(wall, 95):8.2f}"
                f"{np.percentile(cpu, 50):9.2f}{np.percentile(cpu, 95):8.2f}"
            )
        print(
            f"speed-up at p50: wall {res['dlib'][0] / res['onnxruntime'][0]:.1f}x, "
            f"cpu {res['dlib'][1] / res['onnxruntime'][1]:.1f}x (target >= 4x)"
        )

        batch = chips[:64]
        for name, backend in (("dlib", ref), ("onnxruntime", onnx)):
            t = time.perf_counter()
            backend.descriptors_from_chips(batch)
            per = (time.perf_counter() - t) / len(batch) * 1e3
            print(f"batch of {len(batch)}: {name:<12} {per:6.2f} ms/face")

        t = time.perf_counter()
        a = np.concatenate(
            [onnx.descriptors_from_chips(chips[i : i + 64]) for i in range(0, len(chips), 64)]
        )
        b = np.concatenate(
            [ref.descriptors_from_chips(chips[i : i + 64]) for i in range(0, len(chips), 64)]
        )
        cos = cosine_rows(a, b)
        l2 = np.linalg.norm(a - b, axis=1)
        print(f"\nagreement over all {len(chips)} lfw_dev faces ({time.perf_counter() - t:.0f} s):")
        print(f"  min cosine {cos.min():.12f} (1 - min = {1 - cos.min():.1e}), target >= 0.9999")
        print(f"  max euclidean distance {l2.max():.2e} (face_recognition's threshold is 0.6)")
        return 0 if cos.min() >= 0.9999 else 1


if __name__ == "__main__":
    sys.exit(main())
