"""What one server process holds: the store, the pipeline, the galleries, the pools, metrics."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker

from facegate.access.decide import FaceMatcher, GateContext
from facegate.access.dedup import EventDeduplicator
from facegate.access.galleries import Change, GalleryEntry, GalleryLoader, GalleryService
from facegate.access.pool import InferencePool
from facegate.access.sync import ChangeListener, ChangePoller
from facegate.api.observability import Metrics
from facegate.audit import anchor as audit_anchor
from facegate.config import Settings
from facegate.domain.common import changes_since
from facegate.store.crypto import load_keyring
from facegate.store.db import Store
from facegate.store.models import ChangeLog, Site

log = logging.getLogger("facegate.server")


class StoreGalleryLoader(GalleryLoader):
    """Reads decrypted gallery entries and the change log through the store."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.keyring = load_keyring(settings)
        self._session = store.session
        if store.dialect == "sqlite":
            # Reads only: a plain engine whose transactions do not start with BEGIN IMMEDIATE,
            # so loading a large gallery (WAL snapshot) never holds the write lock that every
            # decision needs to record its event.
            engine = create_engine(store.url, connect_args={"timeout": 30})
            self._session = sessionmaker(engine, expire_on_commit=False)

    def load_site(self, site_id: str) -> Iterable[GalleryEntry]:
        return self._load(site_id, None)

    def load_person(self, site_id: str, person_id: str) -> Iterable[GalleryEntry]:
        return self._load(site_id, person_id)

    def _load(self, site_id: str, person_id: str | None) -> list[GalleryEntry]:
        from facegate.domain.enrollment import load_gallery_entries

        with self._session() as s:
            return [
                GalleryEntry(
                    e.person_pseudonym,
                    e.template_id,
                    e.vector,
                    e.model_id,
                    frozenset(e.access_point_ids),
                )
                for e in load_gallery_entries(s, self.keyring, site_id, person_id=person_id)
            ]

    def changes_since(self, seq: int) -> list[Change]:
        out: list[Change] = []
        with self._session() as s:
            while True:  # the store's helper pages; a long outage may leave many changes
                rows = changes_since(s, seq, limit=5000)
                out += [Change(r.seq, r.site_id, r.person_id, r.kind, r.at) for r in rows]
                if len(rows) < 5000:
                    return out
                seq = rows[-1].seq

    def last_seq(self) -> int:
        with self._session() as s:
            rows = s.execute(select(ChangeLog.seq).order_by(ChangeLog.seq.desc()).limit(1)).all()
            return int(rows[0][0]) if rows else 0


class GateRuntime:
    """Built once per app; the pipeline and galleries load on first need (or at start-up)."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        pipeline: Any | None = None,
    ) -> None:
        self.settings = settings
        # Decoded pixels in flight across every request of this process (issue 13 item 3).
        from facegate.vision.decode import set_pixel_budget

        set_pixel_budget(settings.decode_pixel_budget, settings.decode_budget_wait_s)
        self.store = store or Store(settings.database_url)
        # Seals audit entries and checkpoints the head (issue 13 item 17).
        self.audit_anchor = audit_anchor.attach(self.store, settings)
        self.metrics = Metrics()
        self.pool = InferencePool(
            settings.inference_workers, settings.inference_queue, settings.busy_retry_after_s
        )
        self.dedup = EventDeduplicator(settings.event_dedup_s)
        self._pipeline = pipeline
        self._galleries: GalleryService | None = None
        self._listener: ChangeListener | ChangePoller | None = None
        self._lock = threading.Lock()
        self.events: Any | None = None  # facegate.edge.events.OutboxRelay when configured

    @property
    def is_postgres(self) -> bool:
        return self.store.dialect == "postgresql"

    @property
    def pipeline(self) -> Any:
        with self._lock:
            if self._pipeline is None:
                from facegate.vision import FacePipeline

                self._pipeline = FacePipeline(self.settings)
            return self._pipeline

    @property
    def pipeline_loaded(self) -> bool:
        return self._pipeline is not None

    @property
    def galleries(self) -> GalleryService:
        pipe = self.pipeline
        with self._lock:
            if self._galleries is None:
                g = GalleryService(
                    StoreGalleryLoader(self.store, self.settings),
                    dim=pipe.dim,
                    model_id=pipe.model_id,
                    on_applied=self.metrics.revocation_lag.observe,
                )
                g.start()
                self._galleries = g
            return self._galleries

    def gate_context(self, with_face: bool) -> GateContext:
        galleries = matcher = None
        if with_face:
            pipe = self.pipeline
            galleries = self.galleries
            matcher = FaceMatcher(pipe.threshold, pipe.margin, pipe.threshold_for_gallery)
        return GateContext(
            galleries=galleries,
            matcher=matcher,
            dedup=self.dedup,
            agree_frames=self.settings.burst_agree_frames,
            pin_max_failures=self.settings.pin_max_failures,
            pin_lockout=timedelta(seconds=self.settings.pin_lockout_s),
        )

    def after_change(self) -> None:
        """Apply our own change to the galleries now (the only path on SQLite)."""
        if self._galleries is not None:
            self._galleries.catch_up()
            self.update_gallery_metrics()

    def update_gallery_metrics(self) -> None:
        if self._galleries is not None:
            templates, people = self._galleries.sizes()
            self.metrics.gallery_templates.set(templates)
            self.metrics.gallery_subjects.set(people)

    def warm_up(self) -> None:
        """Load the models and every site's gallery before the first decision."""
        galleries = self.galleries
        with self.store.session() as s:
            sites = [r for (r,) in s.execute(select(Site.id)).all()]
        galleries.load_sites(sites)
        self.update_gallery_metrics()

    def start_sync(self) -> None:
        """Follow changes made by other processes: LISTEN/NOTIFY + catch-up on PostgreSQL,
        a short poll of the change sequence on SQLite (the CLI may write the same file)."""
        if not self.is_postgres and self._listener is None:
            self._listener = ChangePoller(self.galleries, on_caught_up=self.update_gallery_metrics)
            self._listener.start()
        if self.is_postgres and self._listener is None:
            from facegate.domain.common import NOTIFY_CHANNEL

            self._listener = ChangeListener(
                self.store.url,
                self.galleries,
                channel=NOTIFY_CHANNEL,
                reconnect_s=self.settings.sync_reconnect_s,
                on_caught_up=self.update_gallery_metrics,
            )
            self._listener.start()

    def start_events(self) -> None:
        """Deliver the event outbox to ``Settings.events`` (issue 15): one relay thread per
        destination, woken by every commit on this store (a decision's included)."""
        if not self.settings.events or self.events is not None:
            return
        from sqlalchemy import event as sa_event

        from facegate.edge.events import relay_from_settings

        relay = relay_from_settings(self.settings, self.store.session)
        sa_event.listen(self.store.session_factory, "after_commit", lambda _s: relay.wake())
        self.metrics.add_event_metrics(relay)
        relay.start()
        self.events = relay

    def close(self) -> None:
        if self.events is not None:
            self.events.stop()
        if self._listener is not None:
            self._listener.stop()
        self.pool.shutdown()
        try:
            audit_anchor.flush_refusals(self.store)
        except Exception:  # noqa: BLE001 - a closed or broken database must not stop shutdown
            log.warning("counted refusals could not be written at shutdown")
        if self.audit_anchor is not None:
            self.audit_anchor.close()  # the shutdown checkpoint
        self.store.dispose()
