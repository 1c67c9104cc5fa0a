"""Expected false-match and false-non-match rates per mode and gallery size (README table).

For each gallery size N the shipped 1:N threshold (target FPIR 0.1% and 1%) is taken from
FacePipeline.threshold_for_gallery; the expected per-search false-positive rate is
1 - (1 - FMR(t)) ** N with FMR(t) the strictest population's impostor rate (measured where
the development data reach, the fitted tail beyond), and the false-non-match rate is the
share of genuine development pairs (all same-identity pairs of lfw_dev and asian_dev, largest
face, gate-profile quality not applied) scoring below the threshold.

    PYTHONPATH=src python bench/expected_rates.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibrate import load  # noqa: E402

from facegate.vision import FacePipeline  # noqa: E402


def main() -> None:
    pipe = FacePipeline()
    ws, wd = (float(w) for w in pipe.weights)
    gen, imp = {}, {}
    for name in ("lfw_dev", "asian_dev"):
        d = load(name)
        x = np.concatenate([ws * d["emb"][(False, "sface")], wd * d["emb"][(False, "dlib")]], 1)
        s = (x @ x.T)[d["iu"]]
        gen[name], imp[name] = s[d["gen_mask"]], s[d["imp_mask"]]
    print(f"model {pipe.model_id}")
    print(
        "| mode | people enrolled N | threshold | expected stranger accept rate per attempt "
        "| false-non-match lfw_dev | false-non-match asian_dev |"
    )
    print("|---|---:|---:|---:|---:|---:|")

    def row(mode: str, n: int, t: float) -> None:
        counts = {p: int((imp[p] >= t).sum()) for p in imp}
        fmr = max(counts[p] / len(imp[p]) for p in imp)
        stranger = 1 - (1 - fmr) ** n
        measured = f"{stranger:.2g} ({max(counts.values())} dev impostor pairs above)"
        if max(counts.values()) == 0:
            measured = "beyond dev data (fitted tail)"
        fn = {p: float((gen[p] < t).mean()) for p in gen}
        print(
            f"| {mode} | {n:,} | {t:.4f} | {measured} | "
            f"{fn['lfw_dev']:.1%} | {fn['asian_dev']:.1%} |"
        )

    row("1:1 verify (card + face)", 1, pipe.threshold)
    for fpir in (1e-3, 1e-2):
        for n in (10, 100, 1_000, 10_000, 100_000):
            row(f"1:N, target FPIR {fpir:.1%}", n, pipe.threshold_for_gallery(n, fpir))


if __name__ == "__main__":
    main()
