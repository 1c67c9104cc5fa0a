"""Liveness signals of every frame and burst of the development PAD sets, cached as JSON.

    PYTHONPATH=src python bench/liveness_features.py [--out artifacts/liveness_features]

Sets (``../shared/data``): ``pad_replayattack`` (360 videos x 5 frames, 15 people; a burst =
one video), ``pad_nuaa`` (frames of one subject, label, pose code and session, in frame order,
cut into bursts of up to 5), ``pad_samples`` (single images, no bursts). For each frame: "the"
YuNet face, the passive probabilities of both models with the fitted box map and with the raw
YuNet box. For each burst: ``burst_signals`` over its first 2, 3 and all frames. Only numbers
are written (no pixels), one JSON per set. ``bench/liveness_calibrate.py`` reads them.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from facegate.vision.decode import decode
from facegate.vision.detect import YuNetDetector
from facegate.vision.liveness import IDENTITY_MAP, PassiveModel, burst_signals
from facegate.vision.pad_eval import Sample, bursts, read_manifest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def nuaa_samples() -> list[Sample]:
    out = []
    with (DATA / "pad_nuaa" / "manifest.csv").open(newline="") as fh:
        for r in csv.DictReader(fh):
            notes = dict(x.split("=", 1) for x in r["notes"].split(";"))
            live = r["label"] == "live"
            seq = f"{r['identity']}:{r['label']}:{notes['pos'][:2]}:{notes['session']}"
            frame = int(Path(r["path"]).stem.rsplit("_", 1)[1])
            out.append(
                Sample(r["path"], live, "live" if live else "print", seq, r["identity"], frame)
            )
    return out


def samples_for(name: str) -> list[Sample]:
    if name == "pad_nuaa":
        return nuaa_samples()
    out = [  # pad_samples also lists videos that are not in the folder
        s
        for s in read_manifest(DATA / name / "manifest.csv")
        if (DATA / name / s.path).is_file() and not s.path.endswith((".webm", ".mp4"))
    ]
    if name == "pad_samples":  # two people, unnamed: one pseudo-identity per class folder
        out = [
            Sample(
                s.path,
                s.live,
                {"spoof_print": "print", "spoof_replay": "replay"}.get(s.pa_class, s.pa_class),
                s.sequence,
                "samples_" + s.path.split("/")[0],
                s.frame,
            )
            for s in out
        ]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "artifacts" / "liveness_features")
    ap.add_argument("--sets", default="pad_replayattack,pad_nuaa,pad_samples")
    a = ap.parse_args()
    det = YuNetDetector()
    mapped = PassiveModel()
    raw = PassiveModel(box_map=IDENTITY_MAP)
    support = {}
    with (DATA / "pad_replayattack" / "manifest.csv").open(newline="") as fh:
        for r in csv.DictReader(fh):
            support[r["video_id"]] = r["support"] or "-"
    for name in a.sets.split(","):
        t0 = time.perf_counter()
        recs = []
        for burst in bursts(samples_for(name), 5):
            frames, faces, bgrs = [], [], []
            for s in burst:
                rgb = decode(DATA / name / s.path)
                dets = det.detect(rgb)
                f = {"path": s.path, "face": bool(dets)}
                if dets:
                    d = dets[0]
                    bgr = np.ascontiguousarray(rgb[..., ::-1])
                    f["box"] = [round(v, 2) for v in d.box]
                    f["p_map"] = mapped.probabilities([bgr], [d.box])[0].round(6).tolist()
                    f["p_raw"] = raw.probabilities([bgr], [d.box])[0].round(6).tolist()
                    faces.append(d)
                    bgrs.append(bgr)
                frames.append(f)
            rec = {
                "sequence": burst[0].sequence,
                "identity": burst[0].identity,
                "pa_class": burst[0].pa_class,
                "support": support.get(burst[0].sequence, "-"),
                "frames": frames,
            }
            probs = np.array([f["p_map"] for f in frames if f["face"]])
            for k in (2, 3, 5):
                if len(faces) >= k and (k < 5 or len(faces) >= 4):
                    n = len(faces) if k == 5 else k
                    sig = burst_signals(bgrs[:n], faces[:n], probs[:n])
                    rec[f"signals{k}"] = {kk: round(v, 6) for kk, v in sig.items()}
            recs.append(rec)
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / f"{name}.json").write_text(json.dumps(recs))
        print(f"{name}: {len(recs)} bursts in {time.perf_counter() - t0:.1f} s -> {a.out}")


if __name__ == "__main__":
    main()
