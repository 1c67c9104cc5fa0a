"""Does the calibration method hold its false-accept rate on people it has not seen?

    PYTHONPATH=src .venv/bin/python bench/calibration_cv.py [--repeats 10] [--centre]

The shipped threshold is fitted on all of lfw_dev and asian_dev; the independent evaluation
uses other people. This repeats, ``--repeats`` times, a 2-fold split by identity within each
population: on one half the method of bench/calibrate.py runs unchanged (fusion weight by the
smoothed mean TAR at the strictest per-population FAR-1e-3 threshold), and on the other half,
people the fit never saw, the false-accept and true-accept rates at that threshold are
measured. It prints each population's held-out FAR and TAR (mean, min, max over the
2 x repeats fits). ``--centre`` evaluates an alternative: each embedder's vectors centred on
the mean of the fitting half's population means, then re-normalised, before fusion.
Uses the embedding cache of bench/embed_cache.py; no flip test-time augmentation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibrate import (  # noqa: E402
    POPULATIONS,
    TARGET_FAR,
    load,
    pair_masks,
    smoothed_best,
    unit,
    weight_grid,
)


def pairs_of(d: dict, rows: np.ndarray) -> dict:
    """All pairs among ``rows``, with calibrate.py's genuine and impostor masks."""
    iu, gen, imp = pair_masks(d["identity"][rows], d["sha256"][rows])
    return {"rows": rows, "iu": iu, "gen": gen, "imp": imp}


def model_scores(d: dict, p: dict, centres: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for model in ("sface", "dlib"):
        x = unit(d["emb"][(False, model)][p["rows"]] - centres[model])
        out[model] = (x @ x.T)[p["iu"]].astype(np.float32)
    return out


def fit(sets: dict, fitting: dict, centre: bool) -> tuple[float, float, dict]:
    """bench/calibrate.py's weight and threshold on the fitting halves."""
    centres = {m: np.zeros(128, np.float32) for m in ("sface", "dlib")}
    if centre:
        for m in centres:
            centres[m] = np.mean(
                [sets[n]["emb"][(False, m)][fitting[n]["rows"]].mean(0) for n in sets], axis=0
            )
    scores = {}
    for n in sets:
        sc = model_scores(sets[n], fitting[n], centres)
        scores[n] = (sc["sface"], sc["dlib"], fitting[n]["gen"], fitting[n]["imp"])
    grid = weight_grid(scores)
    a = smoothed_best({k: v[2] for k, v in grid.items()})
    return a, grid[a][0], centres


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--centre", action="store_true")
    args = ap.parse_args()
    sets = {n: load(n) for n in POPULATIONS}
    rng = np.random.default_rng(args.seed)
    held: dict[str, list[tuple[float, float]]] = {n: [] for n in sets}
    weights = []
    for _ in range(args.repeats):
        halves = {}
        for n, d in sets.items():
            ids = np.unique(d["identity"])
            first = np.isin(d["identity"], rng.permutation(ids)[: len(ids) // 2])
            halves[n] = (np.flatnonzero(first), np.flatnonzero(~first))
        for k in (0, 1):
            fitting = {n: pairs_of(sets[n], halves[n][k]) for n in sets}
            unseen = {n: pairs_of(sets[n], halves[n][1 - k]) for n in sets}
            a, thr, centres = fit(sets, fitting, args.centre)
            weights.append(a)
            for n in sets:
                sc = model_scores(sets[n], unseen[n], centres)
                fused = a * sc["sface"] + (1 - a) * sc["dlib"]
                far = float((fused[unseen[n]["imp"]] >= thr).mean())
                tar = float((fused[unseen[n]["gen"]] >= thr).mean())
                held[n].append((far, tar))
    label = "centred embedders" if args.centre else "shipped method"
    print(f"{label}: {2 * args.repeats} fits on half the identities, target FAR {TARGET_FAR:g}")
    print(f"  weight a = w_s^2 chosen: {sorted(weights)}")
    for n, rows in held.items():
        far, tar = np.array(rows).T
        print(
            f"  {n:10s} unseen people: FAR mean {far.mean():.2e} (min {far.min():.2e}, "
            f"max {far.max():.2e}); TAR mean {tar.mean():.2%} (min {tar.min():.2%})"
        )


if __name__ == "__main__":
    main()
