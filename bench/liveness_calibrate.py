"""Fit the liveness combination rule and thresholds on development data; measure by
identity-disjoint folds; write ``src/facegate/vision/minifasnet/liveness.json``.

    PYTHONPATH=src python bench/liveness_features.py        # once: the signals, cached
    PYTHONPATH=src python bench/liveness_calibrate.py [--write] [--json]
    PYTHONPATH=src python bench/liveness_calibrate.py --cv-seeds 8 | --nested 8 | --by-identity 8

Method (recorded in the JSON):

1. Presentations: every frame with a face (single frame) and every burst of 2, 3 and 5 frames
   (``pad_replayattack``: one video; ``pad_nuaa``: frames of one subject, pose and session).
2. One frame: the score is the passive probability (the two models' live probabilities
   averaged; the box map applied). The same without the box map is reported for comparison.
3. A burst: logistic regression (L2, C = 1) on a few standardised
   features: the mean passive logit over the frames and the burst signals listed in
   ``FEATURES``. Fitted on bursts of 2, 3 and 5 frames of ``pad_replayattack`` and
   ``pad_nuaa`` pooled, weighted so that every (set, class) group counts the same (each
   attack class as much as any other; live and attacks half each).
4. Threshold: the strictest threshold that refuses at most ``MAX_BPCER`` (2%) of the live
   presentations of every development set (each set separately, the strictest wins).
5. Figures for unseen people: 5 folds by identity (every set's identities split alike); the
   rule and both thresholds are fitted on 4 folds and applied to the 5th; APCER per attack
   class, BPCER and ACER are pooled over the held-out folds. ``pad_samples`` (no identities
   and no bursts) takes part in the single-frame threshold and is reported, not folded.
6. Feature set: chosen among ``CANDIDATES`` (each signal with a physical reason; the first
   five declared before the nested run, the last three added after looking at single-level
   CV figures and fitted weights, so slightly optimistic about them) by nested
   identity-disjoint CV (``--nested SEEDS``: for each outer fold an inner
   5-fold CV on the other identities picks the set; the outer figures then judge the whole
   procedure, choice included). A candidate whose fitted weights are not all positive (every
   signal is oriented so that more = more likely live) is not a rule and is skipped. The
   shipped set is the one the outer splits chose most.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np

from facegate.vision.liveness import LOG_OFFSET, load_calibration
from facegate.vision.pad_eval import iso_figures, threshold_for_bpcer

ROOT = Path(__file__).resolve().parents[1]
FEATURES_DIR = ROOT / "artifacts" / "liveness_features"
OUT = ROOT / "src" / "facegate" / "vision" / "minifasnet" / "liveness.json"
SETS = ("pad_replayattack", "pad_nuaa", "pad_samples")
BURST_SETS = ("pad_replayattack", "pad_nuaa")
# Each feature has a stated physical reason. planarity and passive_spread are measured but left
# out: live people in these sets barely move between frames, so the nose residual is landmark
# noise (its fitted weight came out negative, against its physics).
# live-2 adds three (padburst): planar_residual (a flat medium fits a homography), face_flow
# (a medium on a stand does not move), saturation (a re-photographed print loses chroma).
LIVE1_FEATURES = (
    "passive_logit",
    "motion",
    "context_follow",
    "face_change",
    "face_bg_motion",
    "high_frequency",
)
ALL_NEW = (*LIVE1_FEATURES, "planar_residual", "face_flow", "saturation")
PHYSICAL_FEATURES = (
    "passive_logit",
    "context_follow",
    "face_bg_motion",
    "high_frequency",
    "planar_residual",
    "face_flow",
    "saturation",
)
# high_frequency measured on the whole box mixes hair and background edges into "texture";
# fine_texture measures the skin alone against the face's own coarse structure.
SKIN_FEATURES = (
    "passive_logit",
    "context_follow",
    "face_bg_motion",
    "planar_residual",
    "face_flow",
    "saturation",
    "fine_texture",
)
# face_flow rewards any motion, also a hand-held replay's; face_moved (flow capped at
# liveness.MOVED_CAP) asks only "did the face move at least as a living face always does".
STILL_FEATURES = tuple("face_moved" if f == "face_flow" else f for f in SKIN_FEATURES)
FEATURES = STILL_FEATURES  # shipped (live-2): the choice of the nested CV below
# The candidate sets the nested cross-validation (``--nested``) chooses among. Honest record:
# the first five were declared before the nested run; PHYSICAL_FEATURES, SKIN_FEATURES and
# STILL_FEATURES (its cap argued from the physics, then checked against figures at caps of
# 0.1-0.5%: all within about 1%) were added after looking at single-level CV figures and
# fitted weights, so the nested figures are slightly optimistic about the last three.
CANDIDATES = (
    LIVE1_FEATURES,
    (*LIVE1_FEATURES, "planar_residual"),
    (*LIVE1_FEATURES, "planar_residual", "face_flow"),
    (*LIVE1_FEATURES, "planar_residual", "saturation"),
    ALL_NEW,
    # the new signals without the two old ones whose weight turned against their physics
    # (motion, face_change: hand-held replays move and change more than people standing still)
    PHYSICAL_FEATURES,
    SKIN_FEATURES,
    STILL_FEATURES,
)
# heavy-tailed: log(x + 0.01)
LOG_FEATURES = ("planarity", "motion", "face_change", "planar_residual", "face_flow", "face_moved")
MAX_BPCER = 0.02
FOLDS = 5
C = 1.0
WEIGHTING = "group"  # or "class"


def load(features_dir: Path) -> dict[str, list[dict]]:
    out = {}
    for name in SETS:
        p = features_dir / f"{name}.json"
        if not p.is_file():
            sys.exit(f"{p} missing: run bench/liveness_features.py first")
        out[name] = json.loads(p.read_text())
    return out


def transform(sig: dict[str, float], features: tuple[str, ...]) -> list[float]:
    return [
        float(np.log(sig[f] + LOG_OFFSET)) if f in LOG_FEATURES else float(sig[f]) for f in features
    ]


def group_weights(rows: list[dict]) -> np.ndarray:
    """Every (set, class) group weighs the same in total, live and attacks half each: each
    attack class counts as much as any other (the worst one is the figure that matters)."""
    keys = [(r["set"], r["pa_class"]) for r in rows]
    count: dict[tuple[str, str], int] = {}
    for k in keys:
        count[k] = count.get(k, 0) + 1
    live = {k for k in count if k[1] == "live"}
    n_live, n_att = len(live), len(count) - len(live)
    w = np.array([1.0 / count[k] / (n_live if k in live else n_att) for k in keys], np.float64)
    return w * len(rows) / 2


def fit_logistic(
    x: np.ndarray, y: np.ndarray, c: float = C, w: np.ndarray | None = None
) -> dict[str, object]:
    """L2-regularised logistic regression by Newton's method (sample weights ``w``; default:
    the two classes weighted equally)."""
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    if w is None:
        w = np.where(y == 1, 0.5 / max(y.sum(), 1), 0.5 / max((1 - y).sum(), 1)) * len(y)
    beta = np.zeros(z.shape[1])
    reg = np.full(z.shape[1], 1.0 / c)
    reg[-1] = 0.0  # no penalty on the intercept
    for _ in range(50):
        p = 1 / (1 + np.exp(-z @ beta))
        grad = z.T @ (w * (p - y)) + reg * beta
        hess = (z * (w * p * (1 - p))[:, None]).T @ z + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return {
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": beta[:-1].tolist(),
        "intercept": float(beta[-1]),
    }


def predict(model: dict, x: np.ndarray) -> np.ndarray:
    z = (x - np.asarray(model["mean"])) / np.asarray(model["scale"])
    return 1 / (1 + np.exp(-(z @ np.asarray(model["coef"]) + model["intercept"])))


def frame_rows(data: dict[str, list[dict]], key: str = "p_map") -> list[dict]:
    rows = []
    for name, recs in data.items():
        for r in recs:
            for f in r["frames"]:
                if f["face"]:
                    rows.append(
                        {
                            "set": name,
                            "identity": r["identity"],
                            "pa_class": r["pa_class"],
                            "score": float(np.mean(f[key])),
                        }
                    )
    return rows


def burst_rows(data: dict[str, list[dict]], k: int, features: tuple[str, ...]) -> list[dict]:
    rows = []
    for name in BURST_SETS:
        for r in data[name]:
            sig = r.get(f"signals{k}")
            if sig is None:
                continue
            rows.append(
                {
                    "set": name,
                    "identity": r["identity"],
                    "pa_class": r["pa_class"],
                    "support": r["support"],
                    "passive": sig["passive"],
                    "x": transform(sig, features),
                }
            )
    return rows


def folds_of(data: dict[str, list[dict]], seed: int = 42) -> dict[str, int]:
    """Identity -> fold, identities of each set shuffled (``seed``) and dealt round-robin."""
    fold = {}
    for name in BURST_SETS:
        ids = sorted({r["identity"] for r in data[name]})
        rng = np.random.default_rng(seed)
        for i, ident in enumerate(rng.permutation(ids)):
            fold[str(ident)] = i % FOLDS
    return fold


def strict_threshold(rows: list[dict], score_key: str) -> float:
    """Strictest threshold refusing at most MAX_BPCER of the live rows of every set."""
    ts = []
    for name in {r["set"] for r in rows}:
        live = [r[score_key] for r in rows if r["set"] == name and r["pa_class"] == "live"]
        if live:
            ts.append(threshold_for_bpcer(np.array(live), MAX_BPCER))
    return min(ts)


def figures(rows: list[dict], score_key: str, thr: float) -> dict:
    out = {}
    for name in sorted({r["set"] for r in rows}):
        rs = [r for r in rows if r["set"] == name]
        out[name] = iso_figures(
            np.array([r[score_key] for r in rs]), [r["pa_class"] for r in rs], thr
        )
    return out


def cross_validate(data, fold, features) -> dict:
    """Held-out figures: rule and thresholds fitted without the held-out identities."""
    frames = frame_rows(data)
    frames_raw = frame_rows(data, "p_raw")
    res: dict[str, list] = {"frame": [], "frame_raw": []}
    res.update({f"passive{k}": [] for k in (2, 3, 5)})
    res.update({f"combined{k}": [] for k in (2, 3, 5)})
    bursts = {k: burst_rows(data, k, features) for k in (2, 3, 5)}
    for k_out in range(FOLDS):

        def held(r, k_out=k_out):
            return fold.get(r["identity"], -1) == k_out

        for key, rows in (("frame", frames), ("frame_raw", frames_raw)):
            train = [r for r in rows if not held(r) and r["set"] in BURST_SETS]
            thr = strict_threshold(train, "score")
            res[key] += [dict(r, accept=r["score"] >= thr) for r in rows if held(r)]
        train_all = [r for k in (2, 3, 5) for r in bursts[k] if not held(r)]
        model = fit_logistic(
            np.array([r["x"] for r in train_all]),
            np.array([r["pa_class"] == "live" for r in train_all], float),
            w=group_weights(train_all) if WEIGHTING == "group" else None,
        )
        for r in train_all:
            r["combined"] = float(predict(model, np.array([r["x"]]))[0])
        thr_c = strict_threshold(train_all, "combined")
        thr_p = strict_threshold(train_all, "passive")
        for k in (2, 3, 5):
            for r in bursts[k]:
                if held(r):
                    c = float(predict(model, np.array([r["x"]]))[0])
                    res[f"combined{k}"].append(dict(r, accept=c >= thr_c))
                    res[f"passive{k}"].append(dict(r, accept=r["passive"] >= thr_p))
    out = {}
    for key, rows in res.items():
        per_set = {}
        for name in sorted({r["set"] for r in rows}):
            rs = [r for r in rows if r["set"] == name]
            # accept is already thresholded: score 1/0 against threshold 0.5
            per_set[name] = iso_figures(
                np.array([float(r["accept"]) for r in rs]), [r["pa_class"] for r in rs], 0.5
            )
            per_set[name].pop("threshold")
        out[key] = per_set
    return out


def _fit_apply(
    rows: dict[int, list[dict]], train: set[str], test: set[str], need_physical_signs: bool = False
) -> list[tuple] | None:
    """Fit the rule and burst threshold on ``train`` identities; (k, set, class, accepted,
    identity) of the 3- and 5-frame bursts of ``test`` identities. With
    ``need_physical_signs``: None when a weight is not positive (every signal is oriented so
    that more = more likely live)."""
    tr = [r for k in (2, 3, 5) for r in rows[k] if r["identity"] in train]
    model = fit_logistic(
        np.array([r["x"] for r in tr]),
        np.array([r["pa_class"] == "live" for r in tr], float),
        w=group_weights(tr),
    )
    for r in tr:
        r["combined"] = float(predict(model, np.array([r["x"]]))[0])
    thr = strict_threshold(tr, "combined")
    if min(model["coef"]) <= 0 and need_physical_signs:
        return None
    return [
        (
            k,
            r["set"],
            r["pa_class"],
            float(predict(model, np.array([r["x"]]))[0]) >= thr,
            r["identity"],
        )
        for k in (3, 5)
        for r in rows[k]
        if r["identity"] in test
    ]


def _figs(res: list[tuple], k: int, name: str) -> dict:
    rs = [x for x in res if x[0] == k and x[1] == name]
    f = iso_figures(np.array([float(x[3]) for x in rs]), [x[2] for x in rs], 0.5)
    f.pop("threshold")
    return f


def nested_cv(data: dict[str, list[dict]], seed: int) -> tuple[list[tuple], list[int]]:
    """The whole procedure, feature choice included, on people it never saw: for each outer
    fold, every set in ``CANDIDATES`` is scored by an inner identity-disjoint CV on the other
    four folds (criterion: worst APCER + BPCER of pad_replayattack, 3- and 5-frame bursts
    averaged); the best is fitted on the four folds and applied to the held-out one."""
    fold = folds_of(data, seed)
    rows = {c: {k: burst_rows(data, k, c) for k in (2, 3, 5)} for c in CANDIDATES}
    out, chosen = [], []
    for ko in range(FOLDS):
        train = {i for i, f in fold.items() if f != ko}
        crit = []
        for c in CANDIDATES:
            if _fit_apply(rows[c], train, set(), need_physical_signs=True) is None:
                crit.append(np.inf)  # a weight against its physics on these people: not a rule
                continue
            inner: list[tuple] = []
            for ki in (k for k in range(FOLDS) if k != ko):
                tri = {i for i, f in fold.items() if f not in (ko, ki)}
                inner += _fit_apply(rows[c], tri, {i for i, f in fold.items() if f == ki}) or []
            crit.append(
                np.mean(
                    [
                        _figs(inner, k, "pad_replayattack")["apcer_worst"]
                        + _figs(inner, k, "pad_replayattack")["bpcer"]
                        for k in (3, 5)
                    ]
                )
            )
        best = int(np.argmin(crit))
        chosen.append(best)
        out += (
            _fit_apply(rows[CANDIDATES[best]], train, {i for i, f in fold.items() if f == ko}) or []
        )
    return out, chosen


def print_nested(data: dict[str, list[dict]], seeds: int) -> None:
    mean: dict[tuple[int, str], list[list[float]]] = {}
    for seed in range(seeds):
        res, chosen = nested_cv(data, seed)
        for k in (3, 5):
            for name in BURST_SETS:
                f = _figs(res, k, name)
                mean.setdefault((k, name), []).append(
                    [f["bpcer"], f["apcer_worst"], *(v["apcer"] for v in f["apcer"].values())]
                )
                ap_ = ", ".join(f"{c} {v['apcer']:.3f}" for c, v in f["apcer"].items())
                print(
                    f"nested seed {seed} {k} frames {name:17s} BPCER {f['bpcer']:.3f}  worst "
                    f"APCER {f['apcer_worst']:.3f}  [{ap_}]  candidate chosen per fold {chosen}"
                )
    for (k, name), vals in mean.items():
        m = np.mean(vals, axis=0)
        print(
            f"nested mean of {seeds} fold seeds, {k} frames {name:17s} BPCER {m[0]:.3f}  worst "
            f"APCER {m[1]:.3f}  per class " + ", ".join(f"{v:.3f}" for v in m[2:])
        )


def _pooled(sample: list[str], c: str, rate: dict, count: dict) -> float:
    """The rate of class ``c`` pooled over the identities in ``sample`` (with repeats)."""
    n = sum(count[i].get(c, 0) for i in sample)
    return sum(rate[i].get(c, 0.0) * count[i].get(c, 0) for i in sample) / max(n, 1)


def print_by_identity(data: dict[str, list[dict]], seeds: int, features: tuple[str, ...]) -> None:
    """How much the held-out figures owe to single people: the shipped feature set, 5
    identity-disjoint folds for each of ``seeds`` fold assignments; live bursts refused and
    attacks accepted per identity (pad_replayattack), and a 95% interval for BPCER and the
    worst APCER by resampling identities (2,000 bootstrap draws; each identity keeps all its
    bursts, so the interval counts people, not frames)."""
    rows = {k: burst_rows(data, k, features) for k in (2, 3, 5)}
    per: dict[tuple[int, str], dict[str, list[float]]] = {}
    for seed in range(seeds):
        fold = folds_of(data, seed)
        for ko in range(FOLDS):
            train = {i for i, f in fold.items() if f != ko}
            test = {i for i, f in fold.items() if f == ko}
            for k, name, pa, accepted, ident in _fit_apply(rows, train, test) or []:
                if name != "pad_replayattack":
                    continue
                # per (k, identity): the refusal / acceptance rate of each class, averaged
                # over the fold assignments
                wrong = float(not accepted) if pa == "live" else float(accepted)
                per.setdefault((k, ident), {}).setdefault(pa, []).append(wrong)
    rng = np.random.default_rng(0)
    for k in (3, 5):
        idents = sorted(i for kk, i in per if kk == k)
        rate = {i: {c: float(np.mean(v)) for c, v in per[(k, i)].items()} for i in idents}
        count = {i: {c: len(v) for c, v in per[(k, i)].items()} for i in idents}
        classes = sorted({c for i in idents for c in rate[i]} - {"live"})

        def figs(sample, rate=rate, count=count, classes=classes) -> tuple[float, float]:
            return _pooled(sample, "live", rate, count), max(
                _pooled(sample, c, rate, count) for c in classes
            )

        bp, worst = figs(idents)
        draws = np.array([figs(list(rng.choice(idents, len(idents)))) for _ in range(2000)])
        lo, hi = np.percentile(draws, [2.5, 97.5], axis=0)
        print(
            f"{k} frames pad_replayattack ({len(idents)} people, {seeds} fold seeds): BPCER "
            f"{bp:.3f} [95% by people {lo[0]:.3f}-{hi[0]:.3f}], worst APCER {worst:.3f} "
            f"[{lo[1]:.3f}-{hi[1]:.3f}]"
        )
        for i in idents:
            if rate[i].get("live", 0.0) > 0:
                print(f"   live refused for {i}: {rate[i]['live']:.2f} of its bursts")
        without = [i for i in idents if rate[i].get("live", 0.0) < 0.5]
        print(
            f"   without the people whose bursts are refused half the time or more: BPCER "
            f"{figs(without)[0]:.3f} (for scale only)"
        )


def floor6(x: float) -> float:
    return float(np.floor((x - 2e-6) * 1e6) / 1e6)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--features", type=Path, default=FEATURES_DIR)
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--only", default=",".join(FEATURES), help="burst features to use")
    ap.add_argument("--weighting", default=WEIGHTING, choices=("group", "class"))
    ap.add_argument("--nested", type=int, default=0, metavar="SEEDS", help="nested CV only")
    ap.add_argument("--cv-seeds", type=int, default=0, metavar="SEEDS", help="CV, mean only")
    ap.add_argument(
        "--by-identity", type=int, default=0, metavar="SEEDS", help="CV per person, intervals"
    )
    a = ap.parse_args()
    globals()["WEIGHTING"] = a.weighting
    features = tuple(a.only.split(","))
    data = load(a.features)
    if a.nested:
        print_nested(data, a.nested)
        return
    if a.by_identity:
        print_by_identity(data, a.by_identity, features)
        return
    if a.cv_seeds:  # the fixed feature set (--only), mean over several fold assignments
        for k in (2, 3, 5):
            for name in BURST_SETS:
                vals = []
                for seed in range(a.cv_seeds):
                    f = cross_validate(data, folds_of(data, seed), features)[f"combined{k}"][name]
                    vals.append(
                        [f["bpcer"], f["apcer_worst"], *(v["apcer"] for v in f["apcer"].values())]
                    )
                m = np.mean(vals, axis=0)
                print(
                    f"CV mean of {a.cv_seeds} fold seeds, {k} frames {name:17s} BPCER {m[0]:.3f}  "
                    f"worst APCER {m[1]:.3f}  per class " + ", ".join(f"{v:.3f}" for v in m[2:])
                )
        return
    fold = folds_of(data)
    cv = cross_validate(data, fold, features)
    # The shipped rule: fitted on everything.
    frames = frame_rows(data)
    thr_single = strict_threshold(frames, "score")
    allb = [r for k in (2, 3, 5) for r in burst_rows(data, k, features)]
    model = fit_logistic(
        np.array([r["x"] for r in allb]),
        np.array([r["pa_class"] == "live" for r in allb], float),
        w=group_weights(allb) if WEIGHTING == "group" else None,
    )
    for r in allb:
        r["combined"] = float(predict(model, np.array([r["x"]]))[0])
    thr_burst = strict_threshold(allb, "combined")
    result = {
        "version": "live-2",
        "created": dt.date.today().isoformat(),
        "method": __doc__.split("Method (recorded in the JSON):")[1].strip(),
        # Rounded down, less the 1e-6 rounding of the cached probabilities: each threshold is
        # a live score itself and must still accept it at full precision.
        "threshold": {"single": floor6(thr_single), "burst": floor6(thr_burst)},
        "combined": {
            "features": list(features),
            "log_features": [f for f in features if f in LOG_FEATURES],
            **{k: np.round(v, 6).tolist() if isinstance(v, list) else v for k, v in model.items()},
        },
        "dev_figures_at_shipped_thresholds": {
            "single_frame": figures(frames, "score", thr_single),
            "burst": figures(allb, "combined", thr_burst),
        },
        "identity_disjoint_cv": cv,
    }
    if a.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"thresholds: single {thr_single:.4f}  burst {thr_burst:.4f}")
        print("coef:", dict(zip(features, np.round(model["coef"], 3), strict=True)))
        for key, per_set in cv.items():
            for name, f in per_set.items():
                ap_ = ", ".join(f"{c} {v['apcer']:.3f}" for c, v in f["apcer"].items())
                print(
                    f"CV {key:11s} {name:17s} BPCER {f['bpcer']:.3f}  worst APCER "
                    f"{f['apcer_worst']:.3f}  ACER {f['acer']:.3f}  [{ap_}]"
                )
    if a.write:
        OUT.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {OUT}")
        # The runtime's reading of the file must give the scores fitted here.
        cal = load_calibration(OUT)
        sig = {f: 0.05 for f in features}
        x = np.array([transform(sig, features)])
        assert abs(cal.burst_probability(sig) - float(predict(model, x)[0])) < 1e-5


if __name__ == "__main__":
    main()
