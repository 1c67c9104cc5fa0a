"""Pixels to templates: safe decoding, detection, quality, alignment, embedding, fusion.

Knows nothing of people, consent or storage (ARCHITECTURE.md, layer ``facegate.vision``).
Purpose lock (principle 5): detect, quality-check, align, embed, compare, and check that the
face is live (issue 14); nothing else.
"""

from facegate.vision.decode import DecodeLimits, decode
from facegate.vision.detect import Detection, YuNetDetector
from facegate.vision.embed import Detector, DlibEmbedder, Embedder, SFaceEmbedder
from facegate.vision.liveness import Liveness, LivenessChecker
from facegate.vision.models import MODEL_FILES, model_path
from facegate.vision.pipeline import Face, FacePipeline, Template, Verification
from facegate.vision.quality import PROFILES, REASONS, Quality, QualityProfile

__all__ = [
    "MODEL_FILES",
    "PROFILES",
    "REASONS",
    "DecodeLimits",
    "Detection",
    "Detector",
    "DlibEmbedder",
    "Embedder",
    "Face",
    "FacePipeline",
    "Liveness",
    "LivenessChecker",
    "Quality",
    "QualityProfile",
    "SFaceEmbedder",
    "Template",
    "Verification",
    "YuNetDetector",
    "decode",
    "model_path",
]
