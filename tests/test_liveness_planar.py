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
