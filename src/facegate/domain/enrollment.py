"""Enrollment and the decrypted gallery a gate loads.

Enrollment is refused without a valid consent to the current notice terms (CAC-FR-06a), and
for a child under 14 without a guardian's consent (CAC-FR-07). The new face is searched
against everyone enrolled at the site first: a face matching another person is refused for
operator review (``DuplicateFace``), not silently enrolled. No image is kept (principle 3).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from facegate import audit
from facegate.access import challenge as challenges
from facegate.access import liveness
from facegate.domain.common import (
    PURPOSE_ACCESS,
    get_person,
    is_under_14,
    record_change,
    run,
    utcnow,
)
from facegate.domain.common import (
    under_14 as _under_14,
)
from facegate.domain.consent import valid_consent
from facegate.domain.notice import require_informed
from facegate.errors import (
    ChallengeExpired,
    ConsentRequired,
    DuplicateFace,
    EnrollmentNotAllowed,
    GuardianConsentRequired,
    InvalidInput,
    LivenessFailed,
    LowQuality,
    NoFaceFound,
)
from facegate.matching import Gallery
from facegate.store.crypto import Keyring
from facegate.store.models import Consent, NoticeVersion, Person, PersonKey, Template, new_id


class FacePipeline(Protocol):
    """What enrollment needs from ``facegate.vision.FacePipeline``."""

    model_id: str
    threshold: float

    def analyze(self, image: Any, profile: str = ...) -> list[Any]: ...

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float: ...


@dataclass(frozen=True)
class EnrollResult:
    person_id: str
    template_ids: list[str]
    model_id: str
    qualities: list[float | None]


def _quality_reasons(face: Any) -> list[str]:
    q = getattr(face, "quality", None)
    if q is None:
        return []
    reasons = [str(r) for r in (getattr(q, "reasons", None) or ())]
    ok = getattr(q, "ok", None)
    if ok is False and not reasons:
        reasons = ["low_quality"]
    return [] if ok is True else reasons


def _quality_score(face: Any) -> float | None:
    """The enrollment quality kept with the template: the quality score if the pipeline
    gives one, else the detector's confidence in the face."""
    for v in (getattr(getattr(face, "quality", None), "score", None), getattr(face, "score", None)):
        if isinstance(v, int | float):
            return float(v)
    return None


def _templates_from_images(pipe: FacePipeline, images: Sequence[Any]) -> list[tuple[Any, Any]]:
    """(template, face) per image under the strict enroll profile, or a clear refusal."""
    out = []
    for i, image in enumerate(images, start=1):
        faces = pipe.analyze(image, profile="enroll")
        if not faces:
            raise NoFaceFound(
                f"image {i}: no face found", zh=f"第 {i} 张照片中没有找到人脸", image=i
            )
        face = faces[0]  # "the" face, as at a gate (vision.detect.order_faces)
        reasons = _quality_reasons(face)
        if reasons or face.template is None:
            reasons = reasons or ["no_template"]
            raise LowQuality(
                f"image {i}: the face is not good enough to enroll ({', '.join(reasons)})",
                zh=f"第 {i} 张照片中的人脸质量不够，不能录入",
                image=i,
                reasons=reasons,
            )
        vec = np.asarray(face.template, dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(vec)):
            raise LowQuality(
                f"image {i}: the template is not finite",
                zh="无法从这张照片生成人脸模板：请换一张照片",
                image=i,
            )
        out.append((vec, face))
    return out


