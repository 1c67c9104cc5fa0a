"""dlib's face-recognition ResNet run by onnxruntime, converted on this machine.

The converter reads ``dlib_face_recognition_resnet_model_v1.dat`` (from the installed
``face_recognition_models`` package) in dlib's own serialization format and builds the
equivalent ONNX graph with the ``onnx`` package. Nothing converted is downloaded: the graph
is written to the data directory on first use, keyed by the SHA-256 of the source file, with
a stored checksum so a corrupt cached graph is detected and rebuilt, never used.

The formats follow dlib's sources (dlib/serialize.h, dlib/dnn/{core,layers,input,loss,
tensor}.h, dlib/dnn/cpu_dlib.cpp):

* integers: one control byte (low 4 bits = byte count, 0x80 = negative), then the
  magnitude little-endian; bool: ASCII '0'/'1'; string: length, then bytes;
  float/double: ``float_details`` = int64 mantissa and int16 exponent (value = m * 2**e);
* tensors: version 2, num_samples, k, nr, nc, then raw little-endian float32 values;
* ``add_loss_layer``: version, loss details, subnetwork. ``add_layer``: version, subnetwork,
  details, three bools, x_grad, cached_output (+ params_grad from version 2; the input
  specialisation has grad_final and from version 3 the sample expansion factor).
  Tags and skips: version, subnetwork. So the stream holds the outer headers first and the
  layer details from the input outwards.
* ``add_prev`` adds tensors of different shapes as if the smaller one were zero-padded at
  the end of each dimension (channels, rows, columns); the ``res_down`` shortcut relies on
  it (e.g. 4x4 pooled shortcut + 3x3 convolution output at the 256-channel level).
* pooling and convolution use output size ``1 + (n + 2*pad - window) // stride`` with
  windows that never leave the image when pad is 0, which ONNX's pooling reproduces.
* input_rgb_image: planar R, G, B, each ``(value - mean) / 256``.

The batch-norm layers of the training net are stored as ``bn_con2`` and turned into
affine layers at load (``gamma / sqrt(running_var + eps)``, ``beta - g * running_mean``),
exactly as dlib's ``affine_`` does; they are then folded into the preceding convolution.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from facegate.errors import ModelIntegrityError

log = logging.getLogger(__name__)

# Pinned digest of dlib_face_recognition_resnet_model_v1.dat (face_recognition_models 0.3.0).
DLIB_RESNET_SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"
# Bump when the generated graph changes so old caches are rebuilt.
CONVERTER_VERSION = 1
CHIP_SIZE = 150
EMBEDDING_DIM = 128
SELF_CHECK_MIN_COSINE = 0.9999


class DescriptorBackend(Protocol):
    """The step after chip extraction: aligned 150x150 RGB chips to 128-D descriptors."""

    name: str

    def descriptors_from_chips(self, chips: np.ndarray) -> np.ndarray: ...


# ---------------------------------------------------------------------------------------------
# dlib's serialization format
# ---------------------------------------------------------------------------------------------


class DlibFormatError(ValueError):
    """The file does not hold the network layout this converter understands."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise DlibFormatError(f"unexpected end of file at byte {self.pos}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8:
            raise DlibFormatError(f"bad integer control byte {control:#x} at {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def bool(self) -> bool:
        ch = self._take(1)
        if ch not in (b"0", b"1"):
            raise DlibFormatError(f"bad bool {ch!r} at {self.pos - 1}")
        return ch == b"1"

    def str(self) -> str:
        n = self.int()
        return self._take(n).decode("latin-1")

    def float(self) -> float:
        if self.data[self.pos] & 0x70:
            raise DlibFormatError("old ASCII float format is not supported")
        mantissa = self.int()
        exponent = self.int()
        return float(mantissa) * 2.0**exponent

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise DlibFormatError(f"unexpected tensor version {version}")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def alias_tensor(self) -> tuple[int, int, int, int]:
        version = self.int()
        if version != 1:
            raise DlibFormatError(f"unexpected alias_tensor version {version}")
        return tuple(self.int() for _ in range(4))  # type: ignore[return-value]

    def expect(self, *names: str) -> str:
        name = self.str()
        if name not in names:
            raise DlibFormatError(f"expected {' or '.join(names)} at {self.pos}, found {name!r}")
        return name


# The network, outermost first, as in dlib's dnn_face_recognition_ex.cpp:
#   loss_metric<fc_no_bias<128, avg_pool_everything<alevel0<...alevel4<
#     max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>>>
# A node is (kind, params, sub); kinds: con, affine, relu, max_pool, avg_pool, gap, fc,
# add_prev, tag, skip, input.


def _layer(kind: str, sub: Any, **params: Any) -> tuple[str, dict[str, Any], Any]:
    return (kind, params, sub)


def _block(n: int, stride: int, sub: Any) -> Any:
    conv1 = _layer("con", sub, filters=n, size=3, stride=stride)
    inner = _layer("relu", _layer("affine", conv1))
    return _layer("affine", _layer("con", inner, filters=n, size=3, stride=1))


def _ares(n: int, sub: Any) -> Any:
    body = _block(n, 1, _layer("tag", sub, id=1))
    return _layer("relu", _layer("add_prev", body, tag=1))


def _ares_down(n: int, sub: Any) -> Any:
    body = _block(n, 2, _layer("tag", sub, id=1))
    shortcut = _layer("avg_pool", _layer("skip", _layer("tag", body, id=2), id=1), size=2, stride=2)
    return _layer("relu", _layer("add_prev", shortcut, tag=2))


def _network_spec() -> Any:
    net: Any = _layer("input", None, size=CHIP_SIZE)
    net = _layer("con", net, filters=32, size=7, stride=2)
    net = _layer("max_pool", _layer("relu", _layer("affine", net)), size=3, stride=2)
    for n, repeats, down in ((32, 3, False), (64, 3, True), (128, 2, True), (256, 2, True)):
        if down:
            net = _ares_down(n, net)
        for _ in range(repeats):
            net = _ares(n, net)
    net = _ares_down(256, net)
    return _layer("fc", _layer("gap", net), outputs=EMBEDDING_DIM)


@dataclass
class _Graph:
    """ONNX nodes built while parsing, with each value's static shape (k, rows, cols)."""

    nodes: list[Any] = field(default_factory=list)
    inits: list[Any] = field(default_factory=list)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    tags: dict[int, str] = field(default_factory=dict)
    counter: int = 0

    def name(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}_{self.counter}"

    def const(self, stem: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], shape: tuple[int, ...], **attrs: Any) -> str:
        from onnx import helper

        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        self.shapes[out] = shape
        return out


