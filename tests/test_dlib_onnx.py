"""dlib's ResNet converted to ONNX: agreement with dlib, caching, fallback."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from facegate.errors import ModelIntegrityError
from facegate.vision import dlib_onnx
from facegate.vision.dlib_onnx import (
    DlibDescriptor,
    OnnxDlibDescriptor,
    cached_onnx_model,
    cosine_rows,
    default_source,
    load_dlib_descriptor,
)

dlib = pytest.importorskip("dlib")
cv2 = pytest.importorskip("cv2")


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _real_chips(data: Path) -> np.ndarray:
    """A few aligned chips: dlib_johns chips as they are, lfw_dev faces via the 5-point model."""
    import face_recognition_models as frm

    johns = sorted((data / "dlib_johns" / "images").rglob("*.jpg"))
    chips = [_rgb(p) for p in johns[::11][:5]]
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    lfw = sorted((data / "lfw_dev" / "images").rglob("*.jpg"))
    for path in lfw[::400][:6]:
        rgb = _rgb(path)
        boxes = detector(rgb, 1)
        if boxes:
            shape = predictor(rgb, max(boxes, key=lambda b: b.area()))
            chips.append(dlib.get_face_chip(rgb, shape, size=150, padding=0.25))
    assert len(chips) >= 8, "expected faces in the lfw_dev sample"
    return np.stack(chips)


@pytest.fixture(scope="module")
def reference() -> DlibDescriptor:
    return DlibDescriptor()


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> OnnxDlibDescriptor:
    pytest.importorskip("onnxruntime")
    return OnnxDlibDescriptor(cache_dir=tmp_path_factory.mktemp("models"))


def test_converted_graph_matches_dlib_on_real_chips(
    shared_data: Path, converted: OnnxDlibDescriptor, reference: DlibDescriptor
) -> None:
    chips = _real_chips(shared_data)
    got = converted.descriptors_from_chips(chips)
    want = reference.descriptors_from_chips(chips)
    assert got.shape == want.shape == (len(chips), 128)
    assert got.dtype == np.float32
    assert float(cosine_rows(got, want).min()) >= 0.9999
    # Batch and single-chip inference give the same vectors.
    single = converted.descriptors_from_chips(chips[3])
    assert float(cosine_rows(single, got[3:4])[0]) >= 0.99999


def test_load_prefers_onnx_when_it_agrees(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("onnxruntime")
    with caplog.at_level(logging.INFO, logger=dlib_onnx.__name__):
        backend = load_dlib_descriptor(cache_dir=tmp_path)
    assert isinstance(backend, OnnxDlibDescriptor)
    assert "runs on onnxruntime" in caplog.text


def test_fallback_when_onnxruntime_is_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import raises ImportError
    with caplog.at_level(logging.WARNING, logger=dlib_onnx.__name__):
        backend = load_dlib_descriptor(cache_dir=tmp_path)
    assert isinstance(backend, DlibDescriptor)
    assert "onnxruntime unavailable" in caplog.text


def test_fallback_when_self_check_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("onnxruntime")
    real = OnnxDlibDescriptor.descriptors_from_chips

    def drifted(self: OnnxDlibDescriptor, chips: np.ndarray) -> np.ndarray:
        out = real(self, chips)
        out[:, :64] *= -1  # a graph that runs but computes something else
        return out

    monkeypatch.setattr(OnnxDlibDescriptor, "descriptors_from_chips", drifted)
    with caplog.at_level(logging.WARNING, logger=dlib_onnx.__name__):
        backend = load_dlib_descriptor(cache_dir=tmp_path)
    assert isinstance(backend, DlibDescriptor)
    assert "self-check failed" in caplog.text


def test_tampered_source_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "model.dat"
    bad.write_bytes(b"\x01\x01 not a model")
    with pytest.raises(ModelIntegrityError):
        load_dlib_descriptor(source=bad, cache_dir=tmp_path)


def _scale_first_fc_weight(path: Path) -> None:
    """Rewrite one weight of the final layer, keeping the file a valid dlib network."""
    data = bytearray(path.read_bytes())
    at = data.rfind(b"fc_2") + len(b"fc_2")
    reader = dlib_onnx._Reader(bytes(data))
    reader.pos = at
    reader.int(), reader.int()  # num_outputs, num_inputs
    for _ in range(5):  # tensor version and its four dimensions
        reader.int()
    (value,) = np.frombuffer(bytes(data[reader.pos : reader.pos + 4]), "<f4")
    data[reader.pos : reader.pos + 4] = np.float32(value * 3 + 1).astype("<f4").tobytes()
    path.write_bytes(bytes(data))


def test_rebuilt_when_source_checksum_changes(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    source = tmp_path / "resnet.dat"
    shutil.copyfile(default_source(), source)
    cache = tmp_path / "cache"
    first, first_path = cached_onnx_model(source, cache)
    _scale_first_fc_weight(source)
    second, second_path = cached_onnx_model(source, cache)
    assert second_path != first_path
    assert hashlib.sha256(first).digest() != hashlib.sha256(second).digest()
    chips = dlib_onnx.self_check_chips(2)
    a = OnnxDlibDescriptor(source, cache).descriptors_from_chips(chips)
    b = DlibDescriptor(source).descriptors_from_chips(chips)  # dlib reads the changed file too
    assert float(cosine_rows(a, b).min()) >= 0.9999


def test_corrupt_cached_graph_is_rebuilt_not_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = default_source()
    good, path = cached_onnx_model(source, tmp_path)
    meta = json.loads(path.with_suffix(".json").read_text())
    corrupt = bytearray(good)
    corrupt[len(corrupt) // 2] ^= 0xFF  # one flipped byte inside a weight
    path.write_bytes(bytes(corrupt))
    with caplog.at_level(logging.WARNING, logger=dlib_onnx.__name__):
        data, again = cached_onnx_model(source, tmp_path)
    assert again == path
    assert "failed its checksum" in caplog.text
    assert hashlib.sha256(data).hexdigest() == meta["onnx_sha256"]
    assert path.read_bytes() == good
    # A truncated file is caught the same way.
    path.write_bytes(good[:1000])
    data, _ = cached_onnx_model(source, tmp_path)
    assert data == good


def test_rejects_badly_shaped_chips(converted: OnnxDlibDescriptor) -> None:
    with pytest.raises(ValueError):
        converted.descriptors_from_chips(np.zeros((1, 112, 112, 3), np.uint8))
    with pytest.raises(ValueError):
        converted.descriptors_from_chips(np.zeros((1, 150, 150, 3), np.float32))
    assert converted.descriptors_from_chips(np.zeros((0, 150, 150, 3), np.uint8)).shape == (0, 128)
