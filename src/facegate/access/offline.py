"""Deciding when the database is away, and never answering late (issue 18).

- ``Deadline``: one per decide request. A decision is recorded only by the path that claims
  it (the database or the gate's memory) while the caller still waits; a caller that gave up
  (deadline passed, connection closed) leaves nothing behind, and one that gave up while its
  decision was being committed leaves an event marked ``abandoned``, never ``allow``.
- ``DatabaseProbe``: a background thread asks the database ``SELECT 1`` every
  ``db_probe_interval_ms``; a probe that has not answered within the decision timeout counts
  as unreachable (a frozen server never errors, it just does not answer). ``/healthz`` and
  the decide route read its state and never wait for the database themselves.
- ``OfflineGate``: the state a gate is in (``online``, ``offline``, ``draining``), the
  offline copy (``facegate.access.snapshot``), the journal (``facegate.access.journal``),
  the API key cache, and the thread that merges the journal when the database returns.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from facegate.access.journal import Journal, merge
from facegate.access.snapshot import KeyCopy, Snapshot
from facegate.errors import DecisionAbandoned

log = logging.getLogger("facegate.offline")

ONLINE, OFFLINE, DRAINING, STARTING = "online", "offline", "draining", "starting"


class Deadline:
    """The request's deadline and who may record its decision (see the module doc)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expires = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._claimed: str | None = None
        self._abandoned = False
        self._done = False
        self._closed: set[str] = set()

    def remaining(self) -> float:
        return max(0.0, self.expires - time.monotonic())

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.expires

    def claim(self, path: str) -> None:
        with self._lock:
            if self._abandoned or path in self._closed or time.monotonic() >= self.expires:
                raise DecisionAbandoned("the caller's deadline passed; nothing was recorded")
            if self._claimed is not None and self._claimed != path:
                raise DecisionAbandoned("the decision was already made another way")
            self._claimed = path

    def release(self, path: str) -> None:
        """``path`` failed before anything was committed: another path may claim now."""
        with self._lock:
            if self._claimed == path and not self._done:
                self._claimed = None
            self._closed.add(path)

    def close(self, path: str) -> bool:
        """Stop ``path`` from claiming; True when it had already claimed (it is committing)."""
        with self._lock:
            self._closed.add(path)
            return self._claimed == path and not self._done

    def delivered(self) -> bool:
        """Called by the recorder after its commit: True when the caller gave up meanwhile."""
        with self._lock:
            self._done = True
            return self._abandoned

    def abandon(self) -> bool:
        """The caller is gone: nothing may be claimed any more. True when a decision was
        already recorded and finished (the answer exists)."""
        with self._lock:
            self._abandoned = True
            return self._done

    @property
    def claimed(self) -> str | None:
        return self._claimed


