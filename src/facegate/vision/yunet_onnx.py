"""YuNet (OpenCV model zoo, int8 block-quantized) run by onnxruntime, decoded as OpenCV does.

OpenCV's ``FaceDetectorYN`` spends about twice as long in its DNN engine as onnxruntime needs
for the same graph on one core (17.1 vs 8.4 ms CPU for a 640x480 frame's two passes,
``bench/gate_latency.py`` with and without ``--opencv``).
This module runs the same pinned file in onnxruntime and reproduces ``FaceDetectorYN``'s
pre- and post-processing step by step (opencv/modules/objdetect/src/face_detect.cpp):

* the BGR frame is padded with zeros on the right and bottom to a multiple of 32 and fed
  unscaled as float planes (``blobFromImage`` with no mean or scale);
* per stride 8/16/32 and grid cell: score = sqrt(clamp(cls) * clamp(obj)); box centre
  (c + dx, r + dy) * stride, size exp(dw|dh) * stride; landmarks (c + kx, r + ky) * stride;
* OpenCV's own ``NMSBoxes`` on the boxes truncated to integers, highest score first.

The graph is rewritten in memory only (the file on disk keeps its SHA-256): the int8 weights
are dequantized once in numpy, block-wise as the ``block_size`` attribute says (onnxruntime's
DequantizeLinear refuses this file's per-tensor biases with a block size), and the input's
height and width become symbolic. The float weights equal what OpenCV computes from the same
file, so boxes and landmarks agree to float rounding; a self-check on synthetic frames
compares the raw outputs with OpenCV's before this runtime is used.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path

import cv2
import numpy as np

from facegate.errors import ModelIntegrityError

log = logging.getLogger(__name__)

YUNET_INT8_SHA256 = "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10"
OUTPUTS = tuple(f"{k}_{s}" for k in ("cls", "obj", "bbox", "kps") for s in (8, 16, 32))
STRIDES = (8, 16, 32)
DIVISOR = 32
# Raw outputs are probabilities and offsets of order 1: float rounding differs by ~1e-6.
SELF_CHECK_MAX_DIFF = 1e-3


def _dequantize(q: np.ndarray, scale: np.ndarray, zero: np.ndarray | None, axis: int, block: int):
    """ONNX DequantizeLinear in numpy: per tensor, per axis, or blocked along ``axis``."""
    x = q.astype(np.float32)
    zero = np.zeros_like(scale, np.float32) if zero is None else zero.astype(np.float32)
    scale = scale.astype(np.float32)
    if scale.size == 1:  # per tensor; this file gives such biases a block size too
        return (x - zero.reshape(())) * scale.reshape(())
    axis = axis % x.ndim
    if block > 0:
        take = [slice(None)] * x.ndim
        take[axis] = slice(0, x.shape[axis])
        scale = np.repeat(scale, block, axis=axis)[tuple(take)]
        zero = np.repeat(zero, block, axis=axis)[tuple(take)]
        return (x - zero) * scale
    shape = [1] * x.ndim
    shape[axis] = -1
    return (x - zero.reshape(shape)) * scale.reshape(shape)


def prepare_yunet_model(path: Path, expected_sha256: str | None = YUNET_INT8_SHA256) -> bytes:
    """The pinned YuNet file with float weights and a symbolic input size (in memory only)."""
    import onnx
    from onnx import helper, numpy_helper

    data = Path(path).read_bytes()
    if expected_sha256 is not None and hashlib.sha256(data).hexdigest() != expected_sha256:
        raise ModelIntegrityError(
            f"{Path(path).name} differs from the pinned SHA-256 {expected_sha256}",
            path=str(path),
        )
    model = onnx.load_from_string(data)
    g = model.graph
    const = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    live = []
    for node in g.node:
        ins = [i for i in node.input if i]
        if node.op_type == "DequantizeLinear" and all(i in const for i in ins):
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            zero = const[node.input[2]] if len(node.input) > 2 and node.input[2] else None
            const[node.output[0]] = _dequantize(
                const[node.input[0]],
                const[node.input[1]],
                zero,
                int(attrs.get("axis", 1)),
                int(attrs.get("block_size", 0)),
            )
        elif node.op_type == "Reshape" and all(i in const for i in ins):
            const[node.output[0]] = const[node.input[0]].reshape(const[node.input[1]])
        else:
            live.append(node)
    needed = {i for n in live for i in n.input}
    del g.initializer[:]
    g.initializer.extend(
        numpy_helper.from_array(np.asarray(v), k) for k, v in const.items() if k in needed
    )
    del g.node[:]
    g.node.extend(live)
    if [i.name for i in g.input] != ["input"] or [o.name for o in g.output] != list(OUTPUTS):
        raise ModelIntegrityError("YuNet graph does not have the expected input and outputs")
    dims = g.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "H", "W"
    del g.value_info[:]
    for out in g.output:
        out.type.tensor_type.ClearField("shape")
    return model.SerializeToString()


def padded_blob(bgr: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Zero-pad right and bottom to a multiple of 32 and lay out as float NCHW planes."""
    h, w = bgr.shape[:2]
    ph, pw = (h - 1) // DIVISOR * DIVISOR + DIVISOR, (w - 1) // DIVISOR * DIVISOR + DIVISOR
    blob = np.zeros((1, 3, ph, pw), np.float32)
    blob[0, :, :h, :w] = bgr.transpose(2, 0, 1)
    return blob, pw, ph


