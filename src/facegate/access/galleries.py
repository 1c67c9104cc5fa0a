"""The gate's in-memory galleries: one per site, keyed by person pseudonym, kept current.

The database is the truth; each gate process holds the decrypted templates of the people
who may be matched at its sites and follows the store's change sequence (``change_log``).
On PostgreSQL a listener thread wakes on NOTIFY (see ``facegate.access.sync``); on SQLite
(one process) the server catches up in-process right after each change it makes. Either way
``catch_up`` applies every change with a sequence number above the last one applied, so a
missed notification or a reconnect loses nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from facegate.matching import Gallery, SubjectHit

log = logging.getLogger("facegate.gallery")


@dataclass(frozen=True)
class GalleryEntry:
    """One decrypted template of a person who may be matched, with where they may be."""

    person_id: str
    template_id: str
    vector: np.ndarray
    model_id: str
    # Access point ids of the person's consent scope; None means every access point of the site.
    scope: frozenset[str] | None


@dataclass(frozen=True)
class Change:
    seq: int
    site_id: str
    person_id: str | None
    kind: str
    at: datetime


# Changes that leave every template and consent scope as it was (credentials and API keys
# matter to the gate's offline copy, issue 18, not to its gallery).
_NO_GALLERY_EFFECT = frozenset({"access_point", "keys_rotated", "credential", "api_key"})


class GalleryLoader:
    """What the gallery service needs from the store (wired in ``facegate.api``)."""

    def load_site(self, site_id: str) -> Iterable[GalleryEntry]:  # pragma: no cover - protocol
        raise NotImplementedError

    def load_person(self, site_id: str, person_id: str) -> Iterable[GalleryEntry]:
        raise NotImplementedError  # pragma: no cover - protocol

    def changes_since(self, seq: int) -> list[Change]:  # pragma: no cover - protocol
        raise NotImplementedError

    def last_seq(self) -> int:  # pragma: no cover - protocol
        raise NotImplementedError


class SiteGallery:
    """The templates of one site and each person's consent scope."""

    def __init__(self, dim: int, model_id: str) -> None:
        self.gallery = Gallery(dim, model_id)
        self._scope: dict[str, frozenset[str] | None] = {}
        self._ap_subjects: dict[str, frozenset[str] | None] = {}
        self._lock = threading.Lock()
        self.stale_model: set[str] = set()  # people needing re-enrollment (other model_id)

    def replace_person(self, person_id: str, entries: list[GalleryEntry]) -> None:
        with self._lock:
            self.gallery.remove_subject(person_id)
            self._scope.pop(person_id, None)
            self.stale_model.discard(person_id)
            for e in entries:
                if e.model_id != self.gallery.model_id or e.vector.shape[-1] != self.gallery.dim:
                    # Never compared across models; the person shows as needing re-enrollment.
                    self.stale_model.add(person_id)
                    continue
                self.gallery.add(person_id, e.template_id, e.vector, model_id=e.model_id)
                self._scope[person_id] = e.scope
            self._ap_subjects.clear()

    def remove_person(self, person_id: str) -> None:
        self.replace_person(person_id, [])

    def subjects_for(self, access_point_id: str) -> frozenset[str] | None:
        """The people searchable at this access point; None when that is everyone here."""
        with self._lock:
            if access_point_id in self._ap_subjects:
                return self._ap_subjects[access_point_id]
            allowed = frozenset(
                p for p, scope in self._scope.items() if scope is None or access_point_id in scope
            )
            result = None if len(allowed) == len(self._scope) else allowed
            self._ap_subjects[access_point_id] = result
            return result

    def search(self, probe: np.ndarray, access_point_id: str, k: int = 2) -> list[SubjectHit]:
        """Top ``k`` people for a probe among those whose consent covers this access point."""
        subjects = self.subjects_for(access_point_id)
        if subjects is not None and not subjects:
            return []
        return self.gallery.search(probe, k=k, subjects=subjects)

    def has_person(self, person_id: str) -> bool:
        with self._lock:
            return person_id in self._scope

    def in_scope(self, person_id: str, access_point_id: str) -> bool:
        with self._lock:
            if person_id not in self._scope:
                return False
            scope = self._scope[person_id]
            return scope is None or access_point_id in scope

    def score_of(self, probe: np.ndarray, person_id: str) -> float | None:
        """Best score of the probe against one person's templates (1:1), None if none."""
        hits = self.gallery.search(probe, k=1, subjects=(person_id,))
        return hits[0].score if hits else None


class GalleryService:
    """One ``SiteGallery`` per site, loaded on first use and kept current from the change log."""

    def __init__(
        self,
        loader: GalleryLoader,
        dim: int,
        model_id: str,
        on_applied: Callable[[float], None] | None = None,
    ) -> None:
        self.loader = loader
        self.dim = dim
        self.model_id = model_id
        self._sites: dict[str, SiteGallery] = {}
        self._lock = threading.RLock()
        self._last_seq = 0
        self._on_applied = on_applied  # receives the revocation lag in seconds

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def start(self) -> None:
        """Remember where the change log is now; sites load lazily from that point."""
        with self._lock:
            self._last_seq = self.loader.last_seq()

    def site(self, site_id: str) -> SiteGallery:
        with self._lock:
            sg = self._sites.get(site_id)
            if sg is None:
                sg = SiteGallery(self.dim, self.model_id)
                by_person: dict[str, list[GalleryEntry]] = {}
                for e in self.loader.load_site(site_id):
                    by_person.setdefault(e.person_id, []).append(e)
                for person_id, entries in by_person.items():
                    sg.replace_person(person_id, entries)
                self._sites[site_id] = sg
                log.info(
                    "gallery loaded",
                    extra={"fields": {"site": site_id, "templates": len(sg.gallery)}},
                )
            return sg

    def loaded(self, site_id: str) -> SiteGallery | None:
        """The site's gallery if it is in memory. Never waits: not on the database, nor on
        the lock a catch-up holds while the database does not answer (issue 18)."""
        return self._sites.get(site_id)  # one dict read, atomic

    def load_sites(self, site_ids: Iterable[str]) -> None:
        for s in site_ids:
            self.site(s)

    def catch_up(self) -> int:
        """Apply every change after the last applied one; returns how many were applied."""
        with self._lock:
            changes = self.loader.changes_since(self._last_seq)
            for ch in changes:
                self._apply(ch)
                self._last_seq = max(self._last_seq, ch.seq)
            return len(changes)

    def _apply(self, ch: Change) -> None:
        sg = self._sites.get(ch.site_id)
        if sg is not None:
            if ch.kind in _NO_GALLERY_EFFECT:
                pass
            elif ch.person_id is None:
                # A site-wide change (e.g. a notice needing renewal): reload the site.
                del self._sites[ch.site_id]
                self.site(ch.site_id)
            else:
                sg.replace_person(
                    ch.person_id, list(self.loader.load_person(ch.site_id, ch.person_id))
                )
        if self._on_applied is not None:
            at = ch.at if ch.at.tzinfo else ch.at.replace(tzinfo=UTC)
            self._on_applied(max(0.0, time.time() - at.timestamp()))

    def sizes(self) -> tuple[int, int]:
        """(templates, people) over every loaded site; never waits on a catch-up's lock."""
        sites = list(self._sites.copy().values())
        return sum(len(s.gallery) for s in sites), sum(s.gallery.subject_count for s in sites)

    def loaded_sites(self) -> list[str]:
        with self._lock:
            return list(self._sites)
