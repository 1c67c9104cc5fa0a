"""Active liveness challenge where a person faces a screen (issue 14 item 3).

The server picks a random prompt ("turn your head left", "nod"), gives it a single-use nonce
and a time limit, and checks the frames the client sends back: the face's landmarks must show
that movement. A replayed video does not know which prompt comes next. Nothing of a frame is
kept: only the landmarks of the faces the caller already found are read.

Geometry (no fitted threshold): on a frontal face the nose tip sits about on the vertical
line between the eyes; the nose tip stands ~0.6 inter-eye distances in front of the eye plane,
so a head turn of ~20 degrees moves it sideways by ~0.2 inter-eye distances (``YAW_STEP``).
A nod moves the nose tip up and down between the eyes and the mouth: its position along that
segment must change by ``PITCH_STEP`` (0.15 of the eye-mouth distance, ~15 degrees).

Issued challenges are kept in the database (``StoreChallengeBook``, the server's book): a
prompt issued by one server process may be answered to another behind the same address; a
nonce is used once and expires. ``ChallengeBook`` is the same contract in memory, for callers
without a database (tests, tools).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np

PROMPTS = ("turn_left", "turn_right", "nod")
PROMPT_WORDS: dict[str, tuple[str, str]] = {
    "turn_left": ("请慢慢把头转向左边，再转回来", "Slowly turn your head to your left, then back"),
    "turn_right": (
        "请慢慢把头转向右边，再转回来",
        "Slowly turn your head to your right, then back",
    ),
    "nod": ("请慢慢点一下头", "Slowly nod your head once"),
}
RESULT_WORDS: dict[str, tuple[str, str]] = {
    "ok": ("谢谢，已确认", "Thank you, confirmed"),
    "expired": ("时间到了，请再试一次", "Time is up: please try again"),
    "not_done": (
        "没有看到提示的动作，请按提示再试一次",
        "We did not see the movement asked for: please try again",
    ),
}
YAW_STEP = 0.2
PITCH_STEP = 0.15
MIN_FRAMES = 3
MAX_FRAMES = 5  # the most frames one answer may carry (an enrollment page sends 3)


def enroll_scope(person_id: str) -> str:
    """The scope of a challenge issued for one person's camera enrollment: a nonce issued
    for one person (or for a kiosk) does not answer for another."""
    return f"enroll:{person_id}"


@dataclass(frozen=True)
class Challenge:
    nonce: str
    prompt: str
    expires_at: float  # time.monotonic()
    scope: str  # the access point or "enroll:<person>"

    def words(self) -> dict[str, str]:
        zh, en = PROMPT_WORDS[self.prompt]
        return {"zh-CN": zh, "en": en}


class ChallengeBook:
    """Issued, not yet answered challenges (single use, time-limited)."""

    def __init__(self, ttl_s: float = 30.0, max_open: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_open = max_open
        self._open: dict[str, Challenge] = {}
        self._lock = threading.Lock()

    def issue(self, scope: str) -> Challenge:
        now = time.monotonic()
        c = Challenge(secrets.token_urlsafe(18), secrets.choice(PROMPTS), now + self.ttl_s, scope)
        with self._lock:
            self._open = {k: v for k, v in self._open.items() if v.expires_at > now}
            if len(self._open) >= self.max_open:  # flood: the oldest go first
                for k in sorted(self._open, key=lambda k: self._open[k].expires_at)[:100]:
                    del self._open[k]
            self._open[c.nonce] = c
        return c

    def take(self, nonce: str | None, scope: str) -> tuple[Challenge | None, str]:
        """The challenge for this nonce, removed (single use): (c, "ok") or (None, why)."""
        if not nonce:
            return None, "not_done"
        with self._lock:
            c = self._open.pop(nonce, None)
        if c is None or c.scope != scope:
            return None, "expired"
        if c.expires_at <= time.monotonic():
            return None, "expired"
        return c, "ok"


# A kiosk or a person enrolling needs one prompt at a time: a page asking for prompts in a
# loop only replaces its own oldest ones, never another scope's.
MAX_OPEN_PER_SCOPE = 5


def _nonce_hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


class StoreChallengeBook:
    """The challenge book kept in the database: the prompt may be issued by one server process
    and answered to another behind the same address (several ``facegate serve`` on one
    PostgreSQL). Same contract as ``ChallengeBook``: single use (the row is deleted when
    taken, and only the taker that deleted it gets the challenge), time-limited, scoped. The
    nonce is stored as its SHA-256 only. A database that does not answer refuses the challenge
    (fail closed: the face is not matched; a credential still decides)."""

    def __init__(self, store: Any, ttl_s: float = 30.0, max_open: int = 10_000) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.max_open = max_open

    def issue(self, scope: str) -> Challenge:
        from sqlalchemy import delete, func, select

        from facegate.store.models import LivenessChallenge as Row
        from facegate.store.models import utcnow

        nonce, prompt = secrets.token_urlsafe(18), secrets.choice(PROMPTS)
        now = utcnow()
        with self.store.session() as s, s.begin():
            s.execute(delete(Row).where(Row.expires_at <= now))
            mine = s.scalars(
                select(Row.nonce_hash).where(Row.scope == scope).order_by(Row.issued_at.desc())
            ).all()
            if len(mine) >= MAX_OPEN_PER_SCOPE:
                s.execute(delete(Row).where(Row.nonce_hash.in_(mine[MAX_OPEN_PER_SCOPE - 1 :])))
            if (s.scalar(select(func.count()).select_from(Row)) or 0) >= self.max_open:
                oldest = s.scalars(select(Row.nonce_hash).order_by(Row.issued_at).limit(100))
                s.execute(delete(Row).where(Row.nonce_hash.in_(list(oldest))))
            s.add(
                Row(
                    nonce_hash=_nonce_hash(nonce),
                    scope=scope,
                    prompt=prompt,
                    issued_at=now,
                    expires_at=now + timedelta(seconds=self.ttl_s),
                )
            )
        return Challenge(nonce, prompt, time.monotonic() + self.ttl_s, scope)

    def take(self, nonce: str | None, scope: str) -> tuple[Challenge | None, str]:
        """The challenge for this nonce, deleted (single use): (c, "ok") or (None, why)."""
        from sqlalchemy import delete

        from facegate.store.models import LivenessChallenge as Row
        from facegate.store.models import utcnow

        if not nonce:
            return None, "not_done"
        key = _nonce_hash(nonce)
        with self.store.session() as s, s.begin():
            row = s.get(Row, key)
            if row is None:
                return None, "expired"
            found = (row.scope, row.prompt, row.expires_at)
            # Only the one request whose delete removed the row may use it.
            taken = s.execute(delete(Row).where(Row.nonce_hash == key)).rowcount == 1
        row_scope, prompt, expires_at = found
        if not taken or row_scope != scope or expires_at <= utcnow():
            return None, "expired"
        return Challenge(nonce, prompt, time.monotonic(), scope), "ok"


def head_pose(landmarks: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) proxies from 5 landmarks (right eye, left eye, nose, mouth right, left).

    yaw: the nose tip's sideways offset from the eyes' midpoint in inter-eye distances,
    positive when the person turns to THEIR left (image right, unmirrored camera); pitch: the
    nose tip's position between the eye line (0) and the mouth line (1).
    """
    lm = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    reye, leye, nose, mright, mleft = lm
    eyes = (reye + leye) / 2.0
    mouth = (mright + mleft) / 2.0
    iod = float(np.linalg.norm(leye - reye)) or 1e-6
    axis = mouth - eyes
    length = float(np.linalg.norm(axis)) or 1e-6
    down = axis / length
    across = np.array([down[1], -down[0]])  # perpendicular to the face's vertical axis
    rel = nose - eyes
    # The sign of ``across`` points from the right eye to the left eye (image left to right).
    if float(np.dot(leye - reye, across)) < 0:
        across = -across
    yaw = float(np.dot(rel, across)) / iod
    pitch = float(np.dot(rel, down)) / length
    return yaw, pitch


