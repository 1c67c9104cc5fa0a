"""Connection limits for ``facegate serve`` (issue 13 item 4).

uvicorn bounds the idle time between requests (keep-alive) but not the time a client takes
to send its request headers, nor the number of open connections. A client that opens
thousands of connections and sends a byte now and then would hold them for ever. Here:

* request headers must be complete within ``Settings.header_timeout_s`` of connecting, or of
  the previous response on a kept-alive connection, else the connection is closed;
* at most ``Settings.max_connections`` connections are open at once: beyond that a new
  connection is closed at once (uvicorn's ``limit_concurrency`` answers 503 to requests
  arriving on connections near the limit);
* the body deadline is enforced by ``facegate.api.limits.BodyLimitMiddleware`` (408);
* the process may open enough file descriptors for the connection limit.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from facegate.config import Settings

log = logging.getLogger("facegate.server")


def protocol_class(settings: Settings) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with a header deadline and a connection cap."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    header_timeout = settings.header_timeout_s
    max_connections = settings.max_connections

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _fg_header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                log.warning("connection limit reached; a new connection was closed")
                transport.abort()
                return
            self._fg_arm()

        def _fg_arm(self) -> None:
            self._fg_disarm()
            self._fg_header_timer = self.loop.call_later(header_timeout, self._fg_expired)

        def _fg_disarm(self) -> None:
            if self._fg_header_timer is not None:
                self._fg_header_timer.cancel()
                self._fg_header_timer = None

        def _fg_expired(self) -> None:
            self._fg_header_timer = None
            if not self.transport.is_closing():
                # A request whose headers never finished: nobody to answer, just close.
                self.transport.abort()

        def on_headers_complete(self) -> None:
            self._fg_disarm()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._fg_arm()  # the next request's headers get the same deadline

        def connection_lost(self, exc: Exception | None) -> None:
            self._fg_disarm()
            super().connection_lost(exc)

    return GuardedHttpToolsProtocol


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft open-files limit towards ``wanted`` (never above the hard limit)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return int(soft)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn.run / uvicorn.Config keyword arguments for these limits."""
    opts: dict[str, Any] = {
        "timeout_keep_alive": settings.keep_alive_s,
        "limit_concurrency": settings.max_connections,
        # A burst of connections waits in the kernel's queue instead of being dropped (a
        # dropped SYN costs the client a 1-3-7 s retry); the kernel caps it at somaxconn.
        "backlog": settings.max_connections,
        "h11_max_incomplete_event_size": 16 * 1024,
    }
    try:
        opts["http"] = protocol_class(settings)
    except ImportError:  # httptools missing: uvicorn's h11 protocol, without the header deadline
        log.warning("httptools is not installed: no request-header deadline")
    return opts
