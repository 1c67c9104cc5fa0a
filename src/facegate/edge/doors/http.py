"""``http(s)://...``: an HTTP call to an IP relay or a building system after an ``allow``.

Everything after ``#`` configures the call and is never sent (a URL fragment stays on this
side), so the relay's own URL keeps its query untouched::

    http://10.0.0.5/relay/0?turn=on&timer={open_s}
    https://bms.local/api/doors/3/open#method=PUT&header=Authorization:Bearer%20T&retries=3
    http://user:pass@relay.local/cgi-bin/open#body={"door":1,"pulse_ms":{open_ms}}

Fragment keys: ``method`` (default POST), ``body`` (default a small JSON object naming the
access point, the request id and the open time; none for GET), ``header`` (``Name: value``,
repeatable), ``content_type``, ``timeout`` (seconds per attempt), ``retries`` (extra attempts
after a failure, with backoff), ``open_s`` (how long the door stays released). ``{open_s}``,
``{open_ms}``, ``{request_id}``, ``{access_point}`` and ``{subject}`` (the pseudonym, never a
name) are filled in the URL and the body. User and password in the URL are sent as HTTP basic
authentication and never appear in logs.
"""

from __future__ import annotations

import json
import logging
import re
import time
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

import httpx

from facegate.edge.doors import DoorCommand, DoorDriver, DoorError, DoorSpecError

log = logging.getLogger("facegate.edge.doors")

_FIELD = re.compile(r"\{(open_s|open_ms|request_id|access_point|subject)\}")
_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def _fill(template: str, cmd: DoorCommand, open_s: float, escape: bool) -> str:
    values = {
        "open_s": f"{open_s:g}",
        "open_ms": str(round(open_s * 1000)),
        "request_id": cmd.request_id,
        "access_point": cmd.access_point_id,
        "subject": cmd.subject or "",
    }
    return _FIELD.sub(lambda m: quote(values[m[1]]) if escape else values[m[1]], template)


class HttpDoor(DoorDriver):
    schemes = ("http", "https")

    def __init__(self, spec: str) -> None:
        super().__init__(spec)
        parts = urlsplit(spec)
        if parts.scheme not in self.schemes or not parts.hostname:
            raise DoorSpecError(f"door output {self.describe()!r} is not an http(s) URL")
        opts = parse_qsl(parts.fragment, keep_blank_values=True)
        self.method = "POST"
        self.body: str | None = None
        self.headers: dict[str, str] = {}
        self.timeout_s: float | None = None
        self.retries: int | None = None
        self.open_s: float | None = None
        for key, value in opts:
            self._option(key, value)
        if self.method == "GET" and self.body is not None:
            raise DoorSpecError("a GET door output cannot carry a body: use POST or PUT")
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        if ":" in parts.hostname:  # an IPv6 literal
            netloc = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
        self.url_template = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        self._auth = (
            httpx.BasicAuth(unquote(parts.username or ""), unquote(parts.password or ""))
            if parts.username is not None
            else None
        )
        self._client = httpx.Client(follow_redirects=False, auth=self._auth)
        self.backoff_s = 0.2

    def _option(self, key: str, value: str) -> None:
        try:
            if key == "method":
                self.method = value.upper()
                if self.method not in _METHODS:
                    raise DoorSpecError(f"HTTP method {value!r} is not one of {sorted(_METHODS)}")
            elif key == "body":
                self.body = value
            elif key == "header":
                name, sep, val = value.partition(":")
                if not sep or not name.strip():
                    raise DoorSpecError(f"header {name!r} must be written as 'Name: value'")
                self.headers[name.strip()] = val.strip()
            elif key == "content_type":
                self.headers["Content-Type"] = value
            elif key == "timeout":
                self.timeout_s = float(value)
            elif key == "retries":
                self.retries = int(value)
            elif key == "open_s":
                self.open_s = float(value)
            else:
                raise DoorSpecError(
                    f"unknown door option {key!r}; use method, body, header, content_type, "
                    "timeout, retries or open_s"
                )
        except ValueError:
            raise DoorSpecError(f"door option {key}={value!r} is not a number") from None
        if (self.timeout_s is not None and self.timeout_s <= 0) or (
            self.retries is not None and not 0 <= self.retries <= 10
        ):
            raise DoorSpecError("door timeout must be positive and retries between 0 and 10")

    def use_defaults(self, *, timeout_s: float, retries: int, open_s: float) -> None:
        """Fill in what the spec did not say, from the agent's settings."""
        self.timeout_s = timeout_s if self.timeout_s is None else self.timeout_s
        self.retries = retries if self.retries is None else self.retries
        self.open_s = open_s if self.open_s is None else self.open_s

    def describe(self) -> str:
        parts = urlsplit(self.spec)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"

    def _request(self, cmd: DoorCommand) -> tuple[str, str | None, dict[str, str]]:
        open_s = self.open_s if self.open_s is not None else cmd.open_s
        url = _fill(self.url_template, cmd, open_s, escape=True)
        headers = dict(self.headers)
        if self.body is not None:
            body: str | None = _fill(self.body, cmd, open_s, escape=False)
        elif self.method == "GET":
            body = None
        else:
            body = json.dumps(
                {
                    "action": "open",
                    "access_point": cmd.access_point_id,
                    "request_id": cmd.request_id,
                    "open_s": open_s,
                }
            )
            headers.setdefault("Content-Type", "application/json")
        return url, body, headers

    def open(self, command: DoorCommand) -> None:
        url, body, headers = self._request(command)
        attempts = 1 + (self.retries if self.retries is not None else 2)
        timeout = self.timeout_s if self.timeout_s is not None else 2.0
        last = ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(min(self.backoff_s * 2 ** (attempt - 1), 2.0))
            try:
                r = self._client.request(
                    self.method, url, content=body, headers=headers, timeout=timeout
                )
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                log.warning("door %s: attempt %d failed: %s", self.describe(), attempt + 1, last)
                continue
            if r.status_code < 400:
                return
            last = f"HTTP {r.status_code}"
            log.warning("door %s: attempt %d answered %s", self.describe(), attempt + 1, last)
            if r.status_code < 500 and r.status_code not in (408, 429):
                break  # the relay refused the request itself: another try will not help
        raise DoorError(f"door output {self.describe()} failed: {last}")

    def close(self) -> None:
        self._client.close()
