"""One passage at a door, end to end: frames to probes, probes and credential to a decision.

The one decide code path shared by every adapter: the REST API (``api.gate``) and the camera
agent deciding in process (``edge.agent``) both call ``analyze_frames`` then
``decide_passage``; an agent talking to a server reaches the same two functions through the
decide API. ``rt`` is the process runtime (``api.runtime.GateRuntime``): it owns the store,
the pipeline, the galleries and the de-duplicator.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from facegate.access import decide as gate
from facegate.access import liveness
from facegate.access.burst import FrameProbe
from facegate.errors import FacegateError, ImageDecodeError

log = logging.getLogger("facegate.decide")


def safe_decode(pipeline: Any, data: Any):
    """Decode untrusted bytes; any decoder failure is the sender's bad input, never a 500."""
    try:
        return pipeline.decode(data)
    except FacegateError:
        raise
    except Exception as exc:  # noqa: BLE001 - a decoder library bug on hostile input
        log.warning("decoder raised %s on an upload", type(exc).__name__)
        raise ImageDecodeError("the data is not a readable image", zh="无法读取这张图片") from None


def analyze_frames(
    pipeline: Any,
    frames: Sequence[Any],
    liveness_mode: str = "passive",
    challenge: Callable[[Sequence[Any]], bool] | None = None,
) -> list[FrameProbe]:
    """Decode and embed each frame (bytes or an RGB array); the pixels are dropped on return.

    Liveness runs on the decoded frames and the faces found, BEFORE any matching (issue 14,
    CAC-FR-14): a refused attempt gives template-less probes whose reason is
    ``liveness_failed`` (``liveness.check_frames``). ``liveness_mode`` is
    ``liveness.mode_at(...)`` for this decision; ``challenge(faces)`` answers an active
    challenge at a ``challenge`` point.
    """
    probes = []
    rgbs, found = [], []
    for data in frames:
        rgb = safe_decode(pipeline, data)
        faces = pipeline.analyze(rgb, profile="gate", max_faces=1)
        rgbs.append(rgb)
        found.append(faces[0] if faces else None)
        if not faces:
            probes.append(FrameProbe(None, 0.0, "no_face"))
            continue
        face = faces[0]  # "the" face: the largest, or the most central of equally large ones
        if face.template is None:
            why = face.quality.reasons[0] if face.quality.reasons else "unknown"
            probes.append(FrameProbe(None, 0.0, f"low_quality:{why}"))
            continue
        m = face.quality.metrics
        # Larger, sharper, more confidently detected faces first.
        rank = float(m.get("face_px", 0.0)) * float(m.get("detector_score", face.score))
        probes.append(FrameProbe(face.template, rank))
    # A refused attempt keeps no template: the probes made above are dropped with it.
    if not liveness.check_frames(pipeline, rgbs, found, liveness_mode, challenge):
        return liveness.refused(len(frames))
    return probes


def liveness_mode(rt: Any, access_point_id: str, credential: gate.CredentialInput) -> str:
    """The liveness check this decision gets at this access point (from the database)."""
    with rt.store.session() as s:
        return liveness.mode_at(gate.DbFacts(s), access_point_id, credential)


def decide_passage(
    rt: Any,
    *,
    access_point_id: str,
    request_id: str,
    actor: str,
    credential: gate.CredentialInput,
    probes: list[FrameProbe] | None,
    site_id: str | None = None,
) -> gate.Decision:
    """Decide and record one passage (a blocking call: run it off an event loop)."""
    ctx = rt.gate_context(with_face=probes is not None)
    # Before the session opens: see ``gate.decide`` on lock order.
    if site_id is None and probes is not None:
        with rt.store.session() as s:
            site_id = gate.access_point(s, access_point_id).site_id
    site_gallery = ctx.galleries.site(site_id) if probes is not None and site_id else None
    with rt.store.session() as s:
        return gate.decide(
            gate.DbFacts(s),
            ctx,
            access_point_id=access_point_id,
            request_id=request_id,
            actor=actor,
            credential=credential,
            frames=probes,
            site_gallery=site_gallery,
        )


def face_use_allowed(rt: Any, access_point_id: str, credential: gate.CredentialInput) -> bool:
    """Ask before analysing frames sent with a credential: someone who declined or withdrew
    is decided on the credential alone and their frame is never processed (CAC-FR-06b)."""
    if not credential.present:
        return True
    with rt.store.session() as s:
        return gate.face_use_allowed(gate.DbFacts(s), access_point_id, credential)