def _pool_out(n: int, window: int, stride: int, pad: int = 0) -> int:
    return 1 + (n + 2 * pad - window) // stride


class _Converter:
    def __init__(self, data: bytes) -> None:
        self.r = _Reader(data)
        self.g = _Graph()
        # A convolution waiting for the affine layer above it to be folded in.
        self.pending_conv: dict[str, Any] | None = None

    # -- layers ---------------------------------------------------------------------------

    def run(self) -> tuple[_Graph, dict[str, Any]]:
        r = self.r
        if r.int() != 1:
            raise DlibFormatError("unexpected add_loss_layer version")
        loss = r.expect("loss_metric_", "loss_metric_2")
        info: dict[str, Any] = {"loss": loss}
        if loss == "loss_metric_2":
            info["margin"] = r.float()
            info["dist_thresh"] = r.float()
        out = self.parse(_network_spec())
        if r.pos != len(r.data):
            raise DlibFormatError(f"{len(r.data) - r.pos} trailing bytes after the network")
        info["output"] = out
        return self.g, info

    def parse(self, node: Any) -> str:
        kind, params, sub = node
        r = self.r
        if kind == "tag":
            if r.int() != 1:
                raise DlibFormatError("unexpected add_tag_layer version")
            out = self.parse(sub)
            self.g.tags[params["id"]] = out
            return out
        if kind == "skip":
            if r.int() != 1:
                raise DlibFormatError("unexpected add_skip_layer version")
            self.parse(sub)
            return self.g.tags[params["id"]]

        version = r.int()
        on_input = sub[0] == "input"
        if on_input:
            if version not in (2, 3):
                raise DlibFormatError(f"unexpected add_layer version {version}")
            inp = self.parse_input(sub[1])
        else:
            if version not in (1, 2):
                raise DlibFormatError(f"unexpected add_layer version {version}")
            inp = self.parse(sub)
        out = getattr(self, f"layer_{kind}")(inp, **params)
        r.bool(), r.bool(), r.bool()  # setup called, gradient stale, getters disabled
        r.tensor(), r.tensor()  # x_grad, cached_output
        if on_input:
            r.tensor()  # grad_final
            if version >= 3:
                r.int()  # sample expansion factor
        elif version >= 2:
            r.tensor()  # params_grad
        return out

    def parse_input(self, params: dict[str, Any]) -> str:
        from onnx import TensorProto

        r = self.r
        r.expect("input_rgb_image_sized")
        mean = np.array([r.float(), r.float(), r.float()], dtype=np.float32)
        nr, nc = r.int(), r.int()
        if (nr, nc) != (params["size"], params["size"]):
            raise DlibFormatError(f"input size {nr}x{nc}, expected {params['size']}")
        g = self.g
        self.mean = mean
        # uint8 NHWC RGB chips in; dlib's input layer: planar R,G,B of (value - mean) / 256.
        x = g.node("Cast", ["chips"], (nr, nc, 3), to=TensorProto.FLOAT)
        x = g.node("Sub", [x, g.const("mean", mean.reshape(1, 1, 1, 3))], (nr, nc, 3))
        x = g.node("Mul", [x, g.const("scale", np.array(1 / 256, np.float32))], (nr, nc, 3))
        return g.node("Transpose", [x], (3, nr, nc), perm=[0, 3, 1, 2])

    def layer_con(self, inp: str, filters: int, size: int, stride: int) -> str:
        r = self.r
        version = r.expect("con_4", "con_5")
        params = r.tensor().reshape(-1)
        num_filters, nr, nc = r.int(), r.int(), r.int()
        stride_y, stride_x = r.int(), r.int()
        pad_y, pad_x = r.int(), r.int()
        fshape = r.alias_tensor()
        bshape = r.alias_tensor()
        for _ in range(4):
            r.float()  # learning-rate / weight-decay multipliers
        use_bias = True
        if version == "con_5":
            use_bias = r.bool()
        expected_pad = 0 if stride != 1 else size // 2
        if (num_filters, nr, nc, stride_y, stride_x, pad_y, pad_x) != (
            filters,
            size,
            size,
            stride,
            stride,
            expected_pad,
            expected_pad,
        ):
            raise DlibFormatError(f"unexpected convolution {num_filters}x{nr}x{nc}/{stride_y}")
        k_in = self.g.shapes[inp][0]
        if fshape != (num_filters, k_in, nr, nc):
            raise DlibFormatError(f"filter shape {fshape} does not match input {k_in}")
        nweights = int(np.prod(fshape))
        weights = params[:nweights].reshape(fshape)
        bias = params[nweights : nweights + num_filters] if use_bias else np.zeros(num_filters)
        if use_bias and bshape[1] != num_filters:
            raise DlibFormatError("bias shape does not match the filters")
        _, h, w = self.g.shapes[inp]
        shape = (num_filters, _pool_out(h, nr, stride_y, pad_y), _pool_out(w, nc, stride_x, pad_x))
        # The convolution is emitted when the affine layer above it is read (folded in).
        self.pending_conv = {
            "input": inp,
            "weights": weights.astype(np.float32),
            "bias": np.asarray(bias, np.float32),
            "strides": [stride_y, stride_x],
            "pads": [pad_y, pad_x, pad_y, pad_x],
            "shape": shape,
        }
        return "<pending-conv>"

    def layer_affine(self, inp: str) -> str:
        r = self.r
        version = r.expect("bn_con2", "affine_")
        if version == "bn_con2":
            params = r.tensor().reshape(-1)
            gshape = r.alias_tensor()
            r.alias_tensor()  # beta
            r.tensor(), r.tensor()  # means, invstds (training batch statistics)
            running_means = r.tensor().reshape(-1)
            running_vars = r.tensor().reshape(-1)
            r.int(), r.int()  # num_updates, running_stats_window_size
            for _ in range(4):
                r.float()
            eps = r.float()
            n = int(np.prod(gshape))
            gamma, beta = params[:n], params[n : 2 * n]
            g = (gamma * (1.0 / np.sqrt(running_vars + np.float32(eps)))).astype(np.float32)
            b = (beta - g * running_means).astype(np.float32)
        else:
            params = r.tensor().reshape(-1)
            gshape = r.alias_tensor()
            r.alias_tensor()
            if r.int() != 0:
                raise DlibFormatError("only convolutional-mode affine layers are expected")
            n = int(np.prod(gshape))
            g, b = params[:n].astype(np.float32), params[n : 2 * n].astype(np.float32)
        conv = self.pending_conv
        if inp != "<pending-conv>" or conv is None:
            raise DlibFormatError("an affine layer must follow a convolution in this network")
        self.pending_conv = None
        # Fold: (W*x + B) * g + b == (W*g) * x + (B*g + b).
        weights = conv["weights"] * g[:, None, None, None]
        bias = conv["bias"] * g + b
        gr = self.g
        return gr.node(
            "Conv",
            [conv["input"], gr.const("W", weights), gr.const("B", bias)],
            conv["shape"],
            kernel_shape=list(weights.shape[2:]),
            strides=conv["strides"],
            pads=conv["pads"],
        )

    def layer_relu(self, inp: str) -> str:
        self.r.expect("relu_")
        return self.g.node("Relu", [inp], self.g.shapes[inp])

    def _pool_header(self, name: str, size: int, stride: int) -> None:
        r = self.r
        r.expect(name)
        got = tuple(r.int() for _ in range(6))
        if got != (size, size, stride, stride, 0, 0):
            raise DlibFormatError(f"unexpected {name} parameters {got}")

    def layer_max_pool(self, inp: str, size: int, stride: int) -> str:
        self._pool_header("max_pool_2", size, stride)
        k, h, w = self.g.shapes[inp]
        shape = (k, _pool_out(h, size, stride), _pool_out(w, size, stride))
        return self.g.node(
            "MaxPool", [inp], shape, kernel_shape=[size, size], strides=[stride, stride]
        )

    def layer_avg_pool(self, inp: str, size: int, stride: int) -> str:
        self._pool_header("avg_pool_2", size, stride)
        k, h, w = self.g.shapes[inp]
        shape = (k, _pool_out(h, size, stride), _pool_out(w, size, stride))
        return self.g.node(
            "AveragePool", [inp], shape, kernel_shape=[size, size], strides=[stride, stride]
        )

    def layer_gap(self, inp: str) -> str:
        # avg_pool_everything = avg_pool_<0,0,1,1>: the window is the whole image.
        self._pool_header("avg_pool_2", 0, 1)
        k = self.g.shapes[inp][0]
        x = self.g.node("GlobalAveragePool", [inp], (k, 1, 1))
        return self.g.node("Flatten", [x], (k,), axis=1)

    def layer_add_prev(self, inp: str, tag: int) -> str:
        self.r.expect("add_prev_")
        other = self.g.tags[tag]
        a, b = self.g.shapes[inp], self.g.shapes[other]
        shape = tuple(max(x, y) for x, y in zip(a, b, strict=True))
        # dlib zero-pads the smaller tensor at the end of every dimension (cpu::add).
        padded = [self._pad_to(name, s, shape) for name, s in ((inp, a), (other, b))]
        return self.g.node("Add", padded, shape)

    def _pad_to(self, name: str, have: tuple[int, ...], want: tuple[int, ...]) -> str:
        if have == want:
            return name
        ends = [0] + [w - h for h, w in zip(have, want, strict=True)]
        pads = np.array([0, 0, 0, 0, *ends], dtype=np.int64)
        return self.g.node("Pad", [name, self.g.const("pads", pads)], want, mode="constant")

    def layer_fc(self, inp: str, outputs: int) -> str:
        r = self.r
        r.expect("fc_2")
        num_outputs, num_inputs = r.int(), r.int()
        params = r.tensor().reshape(-1)
        wshape = r.alias_tensor()
        r.alias_tensor()  # biases (unused without bias)
        bias_mode = r.int()
        for _ in range(4):
            r.float()
        if num_outputs != outputs or bias_mode != 1:  # FC_NO_BIAS
            raise DlibFormatError("unexpected fully connected layer")
        if num_inputs != self.g.shapes[inp][0] or wshape[:2] != (num_inputs, num_outputs):
            raise DlibFormatError("fully connected layer does not match its input")
        weights = params[: num_inputs * num_outputs].reshape(num_inputs, num_outputs)
        return self.g.node("MatMul", [inp, self.g.const("fc", weights)], (num_outputs,))


