"""Liveness in every face decision (issue 14): the per-access-point policy and the check.

A printed photo or a phone screen must not open a door. Every face decision runs the
presentation-attack check of ``facegate.vision.liveness`` on the frames it already decoded and
the faces it already found (no second detection), BEFORE any matching: a refused attempt
becomes probes without a template whose reason is ``liveness_failed``, so ``decide`` answers
``deny`` / ``liveness_failed`` through its normal record path (access event + audit entry) and
nothing about the face is kept (CAC-FR-08a, STD-41819-05). The client never learns which
signal failed: that would coach an attacker.

Policies (``AccessPoint.liveness``):

- ``passive``: the model pair and the burst signals on the frames sent (default for gates,
  doors, elevators and lobbies);
- ``challenge``: a person faces a screen (kiosk, default there): the passive check, and a
  prompted head movement when the client ran one (``facegate.access.challenge``);
- ``off``: allowed only at a point where a credential always accompanies the face (1:1
  card+face), and reported by the compliance engine against CAC-FR-14. A face sent WITHOUT a
  credential at such a point is still checked passively: ``off`` never lets a bare face in
  unchecked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from facegate.access.burst import FrameProbe
from facegate.errors import InvalidInput

POLICIES = ("passive", "challenge", "off")
REASON = "liveness_failed"
# Methods that are a credential sent with the face in the same decision (1:1).
CREDENTIAL_METHODS = ("card", "pin", "qr")


def default_policy(kind: str) -> str:
    """Challenge where a person faces a screen (a kiosk), passive elsewhere."""
    return "challenge" if kind == "kiosk" else "passive"


def check_policy(policy: str, methods: Sequence[str]) -> str:
    """The policy, validated for an access point accepting ``methods``; raises InvalidInput."""
    if policy not in POLICIES:
        raise InvalidInput(f"liveness must be one of {', '.join(POLICIES)}", zh="活体检测方式无效")
    if policy == "off" and not any(m in CREDENTIAL_METHODS for m in methods):
        # CAC-FR-14: without liveness, only a credential shown with the face (1:1) stops a
        # photo of an enrolled person from opening the door.
        raise InvalidInput(
            "liveness can be switched off only at an access point that accepts a card, PIN "
            "or QR pass with the face (1:1); there, a face sent without a credential is still "
            "checked. Keep `passive` (or `challenge` at a kiosk) otherwise.",
            zh="只有在同时要求门卡、密码或二维码的出入口（1:1 比对）才能关闭活体检测；"
            "在那里，没有凭证的人脸仍会检查。其他出入口请保留“被动”（自助终端可用“按提示做动作”）",
        )
    return policy


def effective_mode(policy: str | None, credential_present: bool) -> str:
    """What runs for one decision: ``off`` holds only when a credential came with the face."""
    policy = policy or "passive"
    if policy == "off" and not credential_present:
        return "passive"
    return policy


def mode_at(facts, access_point_id: str, credential) -> str:
    """``effective_mode`` of an access point read from a decision's facts (database or the
    gate's offline copy), for a decision with ``credential`` (a ``CredentialInput``)."""
    ap = facts.access_point(access_point_id)
    return effective_mode(getattr(ap, "liveness", None), credential.present)


def check_frames(
    pipeline,
    rgbs: Sequence[object],
    faces: Sequence[object],
    mode: str,
    challenge: Callable[[Sequence[object]], bool] | None = None,
) -> bool:
    """True when the faces in these decoded frames are live enough to be matched.

    ``faces``: "the" face of each frame (a ``Face`` from ``analyze``) or None. With no face in
    any frame there is nothing to check (the decision says ``no_face``). ``mode`` is
    ``effective_mode(...)``; ``off`` skips the check; ``challenge`` also needs
    ``challenge(faces)`` true: the prompted movement seen (``facegate.access.challenge``).
    """
    if mode == "off" or not any(f is not None for f in faces):
        return True
    if mode == "challenge" and (challenge is None or not challenge(faces)):
        return False
    result = pipeline.liveness_of(list(rgbs), list(faces))
    return bool(result.live)


def refused(n_frames: int) -> list[FrameProbe]:
    """The probes of a refused attempt: no template, reason ``liveness_failed``."""
    return [FrameProbe(None, 0.0, REASON) for _ in range(max(n_frames, 1))]
