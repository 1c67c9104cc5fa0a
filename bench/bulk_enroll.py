"""Bulk enrollment throughput: images per second through the pipeline's batch path on 2 cores.

    PYTHONPATH=src .venv/bin/python bench/bulk_enroll.py --images 400

Each image of ``lfw_dev`` (first N in name order) goes through ``FacePipeline.analyze_many``
with the ``enroll`` profile in batches of ``--batch`` images: decode, detect, quality, both
embedders run once per batch over all chips (dlib's ResNet as one onnxruntime batch). Modes:

* ``1x2``: one process, ``inference_threads=2`` (onnxruntime and OpenCV use 2 threads);
* ``2x1``: two processes of one thread each, each on half of the images.

Reports wall time (includes waiting for the CPU on a loaded machine) and the processes' CPU
seconds, so ``images / CPU second`` x 2 is what two free cores would do.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402

from facegate.config import Settings  # noqa: E402
from facegate.vision import FacePipeline  # noqa: E402

DATA = Path(
    os.environ.get("FACEGATE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
_pipe: FacePipeline | None = None


def _init(threads: int, data_dir: str) -> None:
    global _pipe
    cv2.setNumThreads(threads)
    _pipe = FacePipeline(Settings(data_dir=Path(data_dir), inference_threads=threads))


def _enroll(paths: list[Path], batch: int) -> tuple[int, int, float]:
    """(images, templates, CPU seconds of this process)."""
    assert _pipe is not None
    c = time.process_time()
    templates = 0
    for i in range(0, len(paths), batch):
        for faces in _pipe.analyze_many(paths[i : i + batch], "enroll"):
            templates += sum(f.template is not None for f in faces)
    return len(paths), templates, time.process_time() - c


def run(mode: str, paths: list[Path], batch: int, data_dir: str) -> None:
    procs, threads = (1, 2) if mode == "1x2" else (2, 1)
    with ProcessPoolExecutor(procs, initializer=_init, initargs=(threads, data_dir)) as ex:
        # Warm up every worker (model load, first-run allocations) outside the timing.
        list(ex.map(_enroll, [paths[:2]] * procs, [batch] * procs))
        t = time.perf_counter()
        parts = [paths[i::procs] for i in range(procs)]
        results = list(ex.map(_enroll, parts, [batch] * procs))
        wall = time.perf_counter() - t
    n = sum(r[0] for r in results)
    tmpl = sum(r[1] for r in results)
    cpu = sum(r[2] for r in results)
    print(
        f"{mode}: {n} images ({tmpl} templates) in {wall:.1f} s wall = {n / wall:.1f} images/s; "
        f"CPU {cpu:.1f} s = {n / cpu:.1f} images per CPU second "
        f"(2 free cores: ~{2 * n / cpu:.1f} images/s)",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=400)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--modes", nargs="+", default=["2x1", "1x2"])
    args = ap.parse_args()
    paths = sorted((DATA / "lfw_dev" / "images").glob("*/*.jpg"))[: args.images]
    data_dir = tempfile.mkdtemp(prefix="facegate-bench-")
    _init(1, data_dir)  # convert the graph once before the workers start
    print(f"dlib backend: {_pipe.dlib_backend if _pipe else '?'}; batch {args.batch}")
    for mode in args.modes:
        run(mode, paths, args.batch, data_dir)


if __name__ == "__main__":
    main()