def _camera_burst(
    pipe: FacePipeline,
    frames: Sequence[Any],
    prompt: str,
) -> tuple[np.ndarray, Any]:
    """The best frame's (template, face) of a camera burst, once the person is seen live.

    ``frames``: decoded RGB frames in time order (the first taken before the prompt showed);
    ``prompt``: the prompt of the challenge the frames answer. Refused with
    ``LivenessFailed`` unless the landmarks show the prompted movement AND the passive/burst
    check passes (``liveness.check_frames``, the kiosk's rule): the reason never says which
    signal failed. The vectors computed while looking are dropped on any refusal; nothing is
    compared, encrypted or stored before both checks pass.
    """
    if not challenges.MIN_FRAMES <= len(frames) <= challenges.MAX_FRAMES:
        raise InvalidInput(
            f"send {challenges.MIN_FRAMES} to {challenges.MAX_FRAMES} camera frames in time order",
            zh="摄像头画面数量不对，请再试一次",
        )
    faces = []
    for rgb in frames:
        found = pipe.analyze(rgb, profile="enroll")
        faces.append(found[0] if found else None)  # "the" face, as at a gate
    if not any(f is not None for f in faces):
        raise NoFaceFound(
            "no face found in the camera frames",
            zh="摄像头画面中没有找到人脸：请正对摄像头",
            image=1,
        )

    def moved(seen: Sequence[Any]) -> bool:
        return challenges.movement_done(prompt, seen)

    if not liveness.check_frames(pipe, list(frames), faces, "challenge", moved):
        raise LivenessFailed(
            "the camera did not see a live person; the person must face the camera themselves "
            "and follow the prompt",
            zh="没有确认是真人在镜头前：须由本人正对摄像头，并按提示做动作",
        )
    good = [
        (i, f)
        for i, f in enumerate(faces)
        if f is not None and f.template is not None and not _quality_reasons(f)
    ]
    if not good:
        first = next(f for f in faces if f is not None)
        reasons = _quality_reasons(first) or ["no_template"]
        raise LowQuality(
            f"the face is not good enough to enroll ({', '.join(reasons)})",
            zh="人脸不够清晰，不能录入：请正对摄像头，保持不动，光线充足",
            image=1,
            reasons=reasons,
        )
    i_best, best = max(good, key=lambda g: _quality_score(g[1]) or 0.0)
    vec = np.asarray(best.template, dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(vec)):
        raise LowQuality(
            "the template is not finite",
            zh="无法从这张照片生成人脸模板：请换一张照片",
            image=i_best + 1,
        )
    # Every good frame shows the person of the best one: a face swapped in mid-burst (a
    # photo for the template, someone else for the movement) is not a live enrollment.
    for _, f in good:
        other = np.asarray(f.template, dtype=np.float32).reshape(-1)
        if pipe.similarity(vec, other) < pipe.threshold:
            raise LivenessFailed(
                "the camera frames do not show one person throughout; the person must face "
                "the camera themselves",
                zh="摄像头画面中前后不是同一个人：须由本人正对摄像头",
            )
    return vec, best


def data_key_for(session: Session, keyring: Keyring, person_id: str, *, create: bool) -> bytes:
    """Unwrap the person's data key, creating and wrapping a new one if asked."""
    row = session.get(PersonKey, person_id)
    if row is not None:
        return keyring.unwrap_data_key(person_id, row.key_id, row.wrapped)
    if not create:
        raise InvalidInput(f"person {person_id} has no data key")
    key = keyring.new_data_key()
    key_id, wrapped = keyring.wrap_data_key(person_id, key)
    session.add(PersonKey(person_id=person_id, key_id=key_id, wrapped=wrapped))
    session.flush()
    return key


def build_site_gallery(
    session: Session,
    keyring: Keyring,
    site_id: str,
    model_id: str,
    *,
    exclude_person: str | None = None,
) -> Gallery | None:
    """Every stored template of ``model_id`` at the site (consent state aside), for the
    duplicate check; None when there is none."""
    rows = [r for r in _template_rows(session, site_id, model_id) if r.person_id != exclude_person]
    if not rows:
        return None
    subjects, ids, vecs = [], [], []
    for r, vec in _decrypt_rows(keyring, rows):
        subjects.append(r.person_id)
        ids.append(r.id)
        vecs.append(vec)
    gallery = Gallery(vecs[0].shape[0], model_id, capacity=len(vecs))
    gallery.add_many(subjects, ids, np.stack(vecs), model_id=model_id)
    return gallery


