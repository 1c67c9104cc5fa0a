"""Calibration data shipped beside the models: fusion weights, thresholds, margin, tails.

``calibration.json`` is written by ``bench/calibrate.py`` from development data only; it
records the method and figures that produced each number. One entry per embedder set
(``"sface+dlib"``, the default, and each model alone for comparison).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from facegate.errors import InvalidInput
from facegate.matching.thresholds import PopulationTail


@dataclass(frozen=True)
class EmbedderCalibration:
    """Everything the pipeline needs for one embedder set."""

    key: str  # e.g. "sface+dlib"
    weights: dict[str, float]  # embedder key -> weight; squares sum to 1
    flip: bool
    threshold: float  # 1:1, at target_far on the strictest population
    target_far: float
    margin: float
    fpir: float
    populations: tuple[PopulationTail, ...]
    version: str


def calibration_path() -> Path:
    return Path(str(resources.files("facegate.vision") / "calibration.json"))


def load_calibration(embedders: tuple[str, ...], path: Path | None = None) -> EmbedderCalibration:
    """The calibration entry for an embedder set, e.g. ``("sface", "dlib")``."""
    data = json.loads((path or calibration_path()).read_text(encoding="utf-8"))
    key = "+".join(embedders)
    entry = data["configs"].get(key)
    if entry is None:
        raise InvalidInput(
            f"no calibration for embedders {key!r}; calibrated: {sorted(data['configs'])}"
        )
    weights = {k: float(v) for k, v in entry["weights"].items()}
    if list(weights) != list(embedders):
        raise InvalidInput(f"calibration {key!r} lists weights for {list(weights)}")
    return EmbedderCalibration(
        key=key,
        weights=weights,
        flip=bool(entry["flip"]),
        threshold=float(entry["threshold"]),
        target_far=float(entry["target_far"]),
        margin=float(entry["margin"]),
        fpir=float(entry.get("fpir", 1e-3)),
        populations=tuple(PopulationTail.from_dict(p) for p in entry["populations"]),
        version=str(data["version"]),
    )
