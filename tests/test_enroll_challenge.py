"""Camera enrollment is an active liveness challenge (issue 14 item 3): the self-service page
and the front-desk webcam ask for a random prompt, send three frames with its nonce, and the
server enrolls only when the landmarks show the prompted movement AND the passive/burst check
passes; a refusal keeps nothing and is audited.

The movement side runs on the geometric 3D head model of tests/test_liveness_gate.py, drawn
into small lossless images that a fake pipeline reads back (its landmarks are the rotated
head's; templates per identity; "printed" frames fail its passive check). The real models see
a still photo burst with a valid nonce at the end (needs ../shared/data).
"""

from __future__ import annotations

import io
import itertools
import sqlite3
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from server_support import make_site, people_images, pipeline
from sqlalchemy import select

from facegate.access import challenge
from facegate.api import create_app
from facegate.config import Settings
from facegate.domain import accounts, enroll
from facegate.errors import ChallengeExpired, LivenessFailed
from facegate.store.db import Store
from facegate.store.models import AuditEntry, Template
from facegate.vision.liveness import Liveness

# -- the head model and a pipeline that sees it -------------------------------------------------

# Right eye, left eye, nose tip, mouth right, mouth left (x right, y down, z toward the camera;
# inter-eye distance 1), as in tests/test_liveness_gate.py.
_HEAD = np.array(
    [[-0.5, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.6, 0.6], [-0.4, 1.2, 0.1], [0.4, 1.2, 0.1]]
)


def _landmarks(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    y, p = np.radians(yaw_deg), np.radians(pitch_deg)
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    pts = _HEAD @ (ry @ rx).T
    return (pts[:, :2] * 60 + 200).astype(np.float32)


def head_frame(yaw: int, pitch: int, who: int = 1, printed: bool = False) -> bytes:
    """A small PNG whose first pixels say how the head is turned, whose it is, and whether
    it is a printed copy (lossless, so the fake pipeline reads them back exactly)."""
    img = np.full((48, 64, 3), 90, np.uint8)
    img[0, 0] = (yaw + 100, pitch + 100, who)
    img[0, 1] = (200 if printed else 0, 0, 0)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


class _Q:
    def __init__(self, ok: bool, reasons: tuple[str, ...], score: float) -> None:
        self.ok, self.reasons, self.score = ok, reasons, score
        self.metrics = {"face_px": 200.0, "detector_score": 0.9}


class _Face:
    def __init__(self, yaw: int, pitch: int, who: int) -> None:
        self.landmarks = _landmarks(yaw, pitch)
        self.box = (140, 140, 120, 120)
        self.score = 0.9
        frontal = abs(yaw) <= 12 and abs(pitch) <= 12
        self.quality = _Q(frontal, () if frontal else ("off_angle",), 1.0 - abs(yaw) / 100)
        v = np.random.default_rng(who).standard_normal(64).astype(np.float32)
        self.template = (v / np.linalg.norm(v)) if frontal else None


class HeadPipeline:
    """What the server calls, answering from the pixels ``head_frame`` wrote."""

    model_id = "head-v1"
    dim = 64
    threshold = 0.5
    margin = 0.02

    def __init__(self) -> None:
        self.liveness_calls = 0

    def decode(self, data: Any) -> np.ndarray:
        if isinstance(data, np.ndarray):
            return data
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    def analyze(self, image: Any, profile: str = "gate", max_faces: int | None = None) -> list:
        px = self.decode(image)[0, 0].astype(int)
        return [_Face(int(px[0]) - 100, int(px[1]) - 100, int(px[2]))]

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        return float(np.dot(a, b))

    def threshold_for_gallery(self, n: int) -> float:
        return self.threshold

    def liveness_of(self, rgbs: list[np.ndarray], faces: list[Any]) -> Liveness:
        self.liveness_calls += 1
        printed = any(int(np.asarray(r)[0, 1, 0]) == 200 for r in rgbs)
        return Liveness(not printed, 0.0 if printed else 1.0, 0.5, "attack" if printed else "live")


# The frames of each movement: the start (taken before the prompt shows), the move, back.
MOVES = {
    "turn_left": [(3, 0), (30, 0), (0, 0)],
    "turn_right": [(-3, 0), (-30, 0), (0, 0)],
    "nod": [(0, 0), (0, 25), (0, 3)],
    "still": [(0, 0), (0, 0), (0, 0)],
}


def frames_of(move: str, who: int = 1, printed: bool = False) -> list[bytes]:
    return [head_frame(y, p, who, printed) for y, p in MOVES[move]]


# -- one server with the fake pipeline ----------------------------------------------------------


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("enrollchal"), inference_workers=1, inference_queue=0
    )
    setup = make_site(settings)
    pipe = HeadPipeline()
    app = create_app(settings, pipeline=pipe)
    with TestClient(app) as client:
        store = app.state.runtime.store
        with store.session() as s:
            op = accounts.create_operator(
                s, actor="test", username="desk", password="a long passphrase", role="admin"
            ).id
            desk = accounts.open_session(
                s, kind="operator", subject_id=op, lifetime=timedelta(hours=1)
            )
        yield {
            "client": client,
            "settings": settings,
            "setup": setup,
            "pipe": pipe,
            "store": store,
            "desk": desk,
            "app": app,
        }


