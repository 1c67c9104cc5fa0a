"""In-memory gallery, thresholds and the match decision. Knows nothing of consent or SQL."""

from facegate.matching.gallery import Gallery, SubjectFilter, SubjectHit
from facegate.matching.policy import MatchDecision, MatchPolicy, decide
from facegate.matching.thresholds import (
    PopulationTail,
    far_for_gallery,
    identification_threshold,
    threshold_for_far,
)

__all__ = [
    "Gallery",
    "MatchDecision",
    "MatchPolicy",
    "PopulationTail",
    "SubjectFilter",
    "SubjectHit",
    "decide",
    "far_for_gallery",
    "identification_threshold",
    "threshold_for_far",
]
