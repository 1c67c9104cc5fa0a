"""With SQLite one process serves: a second ``facegate serve`` on the same file refuses.

Each server keeps its gallery in memory and SQLite has no LISTEN/NOTIFY, so a second process
would serve a stale gallery (a withdrawn person still matching there). An exclusive ``flock``
on a lock file beside the database is held for the process lifetime; the kernel releases it
when the process dies, even on ``kill -9``, so there is no stale lock to clean up.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from facegate.errors import AlreadyServing


class ProcessLock:
    """An exclusive, non-blocking lock on ``path`` held until ``release`` or process exit."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> ProcessLock:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise AlreadyServing(
                f"another facegate process (pid {holder}) already serves this SQLite database "
                f"(lock {self.path}). With SQLite only one process may serve, otherwise its "
                "gallery would go stale; stop the other one, or use PostgreSQL "
                "(--db postgresql://...) to run several gate processes."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def sqlite_path(database_url: str) -> Path | None:
    """The file behind a ``sqlite:///`` URL, or None for other databases and in-memory ones."""
    prefix = "sqlite:///"
    if not database_url.startswith(prefix):
        return None
    rest = database_url[len(prefix) :].split("?", 1)[0]
    if not rest or rest == ":memory:":
        return None
    return Path(rest)


def lock_for_database(database_url: str) -> ProcessLock | None:
    """Take the single-process lock if the database is a SQLite file; None otherwise."""
    path = sqlite_path(database_url)
    if path is None:
        return None
    return ProcessLock(path.with_name(path.name + ".serve.lock")).acquire()
