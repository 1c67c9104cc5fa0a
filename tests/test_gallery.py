import threading

import numpy as np
import pytest

from facegate.errors import InvalidInput, ModelMismatch
from facegate.matching import Gallery


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_search_returns_best_template_per_subject() -> None:
    rng = np.random.default_rng(0)
    vecs = _unit(rng, 30, 16)
    g = Gallery(16, "m1", capacity=4)
    for i, v in enumerate(vecs):
        g.add(subject=f"s{i // 3}", template_id=i, vector=v)
    assert len(g) == 30 and g.subject_count == 10
    hits = g.search(vecs[7], k=2)
    assert hits[0].subject == "s2" and hits[0].template_id == 7
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[1].subject != "s2"
    brute = vecs @ vecs[7]
    others = [float(max(brute[j * 3 : j * 3 + 3])) for j in range(10) if j != 2]
    assert hits[1].score == pytest.approx(max(others), abs=1e-5)


def test_remove_and_filter() -> None:
    rng = np.random.default_rng(1)
    vecs = _unit(rng, 10, 8)
    g = Gallery(8, "m1")
    for i, v in enumerate(vecs):
        g.add(f"s{i}", i, v)
    assert g.remove_subject("s3") == 1
    assert g.remove_template(5) and not g.remove_template(5)
    assert all(h.subject not in {"s3", "s5"} for h in g.search(vecs[3], k=8))
    hits = g.search(vecs[0], k=2, subjects={"s1", "s2"})
    assert {h.subject for h in hits} <= {"s1", "s2"}
    assert g.search(vecs[0], k=2, subjects=set()) == []


def test_refuses_other_model_and_bad_vectors() -> None:
    g = Gallery(4, "m1")
    with pytest.raises(ModelMismatch):
        g.add("a", 1, np.ones(4), model_id="m2")
    with pytest.raises(InvalidInput):
        g.add("a", 1, np.ones(5))
    with pytest.raises(InvalidInput):
        g.add("a", 1, np.array([1, np.nan, 0, 0]))


def test_concurrent_add_remove_search() -> None:
    rng = np.random.default_rng(2)
    vecs = _unit(rng, 2000, 32)
    g = Gallery(32, "m1", capacity=8)
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        try:
            for i in range(offset, 2000, 4):
                g.add(f"s{i}", i, vecs[i])
                if i % 3 == 0:
                    g.remove_template(i)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            for i in range(300):
                for h in g.search(vecs[i], k=2):
                    assert h.score <= 1.0001
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(o,)) for o in range(4)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    expected = {i for i in range(2000) if i % 3 != 0}
    assert len(g) == len(expected)
    for i in list(expected)[:50]:
        assert g.search(vecs[i], k=1)[0].template_id == i
