"""A thread-safe in-memory gallery of templates, searched with one matrix product."""

from __future__ import annotations

import threading
from collections.abc import Collection, Hashable
from dataclasses import dataclass

import numpy as np

from facegate.errors import InvalidInput, ModelMismatch


@dataclass(frozen=True)
class SubjectHit:
    """The best score of one subject for a probe."""

    subject: Hashable
    score: float
    template_id: Hashable


class Gallery:
    """Templates keyed by an opaque subject id; several templates per subject.

    Rows live in one preallocated float32 matrix. Removal moves the last row into the hole,
    so add and remove are O(1) amortised and the live rows are always ``[:size]``.
    """

    def __init__(self, dim: int, model_id: str, capacity: int = 1024) -> None:
        if dim <= 0:
            raise InvalidInput("gallery dimension must be positive")
        self.dim = dim
        self.model_id = model_id
        self._lock = threading.RLock()
        self._vecs = np.zeros((max(capacity, 1), dim), dtype=np.float32)
        self._row_template: list[Hashable] = []
        self._row_subject: list[Hashable] = []
        self._row_of: dict[Hashable, int] = {}
        self._templates_of: dict[Hashable, set[Hashable]] = {}

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
        with self._lock:
            if template_id in self._row_of:
                self._remove_row(self._row_of[template_id])
            n = len(self._row_template)
            if n == self._vecs.shape[0]:
                grown = np.zeros((self._vecs.shape[0] * 2, self.dim), dtype=np.float32)
                grown[:n] = self._vecs[:n]
                self._vecs = grown
            self._vecs[n] = vec
            self._row_template.append(template_id)
            self._row_subject.append(subject)
            self._row_of[template_id] = n
            self._templates_of.setdefault(subject, set()).add(template_id)

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

    def _remove_row(self, row: int) -> None:
        last = len(self._row_template) - 1
        tid = self._row_template[row]
        subject = self._row_subject[row]
        if row != last:
            self._vecs[row] = self._vecs[last]
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

    # -- search -----------------------------------------------------------------------------

    def search(
        self,
        probe: np.ndarray,
        k: int = 2,
        subjects: Collection[Hashable] | None = None,
    ) -> list[SubjectHit]:
        """Best ``k`` subjects for a probe, best first, each with its best template's score.

        ``subjects`` restricts the search (e.g. to the people enrolled at one access point).
        """
        q = np.asarray(probe, dtype=np.float32).reshape(-1)
        if q.shape[0] != self.dim:
            raise InvalidInput(f"probe has {q.shape[0]} values, gallery expects {self.dim}")
        with self._lock:
            n = len(self._row_template)
            if n == 0 or k <= 0:
                return []
            scores = self._vecs[:n] @ q
            if subjects is not None:
                allowed = set(subjects)
                mask = np.fromiter((s in allowed for s in self._row_subject), dtype=bool, count=n)
                scores = np.where(mask, scores, -np.inf)
            return self._top_subjects(scores, k)

    def _top_subjects(self, scores: np.ndarray, k: int) -> list[SubjectHit]:
        n = scores.shape[0]
        m = min(n, max(4 * k, 16))
        while True:
            idx = np.argpartition(-scores, m - 1)[:m] if m < n else np.arange(n)
            idx = idx[np.argsort(-scores[idx], kind="stable")]
            best: dict[Hashable, SubjectHit] = {}
            for i in idx:
                s = float(scores[i])
                if s == -np.inf:
                    break
                subj = self._row_subject[i]
                if subj not in best:
                    best[subj] = SubjectHit(subj, s, self._row_template[i])
                    if len(best) == k:
                        break
            if len(best) == k or m == n:
                return list(best.values())
            m = min(n, m * 4)