def _template_rows(
    session: Session, site_id: str, model_id: str | None, person_id: str | None = None
) -> Iterator[Any]:
    """Plain rows (no ORM objects: a 100k gallery must not fill the identity map), grouped
    by person so each data key is unwrapped once."""
    stmt = (
        select(
            Template.id,
            Template.person_id,
            Template.model_id,
            Template.nonce,
            Template.ciphertext,
            PersonKey.key_id,
            PersonKey.wrapped,
        )
        .join(PersonKey, PersonKey.person_id == Template.person_id)
        .join(Person, Person.id == Template.person_id)
        .where(Person.site_id == site_id, Person.status == "active")
        .order_by(Template.person_id, Template.created_at)
    )
    if model_id is not None:
        stmt = stmt.where(Template.model_id == model_id)
    if person_id is not None:
        stmt = stmt.where(Template.person_id == person_id)
    yield from session.execute(stmt).yield_per(5000)


def _decrypt_rows(keyring: Keyring, rows: Iterable[Any]) -> Iterator[tuple[Any, np.ndarray]]:
    key_of: tuple[str, bytes] | None = None
    for r in rows:
        if key_of is None or key_of[0] != r.person_id:
            key_of = (r.person_id, keyring.unwrap_data_key(r.person_id, r.key_id, r.wrapped))
        vec = keyring.decrypt_template(
            key_of[1],
            r.nonce,
            r.ciphertext,
            template_id=r.id,
            person_id=r.person_id,
            model_id=r.model_id,
        )
        yield r, vec


