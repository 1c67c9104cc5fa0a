"""Liveness (presentation-attack detection): is the face in front of the camera a live person?

Two kinds of signal, combined by one shipped rule (``minifasnet/liveness.json``):

* **Passive, per frame**: the MiniFASNet pair (V2 on a crop at 2.7x the face box, V1SE at
  4.0x; 80x80 BGR float 0..255; softmax index 1 = live), averaged. The models were trained on
  the box of another detector; YuNet's box is mapped to that convention first by four
  coefficients fitted without labels (``minifasnet/box_map.json``, ``bench/fit_liveness_box.py``).
* **Across a burst** (2..N frames of one person): a printed photo or a screen is flat, moves
  rigidly and together with its own edges (or not at all, on a stand); a live face is not a
  plane, moves against a still room and changes on its own. ``burst_signals`` measures: the
  dense planar residual (a homography fitted to corners tracked inside the face) and the
  face's own flow, context following the face, face against side-of-frame motion, face colour
  saturation, fine skin texture; landmark motion and planarity, change inside the face and
  whole-box texture are measured too. The rule (``live-2``) uses the signals it lists.

The one score is a probability (higher = more likely live); ``live`` is ``score >= threshold``
with the threshold for the number of frames that had a face (one frame: passive alone).

    checker = LivenessChecker()
    r = checker.check(frames_rgb, faces)   # faces from FacePipeline.analyze, one per frame

``FacePipeline.liveness(frames)`` decodes and detects itself; ``FacePipeline.liveness_of``
reuses faces already detected (the gate path: one detection per frame). Nothing here stores
or logs a frame (principle 3). Knows no people.

Rules: liveness and anti-spoofing on (PIPL-08, STD-PCAC), as a security measure of the FR
system (CAC-FR-14); liveness is on the processing allow-list {detect, liveness, align, embed,
compare} (CAC-DRAFT23-1): it infers nothing else about the person.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from facegate.errors import InvalidInput
from facegate.vision.models import model_path

LIVE_INDEX = 1  # softmax index of "live" (0 fires on prints, 2 on screens)
CROP = 80
# (model key, crop scale around the mapped box)
PASSIVE_MODELS = (("minifasnet_v2", 2.7), ("minifasnet_v1se", 4.0))
REASONS = ("live", "attack", "no_face", "bad_input")
LOG_OFFSET = 0.01  # heavy-tailed burst signals enter the rule as log(x + 0.01)
MAX_FRAMES = 16  # a burst longer than this is refused as bad input
PLANAR_FACE_PX = 100.0  # dense planar check: the face at most this wide (pixels)
# Dense planar check: a later frame whose face box grew or shrank by more than this is rescaled
# before tracking. Below it the box size's own jitter dominates (still media in
# pad_replayattack: median 0.4%, 99th percentile 5.4%, at most 10%), and resampling one frame
# of the pair adds more tracking noise than Lucas-Kanade's scale error saves (its bias on a
# synthetic plane: ~1.6% of the face width per 1 of zoom, 0.16% at 10%).
REWARP_ZOOM = 0.1
# A living face always moves a little (sway, breathing, pulse): between frames about 0.5 s
# apart, at least 0.3% of its width in pad_replayattack; a medium on a stand in front of a
# fixed camera moves by the tracking noise, about 0.02-0.05%. Motion beyond this cap is no
# further evidence of life (a hand-held photo moves a lot), so ``face_moved`` stops there.
MOVED_CAP = 0.2  # percent of the face width
_EPS = 1e-6


class _FaceLike(Protocol):
    box: Any  # x, y, width, height
    landmarks: np.ndarray  # (5, 2): right eye, left eye, nose, mouth right, mouth left


@dataclass(frozen=True)
class BoxMap:
    """YuNet box -> the box convention MiniFASNet was trained with (centre shift, scale)."""

    dx: float = 0.0
    dy: float = 0.0
    sw: float = 1.0
    sh: float = 1.0

    def apply(self, box: Sequence[float]) -> tuple[float, float, float, float]:
        x, y, w, h = (float(v) for v in box)
        cx, cy = x + w / 2 + self.dx * w, y + h / 2 + self.dy * h
        nw, nh = self.sw * w, self.sh * h
        return cx - nw / 2, cy - nh / 2, nw, nh


IDENTITY_MAP = BoxMap()


@dataclass(frozen=True)
class Liveness:
    """A liveness decision. ``reason``: ``live``, ``attack``, ``no_face`` or ``bad_input``.

    ``signals`` (per-signal values) is for benchmarks and logs of a site's own tests; a gate
    must only ever tell a client ``liveness_failed`` (never which signal failed).
    """

    live: bool
    score: float
    threshold: float
    reason: str
    frames: int = 0  # frames with a face that were scored
    signals: dict[str, float] = field(default_factory=dict)
    detail: str | None = None  # for bad_input: the error code of the frame that failed

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {
            "live": self.live,
            "score": round(self.score, 6),
            "threshold": round(self.threshold, 6),
            "reason": self.reason,
            "frames": self.frames,
        }
        if self.detail:
            d["detail"] = self.detail
        return d


# -- shipped data ------------------------------------------------------------------------------


def _data_file(name: str) -> Path:
    return Path(str(resources.files("facegate.vision").joinpath("minifasnet", name)))


def load_box_map(path: Path | None = None) -> BoxMap:
    p = path or _data_file("box_map.json")
    try:
        coef = json.loads(Path(p).read_text())["coefficients"]
        return BoxMap(**{k: float(coef[k]) for k in ("dx", "dy", "sw", "sh")})
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise InvalidInput(f"cannot read the liveness box map {p}: {exc}") from None


@dataclass(frozen=True)
class LivenessCalibration:
    """The shipped combination rule and thresholds (``bench/liveness_calibrate.py``)."""

    version: str
    threshold_single: float  # on the passive probability, one frame
    threshold_burst: float  # on the combined probability, 2+ frames
    features: tuple[str, ...]
    log_features: tuple[str, ...]  # entered as log(x + LOG_OFFSET)
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def burst_probability(self, values: dict[str, float]) -> float:
        x = np.array(
            [
                np.log(values[f] + LOG_OFFSET) if f in self.log_features else values[f]
                for f in self.features
            ],
            np.float64,
        )
        z = float(((x - self.mean) / self.scale) @ self.coef + self.intercept)
        return float(1.0 / (1.0 + np.exp(-z)))


def load_calibration(path: Path | None = None) -> LivenessCalibration:
    p = path or _data_file("liveness.json")
    try:
        d = json.loads(Path(p).read_text())
        c = d["combined"]
        return LivenessCalibration(
            version=str(d["version"]),
            threshold_single=float(d["threshold"]["single"]),
            threshold_burst=float(d["threshold"]["burst"]),
            features=tuple(c["features"]),
            log_features=tuple(c.get("log_features", ())),
            mean=np.asarray(c["mean"], np.float64),
            scale=np.asarray(c["scale"], np.float64),
            coef=np.asarray(c["coef"], np.float64),
            intercept=float(c["intercept"]),
        )
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise InvalidInput(f"cannot read the liveness calibration {p}: {exc}") from None


# -- passive signal ----------------------------------------------------------------------------


def crop_at_scale(
    bgr: np.ndarray, box: Sequence[float], scale: float, size: int = CROP
) -> np.ndarray:
    """The crop MiniFASNet expects: ``box`` scaled by ``scale`` about its centre (less where
    the frame is smaller), shifted back inside the frame rather than clipped, resized."""
    h, w = bgr.shape[:2]
    x, y, bw, bh = (float(v) for v in box)
    bw, bh = max(bw, 1.0), max(bh, 1.0)
    scale = min((h - 1) / bh, (w - 1) / bw, scale)
    nw, nh = bw * scale, bh * scale
    cx, cy = x + bw / 2, y + bh / 2
    x0, y0, x1, y1 = cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2
    if x0 < 0:
        x1, x0 = x1 - x0, 0.0
    if y0 < 0:
        y1, y0 = y1 - y0, 0.0
    if x1 > w - 1:
        x0, x1 = x0 - (x1 - w + 1), w - 1.0
    if y1 > h - 1:
        y0, y1 = y0 - (y1 - h + 1), h - 1.0
    x0, y0, x1, y1 = int(max(x0, 0)), int(max(y0, 0)), int(x1), int(y1)
    return cv2.resize(bgr[y0 : y1 + 1, x0 : x1 + 1], (size, size))


class PassiveModel:
    """The MiniFASNet pair in onnxruntime (pinned files, ``threads`` intra-op threads)."""

    name = "minifasnet-v2@2.7+v1se@4.0"

    def __init__(
        self,
        model_dir: Path | None = None,
        threads: int = 1,
        box_map: BoxMap | None = None,
    ) -> None:
        import onnxruntime as ort

        from facegate.vision.dlib_onnx import session_options

        self.box_map = box_map if box_map is not None else load_box_map()
        self._sessions = []
        for key, scale in PASSIVE_MODELS:
            opts = session_options(threads)
            opts.log_severity_level = 3
            sess = ort.InferenceSession(
                str(model_path(key, model_dir)), opts, providers=["CPUExecutionProvider"]
            )
            self._sessions.append((sess, sess.get_inputs()[0].name, scale))

    def probabilities(
        self, frames_bgr: Sequence[np.ndarray], boxes: Sequence[Sequence[float]]
    ) -> np.ndarray:
        """Live probability per frame: [N, 2] (one column per model); average them."""
        out = []
        for sess, input_name, scale in self._sessions:
            batch = np.stack(
                [
                    crop_at_scale(bgr, self.box_map.apply(b), scale)
                    for bgr, b in zip(frames_bgr, boxes, strict=True)
                ]
            )
            x = batch.astype(np.float32).transpose(0, 3, 1, 2)
            logits = sess.run(None, {input_name: np.ascontiguousarray(x)})[0].astype(np.float64)
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            out.append(e[:, LIVE_INDEX] / e.sum(axis=1))
        return np.stack(out, axis=1)


# -- burst signals -----------------------------------------------------------------------------


def _iod(lm: np.ndarray) -> float:
    return float(np.linalg.norm(lm[0] - lm[1])) + _EPS


def planarity_residual(lms: Sequence[np.ndarray]) -> float:
    """How far the nose leaves the plane of the eyes and mouth corners, across the burst.

    For each later frame, the homography that carries the first frame's four eye and mouth
    landmarks onto that frame's predicts where a nose drawn on the same plane would be; a
    printed photo or a screen (a plane, however it is held) keeps the nose there up to the
    landmark noise; a turning or nodding head moves it away. The largest residual over the
    frames, in inter-ocular distances.
    """
    ref = np.asarray(lms[0], np.float32)
    src = ref[[0, 1, 3, 4]]
    worst = 0.0
    for lm in lms[1:]:
        lm = np.asarray(lm, np.float32)
        try:
            hom = cv2.getPerspectiveTransform(src, lm[[0, 1, 3, 4]])
        except cv2.error:
            continue
        p = hom @ np.array([ref[2, 0], ref[2, 1], 1.0])
        if abs(p[2]) < _EPS:
            continue
        worst = max(worst, float(np.linalg.norm(p[:2] / p[2] - lm[2])) / _iod(lm))
    return worst


def landmark_motion(lms: Sequence[np.ndarray]) -> float:
    """Median displacement of the five landmarks from the first frame, in inter-ocular
    distances, over the later frames (a photo on a stand: about zero)."""
    ref = np.asarray(lms[0], np.float32)
    d = [float(np.linalg.norm(np.asarray(lm) - ref, axis=1).mean()) / _iod(ref) for lm in lms[1:]]
    return float(np.median(d)) if d else 0.0


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray | None:
    m, _ = cv2.estimateAffinePartial2D(
        np.asarray(src, np.float32), np.asarray(dst, np.float32), method=cv2.LMEDS
    )
    return m


def context_follow(
    grays: Sequence[np.ndarray], lms: Sequence[np.ndarray], boxes: Sequence[Sequence[float]]
) -> float:
    """Does what surrounds the face move with it (the edge of a photo or a screen) or stay
    (the room behind a person)? log(ring difference after warping the later frame onto the
    first by the face's own motion / ring difference without warping), averaged over frames.

    The ring is the face box doubled, minus the face box. Live person who moved: warping by
    the face's motion misaligns the room, > 0. Photo or screen moved by a hand: the warp
    aligns the medium, < 0. Nobody moved: about 0.
    """
    g0 = grays[0].astype(np.float32)
    h, w = g0.shape
    x, y, bw, bh = (float(v) for v in boxes[0])
    cx, cy = x + bw / 2, y + bh / 2
    yy, xx = np.mgrid[0:h, 0:w]
    outer = (np.abs(xx - cx) <= bw) & (np.abs(yy - cy) <= bh)
    inner = (np.abs(xx - cx) <= bw * 0.55) & (np.abs(yy - cy) <= bh * 0.55)
    ring = outer & ~inner
    if ring.sum() < 50:
        return 0.0
    vals = []
    for g, lm in zip(grays[1:], lms[1:], strict=True):
        m = _similarity(lm, lms[0])  # later frame -> first frame
        if m is None:
            continue
        gk = g.astype(np.float32)
        warped = cv2.warpAffine(gk, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=-1.0)
        valid = ring & (warped >= 0)
        if valid.sum() < 50:
            continue
        raw = float(np.abs(gk[valid] - g0[valid]).mean())
        warp = float(np.abs(warped[valid] - g0[valid]).mean())
        vals.append(np.log((warp + 1.0) / (raw + 1.0)))
    return float(np.mean(vals)) if vals else 0.0


def face_change(
    grays: Sequence[np.ndarray], lms: Sequence[np.ndarray], boxes: Sequence[Sequence[float]]
) -> float:
    """Change inside the face after its motion is undone (blink, mouth, 3-D shading of a
    turning head; a rigid photo changes only by perspective and light): mean absolute grey
    difference in the central face box after a similarity warp, over the face's own
    contrast, median over the later frames."""
    g0 = grays[0].astype(np.float32)
    h, w = g0.shape
    x, y, bw, bh = (float(v) for v in boxes[0])
    x0, x1 = int(max(x + 0.15 * bw, 0)), int(min(x + 0.85 * bw, w))
    y0, y1 = int(max(y + 0.15 * bh, 0)), int(min(y + 0.9 * bh, h))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return 0.0
    ref = g0[y0:y1, x0:x1]
    contrast = float(ref.std()) + 1.0
    vals = []
    for g, lm in zip(grays[1:], lms[1:], strict=True):
        m = _similarity(lm, lms[0])
        if m is None:
            continue
        warped = cv2.warpAffine(g.astype(np.float32), m, (w, h), flags=cv2.INTER_LINEAR)
        vals.append(float(np.abs(warped[y0:y1, x0:x1] - ref).mean()) / contrast)
    return float(np.median(vals)) if vals else 0.0


def face_background_motion(grays: Sequence[np.ndarray], boxes: Sequence[Sequence[float]]) -> float:
    """Does the face move more than the scene beside the person? log((face difference + 1) /
    (side difference + 1)) between consecutive frames, median; the side is the frame left and
    right of a band 2.4 face widths wide around the face (a fixed camera sees a still room
    there; a hand-held photo or screen moves its own edges and the hand)."""
    vals = []
    for (g0, g1), b in zip(zip(grays[:-1], grays[1:], strict=True), boxes[1:], strict=True):
        h, w = g0.shape
        x, y, bw, bh = (float(v) for v in b)
        diff = np.abs(g1.astype(np.float32) - g0.astype(np.float32))
        fx0, fx1 = int(max(x, 0)), int(min(x + bw, w))
        fy0, fy1 = int(max(y, 0)), int(min(y + bh, h))
        if fx1 - fx0 < 4 or fy1 - fy0 < 4:
            continue
        face = float(diff[fy0:fy1, fx0:fx1].mean())
        cx = x + bw / 2
        side = np.ones(w, bool)
        side[int(max(cx - 1.2 * bw, 0)) : int(min(cx + 1.2 * bw, w))] = False
        bg = float(diff[:, side].mean()) if side.sum() >= 4 else face
        vals.append(np.log((face + 1.0) / (bg + 1.0)))
    return float(np.median(vals)) if vals else 0.0


def high_frequency(frames_bgr: Sequence[np.ndarray], boxes: Sequence[Sequence[float]]) -> float:
    """Fine texture of the face (screen pixels and moire, print dots, or their blur):
    variance of the Laplacian over the grey variance of the face box resized to 96x96,
    log, mean over the frames."""
    vals = []
    for bgr, b in zip(frames_bgr, boxes, strict=True):
        h, w = bgr.shape[:2]
        x, y, bw, bh = (float(v) for v in b)
        x0, x1 = int(max(x, 0)), int(min(x + bw, w))
        y0, y1 = int(max(y, 0)), int(min(y + bh, h))
        if x1 - x0 < 8 or y1 - y0 < 8:
            continue
        g = cv2.cvtColor(bgr[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
        g = cv2.resize(g, (96, 96), interpolation=cv2.INTER_AREA).astype(np.float32)
        lap = cv2.Laplacian(g, cv2.CV_32F)
        vals.append(np.log((float(lap.var()) + 1.0) / (float(g.var()) + 1.0)))
    return float(np.mean(vals)) if vals else 0.0


def dense_planarity(
    grays: Sequence[np.ndarray], boxes: Sequence[Sequence[float]]
) -> tuple[float, float]:
    """Dense planar check: (homography residual, face motion), both in percent of the face
    width, averaged over the later frames.

    Corners are found inside the first frame's face box (at most ``PLANAR_FACE_PX`` wide) and
    tracked into every later frame (pyramidal Lucas-Kanade, kept when the backward track
    returns within 1 px). A homography fitted to the tracks (least median of squares) carries
    a flat medium (a print or a screen, however it is held or bent little) onto the later
    frame almost exactly: its median residual stays at the tracking noise. A live face is not
    a plane (nose, cheeks, ears at other depths) and changes on its own (blinks, mouth, skin):
    the residual is larger. The median track length is returned too (a photo or a screen on a
    stand does not move at all; a person always does a little). Grey frames at full
    resolution (``grays``), each frame's face box in its pixels (``boxes``: the move and
    scaling of the box bring each later frame onto the first before tracking); (0, 0) when
    too few corners track (read as "did not move": fail closed).
    """
    x, y, bw, bh = (float(v) for v in boxes[0])
    h, w = grays[0].shape[:2]
    # One window around the first face, the same in every frame, scaled so the face fits.
    wx0, wx1 = int(max(x - 0.5 * bw, 0)), int(min(x + 1.5 * bw, w))
    wy0, wy1 = int(max(y - 0.5 * bh, 0)), int(min(y + 1.5 * bh, h))
    if wx1 - wx0 < 16 or wy1 - wy0 < 16:
        return 0.0, 0.0
    s = min(1.0, PLANAR_FACE_PX / max(bw, 1.0))

    def window(g: np.ndarray) -> np.ndarray:
        c = g[wy0:wy1, wx0:wx1]
        return cv2.resize(c, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1.0 else c

    g0 = window(grays[0])
    mask = np.zeros_like(g0)
    mx0, my0 = int((x + 0.1 * bw - wx0) * s), int((y + 0.05 * bh - wy0) * s)
    mx1, my1 = int((x + 0.9 * bw - wx0) * s), int((y + 0.95 * bh - wy0) * s)
    mask[max(my0, 0) : max(my1, 0), max(mx0, 0) : max(mx1, 0)] = 255
    pts = cv2.goodFeaturesToTrack(g0, 60, 0.01, 4, mask=mask, blockSize=5)
    if pts is None or len(pts) < 8:
        return 0.0, 0.0
    unit = 100.0 / (bw * s)  # pixels of the window -> percent of the face width
    lk = {"winSize": (15, 15), "maxLevel": 2}
    initial = cv2.OPTFLOW_USE_INITIAL_FLOW  # every track starts where it is told
    c0 = np.array([x + bw / 2, y + bh / 2])
    w0 = np.array([wx0, wy0], np.float64)
    res, flow = [], []
    for g, box in zip(grays[1:], boxes[1:], strict=True):
        # The detector already found the face in this frame: the move and scaling of its box
        # start every track. Without that a head that turns or steps between frames (what a
        # challenge asks for) moves beyond the pyramid's reach, every track is lost and a
        # live face reads as "did not move". A face that grew or shrank by more than
        # ``REWARP_ZOOM`` (a person walking to a gate, a print moved toward the camera) is
        # first brought to the first frame's scale (u = f * X + t): Lucas-Kanade follows
        # patches by translation only and reads a larger scaling as a bend (a flat print
        # would look like a face). Positions are then taken back to the later frame's own
        # pixels, so the residual and the motion are measured in the scene.
        bx, by, bkw, bkh = (float(v) for v in box)
        ck = np.array([bx + bkw / 2, by + bkh / 2])
        zoom = float(np.sqrt(max(bkw * bkh, 1.0) / max(bw * bh, 1.0)))
        rescaled = abs(zoom - 1.0) > REWARP_ZOOM
        if not rescaled:  # the same window; the box's move and scaling predict each corner
            gk = window(g)
            start = s * (ck - w0) + (pts.reshape(-1, 2) - s * (c0 - w0)) * zoom
        else:
            f = s / zoom
            t = s * (c0 - w0) - f * ck
            if f < 1.0:  # shrink with area averaging (no aliasing), then shift
                small = cv2.resize(g, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
                shift = t - (0.5 * f - 0.5)  # resize maps X to f * (X + 0.5) - 0.5
                m = np.float32([[1, 0, shift[0]], [0, 1, shift[1]]])
                gk = cv2.warpAffine(small, m, g0.shape[::-1], borderMode=cv2.BORDER_REPLICATE)
            else:
                m = np.float32([[f, 0, t[0]], [0, f, t[1]]])
                gk = cv2.warpAffine(g, m, g0.shape[::-1], borderMode=cv2.BORDER_REPLICATE)
            start = pts  # brought onto the first frame: each corner starts where it was
        start = np.array(start, np.float32).reshape(-1, 1, 2)  # a copy: LK writes into it
        p1, st, _ = cv2.calcOpticalFlowPyrLK(g0, gk, pts, start, flags=initial, **lk)
        back_start = (p1 if rescaled else pts).copy()
        back, st2, _ = cv2.calcOpticalFlowPyrLK(gk, g0, p1, back_start, flags=initial, **lk)
        fb = np.linalg.norm((back - pts).reshape(-1, 2), axis=1)
        ok = (st.ravel() == 1) & (st2.ravel() == 1) & (fb < 1.0)
        if ok.sum() < 8:
            continue
        a = pts.reshape(-1, 2)[ok]
        b = p1.reshape(-1, 2)[ok]
        if rescaled:  # back to the later frame's pixels, in the first window's units
            b = (s * ((b - t) / f - w0)).astype(np.float32)
        hom, _ = cv2.findHomography(a, b, cv2.LMEDS)
        if hom is None:
            continue
        pred = cv2.perspectiveTransform(a[None], hom)[0]
        res.append(float(np.median(np.linalg.norm(pred - b, axis=1))) * unit)
        flow.append(float(np.median(np.linalg.norm(b - a, axis=1))) * unit)
    if not res:
        return 0.0, 0.0
    return float(np.mean(res)), float(np.mean(flow))


def face_saturation(frames_bgr: Sequence[np.ndarray], boxes: Sequence[Sequence[float]]) -> float:
    """Colour saturation of the central face (HSV S, 0..1), mean over the frames: a print
    re-photographed loses chroma (ink gamut, paper reflecting the room's light), skin seen
    directly keeps it."""
    vals = []
    for bgr, b in zip(frames_bgr, boxes, strict=True):
        h, w = bgr.shape[:2]
        x, y, bw, bh = (float(v) for v in b)
        x0, x1 = int(max(x + 0.15 * bw, 0)), int(min(x + 0.85 * bw, w))
        y0, y1 = int(max(y + 0.15 * bh, 0)), int(min(y + 0.9 * bh, h))
        if x1 - x0 < 4 or y1 - y0 < 4:
            continue
        hsv = cv2.cvtColor(np.ascontiguousarray(bgr[y0:y1, x0:x1]), cv2.COLOR_BGR2HSV)
        vals.append(float(hsv[..., 1].mean()) / 255.0)
    return float(np.mean(vals)) if vals else 0.0


_FFT_N = 64
_FFT_WINDOW = np.outer(np.hanning(_FFT_N), np.hanning(_FFT_N)).astype(np.float32)
_FFT_R = np.hypot(*np.mgrid[-_FFT_N // 2 : _FFT_N // 2, -_FFT_N // 2 : _FFT_N // 2])
_FFT_FINE = (_FFT_R > 12) & (_FFT_R < 31)  # cycles per face crop: pores, fine shading
_FFT_COARSE = (_FFT_R > 2) & (_FFT_R <= 12)  # eyes, nose, mouth


def fine_texture(frames_bgr: Sequence[np.ndarray], boxes: Sequence[Sequence[float]]) -> float:
    """Fine texture of the skin itself: log(spectral energy at 12-31 cycles / energy at 2-12
    cycles) of the central face (no hair, no background), grey, 64x64, Hann window; mean over
    the frames. A face re-captured from a screen has lost fine detail to the display's pixels
    and the second camera's focus, against the same face's coarse structure; a live face
    keeps it. Measured honestly (pad_replayattack medians, faces 90-110 px): live -3.44,
    phone -4.06, tablet -3.42, but print -2.85: paper grain and print banding add fine
    energy, so alone this is a screen cue; in the combined rule it is one term of several."""
    vals = []
    for bgr, b in zip(frames_bgr, boxes, strict=True):
        h, w = bgr.shape[:2]
        x, y, bw, bh = (float(v) for v in b)
        x0, x1 = int(max(x + 0.15 * bw, 0)), int(min(x + 0.85 * bw, w))
        y0, y1 = int(max(y + 0.15 * bh, 0)), int(min(y + 0.9 * bh, h))
        if x1 - x0 < 8 or y1 - y0 < 8:
            continue
        g = cv2.cvtColor(np.ascontiguousarray(bgr[y0:y1, x0:x1]), cv2.COLOR_BGR2GRAY)
        g = cv2.resize(g, (_FFT_N, _FFT_N), interpolation=cv2.INTER_AREA).astype(np.float32)
        spec = np.abs(np.fft.fftshift(np.fft.fft2((g - g.mean()) * _FFT_WINDOW))) ** 2
        vals.append(float(np.log(spec[_FFT_FINE].sum() / (spec[_FFT_COARSE].sum() + 1e-9) + 1e-9)))
    return float(np.mean(vals)) if vals else 0.0


def burst_signals(
    frames_bgr: Sequence[np.ndarray],
    faces: Sequence[_FaceLike],
    passive: np.ndarray,
) -> dict[str, float]:
    """Every signal of a burst (``passive``: the [N, 2] per-frame model probabilities).

    Single-frame values (``passive_*``) are always present; motion values need 2+ frames.
    Grey frames are taken at a size where the face is about 64 px wide (cheap, same signal).
    """
    p = np.clip(passive.mean(axis=1), 1e-4, 1 - 1e-4)
    out = {
        "passive": float(p.mean()),
        "passive_logit": float(np.mean(np.log(p / (1 - p)))),
        "passive_min": float(p.min()),
    }
    if len(faces) < 2:
        return out
    # Every frame in the first frame's pixel grid (a burst from one camera already is; frames
    # of other sizes are resized), then scaled so that the face is about 64 px wide.
    h0, w0 = frames_bgr[0].shape[:2]
    lms, boxes = [], []
    for bgr, f in zip(frames_bgr, faces, strict=True):
        fx, fy = w0 / bgr.shape[1], h0 / bgr.shape[0]
        lms.append(np.asarray(f.landmarks, np.float32) * np.array([fx, fy], np.float32))
        x, y, bw, bh = (float(v) for v in f.box)
        boxes.append((x * fx, y * fy, bw * fx, bh * fy))
    s = min(1.0, 64.0 / max(boxes[0][2], 1.0))
    grays, grays_full = [], []
    for bgr in frames_bgr:
        g = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        grays_full.append(g)
        if g.shape != (h0, w0):
            g = cv2.resize(g, (w0, h0), interpolation=cv2.INTER_AREA)
        if s < 1.0:
            g = cv2.resize(g, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        grays.append(g)
    lms_s = [lm * s for lm in lms]
    boxes_s = [tuple(v * s for v in b) for b in boxes]
    out["planarity"] = planarity_residual(lms)
    out["motion"] = landmark_motion(lms)
    out["context_follow"] = context_follow(grays, lms_s, boxes_s)
    out["face_change"] = face_change(grays, lms_s, boxes_s)
    out["face_bg_motion"] = face_background_motion(grays, boxes_s)
    out["high_frequency"] = high_frequency(frames_bgr, [f.box for f in faces])
    full = [cv2.resize(g, (w0, h0)) if g.shape != (h0, w0) else g for g in grays_full]
    out["planar_residual"], out["face_flow"] = dense_planarity(full, boxes)
    out["face_moved"] = min(out["face_flow"], MOVED_CAP)
    out["saturation"] = face_saturation(frames_bgr, [f.box for f in faces])
    out["fine_texture"] = fine_texture(frames_bgr, [f.box for f in faces])
    logits = np.log(p / (1 - p))
    out["passive_spread"] = float(logits.std())
    return out


# -- the decision ------------------------------------------------------------------------------


class LivenessChecker:
    """Passive + burst liveness on faces that are already detected.

    The gate's call (one detection per frame, reused from ``FacePipeline.analyze``)::

        checker = LivenessChecker()              # or pipe.liveness_checker (shared, lazy)
        faces = [pipe.analyze(rgb, max_faces=1) for rgb in frames_rgb]
        r = checker.check(frames_rgb, [f[0] if f else None for f in faces])
        if not r.live: deny with reason "liveness_failed"   # never say which signal

    ``frames_rgb``: decoded RGB uint8 frames of one person (1..N, in time order); ``faces``:
    "the" face of each frame (``Face`` or ``Detection``: anything with ``box`` and
    ``landmarks``), ``None`` where a frame had none. Thread-safe (onnxruntime sessions are).
    """

    def __init__(
        self,
        model_dir: Path | None = None,
        threads: int = 1,
        box_map: BoxMap | None = None,
        calibration: LivenessCalibration | None = None,
    ) -> None:
        self.passive = PassiveModel(model_dir, threads, box_map)
        self.calibration = calibration or load_calibration()

    def measure(
        self, frames_rgb: Sequence[np.ndarray], faces: Sequence[_FaceLike]
    ) -> tuple[np.ndarray, dict[str, float]]:
        """(passive live probability of each frame, the burst's signals); every face given."""
        bgrs = [np.ascontiguousarray(np.asarray(f)[..., ::-1]) for f in frames_rgb]
        probs = self.passive.probabilities(bgrs, [f.box for f in faces])
        return probs.mean(axis=1), burst_signals(bgrs, faces, probs)

    def signals(
        self, frames_rgb: Sequence[np.ndarray], faces: Sequence[_FaceLike]
    ) -> dict[str, float]:
        return self.measure(frames_rgb, faces)[1]

    def score(self, signals: dict[str, float], n_frames: int) -> tuple[float, float]:
        """(score, threshold) for these signals: passive alone for one frame, else combined."""
        cal = self.calibration
        if n_frames < 2:
            return signals["passive"], cal.threshold_single
        return cal.burst_probability(signals), cal.threshold_burst

    def check(
        self, frames_rgb: Sequence[np.ndarray], faces: Sequence[_FaceLike | None]
    ) -> Liveness:
        if len(frames_rgb) != len(faces):
            raise InvalidInput(
                f"liveness needs one face (or None) per frame: {len(frames_rgb)} frames, "
                f"{len(faces)} faces"
            )
        kept = [(img, f) for img, f in zip(frames_rgb, faces, strict=True) if f is not None]
        if not kept:
            thr = self.calibration.threshold_single
            return Liveness(False, 0.0, thr, "no_face", 0)
        sig = self.signals([k[0] for k in kept], [k[1] for k in kept])
        score, thr = self.score(sig, len(kept))
        live = score >= thr
        return Liveness(live, score, thr, "live" if live else "attack", len(kept), sig)


_shared: dict[tuple[str, int], LivenessChecker] = {}
_shared_lock = threading.Lock()


def shared_checker(model_dir: Path | None = None, threads: int = 1) -> LivenessChecker:
    """One checker per model directory and thread count in a process (models load once)."""
    key = (str(model_dir), int(threads))
    with _shared_lock:
        if key not in _shared:
            _shared[key] = LivenessChecker(model_dir, threads)
        return _shared[key]
