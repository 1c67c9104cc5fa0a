"""Fit the map from YuNet's face box to the box MiniFASNet was trained with, without labels.

MiniFASNet (minivision-ai/Silent-Face-Anti-Spoofing) was trained on crops around the box of
the repository's own detector, a RetinaFace Caffe model (``resources/detection_model/``,
commit b6d5f04a). YuNet's box is taller and narrower. This script runs both detectors over
ordinary face photos (lfw_dev and asian_dev: no presentation-attack data, no labels used) and
fits four numbers, each the median over faces found by both:

    cx_r = cx_y + dx * w_y      cy_r = cy_y + dy * h_y      w_r = sw * w_y      h_r = sh * h_y

(``_y`` YuNet, ``_r`` RetinaFace; centre, width, height). The result is written beside the
model (``src/facegate/vision/minifasnet/box_map.json``) with the method and fit quality.

OpenCV 5 no longer reads Caffe models, so the RetinaFace pass runs once in a throwaway
environment with OpenCV 4 (it needs only cv2, numpy and Pillow) and writes boxes, never
pixels; the fit runs in facegate's environment. The Caffe files come from the upstream git
history (``git show b6d5f04a:resources/detection_model/<file>``):

    python3.11 -m venv /tmp/cv4 && /tmp/cv4/bin/pip install "opencv-python-headless<5" Pillow
    /tmp/cv4/bin/python bench/fit_liveness_box.py retina --caffe-dir DIR --out /tmp/retina.csv
    PYTHONPATH=src python bench/fit_liveness_box.py fit --retina /tmp/retina.csv [--write]

``DIR`` holds ``deploy.prototxt`` and ``Widerface-RetinaFace.caffemodel``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "src" / "facegate" / "vision" / "minifasnet" / "box_map.json"
SETS = ("lfw_dev", "asian_dev")


def _images():
    for name in SETS:
        for p in sorted((DATA / name / "images").rglob("*.jpg")):
            yield name, str(p.relative_to(DATA / name))


def retina_pass(caffe_dir: Path, out: Path) -> None:
    """The upstream detector exactly as upstream calls it: area ~192^2 (aspect kept), mean
    (104, 117, 123) subtracted from BGR, the most confident box, ``int`` corners + 1."""
    import cv2
    from PIL import Image, ImageOps

    net = cv2.dnn.readNetFromCaffe(
        str(caffe_dir / "deploy.prototxt"), str(caffe_dir / "Widerface-RetinaFace.caffemodel")
    )
    with out.open("w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["set", "path", "conf", "x", "y", "w", "h"])
        for name, rel in _images():
            rgb = np.asarray(ImageOps.exif_transpose(Image.open(DATA / name / rel)).convert("RGB"))
            bgr = np.ascontiguousarray(rgb[..., ::-1])
            h, w = bgr.shape[:2]
            ar = w / h
            img = bgr
            if w * h >= 192 * 192:
                size = (int(192 * math.sqrt(ar)), int(192 / math.sqrt(ar)))
                img = cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR)
            net.setInput(cv2.dnn.blobFromImage(img, 1, mean=(104, 117, 123)), "data")
            det = np.asarray(net.forward("detection_out")).reshape(-1, 7)
            if len(det) == 0:
                continue
            i = int(np.argmax(det[:, 2]))
            left, top = int(det[i, 3] * w), int(det[i, 4] * h)
            right, bottom = int(det[i, 5] * w), int(det[i, 6] * h)
            wr.writerow(
                [name, rel, float(det[i, 2]), left, top, right - left + 1, bottom - top + 1]
            )


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    return inter / (aw * ah + bw * bh - inter)


def fit(retina_csv: Path, write: bool) -> None:
    from facegate.vision.decode import decode
    from facegate.vision.detect import YuNetDetector
    from facegate.vision.liveness import BoxMap

    det = YuNetDetector()
    with retina_csv.open(newline="") as fh:
        retina = {(r["set"], r["path"]): r for r in csv.DictReader(fh)}
    seen, ys, ts = 0, [], []
    for name, rel in _images():
        seen += 1
        r = retina.get((name, rel))
        if r is None or float(r["conf"]) < 0.6:
            continue
        faces = det.detect(decode(DATA / name / rel))
        t = [float(r[k]) for k in ("x", "y", "w", "h")]
        if not faces or iou(faces[0].box, t) < 0.4:  # none, or the detectors chose other faces
            continue
        ys.append(faces[0].box)
        ts.append(t)
    y, t = np.array(ys), np.array(ts)
    parts = {
        "dx": ((t[:, 0] + t[:, 2] / 2) - (y[:, 0] + y[:, 2] / 2)) / y[:, 2],
        "dy": ((t[:, 1] + t[:, 3] / 2) - (y[:, 1] + y[:, 3] / 2)) / y[:, 3],
        "sw": t[:, 2] / y[:, 2],
        "sh": t[:, 3] / y[:, 3],
    }
    coef = {k: round(float(np.median(v)), 4) for k, v in parts.items()}
    bm = BoxMap(**coef)
    raw = np.array([iou(a_, b_) for a_, b_ in zip(y, t, strict=True)])
    mapped = np.array([iou(bm.apply(a_), b_) for a_, b_ in zip(y, t, strict=True)])
    result = {
        "version": "boxmap-1",
        "created": dt.date.today().isoformat(),
        "method": (
            "median over faces found by both YuNet (facegate's detector, 'the' face) and the "
            "upstream RetinaFace Caffe detector (Silent-Face-Anti-Spoofing b6d5f04a, run as "
            "upstream runs it, confidence >= 0.6, IoU with the YuNet box >= 0.4) on "
            + "+".join(SETS)
            + "; no labels used. cx_r = cx_y + dx*w_y, cy_r = cy_y + dy*h_y, w_r = sw*w_y, "
            "h_r = sh*h_y. bench/fit_liveness_box.py"
        ),
        "coefficients": coef,
        "fit": {
            "images": seen,
            "faces_used": len(ys),
            "p10_p90": {
                k: [round(float(q), 4) for q in np.percentile(v, [10, 90])]
                for k, v in parts.items()
            },
            "iou_raw_median": round(float(np.median(raw)), 4),
            "iou_mapped_median": round(float(np.median(mapped)), 4),
            "iou_mapped_p10": round(float(np.percentile(mapped, 10)), 4),
        },
    }
    print(json.dumps(result, indent=2))
    if write:
        OUT.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {OUT}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("retina")
    r.add_argument("--caffe-dir", type=Path, required=True)
    r.add_argument("--out", type=Path, required=True)
    f = sub.add_parser("fit")
    f.add_argument("--retina", type=Path, required=True)
    f.add_argument("--write", action="store_true", help="write box_map.json")
    a = ap.parse_args()
    if a.cmd == "retina":
        retina_pass(a.caffe_dir, a.out)
    else:
        fit(a.retina, a.write)


if __name__ == "__main__":
    main()
