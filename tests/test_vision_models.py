"""Pinned model files: a tampered copy is refused; the 68-point model is never registered."""

from __future__ import annotations

import shutil

import pytest

from facegate.config import Settings
from facegate.errors import ModelIntegrityError
from facegate.vision import models
from facegate.vision.detect import YuNetDetector


def test_registry_pins_every_file_and_excludes_68_point_model():
    assert set(models.MODEL_FILES) == {
        "yunet",
        "sface",
        "dlib_shape5",
        "dlib_resnet",
        "minifasnet_v2",
        "minifasnet_v1se",
    }
    for spec in models.MODEL_FILES.values():
        assert len(spec.sha256) == 64
        assert "68" not in spec.filename
        assert models.model_path(spec.key).is_file()


def test_tampered_model_is_refused(tmp_path):
    src = models.model_path("yunet")
    shutil.copy(src, tmp_path / src.name)
    # An untouched copy in an overriding directory is accepted.
    assert YuNetDetector(model_dir=tmp_path).name
    data = bytearray((tmp_path / src.name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    (tampered / src.name).write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError) as err:
        YuNetDetector(model_dir=tampered)
    assert "SHA-256" in err.value.message


def test_file_modified_after_verification_is_checked_again(tmp_path):
    src = models.model_path("yunet")
    copy = tmp_path / src.name
    shutil.copy(src, copy)
    models.model_path("yunet", tmp_path)
    data = bytearray(copy.read_bytes())
    data[100] ^= 0x01
    copy.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError):
        models.model_path("yunet", tmp_path)


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelIntegrityError):
        models.model_path("sface", tmp_path)


def test_pipeline_refuses_tampered_model_dir(tmp_path):
    from facegate.vision import FacePipeline

    for key in models.MODEL_FILES:
        shutil.copy(models.model_path(key), tmp_path / models.MODEL_FILES[key].filename)
    target = tmp_path / models.MODEL_FILES["dlib_shape5"].filename
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError):
        FacePipeline(Settings(model_dir=tmp_path))
