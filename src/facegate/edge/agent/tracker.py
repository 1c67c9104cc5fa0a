"""Follow faces across frames by box overlap (IoU), so one approach gives one decision.

A gate lane sees a few people at most, so a greedy IoU match is enough: no appearance model,
nothing about the face is kept beyond the box of the current approach (principle 5: this
follows a face for the few seconds of one passage at one door, it tracks no one over time).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

Box = tuple[float, float, float, float]  # x, y, width, height


def iou(a: Box, b: Box) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _near(a: Box, b: Box, dt: float) -> bool:
    """Centres close enough for one person's step in ``dt`` seconds: a face width per 1/15 s
    at least, more when the agent was busy and frames between were skipped (at most three)."""
    ca = (a[0] + a[2] / 2, a[1] + a[3] / 2)
    cb = (b[0] + b[2] / 2, b[1] + b[3] / 2)
    reach = max(min(a[2], a[3]), min(b[2], b[3])) * min(max(1.0, dt * 15.0), 3.0)
    return abs(ca[0] - cb[0]) < reach and abs(ca[1] - cb[1]) < reach


@dataclass
class Candidate:
    """One gate-size frame of a track; the frame is dropped once the burst is decided."""

    frame: np.ndarray | None
    rank: float
    t: float


@dataclass
class Track:
    id: int
    box: Box
    first_seen: float
    last_seen: float
    misses: int = 0
    state: str = "collecting"  # collecting -> pending -> decided (-> collecting again)
    decided_at: float | None = None
    retry_at: float | None = None
    first_usable: float | None = None  # first gate-size frame of this round
    candidates: list[Candidate] = field(default_factory=list)
    decisions: int = 0

    def drop_frames(self) -> None:
        for c in self.candidates:
            c.frame = None  # principle 3: the pixels go as soon as they are used
        self.candidates.clear()


class Tracker:
    def __init__(self, lost_s: float = 1.0, lost_frames: int = 3, min_iou: float = 0.2) -> None:
        self.lost_s = lost_s
        self.lost_frames = lost_frames
        self.min_iou = min_iou
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)
        self.started = 0

    def clear(self) -> None:
        """Forget everyone (the camera dropped: what it shows next is a new observation)."""
        for tr in self.tracks:
            tr.drop_frames()
        self.tracks.clear()

    def update(self, boxes: list[Box], t: float) -> tuple[list[tuple[Track, int]], list[Track]]:
        """Match this frame's boxes; returns ([(track, box index)], tracks that ended)."""
        pairs = sorted(
            (
                (iou(tr.box, b), ti, bi)
                for ti, tr in enumerate(self.tracks)
                for bi, b in enumerate(boxes)
            ),
            reverse=True,
        )
        used_t: set[int] = set()
        used_b: set[int] = set()
        matched: list[tuple[Track, int]] = []
        for score, ti, bi in pairs:
            if ti in used_t or bi in used_b:
                continue
            tr = self.tracks[ti]
            if score < self.min_iou and not _near(tr.box, boxes[bi], t - tr.last_seen):
                continue
            used_t.add(ti)
            used_b.add(bi)
            tr.box, tr.last_seen, tr.misses = boxes[bi], t, 0
            matched.append((tr, bi))
        ended: list[Track] = []
        for ti, tr in enumerate(self.tracks):
            if ti in used_t:
                continue
            tr.misses += 1
            if tr.misses >= self.lost_frames and t - tr.last_seen >= self.lost_s:
                ended.append(tr)
        for bi, b in enumerate(boxes):
            if bi not in used_b:
                tr = Track(next(self._ids), b, t, t)
                self.tracks.append(tr)
                self.started += 1
                matched.append((tr, bi))
        for tr in ended:
            self.tracks.remove(tr)  # the caller decides on or drops its frames
        return matched, ended
