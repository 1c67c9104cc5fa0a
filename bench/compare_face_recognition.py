"""facegate vs face_recognition (dlib HOG + ResNet, distance 0.6), side by side on the same data.

Run in three steps (the first two can run in parallel; results are cached outside the repo):

    PYTHONPATH=src python bench/compare_face_recognition.py embed-fr        # face_recognition
    PYTHONPATH=src python bench/compare_face_recognition.py embed-facegate  # FacePipeline
    PYTHONPATH=src python bench/compare_face_recognition.py report [--json out.json]

face_recognition is the reference library (``pip install --no-deps face_recognition``), used
here only; facegate's package never imports it. Its default path: ``face_locations`` with the
HOG detector (upsample 1; 0 above 2,000 px, as in the data README's reference figures, since
upsampling a 20 MP photo takes minutes), ``face_encodings`` (5-point "small" landmarks), match
if the Euclidean distance <= 0.6. For both systems the largest face of each image is used, and
a pair where either image has no usable face is decided "no match" (what a gate does) and
counted in "lost".

facegate rows: the shipped fused template, and SFace alone and dlib alone, each at its own
calibrated threshold from calibration.json. Quality gating (``gate`` profile) applies to all
rows. The per-model vectors come from bench/embed_cache.py (run it first), which is
FacePipeline's own detector, chips and models; a sample per set is checked against
FacePipeline.analyze end to end.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embed_cache import CACHE, DATA, embed_set, manifest  # noqa: E402

from facegate.matching.metrics import best_accuracy_threshold, tar_at_far  # noqa: E402

SETS = ("lfw_dev", "asian_dev", "deepface", "orl_att", "yalefaces", "dlib_johns")
PAIR_FILES = {
    "lfw_dev": "pairs_view2_dev.csv",
    "asian_dev": "pairs_seed42.csv",
    "deepface": "pairs_balanced_seed42.csv",
    "orl_att": "pairs_generated_seed42.csv",
    "yalefaces": "pairs_generated_seed42.csv",
    "dlib_johns": "pairs_generated_seed42.csv",
}
FR_DISTANCE = 0.6


def _images(set_name: str) -> list[dict[str, str]]:
    return manifest(set_name)


# -- embedding -------------------------------------------------------------------------------


def embed_fr(set_name: str, part: tuple[int, int] = (1, 1)) -> None:
    """face_recognition encodings; ``part`` (k, n) embeds the k-th of n slices (parallel runs,
    merged by ``merge-fr``)."""
    import face_recognition  # reference library, benchmark environment only

    k, n_parts = part
    out = CACHE / (
        f"cmp_fr_{set_name}.npz" if n_parts == 1 else f"cmp_fr_{set_name}.part{k}of{n_parts}.npz"
    )
    if out.exists():
        return
    rows = _images(set_name)
    enc = np.full((len(rows), 128), np.nan, np.float32)
    n_faces = np.zeros(len(rows), np.int32)
    done = np.zeros(len(rows), bool)
    lo, hi = (k - 1) * len(rows) // n_parts, k * len(rows) // n_parts
    t0 = time.time()
    for i, r in enumerate(rows):
        if not lo <= i < hi:
            continue
        done[i] = True
        path = DATA / set_name / r["path"]
        try:
            img = face_recognition.load_image_file(str(path))
        except Exception:  # noqa: BLE001  (the reference library's own failure mode)
            continue
        up = 0 if max(img.shape[:2]) > 2000 else 1
        locs = face_recognition.face_locations(img, number_of_times_to_upsample=up)
        n_faces[i] = len(locs)
        if not locs:
            continue
        largest = max(locs, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))
        enc[i] = face_recognition.face_encodings(img, [largest])[0]
        if i % 200 == 0:
            print(f"fr {set_name} {i}/{len(rows)} {time.time() - t0:.0f}s", file=sys.stderr)
    np.savez(out, path=np.array([r["path"] for r in rows]), enc=enc, n_faces=n_faces, done=done)


def merge_fr(set_name: str, n_parts: int) -> None:
    parts = [
        np.load(CACHE / f"cmp_fr_{set_name}.part{k}of{n_parts}.npz") for k in range(1, n_parts + 1)
    ]
    enc, n_faces = parts[0]["enc"].copy(), parts[0]["n_faces"].copy()
    for p in parts[1:]:
        enc[p["done"]], n_faces[p["done"]] = p["enc"][p["done"]], p["n_faces"][p["done"]]
    assert np.sum([p["done"] for p in parts], axis=0).min() == 1
    np.savez(CACHE / f"cmp_fr_{set_name}.npz", path=parts[0]["path"], enc=enc, n_faces=n_faces)


def embed_facegate(set_name: str) -> None:
    """facegate's per-image vectors and gate-profile quality verdicts for a set.

    The vectors come from bench/embed_cache.py, which runs the same detector, chips and models
    as FacePipeline on the largest face; the quality verdict is recomputed here with
    facegate.vision.quality.assess on the same detections (all faces, so multiple_faces is
    exact). A sample is checked against FacePipeline.analyze itself.
    """
    import cv2

    from facegate.errors import FacegateError
    from facegate.vision import FacePipeline
    from facegate.vision.embed import align_112
    from facegate.vision.quality import assess

    cv2.setNumThreads(1)
    pipe = FacePipeline()
    out = CACHE / f"cmp_fg_{set_name}__{pipe.model_id.replace('/', '_')}.npz"
    if out.exists():
        return
    cache = embed_set(set_name)
    rows = _images(set_name)
    assert list(cache["path"]) == [r["path"] for r in rows]
    w = pipe.weights
    sface = np.full((len(rows), 128), np.nan, np.float32)
    dlib = np.full((len(rows), 128), np.nan, np.float32)
    reason = np.array([""] * len(rows), dtype="<U40")
    t0 = time.time()
    for i, r in enumerate(rows):
        try:
            rgb = pipe.decode(DATA / set_name / r["path"])
        except FacegateError as exc:
            reason[i] = exc.code
            continue
        dets = pipe.detector.detect(rgb)
        if not dets:
            reason[i] = "no_face"
            continue
        q = assess(dets[0], align_112(rgb, dets[:1])[0], (rgb.shape[1], rgb.shape[0]), dets)
        if not q.ok:
            reason[i] = "low_quality:" + ",".join(q.reasons)
            continue
        if np.allclose(dets[0].box, cache["box"][i], atol=1e-3):
            sface[i], dlib[i] = cache["sface"][i], cache["dlib"][i]
        else:  # cache made by an earlier detector version: embed with the pipeline itself
            t = np.asarray(pipe.analyze(rgb, max_faces=1)[0].template)
            sface[i], dlib[i] = t[:128] / w[0], t[128:] / w[1]
    # The cache is FacePipeline's own computation: check a sample end to end.
    for i in np.where(~np.isnan(sface[:, 0]))[0][:: max(1, len(rows) // 8)]:
        t = np.asarray(pipe.analyze(DATA / set_name / rows[i]["path"], max_faces=1)[0].template)
        assert np.allclose(t, np.concatenate([sface[i] * w[0], dlib[i] * w[1]]), atol=2e-3)
    print(f"fg {set_name}: {len(rows)} images {time.time() - t0:.0f}s", file=sys.stderr)
    np.savez(
        out,
        path=np.array([r["path"] for r in rows]),
        sface=sface,
        dlib=dlib,
        reason=reason,
        model_id=pipe.model_id,
    )


# -- scoring ---------------------------------------------------------------------------------


class System:
    """Scores for one row of the table: a vector per image (NaN = no usable face)."""

    def __init__(self, name: str, vecs: np.ndarray, threshold: float, distance: bool) -> None:
        self.name, self.vecs, self.threshold, self.distance = name, vecs, threshold, distance

    def score(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        a, b = self.vecs[i], self.vecs[j]
        if self.distance:  # negated Euclidean distance: higher = more alike
            return -np.linalg.norm(a - b, axis=1)
        return np.sum(a * b, axis=1)

    @property
    def score_threshold(self) -> float:
        return -self.threshold if self.distance else self.threshold

    def usable(self) -> np.ndarray:
        return ~np.isnan(self.vecs[:, 0])


def load_systems(set_name: str) -> tuple[list[str], list[System], dict]:
    from facegate.vision import FacePipeline
    from facegate.vision.calibration import calibration_path

    pipe = FacePipeline()
    fg = np.load(CACHE / f"cmp_fg_{set_name}__{pipe.model_id.replace('/', '_')}.npz")
    fr = np.load(CACHE / f"cmp_fr_{set_name}.npz")
    assert list(fg["path"]) == list(fr["path"])
    cal = json.loads(calibration_path().read_text())
    ws, wd = pipe.weights
    fused = np.concatenate([fg["sface"] * ws, fg["dlib"] * wd], axis=1)
    systems = [
        System("face_recognition (HOG, d<=0.6)", fr["enc"], FR_DISTANCE, True),
        System("facegate SFace alone", fg["sface"], cal["configs"]["sface"]["threshold"], False),
        System("facegate dlib alone", fg["dlib"], cal["configs"]["dlib"]["threshold"], False),
        System("facegate fused (shipped)", fused, pipe.threshold, False),
    ]
    info = {"fg_reasons": fg["reason"], "fr_faces": fr["n_faces"]}
    return list(fg["path"]), systems, info


def read_pairs(set_name: str) -> list[dict[str, str]]:
    with (DATA / set_name / PAIR_FILES[set_name]).open(newline="") as fh:
        return list(csv.DictReader(fh))


def evaluate_set(set_name: str) -> dict:
    paths, systems, info = load_systems(set_name)
    index = {p: k for k, p in enumerate(paths)}
    pairs = [r for r in read_pairs(set_name) if r["path_a"] in index and r["path_b"] in index]
    ia = np.array([index[r["path_a"]] for r in pairs])
    ib = np.array([index[r["path_b"]] for r in pairs])
    same = np.array([r["same"] == "1" for r in pairs])
    folds = np.array([int(r.get("fold") or 0) for r in pairs])
    ident = np.array([r["identity"] for r in _images(set_name)])
    sha = np.array([r.get("sha256", "") for r in _images(set_name)])
    out = {"pairs": len(pairs), "images": len(paths), "rows": {}}
    for s in systems:
        ok = s.usable()
        both = ok[ia] & ok[ib]
        sc = np.full(len(pairs), -np.inf)
        sc[both] = s.score(ia[both], ib[both])
        decided_match = sc >= s.score_threshold  # lost pairs: -inf -> no match
        acc = float((decided_match == same).mean())
        row = {
            "accuracy_at_threshold": round(acc, 4),
            "lost_pairs": int((~both).sum()),
            "images_without_usable_face": int((~ok).sum()),
        }
        if set_name == "lfw_dev" and folds.max() > 0:
            accs = []
            for f in range(1, 11):
                train, test = folds != f, folds == f
                tr = both & train
                t = best_accuracy_threshold(sc[tr & same], sc[tr & ~same])
                accs.append(float(((sc >= t) == same)[test].mean()))
            row["accuracy_10fold"] = round(float(np.mean(accs)), 4)
            row["accuracy_10fold_std"] = round(float(np.std(accs)), 4)
        # All-pairs rates over the set's usable images (many more impostors than the list).
        u = np.where(ok)[0]
        iu = np.triu_indices(len(u), 1)
        gi, gj = u[iu[0]], u[iu[1]]
        keep = sha[gi] != sha[gj] if sha.any() else np.ones(len(gi), bool)
        gi, gj = gi[keep], gj[keep]
        allsc = s.score(gi, gj)
        gen = ident[gi] == ident[gj]
        row["all_pairs_genuine"] = int(gen.sum())
        row["all_pairs_impostor"] = int((~gen).sum())
        tar = tar_at_far(allsc[gen], allsc[~gen], 1e-3)
        row["tar_at_far_1e-3"] = None if tar is None else round(tar, 4)
        row["far_at_threshold"] = float(f"{float((allsc[~gen] >= s.score_threshold).mean()):.3g}")
        row["tar_at_threshold"] = round(float((allsc[gen] >= s.score_threshold).mean()), 4)
        out["rows"][s.name] = row
    return out


def one_to_n_lfw() -> dict:
    """Enroll one image per lfw_dev person with >= 2 images; single-image people are
    distractors (and, searched with themselves left out, the non-mated probes); the other
    images are mated probes. Rank-1 and FNIR at FPIR 1% and 0.1%."""
    paths, systems, _ = load_systems("lfw_dev")
    ident = np.array([r["identity"] for r in _images("lfw_dev")])
    # Known label errors (errata.csv: one person filed under two names) are left out, as in
    # calibration: they would count as strangers let in.
    with (DATA / "lfw_dev" / "errata.csv").open() as fh:
        errata = {r["image"] for r in csv.DictReader(fh)}
    ident = np.where(np.isin(np.array(paths), list(errata)), "", ident)
    ids, counts = np.unique(ident[ident != ""], return_counts=True)
    multi = set(ids[counts >= 2])
    gallery, probes, seen = [], [], set()
    for k, who in enumerate(ident):
        if not who:
            continue
        if who in multi and who not in seen:
            gallery.append(k)
            seen.add(who)
        elif who in multi:
            probes.append(k)
    distract = [k for k, who in enumerate(ident) if who and who not in multi]
    g_all = np.array(gallery + distract)
    res = {
        "errata_left_out": int((ident == "").sum()),
        "enrolled": len(gallery),
        "distractors": len(distract),
        "mated_probes": len(probes),
    }
    from facegate.vision import FacePipeline

    pipe = FacePipeline()
    for s in systems:
        v = np.nan_to_num(s.vecs, nan=0.0)
        usable = s.usable()
        if s.distance:

            def sig(x, y):
                d2 = (x * x).sum(1)[:, None] + (y * y).sum(1)[None] - 2 * x @ y.T
                return -np.sqrt(np.maximum(d2, 0))

        else:

            def sig(x, y):
                return x @ y.T

        gv = v[g_all]
        g_ok = usable[g_all]
        mated = sig(v[probes], gv)
        mated[:, ~g_ok] = -np.inf
        mated[~usable[probes]] = -np.inf
        top = np.argmax(mated, axis=1)
        best = mated[np.arange(len(probes)), top]
        correct = (ident[g_all][top] == ident[probes]) & np.isfinite(best)
        nm = sig(v[distract], gv)
        nm[:, ~g_ok] = -np.inf
        for r in range(len(distract)):
            nm[r, len(gallery) + r] = -np.inf  # itself
        nm_best = nm.max(axis=1)
        nm_best[~usable[distract]] = -np.inf  # no face: nobody let in
        row = {"rank1": round(float(correct.mean()), 4)}
        for fpir in (1e-2, 1e-3):
            srt = np.sort(nm_best)[::-1]
            kk = int(np.floor(fpir * len(srt)))
            t = np.nextafter(srt[kk], np.inf) if kk < len(srt) else -np.inf
            row[f"fnir_at_fpir_{fpir:g}"] = round(float(1 - (correct & (best >= t)).mean()), 4)
        if not s.distance and s.name.endswith("(shipped)"):
            t = pipe.threshold_for_gallery(len(g_all))
            row["shipped_1n_threshold"] = round(t, 4)
            row["fnir_at_shipped_1n_threshold"] = round(
                float(1 - (correct & (best >= t)).mean()), 4
            )
            row["fpir_at_shipped_1n_threshold"] = float((nm_best >= t).mean())
        res[s.name] = row
    return res


def latency(runs: int = 30) -> dict:
    """Decode -> template for one 640x480 JPEG frame on one core, both systems in one run."""
    import cv2
    import face_recognition

    from facegate.cli.vision_cmds import _frame
    from facegate.vision import FacePipeline

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    cv2.setNumThreads(1)
    src = DATA / "detection" / "images" / "face_recognition" / "obama-480p.jpg"
    frame, _ = _frame((640, 480), src)
    pipe = FacePipeline()
    import io

    def fr_once():
        img = face_recognition.load_image_file(io.BytesIO(frame))
        locs = face_recognition.face_locations(img)
        return face_recognition.face_encodings(img, locs)

    def fg_once():
        return pipe.analyze(frame, max_faces=1)

    out = {}
    for name, fn in (("face_recognition", fr_once), ("facegate", fg_once)):
        fn()
        ts = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        a = np.array(ts) * 1000
        out[name] = {
            "p50_ms": round(float(np.median(a)), 1),
            "p95_ms": round(float(np.percentile(a, 95)), 1),
        }
    return out


def report(json_out: str | None) -> None:
    result = {"sets": {}, "one_to_n_lfw_dev": one_to_n_lfw(), "latency_640x480": latency()}
    for s in SETS:
        result["sets"][s] = evaluate_set(s)
    for s, r in result["sets"].items():
        print(f"\n## {s}: {r['pairs']} listed pairs, {r['images']} images")
        print(
            f"{'system':34} {'acc@thr':>8} {'10-fold':>8} {'TAR@1e-3':>9} {'FAR@thr':>9} "
            f"{'lost':>5} {'noface':>6}"
        )
        for name, row in r["rows"].items():
            tar = row["tar_at_far_1e-3"]
            print(
                f"{name:34} {row['accuracy_at_threshold']:8.4f} "
                f"{row.get('accuracy_10fold', float('nan')):8.4f} "
                f"{(tar if tar is not None else float('nan')):9.4f} {row['far_at_threshold']:9.2g} "
                f"{row['lost_pairs']:5d} {row['images_without_usable_face']:6d}"
            )
    print("\n## 1:N on lfw_dev")
    print(json.dumps(result["one_to_n_lfw_dev"], indent=1))
    print("\n## latency per 640x480 frame (decode -> template), one core")
    print(json.dumps(result["latency_640x480"], indent=1))
    if json_out:
        Path(json_out).write_text(json.dumps(result, indent=1))
    print("\n" + markdown(result))


def markdown(result: dict) -> str:
    """The README tables."""
    lines = [
        "| set | system | acc | 10-fold acc | TAR@FAR1e-3 | FAR at its threshold | "
        "pairs lost (no usable face) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for s, r in result["sets"].items():
        for name, row in r["rows"].items():
            tar = row["tar_at_far_1e-3"]
            tenf = row.get("accuracy_10fold")
            lines.append(
                f"| {s} ({r['pairs']} pairs) | {name} | {row['accuracy_at_threshold']:.2%} | "
                f"{'' if tenf is None else f'{tenf:.2%}'} | "
                f"{'n/a' if tar is None else f'{tar:.2%}'} | {row['far_at_threshold']:.2g} | "
                f"{row['lost_pairs']} |"
            )
    n1 = result["one_to_n_lfw_dev"]
    lines += [
        "",
        f"1:N on lfw_dev ({n1['errata_left_out']} errata images left out): "
        f"{n1['enrolled']} people enrolled (one image each), "
        f"{n1['distractors']} single-image people as distractors (and, searched with themselves "
        f"left out, as the non-mated probes), {n1['mated_probes']} mated probes.",
        "",
        "| system | rank-1 | FNIR at FPIR 1% | FNIR at FPIR 0.1% |",
        "|---|---:|---:|---:|",
    ]
    for name, row in n1.items():
        if isinstance(row, dict):
            lines.append(
                f"| {name} | {row['rank1']:.2%} | {row['fnir_at_fpir_0.01']:.2%} | "
                f"{row['fnir_at_fpir_0.001']:.2%} |"
            )
    for name, row in n1.items():
        if isinstance(row, dict) and "shipped_1n_threshold" in row:
            lines += [
                "",
                f"{name} at its shipped 1:N threshold for this gallery "
                f"({row['shipped_1n_threshold']}, target FPIR 0.1%): FNIR "
                f"{row['fnir_at_shipped_1n_threshold']:.2%}, measured FPIR "
                f"{row['fpir_at_shipped_1n_threshold']:.2%}.",
            ]
    lat = result["latency_640x480"]
    lines += [
        "",
        "| one 640x480 JPEG frame, decode -> template, one core | p50 | p95 |",
        "|---|---:|---:|",
    ]
    for name, v in lat.items():
        lines.append(f"| {name} | {v['p50_ms']} ms | {v['p95_ms']} ms |")
    return "\n".join(lines)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("step", choices=["embed-fr", "embed-facegate", "merge-fr", "report"])
    ap.add_argument("--part", default="1/1", help="k/n: embed the k-th of n slices (embed-fr)")
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--json")
    a = ap.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    k, n = (int(x) for x in a.part.split("/"))
    if a.step == "report":
        report(a.json)
    for s in a.sets.split(",") if a.step != "report" else ():
        if a.step == "embed-fr":
            embed_fr(s, (k, n))
        elif a.step == "merge-fr":
            merge_fr(s, n)
        else:
            embed_facegate(s)
