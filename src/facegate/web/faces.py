"""Camera frames in the web pages: decode safely, give quality feedback, keep nothing.

A frame lives only in this request's memory (STD-41819-04, principle 3): it is decoded,
checked with the strict ``enroll`` profile, and dropped; the answer is a reason in plain
words, never a template or an image. Camera enrollment (self-service and the front-desk
webcam) is an active liveness challenge (issue 14 item 3): the page asks for a prompt
(``issue_challenge``), takes three frames while the person follows it, and sends them with
the nonce (``enroll_from_camera``).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from facegate.access import challenge
from facegate.api.uploads import read_camera_burst
from facegate.errors import FacegateError, ImageDecodeError, ImageTooLarge
from facegate.web.common import refusal_words, translator


def decode_upload(rt: Any, data: bytes) -> Any:
    """Decode untrusted bytes with the pipeline's limits; any decoder failure is bad input."""
    if len(data) > rt.settings.max_image_bytes:
        raise ImageTooLarge(
            "the photo is larger than the upload limit", zh="照片太大，超过了上传上限"
        )
    pipeline = rt.pipeline
    try:
        return pipeline.decode(data)
    except FacegateError:
        raise
    except Exception:  # noqa: BLE001 - a decoder bug on hostile input is still bad input
        raise ImageDecodeError(
            "the data is not a readable image", zh="无法读取这张照片：请换一张照片"
        ) from None


def _reasons(rt: Any, data: bytes) -> list[str]:
    image = decode_upload(rt, data)
    faces = rt.pipeline.analyze(image, profile="enroll", max_faces=2)
    del image
    if not faces:
        return ["no_face"]
    reasons = [str(r) for r in (faces[0].quality.reasons or ())]
    if len(faces) > 1 and "multiple_faces" not in reasons:
        # A second, similar-sized face in the frame: enrollment must be of one person.
        a, b = faces[0].box, faces[1].box
        if b[2] * b[3] > 0.25 * a[2] * a[3]:
            reasons.insert(0, "multiple_faces")
    if not reasons and faces[0].template is None:
        reasons = ["low_quality"]
    return reasons


async def quality_feedback(request: Request, rt: Any) -> JSONResponse:
    """``{"ok", "reason", "message"}`` for one camera frame sent as the raw request body."""
    tr = translator(request)
    data = await request.body()
    try:
        reasons = await run_in_threadpool(_reasons, rt, data)
    except FacegateError as exc:
        reasons = ["low_quality"]
        if exc.code == "image_too_large":
            reasons = ["too_large"]
    finally:
        del data
    reason = reasons[0] if reasons else "ok"
    return JSONResponse(
        {"ok": not reasons, "reason": reason, "message": tr.quality(reason)},
        headers={"Cache-Control": "no-store"},
    )


def issue_challenge(request: Request, person_id: str) -> JSONResponse:
    """A random prompt for this person's camera enrollment (issue 14 item 3): a single-use
    nonce scoped to ``enroll:<person>``, its time limit, and the words in the page's language
    (``message``) and in both (``words``)."""
    tr = translator(request)
    book = request.app.state.runtime.challenges
    c = book.issue(challenge.enroll_scope(person_id))
    words = c.words()
    return JSONResponse(
        {
            "challenge": c.nonce,
            "prompt": c.prompt,
            "message": words[tr.lang],
            "words": words,
            "expires_in": book.ttl_s,
        },
        headers={"Cache-Control": "no-store"},
    )


def _enroll_burst(rt: Any, keyring: Any, frames: list[bytes], nonce: str, **who: str) -> None:
    """Decode the frames (all within the request's pixel budget) and enroll: worker thread."""
    from facegate.domain import enroll
    from facegate.vision.decode import DEFAULT_LIMITS, check_request_pixels

    limits = getattr(rt.pipeline, "limits", DEFAULT_LIMITS)
    check_request_pixels(frames, rt.settings.max_request_pixels, limits)  # issue 13 item 3
    images = [decode_upload(rt, f) for f in frames]
    frames.clear()
    try:
        with rt.store.session() as s:
            # A person facing the camera: the prompted movement and the passive/burst check
            # before any template is kept; the best frame is enrolled (issue 14 item 3).
            enroll(
                s,
                keyring,
                rt.pipeline,
                images=images,
                source="camera",
                challenge=nonce,
                challenge_book=rt.challenges,
                **who,
            )
    finally:
        images.clear()  # STD-41819-04: no frame outlives the request


async def enroll_from_camera(
    request: Request, rt: Any, keyring: Any, *, person_id: str, actor: str, next_url: str = ""
) -> JSONResponse:
    """Enroll from the frames a page took while the person followed the prompt (multipart:
    ``frame`` x3 in time order, ``challenge``); JSON for the page's script.

    The one path of the self-service page and the front-desk webcam: the domain's ``enroll``
    (``source="camera"``) decides (consent, the challenge and liveness, quality, duplicates).
    A refusal is in plain words of what to do, never which signal failed; nothing is kept.
    """
    tr = translator(request)
    frames: list[bytes] = []
    try:
        frames, nonce = await read_camera_burst(request, rt.settings)
        await run_in_threadpool(
            _enroll_burst, rt, keyring, frames, nonce, actor=actor, person_id=person_id
        )
        rt.after_change()  # every gate knows the new face at once
    except FacegateError as exc:
        reasons = (exc.details or {}).get("reasons") or [exc.code]
        reason = str(reasons[0]) if isinstance(reasons, list) and reasons else exc.code
        msg = tr.quality(reason) if reason in tr.all_quality() else refusal_words(tr, exc)
        return JSONResponse(
            {"ok": False, "reason": reason, "message": msg},
            status_code=exc.http_status,
            headers={"Cache-Control": "no-store"},
        )
    finally:
        frames.clear()
    body = {"ok": True, "message": tr("enroll_ok")}
    if next_url:
        body["next"] = next_url
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
