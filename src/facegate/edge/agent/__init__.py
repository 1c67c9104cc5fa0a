"""``facegate agent``: a camera at a door, deciding one passage per person per approach.

``camera`` reads frames (OpenCV's FFmpeg backend), ``tracker`` follows faces across frames,
``core.Agent`` builds bursts and obeys the decision, ``deciders`` decide in process or over
the gate server's API, ``readers`` take card and QR lines. See docs/edge.md.
"""

from facegate.edge.agent.core import Agent, AgentConfig, Outcome
from facegate.edge.agent.deciders import (
    Credential,
    DecideUnavailable,
    LocalDecider,
    RemoteDecider,
)

__all__ = [
    "Agent",
    "AgentConfig",
    "Credential",
    "DecideUnavailable",
    "LocalDecider",
    "Outcome",
    "RemoteDecider",
]