def _person(env) -> tuple[str, Any]:
    """A consented resident and their self-service session."""
    c, key = env["client"], {"X-API-Key": env["setup"].keys["enroll"]}
    pid = c.post("/v1/persons", json={"category": "resident"}, headers=key).json()["id"]
    assert c.post(f"/v1/persons/{pid}/consents", json={}, headers=key).is_success
    with env["store"].session() as s:
        opened = accounts.open_session(
            s, kind="person", subject_id=pid, lifetime=timedelta(hours=1)
        )
    return pid, opened


_WHO = itertools.count(10)  # every person a face of their own (else: duplicate_face)


class Page:
    """The requests one enrollment page makes: ask for a prompt, send the frames."""

    def __init__(self, env, pid: str, opened: Any, console: bool = False) -> None:
        self.c = env["client"]
        self.who = next(_WHO)
        if console:
            self.cookie = {"cookie": f"fg_op={env['desk'].token}"}
            self.csrf = env["desk"].csrf_token
            self.ask = f"/console/people/{pid}/enroll-challenge"
            self.send_to = f"/console/people/{pid}/enroll-camera"
        else:
            self.cookie = {"cookie": f"fg_me={opened.token}"}
            self.csrf = opened.csrf_token
            self.ask, self.send_to = "/me/challenge", "/me/enroll"

    def prompt(self) -> dict:
        r = self.c.post(self.ask, headers={**self.cookie, "x-csrf-token": self.csrf})
        assert r.status_code == 200, r.text
        return r.json()

    def frames(self, move: str, printed: bool = False) -> list[bytes]:
        return frames_of(move, self.who, printed)

    def send(self, frames: list[bytes], nonce: str | None, lang: str = "en"):
        files = [("frame", (f"f{i}.jpg", f, "image/png")) for i, f in enumerate(frames)]
        data = {"challenge": nonce} if nonce else None
        headers = {**self.cookie, "x-csrf-token": self.csrf, "Accept-Language": lang}
        return self.c.post(self.send_to, files=files, data=data, headers=headers)


def _templates(env, pid: str) -> list[tuple[str, float | None]]:
    with env["store"].session() as s:
        rows = s.execute(select(Template).where(Template.person_id == pid)).scalars().all()
        return [(t.id, t.quality) for t in rows]


def _enroll_audit(env, pid: str) -> list[tuple[str, dict]]:
    with env["store"].session() as s:
        rows = s.execute(
            select(AuditEntry).where(AuditEntry.operation == "enroll", AuditEntry.subject == pid)
        ).scalars()
        return [(a.outcome, dict(a.details or {})) for a in rows]


def _counts(settings: Settings) -> dict[str, int]:
    with sqlite3.connect(settings.database_url.removeprefix("sqlite:///")) as con:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {n: con.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0] for n in names}


# -- tests ---------------------------------------------------------------------------------------


def test_each_prompt_passes_only_with_its_own_movement(env, monkeypatch):
    pid, opened = _person(env)
    page = Page(env, pid, opened)
    for n, prompt in enumerate(challenge.PROMPTS):
        monkeypatch.setattr(challenge, "PROMPTS", (prompt,))  # this round's random pick
        for other in MOVES:
            if other == prompt:
                continue
            asked = page.prompt()
            assert asked["prompt"] == prompt
            r = page.send(page.frames(other), asked["challenge"])
            assert r.status_code == 422, (prompt, other, r.text)
            body = r.json()
            assert body == {
                "ok": False,
                "reason": "liveness_failed",
                "message": body["message"],
            }
            # Plain words of what to do; never which signal failed.
            assert "live person" in body["message"] and "follow" in body["message"]
            for word in ("movement", "turn", "nod", "score", "signal", "passive"):
                assert word not in body["message"].lower()
        if n == 0:
            assert _templates(env, pid) == []  # nothing kept from the refused attempts
        asked = page.prompt()
        r = page.send(page.frames(prompt), asked["challenge"])
        assert r.status_code == 200, (prompt, r.text)
        assert r.json()["ok"] is True and r.json()["next"] == "/me/data"
    # One template (re-enrollment replaces), made from the best frame of the last burst.
    tpl = _templates(env, pid)
    assert len(tpl) == 1 and tpl[0][1] == pytest.approx(1.0)
    entries = _enroll_audit(env, pid)
    oks = [d for o, d in entries if o == "ok"]
    assert len(oks) == 3
    assert all(d["source"] == "camera" and d["liveness"] == "challenge" for d in oks)
    assert any(o == "refused:liveness_failed" for o, _ in entries)


