"""FacePipeline: image in, faces with quality verdicts and fused templates out.

    pipe = FacePipeline()
    faces = pipe.analyze(image)          # largest first ("the" face first: order_faces)
    pipe.verify(image_a, image_b)        # Verification(match, score, threshold, reason)
    pipe.liveness(frames)                # Liveness(live, score, threshold, reason), issue 14

The fused template concatenates each embedder's unit vector scaled by its calibrated weight
(the squares of the weights sum to 1), so a template is unit-norm and the similarity of two
templates is one dot product: the weighted sum of the per-model cosine similarities.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facegate.config import Settings
from facegate.errors import FacegateError, InvalidInput, ModelMismatch
from facegate.matching.thresholds import identification_threshold, threshold_for_far
from facegate.vision.calibration import EmbedderCalibration, load_calibration
from facegate.vision.decode import DecodeLimits, ImageInput, decode
from facegate.vision.detect import Detection, YuNetDetector
from facegate.vision.embed import DlibEmbedder, Embedder, SFaceEmbedder, align_112
from facegate.vision.liveness import MAX_FRAMES, Liveness, LivenessChecker, shared_checker
from facegate.vision.models import model_path
from facegate.vision.quality import Quality, QualityProfile, assess, get_profile

DETECTORS = {"yunet": YuNetDetector}
EMBEDDERS = {"sface": SFaceEmbedder, "dlib": DlibEmbedder}


class Template(np.ndarray):
    """A 1-D float32 template that remembers the ``model_id`` that made it."""

    model_id: str | None

    def __new__(cls, values: np.ndarray, model_id: str | None) -> Template:
        obj = np.asarray(values, dtype=np.float32).reshape(-1).view(cls)
        obj.model_id = model_id
        return obj

    def __array_finalize__(self, obj: object) -> None:
        self.model_id = getattr(obj, "model_id", None)


@dataclass
class Face:
    """One face: where it is, how good it is, and its template when quality allows."""

    box: tuple[int, int, int, int]  # x, y, width, height in original pixels
    landmarks: np.ndarray  # (5, 2) float32: right eye, left eye, nose, mouth right, mouth left
    score: float  # detector confidence
    quality: Quality
    template: Template | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly view (never includes the template values)."""
        return {
            "box": list(self.box),
            "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in self.landmarks],
            "detector_score": round(self.score, 4),
            "quality": self.quality.to_dict(),
            "has_template": self.template is not None,
        }


@dataclass(frozen=True)
class Verification:
    match: bool
    score: float | None
    threshold: float
    reason: str  # "match", "no_match", "no_face" or "low_quality:<reason>"
    image: str | None = None  # "a" or "b": which input had no usable face

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {
            "match": self.match,
            "score": None if self.score is None else round(self.score, 6),
            "threshold": round(self.threshold, 6),
            "reason": self.reason,
        }
        if self.image:
            d["image"] = self.image
        return d


