"""FacePipeline on real images: API shape, known pairs, quality reasons, model isolation."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from facegate.errors import ModelMismatch
from facegate.matching import Gallery
from facegate.vision import REASONS, FacePipeline, Template
from facegate.vision.decode import decode


def _pairs(path, n_same, n_diff, only_quick=False):
    with path.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if not only_quick or r.get("quick") == "1"]
    same = [r for r in rows if r["same"] == "1"][:n_same]
    diff = [r for r in rows if r["same"] == "0"][:n_diff]
    return same + diff


def test_analyze_returns_faces_largest_first_with_templates(face_pipeline, shared_data):
    faces = face_pipeline.analyze(
        shared_data / "detection" / "images" / "face_recognition" / "obama_and_biden.jpg",
        profile="enroll",
    )
    assert len(faces) == 3
    areas = [f.box[2] * f.box[3] for f in faces]
    assert areas == sorted(areas, reverse=True)
    for f in faces:
        assert all(isinstance(v, int) for v in f.box)
        assert f.landmarks.shape == (5, 2)
        assert f.template is None  # several faces: refused for enrollment
        assert "multiple_faces" in f.quality.reasons


def test_template_is_unit_float32_and_similarity_is_dot(face_pipeline, shared_data):
    img = shared_data / "lfw_dev" / "images" / "Colin_Powell" / "Colin_Powell_0001.jpg"
    (face,) = face_pipeline.analyze(img)
    t = face.template
    assert isinstance(t, np.ndarray) and t.ndim == 1 and t.dtype == np.float32
    assert t.shape == (face_pipeline.dim,)
    assert abs(float(np.linalg.norm(t)) - 1.0) < 1e-4
    assert t.model_id == face_pipeline.model_id
    other = face_pipeline.analyze(
        shared_data / "lfw_dev" / "images" / "Colin_Powell" / "Colin_Powell_0002.jpg"
    )[0].template
    assert face_pipeline.similarity(t, other) == float(t @ other)
    assert face_pipeline.model_id.startswith("yunet-2023mar-int8+sface-2021dec-int8*")
    assert "dlib-resnet-v1*" in face_pipeline.model_id


def test_known_pairs_are_decided_correctly(face_pipeline, shared_data):
    pairs = [
        (shared_data / "lfw_dev", r)
        for r in _pairs(shared_data / "lfw_dev" / "pairs_generated_seed42.csv", 5, 5, True)
    ] + [
        (shared_data / "asian_dev", r)
        for r in _pairs(shared_data / "asian_dev" / "pairs_seed42.csv", 5, 5)
    ]
    gen, imp = [], []
    for root, r in pairs:
        v = face_pipeline.verify(root / r["path_a"], root / r["path_b"])
        assert v.threshold == face_pipeline.threshold
        if v.score is None:  # no usable face (quality refusal): not a decision
            assert v.reason.startswith(("no_face", "low_quality:")) and not v.match
            continue
        (gen if r["same"] == "1" else imp).append(v.score)
    assert len(gen) + len(imp) >= 0.8 * len(pairs)
    gen_a, imp_a = np.array(gen), np.array(imp)
    thr = face_pipeline.threshold
    # The threshold is set for a 1e-3 false-accept rate: no impostor pair here may pass.
    assert (imp_a < thr).all()
    # Its dev true-accept rate is about 89% (asian_dev) to 98% (lfw_dev): most same pairs pass.
    assert (gen_a >= thr).mean() >= 0.7
    assert gen_a.mean() > imp_a.mean()


def test_batch_embedding_matches_single(face_pipeline, shared_data):
    paths = sorted((shared_data / "dlib_johns" / "images" / "John_Simm").glob("*.jpg"))[:3]
    batch = face_pipeline.analyze_many(paths)
    for p, faces in zip(paths, batch, strict=True):
        single = face_pipeline.analyze(p)
        assert np.allclose(single[0].template, faces[0].template, atol=1e-4)


def test_verify_reports_missing_face(face_pipeline, shared_data):
    eagle = shared_data / "detection" / "images" / "dlib" / "eagle.jpg"
    face = shared_data / "lfw_dev" / "images" / "Colin_Powell" / "Colin_Powell_0001.jpg"
    v = face_pipeline.verify(face, eagle)
    assert (v.match, v.reason, v.image, v.score) == (False, "no_face", "b", None)


def test_templates_of_different_models_are_never_compared(face_pipeline, shared_data):
    img = shared_data / "lfw_dev" / "images" / "Colin_Powell" / "Colin_Powell_0001.jpg"
    sface_only = FacePipeline(embedders=("sface",))
    assert sface_only.model_id != face_pipeline.model_id
    t_fused = face_pipeline.analyze(img)[0].template
    t_sface = sface_only.analyze(img)[0].template
    with pytest.raises(ModelMismatch):
        face_pipeline.similarity(t_fused, t_sface)
    with pytest.raises(ModelMismatch):
        sface_only.similarity(t_sface, t_fused)
    # Same shape but another model_id (e.g. other fusion weights or calibration): refused too.
    relabelled = Template(np.asarray(t_fused), "yunet+other-model/cal-9")
    with pytest.raises(ModelMismatch):
        face_pipeline.similarity(t_fused, relabelled)
    gallery = Gallery(face_pipeline.dim, face_pipeline.model_id)
    with pytest.raises(ModelMismatch):
        gallery.add("s", "t", relabelled, model_id=relabelled.model_id)


def test_thresholds_one_to_n_grow_with_gallery(face_pipeline):
    t1 = face_pipeline.threshold
    ts = [face_pipeline.threshold_for_gallery(n) for n in (1, 10, 100, 1000, 10_000, 100_000)]
    assert ts[0] >= t1
    assert all(b >= a for a, b in zip(ts, ts[1:], strict=False))
    assert ts[-1] > t1


# -- quality reasons on real images -----------------------------------------------------------


def _reasons(pipe, image, profile="gate"):
    faces = pipe.analyze(image, profile=profile)
    return faces[0].quality.reasons if faces else ("no_face",)


def test_reason_no_face(face_pipeline, shared_data):
    for name in ("eagle.jpg", "giraffe.jpg", "horses.jpg"):
        assert face_pipeline.analyze(shared_data / "detection" / "images" / "dlib" / name) == []


def test_reason_multiple_faces(face_pipeline, shared_data):
    img = shared_data / "detection" / "images" / "face_recognition" / "two_people.jpg"
    assert "multiple_faces" in _reasons(face_pipeline, img, "enroll")
    # A gate decides on "the" face and is not refused because someone else is in view.
    assert "multiple_faces" not in _reasons(face_pipeline, img, "gate")


def test_the_face_of_equally_large_faces_is_the_most_central(face_pipeline, shared_data):
    """LFW labels the centred face; a detector's box sizes of equal faces differ by jitter."""
    lfw = shared_data / "lfw_dev" / "images"
    for image, other in [
        ("Chen_Shui-bian/Chen_Shui-bian_0005.jpg", "Chen_Shui-bian/Chen_Shui-bian_0001.jpg"),
        (
            "Charles_Grassley/Charles_Grassley_0001.jpg",
            "Charles_Grassley/Charles_Grassley_0002.jpg",
        ),
    ]:
        faces = face_pipeline.analyze(lfw / image)
        assert len(faces) >= 2 and faces[1].box[3] >= 0.9 * faces[0].box[3]  # nearly a tie
        centre = [
            abs(f.box[0] + f.box[2] / 2 - 125) + abs(f.box[1] + f.box[3] / 2 - 125) for f in faces
        ]
        assert centre[0] == min(centre)
        v = face_pipeline.verify(lfw / image, lfw / other)
        assert v.match, (image, v)