def convert_dlib_resnet(source: Path) -> bytes:
    """Build the ONNX model (serialized bytes) equivalent to dlib's ResNet in ``source``."""
    import onnx
    from onnx import TensorProto, helper

    conv = _Converter(Path(source).read_bytes())
    g, info = conv.run()
    final = g.node("Identity", [info["output"]], (EMBEDDING_DIM,))
    g.nodes[-1].output[0] = "descriptors"
    del g.shapes[final]
    graph = helper.make_graph(
        g.nodes,
        "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("chips", TensorProto.UINT8, ["N", CHIP_SIZE, CHIP_SIZE, 3])],
        [helper.make_tensor_value_info("descriptors", TensorProto.FLOAT, ["N", EMBEDDING_DIM])],
        initializer=g.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17)],
        producer_name="facegate",
        doc_string="Converted on this machine from dlib's serialized face-recognition ResNet.",
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


# ---------------------------------------------------------------------------------------------
# The cached graph
# ---------------------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_source() -> Path:
    import face_recognition_models

    return Path(face_recognition_models.face_recognition_model_location())


def default_cache_dir() -> Path:
    from facegate.config import Settings

    return Settings().data_dir / "models"


_build_lock = threading.Lock()


def cached_onnx_model(source: Path, cache_dir: Path) -> tuple[bytes, Path]:
    """The converted graph for ``source``: read from the cache if intact, else (re)built.

    The cache file name carries the source's SHA-256, so a changed model file gets a new
    graph; a sidecar JSON stores the graph's own SHA-256, so a corrupt or truncated graph is
    detected and rebuilt rather than loaded.
    """
    source_sha = sha256_file(source)
    cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # issue 13 item 13
    stem = f"dlib_resnet_v1_{source_sha[:16]}_c{CONVERTER_VERSION}"
    onnx_path = cache_dir / f"{stem}.onnx"
    meta_path = cache_dir / f"{stem}.json"
    with _build_lock:
        try:
            meta = json.loads(meta_path.read_text())
            data = onnx_path.read_bytes()
            if (
                meta.get("source_sha256") == source_sha
                and meta.get("converter_version") == CONVERTER_VERSION
                and hashlib.sha256(data).hexdigest() == meta.get("onnx_sha256")
            ):
                return data, onnx_path
            log.warning("cached dlib ONNX graph %s failed its checksum; rebuilding", onnx_path)
        except (OSError, ValueError):
            pass  # absent or unreadable: build it
        data = convert_dlib_resnet(source)
        meta = {
            "source": str(source),
            "source_sha256": source_sha,
            "onnx_sha256": hashlib.sha256(data).hexdigest(),
            "converter_version": CONVERTER_VERSION,
        }
        _atomic_write(onnx_path, data)
        _atomic_write(meta_path, json.dumps(meta, indent=2).encode())
        log.info("converted %s to %s", source, onnx_path)
        return data, onnx_path


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------------


