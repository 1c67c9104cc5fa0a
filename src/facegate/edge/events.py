"""Events out: the outbox relay, the MQTT sink (with Home Assistant discovery) and signed
webhooks (issue 15).

Every access decision leaves an outbox row in the transaction that recorded it
(``facegate.domain.events``). ``OutboxRelay`` runs one thread per destination: it reads the
rows that destination has not acknowledged, sends them, and marks them delivered only after
the broker's PUBACK (QoS 1) or the receiver's 2xx. A destination that is down is retried
with backoff; nothing is lost, and a row it acknowledged is never sent to it again.
Consumers can also de-duplicate on ``event_id``.

The payload is the outbox row's JSON, built by a whitelist: a pseudonym at most, never a
name, an image, a template or a score (CAC-FR-08a, principle 4). Nothing here adds to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from facegate.domain.events import (
    OutboxItem,
    access_points_for_discovery,
    egress_safe,
    expired_undelivered,
    mark_delivered,
    pending_events,
    purge_outbox,
    relay_lock,
)
from facegate.errors import FacegateError

log = logging.getLogger("facegate.events")

SIGNATURE_HEADER = "X-Facegate-Signature"
TIMESTAMP_HEADER = "X-Facegate-Timestamp"
EVENT_ID_HEADER = "X-Facegate-Event-Id"
DEFAULT_PREFIX = "facegate"
# A receiver refuses a signature older (or newer) than this: a replayed request is stale.
DEFAULT_TOLERANCE_S = 300


class EventDestinationError(FacegateError):
    """An event destination is misconfigured (its URL, secret or TLS files)."""

    code = "invalid_event_destination"
    http_status = 422


class SinkUnavailable(Exception):
    """The destination did not acknowledge; the relay retries later with backoff."""


# --- destinations ---------------------------------------------------------------------------


def redact(url: str) -> str:
    """The URL without its password and secret, for logs, metrics and the compliance report."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    return f"{parts.scheme}://{netloc}{parts.path}"


def destination_key(url: str) -> str:
    """A short stable id for a destination: its redacted URL's digest (the secret may
    rotate without resending everything)."""
    return hashlib.sha256(redact(url).encode()).hexdigest()[:32]


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """``v1=`` + HMAC-SHA256 over ``timestamp.body`` with the endpoint's secret."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify_signature(
    secret: bytes | str,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """What a webhook receiver runs: True only for an untampered body signed with ``secret``
    at a time within ``tolerance_s`` of now (a replay of an old request is refused)."""
    key = secret.encode() if isinstance(secret, str) else secret
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - sent_at) > tolerance_s:
        return False
    return hmac.compare_digest(sign(key, timestamp, body), signature or "")


class Sink:
    """One destination; ``deliver`` returns the outbox ids the destination acknowledged."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.key = destination_key(url)
        self.name = redact(url)

    def deliver(self, items: list[OutboxItem]) -> list[int]:
        raise NotImplementedError

    def reset(self) -> None:
        """Drop the connection after a failure; the next ``deliver`` starts afresh."""

    def close(self) -> None:
        self.reset()


def _fragment_secret(url: str) -> bytes:
    frag = parse_qs(urlsplit(url).fragment)
    if "secret_file" in frag:
        path = Path(frag["secret_file"][0])
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise EventDestinationError(
                f"cannot read the webhook secret file {path}: {exc.strerror}"
            ) from None
    else:
        secret = unquote(frag.get("secret", [""])[0])
    if len(secret) < 16:
        raise EventDestinationError(
            f"the signing secret of {redact(url)} is shorter than 16 characters; use a long "
            "random one (e.g. `openssl rand -hex 32`)"
        )
    return secret.encode()


