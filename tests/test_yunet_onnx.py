"""YuNet in onnxruntime: same boxes and landmarks as OpenCV's FaceDetectorYN, and fallback."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from facegate.config import Settings
from facegate.errors import ModelIntegrityError
from facegate.vision import yunet_onnx
from facegate.vision.decode import decode
from facegate.vision.detect import YuNetDetector
from facegate.vision.models import model_path
from facegate.vision.yunet_onnx import (
    OnnxYuNet,
    decode_outputs,
    padded_blob,
    prepare_yunet_model,
    shared_onnx_yunet,
)

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(autouse=True)
def _fresh_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees its own per-process cache of checked sessions."""
    monkeypatch.setattr(yunet_onnx, "_shared", {})


def _images(data: Path) -> list[Path]:
    det = sorted(p for p in (data / "detection").rglob("*") if p.suffix.lower() in {".jpg", ".png"})
    lfw = sorted((data / "lfw_dev" / "images").rglob("*.jpg"))[::97]
    return det + lfw


def test_boxes_and_landmarks_equal_opencv_on_real_images(shared_data: Path) -> None:
    fast, reference = YuNetDetector(onnx=True), YuNetDetector(onnx=False)
    assert (fast.runtime, reference.runtime) == ("onnxruntime", "opencv-dnn")
    compared = faces = 0
    for path in _images(shared_data):
        try:
            rgb = decode(path)
        except Exception:
            continue  # the detection set holds a few deliberately broken files
        got, want = fast.detect(rgb), reference.detect(rgb)
        assert len(got) == len(want), path.name
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a.box, b.box, atol=0.01, err_msg=path.name)
            np.testing.assert_allclose(a.landmarks, b.landmarks, atol=0.01, err_msg=path.name)
            assert abs(a.score - b.score) < 1e-4
        compared += 1
        faces += len(got)
    assert compared >= 50 and faces >= 50


def test_decode_reproduces_opencv_arithmetic() -> None:
    """One confident cell at stride 16, row 2, column 3: box and landmarks by hand."""
    pad_w, pad_h = 64, 64
    out = {}
    for s in (8, 16, 32):
        n = (pad_w // s) * (pad_h // s)
        out[f"cls_{s}"] = np.zeros((1, n, 1), np.float32)
        out[f"obj_{s}"] = np.zeros((1, n, 1), np.float32)
        out[f"bbox_{s}"] = np.zeros((1, n, 4), np.float32)
        out[f"kps_{s}"] = np.zeros((1, n, 10), np.float32)
    idx = 2 * (pad_w // 16) + 3
    out["cls_16"][0, idx, 0], out["obj_16"][0, idx, 0] = 1.3, 0.81  # cls clamps to 1
    out["bbox_16"][0, idx] = [0.5, -0.25, np.log(2.0), 0.0]
    out["kps_16"][0, idx] = np.arange(10, dtype=np.float32) / 10
    rows = decode_outputs(out, pad_w, pad_h, 0.7, 0.3, 5000)
    assert rows.shape == (1, 15)
    cx, cy, w, h = (3 + 0.5) * 16, (2 - 0.25) * 16, 32.0, 16.0
    np.testing.assert_allclose(rows[0, :4], [cx - w / 2, cy - h / 2, w, h], rtol=1e-6)
    kx = (np.arange(0, 10, 2) / 10 + 3) * 16
    ky = (np.arange(1, 10, 2) / 10 + 2) * 16
    np.testing.assert_allclose(rows[0, 4:14:2], kx, rtol=1e-6)
    np.testing.assert_allclose(rows[0, 5:14:2], ky, rtol=1e-6)
    assert rows[0, 14] == pytest.approx(0.9)


def test_overlapping_boxes_keep_the_most_confident() -> None:
    out = {}
    for s in (8, 16, 32):
        n = (64 // s) ** 2
        out[f"cls_{s}"] = np.zeros((1, n, 1), np.float32)
        out[f"obj_{s}"] = np.ones((1, n, 1), np.float32)
        out[f"bbox_{s}"] = np.zeros((1, n, 4), np.float32)
        out[f"kps_{s}"] = np.zeros((1, n, 10), np.float32)
    out["cls_8"][0, 9, 0], out["cls_8"][0, 10, 0] = 0.81, 0.9  # neighbours, mostly the same box
    out["bbox_8"][0, 9, 2:] = out["bbox_8"][0, 10, 2:] = np.log(4.0)
    rows = decode_outputs(out, 64, 64, 0.7, 0.3, 5000)
    assert len(rows) == 1 and rows[0, 14] == pytest.approx(np.sqrt(0.9))


def test_padding_is_zero_right_and_bottom() -> None:
    bgr = np.full((33, 40, 3), 7, np.uint8)
    blob, pw, ph = padded_blob(bgr)
    assert (pw, ph) == (64, 64) and blob.shape == (1, 3, 64, 64)
    assert np.all(blob[0, :, :33, :40] == 7) and blob[0, :, 33:, :].sum() == 0
    assert blob[0, :, :, 40:].sum() == 0


def test_fallback_when_onnxruntime_is_absent(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import raises ImportError
    with caplog.at_level(logging.WARNING, logger=yunet_onnx.__name__):
        det = YuNetDetector()
    assert det.runtime == "opencv-dnn"
    assert "onnxruntime unavailable" in caplog.text


def test_fallback_when_self_check_fails(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = OnnxYuNet.raw

    def drifted(self: OnnxYuNet, blob: np.ndarray) -> dict[str, np.ndarray]:
        out = real(self, blob)
        out["bbox_8"] = out["bbox_8"] + 0.5  # a graph that runs but computes something else
        return out

    monkeypatch.setattr(OnnxYuNet, "raw", drifted)
    with caplog.at_level(logging.WARNING, logger=yunet_onnx.__name__):
        det = YuNetDetector()
    assert det.runtime == "opencv-dnn"
    assert "self-check failed" in caplog.text


def test_setting_forces_opencv() -> None:
    from facegate.vision import FacePipeline

    pipe = FacePipeline(Settings(yunet_onnx=False, dlib_onnx=False))
    assert pipe.detector.runtime == "opencv-dnn"
    assert FacePipeline(Settings()).model_id == pipe.model_id  # same boxes, same model_id


def test_tampered_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "yunet.onnx"
    data = bytearray(model_path("yunet").read_bytes())
    data[-1] ^= 1
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError):
        prepare_yunet_model(bad)
    with pytest.raises(ModelIntegrityError):
        shared_onnx_yunet(bad)
