"""Does YuNet on a smaller copy of the frame lose faces? Recall and face-found rate, before/after.

    OMP_NUM_THREADS=1 PYTHONPATH=src taskset -c 0 .venv/bin/python bench/detect_scale.py

Compares the shipped ``YuNetDetector()`` (copy at most 640 px, plus a half-size pass) with
``YuNetDetector(max_side=SIDE)`` for each ``--sides``:

* ``detection``: recall of the labelled boxes (``boxes.csv``, ``ignore`` rows left out; a
  box counts as found when a detection overlaps it with IoU >= 0.3, annotators draw boxes
  differently) and images whose face count equals ``expected_faces``;
* ``lfw_dev``: face-found rate on every image as stored (250x250) and pasted at 300x300 into
  a 640x480 frame (the gate bench's frames); ``pad_nuaa`` live 640x480 webcam frames;
* detection CPU time per 640x480 frame.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from facegate.vision.decode import DecodeLimits, decode  # noqa: E402
from facegate.vision.detect import YuNetDetector, _iou  # noqa: E402

DATA = Path(
    os.environ.get("FACEGATE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
LIMITS = DecodeLimits(50 * 1024 * 1024, 60_000_000, 16)


def paste(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    canvas = cv2.GaussianBlur(cv2.resize(rgb, (640, 480)), (0, 0), 15)
    face = cv2.resize(rgb, (300, 300), interpolation=cv2.INTER_CUBIC)
    x, y = int(rng.integers(0, 340)), int(rng.integers(0, 180))
    canvas[y : y + 300, x : x + 300] = face
    return canvas


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sides", type=int, nargs="+", default=[320])
    ap.add_argument("--lfw-limit", type=int, default=0, help="first N lfw_dev images (0 = all)")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    detectors = {"shipped (640)": YuNetDetector()}
    for side in args.sides:
        detectors[f"max_side={side}"] = YuNetDetector(max_side=side)

    boxes = defaultdict(list)
    with (DATA / "detection" / "boxes.csv").open(newline="") as fh:
        for r in csv.DictReader(fh):
            if not r["ignore"]:
                boxes[r["path"]].append(
                    tuple(float(r[k]) for k in ("left", "top", "width", "height"))
                )
    with (DATA / "detection" / "manifest.csv").open(newline="") as fh:
        manifest = list(csv.DictReader(fh))
    det_stats = {k: [0, 0, 0, 0] for k in detectors}  # boxes found, boxes, count ok, images
    for r in manifest:
        try:
            rgb = decode(DATA / "detection" / r["path"], LIMITS)
        except Exception:
            continue  # corrupt/truncated/empty files are the decoder's tests
        for name, det in detectors.items():
            found = det.detect(rgb)
            st = det_stats[name]
            for b in boxes.get(r["path"], []):
                st[0] += any(_iou(b, d.box) >= 0.3 for d in found)
                st[1] += 1
            if r["expected_faces"] != "":
                st[2] += len(found) == int(r["expected_faces"])
                st[3] += 1
    print("detection set:")
    for name, (hit, n, ok, m) in det_stats.items():
        print(
            f"  {name:14s} box recall {hit}/{n} = {hit / max(n, 1):.4f}; face count = "
            f"expected_faces on {ok}/{m} images"
        )

    rng = np.random.default_rng(7)
    paths = sorted((DATA / "lfw_dev" / "images").glob("*/*.jpg"))
    if args.lfw_limit:
        paths = paths[: args.lfw_limit]
    with (DATA / "pad_nuaa" / "manifest.csv").open(newline="") as fh:
        live = [DATA / "pad_nuaa" / r["path"] for r in csv.DictReader(fh) if r["label"] == "live"]
    found = defaultdict(lambda: defaultdict(int))
    cpu = defaultdict(list)
    for p in paths:
        rgb = decode(p, LIMITS)
        frame = paste(rgb, rng)
        for name, det in detectors.items():
            found[name]["lfw 250x250"] += bool(det.detect(rgb))
            c = time.thread_time()
            found[name]["lfw in 640x480"] += bool(det.detect(frame))
            cpu[name].append(time.thread_time() - c)
    for p in live:
        rgb = decode(p, LIMITS)
        for name, det in detectors.items():
            c = time.thread_time()
            found[name]["nuaa live 640x480"] += bool(det.detect(rgb))
            cpu[name].append(time.thread_time() - c)
    print(f"face found ({len(paths)} lfw_dev images, {len(live)} pad_nuaa live frames):")
    for name in detectors:
        parts = ", ".join(
            f"{k} {v}/{len(live) if 'nuaa' in k else len(paths)}" for k, v in found[name].items()
        )
        ms = np.percentile(np.asarray(cpu[name]) * 1e3, [50, 99])
        print(f"  {name:14s} {parts}; detect CPU on 640x480 p50 {ms[0]:.1f} ms, p99 {ms[1]:.1f} ms")


if __name__ == "__main__":
    main()
