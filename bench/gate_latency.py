"""Gate decision latency on one core: facegate vs face_recognition's recipe, in one run.

    OMP_NUM_THREADS=1 PYTHONPATH=src taskset -c 0 .venv/bin/python bench/gate_latency.py

One decision = decode a 640x480 JPEG with one face -> detect (YuNet) -> quality -> align ->
both embedders (SFace, dlib's ResNet in onnxruntime) -> fuse -> search a 100k-subject gallery
(k=2) -> threshold/margin decision, exactly the code path of ``FacePipeline.analyze`` (its
stage clock is replaced here by one that records wall and thread CPU time).
face_recognition's recipe (HOG detector, 68/5-point landmarks, dlib ResNet, ``face_distance``
over 100k encodings) runs on the same frames in the same process.

Frames: ``pad_nuaa`` live webcam frames (640x480) and ``lfw_dev`` faces pasted at 300x300
into a 640x480 canvas (a blurred enlargement of the same photo as background), JPEG q=90.
Wall time includes waiting for the CPU on a loaded machine; thread CPU time does not.
``--detect-max-side N`` runs YuNet on a copy at most N px long (the shipped detector: 640).
``--opencv`` runs the reference runtimes instead (YuNet and SFace in OpenCV's DNN, dlib's ResNet
in dlib): the same models and decisions, for a stage-by-stage comparison in one run.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import io  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import facegate.vision.pipeline as pipeline_mod  # noqa: E402
from facegate.config import Settings  # noqa: E402
from facegate.matching import Gallery  # noqa: E402
from facegate.matching.policy import decide  # noqa: E402
from facegate.vision import FacePipeline  # noqa: E402

DATA = Path(
    os.environ.get("FACEGATE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
GALLERY = 100_000


class _Both:
    """Stage clock recording wall and thread CPU seconds (replaces the pipeline's _Clock)."""

    def __init__(self, timings):
        self.timings = timings
        self._stage = ""

    def __call__(self, stage):
        self._stage = stage
        return self

    def __enter__(self):
        self._t = (time.perf_counter(), time.thread_time())

    def __exit__(self, *exc):
        if self.timings is not None:
            w, c = self._t
            acc = self.timings.setdefault(self._stage, [0.0, 0.0])
            acc[0] += time.perf_counter() - w
            acc[1] += time.thread_time() - c


class _Stopwatch:
    def __init__(self, timings, stage):
        self.timings, self.stage = timings, stage

    def __enter__(self):
        self._t = (time.perf_counter(), time.thread_time())

    def __exit__(self, *exc):
        w, c = self._t
        acc = self.timings.setdefault(self.stage, [0.0, 0.0])
        acc[0] += time.perf_counter() - w
        acc[1] += time.thread_time() - c


def frames(n_live: int, n_lfw: int, seed: int = 7) -> list[tuple[str, bytes]]:
    """640x480 JPEG frames with one face each."""
    rng = np.random.default_rng(seed)
    out = []
    with (DATA / "pad_nuaa" / "manifest.csv").open(newline="") as fh:
        live = [r["path"] for r in csv.DictReader(fh) if r["label"] == "live"]
    for rel in sorted(rng.choice(live, size=min(n_live, len(live)), replace=False)):
        out.append((f"nuaa:{rel}", (DATA / "pad_nuaa" / rel).read_bytes()))
    people = sorted(p for p in (DATA / "lfw_dev" / "images").iterdir() if p.is_dir())
    for person in rng.choice(people, size=n_lfw, replace=False):
        src = cv2.imread(str(sorted(person.glob("*.jpg"))[0]))
        canvas = cv2.GaussianBlur(cv2.resize(src, (640, 480)), (0, 0), 15)
        face = cv2.resize(src, (300, 300), interpolation=cv2.INTER_CUBIC)
        x, y = int(rng.integers(0, 340)), int(rng.integers(0, 180))
        canvas[y : y + 300, x : x + 300] = face
        ok, buf = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 90])
        out.append((f"lfw:{person.name}", buf.tobytes()))
    return out


def pct(values: list[float]) -> str:
    a = np.asarray(values) * 1e3
    return f"{np.percentile(a, 50):7.1f} {np.percentile(a, 99):7.1f}"


