"""Camera frames in the web pages: decode safely, give quality feedback, keep nothing.

A frame lives only in this request's memory (STD-41819-04, principle 3): it is decoded,
checked with the strict ``enroll`` profile, and dropped; the answer is a reason in plain
words, never a template or an image.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from facegate.errors import FacegateError, ImageDecodeError, ImageTooLarge
from facegate.web.common import translator


def decode_upload(rt: Any, data: bytes) -> Any:
    """Decode untrusted bytes with the pipeline's limits; any decoder failure is bad input."""
    if len(data) > rt.settings.max_image_bytes:
        raise ImageTooLarge("the photo is larger than the upload limit")
    pipeline = rt.pipeline
    try:
        return pipeline.decode(data)
    except FacegateError:
        raise
    except Exception:  # noqa: BLE001 - a decoder bug on hostile input is still bad input
        raise ImageDecodeError("the data is not a readable image") from None


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


async def enroll_from_body(
    request: Request, rt: Any, keyring: Any, *, person_id: str, actor: str, next_url: str = ""
) -> JSONResponse:
    """Enroll the confirmed camera photo sent as the raw body; JSON for the page's script.

    The domain's ``enroll`` decides (consent, quality, duplicates); the photo is dropped here.
    """
    from facegate.domain import enroll

    tr = translator(request)
    data = await request.body()
    try:
        image = decode_upload(rt, data)
        with rt.store.session() as s:
            # From a camera the person faces: a photo held up to it is refused (issue 14).
            enroll(
                s,
                keyring,
                rt.pipeline,
                actor=actor,
                person_id=person_id,
                images=[image],
                source="camera",
            )
        del image
        rt.after_change()  # every gate knows the new face at once
    except FacegateError as exc:
        reasons = (exc.details or {}).get("reasons") or [exc.code]
        reason = str(reasons[0]) if isinstance(reasons, list) and reasons else exc.code
        msg = tr.quality(reason) if reason in tr.all_quality() else exc.message
        return JSONResponse(
            {"ok": False, "reason": reason, "message": msg}, status_code=exc.http_status
        )
    finally:
        del data
    body = {"ok": True, "message": tr("enroll_ok")}
    if next_url:
        body["next"] = next_url
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
