"""The decision routes: what a turnstile, door controller or kiosk calls."""

from __future__ import annotations

import functools
import logging
import time
from typing import Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from facegate.access import challenge, liveness
from facegate.access import decide as gate
from facegate.access.burst import FrameProbe
from facegate.api.auth import Principal, require
from facegate.api.errors import error_responses
from facegate.api.uploads import read_decide_input
from facegate.errors import Busy, FacegateError, ImageDecodeError

log = logging.getLogger("facegate.api")

router = APIRouter(tags=["gate"])

AccessPointId = Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._-]+$")


class DecisionOut(BaseModel):
    decision: Literal["allow", "deny"]
    method: str = Field(description="face, card, pin, qr, a `+` combination, or staffed")
    subject: str | None = Field(description="the person's pseudonym; never a name")
    reason: str = Field(
        description="`ok` or a machine reason: no_face, low_quality:<why>, no_match, ambiguous, "
        "burst_disagree, not_enrolled_here, consent_withdrawn, consent_renewal_required, "
        "face_not_enabled, liveness_failed, method_not_accepted:<m>, unknown_credential, "
        "credential_revoked, credential_expired, credential_mismatch, not_valid_here, "
        "wrong_pin, pin_locked, pass_expired, pass_not_yet_valid, pass_used, manual_override:<why>"
    )
    request_id: str


_CRED_PROPS = {
    "card": {"type": "string", "maxLength": 256, "description": "card number"},
    "pin": {"type": "string", "maxLength": 256, "description": "PIN"},
    "person": {
        "type": "string",
        "maxLength": 256,
        "description": "whose PIN (its unit number or the pseudonym) when no card is sent",
    },
    "qr": {"type": "string", "maxLength": 256, "description": "QR pass token"},
    "challenge": {
        "type": "string",
        "maxLength": 256,
        "description": "nonce of the liveness challenge these frames answer (kiosk)",
    },
}
_DECIDE_BODY = {
    "requestBody": {
        "required": True,
        "description": "A frame (or a burst of up to `max_burst_frames`), a credential, or both "
        "(1:1: the credential names the person, the face confirms).",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "frame": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        **_CRED_PROPS,
                    },
                }
            },
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": _CRED_PROPS,
                    "additionalProperties": False,
                }
            },
        },
    }
}


def safe_decode(pipeline, data: bytes):
    """Decode untrusted bytes; any decoder failure is the sender's bad input, never a 500."""
    try:
        return pipeline.decode(data)
    except FacegateError:
        raise
    except Exception as exc:  # noqa: BLE001 - a decoder library bug on hostile input
        log.warning("decoder raised %s on an upload", type(exc).__name__)
        raise ImageDecodeError("the data is not a readable image") from None


def analyze_frames(
    rt, frames: list[bytes], liveness_mode: str = "passive", challenge=None
) -> list[FrameProbe]:
    """Decode and embed each frame (worker thread); the pixels are dropped on return.

    ``liveness_mode`` (``facegate.access.liveness.effective_mode``): an attempt the liveness
    check refuses gives template-less probes with reason ``liveness_failed`` (issue 14);
    ``challenge(faces)`` answers an active challenge at a ``challenge`` point.
    """
    # All frames of one request together, from their headers, before any is decoded.
    pipeline = rt.pipeline  # loads the models on first use, off the event loop
    from facegate.vision.decode import DEFAULT_LIMITS, check_request_pixels

    limits = getattr(pipeline, "limits", DEFAULT_LIMITS)
    check_request_pixels(frames, rt.settings.max_request_pixels, limits)  # issue 13 item 3
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
    # Liveness before any matching; a refused attempt keeps no template (issue 14).
    if not liveness.check_frames(pipeline, rgbs, found, liveness_mode, challenge):
        return liveness.refused(len(frames))
    return probes


@router.post(
    "/v1/access-points/{access_point_id}/decide",
    response_model=DecisionOut,
    summary="Decide one passage: face, card, PIN, QR pass, or credential + face (1:1)",
    responses=error_responses(400, 401, 403, 404, 413, 415, 503),
    openapi_extra=_DECIDE_BODY,
)
async def decide_route(
    request: Request,
    access_point_id: str = AccessPointId,
    principal: Principal = Depends(require("gate:decide")),
) -> DecisionOut:
    rt = request.app.state.runtime
    site_id = await run_in_threadpool(_check_access_point, rt, principal, access_point_id)
    inp = await read_decide_input(request, rt.settings)
    started = time.perf_counter()
    probes = None
    cred = gate.CredentialInput(card=inp.card, pin=inp.pin, qr=inp.qr, pin_owner=inp.person)
    # Someone who declined or withdrew is decided on their credential; their frame is dropped
    # unread (CAC-FR-06b).
    if (
        inp.frames
        and cred.present
        and not await run_in_threadpool(_face_allowed, rt, access_point_id, cred)
    ):
        inp.frames.clear()
    if inp.frames:
        mode = await run_in_threadpool(_liveness_mode, rt, access_point_id, cred)
        try:
            answer = functools.partial(_answer, inp.challenge, access_point_id)
            probes = await rt.pool.run(analyze_frames, rt, inp.frames, mode, answer)
        except Busy:
            rt.metrics.busy.inc()
            raise
        finally:
            inp.frames.clear()  # STD-41819-04: the image goes as soon as it is used
    result = await run_in_threadpool(
        _decide, rt, principal, site_id, access_point_id, cred, probes, request.state.request_id
    )
    rt.metrics.decisions.labels(result.method, result.decision).inc()
    rt.metrics.decision_seconds.labels(result.method).observe(time.perf_counter() - started)
    return DecisionOut(**result.to_dict())


