"""A bounded pool for face inference: never blocks the event loop, never queues without limit."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from facegate.errors import Busy

T = TypeVar("T")


class InferencePool:
    """``workers`` threads run face work; at most ``workers + queue`` jobs are admitted.

    Admission is a non-blocking semaphore: when it is exhausted the caller gets ``Busy`` at
    once (the API turns it into 503 with ``Retry-After``). Card, PIN and QR decisions never
    enter this pool, so they stay fast while faces are busy.
    """

    def __init__(self, workers: int, queue: int = 0, retry_after_s: int = 1) -> None:
        self.workers = workers
        self.capacity = workers + queue
        self.retry_after_s = retry_after_s
        self._slots = threading.BoundedSemaphore(self.capacity)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="face")
        self._in_flight = 0
        self._count_lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def try_acquire(self) -> None:
        """Take one admission slot or raise ``Busy`` immediately."""
        if not self._slots.acquire(blocking=False):
            raise Busy(
                "the gate is busy with other face decisions; retry shortly or use a card",
                zh="门禁正忙于其他刷脸请求：请稍后再试，或刷卡",
                retry_after=self.retry_after_s,
            )
        with self._count_lock:
            self._in_flight += 1

    def release(self) -> None:
        with self._count_lock:
            self._in_flight -= 1
        self._slots.release()

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` on a worker thread, admitted or refused at once."""
        self.try_acquire()
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, fn, *args)
        finally:
            self.release()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
