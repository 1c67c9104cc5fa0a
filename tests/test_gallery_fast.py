"""The two-stage (int8 coarse + exact float32) gallery search equals brute force."""

from __future__ import annotations

import threading
from collections.abc import Hashable

import numpy as np
import pytest

from facegate.matching import Gallery
from facegate.matching import gallery as gallery_mod

DIM = 256


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _brute(
    vecs: np.ndarray, subjects: list[Hashable], q: np.ndarray, k: int, allowed=None
) -> list[tuple[Hashable, float]]:
    scores = vecs @ q
    best: dict[Hashable, float] = {}
    for s, sc in zip(subjects, scores.tolist(), strict=True):
        if allowed is not None and s not in allowed:
            continue
        if sc > best.get(s, -np.inf):
            best[s] = sc
    return sorted(best.items(), key=lambda t: -t[1])[:k]


def _check(g: Gallery, vecs, subjects, tids, q, k, allowed=None) -> None:
    """Same scores as brute force, and every hit is its subject's best template."""
    want = _brute(vecs, subjects, q, k, allowed)
    got = g.search(q, k=k, subjects=allowed)
    assert [h.score for h in got] == pytest.approx([s for _, s in want], abs=1e-6, rel=1e-6)
    best = dict(_brute(vecs, subjects, q, len(vecs), allowed))
    row_of = {t: i for i, t in enumerate(tids)}
    for h in got:
        assert h.score == pytest.approx(best[h.subject], abs=1e-6, rel=1e-6)
        assert float(vecs[row_of[h.template_id]] @ q) == pytest.approx(h.score, abs=1e-6, rel=1e-6)
        assert subjects[row_of[h.template_id]] == h.subject
    # Subjects agree wherever the brute-force scores are not tied.
    ws = [s for _, s in want]
    for i, (subj, sc) in enumerate(want):
        alone_below = i + 1 == len(ws) or abs(ws[i + 1] - sc) > 1e-6
        alone_above = i == 0 or abs(ws[i - 1] - sc) > 1e-6
        if alone_below and alone_above:
            assert got[i].subject == subj


def _build(n: int, n_subjects: int, seed: int) -> tuple[Gallery, np.ndarray, list, list]:
    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((n_subjects, DIM)))
    owner = rng.integers(0, n_subjects, size=n)
    # Templates of one subject cluster around its centre, like several enrollment photos.
    vecs = _unit(centres[owner] + 0.6 * rng.standard_normal((n, DIM)) / np.sqrt(DIM))
    subjects = [f"p{o}" for o in owner]
    tids = [f"t{i}" for i in range(n)]
    g = Gallery(DIM, "m", capacity=16)
    for s, t, v in zip(subjects, tids, vecs, strict=True):
        g.add(s, t, v)
    return g, vecs, subjects, tids


@pytest.fixture(scope="module")
def big() -> tuple[Gallery, np.ndarray, list, list]:
    n = gallery_mod.COARSE_MIN_ROWS * 2 + 123
    return _build(n, 1500, seed=7)


def test_equals_brute_force_on_random_probes(big) -> None:
    g, vecs, subjects, tids = big
    rng = np.random.default_rng(1)
    for i in range(25):
        if i % 2:
            q = _unit(vecs[rng.integers(len(vecs))] + 0.3 * rng.standard_normal(DIM) / 16)
        else:
            q = _unit(rng.standard_normal(DIM))
        _check(g, vecs, subjects, tids, q, k=1 + i % 5)


def test_subject_filter_equals_brute_force(big) -> None:
    g, vecs, subjects, tids = big
    rng = np.random.default_rng(2)
    everyone = sorted(set(subjects))
    for size in (1, 3, 40, 700):
        allowed = set(rng.choice(everyone, size=size, replace=False).tolist())
        allowed.add("nobody-enrolled")
        q = _unit(vecs[subjects.index(next(iter(sorted(allowed - {"nobody-enrolled"}))))])
        _check(g, vecs, subjects, tids, q, k=2, allowed=allowed)
        for h in g.search(q, k=5, subjects=allowed):
            assert h.subject in allowed
        compiled = g.subject_filter(allowed)
        _check(g, vecs, subjects, tids, q, k=2, allowed=compiled)
        _check(g, vecs, subjects, tids, q, k=3, allowed=compiled)  # reuses the table
    assert g.search(vecs[0], k=2, subjects={"nobody-enrolled"}) == []
    assert g.search(vecs[0], k=2, subjects=[]) == []