def _check_chips(chips: np.ndarray) -> np.ndarray:
    chips = np.asarray(chips)
    if chips.ndim == 3:
        chips = chips[None]
    if chips.dtype != np.uint8 or chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
        raise ValueError(f"chips must be uint8 [N,{CHIP_SIZE},{CHIP_SIZE},3], got {chips.shape}")
    return np.ascontiguousarray(chips)


def session_options(threads: int = 1) -> Any:
    """Low-latency onnxruntime options: a fixed small thread count, sequential execution."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0" if threads > 1 else "1")
    return opts


class OnnxDlibDescriptor:
    """dlib's ResNet descriptors computed by onnxruntime from the locally converted graph."""

    name = "dlib-resnet-onnx"

    def __init__(
        self,
        source: Path | None = None,
        cache_dir: Path | None = None,
        threads: int = 1,
    ) -> None:
        import onnxruntime as ort

        self.source = Path(source) if source is not None else default_source()
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        data, self.model_path = cached_onnx_model(self.source, self.cache_dir)
        self._session = ort.InferenceSession(
            data, sess_options=session_options(threads), providers=["CPUExecutionProvider"]
        )

    def descriptors_from_chips(self, chips: np.ndarray) -> np.ndarray:
        """uint8 RGB chips [N,150,150,3] (dlib.get_face_chip alignment) -> float32 [N,128]."""
        chips = _check_chips(chips)
        if chips.shape[0] == 0:
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        (out,) = self._session.run(None, {"chips": chips})
        return np.asarray(out, dtype=np.float32)


