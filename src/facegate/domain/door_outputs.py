"""What happened at the door after a decision: a door output that could not be driven.

The decision itself is already recorded (an AccessEvent and its audit entry); a failed output
adds one audit entry ``door_output_failed`` naming the decision's request id, so an operator
sees that the person was allowed but the door did not open. Never a face, a name or a card
number: the door is named by its spec without secrets (``DoorDriver.describe``).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from facegate import audit
from facegate.domain.common import PURPOSE_ACCESS, run
from facegate.errors import InvalidInput, NotFound
from facegate.store.models import AccessPoint

DOOR_OUTPUT_FAILED = "door_output_failed"


def record_door_output_failed(
    session: Session,
    *,
    actor: str,
    access_point_id: str,
    request_id: str,
    door: str,
    error: str,
) -> None:
    """Record that the door output for an allowed passage failed (one unit of work)."""

    def work() -> None:
        if session.get(AccessPoint, access_point_id) is None:
            raise NotFound(f"no access point {access_point_id!r}", zh="找不到这个出入口")
        if not request_id or not door:
            raise InvalidInput("name the decision's request id and the door output")
        audit.append(
            session,
            actor=actor,
            operation=DOOR_OUTPUT_FAILED,
            purpose=PURPOSE_ACCESS,
            outcome="failed",
            details={
                "access_point_id": access_point_id,
                "request_id": request_id[:64],
                "door": door[:120],
                "error": error[:160],
            },
        )

    run(
        session,
        work,
        actor=actor,
        operation=DOOR_OUTPUT_FAILED,
        subject=None,
        purpose=PURPOSE_ACCESS,
    )
