"""Embed every image of a labelled set once and cache the raw per-model vectors (.npz).

The cache lives outside the repository (default /work/cache, or FACEGATE_BENCH_CACHE) because
it is derived from face images. Stored per image: the largest face's box, detector score and
quality measures, and each embedder's unit vector for the chip and for its mirror image, so
calibration can try fusion weights and flip test-time augmentation without re-running models.

    PYTHONPATH=src python bench/embed_cache.py lfw_dev asian_dev
"""

from __future__ import annotations

import csv
import hashlib
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from facegate.errors import FacegateError
from facegate.vision import FacePipeline
from facegate.vision.decode import decode
from facegate.vision.quality import assess

DATA = Path(
    os.environ.get("FACEGATE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
if not DATA.is_dir():
    DATA = Path("/work/shared/data")
CACHE = Path(os.environ.get("FACEGATE_BENCH_CACHE", "/work/cache"))
METRICS = ("face_px", "sharpness", "brightness", "yaw", "pitch", "inside", "detector_score")


def manifest(set_name: str) -> list[dict[str, str]]:
    """Labelled images of a set; lfw_dev has no manifest: identity = folder name."""
    root = DATA / set_name
    if (root / "manifest.csv").exists():
        with (root / "manifest.csv").open(newline="") as fh:
            return [r for r in csv.DictReader(fh) if r.get("identity")]
    rows = []
    for p in sorted((root / "images").glob("*/*.jpg")):
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        rows.append({"path": str(p.relative_to(root)), "identity": p.parent.name, "sha256": digest})
    return rows


def cache_path(set_name: str) -> Path:
    return CACHE / f"emb_{set_name}.npz"


def embed_set(set_name: str, force: bool = False) -> dict[str, np.ndarray]:
    path = cache_path(set_name)
    if path.exists() and not force:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    cv2.setNumThreads(1)
    # FacePipeline's own detector and embedders (onnxruntime where its self-checks pass).
    pipe = FacePipeline()
    det, sface, dlib_e = pipe.detector, pipe.embedders["sface"], pipe.embedders["dlib"]
    rows = manifest(set_name)
    n = len(rows)
    out = {
        "path": np.array([r["path"] for r in rows]),
        "identity": np.array([r["identity"] for r in rows]),
        "sha256": np.array([r["sha256"] for r in rows]),
        "n_faces": np.zeros(n, np.int32),
        "box": np.full((n, 4), np.nan, np.float32),
        "metrics": np.full((n, len(METRICS)), np.nan, np.float32),
        "sface": np.full((n, 128), np.nan, np.float32),
        "sface_flip": np.full((n, 128), np.nan, np.float32),
        "dlib": np.full((n, 128), np.nan, np.float32),
        "dlib_flip": np.full((n, 128), np.nan, np.float32),
        "error": np.array([""] * n, dtype="<U32"),
    }
    t0 = time.time()
    for i, r in enumerate(rows):
        try:
            rgb = decode(DATA / set_name / r["path"])
        except FacegateError as exc:
            out["error"][i] = exc.code
            continue
        dets = det.detect(rgb)
        out["n_faces"][i] = len(dets)
        if not dets:
            continue
        d = dets[0]
        out["box"][i] = d.box
        sc = sface.chips(rgb, [d])
        q = assess(d, sc[0], (rgb.shape[1], rgb.shape[0]), dets, "gate")
        out["metrics"][i] = [q.metrics[m] for m in METRICS]
        out["sface"][i] = sface.embed_chips(sc)[0]
        out["sface_flip"][i] = sface.embed_chips(np.ascontiguousarray(sc[:, :, ::-1]))[0]
        dc = dlib_e.chips(rgb, [d])
        v = dlib_e.embed_chips(np.concatenate([dc, np.ascontiguousarray(dc[:, :, ::-1])]))
        out["dlib"][i], out["dlib_flip"][i] = v[0], v[1]
        if i % 200 == 0:
            print(f"{set_name}: {i}/{n} {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(path)
    print(f"{set_name}: {n} images in {time.time() - t0:.0f}s -> {path}", file=sys.stderr)
    return out


if __name__ == "__main__":
    for name in [a for a in sys.argv[1:] if not a.startswith("--")]:
        embed_set(name, force="--force" in sys.argv)
