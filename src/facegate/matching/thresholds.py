"""Thresholds from calibration data: 1:1 at a target false-match rate, 1:N by gallery size.

With N people enrolled, one search makes N comparisons, and a stranger is let in when any of
them passes. For a target false-positive identification rate (FPIR), the per-comparison
false-match rate must be ``far(N) = 1 - (1 - FPIR) ** (1 / N)`` (about FPIR / N). The threshold
for that rate is read off each population's impostor-score distribution (calibration data):
the empirical quantile where the development set holds enough impostor pairs beyond it, and
beyond that a fitted exponential tail ``P(S > t) = p0 * exp(-(t - t0) / beta)``. Cosine scores
are bounded by 1, so their true tail falls faster than an exponential and the extrapolation
errs on the strict side. The result is the strictest over populations and never below the
1:1 verification threshold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PopulationTail:
    """One population's impostor distribution: an empirical FAR table and a fitted tail."""

    name: str
    n_impostor: int
    far_table: tuple[tuple[float, float], ...]  # (far, threshold), far decreasing
    t0: float  # tail fitted above this score ...
    p0: float  # ... which this share of impostor scores exceeds
    beta: float  # mean excess above t0

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> PopulationTail:
        table = tuple((float(f), float(t)) for f, t in d["far_table"])  # type: ignore[union-attr]
        return cls(
            name=str(d["name"]),
            n_impostor=int(d["n_impostor"]),  # type: ignore[arg-type]
            far_table=tuple(sorted(table, key=lambda ft: -ft[0])),
            t0=float(d["t0"]),  # type: ignore[arg-type]
            p0=float(d["p0"]),  # type: ignore[arg-type]
            beta=float(d["beta"]),  # type: ignore[arg-type]
        )

    def threshold_at(self, far: float) -> float:
        """Score above which this population's impostors pass with rate ``far``."""
        table = self.far_table
        if table and far >= table[-1][0]:
            if far >= table[0][0]:
                return table[0][1]
            for (f_hi, t_hi), (f_lo, t_lo) in zip(table, table[1:], strict=False):
                if f_lo <= far <= f_hi:
                    # Interpolate in log(far): thresholds move about linearly with it.
                    a = (math.log(f_hi) - math.log(far)) / (math.log(f_hi) - math.log(f_lo))
                    return t_hi + a * (t_lo - t_hi)
        return self.t0 + self.beta * math.log(self.p0 / far)


def far_for_gallery(n_enrolled: int, fpir: float) -> float:
    """Per-comparison false-match rate that keeps a search of N people at ``fpir``."""
    n = max(1, int(n_enrolled))
    return -math.expm1(math.log1p(-fpir) / n)


def threshold_for_far(tails: Sequence[PopulationTail], far: float) -> float:
    """The strictest per-population threshold for a false-match rate."""
    return max(t.threshold_at(far) for t in tails)


def identification_threshold(
    n_enrolled: int,
    tails: Sequence[PopulationTail],
    verification_threshold: float,
    fpir: float = 1e-3,
) -> float:
    """1:N threshold for a gallery of ``n_enrolled`` people, never below the 1:1 threshold."""
    far = far_for_gallery(n_enrolled, fpir)
    return max(verification_threshold, threshold_for_far(tails, far))
