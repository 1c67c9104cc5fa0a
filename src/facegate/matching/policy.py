"""The match decision: threshold plus a margin between the best subject and the runner-up.

A probe that is close to two enrolled subjects is refused as ``ambiguous`` and given to
neither: letting the wrong one of two look-alikes (or a person enrolled twice under two ids)
through a door is worse than asking them to use their card.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from facegate.matching.gallery import Gallery, SubjectHit

Outcome = Literal["match", "no_match", "ambiguous"]


@dataclass(frozen=True)
class MatchDecision:
    outcome: Outcome
    subject: Hashable | None  # set only when outcome == "match"
    score: float | None  # best subject's score
    runner_up_score: float | None
    threshold: float
    margin: float

    @property
    def reason(self) -> str:
        return self.outcome

    @property
    def matched(self) -> bool:
        return self.outcome == "match"


def decide(hits: Sequence[SubjectHit], threshold: float, margin: float) -> MatchDecision:
    """Decide on the top hits of one search (best first, one per subject)."""
    if not hits:
        return MatchDecision("no_match", None, None, None, threshold, margin)
    best = hits[0]
    runner = hits[1].score if len(hits) > 1 else None
    if best.score < threshold:
        return MatchDecision("no_match", None, best.score, runner, threshold, margin)
    if runner is not None and best.score - runner < margin:
        return MatchDecision("ambiguous", None, best.score, runner, threshold, margin)
    return MatchDecision("match", best.subject, best.score, runner, threshold, margin)


@dataclass(frozen=True)
class MatchPolicy:
    """Threshold (as a function of how many subjects a search covers) and margin."""

    margin: float
    threshold_for: Callable[[int], float]

    def identify(
        self,
        gallery: Gallery,
        probe: np.ndarray,
        subjects: Collection[Hashable] | None = None,
    ) -> MatchDecision:
        """Search a gallery (optionally only some subjects) and decide."""
        n = len(subjects) if subjects is not None else gallery.subject_count
        hits = gallery.search(probe, k=2, subjects=subjects)
        return decide(hits, self.threshold_for(max(n, 1)), self.margin)
