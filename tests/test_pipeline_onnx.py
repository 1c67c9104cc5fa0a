"""The pipeline's dlib embedder runs in onnxruntime by default, with dlib as the fallback."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from facegate.config import Settings
from facegate.vision import FacePipeline, dlib_onnx

IMAGES = [
    "lfw_dev/images/Colin_Powell/Colin_Powell_0001.jpg",
    "lfw_dev/images/Ariel_Sharon/Ariel_Sharon_0002.jpg",
    "asian_dev/images/fan-bingbing/fan-bingbing-5.jpg",
]


def _templates(pipe: FacePipeline, shared_data) -> np.ndarray:
    paths = [shared_data / p for p in IMAGES if (shared_data / p).exists()]
    assert len(paths) >= 2
    faces = pipe.analyze_many(paths, max_faces=1)
    assert all(f and f[0].template is not None for f in faces)
    return np.stack([f[0].template for f in faces])


def _dlib_part(pipe: FacePipeline, templates: np.ndarray) -> np.ndarray:
    keys = list(pipe.embedders)
    start = sum(pipe.embedders[k].dim for k in keys[: keys.index("dlib")])
    return templates[:, start : start + pipe.embedders["dlib"].dim]


@pytest.fixture(scope="module")
def reference(shared_data, tmp_path_factory) -> tuple[FacePipeline, np.ndarray]:
    pipe = FacePipeline(Settings(data_dir=tmp_path_factory.mktemp("ref"), dlib_onnx=False))
    assert pipe.dlib_backend == "dlib-resnet"
    return pipe, _templates(pipe, shared_data)


def test_pipeline_uses_onnx_by_default_with_the_same_templates(
    shared_data, tmp_path, reference
) -> None:
    ref_pipe, want = reference
    pipe = FacePipeline(Settings(data_dir=tmp_path))
    assert pipe.dlib_backend == "dlib-resnet-onnx"
    assert pipe.model_id == ref_pipe.model_id  # same vectors, same model
    assert list((tmp_path / "models").glob("dlib_resnet_v1_*.onnx"))
    got = _templates(pipe, shared_data)
    # Each template is unit-norm, so the row dot product is the cosine; the dlib half alone too.
    assert np.min(np.sum(got * want, axis=1)) >= 0.9999
    g, w = _dlib_part(pipe, got), _dlib_part(ref_pipe, want)
    cos = np.sum(g * w, axis=1) / (np.linalg.norm(g, axis=1) * np.linalg.norm(w, axis=1))
    assert np.min(cos) >= 0.9999


def test_pipeline_falls_back_to_dlib_when_the_self_check_fails(
    shared_data, tmp_path, reference, monkeypatch, caplog
) -> None:
    ref_pipe, want = reference
    monkeypatch.setattr(dlib_onnx, "self_check", lambda *a, **k: (False, 0.5))
    with caplog.at_level(logging.WARNING, logger="facegate.vision.dlib_onnx"):
        pipe = FacePipeline(Settings(data_dir=tmp_path))
    assert pipe.dlib_backend == "dlib-resnet"
    assert "self-check failed" in caplog.text
    assert pipe.model_id == ref_pipe.model_id
    got = _templates(pipe, shared_data)
    assert np.min(np.sum(got * want, axis=1)) >= 0.9999


def test_pipeline_falls_back_to_dlib_without_onnxruntime(
    shared_data, tmp_path, reference, monkeypatch
) -> None:
    def no_ort(*a, **k):
        raise ImportError("No module named 'onnxruntime'")

    monkeypatch.setattr(dlib_onnx, "OnnxDlibDescriptor", no_ort)
    pipe = FacePipeline(Settings(data_dir=tmp_path))
    assert pipe.dlib_backend == "dlib-resnet"
    got = _templates(pipe, shared_data)
    assert np.min(np.sum(got * reference[1], axis=1)) >= 0.9999