class DlibDescriptor:
    """The reference: dlib's own CPU implementation of the same network."""

    name = "dlib-resnet"

    def __init__(self, source: Path | None = None) -> None:
        import dlib

        self.source = Path(source) if source is not None else default_source()
        self._model = dlib.face_recognition_model_v1(str(self.source))

    def descriptors_from_chips(self, chips: np.ndarray) -> np.ndarray:
        chips = _check_chips(chips)
        if chips.shape[0] == 0:
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        out = self._model.compute_face_descriptor(list(chips))
        return np.asarray([np.asarray(v) for v in out], dtype=np.float32)


def self_check_chips(count: int = 4, seed: int = 150) -> np.ndarray:
    """Deterministic synthetic 150x150 chips (smooth shapes plus texture) for the self-check.

    No face image ships with facegate; equivalence of two implementations of the same function
    is checked on inputs that exercise every channel and spatial position.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:CHIP_SIZE, 0:CHIP_SIZE].astype(np.float32) / CHIP_SIZE
    chips = []
    for _ in range(count):
        img = np.zeros((CHIP_SIZE, CHIP_SIZE, 3), np.float32)
        for c in range(3):
            fx, fy, ph = rng.uniform(0.5, 4.0), rng.uniform(0.5, 4.0), rng.uniform(0, 6.3)
            img[..., c] = 128 + 80 * np.sin(2 * np.pi * (fx * xx + fy * yy) + ph)
        cy, cx, r = rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.65), rng.uniform(0.2, 0.35)
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        img[disk] = img[disk] * 0.5 + rng.uniform(60, 200, size=3)
        img += rng.normal(0, 12, size=img.shape)
        chips.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(chips)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def self_check(
    candidate: DescriptorBackend,
    reference: DescriptorBackend,
    chips: np.ndarray | None = None,
    min_cosine: float = SELF_CHECK_MIN_COSINE,
) -> tuple[bool, float]:
    """Whether ``candidate`` agrees with ``reference`` on ``chips``; returns (ok, min cosine)."""
    chips = self_check_chips() if chips is None else _check_chips(chips)
    try:
        got = candidate.descriptors_from_chips(chips)
        want = reference.descriptors_from_chips(chips)
    except Exception as exc:  # a broken runtime must fall back, not crash the gate
        log.warning("dlib ONNX self-check raised %s: %s", type(exc).__name__, exc)
        return False, float("nan")
    if got.shape != want.shape or not np.all(np.isfinite(got)):
        return False, float("nan")
    worst = float(np.min(cosine_rows(got, want)))
    return worst >= min_cosine, worst


def load_dlib_descriptor(
    source: Path | None = None,
    cache_dir: Path | None = None,
    threads: int = 1,
    prefer_onnx: bool = True,
    check_chips: np.ndarray | None = None,
    expected_sha256: str | None = DLIB_RESNET_SHA256,
) -> DescriptorBackend:
    """The fastest backend that gives dlib's vectors: onnxruntime if it passes the self-check.

    Falls back to dlib (with a log line saying why) when onnxruntime is not installed, the
    conversion fails, or the converted graph disagrees with dlib on the self-check chips.
    The vectors are the same either way, so templates keep their ``model_id``.
    """
    source = Path(source) if source is not None else default_source()
    if expected_sha256 is not None:
        actual = sha256_file(source)
        if actual != expected_sha256:
            raise ModelIntegrityError(
                f"{source.name} has SHA-256 {actual}, expected {expected_sha256}; "
                "reinstall face_recognition_models",
                path=str(source),
            )
    reference = DlibDescriptor(source)
    if not prefer_onnx:
        return reference
    try:
        candidate = OnnxDlibDescriptor(source, cache_dir, threads)
    except ImportError as exc:
        log.warning("dlib ResNet runs on dlib (slower): onnxruntime unavailable (%s)", exc)
        return reference
    except Exception as exc:  # conversion or session failure: the reference still works
        log.warning("dlib ResNet runs on dlib (slower): ONNX conversion failed (%s)", exc)
        return reference
    ok, worst = self_check(candidate, reference, check_chips)
    if not ok:
        log.warning(
            "dlib ResNet runs on dlib (slower): ONNX self-check failed (min cosine %.6f < %s)",
            worst,
            SELF_CHECK_MIN_COSINE,
        )
        return reference
    log.info("dlib ResNet runs on onnxruntime (self-check min cosine %.7f)", worst)
    return candidate


_shared: dict[tuple[str, str, int, bool], DescriptorBackend] = {}
_shared_lock = threading.Lock()


def shared_dlib_descriptor(
    source: Path | None = None,
    cache_dir: Path | None = None,
    threads: int = 1,
    prefer_onnx: bool = True,
) -> DescriptorBackend:
    """``load_dlib_descriptor`` once per process and configuration (pipelines share it).

    The conversion check and the self-check run once; an onnxruntime session is thread-safe,
    so every pipeline of the process can use the same one.
    """
    source = Path(source) if source is not None else default_source()
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = (str(source.resolve()), str(cache_dir.resolve()), int(threads), bool(prefer_onnx))
    with _shared_lock:
        backend = _shared.get(key)
        if backend is None:
            backend = _shared[key] = load_dlib_descriptor(
                source, cache_dir, threads=threads, prefer_onnx=prefer_onnx
            )
        return backend


__all__ = [
    "DLIB_RESNET_SHA256",
    "DescriptorBackend",
    "DlibDescriptor",
    "DlibFormatError",
    "OnnxDlibDescriptor",
    "cached_onnx_model",
    "cosine_rows",
    "convert_dlib_resnet",
    "load_dlib_descriptor",
    "self_check",
    "self_check_chips",
    "session_options",
    "shared_dlib_descriptor",
]
