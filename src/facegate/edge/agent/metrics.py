"""The agent's Prometheus metrics, in a registry of its own (served on ``--metrics-port``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class AgentMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.camera_up = Gauge(
            "facegate_agent_camera_up", "1 while the camera delivers frames", registry=r
        )
        self.camera_reconnects = Counter(
            "facegate_agent_camera_reconnects", "Times the camera dropped or ended", registry=r
        )
        self.frames_read = Counter("facegate_agent_frames_read", "Frames read", registry=r)
        self.frames_processed = Counter(
            "facegate_agent_frames_processed",
            "Frames searched for faces (the rest were skipped while busy)",
            registry=r,
        )
        self.decisions = Counter(
            "facegate_agent_decisions",
            "Decisions asked for, by outcome (allow, deny, error: facegate could not decide)",
            ["outcome"],
            registry=r,
        )
        self.door_opens = Counter(
            "facegate_agent_door_opens", "Door outputs driven after an allow", ["door"], registry=r
        )
        self.door_failures = Counter(
            "facegate_agent_door_output_failures",
            "Door outputs that failed after an allow",
            ["door"],
            registry=r,
        )
        self.usable_to_door = Histogram(
            "facegate_agent_usable_to_door_seconds",
            "From the first gate-size frame of an approach to the door output firing",
            buckets=(0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 1.2, 1.6, 2.4, 3.2, 6.4),
            registry=r,
        )