class DatabaseProbe:
    """Keeps ``reachable`` current without any request ever waiting on the database."""

    def __init__(
        self,
        check: Callable[[], None],
        *,
        interval_s: float,
        timeout_s: float,
        reset: Callable[[], None] | None = None,
    ) -> None:
        self.check = check
        self.reset = reset
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._last_ok: float | None = None
        self._failed_at: float | None = None  # monotonic time of a failure after the last ok
        self._in_flight_since: float | None = None
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="db-probe", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def probe_once(self) -> bool:
        with self._lock:
            self._in_flight_since = time.monotonic()
        try:
            self.check()
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            self.report_failure(type(exc).__name__)
            if self.reset is not None:
                with contextlib.suppress(Exception):
                    self.reset()
            return False
        finally:
            with self._lock:
                self._in_flight_since = None
        with self._lock:
            self._last_ok = time.monotonic()
            self._failed_at = None
            self.last_error = None
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.probe_once()
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def report_failure(self, error: str = "timeout") -> None:
        """A decision saw the database fail (or not answer in time)."""
        with self._lock:
            if self._failed_at is None:
                self._failed_at = time.monotonic()
            self.last_error = error

    @property
    def reachable(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if self._last_ok is None or self._failed_at is not None:
                return False
            # Asked and not answered in time: a frozen or cut-off server.
            started = self._in_flight_since
            return started is None or now - started <= self.timeout_s

    @property
    def ever_ok(self) -> bool:
        return self._last_ok is not None


def pg_check(url: str, timeouts: Any) -> tuple[Callable[[], None], Callable[[], None]]:
    """A probe over one dedicated psycopg connection (reconnects after any failure)."""
    import psycopg

    from facegate.access.sync import libpq_url
    from facegate.store.db import pg_connect_args

    state: dict[str, Any] = {"conn": None}
    args = pg_connect_args(timeouts)

    def check() -> None:
        conn = state["conn"]
        if conn is None or conn.closed:
            conn = psycopg.connect(libpq_url(url), autocommit=True, **_merge_options(url, args))
            state["conn"] = conn
        conn.execute("SELECT 1").fetchone()

    def reset() -> None:
        conn, state["conn"] = state["conn"], None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    return check, reset


def _merge_options(url: str, args: dict[str, Any]) -> dict[str, Any]:
    if "options=" in url:  # the URL's own options (e.g. search_path) stay; ours are for calls
        args = {k: v for k, v in args.items() if k != "options"}
    return args


def sqlite_check(path: str, timeout_s: float) -> tuple[Callable[[], None], Callable[[], None]]:
    """SQLite: the file opens and answers a read in time. A write lock held by a busy writer
    is not an outage; a decision that cannot write in time reports itself (and is decided
    from memory), and a file that cannot be read at all is one."""

    def check() -> None:
        conn = sqlite3.connect(path, timeout=timeout_s, isolation_level=None)
        try:
            conn.execute("SELECT count(*) FROM audit_head").fetchone()
        finally:
            conn.close()

    return check, lambda: None


class OfflineGate:
    """The gate's own account of whether it decides from the database or from memory."""

    def __init__(
        self,
        *,
        probe: DatabaseProbe,
        journal: Journal,
        snapshot: Snapshot,
        session_factory: Callable[[], Any],
        offline_max_s: float,
        on_state: Callable[[str], None] | None = None,
        reload_snapshot: Callable[[], None] | None = None,
    ) -> None:
        self.probe = probe
        self.journal = journal
        self.snapshot = snapshot
        self.session_factory = session_factory
        self.offline_max_s = offline_max_s
        self.on_state = on_state
        self.reload_snapshot = reload_snapshot
        self.decide_lock = threading.Lock()  # offline decisions change shared counters
        self._state = STARTING
        self._offline_since: datetime | None = None
        self._offline_since_mono: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._drain_lock = threading.Lock()
        self._tick_lock = threading.Lock()
        self.last_merge: Any = None
        self.merge_error: str | None = None

    # --- state ------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state

    @property
    def offline_since(self) -> datetime | None:
        return self._offline_since

    def offline_for_s(self) -> float:
        if self._offline_since_mono is None:
            return 0.0
        return time.monotonic() - self._offline_since_mono

    def decide_online(self) -> bool:
        """Decide through the database only when it answers and the journal is empty (so
        offline counters, e.g. a QR pass used offline, reach it before it decides again)."""
        self._tick()
        return self._state == ONLINE

    def too_long(self) -> str | None:
        if self._state != OFFLINE:
            return None
        if self._offline_since_mono is not None and self.offline_for_s() > self.offline_max_s:
            return "offline_too_long"
        return None

    def can_decide(self) -> bool:
        if self._state == ONLINE:
            return True
        if not self.snapshot.ready:
            return False
        if self.journal.depth >= self.journal.max_events:
            return False
        return self.too_long() is None

    def report_failure(self, error: str) -> None:
        self.probe.report_failure(error)
        self._tick()

    def _tick(self) -> None:
        with self._tick_lock:
            self._tick_locked()

    def _tick_locked(self) -> None:
        reachable = self.probe.reachable
        old = self._state
        if not reachable:
            new = STARTING if not self.probe.ever_ok and old == STARTING else OFFLINE
        else:
            new = DRAINING if self.journal.depth > 0 else ONLINE
        if new == OFFLINE and self._offline_since is None:
            self._offline_since = datetime.now(UTC)
            self._offline_since_mono = time.monotonic()
        if new == ONLINE:
            self._offline_since = self._offline_since_mono = None
        if new != old:
            self._state = new
            self._log_change(old, new)
            if self.on_state is not None:
                self.on_state(new)

    def _log_change(self, old: str, new: str) -> None:
        fields = {"from": old, "to": new, "journal_depth": self.journal.depth}
        if new == OFFLINE:
            fields["cause"] = f"database unreachable ({self.probe.last_error or 'no answer'})"
            log.warning(
                "the database is away (%s): deciding from memory, journaling locally",
                fields["cause"],
                extra={"fields": fields},
            )
        elif new == DRAINING:
            log.warning(
                "the database is back: merging the offline journal", extra={"fields": fields}
            )
        elif new == ONLINE:
            log.warning("the database answers: deciding online", extra={"fields": fields})

    # --- background work --------------------------------------------------------------------

    def start(self) -> None:
        self.probe.start()
        self._thread = threading.Thread(target=self._run, name="offline-gate", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.probe.stop()

    def _run(self) -> None:
        last_count = 0.0
        while not self._stop.wait(0.05):
            if time.monotonic() - last_count > 1.0:
                # Another process may share the journal file (or a gate restarted with one):
                # count what is really there now and then.
                last_count = time.monotonic()
                self.journal.refresh_depth()
            self._tick()
            if self._state == DRAINING:
                self.drain()

    def drain(self) -> None:
        """Merge the journal into the database (one drainer at a time)."""
        if not self._drain_lock.acquire(blocking=False):
            return
        try:
            result = merge(self.journal, self.session_factory)
            self.last_merge = result
            self.merge_error = None
            if result.merged:
                log.warning(
                    "offline journal merged",
                    extra={
                        "fields": {
                            "merged": result.merged,
                            "skipped": result.skipped,
                            "conflicts": result.conflicts,
                        }
                    },
                )
            if self.reload_snapshot is not None and (result.merged or result.skipped):
                self.reload_snapshot()
        except Exception as exc:  # noqa: BLE001 - the database went again: retry later
            self.journal.refresh_depth()
            if self.merge_error != type(exc).__name__:
                log.error(
                    "offline journal merge failed; will retry",
                    extra={"fields": {"error": type(exc).__name__}},
                )
            self.merge_error = type(exc).__name__
            self.probe.report_failure(type(exc).__name__)
        finally:
            self._drain_lock.release()
        self._tick()

    # --- API keys from memory ---------------------------------------------------------------

    def key(self, key_hash: str) -> KeyCopy | None:
        k = self.snapshot.key(key_hash)
        return None if k is None or k.revoked else k
