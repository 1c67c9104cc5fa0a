"""Repeated decisions for the same person at the same door within an interval are one event."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable


class EventDeduplicator:
    """Remembers the last recorded event per key for ``interval_s`` seconds (in memory).

    A person standing in front of a camera produces many frames and many identical
    decisions; the access log should show one passage, not twenty.
    """

    def __init__(
        self,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._max_keys = max_keys
        self._last: dict[Hashable, float] = {}
        self._lock = threading.Lock()

    def should_record(self, key: Hashable) -> bool:
        """True if no identical event was recorded within the interval (and remember it)."""
        if self.interval_s <= 0:
            return True
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                return False
            if len(self._last) >= self._max_keys:
                self._prune(now)
            self._last[key] = now
            return True

    def forget(self, predicate: Callable[[Hashable], bool]) -> None:
        """Drop remembered keys (e.g. of a person who withdrew, so the next deny is logged)."""
        with self._lock:
            for key in [k for k in self._last if predicate(k)]:
                del self._last[key]

    def _prune(self, now: float) -> None:
        stale = [k for k, t in self._last.items() if now - t >= self.interval_s]
        for k in stale:
            del self._last[k]
        if len(self._last) >= self._max_keys:  # all fresh: drop the oldest half
            for k, _ in sorted(self._last.items(), key=lambda kv: kv[1])[: self._max_keys // 2]:
                del self._last[k]
