"""Convert the MiniFASNet checkpoints (PyTorch state dicts) to ONNX, once, reproducibly.

    python3.11 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 onnx onnxruntime opencv-python-headless numpy
    /tmp/torchvenv/bin/python tools/convert_minifasnet.py \
        --src ../shared/models/minifasnet --out src/facegate/vision/minifasnet \
        --check-images ../shared/data/pad_samples/silentface

torch is used by this one-off tool only, never by facegate at run time or in CI.

Input: ``2.7_80x80_MiniFASNetV2.pth`` and ``4_0_0_80x80_MiniFASNetV1SE.pth`` from
minivision-ai/Silent-Face-Anti-Spoofing (commit b6d5f04a, Apache-2.0), checked against
``SHA256SUMS``. The network is rebuilt here from the state dict itself: every convolution's
channels and groups are read from its weight's shape, so the same code builds V2 (pruned
channels ``1.8M_``) and V1SE (channels ``1.8M`` with squeeze-excitation in the last block of
each residual stage). Strides and kernels follow the published architecture (80x80 input,
stride-2 stem and three stride-2 depthwise stages, a 5x5 depthwise head, 512 -> 128 -> 3).

Output: ``minifasnet_v2_2.7.onnx`` and ``minifasnet_v1se_4.0.onnx``: input ``input``
[N, 3, 80, 80] BGR float 0..255 (no normalisation), output ``logits`` [N, 3] (softmax index 1
= live, 0 = print, 2 = screen). The softmax is left to the caller. The tool prints each file's
SHA-256 (pinned in facegate/vision/models.py) and the largest difference between the original
torch network's softmax and onnxruntime's on real face crops. PReLU is exported as
``x + (1 - a) * relu(-x)`` (same numbers, faster in onnxruntime).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

CHECKPOINTS = {
    # file name: (output file, crop scale)
    "2.7_80x80_MiniFASNetV2.pth": ("minifasnet_v2_2.7.onnx", 2.7),
    "4_0_0_80x80_MiniFASNetV1SE.pth": ("minifasnet_v1se_4.0.onnx", 4.0),
}
OPSET = 17


class ConvBN(nn.Module):
    """Convolution without bias, batch norm, optional per-channel PReLU (names as upstream)."""

    def __init__(self, w: torch.Tensor, stride: int, prelu: bool) -> None:
        super().__init__()
        out_c, in_per_group, kh, kw = w.shape
        groups = 1 if in_per_group != 1 or out_c == 3 else out_c
        in_c = in_per_group * groups
        pad = 0 if kh in (1, 5) else kh // 2
        self.conv = nn.Conv2d(in_c, out_c, (kh, kw), stride, pad, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_c)
        self.prelu = nn.PReLU(out_c) if prelu else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return self.prelu(x) if self.prelu is not None else x


class SplitPReLU(nn.Module):
    """PReLU(x) = x + (1 - a) * relu(-x): the same numbers in ops onnxruntime keeps in its
    blocked convolution layout (its per-channel PRelu is ~30% slower on this model)."""

    def __init__(self, prelu: nn.PReLU) -> None:
        super().__init__()
        self.register_buffer("one_minus_a", (1 - prelu.weight.detach()).view(1, -1, 1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.one_minus_a * torch.relu(-x)


def for_export(net: nn.Module) -> nn.Module:
    """A copy of ``net`` whose PReLUs are written as ``SplitPReLU`` (checked against ``net``)."""
    import copy

    out = copy.deepcopy(net)
    for m in out.modules():
        if isinstance(m, ConvBN) and m.prelu is not None:
            m.prelu = SplitPReLU(m.prelu)
    return out.eval()


class SqueezeExcite(nn.Module):
    def __init__(self, sd: dict, p: str) -> None:
        super().__init__()
        c_red, c = sd[p + "fc1.weight"].shape[:2]
        self.fc1 = nn.Conv2d(c, c_red, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_red)
        self.fc2 = nn.Conv2d(c_red, c, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        s = torch.sigmoid(self.bn2(self.fc2(torch.relu(self.bn1(self.fc1(s))))))
        return x * s


class Bottleneck(nn.Module):
    """1x1 expand (PReLU), 3x3 depthwise (PReLU), 1x1 project; residual and SE when present."""

    def __init__(self, sd: dict, p: str, stride: int, residual: bool) -> None:
        super().__init__()
        self.conv = ConvBN(sd[p + "conv.conv.weight"], 1, True)
        self.conv_dw = ConvBN(sd[p + "conv_dw.conv.weight"], stride, True)
        self.project = ConvBN(sd[p + "project.conv.weight"], 1, False)
        self.se_module = (
            SqueezeExcite(sd, p + "se_module.") if p + "se_module.fc1.weight" in sd else None
        )
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.conv_dw(self.conv(x)))
        if not self.residual:
            return y
        if self.se_module is not None:
            y = self.se_module(y)
        return x + y


class Stage(nn.Module):
    def __init__(self, sd: dict, p: str) -> None:
        super().__init__()
        n = 1 + max(
            int(m.group(1)) for k in sd if (m := re.match(re.escape(p) + r"model\.(\d+)\.", k))
        )
        self.model = nn.Sequential(*[Bottleneck(sd, f"{p}model.{i}.", 1, True) for i in range(n)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class MiniFASNet(nn.Module):
    """MiniFASNet V1/V2/V1SE, eval mode only, built from a state dict's shapes."""

    def __init__(self, sd: dict) -> None:
        super().__init__()
        self.conv1 = ConvBN(sd["conv1.conv.weight"], 2, True)
        self.conv2_dw = ConvBN(sd["conv2_dw.conv.weight"], 1, True)
        self.conv_23 = Bottleneck(sd, "conv_23.", 2, False)
        self.conv_3 = Stage(sd, "conv_3.")
        self.conv_34 = Bottleneck(sd, "conv_34.", 2, False)
        self.conv_4 = Stage(sd, "conv_4.")
        self.conv_45 = Bottleneck(sd, "conv_45.", 2, False)
        self.conv_5 = Stage(sd, "conv_5.")
        self.conv_6_sep = ConvBN(sd["conv_6_sep.conv.weight"], 1, True)
        self.conv_6_dw = ConvBN(sd["conv_6_dw.conv.weight"], 1, False)
        emb, flat = sd["linear.weight"].shape
        self.linear = nn.Linear(flat, emb, bias=False)
        self.bn = nn.BatchNorm1d(emb)
        self.prob = nn.Linear(emb, sd["prob.weight"].shape[0], bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for m in (self.conv1, self.conv2_dw, self.conv_23, self.conv_3, self.conv_34):
            x = m(x)
        for m in (self.conv_4, self.conv_45, self.conv_5, self.conv_6_sep, self.conv_6_dw):
            x = m(x)
        x = torch.flatten(x, 1)
        return self.prob(self.bn(self.linear(x)))  # dropout is the identity in eval mode


def load_state_dict(path: Path) -> OrderedDict:
    sd = torch.load(path, map_location="cpu", weights_only=True)
    return OrderedDict((k[7:] if k.startswith("module.") else k, v) for k, v in sd.items())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_sums(src: Path) -> None:
    sums = {}
    for line in (src / "SHA256SUMS").read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            sums[name] = digest
    for name in CHECKPOINTS:
        got = sha256(src / name)
        if sums.get(name) != got:
            sys.exit(f"{name}: SHA-256 {got} does not match SHA256SUMS ({sums.get(name)})")
        print(f"{name}: SHA-256 OK {got}")


def upstream_crop(
    bgr: np.ndarray, box: tuple[float, float, float, float], scale: float
) -> np.ndarray:
    """The upstream crop: box scaled about its centre (limited by the frame), shifted inside."""
    import cv2

    h, w = bgr.shape[:2]
    x, y, bw, bh = box
    scale = min((h - 1) / bh, (w - 1) / bw, scale)
    nw, nh = bw * scale, bh * scale
    cx, cy = x + bw / 2, y + bh / 2
    x0, y0, x1, y1 = cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2
    if x0 < 0:
        x1 -= x0
        x0 = 0
    if y0 < 0:
        y1 -= y0
        y0 = 0
    if x1 > w - 1:
        x0 -= x1 - w + 1
        x1 = w - 1
    if y1 > h - 1:
        y0 -= y1 - h + 1
        y1 = h - 1
    x0, y0, x1, y1 = int(x0), int(y0), int(x1), int(y1)
    return cv2.resize(bgr[y0 : y1 + 1, x0 : x1 + 1], (80, 80))


def real_crops(folder: Path | None, scale: float) -> np.ndarray:
    """80x80 crops of real photos (three boxes around the upper middle of each frame, where a
    portrait's face is) plus two random inputs, as a batch for the equality check."""
    from PIL import Image, ImageOps

    crops = []
    if folder is not None:
        for p in sorted(folder.glob("*.jpg")):
            img = ImageOps.exif_transpose(Image.open(p)).convert("RGB")
            bgr = np.asarray(img)[..., ::-1].copy()
            h, w = bgr.shape[:2]
            side = min(h, w) / 3
            for dx in (-0.1, 0.0, 0.1):
                box = (w / 2 - side / 2 + dx * w, h / 2.6 - side / 2, side, side * 1.2)
                crops.append(upstream_crop(bgr, box, scale))
    rng = np.random.default_rng(0)
    crops.extend(rng.integers(0, 256, (2, 80, 80, 3), dtype=np.uint8))
    return np.stack(crops).astype(np.float32).transpose(0, 3, 1, 2).copy()


def convert(src: Path, out: Path, check_images: Path | None) -> None:
    import onnx
    import onnxruntime as ort

    torch.manual_seed(0)
    out.mkdir(parents=True, exist_ok=True)
    for name, (onnx_name, scale) in CHECKPOINTS.items():
        sd = load_state_dict(src / name)
        net = MiniFASNet(sd)
        net.load_state_dict(sd, strict=True)  # every tensor used, none missing
        net.eval()
        dst = out / onnx_name
        dummy = torch.zeros(1, 3, 80, 80)
        kwargs = dict(
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}},
            opset_version=OPSET,
            do_constant_folding=True,
        )
        try:
            torch.onnx.export(for_export(net), (dummy,), str(dst), dynamo=False, **kwargs)
        except TypeError:  # an older torch without the dynamo switch
            torch.onnx.export(for_export(net), (dummy,), str(dst), **kwargs)
        model = onnx.load(str(dst))
        onnx.checker.check_model(model)
        model.producer_name, model.producer_version = "facegate-convert-minifasnet", "1"
        model.doc_string = (
            f"MiniFASNet from {name} (minivision-ai/Silent-Face-Anti-Spoofing b6d5f04a, "
            f"Apache-2.0), converted by facegate tools/convert_minifasnet.py. Input BGR float "
            f"0..255 NCHW 80x80 crop at scale {scale}; output logits, softmax index 1 = live."
        )
        onnx.save(model, str(dst))
        x = real_crops(check_images, scale)
        with torch.no_grad():
            ref = torch.softmax(net(torch.from_numpy(x)), dim=1).numpy()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(dst), opts, providers=["CPUExecutionProvider"])
        logits = sess.run(None, {"input": x})[0]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        got = e / e.sum(axis=1, keepdims=True)
        diff = float(np.abs(got - ref).max())
        print(
            f"{onnx_name}: {dst.stat().st_size} bytes, SHA-256 {sha256(dst)}; "
            f"{len(x)} crops, max |softmax(onnxruntime) - softmax(torch)| = {diff:.2e}; "
            f"torch live prob of the crops: {[round(float(v), 3) for v in ref[:, 1]]}"
        )
        if diff > 1e-4:
            sys.exit(f"{onnx_name}: onnxruntime differs from torch by {diff}")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--src", type=Path, required=True, help="folder with the .pth files and SHA256SUMS"
    )
    ap.add_argument("--out", type=Path, required=True, help="folder to write the .onnx files to")
    ap.add_argument("--check-images", type=Path, default=None, help="folder of .jpg face photos")
    a = ap.parse_args()
    check_sums(a.src)
    convert(a.src, a.out, a.check_images)


if __name__ == "__main__":
    main()
