"""Following gallery changes across processes with PostgreSQL LISTEN/NOTIFY.

A daemon thread holds its own psycopg 3 connection, LISTENs on the store's channel and calls
``GalleryService.catch_up`` on every notification, plus every ``poll_s`` seconds in case a
notification was lost. After a dropped connection it reconnects and catches up from the
change sequence first, so nothing committed while it was away is missed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import psycopg

from facegate.access.galleries import GalleryService

log = logging.getLogger("facegate.sync")

CHANNEL = "facegate_changes"


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://``) as a plain libpq URL."""
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


class ChangeListener:
    """Wakes the gallery service on NOTIFY; reconnects and catches up after failures."""

    def __init__(
        self,
        url: str,
        galleries: GalleryService,
        channel: str = CHANNEL,
        reconnect_s: float = 0.5,
        poll_s: float = 1.0,
        on_caught_up: Callable[[], None] | None = None,
    ) -> None:
        self.on_caught_up = on_caught_up
        self.url = libpq_url(url)
        self.galleries = galleries
        self.channel = channel
        self.reconnect_s = reconnect_s
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()
        self.reconnects = 0
        self.backend_pid: int | None = None  # the listening connection's server process

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gallery-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f'LISTEN "{self.channel}"')
                    self.backend_pid = conn.info.backend_pid
                    self.connected.set()
                    # Catch up on whatever was committed before LISTEN took effect.
                    self._catch_up()
                    while not self._stop.is_set():
                        woke = False
                        for _ in conn.notifies(timeout=self.poll_s, stop_after=1):
                            woke = True
                        # Drain any notifications that arrived together, then apply once.
                        if woke:
                            for _ in conn.notifies(timeout=0.001):
                                pass
                        self._catch_up()
            except Exception as exc:  # noqa: BLE001 - any failure: reconnect and catch up
                self.connected.clear()
                if self._stop.is_set():
                    break
                self.reconnects += 1
                log.warning(
                    "change listener lost its connection; reconnecting",
                    extra={"fields": {"error": type(exc).__name__}},
                )
                time.sleep(self.reconnect_s)

    def _catch_up(self) -> None:
        try:
            if self.galleries.catch_up() and self.on_caught_up is not None:
                self.on_caught_up()
        except Exception as exc:  # noqa: BLE001 - keep listening; the next wake-up retries
            log.error("gallery catch-up failed", extra={"fields": {"error": type(exc).__name__}})


class ChangePoller:
    """SQLite has no NOTIFY: the serving process applies its own changes at once, and this
    thread polls the change sequence so changes made by the CLI on the same file (e.g.
    ``facegate consent withdraw``) reach the gallery within ``interval_s`` too."""

    def __init__(
        self,
        galleries: GalleryService,
        interval_s: float = 0.5,
        on_caught_up: Callable[[], None] | None = None,
    ) -> None:
        self.galleries = galleries
        self.interval_s = interval_s
        self.on_caught_up = on_caught_up
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gallery-poll", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                if self.galleries.catch_up() and self.on_caught_up is not None:
                    self.on_caught_up()
            except Exception as exc:  # noqa: BLE001 - keep polling; the next round retries
                log.error(
                    "gallery catch-up failed", extra={"fields": {"error": type(exc).__name__}}
                )