def decode_outputs(
    outputs: dict[str, np.ndarray],
    pad_w: int,
    pad_h: int,
    score_threshold: float,
    nms_threshold: float,
    top_k: int,
) -> np.ndarray:
    """FaceDetectorYN's post-processing: rows of 15 (box, 5 landmarks, score), NMS applied."""
    rows = []
    for stride in STRIDES:
        cols, nrows = pad_w // stride, pad_h // stride
        cls = np.clip(outputs[f"cls_{stride}"].reshape(-1), 0.0, 1.0)
        obj = np.clip(outputs[f"obj_{stride}"].reshape(-1), 0.0, 1.0)
        score = np.sqrt(cls * obj)
        keep = np.flatnonzero(score >= score_threshold)
        if keep.size == 0:
            continue
        r, c = (keep // cols).astype(np.float32), (keep % cols).astype(np.float32)
        bbox = outputs[f"bbox_{stride}"].reshape(nrows * cols, 4)[keep]
        kps = outputs[f"kps_{stride}"].reshape(nrows * cols, 10)[keep]
        cx = (c + bbox[:, 0]) * stride
        cy = (r + bbox[:, 1]) * stride
        w = np.exp(bbox[:, 2]) * stride
        h = np.exp(bbox[:, 3]) * stride
        out = np.empty((keep.size, 15), np.float32)
        out[:, 0], out[:, 1], out[:, 2], out[:, 3] = cx - w / 2, cy - h / 2, w, h
        out[:, 4:14:2] = (kps[:, 0::2] + c[:, None]) * stride
        out[:, 5:14:2] = (kps[:, 1::2] + r[:, None]) * stride
        out[:, 14] = score[keep]
        rows.append(out)
    if not rows:
        return np.zeros((0, 15), np.float32)
    faces = np.concatenate(rows)
    if len(faces) == 1:
        return faces
    # OpenCV's NMS on integer boxes (C++ int() truncates toward zero, as astype does).
    boxes = faces[:, :4].astype(np.int32).tolist()
    keep = cv2.dnn.NMSBoxes(
        boxes, faces[:, 14].tolist(), score_threshold, nms_threshold, top_k=top_k
    )
    return faces[np.asarray(keep, np.int64).reshape(-1)]


class OnnxYuNet:
    """YuNet's network in onnxruntime; ``detect`` returns the rows FaceDetectorYN would."""

    name = "yunet-onnx"

    def __init__(self, path: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        from facegate.vision.dlib_onnx import session_options

        opts = session_options(threads)
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(
            prepare_yunet_model(Path(path)), opts, providers=["CPUExecutionProvider"]
        )

    def raw(self, blob: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(OUTPUTS, self._session.run(list(OUTPUTS), {"input": blob}), strict=True))

    def detect(
        self, bgr: np.ndarray, score_threshold: float, nms_threshold: float, top_k: int
    ) -> np.ndarray:
        blob, pw, ph = padded_blob(bgr)
        return decode_outputs(self.raw(blob), pw, ph, score_threshold, nms_threshold, top_k)


def self_check_frames(seed: int = 32) -> list[np.ndarray]:
    """Deterministic synthetic BGR frames (waves, blobs, noise) of sizes that need padding."""
    rng = np.random.default_rng(seed)
    frames = []
    for w, h in ((200, 150), (321, 245)):
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        img = np.empty((h, w, 3), np.float32)
        for c in range(3):
            fx, fy, ph = rng.uniform(0.01, 0.08, size=2).tolist() + [rng.uniform(0, 6.3)]
            img[..., c] = 128 + 90 * np.sin(fx * xx + fy * yy + ph)
        for _ in range(4):
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(10, 50)
            disk = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
            img[disk] = rng.uniform(0, 255, size=3)
        img += rng.normal(0, 10, size=img.shape)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


def self_check(candidate: OnnxYuNet, model_file: Path) -> tuple[bool, float]:
    """Whether onnxruntime's raw outputs equal OpenCV's on synthetic frames; (ok, max diff)."""
    try:
        net = cv2.dnn.readNet(str(model_file))
        worst = 0.0
        for frame in self_check_frames():
            blob, _, _ = padded_blob(frame)
            got = candidate.raw(blob)
            net.setInput(blob)
            want = dict(zip(OUTPUTS, net.forward(list(OUTPUTS)), strict=True))
            for k in OUTPUTS:
                a, b = np.asarray(got[k]).reshape(-1), np.asarray(want[k]).reshape(-1)
                if a.shape != b.shape or not np.all(np.isfinite(a)):
                    return False, float("nan")
                worst = max(worst, float(np.max(np.abs(a - b))))
    except Exception as exc:  # a broken runtime must fall back, not crash the gate
        log.warning("YuNet ONNX self-check raised %s: %s", type(exc).__name__, exc)
        return False, float("nan")
    return worst <= SELF_CHECK_MAX_DIFF, worst


_shared: dict[tuple[str, int], OnnxYuNet | None] = {}
_shared_lock = threading.Lock()


def shared_onnx_yunet(model_file: Path, threads: int = 1) -> OnnxYuNet | None:
    """One checked onnxruntime YuNet per process and file, or None (OpenCV is used; logged)."""
    key = (str(Path(model_file).resolve()), int(threads))
    with _shared_lock:
        if key in _shared:
            return _shared[key]
        net: OnnxYuNet | None
        try:
            net = OnnxYuNet(model_file, threads)
        except ImportError as exc:
            log.warning("YuNet runs on OpenCV DNN (slower): onnxruntime unavailable (%s)", exc)
            net = None
        except ModelIntegrityError:
            raise
        except Exception as exc:  # conversion or session failure: OpenCV still works
            log.warning("YuNet runs on OpenCV DNN (slower): ONNX preparation failed (%s)", exc)
            net = None
        if net is not None:
            ok, worst = self_check(net, model_file)
            if ok:
                log.info("YuNet runs on onnxruntime (self-check max difference %.2e)", worst)
            else:
                log.warning(
                    "YuNet runs on OpenCV DNN (slower): ONNX self-check failed "
                    "(max difference %s > %s)",
                    worst,
                    SELF_CHECK_MAX_DIFF,
                )
                net = None
        _shared[key] = net
        return net


__all__ = [
    "OnnxYuNet",
    "YUNET_INT8_SHA256",
    "decode_outputs",
    "padded_blob",
    "prepare_yunet_model",
    "self_check",
    "shared_onnx_yunet",
]
