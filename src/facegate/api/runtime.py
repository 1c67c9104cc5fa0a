"""What one server process holds: the store, the pipeline, the galleries, the pools, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import create_engine, exc, select
from sqlalchemy.orm import sessionmaker

from facegate.access.decide import FaceMatcher, GateContext
from facegate.access.dedup import EventDeduplicator
from facegate.access.galleries import Change, GalleryEntry, GalleryLoader, GalleryService
from facegate.access.journal import Journal
from facegate.access.offline import (
    OFFLINE,
    ONLINE,
    DatabaseProbe,
    Deadline,
    OfflineGate,
    pg_check,
    sqlite_check,
)
from facegate.access.pool import InferencePool
from facegate.access.snapshot import Snapshot
from facegate.access.sync import ChangeListener, ChangePoller
from facegate.api.observability import Metrics
from facegate.audit import anchor as audit_anchor
from facegate.config import Settings
from facegate.domain.common import changes_since
from facegate.domain.passcodes import KEYRING_INFO_KEY
from facegate.domain.passcodes import warm as warm_code_keys
from facegate.errors import DatabaseUnavailable
from facegate.store.crypto import load_keyring
from facegate.store.db import DbTimeouts, Store
from facegate.store.models import ChangeLog, Site

log = logging.getLogger("facegate.server")

T = TypeVar("T")

# What a database that is away looks like to SQLAlchemy: refused or dropped connections,
# statement or lock timeouts, a locked or full SQLite file, an exhausted pool (issue 18).
DB_AWAY_ERRORS: tuple[type[BaseException], ...] = (
    exc.OperationalError,
    exc.InterfaceError,
    exc.DisconnectionError,
    exc.TimeoutError,
)
DEADLINE_HEADER = "x-facegate-deadline-ms"


def _keyring_or_none(settings: Settings) -> Any | None:
    try:
        return load_keyring(settings)
    except Exception as e:  # noqa: BLE001 - without it, passes are issued without short codes
        log.warning("site keyring not loaded", extra={"fields": {"error": type(e).__name__}})
        return None


class DatabaseAway(Exception):
    """The database did not answer within the decision path's timeout (internal signal)."""


