"""Embedders: aligned chips in, L2-unit vectors out. Detector and Embedder are small protocols.

Each embedder works in two steps so that batches and other inference back-ends fit in:
``chips(rgb, detections)`` cuts the aligned chips the model was trained on, and
``embed_chips(chips)`` turns a stack of chips into unit vectors. Horizontal-flip test-time
augmentation, when enabled, embeds each chip and its mirror image and averages the two.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import dlib
import numpy as np

from facegate.vision.detect import Detection
from facegate.vision.models import model_path


@runtime_checkable
class Detector(Protocol):
    name: str

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Every face in an RGB image, largest first."""
        ...


@runtime_checkable
class Embedder(Protocol):
    name: str
    dim: int
    chip_size: int

    def chips(self, rgb: np.ndarray, detections: list[Detection]) -> np.ndarray:
        """Aligned RGB chips, uint8 [N, chip_size, chip_size, 3]."""
        ...

    def embed_chips(self, chips: np.ndarray, flip: bool = False) -> np.ndarray:
        """Unit vectors, float32 [N, dim]."""
        ...


def l2_normalize(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(norm, 1e-12)


def _with_flip(chips: np.ndarray, run: Callable[[np.ndarray], np.ndarray], flip: bool):
    if len(chips) == 0:
        return np.zeros((0, 0), np.float32)
    if not flip:
        return l2_normalize(run(chips))
    both = np.concatenate([chips, chips[:, :, ::-1]], axis=0)
    v = l2_normalize(run(np.ascontiguousarray(both)))
    n = len(chips)
    return l2_normalize(v[:n] + v[n:])


# ArcFace/SFace 112x112 reference positions of the 5 landmarks (as OpenCV's alignCrop uses).
_SFACE_REF = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    np.float32,
)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift) mapping src to dst (Umeyama)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1
    rot = u @ np.diag(d) @ vt
    var_s = (s0**2).sum() / len(src)
    scale = (sig * d).sum() / var_s if var_s > 0 else 1.0
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def align_112(rgb: np.ndarray, detections: list[Detection]) -> np.ndarray:
    """112x112 chips aligned on the 5 landmarks (as OpenCV's FaceRecognizerSF.alignCrop)."""
    out = np.empty((len(detections), 112, 112, 3), np.uint8)
    for i, det in enumerate(detections):
        m = similarity_transform(det.landmarks, _SFACE_REF)
        out[i] = cv2.warpAffine(rgb, m, (112, 112), flags=cv2.INTER_LINEAR)
    return out


class SFaceEmbedder:
    """SFace (OpenCV model zoo, int8): 112x112 chips aligned on YuNet's 5 landmarks."""

    name = "sface-2021dec-int8"
    dim = 128
    chip_size = 112

    def __init__(self, model_dir: Path | None = None, onnx: bool = True, threads: int = 1) -> None:
        self._path = str(model_path("sface", model_dir))
        self._local = threading.local()
        # Same file, same vectors, faster (issue 9); None: OpenCV's DNN engine.
        self._onnx = None
        if onnx:
            from facegate.vision.sface_onnx import shared_onnx_sface

            self._onnx = shared_onnx_sface(Path(self._path), threads)
        self.runtime = "onnxruntime" if self._onnx is not None else "opencv-dnn"

    def _net(self) -> cv2.dnn.Net:
        net = getattr(self._local, "net", None)
        if net is None:
            net = cv2.dnn.readNet(self._path)
            self._local.net = net
        return net

    def chips(self, rgb: np.ndarray, detections: list[Detection]) -> np.ndarray:
        return align_112(rgb, detections)

    def _forward(self, chips: np.ndarray) -> np.ndarray:
        if self._onnx is not None:
            return self._onnx.features_from_rgb(chips)
        # The chips are RGB already, which is what the network wants (no channel swap).
        blob = cv2.dnn.blobFromImages(list(chips), 1.0, (112, 112), (0, 0, 0), False, False)
        net = self._net()
        net.setInput(blob, "data")  # OpenCV 5's graph engine needs the input name
        return np.asarray(net.forward(), np.float32).reshape(len(chips), -1)

    def embed_chips(self, chips: np.ndarray, flip: bool = False) -> np.ndarray:
        return _with_flip(np.asarray(chips, np.uint8), self._forward, flip)


ChipDescriptor = Callable[[np.ndarray], np.ndarray]


class DlibEmbedder:
    """dlib's ResNet: 5-point shape predictor inside the detector's box, 150x150 chip, 128-D.

    Two steps: ``chips`` (landmarks + ``dlib.get_face_chip``) and ``descriptors_from_chips``
    (the network). ``descriptor_backend`` replaces the second step, e.g. with an onnxruntime
    session converted from the same model file; it must map uint8 [N,150,150,3] RGB chips to
    float32 [N,128] descriptors.
    """

    name = "dlib-resnet-v1"
    dim = 128
    chip_size = 150

    def __init__(
        self, model_dir: Path | None = None, descriptor_backend: ChipDescriptor | None = None
    ) -> None:
        self._shape_path = str(model_path("dlib_shape5", model_dir))
        self._resnet_path = str(model_path("dlib_resnet", model_dir))
        self._backend = descriptor_backend
        self._local = threading.local()

    def _shape_predictor(self) -> dlib.shape_predictor:
        sp = getattr(self._local, "sp", None)
        if sp is None:
            sp = self._local.sp = dlib.shape_predictor(self._shape_path)
        return sp

    def _resnet(self) -> dlib.face_recognition_model_v1:
        net = getattr(self._local, "net", None)
        if net is None:
            net = self._local.net = dlib.face_recognition_model_v1(self._resnet_path)
        return net

    def landmarks(self, rgb: np.ndarray, detections: list[Detection]) -> list:
        """dlib's 5-point shapes, each predicted inside the detector's box."""
        sp = self._shape_predictor()
        shapes = []
        for det in detections:
            x, y, w, h = det.box
            rect = dlib.rectangle(round(x), round(y), round(x + w), round(y + h))
            shapes.append(sp(rgb, rect))
        return shapes

    def chips_from_shapes(self, rgb: np.ndarray, shapes: list) -> np.ndarray:
        out = np.empty((len(shapes), 150, 150, 3), np.uint8)
        for i, shape in enumerate(shapes):
            out[i] = dlib.get_face_chip(rgb, shape, size=150, padding=0.25)
        return out

    def chips(self, rgb: np.ndarray, detections: list[Detection]) -> np.ndarray:
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        return self.chips_from_shapes(rgb, self.landmarks(rgb, detections))

    def descriptors_from_chips(self, chips: np.ndarray) -> np.ndarray:
        """uint8 [N,150,150,3] RGB chips -> float32 [N,128] raw dlib descriptors."""
        if self._backend is not None:
            return np.asarray(self._backend(chips), np.float32)
        batch = [np.ascontiguousarray(c) for c in chips]
        return np.asarray(self._resnet().compute_face_descriptor(batch), np.float32)

    def embed_chips(self, chips: np.ndarray, flip: bool = False) -> np.ndarray:
        return _with_flip(np.asarray(chips, np.uint8), self.descriptors_from_chips, flip)