def test_order_faces_moves_the_central_one_of_a_tie_first():
    from facegate.vision.detect import Detection, order_faces

    def det(x, y, w, h):
        return Detection((x, y, w, h), np.zeros((5, 2), np.float32), 0.9)

    left, centre, small = det(0, 100, 100, 100), det(270, 190, 97, 97), det(300, 0, 60, 60)
    assert order_faces([small, left, centre], 640, 480) == [centre, left, small]
    big = det(0, 100, 120, 120)  # clearly larger: the largest stays first, wherever it is
    assert order_faces([centre, big, small], 640, 480) == [big, centre, small]
    assert order_faces([], 640, 480) == []


def test_reason_face_too_small(face_pipeline, shared_data):
    voc = shared_data / "detection" / "images" / "dlib_voc" / "2008_004176.jpg"
    faces = face_pipeline.analyze(voc)
    assert faces and all("face_too_small" in f.quality.reasons for f in faces)
    small = shared_data / "detection" / "images" / "face_recognition" / "obama-240p.jpg"
    assert "face_too_small" in _reasons(face_pipeline, small, "enroll")
    assert "face_too_small" not in _reasons(face_pipeline, small, "gate")


def test_reason_partial_face(face_pipeline, shared_data):
    img = shared_data / "detection" / "images" / "face_recognition" / "obama_partial_face.jpg"
    assert "partial_face" in _reasons(face_pipeline, img, "enroll")
    rgb = decode(shared_data / "detection" / "images" / "face_recognition" / "obama.jpg")
    face = face_pipeline.analyze(rgb)[0]
    x, _, w, _ = face.box
    cut = np.ascontiguousarray(rgb[:, x + w // 2 :])  # only the right half of the face remains
    assert "partial_face" in _reasons(face_pipeline, cut, "gate")


def test_reason_off_angle(face_pipeline, shared_data):
    img = shared_data / "asian_dev" / "images" / "kim-soo-hyun" / "kim-soo-hyun-7.jpg"
    assert "off_angle" in _reasons(face_pipeline, img, "enroll")
    assert "off_angle" not in _reasons(face_pipeline, img, "gate")  # still recognisable


def test_reason_too_dark_real(face_pipeline, shared_data):
    """Yale's side-lit photo: dark for an enrollment, still usable at a gate."""
    img = shared_data / "yalefaces" / "images" / "subject07" / "subject07.rightlight.gif"
    assert "too_dark" in _reasons(face_pipeline, img, "enroll")
    assert "too_dark" not in _reasons(face_pipeline, img, "gate")


def test_reasons_light_and_blur(face_pipeline, shared_data):
    rgb = decode(shared_data / "lfw_dev" / "images" / "Colin_Powell" / "Colin_Powell_0001.jpg")
    assert _reasons(face_pipeline, rgb, "gate") == ()
    dark = (rgb.astype(np.float32) * 0.15).astype(np.uint8)
    bright = (255 - (255 - rgb.astype(np.float32)) * 0.2).astype(np.uint8)
    blurred = cv2.GaussianBlur(rgb, (0, 0), 3)
    assert "too_dark" in _reasons(face_pipeline, dark)
    assert "too_bright" in _reasons(face_pipeline, bright)
    assert "too_blurry" in _reasons(face_pipeline, blurred)


def test_every_reason_is_known():
    assert set(REASONS) == {
        "no_face",
        "multiple_faces",
        "face_too_small",
        "too_blurry",
        "too_dark",
        "too_bright",
        "off_angle",
        "partial_face",
    }