def request_deadline(request: Any) -> Deadline:
    """The decide request's deadline: the setting, or the gate's shorter one (header)."""
    dl = getattr(request.state, "deadline", None)
    if dl is None:
        ms = float(request.app.state.runtime.settings.decide_deadline_ms)
        raw = request.headers.get(DEADLINE_HEADER)
        if raw:
            with contextlib.suppress(ValueError):
                ms = min(ms, max(10.0, float(raw)))
        dl = Deadline(ms / 1000)
        request.state.deadline = dl
    return dl


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
        self.store = store or Store(
            settings.database_url,
            timeouts=DbTimeouts.general(settings),
            decision_timeouts=DbTimeouts.decision_path(settings),
        )
        if getattr(self.store, "_decision_timeouts", True) is None:
            # An injected store (tests, CLI) gets the decision path's deadlines too.
            self.store._decision_timeouts = DbTimeouts.decision_path(settings)
        # Seals audit entries and checkpoints the head (issue 13 item 17).
        self.audit_anchor = audit_anchor.attach(self.store, settings)
        # The site keyring, for the keyed hash of QR pass short codes (issue 16 item 10): given
        # to the store's sessions, so issuing and checking a code needs no key file read.
        self.code_keyring = _keyring_or_none(settings)
        if self.code_keyring is not None:
            info = dict(self.store.session_factory.kw.get("info") or {})
            info[KEYRING_INFO_KEY] = self.code_keyring
            self.store.session_factory.configure(info=info)
        # Liveness challenges (kiosk and camera enrollment, issue 14): in the database, so
        # any server process may check the answer to a prompt another one issued.
        from facegate.access.challenge import StoreChallengeBook

        self.challenges = StoreChallengeBook(self.store)
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
        # Issue 18: the offline copy, the journal, the probe, the decision path's threads.
        self.db_executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="db-decide")
        self.snapshot = Snapshot()
        gate_id = settings.gate_id or f"{socket.gethostname()}:{settings.port}"
        self.journal = Journal(
            settings.offline_journal_path, gate_id[:60], settings.offline_journal_max
        )
        timeout_s = settings.db_decision_timeout_ms / 1000
        if self.is_postgres:
            check, reset = pg_check(self.store.url, DbTimeouts.decision_path(settings))
        else:
            from facegate.access.single_process import sqlite_path

            path = sqlite_path(self.store.url)
            check, reset = sqlite_check(str(path) if path else ":memory:", timeout_s)
        self.offline = OfflineGate(
            probe=DatabaseProbe(
                check,
                interval_s=settings.db_probe_interval_ms / 1000,
                timeout_s=timeout_s,
                reset=reset,
            ),
            journal=self.journal,
            snapshot=self.snapshot,
            session_factory=self.store.session,
            offline_max_s=settings.offline_max_s,
            on_state=self._on_state,
            reload_snapshot=self.reload_snapshot,
        )
        # The offline copy only reads: on SQLite through an engine whose transactions do not
        # take the write lock (BEGIN IMMEDIATE), so following changes never delays a decision.
        self._read_session: Callable[[], Any] = self.store.session
        if not self.is_postgres:
            from facegate.store.db import make_engine

            self._read_engine = make_engine(
                self.store.url, timeouts=DbTimeouts.general(settings), immediate=False
            )
            self._read_session = sessionmaker(self._read_engine, expire_on_commit=False)
        self._refresh_stop = threading.Event()
        self._refresh_thread: threading.Thread | None = None
        self._snapshot_lock = threading.Lock()

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

    def offline_gate_context(self, with_face: bool) -> GateContext:
        """As ``gate_context``, from what is in memory only (never reads the database)."""
        galleries = matcher = None
        if with_face and self._galleries is not None and self._pipeline is not None:
            pipe = self._pipeline
            galleries = self._galleries
            matcher = FaceMatcher(pipe.threshold, pipe.margin, pipe.threshold_for_gallery)
        return GateContext(
            galleries=galleries,
            matcher=matcher,
            dedup=self.dedup,
            agree_frames=self.settings.burst_agree_frames,
            pin_max_failures=self.settings.pin_max_failures,
            pin_lockout=timedelta(seconds=self.settings.pin_lockout_s),
        )

    async def db_call(self, fn: Callable[..., T], *args: Any, timeout: float) -> T:
        """Run ``fn`` on the decision path's threads, for at most ``timeout`` seconds.

        Raises ``DatabaseAway`` when it does not answer in time or fails as an absent
        database does. The thread itself cannot be stopped: what it would still record is
        guarded by the request's ``Deadline``."""
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self.db_executor, fn, *args)
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            return await asyncio.wait_for(asyncio.shield(fut), max(0.0, timeout))
        except TimeoutError:
            raise DatabaseAway("no answer in time") from None  # the probe judges "away"
        except DB_AWAY_ERRORS as e:
            self.offline.report_failure(type(e).__name__)
            raise DatabaseAway(type(e).__name__) from None

    def _on_state(self, state: str) -> None:
        self.update_offline_metrics()

    def update_offline_metrics(self) -> None:
        off = self.offline
        m = self.metrics
        m.database_up.set(1 if off.probe.reachable else 0)
        m.offline.set(0 if off.state == ONLINE else 1)
        m.offline_seconds.set(off.offline_for_s())
        m.journal_depth.set(self.journal.depth)
        m.can_decide.set(1 if off.can_decide() else 0)

    def reload_snapshot(self) -> None:
        """Load the whole offline copy from the database (start, after a merge, periodically)."""
        with self._snapshot_lock, self._read_session() as s:
            seq = s.execute(select(ChangeLog.seq).order_by(ChangeLog.seq.desc()).limit(1))
            rows = seq.all()
            self.snapshot.load_all(s, last_seq=int(rows[0][0]) if rows else 0)
            if self.code_keyring is not None:
                warm_code_keys(s, self.code_keyring)  # codes typed offline (issue 16.10)

    def snapshot_catch_up(self) -> int:
        """Apply the change feed to the offline copy (called with the gallery's catch-up)."""
        if not self.snapshot.ready:
            self.reload_snapshot()
            return 1
        with self._snapshot_lock, self._read_session() as s:
            changes = changes_since(s, self.snapshot.last_seq)
            return self.snapshot.catch_up(s, changes)

    def start_offline(self) -> None:
        """Probe once, load the offline copy, then keep both current in the background."""
        try:
            if self.offline.probe.probe_once():
                self.reload_snapshot()
        except Exception as e:  # noqa: BLE001 - the refresh thread retries
            log.warning(
                "offline copy not loaded yet", extra={"fields": {"error": type(e).__name__}}
            )
        self.offline._tick()
        self.offline.start()
        self._refresh_thread = threading.Thread(
            target=self._refresh_loop, name="offline-refresh", daemon=True
        )
        self._refresh_thread.start()
        self.update_offline_metrics()

    def _refresh_loop(self) -> None:
        interval = self.settings.offline_refresh_s
        while not self._refresh_stop.wait(0.5):
            if self.offline.state != ONLINE:
                continue
            try:
                loaded = self.snapshot.loaded_at
                if loaded is None or time.time() - loaded > interval:
                    self.reload_snapshot()
                elif self._listener is None:
                    self.snapshot_catch_up()  # no change listener running: follow it here
            except Exception as e:  # noqa: BLE001 - next round retries
                log.warning(
                    "offline copy refresh failed", extra={"fields": {"error": type(e).__name__}}
                )

    def refuse_if_offline(self) -> None:
        """Everything but decisions: a clear 503 while the database is away."""
        if self.offline.state == OFFLINE:
            raise DatabaseUnavailable()

    def after_change(self) -> None:
        """Apply our own change to the galleries now (the only path on SQLite)."""
        if self._galleries is not None:
            self._galleries.catch_up()
            self.update_gallery_metrics()
        try:
            self.snapshot_catch_up()
        except Exception as e:  # noqa: BLE001 - the refresh thread catches up later
            log.warning(
                "offline copy catch-up failed", extra={"fields": {"error": type(e).__name__}}
            )

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
        follower = _Follower(self)
        if not self.is_postgres and self._listener is None:
            self._listener = ChangePoller(follower, on_caught_up=self.update_gallery_metrics)  # type: ignore[arg-type]
            self._listener.start()
        if self.is_postgres and self._listener is None:
            from facegate.domain.common import NOTIFY_CHANNEL

            self._listener = ChangeListener(
                self.store.url,
                follower,  # type: ignore[arg-type]
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
        self._refresh_stop.set()
        self.offline.stop()
        if self._listener is not None:
            self._listener.stop()
        self.pool.shutdown()
        self.db_executor.shutdown(wait=False, cancel_futures=True)
        self.journal.close()
        if not self.is_postgres:
            self._read_engine.dispose()
        try:
            audit_anchor.flush_refusals(self.store)
        except Exception:  # noqa: BLE001 - a closed or broken database must not stop shutdown
            log.warning("counted refusals could not be written at shutdown")
        if self.audit_anchor is not None:
            self.audit_anchor.close()  # the shutdown checkpoint
        self.store.dispose()


class _Follower:
    """What the change listener wakes: the gallery, then the offline copy (issue 18)."""

    def __init__(self, rt: GateRuntime) -> None:
        self.rt = rt

    def catch_up(self) -> int:
        n = self.rt.galleries.catch_up()
        try:
            n += self.rt.snapshot_catch_up()
        except Exception as e:  # noqa: BLE001 - the gallery went on; the copy retries
            log.warning(
                "offline copy catch-up failed", extra={"fields": {"error": type(e).__name__}}
            )
        return n