def enroll(
    session: Session,
    keyring: Keyring,
    pipe: FacePipeline,
    *,
    actor: str,
    person_id: str,
    images: Sequence[Any],
    site_gallery: Gallery | None = None,
    source: str | None = None,
    liveness_frames: Sequence[Any] | None = None,
    challenge: str | None = None,
    challenge_book: challenges.ChallengeBook | None = None,
) -> EnrollResult:
    """Enroll a person's face from one or more images (each kept as one encrypted template).

    Refused without a valid consent (``ConsentRequired``; ``GuardianConsentRequired`` for a
    child under 14), for a visitor, on a poor image (``LowQuality``/``NoFaceFound``), when the
    images disagree, or when the face matches someone else at the site (``DuplicateFace``).
    Re-enrollment replaces the person's previous templates. ``site_gallery`` may pass a
    gallery of the site the caller already holds, to skip decrypting it again.

    ``source`` (issue 14) is written to the audit entry. ``camera`` is the one path of the
    self-service page and the front-desk webcam: ``images`` are the decoded frames the page
    took while the person followed the prompt of ``challenge`` (the nonce of a challenge issued
    in ``challenge_book``, default ``challenges.BOOK``, with scope
    ``challenges.enroll_scope(person_id)``). The nonce is used once; a late, reused or foreign
    one is ``ChallengeExpired``; without the prompted movement AND the passive/burst check the
    attempt is ``LivenessFailed`` (never saying which signal failed), before any template is
    compared or stored. The template is made from the best frame. (``liveness_frames``, when
    given, is the burst checked instead, and ``images`` are enrolled if each shows the person
    of the burst's best frame.)
    ``document_photo`` marks a photo an operator uploaded, which no liveness check can vouch
    for.
    """

    def check() -> tuple[str, str]:
        """Whether this person may be enrolled at all, before any face is processed."""
        person = get_person(session, person_id)
        if person.category == "visitor":
            raise EnrollmentNotAllowed(
                "visitors use a single-use pass; no face template is kept for them (CAC-FR-08b)",
                zh="访客使用一次性通行码，不保存其人脸模板（CAC-FR-08b）",
            )
        consent = valid_consent(session, person)
        if consent is None:
            _raise_no_consent(session, person)
            raise AssertionError("unreachable")
        # A consent given to a notice lacking a required field was not informed
        # (CAC-FR-05a, CAC-FR-06a): no enrollment on it.
        require_informed(session.get(NoticeVersion, consent.notice_version_id))
        if not images:
            raise InvalidInput("give at least one image", zh="请至少提供一张照片")
        return person.site_id, consent.id

    def analyze() -> list[tuple[np.ndarray, Any]]:
        """Model inference, outside any transaction (no database lock held meanwhile)."""
        if source == "camera":
            # A photo or a screen held to the camera, or a replayed video that does not know
            # the prompt, is refused here (issue 14 item 3, CAC-FR-14).
            book = challenge_book or challenges.BOOK
            issued, why = book.take(challenge, challenges.enroll_scope(person_id))
            if issued is None and why == "expired":
                raise ChallengeExpired(
                    "the prompt was not answered in time; ask for a new one",
                    zh="没有及时按提示做动作：请重新获取提示再试",
                )
            if issued is None:  # no challenge at all: nothing shows a live person
                raise LivenessFailed(
                    "a camera enrollment needs the person to follow a prompt; none was answered",
                    zh="用摄像头录入时须按提示做动作，但没有收到任何回应",
                )
            burst = list(liveness_frames if liveness_frames is not None else images)
            best = _camera_burst(pipe, burst, issued.prompt)
            if liveness_frames is None:
                return [best]
        found = _templates_from_images(pipe, images)
        vecs = [v for v, _ in found]
        if source == "camera":  # images beside the burst: the person the camera saw live
            for i, v in enumerate(vecs, start=1):
                if pipe.similarity(best[0], v) < pipe.threshold:
                    raise LivenessFailed(
                        f"image {i} does not show the person the camera saw",
                        zh=f"第 {i} 张照片与摄像头看到的不是同一个人",
                        image=i,
                    )
        # Several images must show the same person, or one of them is someone else's.
        for i in range(1, len(vecs)):
            if pipe.similarity(vecs[0], vecs[i]) < pipe.threshold:
                raise InvalidInput(
                    f"image {i + 1} does not show the same person as image 1",
                    zh=f"第 {i + 1} 张照片与第 1 张不是同一个人",
                    image=i + 1,
                )
        return found

    def duplicates() -> None:
        gallery = site_gallery or build_site_gallery(
            session, keyring, site_id, pipe.model_id, exclude_person=person_id
        )
        if gallery is None or not len(gallery):
            return
        for i, (v, _) in enumerate(found, start=1):
            hits = [h for h in gallery.search(v, k=2) if h.subject != person_id]
            if hits and hits[0].score >= pipe.threshold:
                raise DuplicateFace(
                    f"image {i} matches another enrolled person; an operator must review "
                    "it (same person enrolled twice, or a borrowed identity)",
                    zh=f"第 {i} 张照片与另一位已录入的人相符："
                    "须由工作人员核查（同一人重复录入，或冒用他人身份）",
                    matches=str(hits[0].subject),
                )

    def work() -> EnrollResult:
        # Consent is checked again under the person's lock: a withdrawal that committed
        # while the models ran wins (CAC-FR-06b).
        person = get_person(session, person_id, lock=True)
        consent = valid_consent(session, person)
        if consent is None:
            _raise_no_consent(session, person)
            raise AssertionError("unreachable")
        # A consent given to a notice lacking a required field was not informed
        # (CAC-FR-05a, CAC-FR-06a): no enrollment on it.
        require_informed(session.get(NoticeVersion, consent.notice_version_id))
        key = data_key_for(session, keyring, person.id, create=True)
        session.execute(delete(Template).where(Template.person_id == person.id))
        ids, qualities = [], []
        now = utcnow()
        for v, face in found:
            tid = new_id("t")
            nonce, ct = keyring.encrypt_template(
                key, v, template_id=tid, person_id=person.id, model_id=pipe.model_id
            )
            q = _quality_score(face)
            session.add(
                Template(
                    id=tid,
                    person_id=person.id,
                    model_id=pipe.model_id,
                    dim=int(v.shape[0]),
                    quality=q,
                    nonce=nonce,
                    ciphertext=ct,
                    created_at=now,
                )
            )
            ids.append(tid)
            qualities.append(q)
        session.flush()
        record_change(session, person.site_id, person.id, "enrolled")
        audit.append(
            session,
            actor=actor,
            operation="enroll",
            subject=person.id,
            purpose=PURPOSE_ACCESS,
            outcome="ok",
            details={
                "consent_id": consent.id,
                "templates": len(ids),
                "model_id": pipe.model_id,
                **({"source": source} if source else {}),
                **({"liveness": "challenge"} if source == "camera" else {}),
            },
        )
        return EnrollResult(person.id, ids, pipe.model_id, qualities)

    ctx = {"actor": actor, "operation": "enroll", "subject": person_id, "purpose": PURPOSE_ACCESS}
    site_id, _ = run(session, check, **ctx)
    found = run(session, analyze, **ctx)
    run(session, duplicates, **ctx)
    return run(session, work, **ctx)


