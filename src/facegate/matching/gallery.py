"""A thread-safe in-memory gallery of templates, searched with one matrix product.

Large galleries are searched in two stages whose result is exactly the brute-force result:

1. a coarse pass over an int8 copy of every row (one fixed quantisation step for all rows,
   so the int32 dot products are on one scale), computed by onnxruntime's ``MatMulInteger``
   on one thread. It reads a quarter of the float32 bytes, which is what bounds a search of a
   large gallery on one core;
2. an exact float32 re-rank of the candidate rows.

Why no result is lost: each row stores its quantisation residual ``||x - x~||``; by
Cauchy-Schwarz ``|q.x - q~.x~| <= ||x - x~|| ||q|| + ||q - q~|| ||x~||``, so the coarse score
is never further than a known ``delta`` from the exact one. The exact scores of the best
coarse rows give ``tau``, a lower bound on the k-th best subject's score; every row that
could reach ``tau`` has a coarse score of at least ``tau - delta`` and is re-ranked exactly.
So the subjects, templates and scores returned are those of a brute-force search.

Without onnxruntime, or below ``COARSE_MIN_ROWS`` rows, the search is one float32 product.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Collection, Hashable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from facegate.errors import InvalidInput, ModelMismatch

# Below this many rows one float32 product is as fast as the two-stage search.
COARSE_MIN_ROWS = 4096
# The int8 copy is stored transposed, [dim, capacity], and passed whole to onnxruntime
# (a column slice would not be contiguous and would be copied on every search). It grows by
# half when full; columns past the live rows are computed and ignored, and pages never
# written there are the kernel's shared zero page, cheap to read.
CODES_MIN_CAPACITY = 4096
CODES_GROWTH = 1.5
# Coarse scores of rows outside a subject filter are pushed below every real score
# (real int32 dot products are within +-256*127*127 per 256 dims, far from these).
_PENALTY = -(2**30)
_FLOOR = -(2**29)


@dataclass(frozen=True)
class SubjectHit:
    """The best score of one subject for a probe."""

    subject: Hashable
    score: float
    template_id: Hashable


class SubjectFilter:
    """A subject restriction compiled for one gallery (see ``Gallery.subject_filter``).

    Building the lookup table costs one dictionary lookup per subject, so a gate compiles
    its access point's list once and passes the filter to every search. The table is
    rebuilt automatically when the gallery's set of subjects changed since (subject indices
    are reused after a subject leaves, so a stale table could admit the wrong person).
    """

    def __init__(self, subjects: Collection[Hashable]) -> None:
        self.subjects = frozenset(subjects)
        self._table: np.ndarray | None = None
        self._key: tuple[int, int] | None = None

    def __contains__(self, subject: object) -> bool:
        return subject in self.subjects

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self.subjects)

    def __len__(self) -> int:
        return len(self.subjects)


def _int8_session() -> Any:
    """One-thread onnxruntime session computing uint8 probe x int8 blocks -> int32 dots."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return None
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["probe", "codes"], ["dots"])],
        "gallery_coarse",
        [
            helper.make_tensor_value_info("probe", TensorProto.UINT8, [1, "D"]),
            helper.make_tensor_value_info("codes", TensorProto.INT8, ["D", "N"]),
        ],
        [helper.make_tensor_value_info("dots", TensorProto.INT32, [1, "N"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


_session_lock = threading.Lock()
_session: Any = False  # False: not tried yet; None: onnxruntime unavailable


def _coarse_session() -> Any:
    global _session
    with _session_lock:
        if _session is False:
            _session = _int8_session()
        return _session


class Gallery:
    """Templates keyed by an opaque subject id; several templates per subject.

    Rows live in one preallocated float32 matrix (and an int8 copy). Removal moves the last
    row into the hole, so add and remove are O(1) amortised and the live rows are always
    ``[:size]``. Each row also carries an integer subject index, so a subject filter is one
    table lookup per row.
    """

    def __init__(self, dim: int, model_id: str, capacity: int = 1024) -> None:
        if dim <= 0:
            raise InvalidInput("gallery dimension must be positive")
        self.dim = dim
        self.model_id = model_id
        self._lock = threading.RLock()
        cap = max(capacity, 1)
        self._vecs = np.zeros((cap, dim), dtype=np.float32)
        self._row_sidx = np.zeros(cap, dtype=np.intp)  # subject index of each row
        self._resid = np.zeros(cap, dtype=np.float64)  # ||x - step * code||
        self._code_norm = np.zeros(cap, dtype=np.float64)  # ||step * code||
        self._offset = np.zeros(cap, dtype=np.int32)  # 128 * sum(code), see _coarse
        self._codes_t = np.zeros((dim, CODES_MIN_CAPACITY), dtype=np.int8)
        # Unit templates have components far below 6/sqrt(dim); larger ones are clipped and
        # the clipping error is part of the stored residual, so the bound stays exact.
        self._step = 6.0 / math.sqrt(dim) / 127.0
        self._max_resid = 0.0  # upper bounds; they never decrease, which keeps them safe
        self._max_code_norm = 0.0
        self._row_template: list[Hashable] = []
        self._row_subject: list[Hashable] = []
        self._row_of: dict[Hashable, int] = {}
        self._templates_of: dict[Hashable, set[Hashable]] = {}
        self._sidx_of: dict[Hashable, int] = {}
        self._free_sidx: list[int] = []
        self._n_sidx = 0
        self._sidx_version = 0  # bumped whenever a subject gets or gives up an index

    # -- size -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._row_template)

    @property
    def subject_count(self) -> int:
        return len(self._templates_of)

    def __contains__(self, template_id: Hashable) -> bool:
        return template_id in self._row_of

    def subjects(self) -> list[Hashable]:
        with self._lock:
            return list(self._templates_of)

    # -- changes ----------------------------------------------------------------------------

    def add(
        self,
        subject: Hashable,
        template_id: Hashable,
        vector: np.ndarray,
        model_id: str | None = None,
    ) -> None:
        """Add (or replace) one template. A template of another model is refused."""
        if model_id is not None and model_id != self.model_id:
            raise ModelMismatch(
                f"template made by {model_id!r} cannot join a gallery of {self.model_id!r}"
            )
        vec = np.asarray(vector, dtype=np.float32).reshape(-1)
        if vec.shape[0] != self.dim:
            raise InvalidInput(f"template has {vec.shape[0]} values, gallery expects {self.dim}")
        if not np.all(np.isfinite(vec)):
            raise InvalidInput("template contains non-finite values")
        code = np.clip(np.rint(vec / self._step), -127, 127).astype(np.int8)
        approx = code.astype(np.float64) * self._step
        # Bounds are rounded up a little so float rounding can never make them too small.
        resid = float(np.linalg.norm(vec.astype(np.float64) - approx)) * (1 + 1e-9) + 1e-12
        code_norm = float(np.linalg.norm(approx)) * (1 + 1e-9)
        with self._lock:
            if template_id in self._row_of:
                self._remove_row(self._row_of[template_id])
            n = len(self._row_template)
            if n == self._vecs.shape[0]:
                self._grow_rows(2 * n)
            if n == self._codes_t.shape[1]:
                grown = np.zeros((self.dim, int(n * CODES_GROWTH)), dtype=np.int8)
                grown[:, :n] = self._codes_t
                self._codes_t = grown
            self._vecs[n] = vec
            self._codes_t[:, n] = code
            self._offset[n] = 128 * int(code.astype(np.int32).sum())
            self._resid[n] = resid
            self._code_norm[n] = code_norm
            self._max_resid = max(self._max_resid, resid)
            self._max_code_norm = max(self._max_code_norm, code_norm)
            self._row_sidx[n] = self._subject_index(subject)
            self._row_template.append(template_id)
            self._row_subject.append(subject)
            self._row_of[template_id] = n
            self._templates_of.setdefault(subject, set()).add(template_id)

    def add_many(
        self,
        subjects: list[Hashable],
        template_ids: list[Hashable],
        vectors: np.ndarray,
        model_id: str | None = None,
    ) -> None:
        """Add many templates at once (e.g. loading a gate's gallery); same rules as ``add``."""
        if model_id is not None and model_id != self.model_id:
            raise ModelMismatch(
                f"templates made by {model_id!r} cannot join a gallery of {self.model_id!r}"
            )
        vecs = np.asarray(vectors, dtype=np.float32).reshape(len(template_ids), -1)
        if vecs.shape[1] != self.dim or len(subjects) != len(template_ids):
            raise InvalidInput(f"expected {len(template_ids)} templates of {self.dim} values")
        if not np.all(np.isfinite(vecs)):
            raise InvalidInput("a template contains non-finite values")
        if len(set(template_ids)) != len(template_ids):
            raise InvalidInput("template ids must be unique")
        codes = np.clip(np.rint(vecs / self._step), -127, 127).astype(np.int8)
        approx = codes.astype(np.float64) * self._step
        resid = np.linalg.norm(vecs.astype(np.float64) - approx, axis=1) * (1 + 1e-9) + 1e-12
        code_norm = np.linalg.norm(approx, axis=1) * (1 + 1e-9)
        offset = 128 * codes.astype(np.int32).sum(axis=1)
        with self._lock:
            for tid in template_ids:
                if tid in self._row_of:
                    self._remove_row(self._row_of[tid])
            n, m = len(self._row_template), len(template_ids)
            if n + m > self._vecs.shape[0]:
                self._grow_rows(max(2 * self._vecs.shape[0], n + m))
            if n + m > self._codes_t.shape[1]:
                grown = np.zeros((self.dim, max(int(n * CODES_GROWTH), n + m)), dtype=np.int8)
                grown[:, :n] = self._codes_t[:, :n]
                self._codes_t = grown
            self._vecs[n : n + m] = vecs
            self._codes_t[:, n : n + m] = codes.T
            self._resid[n : n + m] = resid
            self._code_norm[n : n + m] = code_norm
            self._offset[n : n + m] = offset
            if m:
                self._max_resid = max(self._max_resid, float(resid.max()))
                self._max_code_norm = max(self._max_code_norm, float(code_norm.max()))
            for i, (subject, tid) in enumerate(zip(subjects, template_ids, strict=True)):
                self._row_sidx[n + i] = self._subject_index(subject)
                self._row_of[tid] = n + i
                self._templates_of.setdefault(subject, set()).add(tid)
            self._row_template.extend(template_ids)
            self._row_subject.extend(subjects)

    def _grow_rows(self, cap: int) -> None:
        n = len(self._row_template)
        for name in ("_vecs", "_row_sidx", "_resid", "_code_norm", "_offset"):
            old = getattr(self, name)
            new = np.zeros((cap, *old.shape[1:]), dtype=old.dtype)
            new[:n] = old[:n]
            setattr(self, name, new)

    def _subject_index(self, subject: Hashable) -> int:
        idx = self._sidx_of.get(subject)
        if idx is None:
            if self._free_sidx:
                idx = self._free_sidx.pop()
            else:
                idx = self._n_sidx
                self._n_sidx += 1
            self._sidx_of[subject] = idx
            self._sidx_version += 1
        return idx

    def remove_template(self, template_id: Hashable) -> bool:
        with self._lock:
            row = self._row_of.get(template_id)
            if row is None:
                return False
            self._remove_row(row)
            return True

    def remove_subject(self, subject: Hashable) -> int:
        """Remove every template of a subject; returns how many were removed."""
        with self._lock:
            ids = list(self._templates_of.get(subject, ()))
            for tid in ids:
                self._remove_row(self._row_of[tid])
            return len(ids)

    def clear(self) -> None:
        with self._lock:
            self._row_template.clear()
            self._row_subject.clear()
            self._row_of.clear()
            self._templates_of.clear()
            self._sidx_of.clear()
            self._free_sidx.clear()
            self._n_sidx = 0
            self._sidx_version += 1
            self._max_resid = 0.0
            self._max_code_norm = 0.0

    def _remove_row(self, row: int) -> None:
        last = len(self._row_template) - 1
        tid = self._row_template[row]
        subject = self._row_subject[row]
        if row != last:
            self._vecs[row] = self._vecs[last]
            self._codes_t[:, row] = self._codes_t[:, last]
            for arr in (self._row_sidx, self._resid, self._code_norm, self._offset):
                arr[row] = arr[last]
            moved = self._row_template[last]
            self._row_template[row] = moved
            self._row_subject[row] = self._row_subject[last]
            self._row_of[moved] = row
        self._row_template.pop()
        self._row_subject.pop()
        del self._row_of[tid]
        remaining = self._templates_of[subject]
        remaining.discard(tid)
        if not remaining:
            del self._templates_of[subject]
            self._free_sidx.append(self._sidx_of.pop(subject))
            self._sidx_version += 1

    # -- search -----------------------------------------------------------------------------

    def search(
        self,
        probe: np.ndarray,
        k: int = 2,
        subjects: Collection[Hashable] | SubjectFilter | None = None,
    ) -> list[SubjectHit]:
        """Best ``k`` subjects for a probe, best first, each with its best template's score.

        ``subjects`` restricts the search (e.g. to the people enrolled at one access point);
        pass a ``subject_filter(...)`` to skip rebuilding the lookup on every search.
        Scores are the exact float32 dot products a brute-force search gives.
        """
        q = np.asarray(probe, dtype=np.float32).reshape(-1)
        if q.shape[0] != self.dim:
            raise InvalidInput(f"probe has {q.shape[0]} values, gallery expects {self.dim}")
        if not np.all(np.isfinite(q)):
            raise InvalidInput("probe contains non-finite values")
        with self._lock:
            n = len(self._row_template)
            if n == 0 or k <= 0:
                return []
            allowed = self._allowed_table(subjects)
            if allowed is not None and not allowed.any():
                return []
            session = _coarse_session() if n >= COARSE_MIN_ROWS else None
            if session is None:
                scores = self._vecs[:n] @ q
                if allowed is None:
                    return self._best_subjects(np.arange(n), scores, k)
                rows = np.flatnonzero(allowed[self._row_sidx[:n]])
                return self._best_subjects(rows, scores[rows], k)
            return self._two_stage(session, q, k, allowed, n)

    def subject_filter(self, subjects: Collection[Hashable]) -> SubjectFilter:
        """Compile a subject restriction once for many searches (e.g. one access point)."""
        return SubjectFilter(subjects)

    def _allowed_table(
        self, subjects: Collection[Hashable] | SubjectFilter | None
    ) -> np.ndarray | None:
        """Boolean table over subject indices, or None for no filter."""
        if subjects is None:
            return None
        key = (id(self), self._sidx_version)
        if isinstance(subjects, SubjectFilter) and subjects._key == key:
            return subjects._table
        table = np.zeros(max(self._n_sidx, 1), dtype=bool)
        wanted = subjects.subjects if isinstance(subjects, SubjectFilter) else set(subjects)
        table[[self._sidx_of[s] for s in wanted if s in self._sidx_of]] = True
        if isinstance(subjects, SubjectFilter):
            subjects._table, subjects._key = table, key
        return table

    def _two_stage(
        self, session: Any, q: np.ndarray, k: int, allowed: np.ndarray | None, n: int
    ) -> list[SubjectHit]:
        # Quantise the probe with its own step; uint8 = code + 128 (onnxruntime's fast
        # kernel is uint8 x int8), and the +128 is taken out with the stored 128*sum(code).
        q64 = q.astype(np.float64)
        qmax = float(np.max(np.abs(q64)))
        q_step = qmax / 127.0 if qmax > 0 else 1.0
        q_code = np.clip(np.rint(q64 / q_step), -127, 127)
        q_resid = float(np.linalg.norm(q64 - q_code * q_step)) * (1 + 1e-9)
        unit = self._step * q_step  # coarse score = unit * int dot
        delta = (self._max_resid * float(np.linalg.norm(q64)) + q_resid * self._max_code_norm) * (
            1 + 1e-9
        )
        slack = delta / unit + 2  # delta in int units, with room for float rounding

        probe = (q_code + 128).astype(np.uint8).reshape(1, -1)
        (raw,) = session.run(None, {"probe": probe, "codes": self._codes_t})
        dots = np.subtract(raw.reshape(-1)[:n], self._offset[:n])
        if allowed is not None:
            penalty = np.where(allowed, 0, _PENALTY).astype(np.int32)
            dots += np.take(penalty, self._row_sidx[:n])

        # tau: the exact k-th best subject score among the rows near the best coarse score.
        window = max(2 * slack, 1.0)
        cut = max(int(dots.max()) - window, _FLOOR)
        jumps = 0
        while True:
            near = np.flatnonzero(dots >= cut)
            near_scores = self._vecs[near] @ q
            tau = self._kth_subject_score(near, near_scores, k)
            if tau is not None or cut == _FLOOR:
                break
            # Fewer than k subjects at or above the cut (an enrolled person's own templates,
            # typically): jump to the best coarse score below it instead of widening the
            # window step by step, which re-ranked ever larger slices of the gallery.
            # Each jump adds at least one row; after a few, widen too (many templates of one
            # subject, or a large k), so a search never takes more than a few dozen passes.
            jumps += 1
            if jumps > 8:
                window *= 2
            below = int(np.max(dots, where=dots < cut, initial=_FLOOR))
            cut = max(below - window, _FLOOR)
        if tau is None:  # fewer than k subjects in the whole (filtered) gallery
            return self._best_subjects(near, near_scores, k)
        # Every row whose exact score could reach tau.
        limit = max(math.floor(tau / unit - slack), _FLOOR)
        if limit >= cut:
            keep = dots[near] >= limit
            return self._best_subjects(near[keep], near_scores[keep], k)
        rows = np.flatnonzero(dots >= limit)
        return self._best_subjects(rows, self._vecs[rows] @ q, k)

    def _kth_subject_score(self, rows: np.ndarray, scores: np.ndarray, k: int) -> float | None:
        sidx = self._row_sidx[rows]
        if len(np.unique(sidx)) < k:
            return None
        order = np.argsort(-scores, kind="stable")
        seen: set[int] = set()
        for i in order:
            s = int(sidx[i])
            if s not in seen:
                seen.add(s)
                if len(seen) == k:
                    return float(scores[i])
        return None  # pragma: no cover - unreachable: k distinct subjects exist

    def _best_subjects(self, rows: np.ndarray, scores: np.ndarray, k: int) -> list[SubjectHit]:
        """Top ``k`` subjects among ``rows`` (with exact ``scores``), ties by row order."""
        m = max(16 * k, 64)
        while len(rows) > m:
            # Only rows scoring at least the m-th best can matter; ties at the cut are kept.
            cut = np.partition(scores, len(scores) - m)[len(scores) - m]
            keep = scores >= cut
            hits = self._best_subjects_sorted(rows[keep], scores[keep], k)
            if len(hits) == k:
                return hits
            m *= 4
        return self._best_subjects_sorted(rows, scores, k)

    def _best_subjects_sorted(
        self, rows: np.ndarray, scores: np.ndarray, k: int
    ) -> list[SubjectHit]:
        order = np.lexsort((rows, -scores.astype(np.float64)))
        best: dict[Hashable, SubjectHit] = {}
        for i in order:
            row = int(rows[i])
            subj = self._row_subject[row]
            if subj not in best:
                best[subj] = SubjectHit(subj, float(scores[i]), self._row_template[row])
                if len(best) == k:
                    break
        return list(best.values())