def test_prompt_words_and_countdown_inputs_in_both_languages(env):
    pid, opened = _person(env)
    page = Page(env, pid, opened)
    r = env["client"].post(
        "/me/challenge",
        headers={**page.cookie, "x-csrf-token": page.csrf, "Accept-Language": "zh-CN"},
    )
    body = r.json()
    assert r.headers["cache-control"] == "no-store"
    assert body["prompt"] in challenge.PROMPTS and body["expires_in"] > 0
    assert body["message"] == body["words"]["zh-CN"] == challenge.PROMPT_WORDS[body["prompt"]][0]
    assert body["words"]["en"] == challenge.PROMPT_WORDS[body["prompt"]][1]
    # The page: the prompt, the countdown and the button, in the page's language.
    html = env["client"].get("/me/enroll", headers={**page.cookie, "Accept-Language": "en"}).text
    assert 'data-challenge-url="/me/challenge"' in html and 'id="countdown"' in html
    assert "Enroll: follow the prompt" in html
    # Without the session's CSRF token no prompt is issued.
    r = env["client"].post("/me/challenge", headers={**page.cookie, "x-csrf-token": "guessed"})
    assert r.status_code == 403


def test_nonce_is_single_use_time_limited_and_scoped(env, monkeypatch):
    pid, opened = _person(env)
    other, other_session = _person(env)
    page = Page(env, pid, opened)
    asked = page.prompt()
    r = page.send(page.frames(asked["prompt"]), asked["challenge"])
    assert r.status_code == 200, r.text
    # Used once: the same answer again is refused, in plain words.
    r = page.send(page.frames(asked["prompt"]), asked["challenge"])
    assert (r.status_code, r.json()["reason"]) == (422, "challenge_expired")
    assert r.json()["message"] == "Time is up: please try again"
    r = page.send(page.frames(asked["prompt"]), asked["challenge"], lang="zh-CN")
    assert r.json()["message"] == "时间到了，请再试一次"
    # A prompt issued for someone else's enrollment does not answer for this one ...
    theirs = Page(env, other, other_session).prompt()
    r = page.send(page.frames(theirs["prompt"]), theirs["challenge"])
    assert r.json()["reason"] == "challenge_expired"
    # ... nor a kiosk's (scope: its access point).
    book = env["app"].state.runtime.challenges  # in the database: any process can check it
    kiosk = book.issue(env["setup"].ap_main)
    r = page.send(page.frames(kiosk.prompt), kiosk.nonce)
    assert r.json()["reason"] == "challenge_expired"
    # Late: past the time limit.
    monkeypatch.setattr(book, "ttl_s", 0.0)
    late = page.prompt()
    r = page.send(page.frames(late["prompt"]), late["challenge"])
    assert r.json()["reason"] == "challenge_expired"
    monkeypatch.undo()
    # No nonce at all: nothing shows a live person.
    r = page.send(page.frames("turn_left"), None)
    assert (r.status_code, r.json()["reason"]) == (422, "liveness_failed")
    assert _templates(env, other) == []


def test_console_webcam_runs_the_same_challenge(env):
    pid, _ = _person(env)
    desk = Page(env, pid, None, console=True)
    asked = desk.prompt()
    wrong = "nod" if asked["prompt"] != "nod" else "turn_left"
    r = desk.send(desk.frames(wrong), asked["challenge"])
    assert (r.status_code, r.json()["reason"]) == (422, "liveness_failed")
    assert _templates(env, pid) == []
    asked = desk.prompt()
    r = desk.send(desk.frames(asked["prompt"]), asked["challenge"])
    assert r.status_code == 200 and r.json()["ok"] is True and "next" not in r.json()
    entries = _enroll_audit(env, pid)
    assert [d["source"] for o, d in entries if o == "ok"] == ["camera"]
    # The old single-photo body is no longer a way in.
    r = env["client"].post(
        f"/console/people/{pid}/enroll-camera",
        content=head_frame(0, 0),
        headers={**desk.cookie, "x-csrf-token": desk.csrf, "content-type": "image/png"},
    )
    assert r.status_code == 415


