"""CLI for the recognition core: ``detect``, ``verify``, ``bench accuracy``, ``bench speed``.

Thin adapter: parses input, calls facegate.vision / facegate.matching, renders output.
Exit codes: 0 success (``verify``: match), 1 no match, 2 bad input (message on stderr).
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from facegate.errors import FacegateError

bench_app = typer.Typer(help="Measure accuracy and speed on this machine.", no_args_is_help=True)

_out = Console()
_err = Console(stderr=True)


def _pipeline(embedders: str | None = None):
    from facegate.vision import FacePipeline

    return FacePipeline(embedders=tuple(embedders.split("+")) if embedders else None)


def _fail(exc: FacegateError) -> typer.Exit:
    _err.print(f"[red]error[/red] ({exc.code}): {exc.message}", highlight=False)
    return typer.Exit(2)


def detect(
    image: Path = typer.Argument(..., help="Image file (JPEG, PNG, WebP, BMP, GIF, TIFF, PGM)."),
    profile: str = typer.Option("gate", help="Quality profile: gate (lenient) or enroll (strict)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Find faces in an image, with boxes and quality reasons."""
    try:
        pipe = _pipeline()
        rgb = pipe.decode(image)
        faces = pipe.analyze(rgb, profile=profile)
    except FacegateError as exc:
        raise _fail(exc) from None
    result = {
        "image": {"width": int(rgb.shape[1]), "height": int(rgb.shape[0])},
        "faces": [f.to_dict() for f in faces],
        "model_id": pipe.model_id,
    }
    if as_json:
        typer.echo(json.dumps(result))
        return
    if not faces:
        _out.print("no face found")
        return
    table = Table("#", "box (x, y, w, h)", "score", "quality", title=f"{len(faces)} face(s)")
    for i, f in enumerate(faces):
        verdict = "ok" if f.quality.ok else ", ".join(f.quality.reasons)
        table.add_row(str(i), str(f.box), f"{f.score:.2f}", verdict)
    _out.print(table)


