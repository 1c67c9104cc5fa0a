"""The decision routes: what a turnstile, door controller or kiosk calls."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from typing import Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from facegate.access import challenge, liveness, passage
from facegate.access import decide as gate
from facegate.access.burst import FrameProbe
from facegate.access.decide import DbFacts
from facegate.access.passage import safe_decode  # noqa: F401 - admin uploads use it
from facegate.access.snapshot import SnapshotFacts
from facegate.api.auth import Principal, require, require_gate
from facegate.api.errors import error_responses
from facegate.api.runtime import DB_AWAY_ERRORS, request_deadline
from facegate.api.uploads import read_decide_input
from facegate.errors import (
    Busy,
    DecisionAbandoned,
    DecisionUnavailable,
    NotFound,
)

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
        "wrong_pin, pin_locked, pass_expired, pass_not_yet_valid, pass_used, "
        "code_throttled (too many wrong short codes at this access point), "
        "manual_override:<why>, "
        "offline_too_long (the database has been away longer than `offline_max_s`)"
    )
    offline: bool = Field(
        default=False,
        description="decided from the gate's memory while the database was away (journaled)",
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
    "qr": {
        "type": "string",
        "maxLength": 256,
        "description": "QR pass token, or its short code as typed (case, spaces, dashes ignored)",
    },
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


def analyze_frames(
    rt, frames: list[bytes], liveness_mode: str = "passive", challenge=None
) -> list[FrameProbe]:
    """Decode and embed each frame (worker thread); the pixels are dropped on return.

    Liveness runs in ``passage.analyze_frames`` before any matching (issue 14).
    """
    # All frames of one request together, from their headers, before any is decoded.
    pipeline = rt.pipeline  # loads the models on first use, off the event loop
    from facegate.vision.decode import DEFAULT_LIMITS, check_request_pixels

    limits = getattr(pipeline, "limits", DEFAULT_LIMITS)
    check_request_pixels(frames, rt.settings.max_request_pixels, limits)  # issue 13 item 3
    return passage.analyze_frames(pipeline, frames, liveness_mode, challenge)


@router.post(
    "/v1/access-points/{access_point_id}/decide",
    response_model=DecisionOut,
    response_model_exclude_defaults=True,  # `offline` appears only when true
    summary="Decide one passage: face, card, PIN, QR pass, or credential + face (1:1)",
    description="Answered within the deadline (`decide_deadline_ms`, or a shorter one the "
    "gate sends in `X-Facegate-Deadline-Ms`) or not decided at all (503 "
    "`decision_unavailable`: keep the door shut). While the database is away the gate "
    "decides from memory for at most `offline_max_s` and journals the decision locally.",
    responses=error_responses(400, 401, 403, 404, 413, 415, 503),
    openapi_extra=_DECIDE_BODY,
)
async def decide_route(
    request: Request,
    access_point_id: str = AccessPointId,
    principal: Principal = Depends(require_gate("gate:decide")),
) -> DecisionOut:
    rt = request.app.state.runtime
    deadline = request_deadline(request)
    site_id = _known_site(rt, principal, access_point_id)
    inp = await read_decide_input(request, rt.settings)
    # A caller that hangs up before its decision is recorded leaves nothing behind.
    watcher = asyncio.create_task(_abandon_on_disconnect(request, deadline))
    try:
        started = time.perf_counter()
        probes = None
        cred = gate.CredentialInput(card=inp.card, pin=inp.pin, qr=inp.qr, pin_owner=inp.person)
        # Someone who declined or withdrew is decided on their credential; their frame is
        # dropped unread (CAC-FR-06b).
        if (
            inp.frames
            and cred.present
            and not await run_in_threadpool(_face_allowed, rt, access_point_id, cred)
        ):
            inp.frames.clear()
        if inp.frames:
            mode = await run_in_threadpool(_liveness_mode, rt, access_point_id, cred)
            answer = functools.partial(_answer, rt.challenges, inp.challenge, access_point_id)
            try:
                probes = await rt.pool.run(analyze_frames, rt, inp.frames, mode, answer)
            except Busy:
                rt.metrics.busy.inc()
                raise
            finally:
                inp.frames.clear()  # STD-41819-04: the image goes as soon as it is used
        args = (rt, principal, site_id, access_point_id, cred, probes, request.state.request_id)
        result, offline = await _decide_within(rt, deadline, args)
    except (DecisionAbandoned, DecisionUnavailable):
        rt.metrics.abandoned.inc()
        raise
    finally:
        watcher.cancel()
    rt.metrics.decisions.labels(result.method, result.decision).inc()
    rt.metrics.decision_seconds.labels(result.method).observe(time.perf_counter() - started)
    return DecisionOut(**result.to_dict(), offline=offline)


def _known_site(rt, principal: Principal, access_point_id: str) -> str | None:
    """403 early for an access point this key may not use, from the offline copy (no
    database call); the decision itself checks again against its own source."""
    ap = rt.snapshot.access_point(access_point_id)
    if ap is not None:
        principal.check_access_point(ap.site_id, ap.id)
        return ap.site_id
    return None


def _check_access_point(rt, principal: Principal, access_point_id: str) -> str:
    """404 unknown, 403 another site's or not bound to this key; returns the site id."""
    with rt.store.session() as s:
        ap = gate.access_point(s, access_point_id)
        principal.check_access_point(ap.site_id, ap.id)
        return ap.site_id


