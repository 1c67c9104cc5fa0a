"""Verification and identification metrics over similarity scores (higher = more alike)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PairMetrics:
    genuine: int
    impostor: int
    accuracy: float  # at the given threshold, over usable pairs
    tar: float  # at the given threshold
    far: float  # at the given threshold
    tar_at_far: dict[float, float | None]  # None where too few impostor pairs to resolve it
    eer: float

    def to_dict(self) -> dict[str, object]:
        return {
            "genuine_pairs": self.genuine,
            "impostor_pairs": self.impostor,
            "accuracy": self.accuracy,
            "tar": self.tar,
            "far": self.far,
            "tar_at_far": {f"{k:g}": v for k, v in self.tar_at_far.items()},
            "eer": self.eer,
        }


def threshold_at_far(impostor: np.ndarray, far: float) -> float:
    """Lowest threshold at which at most ``far`` of the impostor scores are accepted (>=)."""
    imp = np.sort(np.asarray(impostor, np.float64))[::-1]
    k = int(np.floor(far * len(imp)))
    if k >= len(imp):
        return float("-inf")
    return float(np.nextafter(imp[k], np.inf))


def tar_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> float | None:
    """True-accept rate at a false-accept rate; None if the impostors cannot resolve it."""
    if len(impostor) == 0 or len(genuine) == 0 or far * len(impostor) < 1:
        return None
    t = threshold_at_far(impostor, far)
    return float((np.asarray(genuine) >= t).mean())


def roc(genuine: np.ndarray, impostor: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(far, tar, threshold) over every distinct score, thresholds decreasing."""
    g = np.asarray(genuine, np.float64)
    i = np.asarray(impostor, np.float64)
    ts = np.unique(np.concatenate([g, i]))[::-1]
    gs, is_ = np.sort(g), np.sort(i)
    tar = 1 - np.searchsorted(gs, ts, side="left") / max(len(gs), 1)
    far = 1 - np.searchsorted(is_, ts, side="left") / max(len(is_), 1)
    return far, tar, ts


def eer(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """Equal error rate: where false rejects and false accepts meet."""
    if len(genuine) == 0 or len(impostor) == 0:
        return float("nan")
    far, tar, _ = roc(genuine, impostor)
    frr = 1 - tar
    j = int(np.argmin(np.abs(frr - far)))
    return float((frr[j] + far[j]) / 2)


def pair_metrics(
    genuine: np.ndarray,
    impostor: np.ndarray,
    threshold: float,
    fars: tuple[float, ...] = (1e-2, 1e-3),
) -> PairMetrics:
    g = np.asarray(genuine, np.float64)
    i = np.asarray(impostor, np.float64)
    n = len(g) + len(i)
    correct = int((g >= threshold).sum() + (i < threshold).sum())
    return PairMetrics(
        genuine=len(g),
        impostor=len(i),
        accuracy=correct / n if n else float("nan"),
        tar=float((g >= threshold).mean()) if len(g) else float("nan"),
        far=float((i >= threshold).mean()) if len(i) else float("nan"),
        tar_at_far={f: tar_at_far(g, i, f) for f in fars},
        eer=eer(g, i),
    )


def best_accuracy_threshold(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """Threshold with the highest accuracy on these scores (for 10-fold protocols)."""
    g = np.asarray(genuine, np.float64)
    i = np.asarray(impostor, np.float64)
    ts = np.unique(np.concatenate([g, i]))
    gs, is_ = np.sort(g), np.sort(i)
    acc = (len(g) - np.searchsorted(gs, ts, side="left")) + np.searchsorted(is_, ts, side="left")
    return float(ts[int(np.argmax(acc))])
