"""Liveness live-2 (issue 14 accuracy): the dense planar check, face flow and face saturation,
on synthetic warps and on real sequences of ``pad_replayattack`` (skips without the data)."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from facegate.vision.liveness import (
    MOVED_CAP,
    dense_planarity,
    face_saturation,
    fine_texture,
    load_calibration,
)

BOX = (100.0, 80.0, 100.0, 120.0)  # x, y, w, h of the "face" in the synthetic frames


def _texture(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    g = cv2.GaussianBlur(rng.uniform(0, 255, (280, 300)).astype(np.float32), (0, 0), 2.0)
    return cv2.normalize(g, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def test_a_plane_fits_a_homography_and_a_bulge_does_not():
    g0 = _texture()
    hom = np.array([[1.02, 0.03, 2.5], [-0.02, 0.99, 1.5], [6e-5, 3e-5, 1.0]])
    plane = cv2.warpPerspective(g0, hom, (g0.shape[1], g0.shape[0]), flags=cv2.INTER_CUBIC)
    # Same overall motion, plus a "nose" moving against the rest of the face (depth parallax).
    yy, xx = np.mgrid[0 : g0.shape[0], 0 : g0.shape[1]].astype(np.float32)
    bump = np.exp(-(((xx - 150) / 22) ** 2 + ((yy - 140) / 28) ** 2)).astype(np.float32)
    inv = np.linalg.inv(hom)
    den = inv[2, 0] * xx + inv[2, 1] * yy + inv[2, 2]
    mx = (inv[0, 0] * xx + inv[0, 1] * yy + inv[0, 2]) / den - 3.0 * bump
    my = (inv[1, 0] * xx + inv[1, 1] * yy + inv[1, 2]) / den
    bulge = cv2.remap(g0, mx.astype(np.float32), my.astype(np.float32), cv2.INTER_CUBIC)
    res_plane, flow_plane = dense_planarity([g0, plane, plane], [BOX] * 3)
    res_bulge, _ = dense_planarity([g0, bulge, bulge], [BOX] * 3)
    assert flow_plane > 1.0  # it moved (percent of the face width)
    assert res_plane < 0.5 * res_bulge
    still_res, still_flow = dense_planarity([g0, g0], [BOX] * 2)
    assert still_flow < 0.05 and still_res < 0.05  # nothing moved: neither moves
    assert dense_planarity([np.zeros_like(g0)] * 2, [BOX] * 2) == (0.0, 0.0)  # no corners


def test_a_large_move_is_tracked_from_the_detector_s_box():
    """A head that turns or steps between frames (what a challenge asks for) moves the face
    far beyond the optical flow pyramid's reach: the face box the detector found in each frame
    starts the tracks, so the move is measured instead of every track being lost (which reads
    as "did not move" and refuses a live face, or leaves wrong tracks behind)."""
    g0 = _texture()
    dx, dy = 40.0, -12.0  # 40% of the face width in one step
    moved = cv2.warpAffine(g0, np.float32([[1, 0, dx], [0, 1, dy]]), (g0.shape[1], g0.shape[0]))
    box1 = (BOX[0] + dx, BOX[1] + dy, BOX[2], BOX[3])
    res, flow = dense_planarity([g0, moved], [BOX, box1])
    assert abs(flow - np.hypot(dx, dy)) < 1.0  # percent of the 100 px face width
    assert res < 0.2  # and a plane that moved is still a plane
    # The same frames without the box's shift: the few tracks that survive are wrong, the
    # move is mis-measured and the plane looks bent (a fast-moved print would gain from it).
    res_lost, flow_lost = dense_planarity([g0, moved], [BOX, BOX])
    assert abs(flow_lost - np.hypot(dx, dy)) > 5.0 and res_lost > 1.0


def test_a_plane_brought_closer_is_still_a_plane():
    """A print moved toward the camera between frames (or a person walking to a gate) scales
    every patch; Lucas-Kanade follows patches by translation only and would read a 20% scaling
    as a bend (0.3% of the face width, more than a live face's median). The later frame is
    first brought to the first one's scale by the detector's box: the plane stays a plane and
    the motion is measured in the scene."""
    g0 = _texture()
    x, y, w, h = BOX
    cx, cy = x + w / 2, y + h / 2
    zoom, dx = 1.2, 10.0
    m = np.float32([[zoom, 0, cx - zoom * cx + dx], [0, zoom, cy - zoom * cy]])
    closer = cv2.warpAffine(g0, m, (g0.shape[1], g0.shape[0]))
    box1 = (cx + dx - zoom * w / 2, cy - zoom * h / 2, zoom * w, zoom * h)
    res, flow = dense_planarity([g0, closer], [BOX, box1])
    assert res < 0.05
    assert 8.0 < flow < 14.0  # the shift plus the corners' spread from the centre


def test_saturation_of_grey_is_zero_and_of_colour_is_not():
    grey = np.full((240, 320, 3), 128, np.uint8)
    skin = grey.copy()
    skin[...] = (90, 130, 200)  # BGR
    assert face_saturation([grey], [BOX]) == 0.0
    assert face_saturation([skin, skin], [BOX] * 2) > 0.4


def test_fine_texture_drops_when_the_face_is_re_captured_blurred():
    bgr = cv2.cvtColor(_texture(1), cv2.COLOR_GRAY2BGR)
    blurred = cv2.GaussianBlur(bgr, (0, 0), 1.5)  # a screen re-captured: fine detail lost
    assert fine_texture([bgr], [BOX]) > fine_texture([blurred], [BOX]) + 1.0
    assert fine_texture([bgr], [(0.0, 0.0, 3.0, 3.0)]) == 0.0  # no face area: no value


def test_shipped_rule_uses_the_new_signals_with_their_physical_sign():
    cal = load_calibration()
    assert cal.version == "live-2"
    for f in ("planar_residual", "face_moved", "saturation", "fine_texture"):
        assert f in cal.features
    assert all(c > 0 for c in cal.coef)  # more of every signal = more likely live


@pytest.fixture(scope="module")
def replay_videos(shared_data):
    root = shared_data / "pad_replayattack"
    vids: dict[str, list] = {}
    with (root / "manifest.csv").open(newline="") as fh:
        for r in csv.DictReader(fh):
            v = vids.setdefault(r["video_id"], [r["identity"], r["pa_class"], r["support"], []])
            v[3].append((int(r["frame"]), root / r["path"]))
    return {k: (a, b, c, [p for _, p in sorted(f)]) for k, (a, b, c, f) in vids.items()}


def test_real_sequences_prints_are_flatter_stiller_and_paler(face_pipeline, replay_videos):
    """Five clients of pad_replayattack, 5-frame bursts: the dense planar residual of live
    bursts is above that of hand-held prints, their face flow above that of prints on a stand,
    their face saturation above that of prints, their fine texture above that of phone replays
    (medians: single videos vary)."""
    clients = sorted({v[0] for v in replay_videos.values()})[:5]
    sig: dict[str, list[dict]] = {"live": [], "hand": [], "fixed": [], "phone": []}
    for _vid, (ident, pa, support, frames) in sorted(replay_videos.items()):
        if ident in clients and pa in ("live", "print", "replay_phone"):
            r = face_pipeline.liveness(frames)
            assert r.frames >= 4
            sig["live" if pa == "live" else "phone" if pa == "replay_phone" else support].append(
                r.signals
            )

    def med(group: str, key: str) -> float:
        return float(np.median([s[key] for s in sig[group]]))

    assert med("live", "planar_residual") > med("hand", "planar_residual")
    assert med("live", "face_flow") > 3 * med("fixed", "face_flow")
    # Every live face moved at least the cap; a print on a stand by the tracking noise.
    assert all(s["face_moved"] == pytest.approx(MOVED_CAP) for s in sig["live"])
    assert med("fixed", "face_moved") < 0.5 * MOVED_CAP
    prints = sig["hand"] + sig["fixed"]
    assert med("live", "saturation") > float(np.median([s["saturation"] for s in prints]))
    assert med("live", "fine_texture") > med("phone", "fine_texture")  # screens lose detail


# A live person in pad_nuaa who turns his head to his left between two frames (yaw proxy
# -0.17 -> +0.06 inter-eye distances: about 13 degrees; frames 122, 378, 400 of one take).
NUAA_TURN = ("live/0012/0012_01_07_03_{}.jpg", (122, 378, 400))


def test_a_real_head_turn_is_live_and_answers_turn_left(face_pipeline, shared_data):
    """The move a challenge asks for must not make a live face look like an attack: before
    the box-started tracks, every corner of this real turn was lost, the face read as "did not
    move" and the burst scored 0.01. The same frames answer "turn left", not the others."""
    from facegate.access.challenge import movement_done

    pattern, numbers = NUAA_TURN
    frames = []
    for n in numbers:  # as a kiosk sends them: through the camera's 4:2:0, then JPEG 90
        bgr = cv2.imread(str(shared_data / "pad_nuaa" / pattern.format(n)), cv2.IMREAD_COLOR)
        i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
        ok, buf = cv2.imencode(
            ".jpg", cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420), [cv2.IMWRITE_JPEG_QUALITY, 90]
        )
        frames.append(buf.tobytes())
    r = face_pipeline.liveness(frames)
    assert r.frames == 3 and r.signals["face_moved"] == pytest.approx(MOVED_CAP)
    assert r.live, r
    faces = [
        max(face_pipeline.detector.detect(face_pipeline.decode(f)), key=lambda f: f.box[2])
        for f in frames
    ]
    assert movement_done("turn_left", faces)
    assert not movement_done("turn_right", faces) and not movement_done("nod", faces)