def _raise_no_consent(session: Session, person: Person) -> None:
    if is_under_14(person):
        raise GuardianConsentRequired(
            "this person is under 14: face enrollment needs a guardian's consent (CAC-FR-07)",
            zh="此人未满 14 周岁：录入人脸须有监护人的同意（CAC-FR-07）",
        )
    pending = session.execute(
        select(Consent.id).where(
            Consent.person_id == person.id,
            Consent.withdrawn_at.is_(None),
            Consent.renewal_required_at.is_not(None),
        )
    ).first()
    if pending:
        raise ConsentRequired(
            "the notice changed since this person consented; they must renew their consent "
            "first (CAC-FR-05b)",
            zh="此人同意后告知书已更新：须先重新作出同意（CAC-FR-05b）",
        )
    raise ConsentRequired(
        "no active consent to the current notice; record the person's separate consent first "
        "(CAC-FR-06a)",
        zh="此人尚未同意现行告知书：请先记录本人单独作出的同意（CAC-FR-06a）",
    )


@dataclass(frozen=True)
class GalleryEntry:
    person_pseudonym: str
    template_id: str
    vector: np.ndarray
    model_id: str
    access_point_ids: tuple[str, ...]


def load_gallery_entries(
    session: Session,
    keyring: Keyring,
    site_id: str,
    model_id: str | None = None,
    person_id: str | None = None,
) -> Iterator[GalleryEntry]:
    """Decrypted templates a gate of ``site_id`` may match against (of one person, when
    ``person_id`` is given, for a gate following a change).

    Only persons with a valid consent (not withdrawn, renewal not pending after a notice
    change, guardian's consent for under-14s), and only templates of ``model_id`` when given
    (templates of another model are never compared). ``access_point_ids`` is the consent's
    scope. Vectors stay in the caller's memory; never log or send them (principle 4).
    """
    person_q = select(Person.id, Person.birth_date, Person.minor_under_14).where(
        Person.site_id == site_id, Person.status == "active"
    )
    consent_q = (
        select(Consent.person_id, Consent.guardian_id, Consent.scope)
        .where(
            Consent.site_id == site_id,
            Consent.withdrawn_at.is_(None),
            Consent.renewal_required_at.is_(None),
        )
        .order_by(Consent.given_at)
    )
    if person_id is not None:
        person_q = person_q.where(Person.id == person_id)
        consent_q = consent_q.where(Consent.person_id == person_id)
    persons = {r.id: r for r in session.execute(person_q)}
    consents: dict[str, tuple[str, ...]] = {}
    for c in session.execute(consent_q):
        p = persons.get(c.person_id)
        if p is None:
            continue
        if c.guardian_id is None and _under_14(p.birth_date, p.minor_under_14):
            continue  # CAC-FR-07: a child's own consent does not count
        consents[c.person_id] = tuple(c.scope or ())  # the latest valid one wins
    rows = (
        r for r in _template_rows(session, site_id, model_id, person_id) if r.person_id in consents
    )
    for r, vec in _decrypt_rows(keyring, rows):
        yield GalleryEntry(r.person_id, r.id, vec, r.model_id, consents[r.person_id])