def test_near_ties_below_quantisation_error() -> None:
    """Subjects whose scores differ by far less than the int8 error are still ordered exactly."""
    rng = np.random.default_rng(3)
    n = gallery_mod.COARSE_MIN_ROWS + 500
    q = _unit(rng.standard_normal(DIM))
    vecs = _unit(rng.standard_normal((n, DIM)))
    # 40 rows (10 subjects x 4 templates) at scores 0.6 + j * 1e-5 (+ tiny per-template spread)
    for j in range(40):
        r = rng.standard_normal(DIM)
        r -= (r @ q) * q
        r /= np.linalg.norm(r)
        target = 0.6 + (j // 4) * 1e-5 + (j % 4) * 3e-6
        vecs[j] = target * q + np.sqrt(1 - target**2) * r
    vecs[40] = vecs[39]  # an exact duplicate in another subject: a true tie
    subjects = [f"s{j // 4}" for j in range(40)] + ["twin"] + [f"o{i}" for i in range(n - 41)]
    tids = list(range(n))
    g = Gallery(DIM, "m")
    for s, t, v in zip(subjects, tids, vecs, strict=True):
        g.add(s, t, v)
    for k in (1, 2, 5, 11):
        _check(g, vecs, subjects, tids, q, k)
    top = g.search(q, k=2)
    assert {h.subject for h in top} == {"s9", "twin"}
    assert top[0].score == top[1].score


def test_many_templates_per_subject_and_removal() -> None:
    g, vecs, subjects, tids = _build(gallery_mod.COARSE_MIN_ROWS + 1000, 40, seed=4)
    rng = np.random.default_rng(5)
    keep = np.ones(len(vecs), bool)
    for subj in ("p1", "p2", "p3"):
        g.remove_subject(subj)
        keep &= np.array([s != subj for s in subjects])
    for i in rng.choice(np.flatnonzero(keep), size=3000, replace=False):
        assert g.remove_template(tids[i])
        keep[i] = False
    live = np.flatnonzero(keep)
    lv, ls, lt = vecs[live], [subjects[i] for i in live], [tids[i] for i in live]
    assert len(g) == len(live)
    for i in range(10):
        q = _unit(vecs[rng.integers(len(vecs))] + rng.standard_normal(DIM) / 40)
        _check(g, lv, ls, lt, q, k=1 + i % 4)


def test_vectors_outside_the_quantisation_range_stay_exact() -> None:
    """Non-unit rows are clipped in the int8 copy; the residual bound keeps results exact."""
    rng = np.random.default_rng(6)
    n = gallery_mod.COARSE_MIN_ROWS + 10
    vecs = rng.standard_normal((n, DIM)).astype(np.float32) * 0.05
    vecs[:50] *= 40  # far beyond the clip range
    subjects = [f"s{i % 97}" for i in range(n)]
    g = Gallery(DIM, "m")
    for i, v in enumerate(vecs):
        g.add(subjects[i], i, v)
    for _ in range(5):
        q = rng.standard_normal(DIM).astype(np.float32)
        _check(g, vecs, subjects, list(range(n)), q, k=3)


def test_without_onnxruntime_the_float_search_gives_the_same_result(
    big, monkeypatch: pytest.MonkeyPatch
) -> None:
    g, vecs, subjects, tids = big
    monkeypatch.setattr(gallery_mod, "_session", None)  # as when onnxruntime is absent
    rng = np.random.default_rng(8)
    for _ in range(3):
        _check(g, vecs, subjects, tids, _unit(rng.standard_normal(DIM)), k=2)
    allowed = set(subjects[:50])
    _check(g, vecs, subjects, tids, vecs[3], k=2, allowed=allowed)


def test_concurrent_changes_on_a_large_gallery() -> None:
    g, vecs, subjects, tids = _build(gallery_mod.COARSE_MIN_ROWS + 2000, 300, seed=9)
    errors: list[BaseException] = []
    extra = _unit(np.random.default_rng(10).standard_normal((400, DIM)))

    def writer(part: int) -> None:
        try:
            for i in range(part, 400, 2):
                g.add(f"new{i}", f"n{i}", extra[i])
                if i % 4 == 0:
                    g.remove_template(f"n{i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            for i in range(60):
                hits = g.search(extra[i], k=2)
                assert len(hits) == 2 and hits[0].score >= hits[1].score
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(p,)) for p in range(2)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    kept = [i for i in range(400) if i % 4 != 0]
    all_vecs = np.concatenate([vecs, extra[kept]])
    all_subj = subjects + [f"new{i}" for i in kept]
    all_tids = tids + [f"n{i}" for i in kept]
    assert len(g) == len(all_vecs)
    for i in kept[:5]:
        _check(g, all_vecs, all_subj, all_tids, extra[i], k=2)


@pytest.mark.parametrize("n", [50, gallery_mod.COARSE_MIN_ROWS + 5])
def test_compiled_filter_never_admits_a_subject_that_reused_an_index(n: int) -> None:
    rng = np.random.default_rng(11)
    vecs = _unit(rng.standard_normal((n + 1, DIM)))
    g = Gallery(DIM, "m")
    for i in range(n):
        g.add(f"s{i}", i, vecs[i])
    door = g.subject_filter({"s0", "s1"})
    assert {h.subject for h in g.search(vecs[0], k=5, subjects=door)} == {"s0", "s1"}
    g.remove_subject("s1")
    g.add("intruder", "x", vecs[1])  # takes the subject index s1 gave up
    hits = g.search(vecs[1], k=5, subjects=door)
    assert [h.subject for h in hits] == ["s0"]
    g.add("s1", "back", vecs[n])  # re-enrolled: allowed again
    assert {h.subject for h in g.search(vecs[n], k=5, subjects=door)} == {"s0", "s1"}


def test_add_many_equals_one_by_one() -> None:
    g1, vecs, subjects, tids = _build(gallery_mod.COARSE_MIN_ROWS + 300, 200, seed=12)
    g2 = Gallery(DIM, "m", capacity=4)
    g2.add("p0", "t5", vecs[0])  # replaced by the bulk load below
    g2.add_many(subjects[:100], tids[:100], vecs[:100])
    g2.add_many(subjects[100:], tids[100:], vecs[100:], model_id="m")
    assert len(g2) == len(g1) and g2.subject_count == g1.subject_count
    rng = np.random.default_rng(13)
    for _ in range(5):
        q = _unit(vecs[rng.integers(len(vecs))] + rng.standard_normal(DIM) / 30)
        assert g2.search(q, k=3) == g1.search(q, k=3)
        _check(g2, vecs, subjects, tids, q, k=3)
    with pytest.raises(gallery_mod.ModelMismatch):
        g2.add_many(["a"], ["b"], vecs[:1], model_id="other")
    with pytest.raises(gallery_mod.InvalidInput):
        g2.add_many(["a", "b"], ["x", "x"], vecs[:2])