def test_prompted_move_of_a_printed_face_is_refused_and_nothing_is_stored(env):
    """Both checks are needed: the right movement by something the passive/burst check calls
    an attack is refused, with the same words; only the refusal's audit entry is written."""
    pid, opened = _person(env)
    page = Page(env, pid, opened)
    asked = page.prompt()
    before = _counts(env["settings"])
    calls = env["pipe"].liveness_calls
    r = page.send(page.frames(asked["prompt"], printed=True), asked["challenge"])
    assert (r.status_code, r.json()["reason"]) == (422, "liveness_failed")
    assert env["pipe"].liveness_calls == calls + 1
    after = _counts(env["settings"])
    grew = {t for t in after if after[t] > before.get(t, 0)}
    assert grew <= {"audit_entries"}, grew
    assert after["liveness_challenges"] == before["liveness_challenges"] - 1  # spent, once
    assert after["templates"] == before["templates"]
    assert after.get("person_keys") == before.get("person_keys")
    assert _templates(env, pid) == []
    assert ("refused:liveness_failed", {}) in [(o, {}) for o, _ in _enroll_audit(env, pid)]


def test_frames_of_two_people_are_refused(env):
    """The movement by one person, the template from another's frame: not one live person."""
    pid, opened = _person(env)
    page = Page(env, pid, opened)
    asked = page.prompt()
    frames = page.frames(asked["prompt"])
    frames[-1] = head_frame(0, 0, who=page.who + 100)
    r = page.send(frames, asked["challenge"])
    assert (r.status_code, r.json()["reason"]) == (422, "liveness_failed")
    assert _templates(env, pid) == []


def test_images_beside_the_burst_must_show_the_person_seen_live(env, monkeypatch):
    """``enroll(images=..., liveness_frames=burst)``: a photo of someone else beside a live
    burst is not enrolled; the same person's is."""
    pid, opened = _person(env)
    who = Page(env, pid, opened).who
    pipe = env["pipe"]
    keyring = env["app"].state.runtime.galleries.loader.keyring
    book = challenge.ChallengeBook()
    monkeypatch.setattr(challenge, "PROMPTS", ("nod",))

    def attempt(image: bytes):
        with env["store"].session() as s:
            return enroll(
                s,
                keyring,
                pipe,
                actor="test",
                person_id=pid,
                images=[pipe.decode(image)],
                liveness_frames=[pipe.decode(f) for f in frames_of("nod", who)],
                source="camera",
                challenge=book.issue(challenge.enroll_scope(pid)).nonce,
                challenge_book=book,
            )

    with pytest.raises(LivenessFailed):
        attempt(head_frame(0, 0, who + 100))
    assert _templates(env, pid) == []
    assert len(attempt(head_frame(0, 0, who)).template_ids) == 1


def test_upload_limits(env):
    pid, opened = _person(env)
    page = Page(env, pid, opened)
    asked = page.prompt()
    r = page.send(page.frames(asked["prompt"]) * 2, asked["challenge"])  # 6 frames
    assert r.status_code == 422 and r.json()["reason"] == "invalid_input"
    asked = page.prompt()
    r = page.send(page.frames(asked["prompt"])[:1], asked["challenge"])
    assert r.status_code == 422 and r.json()["reason"] == "invalid_input"
    assert _templates(env, pid) == []


# -- the real models: a still photo held up with a valid nonce -----------------------------------


def test_still_photo_burst_with_a_valid_nonce_is_refused(env, shared_data, monkeypatch):
    photo = people_images(shared_data)["Ariel_Sharon"][0]
    pipe = pipeline()
    rt = env["app"].state.runtime
    keyring = rt.galleries.loader.keyring
    pid, _ = _person(env)
    book = challenge.ChallengeBook()
    store = Store(env["settings"].database_url)
    try:
        for prompt in challenge.PROMPTS:
            monkeypatch.setattr(challenge, "PROMPTS", (prompt,))  # each prompt in turn
            issued = book.issue(challenge.enroll_scope(pid))

            def answer(nonce: str = issued.nonce) -> None:
                with store.session() as s:
                    enroll(
                        s,
                        keyring,
                        pipe,
                        actor="test",
                        person_id=pid,
                        images=[pipe.decode(photo) for _ in range(3)],
                        source="camera",
                        challenge=nonce,
                        challenge_book=book,
                    )

            before = _counts(env["settings"])
            with pytest.raises(LivenessFailed):
                answer()
            after = _counts(env["settings"])
            assert {t for t in after if after[t] != before[t]} <= {"audit_entries"}
            # Used: the same nonce cannot be tried again.
            with pytest.raises(ChallengeExpired):
                answer()
    finally:
        store.dispose()
    assert _templates(env, pid) == []
