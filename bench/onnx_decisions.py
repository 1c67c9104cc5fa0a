"""Decisions with onnxruntime (YuNet, SFace, dlib's ResNet) vs OpenCV DNN + dlib, per pair.

Two pipelines that differ only in ``Settings.yunet_onnx``, ``sface_onnx`` and ``dlib_onnx``
(the shipped onnxruntime path vs OpenCV's DNN engine and dlib's own CPU code) decide every
pair (the same steps as ``FacePipeline.verify``: gate profile, "the" face) of every pairs
file in the shared data; the script counts pairs whose decision (match / no_match /
no_face / low_quality) differs and reports the largest score difference. Each image is
analysed once per pipeline.

    PYTHONPATH=src taskset -c 0 .venv/bin/python bench/onnx_decisions.py --limit 150

``--limit`` takes the first N pairs of each file (the files are interleaved so a time cap
still covers every set); ``--max-seconds`` stops early and reports what was compared.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from facegate.config import Settings
from facegate.vision import FacePipeline

DATA = Path(
    os.environ.get("FACEGATE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
if not DATA.is_dir():
    DATA = Path("/work/shared/data")
PAIR_FILES = [
    "lfw_dev/pairs_view2_dev.csv",
    "lfw_dev/pairs_generated_seed42.csv",
    "asian_dev/pairs_seed42.csv",
    "deepface/pairs.csv",
    "deepface/pairs_balanced_seed42.csv",
    "orl_att/pairs_generated_seed42.csv",
    "yalefaces/pairs_generated_seed42.csv",
    "dlib_johns/pairs_generated_seed42.csv",
]


def _outcome(pipe: FacePipeline, cache: dict, path: Path):
    """(reason or None, template or None) for the largest face, as ``verify`` sees it."""
    if path not in cache:
        try:
            faces = pipe.analyze(path, "gate", max_faces=1)
        except Exception as exc:  # an undecodable file is a decision too (refused)
            cache[path] = (f"error:{type(exc).__name__}", None)
        else:
            if not faces:
                cache[path] = ("no_face", None)
            elif faces[0].template is None:
                cache[path] = ("low_quality:" + faces[0].quality.reasons[0], None)
            else:
                cache[path] = (None, faces[0].template)
    return cache[path]


def _decide(pipe: FacePipeline, cache: dict, a: Path, b: Path) -> tuple[str, float | None]:
    ra, ta = _outcome(pipe, cache, a)
    if ra:
        return ra + ":a", None
    rb, tb = _outcome(pipe, cache, b)
    if rb:
        return rb + ":b", None
    score = float(np.asarray(ta) @ np.asarray(tb))
    return ("match" if score >= pipe.threshold else "no_match"), score


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=0, help="first N pairs of each file (0 = all)")
    ap.add_argument("--skip", type=int, default=0, help="leave out the first N pairs of each file")
    ap.add_argument("--files", nargs="+", default=None, help="only pairs files containing these")
    ap.add_argument("--max-seconds", type=float, default=0, help="stop after this wall time")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="facegate-bench-"))
    on = FacePipeline(Settings(data_dir=tmp, dlib_onnx=True, yunet_onnx=True, sface_onnx=True))
    off = FacePipeline(Settings(data_dir=tmp, dlib_onnx=False, yunet_onnx=False, sface_onnx=False))
    assert on.dlib_backend == "dlib-resnet-onnx", on.dlib_backend
    assert on.detector.runtime == on.embedders["sface"].runtime == "onnxruntime"
    assert off.dlib_backend == "dlib-resnet" and off.detector.runtime == "opencv-dnn"
    assert off.embedders["sface"].runtime == "opencv-dnn"
    assert on.model_id == off.model_id
    print(f"model {on.model_id}, threshold {on.threshold:.6f}", flush=True)

    queues = []
    for rel in PAIR_FILES:
        if args.files and not any(f in rel for f in args.files):
            continue
        with (DATA / rel).open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        rows = rows[args.skip :]
        queues.append((rel, rows[: args.limit] if args.limit else rows, len(rows)))
    stats = {
        rel: {"pairs": 0, "of": total, "diff": 0, "max_score_diff": 0.0} for rel, _, total in queues
    }
    cache_on: dict = {}
    cache_off: dict = {}
    diffs = []
    t0 = time.perf_counter()
    i = 0
    stopped = False
    while any(i < len(rows) for _, rows, _ in queues) and not stopped:
        for rel, rows, _ in queues:
            if i >= len(rows):
                continue
            if args.max_seconds and time.perf_counter() - t0 > args.max_seconds:
                stopped = True
                break
            r = rows[i]
            base = (DATA / rel).parent
            a, b = base / r["path_a"], base / r["path_b"]
            d_on, s_on = _decide(on, cache_on, a, b)
            d_off, s_off = _decide(off, cache_off, a, b)
            st = stats[rel]
            st["pairs"] += 1
            if d_on != d_off:
                st["diff"] += 1
                diffs.append((rel, r["path_a"], r["path_b"], d_on, d_off, s_on, s_off))
            if s_on is not None and s_off is not None:
                st["max_score_diff"] = max(st["max_score_diff"], abs(s_on - s_off))
        i += 1
        if i % 25 == 0:
            n = sum(s["pairs"] for s in stats.values())
            print(
                f"  {n} pairs, {len(cache_on)} images, {time.perf_counter() - t0:.0f} s", flush=True
            )

    total = sum(s["pairs"] for s in stats.values())
    print(
        f"\n{'pairs file':42s} {'compared':>9s} {'of':>6s} {'diff':>5s} {'max |score diff|':>17s}"
    )
    for rel, st in stats.items():
        print(
            f"{rel:42s} {st['pairs']:9d} {st['of']:6d} {st['diff']:5d} {st['max_score_diff']:17.2e}"
        )
    n_diff = sum(s["diff"] for s in stats.values())
    print(f"{'total':42s} {total:9d} {sum(s['of'] for s in stats.values()):6d} {n_diff:5d}")
    print(f"images analysed per pipeline: {len(cache_on)}; wall {time.perf_counter() - t0:.0f} s")
    for d in diffs:
        print("DIFF", *d)
    if args.json:
        args.json.write_text(json.dumps({"stats": stats, "diffs": diffs}, indent=1))


if __name__ == "__main__":
    main()
