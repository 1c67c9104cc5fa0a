"""In-memory gallery and the match decision. Knows nothing of consent or SQL."""

from facegate.matching.gallery import Gallery, SubjectFilter, SubjectHit

__all__ = ["Gallery", "SubjectFilter", "SubjectHit"]
