"""SFace (int8 file): OpenCV 5 DNN vs onnxruntime, side by side on one core.

    PYTHONPATH=src taskset -c 0 .venv/bin/python bench/sface_onnx_speed.py [--limit 500]

Per-chip latency (one chip per call, as at a gate; wall clock and the thread's CPU time) and
agreement (min cosine) on lfw_dev faces. The chips are dlib 5-point chips resized to
112x112: alignment does not matter for comparing two runtimes of one network.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import dlib  # noqa: E402
import face_recognition_models as frm  # noqa: E402
import numpy as np  # noqa: E402

from facegate.vision.dlib_onnx import cosine_rows  # noqa: E402
from facegate.vision.sface_onnx import OnnxSFace, OpenCVSFace  # noqa: E402

DATA = Path(
    os.environ.get("FACEGATE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=500, help="lfw_dev images for the agreement")
    ap.add_argument("--rounds", type=int, default=200)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    cv2.setNumThreads(1)
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    chips = []
    for path in sorted((DATA / "lfw_dev" / "images").rglob("*.jpg"))[: args.limit]:
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        for box in detector(rgb, 1):
            chip = dlib.get_face_chip(rgb, predictor(rgb, box), size=150, padding=0.25)
            chips.append(cv2.resize(cv2.cvtColor(chip, cv2.COLOR_RGB2BGR), (112, 112)))
    chips = np.stack(chips)
    t = time.perf_counter()
    ort_sface = OnnxSFace(threads=1)
    print(f"onnxruntime session (in-memory rewrite): {time.perf_counter() - t:.2f} s")
    ocv = OpenCVSFace()
    print(f"{len(chips)} faces; per-chip latency over {args.rounds} calls, ms (p50 p95)")
    res = {}
    for name, backend in (("opencv-dnn", ocv), ("onnxruntime", ort_sface)):
        backend.features_from_chips(chips[:1])
        wall, cpu = [], []
        for i in range(args.rounds):
            chip = chips[i % len(chips)][None]
            t, c = time.perf_counter(), time.thread_time()
            backend.features_from_chips(chip)
            wall.append((time.perf_counter() - t) * 1e3)
            cpu.append((time.thread_time() - c) * 1e3)
        res[name] = np.percentile(cpu, 50)
        print(
            f"  {name:<12} wall {np.percentile(wall, 50):6.2f} {np.percentile(wall, 95):6.2f}"
            f"   cpu {np.percentile(cpu, 50):6.2f} {np.percentile(cpu, 95):6.2f}"
        )
    print(
        f"  cpu-time ratio opencv/onnxruntime at p50: {res['opencv-dnn'] / res['onnxruntime']:.2f}"
    )
    t = time.perf_counter()
    batch = ort_sface.features_from_chips(chips[:64])
    print(f"  onnxruntime batch of 64: {(time.perf_counter() - t) / 64 * 1e3:.2f} ms/chip")
    a = np.concatenate(
        [ort_sface.features_from_chips(chips[i : i + 64]) for i in range(0, len(chips), 64)]
    )
    b = ocv.features_from_chips(chips)
    cos = cosine_rows(a, b)
    print(f"agreement over {len(chips)} faces: min cosine {cos.min():.9f}, mean {cos.mean():.9f}")
    assert batch.shape == (min(64, len(chips)), 128)


if __name__ == "__main__":
    main()