def _from_facts(rt, ask, unknown):
    """``ask(facts)`` of the database while it answers, else of the gate's offline copy;
    ``unknown`` when the gate has no offline copy yet. One rule for every question asked
    before the frames are analysed."""
    if rt.offline.decide_online():
        try:
            with rt.store.decision_session() as s:
                return ask(DbFacts(s))
        except DB_AWAY_ERRORS as e:
            rt.offline.report_failure(type(e).__name__)
    if not rt.snapshot.ready:
        return unknown
    return ask(SnapshotFacts(rt.snapshot, rt.journal, None))


def _face_allowed(rt, access_point_id: str, cred: gate.CredentialInput) -> bool:
    """Whether the frame may be processed at all (``gate.face_use_allowed``), never asked of
    nothing: unknown means the frame is dropped and the credential decides."""
    return _from_facts(rt, lambda f: gate.face_use_allowed(f, access_point_id, cred), False)


def _answer(book, nonce: str | None, access_point_id: str, faces) -> bool:
    return challenge.verify(book, nonce, access_point_id, faces)[0]


def _liveness_mode(rt, access_point_id: str, cred: gate.CredentialInput) -> str:
    """The access point's liveness policy for this decision (``liveness.effective_mode``);
    ``passive`` when the offline copy does not know the point (the decision then refuses it
    anyway) or does not exist yet."""

    def ask(facts) -> str:
        try:
            return liveness.mode_at(facts, access_point_id, cred)
        except NotFound:
            if not facts.offline:
                raise
            return liveness.effective_mode(None, cred.present)

    return _from_facts(rt, ask, liveness.effective_mode(None, cred.present))


async def _abandon_on_disconnect(request: Request, deadline) -> None:
    with contextlib.suppress(Exception):
        while True:
            message = await request.receive()
            if message.get("type") == "http.disconnect":
                deadline.abandon()
                return


async def _decide_within(rt, deadline, args) -> tuple[gate.Decision, bool]:
    """The database while it answers in time; else the gate's memory; never past the
    deadline. Whichever path records the decision claims it first (``Deadline``)."""
    if deadline.expired:  # e.g. face inference took it all: no decision, nothing recorded
        deadline.abandon()
        raise DecisionUnavailable("no decision within the deadline (keep the door shut)")
    if rt.offline.decide_online():
        # Leave a fifth of the deadline (at most 250 ms) to decide from memory if the
        # database does not answer; each statement is bounded by db_decision_timeout_ms.
        budget = deadline.remaining() - min(0.25, 0.2 * deadline.seconds)
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(rt.db_executor, _decide_online, *args, deadline)
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            return await asyncio.wait_for(asyncio.shield(fut), max(0.0, budget)), False
        except TimeoutError:
            # Slow, not necessarily away (the probe judges that): this one decision goes on
            # from memory, and the journal brings it to the database.
            pass
        except DB_AWAY_ERRORS as e:
            rt.offline.report_failure(type(e).__name__)
        if deadline.close("database"):
            # The database path already claimed the decision and is committing it: its
            # answer within the deadline, or none (and the event then says abandoned).
            try:
                return await asyncio.wait_for(asyncio.shield(fut), deadline.remaining()), False
            except (TimeoutError, *DB_AWAY_ERRORS):
                deadline.abandon()
                raise DecisionUnavailable(
                    "the database did not confirm the decision within the deadline; no "
                    "decision (keep the door shut)"
                ) from None
    if deadline.expired:
        deadline.abandon()
        raise DecisionUnavailable("no decision within the deadline (keep the door shut)")
    return await run_in_threadpool(_decide_offline, *args, deadline), True


