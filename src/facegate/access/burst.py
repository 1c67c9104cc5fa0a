"""A short burst of frames gives one decision: the best-quality frames must agree.

Deciding on the best frames (not the first) keeps a cooperative person fast; requiring the
chosen frames to name the same person lowers false accepts, because an impostor who scores
above threshold on one lucky frame rarely does on two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FrameProbe:
    """What one frame contributes to a decision: a template, or the reason it has none."""

    template: np.ndarray | None
    quality: float = 0.0  # higher is better; only used to rank the frames of one burst
    reason: str | None = None  # machine reason when there is no template


@dataclass(frozen=True)
class ProbeOutcome:
    """The match decision for one probe."""

    subject: str | None  # pseudonym of the matched person, None if no match
    reason: str  # "match" or the machine reason for no match (no_match, ambiguous, ...)
    score: float | None = None


def select_probes(frames: Sequence[FrameProbe], agree: int) -> tuple[list[FrameProbe], str]:
    """The ``agree`` best usable frames, or none and the reason nothing is usable.

    When fewer usable frames exist than ``agree`` (a single frame sent, or the rest too
    blurry), the usable ones decide: a cooperative person is not held at the door, and the
    decision is only as permissive as a single-frame gate.
    """
    usable = [f for f in frames if f.template is not None]
    if not usable:
        return [], _why_unusable(frames)
    usable.sort(key=lambda f: f.quality, reverse=True)
    return usable[: max(agree, 1)], "ok"


def _why_unusable(frames: Sequence[FrameProbe]) -> str:
    # A face refused for quality says more to the person ("come closer") than "no face".
    reasons = [f.reason or "no_face" for f in frames]
    for r in reasons:
        if r != "no_face":
            return r
    return "no_face"


def combine(outcomes: Sequence[ProbeOutcome]) -> ProbeOutcome:
    """Allow only if every selected frame matched the same subject; otherwise say why not."""
    if not outcomes:
        return ProbeOutcome(None, "no_face")
    for reason in ("ambiguous", "no_match"):
        for o in outcomes:
            if o.subject is None and o.reason == reason:
                return o
    for o in outcomes:
        if o.subject is None:
            return o
    subjects = {o.subject for o in outcomes}
    if len(subjects) > 1:
        return ProbeOutcome(None, "burst_disagree")
    # The weakest frame's score is the burst's score: the decision is only as sure as that.
    return min(outcomes, key=lambda o: o.score if o.score is not None else float("inf"))
