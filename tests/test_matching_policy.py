"""Decision policy (threshold + margin, ambiguous refusal) and 1:N threshold arithmetic."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facegate.matching import (
    Gallery,
    MatchPolicy,
    PopulationTail,
    SubjectHit,
    decide,
    far_for_gallery,
    identification_threshold,
)


def test_decide_match_no_match_and_ambiguous():
    assert decide([], 0.5, 0.05).outcome == "no_match"
    hits = [SubjectHit("a", 0.80, "t1"), SubjectHit("b", 0.60, "t2")]
    d = decide(hits, 0.5, 0.05)
    assert (d.outcome, d.subject) == ("match", "a")
    d = decide([SubjectHit("a", 0.45, "t1")], 0.5, 0.05)
    assert (d.outcome, d.subject) == ("no_match", None)
    close = [SubjectHit("a", 0.80, "t1"), SubjectHit("b", 0.78, "t2")]
    d = decide(close, 0.5, 0.05)
    assert (d.outcome, d.subject, d.matched) == ("ambiguous", None, False)
    # A runner-up below the threshold but within the margin still makes the probe ambiguous.
    d = decide([SubjectHit("a", 0.52, "t1"), SubjectHit("b", 0.49, "t2")], 0.5, 0.05)
    assert d.outcome == "ambiguous"


def test_ambiguous_refusal_on_real_faces(face_pipeline, shared_data):
    """One person enrolled under two ids: a new photo of them is given to neither."""
    folder = shared_data / "dlib_johns" / "images" / "John_Simm"
    paths = sorted(folder.glob("*.jpg"))[:2]
    enrolled, probe = (face_pipeline.analyze(p)[0].template for p in paths)
    gallery = Gallery(face_pipeline.dim, face_pipeline.model_id)
    gallery.add("id-1", "t-1", enrolled, model_id=enrolled.model_id)
    policy = MatchPolicy(face_pipeline.margin, face_pipeline.threshold_for_gallery)
    alone = policy.identify(gallery, probe)
    assert (alone.outcome, alone.subject) == ("match", "id-1")
    gallery.add("id-2", "t-2", enrolled.copy(), model_id=enrolled.model_id)
    twice = policy.identify(gallery, probe)
    assert face_pipeline.margin > 0
    assert (twice.outcome, twice.subject) == ("ambiguous", None)
    # The same vectors; float32 products of one row or two may round differently.
    assert twice.score == pytest.approx(alone.score, abs=1e-6)
    # Restricted to the people enrolled at one access point, the probe is matched again.
    assert policy.identify(gallery, probe, subjects={"id-2"}).subject == "id-2"


def test_far_for_gallery():
    assert math.isclose(far_for_gallery(1, 1e-3), 1e-3, rel_tol=1e-9)
    assert math.isclose(far_for_gallery(1000, 1e-3), 1e-6, rel_tol=1e-3)
    n = 500
    assert math.isclose(1 - (1 - far_for_gallery(n, 1e-2)) ** n, 1e-2, rel_tol=1e-9)


def test_identification_threshold_uses_table_then_tail():
    rng = np.random.default_rng(0)
    imp = np.sort(rng.normal(0.2, 0.1, 200_000))[::-1]

    def q(far):
        return float(imp[int(far * len(imp))])

    pop = PopulationTail.from_dict(
        {
            "name": "synthetic",
            "n_impostor": len(imp),
            "far_table": [[f, q(f)] for f in (1e-1, 1e-2, 1e-3, 1e-4)],
            "t0": q(1e-3),
            "p0": 1e-3,
            "beta": float((imp[imp > q(1e-3)] - q(1e-3)).mean()),
        }
    )
    assert math.isclose(pop.threshold_at(1e-2), q(1e-2))
    between = pop.threshold_at(3e-3)
    assert q(1e-2) < between < q(1e-3)
    deep = [pop.threshold_at(f) for f in (1e-5, 1e-6, 1e-7)]
    assert deep[0] > q(1e-4) and deep[0] < deep[1] < deep[2]
    # Never below the 1:1 threshold, and the strictest population wins.
    assert identification_threshold(1, [pop], 0.9) == 0.9
    shifted = PopulationTail.from_dict(
        {
            **pop.__dict__,
            "name": "higher",
            "far_table": [[f, t + 0.1] for f, t in pop.far_table],
            "t0": pop.t0 + 0.1,
        }
    )
    assert identification_threshold(100, [pop, shifted], 0.0) == shifted.threshold_at(
        far_for_gallery(100, 1e-3)
    )