class WebhookSink(Sink):
    """POSTs each event as JSON, signed (see ``sign``); 2xx is the acknowledgement."""

    def __init__(self, url: str, *, timeout_s: float = 10.0) -> None:
        super().__init__(url)
        self.secret = _fragment_secret(url)
        parts = urlsplit(url)
        self.target = parts._replace(fragment="").geturl()
        self.timeout_s = timeout_s

    def deliver(self, items: list[OutboxItem]) -> list[int]:
        acked: list[int] = []
        for item in items:
            body = item.payload.encode()
            ts = str(int(time.time()))
            req = urllib.request.Request(
                self.target,
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": "facegate-events/1",
                    EVENT_ID_HEADER: str(item.event_id),
                    TIMESTAMP_HEADER: ts,
                    SIGNATURE_HEADER: sign(self.secret, ts, body),
                },
            )
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    ok = 200 <= resp.status < 300
            except urllib.error.HTTPError as exc:
                ok = False
                log.warning(
                    "webhook refused an event",
                    extra={"fields": {"destination": self.name, "status": exc.code}},
                )
            except (OSError, urllib.error.URLError) as exc:
                if acked:
                    return acked
                raise SinkUnavailable(f"{self.name}: {exc}") from None
            if not ok:
                if acked:
                    return acked
                raise SinkUnavailable(f"{self.name}: not acknowledged")
            acked.append(item.id)
        return acked


@dataclass(frozen=True)
class MqttTarget:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None
    prefix: str


def parse_mqtt_url(url: str) -> MqttTarget:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise EventDestinationError(f"{redact(url)} is not an mqtt:// or mqtts:// URL")
    tls = parts.scheme == "mqtts"
    prefix = parts.path.strip("/") or DEFAULT_PREFIX
    if any(c in prefix for c in "+#") or len(prefix) > 100:
        raise EventDestinationError(f"the topic prefix {prefix!r} may not hold + or #")
    return MqttTarget(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        prefix=prefix,
    )


def _new_client(target: MqttTarget, client_id: str, will_topic: str | None) -> Any:
    import paho.mqtt.client as mqtt

    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv311,
        clean_session=True,
    )
    if target.username:
        client.username_pw_set(target.username, target.password)
    if target.tls:
        client.tls_set_context(ssl.create_default_context())
    if will_topic:
        client.will_set(will_topic, "offline", qos=1, retain=True)
    client.max_inflight_messages_set(100)
    return client


