"""Pixels to templates: safe decoding, detection, quality, alignment, embedding, fusion.

Knows nothing of people, consent or storage (ARCHITECTURE.md, layer ``facegate.vision``).
Purpose lock (principle 5): detect, quality-check, align, embed, compare; nothing else.
"""

from facegate.vision.decode import DecodeLimits, decode
from facegate.vision.detect import Detection, YuNetDetector
from facegate.vision.embed import Detector, DlibEmbedder, Embedder, SFaceEmbedder
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
    "Quality",
    "QualityProfile",
    "SFaceEmbedder",
    "Template",
    "Verification",
    "YuNetDetector",
    "decode",
    "model_path",
]
