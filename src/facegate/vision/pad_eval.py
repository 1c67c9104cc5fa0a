"""Presentation-attack detection figures (ISO/IEC 30107-3) and labelled-set manifests.

A manifest is a CSV with ``path`` and ``label`` (``live``; anything else is an attack), and
optionally ``pa_class`` (the attack instrument: print, replay_phone, ...; default: the label),
``video_id`` or ``sequence`` (frames of one capture, in file order or by ``frame``) and
``identity``. A ``path`` may also name a video file (``VIDEO_SUFFIXES``: what a site records
with its own camera): ``video_frames`` takes a frame every ``gap_s`` seconds from it, and the
frames are cut into bursts like a sequence of images. Figures, per attack class and for the
worst class (ISO/IEC 30107-3 cl. 13):

* APCER(class): share of that class's attack presentations accepted as live;
* BPCER: share of live presentations refused;
* ACER: (worst APCER + BPCER) / 2 (the average the standard's predecessor used; reported for
  comparison, the worst-class APCER and BPCER are the figures to read).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facegate.errors import InvalidInput

LIVE_LABELS = ("live", "bona_fide", "bonafide", "real", "genuine", "1")
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".ts", ".flv"})
MAX_VIDEO_FRAMES = 600  # frames taken from one video (5 minutes at one every 0.5 s)


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def video_frames(
    path: Path, gap_s: float = 0.5, max_frames: int = MAX_VIDEO_FRAMES
) -> list[np.ndarray]:
    """RGB frames of a video file, one every ``gap_s`` seconds of its own time (OpenCV's FFmpeg
    backend; the container's timestamps, else the frame rate). The burst rule reads motion
    across frames spread like its development data (about 0.5 s apart), so a recording is
    sampled that way rather than frame by frame."""
    if gap_s <= 0:
        raise InvalidInput(f"the gap between video frames must be positive (got {gap_s})")
    if not Path(path).is_file():
        raise InvalidInput(f"cannot read {path}: no such file")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise InvalidInput(f"cannot read {path}: not a video OpenCV's FFmpeg can open")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        out: list[np.ndarray] = []
        index, next_t = 0, 0.0
        while len(out) < max_frames:
            ok, bgr = cap.read()
            if not ok or bgr is None:
                break
            # The frame rate when the container states a plausible one, else the frame's own
            # timestamp (variable-rate recordings).
            if 0 < fps <= 240:
                t = index / fps
            else:
                t = float(cap.get(cv2.CAP_PROP_POS_MSEC) or 0.0) / 1000.0
            index += 1
            if t + 1e-6 >= next_t:
                out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                next_t = t + gap_s
    finally:
        cap.release()
    if not out:
        raise InvalidInput(f"cannot read {path}: no frame could be decoded")
    return out


@dataclass(frozen=True)
class Sample:
    path: str
    live: bool
    pa_class: str  # "live" for bona fide presentations
    sequence: str  # capture id (frames of one burst share it); the path when none given
    identity: str
    frame: int


def read_manifest(path: Path) -> list[Sample]:
    """Rows of a labelled manifest (see the module docstring)."""
    try:
        with Path(path).open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            cols = set(reader.fieldnames or ())
            if not {"path", "label"} <= cols:
                raise InvalidInput(f"{path} needs the columns path and label (has {sorted(cols)})")
            out = []
            for i, r in enumerate(reader):
                label = r["label"].strip().lower()
                live = label in LIVE_LABELS
                pa = (r.get("pa_class") or "").strip() or ("live" if live else label or "attack")
                seq = (r.get("video_id") or r.get("sequence") or "").strip() or r["path"]
                frame = (r.get("frame") or "").strip()
                out.append(
                    Sample(
                        r["path"].strip(),
                        live,
                        "live" if live else pa,
                        seq,
                        (r.get("identity") or "").strip(),
                        int(frame) if frame.isdigit() else i,
                    )
                )
            return out
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None


def bursts(samples: list[Sample], max_frames: int = 5) -> list[list[Sample]]:
    """Frames grouped by ``sequence`` in frame order, cut into bursts of ``max_frames``."""
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[s.sequence].append(s)
    out = []
    for seq in sorted(groups):
        g = sorted(groups[seq], key=lambda s: s.frame)
        out.extend(g[i : i + max_frames] for i in range(0, len(g), max_frames))
    return out


def iso_figures(scores: np.ndarray, pa_classes: list[str], threshold: float) -> dict[str, object]:
    """APCER per attack class and the worst, BPCER and ACER at ``threshold`` (score >= it:
    accepted as live). ``pa_classes[i] == "live"`` marks a bona fide presentation."""
    s = np.asarray(scores, np.float64)
    cls = np.asarray(pa_classes)
    live = cls == "live"
    apcer = {}
    for c in sorted(set(cls[~live].tolist())):
        m = cls == c
        apcer[c] = {"apcer": float((s[m] >= threshold).mean()), "n": int(m.sum())}
    worst = max((v["apcer"] for v in apcer.values()), default=None)
    bpcer = float((s[live] < threshold).mean()) if live.any() else None
    return {
        "threshold": float(threshold),
        "bona_fide": int(live.sum()),
        "attacks": int((~live).sum()),
        "apcer": apcer,
        "apcer_worst": worst,
        "bpcer": bpcer,
        "acer": None if worst is None or bpcer is None else (worst + bpcer) / 2,
    }


def det_points(scores: np.ndarray, pa_classes: list[str]) -> dict[str, np.ndarray]:
    """Worst-class APCER and BPCER at every candidate threshold (for a DET plot)."""
    s = np.asarray(scores, np.float64)
    cls = np.asarray(pa_classes)
    live = cls == "live"
    ts = np.unique(s)
    classes = sorted(set(cls[~live].tolist()))
    bp = np.array([(s[live] < t).mean() for t in ts]) if live.any() else np.zeros(len(ts))
    worst = np.zeros(len(ts))
    for c in classes:
        sc = s[cls == c]
        worst = np.maximum(worst, np.array([(sc >= t).mean() for t in ts]))
    return {"threshold": ts, "apcer_worst": worst, "bpcer": bp}


def threshold_for_bpcer(live_scores: np.ndarray, max_bpcer: float) -> float:
    """The strictest (highest) threshold that refuses at most ``max_bpcer`` of ``live_scores``."""
    s = np.sort(np.asarray(live_scores, np.float64))
    if len(s) == 0:
        raise InvalidInput("no live samples to set a threshold on")
    k = int(np.floor(max_bpcer * len(s)))  # this many may fall below
    return float(s[k])