def _check_access_point(rt, principal: Principal, access_point_id: str) -> str:
    """404 unknown, 403 another site's or not bound to this key; returns the site id."""
    with rt.store.session() as s:
        ap = gate.access_point(s, access_point_id)
        principal.check_access_point(ap.site_id, ap.id)
        return ap.site_id


def _face_allowed(rt, access_point_id: str, cred: gate.CredentialInput) -> bool:
    with rt.store.session() as s:
        return gate.face_use_allowed(s, access_point_id, cred)


def _answer(nonce: str | None, access_point_id: str, faces) -> bool:
    return challenge.verify(challenge.BOOK, nonce, access_point_id, faces)[0]


def _liveness_mode(rt, access_point_id: str, cred: gate.CredentialInput) -> str:
    with rt.store.session() as s:
        ap = gate.access_point(s, access_point_id)
        return liveness.effective_mode(ap.liveness, cred.present)


def _decide(rt, principal, site_id, access_point_id, cred, probes, request_id) -> gate.Decision:
    ctx = rt.gate_context(with_face=probes is not None)
    # Before the session opens: see ``gate.decide`` on lock order.
    site_gallery = ctx.galleries.site(site_id) if probes is not None else None
    with rt.store.session() as s:
        return gate.decide(
            s,
            ctx,
            access_point_id=access_point_id,
            request_id=request_id,
            actor=principal.actor,
            credential=cred,
            frames=probes,
            site_gallery=site_gallery,
        )


class OverrideIn(BaseModel):
    operator: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._@-]+$",
        description="staff id of the person who opened the door (not a name)",
    )
    reason: str = Field(
        min_length=1,
        max_length=40,
        pattern=r"^[a-z0-9_]+$",
        description="short reason code, e.g. `intercom_verified`, `face_declined`",
    )
    subject: str | None = Field(
        default=None, max_length=40, description="the person's pseudonym, if known"
    )


@router.post(
    "/v1/access-points/{access_point_id}/override",
    response_model=DecisionOut,
    summary="Record a staffed manual opening with the operator's identity (PIPL-24)",
    responses=error_responses(401, 403, 404),
)
def override_route(
    body: OverrideIn,
    request: Request,
    access_point_id: str = AccessPointId,
    principal: Principal = Depends(require("admin")),
) -> DecisionOut:
    rt = request.app.state.runtime
    _check_access_point(rt, principal, access_point_id)
    with rt.store.session() as s:
        result = gate.override(
            s,
            rt.gate_context(with_face=False),
            access_point_id=access_point_id,
            request_id=request.state.request_id,
            actor=principal.actor,
            operator=body.operator,
            reason=body.reason,
            subject=body.subject,
        )
    rt.metrics.decisions.labels(result.method, result.decision).inc()
    return DecisionOut(**result.to_dict())


class ChallengeOut(BaseModel):
    challenge: str = Field(description="single-use nonce; send it back as `challenge`")
    prompt: Literal["turn_left", "turn_right", "nod"]
    message: dict[str, str] = Field(description="the prompt in plain words, zh-CN and en")
    expires_in: float = Field(description="seconds left to answer")


@router.post(
    "/v1/access-points/{access_point_id}/challenge",
    response_model=ChallengeOut,
    summary="A random liveness prompt for a person facing a screen (kiosk; issue 14)",
    responses=error_responses(401, 403, 404),
)
def challenge_route(
    request: Request,
    access_point_id: str = AccessPointId,
    principal: Principal = Depends(require("gate:decide")),
) -> ChallengeOut:
    """Show the prompt, film the person for a few seconds, and send the frames with
    `challenge` to `decide`: at a `challenge` point no face is matched without it."""
    rt = request.app.state.runtime
    _check_access_point(rt, principal, access_point_id)
    c = challenge.BOOK.issue(access_point_id)
    return ChallengeOut(
        challenge=c.nonce, prompt=c.prompt, message=c.words(), expires_in=challenge.BOOK.ttl_s
    )


class KioskInfoOut(BaseModel):
    id: str
    name: str
    methods: list[str]
    face_enabled: bool
    liveness: str = Field(
        default="passive", description="passive, challenge (ask /challenge first) or off"
    )
    operator_name: str = Field(description="the processor named in the notice (N1)")
    operator_contact: str


@router.get(
    "/v1/access-points/{access_point_id}/kiosk",
    response_model=KioskInfoOut,
    summary="What the kiosk at this access point shows: its name, methods and the operator",
    responses=error_responses(401, 403, 404),
)
def kiosk_info_route(
    request: Request,
    access_point_id: str = AccessPointId,
    principal: Principal = Depends(require("gate:decide")),
) -> KioskInfoOut:
    """The kiosk page shows nothing until its key is presented here (issue 13 item 11)."""
    from facegate.domain.activation import access_point_info

    rt = request.app.state.runtime
    _check_access_point(rt, principal, access_point_id)
    with rt.store.session() as s:
        return KioskInfoOut(**access_point_info(s, access_point_id))