def movement_done(prompt: str, faces: Sequence[object]) -> bool:
    """Whether the faces (time order; None where a frame had none) show the prompted move.

    The first face gives the start position; the move must reach the step from there (a
    still picture does not move, so it fails every prompt)."""
    poses = [head_pose(f.landmarks) for f in faces if f is not None]  # type: ignore[attr-defined]
    if len(poses) < MIN_FRAMES:
        return False
    yaw = np.array([p[0] for p in poses])
    pitch = np.array([p[1] for p in poses])
    start_yaw, start_pitch = float(yaw[0]), float(pitch[0])
    if prompt == "turn_left":
        return float(yaw.max() - start_yaw) >= YAW_STEP
    if prompt == "turn_right":
        return float(start_yaw - yaw.min()) >= YAW_STEP
    if prompt == "nod":
        # Down (nose toward the mouth line) or up, from where the head started.
        return float(np.abs(pitch - start_pitch).max()) >= PITCH_STEP
    return False


BOOK = ChallengeBook()  # this process's open challenges


def verify(
    book: ChallengeBook | StoreChallengeBook, nonce: str | None, scope: str, faces: Sequence[object]
) -> tuple[bool, str]:
    """(passed, reason) for a challenge answer: reason ok | expired | not_done."""
    c, why = book.take(nonce, scope)
    if c is None:
        return False, why
    if not movement_done(c.prompt, faces):
        return False, "not_done"
    return True, "ok"