class _Connection:
    """One paho client, connected synchronously (CONNACK awaited), loop in its thread."""

    def __init__(self, target: MqttTarget, client_id: str, will_topic: str | None) -> None:
        self.client = _new_client(target, client_id, will_topic)
        self.connected = threading.Event()
        self.refused: str | None = None

        def on_connect(client, userdata, flags, reason_code, properties):  # noqa: ARG001
            if reason_code.is_failure:
                self.refused = str(reason_code)
            else:
                self.connected.set()

        def on_disconnect(client, userdata, flags, reason_code, properties):  # noqa: ARG001
            self.connected.clear()

        self.client.on_connect = on_connect
        self.client.on_disconnect = on_disconnect
        try:
            self.client.connect(target.host, target.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise SinkUnavailable(f"{target.host}:{target.port}: {exc}") from None
        self.client.loop_start()
        if not self.connected.wait(10) or self.refused:
            self.close()
            raise SinkUnavailable(
                f"{target.host}:{target.port}: no CONNACK ({self.refused or 'timeout'})"
            )

    def publish(self, topic: str, payload: str | bytes, *, retain: bool = False) -> Any:
        if not self.connected.is_set():
            raise SinkUnavailable("disconnected")
        return self.client.publish(topic, payload, qos=1, retain=retain)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        with contextlib.suppress(Exception):
            self.client.loop_stop()


def _wait_acked(infos: list[Any], timeout_s: float) -> list[bool]:
    deadline = time.monotonic() + timeout_s
    out = []
    for info in infos:
        left = max(0.0, deadline - time.monotonic())
        with contextlib.suppress(Exception):
            info.wait_for_publish(left)
        out.append(bool(info.is_published()))
    return out


def event_topic(prefix: str, site_id: str, access_point_id: str | None) -> str:
    return f"{prefix}/{site_id}/{access_point_id or '_'}/event"


def discovery_config(
    prefix: str, site_id: str, access_point_id: str, name: str, discovery_prefix: str
) -> tuple[str, dict[str, Any]]:
    """Home Assistant MQTT discovery: each access point an ``event`` entity whose event
    types are the decisions (``allow``/``deny``), with method and reason as attributes."""
    unique = f"facegate_{site_id}_{access_point_id}".replace(".", "_").replace(":", "_")
    config = {
        "name": name,
        "unique_id": unique,
        "object_id": unique,
        "state_topic": event_topic(prefix, site_id, access_point_id),
        "event_types": ["allow", "deny"],
        # HA wants {"event_type": ...}; the published payload keeps its own field names.
        "value_template": (
            "{{ {'event_type': value_json.decision, 'method': value_json.method, "
            "'reason': value_json.reason, 'subject': value_json.subject, "
            "'event_id': value_json.event_id} | to_json }}"
        ),
        "availability_topic": f"{prefix}/status",
        "device": {
            "identifiers": [f"facegate_{site_id}"],
            "name": f"facegate {site_id}",
            "manufacturer": "facegate",
        },
    }
    return f"{discovery_prefix}/event/{unique}/config", config


class MqttSink(Sink):
    """Publishes each event on ``<prefix>/<site>/<access point>/event`` with QoS 1 and waits
    for the PUBACKs; announces each access point to Home Assistant (retained)."""

    def __init__(
        self,
        url: str,
        *,
        discovery: bool = True,
        discovery_prefix: str = "homeassistant",
        access_points: Callable[[], list[tuple[str, str, str]]] | None = None,
        ack_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(url)
        self.target = parse_mqtt_url(url)
        self.discovery = discovery
        self.discovery_prefix = discovery_prefix
        self.access_points = access_points
        self.ack_timeout_s = ack_timeout_s
        # Unique per process: several gate processes may publish to one broker.
        self.client_id = f"facegate-events-{self.key[:8]}-{secrets.token_hex(4)}"
        self._conn: _Connection | None = None
        self._announced: set[tuple[str, str]] = set()

    def _connection(self) -> _Connection:
        if self._conn is None:
            conn = _Connection(self.target, self.client_id, f"{self.target.prefix}/status")
            self._conn = conn
            self._announced = set()
            infos = [conn.publish(f"{self.target.prefix}/status", "online", retain=True)]
            if self.discovery and self.access_points is not None:
                for site_id, ap_id, name in self.access_points():
                    infos.append(self._announce(conn, site_id, ap_id, name))
            if not all(_wait_acked(infos, self.ack_timeout_s)):
                self.reset()
                raise SinkUnavailable(f"{self.name}: discovery not acknowledged")
        return self._conn

    def _announce(self, conn: _Connection, site_id: str, ap_id: str, name: str) -> Any:
        topic, config = discovery_config(
            self.target.prefix, site_id, ap_id, name, self.discovery_prefix
        )
        self._announced.add((site_id, ap_id))
        return conn.publish(topic, json.dumps(config, ensure_ascii=False), retain=True)

    def deliver(self, items: list[OutboxItem]) -> list[int]:
        conn = self._connection()
        announcements: list[Any] = []
        published: list[Any] = []
        for item in items:
            if self.discovery and item.access_point_id:
                where = (item.site_id, item.access_point_id)
                if where not in self._announced:  # an access point added since we connected
                    announcements.append(self._announce(conn, *where, where[1]))
            topic = event_topic(self.target.prefix, item.site_id, item.access_point_id)
            published.append(conn.publish(topic, item.payload))
        acks = _wait_acked(announcements + published, self.ack_timeout_s)[len(announcements) :]
        acked = [item.id for item, ok in zip(items, acks, strict=True) if ok]
        if len(acked) < len(items):
            self.reset()
            if not acked:
                raise SinkUnavailable(f"{self.name}: no PUBACK")
        return acked

    def reset(self) -> None:
        # A fresh client after any failure: paho's own queue never re-sends behind our back.
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def sink_for(url: str, **mqtt_options: Any) -> Sink:
    scheme = urlsplit(url).scheme
    if scheme in ("mqtt", "mqtts"):
        return MqttSink(url, **mqtt_options)
    if scheme in ("http", "https"):
        return WebhookSink(url)
    raise EventDestinationError(f"{redact(url)}: use mqtt://, mqtts:// or https://")


# --- the relay ------------------------------------------------------------------------------


class OutboxRelay:
    """One thread per destination: outbox rows -> destination -> mark delivered.

    ``session_factory`` opens sessions on the gate's store. ``wake()`` (called after a
    decision commits) makes the threads look at once instead of at the next poll."""

    def __init__(
        self,
        session_factory: Callable[[], Any],
        sinks: list[Sink],
        *,
        batch: int = 100,
        poll_s: float = 0.5,
        retry_max_s: float = 30.0,
        keep: timedelta = timedelta(hours=72),
        on_published: Callable[[OutboxItem, str], None] | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.sinks = sinks
        self.batch = batch
        self.poll_s = poll_s
        self.retry_max_s = retry_max_s
        self.keep = keep
        self.on_published = on_published
        self._stop = threading.Event()
        self._wake = [threading.Event() for _ in sinks]
        self._threads: list[threading.Thread] = []
        self.up = {s.key: False for s in sinks}
        self.delivered = dict.fromkeys((s.key for s in sinks), 0)

    def start(self) -> None:
        for i, sink in enumerate(self.sinks):
            t = threading.Thread(
                target=self._run, args=(i, sink), name=f"events-{sink.key[:8]}", daemon=True
            )
            t.start()
            self._threads.append(t)
        purge = threading.Thread(target=self._purge_loop, name="events-purge", daemon=True)
        purge.start()
        self._threads.append(purge)

    def wake(self) -> None:
        for w in self._wake:
            w.set()

    def stop(self) -> None:
        self._stop.set()
        self.wake()
        for t in self._threads:
            t.join(15)
        for sink in self.sinks:
            with contextlib.suppress(Exception):
                sink.close()

    def drain_once(self, sink: Sink) -> int:
        """Send what ``sink`` has pending, one batch; returns the number handled."""
        with self.session_factory() as s:
            if not relay_lock(s, sink.key):
                return 0  # another gate process relays this destination (PostgreSQL)
            items = pending_events(s, sink.key, self.batch)
            if not items:
                return 0
            if s.get_bind().dialect.name == "sqlite":
                s.rollback()  # never hold SQLite's write lock across the network
            refused = [i.id for i in items if not egress_safe(i.payload)]
            if refused:
                # CAC-FR-08a: never sent; marked handled so it cannot block the queue.
                log.error(
                    "an outbox row is not the whitelisted event payload; it is not sent",
                    extra={"fields": {"outbox_ids": refused}},
                )
            to_send = [i for i in items if i.id not in refused]
            acked = sink.deliver(to_send) if to_send else []
            mark_delivered(s, sink.key, refused + acked)  # commits (and frees the lock)
        self.delivered[sink.key] += len(acked)
        if self.on_published is not None:
            done = set(acked)
            for item in to_send:
                if item.id in done:
                    self.on_published(item, sink.key)
        return len(acked) + len(refused)

    def _run(self, i: int, sink: Sink) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            try:
                sent = self.drain_once(sink)
                if not self.up[sink.key]:
                    log.info("event destination up", extra={"fields": {"destination": sink.name}})
                self.up[sink.key] = True
                backoff = 0.0
                if sent:
                    continue  # more may be waiting
            except SinkUnavailable as exc:
                if self.up[sink.key] or backoff == 0.0:
                    log.warning(
                        "event destination unavailable; events wait in the outbox",
                        extra={"fields": {"destination": sink.name, "error": str(exc)}},
                    )
                self.up[sink.key] = False
                sink.reset()
                backoff = min(self.retry_max_s, max(0.2, backoff * 2))
                self._stop.wait(backoff)
                continue
            except Exception:  # noqa: BLE001 - a database hiccup must not end the thread
                log.exception("event relay error", extra={"fields": {"destination": sink.name}})
                self._stop.wait(1.0)
                continue
            self._wake[i].wait(self.poll_s)
            self._wake[i].clear()

    def _purge_loop(self) -> None:
        while not self._stop.wait(60.0):
            try:
                keys = [k.key for k in self.sinks]
                with self.session_factory() as s:
                    lost = expired_undelivered(s, keys, self.keep)
                    purge_outbox(s, keys, self.keep)
                if lost:
                    log.warning(
                        "events older than events_keep_hours dropped undelivered",
                        extra={"fields": {"count": lost}},
                    )
            except Exception:  # noqa: BLE001
                log.exception("outbox purge failed")


def relay_from_settings(settings: Any, session_factory: Callable[[], Any]) -> OutboxRelay:
    """The relay ``facegate serve`` runs for ``Settings.events``."""

    def aps() -> list[tuple[str, str, str]]:
        with session_factory() as s:
            return access_points_for_discovery(s)

    sinks = [
        sink_for(
            url,
            discovery=settings.events_discovery,
            discovery_prefix=settings.events_discovery_prefix,
            access_points=aps,
        )
        if urlsplit(url).scheme.startswith("mqtt")
        else sink_for(url)
        for url in settings.events
    ]
    return OutboxRelay(
        session_factory,
        sinks,
        retry_max_s=settings.events_retry_max_s,
        keep=timedelta(hours=settings.events_keep_hours),
    )


# --- retained state for the camera agent ---------------------------------------------------

_HEALTH_VALUE = (bool, int, float, str, type(None))


class StatusPublisher:
    """Retained door state and agent health on ``<prefix>/<site>/<access point>/door`` and
    ``.../health``, for the camera agent. Values are small scalars only (never a frame)."""

    def __init__(self, url: str, *, client_id: str | None = None) -> None:
        self.target = parse_mqtt_url(url)
        self.name = redact(url)
        self.client_id = client_id or f"facegate-status-{destination_key(url)[:8]}"
        self._conn: _Connection | None = None
        self._lock = threading.Lock()

    def _publish(self, topic: str, body: dict[str, Any]) -> None:
        for key, value in body.items():
            if not isinstance(value, _HEALTH_VALUE) or (isinstance(value, str) and len(value) > 64):
                raise EventDestinationError(f"status field {key!r} must be a short scalar")
        payload = json.dumps(body, separators=(",", ":"))
        with self._lock:
            for attempt in range(2):
                try:
                    if self._conn is None:
                        self._conn = _Connection(self.target, self.client_id, None)
                    if all(_wait_acked([self._conn.publish(topic, payload, retain=True)], 10)):
                        return
                    raise SinkUnavailable("no PUBACK")
                except SinkUnavailable as exc:
                    if self._conn is not None:
                        self._conn.close()
                        self._conn = None
                    if attempt:
                        raise EventDestinationError(
                            f"could not publish status to {self.name}: {exc}"
                        ) from None

    def door_state(self, site_id: str, access_point_id: str, state: str, **extra: Any) -> None:
        """``state``: open / closed / failed (a door output that could not be driven)."""
        body = {"state": state, "time": _now_iso(), **extra}
        self._publish(f"{self.target.prefix}/{site_id}/{access_point_id}/door", body)

    def health(self, site_id: str, access_point_id: str, **fields: Any) -> None:
        """E.g. ``camera_up=True, frames_read=..., decisions_sent=..., door_opens=...``."""
        body = {"time": _now_iso(), **fields}
        self._publish(f"{self.target.prefix}/{site_id}/{access_point_id}/health", body)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _now_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def publish_health(url: str, site_id: str, access_point_id: str, **fields: Any) -> None:
    """One-shot retained health message (opens and closes its own connection)."""
    pub = StatusPublisher(url)
    try:
        pub.health(site_id, access_point_id, **fields)
    finally:
        pub.close()


def publish_door_state(url: str, site_id: str, access_point_id: str, state: str) -> None:
    """One-shot retained door state message."""
    pub = StatusPublisher(url)
    try:
        pub.door_state(site_id, access_point_id, state)
    finally:
        pub.close()
