"""Face detection with YuNet (OpenCV model zoo, int8): boxes and 5 landmarks per face."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facegate.vision.models import model_path


@dataclass(frozen=True)
class Detection:
    """One detected face in original-image pixels.

    ``landmarks`` is a (5, 2) float32 array in YuNet's order: right eye, left eye, nose tip,
    right mouth corner, left mouth corner (the subject's right, i.e. image left).
    """

    box: tuple[float, float, float, float]  # x, y, width, height
    landmarks: np.ndarray
    score: float

    @property
    def size(self) -> float:
        """The shorter side of the box, the face size quality rules use."""
        return min(self.box[2], self.box[3])

    def yunet_row(self) -> np.ndarray:
        """The 15-value row OpenCV's FaceRecognizerSF.alignCrop expects."""
        return np.concatenate(
            [np.asarray(self.box, np.float32), self.landmarks.reshape(-1), [self.score]]
        ).astype(np.float32)


class YuNetDetector:
    """YuNet on a downscaled copy of large frames, boxes and landmarks mapped back.

    The copy is at most ``max_side`` pixels on its long side. Where that would shrink a face of
    ``keep_face_px`` in the original (gate size) below ``min_detect_px``, the size YuNet still
    finds reliably, a second pass runs at the scale that keeps it: gate-size faces are never
    lost to the downscale. A half-size pass catches faces too large for YuNet's anchors.
    """

    name = "yunet-2023mar-int8"

    def __init__(
        self,
        model_dir: Path | None = None,
        score_threshold: float = 0.7,
        nms_threshold: float = 0.3,
        max_side: int = 640,
        keep_face_px: int = 80,
        min_detect_px: int = 24,
        onnx: bool = True,
        threads: int = 1,
    ) -> None:
        self._path = str(model_path("yunet", model_dir))
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.max_side = max_side
        self.min_scale = min_detect_px / keep_face_px
        self._local = threading.local()  # OpenCV nets are not thread-safe: one per thread
        # Same file, same boxes, twice as fast (issue 9); None: OpenCV's FaceDetectorYN.
        self._onnx = None
        if onnx:
            from facegate.vision.yunet_onnx import shared_onnx_yunet

            self._onnx = shared_onnx_yunet(Path(self._path), threads)
        self.runtime = "onnxruntime" if self._onnx is not None else "opencv-dnn"

    def _net(self) -> cv2.FaceDetectorYN:
        net = getattr(self._local, "net", None)
        if net is None:
            net = cv2.FaceDetectorYN.create(
                self._path, "", (320, 320), self.score_threshold, self.nms_threshold, 5000
            )
            self._local.net = net
        return net

    def scales_for(self, width: int, height: int) -> list[float]:
        """Detection scales: the main copy, a finer one if the main copy would lose gate-size
        faces, and a coarser one because YuNet misses faces larger than about 400 px in its
        input (a person very close to a kiosk camera)."""
        long_side = max(width, height)
        main = min(1.0, self.max_side / long_side)
        scales = [main]
        if main < self.min_scale:
            scales.append(self.min_scale)
        if long_side * main >= 320:
            scales.append(main / 2)
        return scales

    def _detect_at(self, bgr: np.ndarray, scale: float) -> list[Detection]:
        h, w = bgr.shape[:2]
        if scale < 1.0:
            sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
            img = cv2.resize(bgr, (sw, sh), interpolation=cv2.INTER_AREA)
            fx, fy = w / sw, h / sh
        else:
            img, fx, fy = bgr, 1.0, 1.0
        if self._onnx is not None:
            rows = self._onnx.detect(img, self.score_threshold, self.nms_threshold, 5000)
        else:
            net = self._net()
            net.setInputSize((img.shape[1], img.shape[0]))
            _, rows = net.detect(img)
            if rows is None:
                return []
        out = []
        for r in rows:
            box = (float(r[0] * fx), float(r[1] * fy), float(r[2] * fx), float(r[3] * fy))
            lm = np.asarray(r[4:14], np.float32).reshape(5, 2) * np.array([fx, fy], np.float32)
            out.append(Detection(box, lm, float(r[14])))
        return out

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Every face, "the" face first, then largest first (see ``order_faces``)."""
        h, w = rgb.shape[:2]
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        found: list[Detection] = []
        for scale in self.scales_for(w, h):
            found.extend(self._detect_at(bgr, scale))
        # The passes overlap: keep the most confident of boxes that cover the same face.
        found.sort(key=lambda d: d.score, reverse=True)
        kept: list[Detection] = []
        for d in found:
            if all(_iou(d.box, k.box) < self.nms_threshold for k in kept):
                kept.append(d)
        return order_faces(kept, w, h)


# Boxes of two faces equally far from the camera differ in size by the detector's jitter
# (a few per cent from frame to frame), so "the largest" alone would pick at random.
NEAR_TIE = 0.95


def order_faces(dets: list[Detection], width: int, height: int) -> list[Detection]:
    """Largest first; "the" face is the largest, or among faces at least ``NEAR_TIE`` of its
    size, the one nearest the frame's centre (a gate camera is aimed at its lane, and a
    labelled photo is centred on its subject). That face is moved to the front."""
    out = sorted(dets, key=lambda d: d.box[2] * d.box[3], reverse=True)
    if len(out) > 1:
        ties = [d for d in out if d.size >= NEAR_TIE * out[0].size]
        cx, cy = width / 2, height / 2

        def off_centre(d: Detection) -> float:
            x, y, bw, bh = d.box
            return (x + bw / 2 - cx) ** 2 + (y + bh / 2 - cy) ** 2

        first = min(ties, key=off_centre)
        out.remove(first)
        out.insert(0, first)
    return out


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0