def verify(
    image_a: Path = typer.Argument(..., help="First image."),
    image_b: Path = typer.Argument(..., help="Second image."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Same person in both images? Exit 0 match, 1 no match, 2 bad input or no usable face."""
    try:
        pipe = _pipeline()
        v = pipe.verify(image_a, image_b)
    except FacegateError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(v.to_dict()))
    else:
        score = "-" if v.score is None else f"{v.score:.4f}"
        word = "MATCH" if v.match else "no match"
        _out.print(f"{word}  score {score}  threshold {v.threshold:.4f}  ({v.reason})")
    if v.score is None:
        which = {"a": str(image_a), "b": str(image_b)}.get(v.image or "", "an image")
        _err.print(f"no usable face in {which}: {v.reason}", highlight=False)
        raise typer.Exit(2)
    raise typer.Exit(0 if v.match else 1)


def _read_pairs(path: Path) -> list[tuple[str, str, bool]]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = {"path_a", "path_b", "same"} - set(reader.fieldnames or ())
            if missing:
                raise typer.BadParameter(f"{path} lacks the column(s) {sorted(missing)}")
            return [
                (r["path_a"].strip(), r["path_b"].strip(), r["same"].strip() in ("1", "true"))
                for r in reader
            ]
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}") from None


@bench_app.command("accuracy")
def bench_accuracy(
    pairs: Path = typer.Option(..., help="CSV with columns path_a, path_b, same (1/0)."),
    root: Path = typer.Option(..., help="Directory the paths in the CSV are relative to."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    plot: Path | None = typer.Option(None, help="Save ROC and DET curves to this PNG."),
    embedders: str | None = typer.Option(None, help="e.g. sface, dlib or sface+dlib (default)."),
    profile: str = typer.Option("gate", help="Quality profile applied to every image."),
) -> None:
    """Verification accuracy of the shipped threshold on a pairs file (e.g. your own camera)."""
    from facegate.matching.metrics import pair_metrics

    rows = _read_pairs(pairs)
    try:
        pipe = _pipeline(embedders)
    except FacegateError as exc:
        raise _fail(exc) from None
    images = sorted({p for a, b, _ in rows for p in (a, b)})
    templates: dict[str, np.ndarray | None] = {}
    why: dict[str, str] = {}
    progress = Progress(
        TextColumn("embedding"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=_err,
        disable=as_json,
    )
    with progress:
        task = progress.add_task("images", total=len(images))
        for rel in images:
            try:
                faces = pipe.analyze(root / rel, profile=profile, max_faces=1)
                templates[rel] = faces[0].template if faces else None
                if not faces:
                    why[rel] = "no_face"
                elif faces[0].template is None:
                    why[rel] = "low_quality:" + faces[0].quality.reasons[0]
            except FacegateError as exc:
                templates[rel] = None
                why[rel] = exc.code
            progress.advance(task)
    gen, imp, lost = [], [], []
    for a, b, same in rows:
        ta, tb = templates[a], templates[b]
        if ta is None or tb is None:
            lost.append(
                {"path_a": a, "path_b": b, "same": same, "reason": why.get(a) or why.get(b)}
            )
            continue
        (gen if same else imp).append(pipe.similarity(ta, tb))
    m = pair_metrics(np.array(gen), np.array(imp), pipe.threshold)
    n = len(rows)
    # Pairs without a usable face count as errors in the overall accuracy (a gate would fail).
    correct_all = round(m.accuracy * (n - len(lost))) if n > len(lost) else 0
    result = {
        "pairs": n,
        "model_id": pipe.model_id,
        "threshold": pipe.threshold,
        **m.to_dict(),
        "accuracy_all_pairs": correct_all / n if n else None,
        "no_usable_face_pairs": len(lost),
        "no_usable_face": lost,
    }
    if plot is not None:
        _plot(np.array(gen), np.array(imp), pipe.threshold, plot)
        result["plot"] = str(plot)
    if as_json:
        typer.echo(json.dumps(result))
        return
    t = Table(title=f"{pairs.name}: {n} pairs, threshold {pipe.threshold:.4f}")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_row("accuracy (usable pairs)", f"{m.accuracy:.4f}")
    t.add_row("accuracy (all pairs, no face = error)", f"{result['accuracy_all_pairs']:.4f}")
    t.add_row("TAR / FAR at the threshold", f"{m.tar:.4f} / {m.far:.4f}")
    for far, tar in m.tar_at_far.items():
        t.add_row(f"TAR at FAR {far:g}", "n/a (too few impostors)" if tar is None else f"{tar:.4f}")
    t.add_row("EER", f"{m.eer:.4f}")
    t.add_row("genuine / impostor pairs", f"{m.genuine} / {m.impostor}")
    t.add_row("pairs with no usable face", str(len(lost)))
    _out.print(t)
    for x in lost[:20]:
        _out.print(f"  no usable face: {x['path_a']} | {x['path_b']} ({x['reason']})")
    if plot is not None:
        _out.print(f"ROC/DET plot: {plot}")


def _plot(gen: np.ndarray, imp: np.ndarray, threshold: float, out: Path) -> None:
    """ROC (TAR vs FAR) and DET (FRR vs FAR, log-log) side by side."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise typer.BadParameter("--plot needs matplotlib (pip install matplotlib)") from None
    from facegate.matching.metrics import roc

    if len(gen) == 0 or len(imp) == 0:
        raise typer.BadParameter("--plot needs both genuine and impostor pairs with faces")
    far, tar, ts = roc(gen, imp)
    floor = 0.5 / len(imp)  # below one impostor the rate is not measured
    at = min(int(np.searchsorted(-ts, -threshold)), len(far) - 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    ax1.semilogx(np.maximum(far, floor), tar)
    ax1.plot([max(far[at], floor)], [tar[at]], "o", label=f"threshold {threshold:.3f}")
    ax1.set(xlabel="false accept rate", ylabel="true accept rate", title="ROC")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend()
    frr = 1 - tar
    ax2.loglog(np.maximum(far, floor), np.maximum(frr, 0.5 / len(gen)))
    ax2.plot([max(far[at], floor)], [max(frr[at], 0.5 / len(gen))], "o")
    ax2.set(xlabel="false accept rate", ylabel="false reject rate", title="DET")
    ax2.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _frame(size: tuple[int, int], source: Path | None) -> tuple[bytes, bool]:
    """A JPEG camera frame of the given size; a real face if an image is available."""
    import cv2

    w, h = size
    img = None
    if source is not None and source.is_file():
        img = cv2.imread(str(source))
    if img is None:
        rng = np.random.default_rng(0)
        img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        has_face = False
    else:
        scale = max(w / img.shape[1], h / img.shape[0])
        img = cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)))
        y0, x0 = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
        img = img[y0 : y0 + h, x0 : x0 + w]
        has_face = True
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes(), has_face