class FacePipeline:
    """Decode, detect, check quality, align, embed and fuse; compare fused templates."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        embedders: Sequence[str] | None = None,
        model_dir: Path | None = None,
        calibration_file: Path | None = None,
        dlib_descriptor_backend=None,
    ) -> None:
        s = settings or Settings()
        names = tuple(embedders or s.embedders)
        unknown = [n for n in names if n not in EMBEDDERS]
        if unknown or not names or s.detector not in DETECTORS:
            raise InvalidInput(
                f"unknown detector/embedders {s.detector!r}/{names!r}; "
                f"detectors: {sorted(DETECTORS)}, embedders: {sorted(EMBEDDERS)}"
            )
        model_dir = model_dir if model_dir is not None else s.model_dir
        self._liveness_args = (model_dir, s.inference_threads)  # loaded on first use
        self.calibration: EmbedderCalibration = load_calibration(names, calibration_file)
        self.limits = DecodeLimits(
            s.max_image_bytes,
            s.max_image_pixels,
            s.min_image_side,
            target_pixels=s.decode_target_pixels,
            max_full_pixels=s.max_full_decode_pixels,
        )
        self.detector = DETECTORS[s.detector](
            model_dir=model_dir, onnx=s.yunet_onnx, threads=s.inference_threads
        )
        self.embedders: dict[str, Embedder] = {}
        self.dlib_backend = "dlib-resnet"  # which runtime computes dlib's ResNet descriptors
        for n in names:
            if n == "dlib":
                if dlib_descriptor_backend is None and s.dlib_onnx:
                    dlib_descriptor_backend = self._onnx_dlib(s, model_dir)
                self.embedders[n] = DlibEmbedder(model_dir, dlib_descriptor_backend)
            elif n == "sface":
                self.embedders[n] = SFaceEmbedder(
                    model_dir, onnx=s.sface_onnx, threads=s.inference_threads
                )
            else:
                self.embedders[n] = EMBEDDERS[n](model_dir)
        self.weights = np.array([self.calibration.weights[n] for n in names], np.float32)
        self.dim = sum(e.dim for e in self.embedders.values())
        parts = [self.detector.name] + [
            f"{e.name}*{w:.3f}" for e, w in zip(self.embedders.values(), self.weights, strict=True)
        ]
        flip = "+flip" if self.calibration.flip else ""
        self.model_id = "+".join(parts) + flip + "/" + self.calibration.version

    def _onnx_dlib(self, s: Settings, model_dir: Path | None):
        """dlib's ResNet in onnxruntime if its self-check agrees with dlib, else None (dlib).

        Same weights, same vectors, so ``model_id`` does not change (issue 9). The session
        uses ``inference_threads`` (one by default: lowest latency at the gate); enrollment
        batches all chips of a call into one run.
        """
        from facegate.vision.dlib_onnx import DlibDescriptor, shared_dlib_descriptor

        backend = shared_dlib_descriptor(
            model_path("dlib_resnet", model_dir),
            s.data_dir / "models",
            threads=s.inference_threads,
        )
        if isinstance(backend, DlibDescriptor):
            return None  # the embedder's own per-thread dlib model (the fallback was logged)
        self.dlib_backend = backend.name
        return backend.descriptors_from_chips

    # -- thresholds --------------------------------------------------------------------------

    @property
    def threshold(self) -> float:
        """Shipped 1:1 verification threshold (false-match rate ``target_far``)."""
        return self.calibration.threshold

    @property
    def margin(self) -> float:
        """Required lead of the best subject over the runner-up in a 1:N search."""
        return self.calibration.margin

    def threshold_for_gallery(self, n_enrolled: int, fpir: float | None = None) -> float:
        """1:N threshold for ``n_enrolled`` people at a false-positive identification rate."""
        return identification_threshold(
            n_enrolled,
            self.calibration.populations,
            self.threshold,
            fpir if fpir is not None else self.calibration.fpir,
        )

    def threshold_for_far(self, far: float) -> float:
        """Threshold for any per-comparison false-match rate (strictest population)."""
        return threshold_for_far(self.calibration.populations, far)

    # -- analysis ----------------------------------------------------------------------------

    def decode(self, image: ImageInput) -> np.ndarray:
        return decode(image, self.limits)

    def analyze(
        self,
        image: ImageInput,
        profile: str | QualityProfile = "gate",
        max_faces: int | None = None,
        timings: dict[str, float] | None = None,
    ) -> list[Face]:
        """Every face, largest first ("the" face first, see ``detect.order_faces``); faces
        that pass ``profile`` carry a template.

        ``max_faces`` limits how many faces (in that order) are checked and embedded; the
        others are not returned. ``timings`` collects seconds per stage when given.
        """
        return self.analyze_many([image], profile, max_faces, timings)[0]

    def analyze_many(
        self,
        images: Iterable[ImageInput],
        profile: str | QualityProfile = "gate",
        max_faces: int | None = None,
        timings: dict[str, float] | None = None,
    ) -> list[list[Face]]:
        """``analyze`` for many images, with each model run once over all their chips."""
        prof = get_profile(profile)
        clock = _Clock(timings)
        pending: list[tuple[Face, np.ndarray, Detection]] = []
        results: list[list[Face]] = []
        for image in images:
            with clock("decode"):
                rgb = self.decode(image)
            with clock("detect"):
                dets = self.detector.detect(rgb)
            faces = []
            for det in dets[:max_faces] if max_faces else dets:
                with clock("quality"):
                    chip = align_112(rgb, [det])[0]
                    q = assess(det, chip, (rgb.shape[1], rgb.shape[0]), dets, prof)
                face = Face(_int_box(det.box), det.landmarks.copy(), det.score, q)
                faces.append(face)
                if q.ok:
                    pending.append((face, rgb, det))
            results.append(faces)
        if pending:
            templates = self._embed([(rgb, det) for _, rgb, det in pending], clock)
            for (face, _, _), tmpl in zip(pending, templates, strict=True):
                face.template = tmpl
        return results

    def _embed(self, pending: list[tuple[np.ndarray, Detection]], clock: _Clock) -> list[Template]:
        per_model = []
        for key, emb in self.embedders.items():
            if isinstance(emb, DlibEmbedder):
                with clock("landmarks"):
                    shapes = [emb.landmarks(rgb, [d])[0] for rgb, d in pending]
                with clock("chips"):
                    chips = np.concatenate(
                        [
                            emb.chips_from_shapes(rgb, [shape])
                            for (rgb, _), shape in zip(pending, shapes, strict=True)
                        ]
                    )
            else:
                with clock("chips"):
                    chips = np.concatenate([emb.chips(rgb, [d]) for rgb, d in pending])
            with clock(f"embed_{key}"):
                per_model.append(emb.embed_chips(chips, flip=self.calibration.flip))
        return [Template(v, self.model_id) for v in self.fuse(per_model)]

    def fuse(self, per_model: Sequence[np.ndarray]) -> np.ndarray:
        """Fused templates [N, dim] from per-model unit vectors (one [N, d_i] array each)."""
        parts = [
            np.asarray(v, np.float32) * w for v, w in zip(per_model, self.weights, strict=True)
        ]
        return np.concatenate(parts, axis=1)

    def embed_chips(self, chips: dict[str, np.ndarray]) -> list[Template]:
        """Templates from pre-aligned chips, one stack per embedder key (batch enrollment)."""
        per_model = [
            emb.embed_chips(chips[key], flip=self.calibration.flip)
            for key, emb in self.embedders.items()
        ]
        return [Template(v, self.model_id) for v in self.fuse(per_model)]

    # -- comparison --------------------------------------------------------------------------

    def similarity(self, t1: np.ndarray, t2: np.ndarray) -> float:
        """``float(t1 @ t2)``; templates of another model are refused, never compared."""
        for t in (t1, t2):
            mid = getattr(t, "model_id", None)
            if mid is not None and mid != self.model_id:
                raise ModelMismatch(
                    f"a template made by {mid!r} cannot be compared with this pipeline "
                    f"({self.model_id!r}); the person must be enrolled again"
                )
            if np.shape(t) != (self.dim,):
                raise ModelMismatch(
                    f"a template of shape {np.shape(t)} is not from this pipeline "
                    f"(expects {self.dim} values)"
                )
        return float(np.asarray(t1, np.float32) @ np.asarray(t2, np.float32))

    def verify(
        self, image_a: ImageInput, image_b: ImageInput, profile: str | QualityProfile = "gate"
    ) -> Verification:
        """Are "the" faces of two images (``detect.order_faces``) the same person, at the
        shipped threshold?"""
        templates = []
        for name, image in (("a", image_a), ("b", image_b)):
            faces = self.analyze(image, profile, max_faces=1)
            if not faces:
                return Verification(False, None, self.threshold, "no_face", name)
            if faces[0].template is None:
                why = faces[0].quality.reasons[0]
                return Verification(False, None, self.threshold, f"low_quality:{why}", name)
            templates.append(faces[0].template)
        score = self.similarity(templates[0], templates[1])
        match = score >= self.threshold
        return Verification(match, score, self.threshold, "match" if match else "no_match")

    # -- liveness (issue 14) -----------------------------------------------------------------

    @property
    def liveness_checker(self) -> LivenessChecker:
        """The MiniFASNet pair and the shipped combination rule, loaded on first use (once
        per process for a model directory and thread count)."""
        return shared_checker(*self._liveness_args)

    def liveness(self, frames: Sequence[ImageInput] | ImageInput) -> Liveness:
        """Is "the" face in these frames of one person live (1..N frames, in time order)?

        ``r.live``, ``r.score`` (higher = more likely live), ``r.threshold`` (shipped: passive
        alone for one frame, the combined rule for 2+), ``r.reason``: ``live``, ``attack``,
        ``no_face`` (no frame had a face) or ``bad_input`` (no frames, too many, or a frame
        that does not decode; ``r.detail`` has the error code). Decodes and detects each
        frame; a gate that has already run ``analyze`` calls ``liveness_of`` instead.
        """
        if isinstance(frames, bytes | bytearray | memoryview | str | Path) or (
            isinstance(frames, np.ndarray) and frames.ndim == 3
        ):
            frames = [frames]
        frames = list(frames)
        thr = self.liveness_checker.calibration.threshold_single
        if not 1 <= len(frames) <= MAX_FRAMES:
            return Liveness(False, 0.0, thr, "bad_input", detail=f"frames:{len(frames)}")
        try:
            rgbs = [self.decode(f) for f in frames]
        except FacegateError as exc:
            return Liveness(False, 0.0, thr, "bad_input", detail=exc.code)
        faces = [self.detector.detect(rgb) for rgb in rgbs]
        return self.liveness_of(rgbs, [f[0] if f else None for f in faces])

    def liveness_of(self, images_rgb: Sequence[np.ndarray], faces: Sequence[object]) -> Liveness:
        """Liveness of faces already found: the gate's path, no second detection.

        ``images_rgb``: the decoded frames (``pipe.decode``), time order; ``faces``: "the"
        face of each (``analyze(...)[0]``, a ``Face``; or a ``Detection``), ``None`` where a
        frame had none. Templates are neither read nor changed. Example::

            rgbs = [pipe.decode(f) for f in frames]
            found = [pipe.analyze(rgb, max_faces=1) for rgb in rgbs]
            r = pipe.liveness_of(rgbs, [f[0] if f else None for f in found])
            if not r.live:  # refuse before matching; tell the client only "liveness_failed"
                ...
        """
        return self.liveness_checker.check(list(images_rgb), list(faces))  # type: ignore[arg-type]


class _Clock:
    """Adds the seconds spent in each named stage to a dict (or does nothing)."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self._stage = ""
        self._t0 = 0.0

    def __call__(self, stage: str) -> _Clock:
        self._stage = stage
        return self

    def __enter__(self) -> None:
        self._t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        if self.timings is not None:
            dt = time.perf_counter() - self._t0
            self.timings[self._stage] = self.timings.get(self._stage, 0.0) + dt


def _int_box(box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    x, y, w, h = box
    return round(x), round(y), round(w), round(h)
