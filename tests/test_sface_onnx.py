"""SFace in onnxruntime: the in-memory rewrite agrees with OpenCV's DNN on real chips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facegate.errors import ModelIntegrityError
from facegate.vision.dlib_onnx import cosine_rows

pytest.importorskip("onnxruntime")
cv2 = pytest.importorskip("cv2")

from facegate.vision.sface_onnx import (  # noqa: E402
    OnnxSFace,
    OpenCVSFace,
    default_sface_path,
    prepare_sface_model,
)


def _bgr_chips(data: Path) -> np.ndarray:
    # dlib_johns are aligned 150x150 chips; resized to 112x112 they exercise the network.
    paths = sorted((data / "dlib_johns" / "images").rglob("*.jpg"))[::9][:6]
    return np.stack([cv2.resize(cv2.imread(str(p)), (112, 112)) for p in paths])


@pytest.fixture(scope="module")
def sface() -> OnnxSFace:
    return OnnxSFace()


def test_onnx_sface_agrees_with_opencv(shared_data: Path, sface: OnnxSFace) -> None:
    chips = _bgr_chips(shared_data)
    got = sface.features_from_chips(chips)
    want = OpenCVSFace().features_from_chips(chips)
    assert got.shape == want.shape == (len(chips), 128)
    assert float(cosine_rows(got, want).min()) >= 0.9999
    one = sface.features_from_chips(chips[2])
    assert float(cosine_rows(one, got[2:3])[0]) >= 0.99999


def test_rewrite_strips_declared_initializer_inputs_and_keeps_the_file() -> None:
    import onnx

    path = default_sface_path()
    before = path.read_bytes()
    model = onnx.load_from_string(prepare_sface_model(path))
    assert [i.name for i in model.graph.input] == ["data"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert not [n for n in model.graph.node if n.op_type in ("PRelu", "DequantizeLinear")]
    assert path.read_bytes() == before


def test_tampered_sface_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "sface.onnx"
    data = bytearray(default_sface_path().read_bytes())
    data[-10] ^= 1
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError):
        prepare_sface_model(bad)


def test_rejects_badly_shaped_chips(sface: OnnxSFace) -> None:
    with pytest.raises(ValueError):
        sface.features_from_chips(np.zeros((1, 150, 150, 3), np.uint8))


def test_pipeline_embedder_uses_onnxruntime_with_the_same_vectors(shared_data: Path) -> None:
    from facegate.vision import sface_onnx
    from facegate.vision.embed import SFaceEmbedder

    fast, reference = SFaceEmbedder(onnx=True), SFaceEmbedder(onnx=False)
    assert (fast.runtime, reference.runtime) == ("onnxruntime", "opencv-dnn")
    rgb = np.ascontiguousarray(_bgr_chips(shared_data)[..., ::-1])
    rgb = np.concatenate([rgb, rgb[:3]])  # 9 chips: more than one onnxruntime batch
    assert len(rgb) > sface_onnx.BATCH
    for flip in (False, True):
        got, want = fast.embed_chips(rgb, flip), reference.embed_chips(rgb, flip)
        assert float(cosine_rows(got, want).min()) >= 0.9999


def test_fallback_when_onnxruntime_is_absent(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import sys

    from facegate.vision import sface_onnx
    from facegate.vision.embed import SFaceEmbedder

    monkeypatch.setattr(sface_onnx, "_shared", {})
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import raises ImportError
    with caplog.at_level(logging.WARNING, logger=sface_onnx.__name__):
        emb = SFaceEmbedder()
    assert emb.runtime == "opencv-dnn"
    assert "onnxruntime unavailable" in caplog.text


def test_fallback_when_self_check_fails(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from facegate.vision import sface_onnx
    from facegate.vision.embed import SFaceEmbedder

    real = OnnxSFace.features_from_rgb

    def drifted(self: OnnxSFace, chips: np.ndarray) -> np.ndarray:
        out = real(self, chips)
        out[:, :64] *= -1  # a graph that runs but computes something else
        return out

    monkeypatch.setattr(sface_onnx, "_shared", {})
    monkeypatch.setattr(OnnxSFace, "features_from_rgb", drifted)
    with caplog.at_level(logging.WARNING, logger=sface_onnx.__name__):
        emb = SFaceEmbedder()
    assert emb.runtime == "opencv-dnn"
    assert "self-check failed" in caplog.text


def test_setting_forces_opencv() -> None:
    from facegate.config import Settings
    from facegate.vision import FacePipeline

    pipe = FacePipeline(Settings(sface_onnx=False))
    assert pipe.embedders["sface"].runtime == "opencv-dnn"
    default = FacePipeline(Settings())
    assert default.embedders["sface"].runtime == "onnxruntime"
    assert default.model_id == pipe.model_id  # same vectors, same model_id