def _decide_online(
    rt, principal, site_id, access_point_id, cred, probes, request_id, deadline
) -> gate.Decision:
    with rt.store.decision_session() as s:
        ap = gate.access_point(s, access_point_id)
        principal.check_access_point(ap.site_id, ap.id)
        site_id = ap.site_id
    ctx = rt.gate_context(with_face=probes is not None)
    # Before the session opens: see ``gate.decide`` on lock order.
    site_gallery = ctx.galleries.site(site_id) if probes is not None else None
    with rt.store.decision_session() as s:
        facts = DbFacts(s, guard=deadline)
        result = gate.decide(
            facts,
            ctx,
            access_point_id=access_point_id,
            request_id=request_id,
            actor=principal.actor,
            credential=cred,
            frames=probes,
            site_gallery=site_gallery,
        )
        rt.snapshot.update_credentials(facts.touched)  # keep the offline copy current
        return result


def _decide_offline(
    rt, principal, site_id, access_point_id, cred, probes, request_id, deadline
) -> gate.Decision:
    """The same rules over the gate's in-memory copy; the event goes to the local journal."""
    if not rt.snapshot.ready:
        raise DecisionUnavailable(
            "the database is away and this gate has no offline copy yet; no decision"
        )
    ap = rt.snapshot.access_point(access_point_id)
    if ap is None:
        raise NotFound(f"no access point {access_point_id!r}")
    principal.check_access_point(ap.site_id, ap.id)
    ctx = rt.offline_gate_context(with_face=probes is not None)
    site_gallery = None
    if probes is not None:
        site_gallery = ctx.galleries.loaded(ap.site_id) if ctx.galleries is not None else None
        if site_gallery is None:
            raise DecisionUnavailable(
                "the database is away and this gate's gallery is not in memory; use a card, "
                "PIN or QR pass"
            )
    with rt.offline.decide_lock:  # offline counters (PIN, QR uses) change one at a time
        facts = SnapshotFacts(rt.snapshot, rt.journal, deadline, too_long=rt.offline.too_long())
        result = gate.decide(
            facts,
            ctx,
            access_point_id=access_point_id,
            request_id=request_id,
            actor=principal.actor,
            credential=cred,
            frames=probes,
            site_gallery=site_gallery,
        )
    rt.update_offline_metrics()
    return result


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
    with rt.store.session() as s:
        principal.check_access_point(gate.access_point(s, access_point_id).site_id, access_point_id)
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
    c = rt.challenges.issue(access_point_id)
    return ChallengeOut(
        challenge=c.nonce, prompt=c.prompt, message=c.words(), expires_in=rt.challenges.ttl_s
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


class DoorOutputFailedIn(BaseModel):
    request_id: str = Field(
        min_length=1, max_length=64, description="the request id of the allow decision"
    )
    door: str = Field(min_length=1, max_length=120, description="the door output, without secrets")
    error: str = Field(default="", max_length=160, description="what went wrong, for people")


@router.post(
    "/v1/access-points/{access_point_id}/door-output-failed",
    status_code=204,
    summary="Record that a door output failed after an allow (the decision stays recorded)",
    responses=error_responses(401, 403, 404),
)
def door_output_failed_route(
    body: DoorOutputFailedIn,
    request: Request,
    access_point_id: str = AccessPointId,
    principal: Principal = Depends(require("gate:decide")),
) -> None:
    from facegate.domain.door_outputs import record_door_output_failed

    rt = request.app.state.runtime
    _check_access_point(rt, principal, access_point_id)
    with rt.store.session() as s:
        record_door_output_failed(
            s,
            actor=principal.actor,
            access_point_id=access_point_id,
            request_id=body.request_id,
            door=body.door,
            error=body.error,
        )
