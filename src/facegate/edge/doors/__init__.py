"""Door outputs: one small class per kind, picked from one ``--door SPEC`` string.

A driver is told to open a door after an ``allow``; it never decides anything itself. Specs:

- ``http://...`` / ``https://...``: an HTTP call to an IP relay or a building system
- ``mqtt://host:port/topic``: publish an open command (Home Assistant, ESPHome, a PLC)
- ``osdp://...``: facegate as an OSDP reader reporting the allowed person's card number
- ``gpio:CHIP:LINE``: a relay on a single-board computer (only where testable)

Drivers are imported lazily so that an agent without, say, libosdp installed can still drive
an HTTP relay.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import ClassVar

from facegate.errors import FacegateError


class DoorError(FacegateError):
    """The door output could not be driven (the decision itself stays recorded)."""

    code = "door_output_failed"
    http_status = 502


class DoorSpecError(FacegateError):
    """The --door setting is not a door output facegate knows."""

    code = "invalid_door_spec"
    http_status = 422


@dataclass(frozen=True)
class DoorCommand:
    """What a driver needs to open a door after an ``allow``; never a face or a name."""

    access_point_id: str
    request_id: str
    subject: str | None = None  # the person's pseudonym, when the decision named one
    card_number: str | None = None  # for drivers that report a credential (OSDP)
    open_s: float = 3.0  # how long the door stays released


class DoorDriver:
    """Base class: one instance per configured output, reused for every opening."""

    schemes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, spec: str) -> None:
        self.spec = spec

    def open(self, command: DoorCommand) -> None:
        """Release the door; raise DoorError when the output cannot be driven."""
        raise NotImplementedError

    def close(self) -> None:
        """Free connections; called once when the agent stops."""

    def describe(self) -> str:
        """The spec without secrets, for logs and metrics labels."""
        return self.spec.split("@")[-1]


# scheme -> "module:Class"; a driver module exists only where its peer is tested for real.
_DRIVERS: dict[str, str] = {
    "http": "facegate.edge.doors.http:HttpDoor",
    "https": "facegate.edge.doors.http:HttpDoor",
    "mqtt": "facegate.edge.doors.mqtt:MqttDoor",
    "mqtts": "facegate.edge.doors.mqtt:MqttDoor",
    "osdp": "facegate.edge.doors.osdp:OsdpDoor",
}


def door_from_spec(spec: str) -> DoorDriver:
    """The driver for one ``--door`` value, or DoorSpecError naming the kinds known."""
    scheme = spec.split(":", 1)[0].lower() if ":" in spec else ""
    target = _DRIVERS.get(scheme)
    if target is None:
        known = ", ".join(sorted(_DRIVERS))
        raise DoorSpecError(f"door output {spec!r} is not supported; use one of: {known}")
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise DoorSpecError(f"door output {scheme!r} is not available here: {exc}") from exc
    return getattr(module, class_name)(spec)