def report(title: str, per_call: list[dict[str, list[float]]], order: list[str]) -> dict:
    print(f"\n{title}: {len(per_call)} decisions, ms per decision (p50 / p99)")
    print(f"  {'stage':14s} {'CPU p50':>7s} {'CPU p99':>7s}   {'wall p50':>8s} {'wall p99':>8s}")
    stages = [s for s in order if any(s in t for t in per_call)]
    stages += sorted({s for t in per_call for s in t} - set(stages))
    for s in stages:
        wall = [t.get(s, [0, 0])[0] for t in per_call]
        cpu = [t.get(s, [0, 0])[1] for t in per_call]
        print(f"  {s:14s} {pct(cpu)}   {pct(wall)}")
    cpu_tot = [sum(v[1] for v in t.values()) for t in per_call]
    wall_tot = [sum(v[0] for v in t.values()) for t in per_call]
    print(f"  {'TOTAL':14s} {pct(cpu_tot)}   {pct(wall_tot)}")
    return {
        "cpu_p50": float(np.percentile(cpu_tot, 50) * 1e3),
        "cpu_p99": float(np.percentile(cpu_tot, 99) * 1e3),
        "wall_p50": float(np.percentile(wall_tot, 50) * 1e3),
        "wall_p99": float(np.percentile(wall_tot, 99) * 1e3),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--live", type=int, default=30, help="pad_nuaa live frames")
    ap.add_argument("--lfw", type=int, default=30, help="lfw_dev faces pasted into a frame")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--fr-rounds", type=int, default=1, help="rounds of face_recognition")
    ap.add_argument("--no-fr", action="store_true", help="skip face_recognition")
    ap.add_argument("--detect-max-side", type=int, default=None)
    ap.add_argument("--opencv", action="store_true", help="OpenCV DNN + dlib, not onnxruntime")
    args = ap.parse_args()
    cv2.setNumThreads(1)

    frames_ = frames(args.live, args.lfw)
    ort = not args.opencv
    pipe = FacePipeline(
        Settings(
            data_dir=Path(tempfile.mkdtemp(prefix="facegate-bench-")),
            yunet_onnx=ort,
            sface_onnx=ort,
            dlib_onnx=ort,
        )
    )
    print(
        f"YuNet on {pipe.detector.runtime}; SFace on {pipe.embedders['sface'].runtime}; "
        f"dlib backend: {pipe.dlib_backend}; "
        f"model {pipe.model_id}"
    )
    if args.detect_max_side:
        pipe.detector.max_side = args.detect_max_side
        scales = pipe.detector.scales_for(640, 480)
        print(f"YuNet copy at most {args.detect_max_side} px: scales {scales}")
    rng = np.random.default_rng(1)
    vecs = rng.standard_normal((GALLERY, pipe.dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    gallery = Gallery(pipe.dim, pipe.model_id)
    gallery.add_many(list(range(GALLERY)), list(range(GALLERY)), vecs)
    threshold = pipe.threshold_for_gallery(GALLERY)
    print(f"gallery {GALLERY} subjects, 1:N threshold {threshold:.4f}, margin {pipe.margin:.4f}")
    pipeline_mod._Clock = _Both  # the pipeline's own stages, wall + CPU

    def gate(jpeg: bytes, t: dict) -> str:
        faces = pipe.analyze(jpeg, "gate", max_faces=1, timings=t)
        if not faces or faces[0].template is None:
            return "no_face" if not faces else "low_quality"
        with _Stopwatch(t, "search"):
            hits = gallery.search(faces[0].template, k=2)
        with _Stopwatch(t, "decide"):
            d = decide(hits, threshold, pipe.margin)
        return d.outcome

    for _, jpeg in frames_[:5]:
        gate(jpeg, {})
    ours, outcomes = [], defaultdict(int)
    for _ in range(args.rounds):
        for _, jpeg in frames_:
            t: dict = {}
            outcomes[gate(jpeg, t)] += 1
            ours.append(t)
    order = ["decode", "detect", "quality", "landmarks", "chips", "embed_sface", "embed_dlib"]
    order += ["search", "decide"]
    runtimes = "onnxruntime" if ort else "OpenCV DNN + dlib"
    res = report(f"facegate (YuNet + SFace + dlib ResNet, {runtimes})", ours, order)
    print(f"  outcomes: {dict(outcomes)}")
    if args.no_fr:
        return

    import face_recognition as fr

    known = vecs[:, :128].copy()  # 100k 128-D encodings for face_distance

    def fr_gate(jpeg: bytes, t: dict) -> str:
        with _Stopwatch(t, "decode"):
            img = fr.load_image_file(io.BytesIO(jpeg))
        with _Stopwatch(t, "detect_hog"):
            locs = fr.face_locations(img)
        if not locs:
            return "no_face"
        with _Stopwatch(t, "landmarks+embed"):
            enc = fr.face_encodings(img, known_face_locations=locs[:1])[0]
        with _Stopwatch(t, "search"):
            dist = fr.face_distance(known, enc)
            best = int(np.argmin(dist))
        return "match" if dist[best] <= 0.6 else "no_match"

    for _, jpeg in frames_[:2]:
        fr_gate(jpeg, {})
    theirs, fr_out = [], defaultdict(int)
    for _ in range(args.fr_rounds):
        for _, jpeg in frames_:
            t = {}
            fr_out[fr_gate(jpeg, t)] += 1
            theirs.append(t)
    res_fr = report(
        "face_recognition (HOG + dlib ResNet, face_distance)",
        theirs,
        ["decode", "detect_hog", "landmarks+embed", "search"],
    )
    print(f"  outcomes: {dict(fr_out)}")
    cpu_ratio = res_fr["cpu_p50"] / res["cpu_p50"]
    wall_ratio = res_fr["wall_p50"] / res["wall_p50"]
    print(f"\nface_recognition / facegate at p50: CPU {cpu_ratio:.2f}x, wall {wall_ratio:.2f}x")


if __name__ == "__main__":
    main()