def _default_face_image() -> Path | None:
    env = os.environ.get("FACEGATE_SHARED_DATA")
    here = Path(__file__).resolve()
    for base in [Path(env)] if env else [here.parents[4] / "shared" / "data"]:
        p = base / "detection" / "images" / "face_recognition" / "obama-720p.jpg"
        if p.is_file():
            return p
    return None


def _pcts(values: list[float]) -> dict[str, float]:
    a = np.asarray(values) * 1000
    return {
        "p50_ms": round(float(np.percentile(a, 50)), 3),
        "p95_ms": round(float(np.percentile(a, 95)), 3),
    }


@bench_app.command("speed")
def bench_speed(
    image: Path | None = typer.Option(None, help="Face photo used to build the test frames."),
    runs: int = typer.Option(30, min=3, help="Timed runs per frame size."),
    sizes: str = typer.Option("10000,100000,1000000", help="Gallery sizes for search times."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Per-stage latency on one core (640x480, 1280x720) and 1:N search time by gallery size."""
    import cv2

    from facegate.matching import Gallery

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, whatever the libs do
    cv2.setNumThreads(1)
    try:
        pipe = _pipeline()
    except FacegateError as exc:
        raise _fail(exc) from None
    source = image or _default_face_image()
    result: dict[str, object] = {"model_id": pipe.model_id, "runs": runs, "frames": {}}
    for w, h in ((640, 480), (1280, 720)):
        frame, has_face = _frame((w, h), source)
        pipe.analyze(frame, max_faces=1)  # warm-up: loads per-thread models
        stages: dict[str, list[float]] = {}
        totals = []
        for _ in range(runs):
            t: dict[str, float] = {}
            t0 = time.perf_counter()
            pipe.analyze(frame, max_faces=1, timings=t)
            totals.append(time.perf_counter() - t0)
            for k, v in t.items():
                stages.setdefault(k, []).append(v)
        result["frames"][f"{w}x{h}"] = {  # type: ignore[index]
            "face": has_face,
            "stages": {k: _pcts(v) for k, v in stages.items()},
            "total": _pcts(totals),
        }
    searches = {}
    rng = np.random.default_rng(0)
    for n in [int(s) for s in sizes.split(",") if s.strip()]:
        g = Gallery(pipe.dim, pipe.model_id, capacity=n)
        block = 100_000
        for start in range(0, n, block):
            m = min(block, n - start)
            vecs = rng.standard_normal((m, pipe.dim), dtype=np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            add_many = getattr(g, "add_many", None)
            if add_many is not None:
                add_many(
                    [f"s{start + i}" for i in range(m)], [f"t{start + i}" for i in range(m)], vecs
                )
            else:
                for i in range(m):
                    g.add(f"s{start + i}", f"t{start + i}", vecs[i])
        probe = vecs[0]
        g.search(probe)
        times = []
        for _ in range(max(5, min(runs, 50))):
            t0 = time.perf_counter()
            g.search(probe, k=2)
            times.append(time.perf_counter() - t0)
        searches[str(n)] = _pcts(times)
        del g
    result["search"] = searches
    if as_json:
        typer.echo(json.dumps(result))
        return
    for frame_name, info in result["frames"].items():  # type: ignore[union-attr]
        tab = Table(
            "stage",
            "p50 ms",
            "p95 ms",
            title=f"{frame_name} frame, one core"
            + ("" if info["face"] else " (no face: synthetic frame)"),
        )
        for k, v in info["stages"].items():
            tab.add_row(k, f"{v['p50_ms']:.2f}", f"{v['p95_ms']:.2f}")
        tab.add_row(
            "total (decode -> template)",
            f"{info['total']['p50_ms']:.2f}",
            f"{info['total']['p95_ms']:.2f}",
        )
        _out.print(tab)
    tab = Table("templates", "p50 ms", "p95 ms", title="1:N search (top-2 subjects), one core")
    for n, v in searches.items():
        tab.add_row(f"{int(n):,}", f"{v['p50_ms']:.2f}", f"{v['p95_ms']:.2f}")
    _out.print(tab)


# -- liveness (issue 14) -----------------------------------------------------------------------


def liveness(
    frames: list[Path] = typer.Argument(
        ...,
        help="Frames of one person, in time order (1..N), or one video (its first 5 frames "
        "0.5 s apart are read).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Is the face in these frames live? Exit 0 live, 1 attack, 2 bad input or no face."""
    from facegate.vision.pad_eval import is_video, video_frames

    try:
        pipe = _pipeline()
        if len(frames) == 1 and is_video(frames[0]):
            # One burst as a gate would send it: frames spread like the development data.
            r = pipe.liveness(video_frames(frames[0], 0.5, max_frames=5))
        else:
            r = pipe.liveness(frames)
    except FacegateError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(r.to_dict()))
    else:
        word = {"live": "LIVE", "attack": "ATTACK"}.get(r.reason, r.reason)
        _out.print(
            f"{word}  score {r.score:.4f}  threshold {r.threshold:.4f}  "
            f"({r.frames} frame(s) with a face)"
        )
    if r.reason in ("no_face", "bad_input"):
        _err.print(f"cannot decide: {r.reason} {r.detail or ''}".rstrip(), highlight=False)
        raise typer.Exit(2)
    raise typer.Exit(0 if r.live else 1)


@bench_app.command("liveness")
def bench_liveness(
    root: Path = typer.Option(..., help="Directory the paths in the manifest are relative to."),
    manifest: Path = typer.Option(
        ...,
        help="CSV: path, label (live or an attack label) [, pa_class] [, video_id or sequence]"
        " [, frame] [, identity]. A path may name a video (.mp4, .mkv, .webm, .avi, .mov ...).",
    ),
    max_frames: int = typer.Option(5, min=1, help="Frames per burst (a sequence is cut)."),
    video_gap: float = typer.Option(
        0.5,
        min=0.05,
        max=10.0,
        help="Seconds between the frames taken from a video in the manifest (the burst rule "
        "expects frames about 0.5 s apart).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    plot: Path | None = typer.Option(None, help="Save DET curves (frame and burst) to this PNG."),
) -> None:
    """ISO/IEC 30107-3 figures of the shipped liveness rule on a labelled set (your camera,
    your attacks): APCER per attack class and the worst, BPCER, ACER, per frame and per burst."""
    from facegate.vision.pad_eval import bursts, is_video, iso_figures, read_manifest, video_frames

    try:
        samples = read_manifest(manifest)
        pipe = _pipeline()
        checker = pipe.liveness_checker
    except FacegateError as exc:
        raise _fail(exc) from None
    # Images are grouped by sequence; a video is its own sequence, sampled every video_gap s.
    groups = bursts([s for s in samples if not is_video(s.path)], max_frames)
    videos = [s for s in samples if is_video(s.path)]
    frame_scores, frame_cls, burst_scores, burst_cls, burst_n = [], [], [], [], []
    no_face = {"frames": 0, "bursts": 0}
    unreadable: list[str] = []
    bursts_seen = 0

    def take(pa_class: str, rgbs_in: list[np.ndarray]) -> None:
        """One burst: the passive score of every frame with a face, the combined score of the
        burst when two or more frames have one."""
        nonlocal bursts_seen
        bursts_seen += 1
        rgbs, faces = [], []
        for rgb in rgbs_in:
            dets = pipe.detector.detect(rgb)
            if not dets:
                no_face["frames"] += 1
                continue
            rgbs.append(rgb)
            faces.append(dets[0])
        if not faces:
            no_face["bursts"] += 1
            return
        probs, sig = checker.measure(rgbs, faces)
        for p in probs:
            frame_scores.append(float(p))
            frame_cls.append(pa_class)
        if len(faces) >= 2:
            score, _ = checker.score(sig, len(faces))
            burst_scores.append(score)
            burst_cls.append(pa_class)
            burst_n.append(len(faces))

    progress = Progress(
        TextColumn("liveness"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=_err,
        disable=as_json,
    )
    with progress:
        task = progress.add_task("bursts", total=len(groups) + len(videos))
        for group in groups:
            rgbs = []
            for s in group:
                try:
                    rgbs.append(pipe.decode(root / s.path))
                except FacegateError:
                    unreadable.append(s.path)  # counted apart, not as "no face"
            if rgbs:
                take(group[0].pa_class, rgbs)
            progress.advance(task)
        for v in videos:
            try:
                frames = [pipe.decode(f) for f in video_frames(root / v.path, video_gap)]
            except FacegateError:
                unreadable.append(v.path)
                frames = []
            for i in range(0, len(frames), max_frames):
                take(v.pa_class, frames[i : i + max_frames])
            progress.advance(task)
    cal = checker.calibration
    result: dict[str, object] = {
        "samples": len(samples),
        "bursts": bursts_seen,
        "per_frame": iso_figures(np.array(frame_scores), frame_cls, cal.threshold_single),
        "per_burst": iso_figures(np.array(burst_scores), burst_cls, cal.threshold_burst)
        if burst_scores
        else None,
        "burst_frames": {str(n): burst_n.count(n) for n in sorted(set(burst_n))},
        "no_face": no_face,
        "unreadable": unreadable,
        "model": checker.passive.name,
        "calibration": cal.version,
    }
    if plot is not None:
        curves = {"per frame (passive)": (frame_scores, frame_cls)}
        if burst_scores:
            curves["per burst (combined)"] = (burst_scores, burst_cls)
        _plot_det(curves, plot)
        result["plot"] = str(plot)
    if as_json:
        typer.echo(json.dumps(result))
        return
    for key, title in (("per_frame", "per frame (passive)"), ("per_burst", "per burst")):
        f = result[key]
        if not f:
            continue
        t = Table(
            "measure", "value", title=f"{manifest.name}: {title}, threshold {f['threshold']:.4f}"
        )  # type: ignore[index]
        for cls, v in f["apcer"].items():  # type: ignore[index]
            t.add_row(f"APCER {cls} (n={v['n']})", f"{v['apcer']:.4f}")
        for name in ("apcer_worst", "bpcer", "acer"):
            v = f[name]  # type: ignore[index]
            t.add_row(name.upper().replace("_", " "), "n/a" if v is None else f"{v:.4f}")
        t.add_row("bona fide / attack presentations", f"{f['bona_fide']} / {f['attacks']}")  # type: ignore[index]
        _out.print(t)
    _out.print(
        f"no face: {no_face['frames']} frame(s), {no_face['bursts']} burst(s); "
        f"unreadable: {len(unreadable)}"
    )
    if plot is not None:
        _out.print(f"DET plot: {plot}")


def _plot_det(curves: dict[str, tuple[list[float], list[str]]], out: Path) -> None:
    """DET: worst-class APCER against BPCER (normal-deviate axes where scipy is absent:
    log-log), one curve per presentation unit."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise typer.BadParameter("--plot needs matplotlib (pip install matplotlib)") from None
    from facegate.vision.pad_eval import det_points

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for label, (scores, cls) in curves.items():
        d = det_points(np.array(scores), cls)
        floor = 1e-3
        ax.loglog(np.maximum(d["apcer_worst"], floor), np.maximum(d["bpcer"], floor), label=label)
    ax.set(xlabel="APCER (worst attack class)", ylabel="BPCER", title="DET")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
