"""``mqtt://host:port/topic``: publish an open command for a lock behind Home Assistant,
ESPHome or a PLC.

Spec::

    mqtt://[user:pass@]host[:port]/some/topic[?payload=ON][&retain=0][&timeout=5]
    mqtts://...   (TLS, system trust store)

Default payload: JSON ``{"command": "open", "access_point_id", "request_id", "open_s"}``;
``payload=`` sends a fixed string instead (``ON`` for an ESPHome or Home Assistant switch).
Sent with QoS 1; the door counts as released only after the broker's PUBACK (otherwise
DoorError, which the agent logs and counts as ``door_output_failed``). The command never
carries a name or a face; the pseudonym is not needed to open a door and is not sent.
"""

from __future__ import annotations

import json
import threading
from urllib.parse import parse_qs, unquote, urlsplit

from facegate.edge.doors import DoorCommand, DoorDriver, DoorError, DoorSpecError


class MqttDoor(DoorDriver):
    schemes = ("mqtt", "mqtts")

    def __init__(self, spec: str) -> None:
        super().__init__(spec)
        from facegate.edge.events import EventDestinationError, parse_mqtt_url

        parts = urlsplit(spec)
        self.topic = unquote(parts.path.lstrip("/"))
        if not self.topic or any(c in self.topic for c in "+#"):
            raise DoorSpecError(
                "mqtt door: give the command topic, e.g. mqtt://broker:1883/gate/main/set "
                "(no + or # wildcards)"
            )
        q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.fixed_payload = q.get("payload")
        self.retain = q.get("retain", "0") in ("1", "true", "yes")
        try:
            self.timeout_s = float(q.get("timeout", "5"))
        except ValueError:
            raise DoorSpecError("mqtt door: timeout must be a number of seconds") from None
        try:
            self.target = parse_mqtt_url(parts._replace(query="", path="").geturl())
        except EventDestinationError as exc:
            raise DoorSpecError(exc.message) from None
        self._conn = None
        self._lock = threading.Lock()

    def _payload(self, command: DoorCommand) -> str:
        if self.fixed_payload is not None:
            return self.fixed_payload
        return json.dumps(
            {
                "command": "open",
                "access_point_id": command.access_point_id,
                "request_id": command.request_id,
                "open_s": command.open_s,
            },
            separators=(",", ":"),
        )

    def open(self, command: DoorCommand) -> None:
        from facegate.edge.events import SinkUnavailable, _Connection, _wait_acked

        payload = self._payload(command)
        with self._lock:
            for attempt in range(2):  # one reconnect: the broker may have restarted
                try:
                    if self._conn is None:
                        self._conn = _Connection(self.target, "", None)
                    info = self._conn.publish(self.topic, payload, retain=self.retain)
                    if all(_wait_acked([info], self.timeout_s)):
                        return
                    raise SinkUnavailable("no PUBACK")
                except SinkUnavailable as exc:
                    if self._conn is not None:
                        self._conn.close()
                        self._conn = None
                    if attempt:
                        raise DoorError(
                            f"mqtt door {self.describe()}: the broker did not take the open "
                            f"command ({exc})"
                        ) from None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def describe(self) -> str:
        parts = urlsplit(self.spec)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}/{self.topic}"
