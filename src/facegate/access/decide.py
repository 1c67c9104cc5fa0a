"""The decision at a door: face 1:N, card, PIN, QR pass, credential + face (1:1), override.

One function per method family, all ending in ``record``: every decision is an AccessEvent and
an audit entry in one transaction (principle 7), except repeats of the same decision for the
same person at the same door within the de-duplication interval. A non-match stores nothing
about the face: no template, no score, no pseudonym (STD-41819-05, CAC-FR-08a).

The rules read their facts through ``Facts``: ``DbFacts`` over a database session, or the
gate's in-memory copy when the database is away (``facegate.access.snapshot``, issue 18). The
rules are the same code either way; only where facts come from and where the event goes
(the database, or the local journal) differ.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import or_, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from facegate.access.burst import FrameProbe, ProbeOutcome, combine, select_probes
from facegate.access.dedup import EventDeduplicator
from facegate.access.galleries import GalleryService, SiteGallery
from facegate.domain.consent import valid_consent
from facegate.domain.credentials import parse_qr_token, qr_secret_matches, verify_pin_hash
from facegate.domain.events import record_access_event_in_tx
from facegate.domain.passcodes import code_index, normalize_code
from facegate.errors import DecisionAbandoned, InvalidInput, NotFound
from facegate.matching.policy import decide as match_decide
from facegate.store.models import AccessPoint, Consent, Credential, Person, Site
from facegate.store.web_models import LoginThrottle

log = logging.getLogger("facegate.decide")


@dataclass(frozen=True)
class Decision:
    decision: str  # allow / deny
    method: str  # face, card, pin, qr, card+face, pin+face, qr+face, card+pin, staffed
    subject: str | None  # pseudonym, never a name
    reason: str
    request_id: str
    recorded: bool = True  # False when folded into an identical recent event

    def to_dict(self) -> dict[str, object]:
        return {
            "decision": self.decision,
            "method": self.method,
            "subject": self.subject,
            "reason": self.reason,
            "request_id": self.request_id,
        }


@dataclass(frozen=True)
class CredentialInput:
    card: str | None = None
    pin: str | None = None
    qr: str | None = None
    pin_owner: str | None = None  # whose PIN: the PIN's identifier (unit number) or pseudonym

    @property
    def present(self) -> bool:
        return bool(self.card or self.pin or self.qr)

    @property
    def method(self) -> str:
        parts = [m for m in ("card", "pin", "qr") if getattr(self, m)]
        return "+".join(parts)


@dataclass(frozen=True)
class FaceMatcher:
    """The thresholds the matching layer ships, taken from the running pipeline."""

    threshold_1to1: float
    margin: float
    threshold_for_gallery: object  # Callable[[int], float]


@dataclass(frozen=True)
class GateContext:
    """Everything a decision needs besides its input; built once per server process."""

    galleries: GalleryService | None
    matcher: FaceMatcher | None
    dedup: EventDeduplicator
    agree_frames: int
    pin_max_failures: int
    pin_lockout: timedelta


def now_utc() -> datetime:
    return datetime.now(UTC)


def access_point(session: Session, access_point_id: str) -> AccessPoint:
    ap = session.get(AccessPoint, access_point_id)
    if ap is None:
        raise NotFound(f"no access point {access_point_id!r}", zh="找不到这个出入口")
    return ap


# --- where the facts come from ----------------------------------------------------------------


class Guard(Protocol):
    """The request's deadline: a decision is recorded only while someone waits for it."""

    def claim(self, path: str) -> None: ...  # raises DecisionAbandoned when too late

    def delivered(self) -> bool: ...  # True when the caller gave up after the claim


class Facts(Protocol):
    """What a decision reads, whichever the source. Credential rows returned by ``pins`` and
    ``qr`` are the ones the decision may change (counters, uses); the source keeps them."""

    offline: bool

    def access_point(self, access_point_id: str) -> Any: ...

    def site_face_enabled(self, site_id: str) -> bool: ...

    def cards(self, site_id: str, number: str) -> list[Any]: ...

    def pins(self, site_id: str, owner: str) -> list[Any]: ...

    def qr(self, credential_id: str) -> Any | None: ...

    def qr_by_code(self, site_id: str, code: str) -> Any | None: ...

    def code_throttle(self, access_point_id: str, now: datetime) -> Any: ...

    def keep_code_throttle(self, row: Any) -> None: ...

    def person(self, person_id: str) -> Any | None: ...

    def consent_scope(self, person: Any) -> Sequence[str] | None: ...

    def consent_states(self, person_id: str) -> list[tuple[Any, Any]]: ...


class DbFacts:
    """Facts read from the database in the decision's own transaction (locks included)."""

    offline = False

    def __init__(self, session: Session, guard: Guard | None = None) -> None:
        self.session = session
        self.guard = guard
        self.touched: list[Credential] = []  # rows whose counters the decision may change
        self._committing = False

    def access_point(self, access_point_id: str) -> AccessPoint:
        return access_point(self.session, access_point_id)

    def site_face_enabled(self, site_id: str) -> bool:
        site = self.session.get(Site, site_id)
        return site is not None and bool(site.face_enabled)

    def cards(self, site_id: str, number: str) -> list[Credential]:
        stmt = select(Credential).where(
            Credential.site_id == site_id,
            Credential.kind == "card",
            Credential.identifier == number,
        )
        return list(self.session.execute(stmt).scalars())

    def pins(self, site_id: str, owner: str) -> list[Credential]:
        stmt = (
            select(Credential)
            .where(
                Credential.site_id == site_id,
                Credential.kind == "pin",
                Credential.revoked_at.is_(None),
                or_(Credential.identifier == owner, Credential.person_id == owner),
            )
            .with_for_update()
        )
        rows = list(self.session.execute(stmt).scalars())
        self.touched += rows
        return rows

    def qr(self, credential_id: str) -> Credential | None:
        stmt = select(Credential).where(Credential.id == credential_id).with_for_update()
        row = self.session.execute(stmt).scalar_one_or_none()
        if row is not None:
            self.touched.append(row)
        return row

    def qr_by_code(self, site_id: str, code: str) -> Credential | None:
        """The pass whose short code (normalised) this is, by its keyed hash; locked."""
        index = code_index(self.session, site_id, code)
        if index is None:
            return None
        stmt = (
            select(Credential)
            .where(Credential.site_id == site_id, Credential.code_hash == index)
            .with_for_update()
        )
        row = self.session.execute(stmt).scalars().first()
        if row is not None:
            self.touched.append(row)
        return row

    def code_throttle(self, access_point_id: str, now: datetime) -> LoginThrottle:
        """The count of wrong short codes typed at this access point: a row of the same
        throttle table as sign-ins (keyed ``code:<access point>``), locked, and committed with
        the decision's event."""
        key = f"code:{access_point_id}"
        row = self.session.get(LoginThrottle, key, with_for_update=True)
        if row is None:  # added only when a wrong code is counted
            row = LoginThrottle(key=key, failures=0, last_failure_at=now, blocked_until=None)
        return row

    def keep_code_throttle(self, row: LoginThrottle) -> None:
        self.session.add(row)

    def person(self, person_id: str) -> Person | None:
        return self.session.get(Person, person_id)

    def consent_scope(self, person: Person) -> Sequence[str] | None:
        consent = valid_consent(self.session, person)
        return None if consent is None else list(consent.scope or ())

    def consent_states(self, person_id: str) -> list[tuple[Any, Any]]:
        rows = self.session.execute(select(Consent).where(Consent.person_id == person_id))
        return [(c.withdrawn_at, c.renewal_required_at) for c in rows.scalars()]

    @contextmanager
    def recording(self) -> Iterator[None]:
        """Claim the request's deadline, then record. A failure that surely left nothing
        committed (disk full, a lock or statement timeout: not a dropped connection, whose
        commit is in doubt) gives the claim back, so the gate may still decide from memory."""
        if self.guard is not None:
            try:
                self.guard.claim("database")
            except DecisionAbandoned:
                self.session.rollback()  # no counter, no use, no event
                raise
        self._committing = False
        try:
            yield
        except DBAPIError as exc:
            # Only a connection lost during COMMIT leaves the outcome in doubt.
            if self.guard is not None and not (self._committing and exc.connection_invalidated):
                self.session.rollback()
                self.guard.release("database")
            raise

    def commit(self) -> None:
        self._committing = True
        self.session.commit()

    def delivered(self, event_id: int | None) -> None:
        """After the commit: if the caller gave up meanwhile, the event says so."""
        if self.guard is not None and self.guard.delivered() and event_id is not None:
            from facegate.domain.events import mark_abandoned

            mark_abandoned(self.session, event_id)


# --- the entry point --------------------------------------------------------------------------


def decide(
    facts: Facts,
    ctx: GateContext,
    *,
    access_point_id: str,
    request_id: str,
    actor: str,
    credential: CredentialInput,
    frames: Sequence[FrameProbe] | None = None,
    site_gallery: SiteGallery | None = None,
) -> Decision:
    """Decide one passage. ``frames`` are probes already computed off the event loop.

    ``site_gallery`` is the access point's site gallery, fetched by the caller BEFORE the
    session opened: a thread holding a database transaction must never wait for the gallery
    service, which itself reads the database while loading (on SQLite every transaction holds
    the write lock, so that would deadlock until the busy timeout).
    """
    ap = facts.access_point(access_point_id)
    if frames and credential.present and not face_may_be_used(facts, ap, credential):
        # The credential names someone without a valid face consent: they get exactly what
        # the credential gives them, and their face is not used (CAC-FR-06b, SPC-10). The
        # adapters ask ``face_may_be_used`` before analysing, so the frame is never processed.
        frames = None
    has_face = frames is not None and len(frames) > 0
    if not has_face and not credential.present:
        raise InvalidInput("send a camera frame or a credential (card, PIN or QR pass)")
    method = "+".join(x for x in (credential.method, "face" if has_face else "") if x)
    too_long = facts.too_long() if facts.offline else None  # type: ignore[attr-defined]
    if too_long:
        # Fail closed after offline_max_s without the database (issue 18).
        return _record(facts, ctx, ap, method, None, "deny", too_long, request_id, actor)

    for m in method.split("+"):
        if m not in (ap.methods or []):
            # The gate sent something this door is not configured for.
            return _record(
                facts,
                ctx,
                ap,
                method,
                None,
                "deny",
                f"method_not_accepted:{m}",
                request_id,
                actor,
            )
    person_id: str | None = None
    if credential.present:
        person_id, reason = _check_credentials(facts, ctx, ap, credential)
        if reason != "ok":
            return _record(facts, ctx, ap, method, person_id, "deny", reason, request_id, actor)
    if not has_face:
        return _record(facts, ctx, ap, method, person_id, "allow", "ok", request_id, actor)

    if not (ap.face_enabled and facts.site_face_enabled(ap.site_id)):
        # Face stays off until the compliance activation gate switches it on (issue 7); the
        # offline copy holds the same switches.
        return _record(
            facts, ctx, ap, method, person_id, "deny", "face_not_enabled", request_id, actor
        )
    assert frames is not None and site_gallery is not None and ctx.matcher is not None
    chosen, why = select_probes(frames, ctx.agree_frames)
    if not chosen:
        return _record(facts, ctx, ap, method, person_id, "deny", why, request_id, actor)
    sg = site_gallery
    if credential.present:
        outcome = _verify_1to1(facts, ctx, sg, ap, person_id, chosen)
    else:
        outcome = _identify_1toN(ctx, sg, ap, chosen)
        if outcome.subject is not None and not _may_match(facts, outcome.subject, ap):
            # The gallery lags the database (a withdrawal in flight): the database wins, and
            # the face of someone who withdrew is treated as unknown (CAC-FR-06b). The
            # listener or poller brings the gallery up to date.
            outcome = ProbeOutcome(None, "no_match")
    if outcome.subject is None:
        # 1:1 mode keeps the credential holder's pseudonym (the credential named them);
        # a 1:N non-match keeps nothing about the face.
        return _record(facts, ctx, ap, method, person_id, "deny", outcome.reason, request_id, actor)
    return _record(
        facts,
        ctx,
        ap,
        method,
        outcome.subject,
        "allow",
        "ok",
        request_id,
        actor,
        score=outcome.score,
    )


# --- whose face may be processed at all --------------------------------------------------------


def credential_holder(facts: Facts, ap: Any, cred: CredentialInput) -> str | None:
    """The pseudonym a card, QR pass or PIN owner names, looked up without changing anything
    (no use counted, no PIN checked); None when it names no one registered."""
    if cred.qr:
        code = normalize_code(cred.qr)
        if code is not None:
            c = facts.qr_by_code(ap.site_id, code)  # nothing counted here (no use, no failure)
        else:
            try:
                cred_id, _ = parse_qr_token(cred.qr)
            except InvalidInput:
                return None
            c = facts.qr(cred_id)
        if c is not None and c.site_id == ap.site_id and c.person_id:
            return c.person_id
    if cred.card:
        for c in facts.cards(ap.site_id, cred.card):
            if c.revoked_at is None and c.person_id:
                return c.person_id
    if cred.pin and cred.pin_owner:
        for c in facts.pins(ap.site_id, cred.pin_owner):
            if c.person_id:
                return c.person_id
    return None


def face_may_be_used(facts: Facts, ap: Any, cred: CredentialInput) -> bool:
    """Whether a frame sent together with this credential may be processed at all.

    A person who declined or withdrew (or whose consent does not cover this door) is decided
    on the credential alone, and their face is never detected or embedded: processing the face
    of someone who said no is itself the violation (CAC-FR-06b, PIPL-15/16, SPC-10). A
    credential that names no one (unknown card, visitor pass) leaves the decision to the
    rules below; its frame is only ever compared 1:1 and never stored."""
    if not cred.present:
        return True
    holder = credential_holder(facts, ap, cred)
    if holder is None:
        return True
    return _may_match(facts, holder, ap)


def face_use_allowed(facts: Facts, access_point_id: str, cred: CredentialInput) -> bool:
    """``face_may_be_used`` by access point id, for adapters to ask before analysing frames."""
    return face_may_be_used(facts, facts.access_point(access_point_id), cred)


# --- face -------------------------------------------------------------------------------------


def _identify_1toN(ctx, sg, ap: AccessPoint, probes: list[FrameProbe]) -> ProbeOutcome:
    """Search only the people whose active consent covers this access point."""
    subjects = sg.subjects_for(ap.id)
    n = len(subjects) if subjects is not None else sg.gallery.subject_count
    threshold = ctx.matcher.threshold_for_gallery(max(n, 1))
    outcomes = []
    for p in probes:
        hits = sg.search(p.template, ap.id, k=2)
        d = match_decide(hits, threshold, ctx.matcher.margin)
        outcomes.append(ProbeOutcome(d.subject if d.matched else None, d.outcome, d.score))
    return combine(outcomes)


def _verify_1to1(facts, ctx, sg, ap, person_id, probes) -> ProbeOutcome:
    """The credential names the person; every chosen frame must confirm them."""
    if person_id is None:  # a visitor pass names no one with a face
        return ProbeOutcome(None, "not_enrolled_here")
    if not sg.in_scope(person_id, ap.id) or not _may_match(facts, person_id, ap):
        return ProbeOutcome(None, _why_not_here(facts, person_id))
    outcomes = []
    for p in probes:
        score = sg.score_of(p.template, person_id)
        ok = score is not None and score >= ctx.matcher.threshold_1to1
        outcomes.append(
            ProbeOutcome(person_id if ok else None, "match" if ok else "no_match", score)
        )
    return combine(outcomes)


def _may_match(facts: Facts, person_id: str, ap: AccessPoint) -> bool:
    """Ground truth: the person is active and their valid consent covers this access point
    (a guardian's for an under-14, CAC-FR-07; renewed after a notice change, CAC-FR-05b).
    Offline, a withdrawal that reached this gate before the outage is in force (CAC-FR-06b)."""
    person = facts.person(person_id)
    if person is None or person.status != "active" or person.site_id != ap.site_id:
        return False
    scope = facts.consent_scope(person)
    return scope is not None and ap.id in scope


def _why_not_here(facts: Facts, person_id: str) -> str:
    consents = facts.consent_states(person_id)  # (withdrawn_at, renewal_required_at)
    if consents and all(w is not None for w, _ in consents):
        return "consent_withdrawn"
    if consents and all(w is not None or r is not None for w, r in consents):
        return "consent_renewal_required"
    return "not_enrolled_here"


# --- credentials ------------------------------------------------------------------------------


def _check_credentials(
    facts: Facts, ctx: GateContext, ap: AccessPoint, cred: CredentialInput
) -> tuple[str | None, str]:
    """(person pseudonym, "ok") or (known pseudonym or None, deny reason)."""
    person_id: str | None = None
    if cred.qr:
        code = normalize_code(cred.qr)
        if code is not None:
            person_id, reason = _check_code(facts, ctx, ap, code)
        else:
            person_id, reason = _check_qr(facts, ap, cred.qr)
        if reason != "ok":
            return person_id, reason
    if cred.card:
        card_person, reason = _check_card(facts, ap, cred.card)
        if reason != "ok":
            return card_person, reason
        if person_id is not None and card_person != person_id:
            return None, "credential_mismatch"
        person_id = card_person
    if cred.pin:
        owner = person_id if cred.card or cred.qr else cred.pin_owner
        if not owner:
            raise InvalidInput(
                "a PIN needs `person` (the PIN's unit number or pseudonym) or a card"
            )
        pin_person, reason = _check_pin(facts, ctx, ap, owner, cred.pin)
        if reason != "ok":
            return pin_person, reason
        if person_id is not None and pin_person != person_id:
            return None, "credential_mismatch"
        person_id = pin_person
    if person_id is not None:
        person = facts.person(person_id)
        if person is None or person.status != "active":
            return None, "credential_revoked"
    return person_id, "ok"


def _valid_here(c: Credential, ap: AccessPoint) -> bool:
    return c.site_id == ap.site_id and (not c.access_point_ids or ap.id in c.access_point_ids)


def _time_reason(c: Credential, now: datetime, expired: str) -> str | None:
    if c.valid_from is not None and now < c.valid_from:
        return "pass_not_yet_valid" if c.kind == "qr" else "credential_not_yet_valid"
    if c.valid_until is not None and now >= c.valid_until:
        return expired
    return None


def _check_card(facts: Facts, ap: AccessPoint, number: str) -> tuple[str | None, str]:
    rows = facts.cards(ap.site_id, number)
    live = [c for c in rows if c.revoked_at is None]
    if not live:
        return None, "credential_revoked" if rows else "unknown_credential"
    c = live[0]
    late = _time_reason(c, now_utc(), "credential_expired")
    if late:
        return c.person_id, late
    if not _valid_here(c, ap):
        return c.person_id, "not_valid_here"
    return c.person_id, "ok"


def _check_pin(
    facts: Facts, ctx: GateContext, ap: AccessPoint, owner: str, pin: str
) -> tuple[str | None, str]:
    # Offline the counters live in the gate's copy and go to the database with the journal:
    # lockouts count offline too (issue 18).
    creds = facts.pins(ap.site_id, owner)
    if not creds:
        return None, "unknown_credential"
    now = now_utc()
    for c in creds:
        if c.locked_until is not None and now < c.locked_until:
            # Locked: the PIN is not even checked, so guessing during lockout learns nothing.
            return c.person_id, "pin_locked"
    for c in creds:
        if c.secret_hash and verify_pin_hash(c.secret_hash, pin):
            c.failed_attempts = 0
            c.locked_until = None
            if not _valid_here(c, ap):
                return c.person_id, "not_valid_here"
            return c.person_id, "ok"
    # A wrong PIN counts against every PIN of that owner; at the limit they lock.
    reason = "wrong_pin"
    for c in creds:
        c.failed_attempts = (c.failed_attempts or 0) + 1
        if c.failed_attempts >= ctx.pin_max_failures:
            c.locked_until = now + ctx.pin_lockout
            c.failed_attempts = 0
            reason = "pin_locked"
    return creds[0].person_id, reason


def _check_qr(facts: Facts, ap: AccessPoint, token: str) -> tuple[str | None, str]:
    try:
        cred_id, secret = parse_qr_token(token)
    except InvalidInput:
        return None, "unknown_credential"
    c = facts.qr(cred_id)
    if c is None or c.kind != "qr" or c.site_id != ap.site_id or not qr_secret_matches(c, secret):
        return None, "unknown_credential"
    return _pass_rules(c, ap)


def _check_code(
    facts: Facts, ctx: GateContext, ap: AccessPoint, code: str
) -> tuple[str | None, str]:
    """A QR pass's short code, typed (issue 16 item 10): the same pass, the same rules.

    A short code is guessable in a way a 190-bit token is not, so wrong codes are counted per
    access point, with the PIN lockout's limits (one source: ``pin_max_failures`` wrong codes
    within ``pin_lockout``, then no code is even checked at that door for ``pin_lockout``).
    The count is a row of the sign-in throttle table with the database, and in the gate's
    memory without it. Entropy and odds: ``facegate.domain.passcodes``."""
    now = now_utc()
    throttle = facts.code_throttle(ap.id, now)
    if throttle.blocked_until is not None and now < throttle.blocked_until:
        # Blocked: the code is not looked up, so guessing during the block learns nothing.
        return None, "code_throttled"
    c = facts.qr_by_code(ap.site_id, code)
    if c is not None and c.kind == "qr" and c.site_id == ap.site_id:
        return _pass_rules(c, ap)
    if throttle.last_failure_at is not None and throttle.last_failure_at + ctx.pin_lockout <= now:
        throttle.failures = 0  # quiet for long enough: start afresh
    throttle.failures = (throttle.failures or 0) + 1
    throttle.last_failure_at = now
    facts.keep_code_throttle(throttle)
    if throttle.failures >= ctx.pin_max_failures:
        throttle.blocked_until = now + ctx.pin_lockout
        throttle.failures = 0
        return None, "code_throttled"
    return None, "unknown_credential"


def _pass_rules(c: Any, ap: AccessPoint) -> tuple[str | None, str]:
    """Revocation, validity window, uses and place of a QR pass found by token or code."""
    if c.revoked_at is not None:
        return c.person_id, "credential_revoked"
    late = _time_reason(c, now_utc(), "pass_expired")
    if late:
        return c.person_id, late
    if c.max_uses is not None and (c.uses or 0) >= c.max_uses:
        return c.person_id, "pass_used"
    if not _valid_here(c, ap):
        return c.person_id, "not_valid_here"
    c.uses = (c.uses or 0) + 1  # counted in the decision's transaction (no double use)
    return c.person_id, "ok"


# --- recording --------------------------------------------------------------------------------


def _record(
    facts: Facts,
    ctx: GateContext,
    ap: AccessPoint,
    method: str,
    subject: str | None,
    decision: str,
    reason: str,
    request_id: str,
    actor: str,
    score: float | None = None,
    operator: str | None = None,
) -> Decision:
    """AccessEvent + audit entry, committed together (credential counters included).

    Offline (issue 18) the same event goes to the gate's local journal instead, with the
    counters it changed, and reaches the database with its audit entry when it returns.
    Either way the request's deadline is claimed first: an answer nobody waits for any more
    is not recorded (and one given up on during the commit is marked ``abandoned``)."""
    result = Decision(decision, method, subject, reason, request_id)
    # Only a person's repeated passages fold into one event; every denial is kept (a run of
    # wrong PINs or refused faces is exactly what an operator must be able to see).
    folded = False
    if subject is not None and operator is None and decision == "allow":
        key = (ap.id, subject, method, decision, reason)
        folded = not ctx.dedup.should_record(key)
    if facts.offline:
        facts.journal(  # type: ignore[attr-defined]
            ap=ap,
            method=method,
            outcome=decision,
            reason=reason,
            subject=subject,
            score=round(score, 4) if (score is not None and decision == "allow") else None,
            request_id=request_id,
            actor=actor,
            operator=operator,
            folded=folded,
        )
        if folded:
            return Decision(decision, method, subject, reason, request_id, recorded=False)
        return result
    session = facts.session  # type: ignore[attr-defined]
    with facts.recording():  # type: ignore[attr-defined]
        if folded:
            facts.commit()  # type: ignore[attr-defined]  # PIN counters, QR uses still count
            return Decision(decision, method, subject, reason, request_id, recorded=False)
        event = record_access_event_in_tx(
            session,
            site_id=ap.site_id,
            access_point_id=ap.id,
            method=method,
            outcome=decision,
            reason=reason,
            person_pseudonym=subject,
            # A score only for an allowed face: a non-match keeps nothing about the face.
            score=round(score, 4) if (score is not None and decision == "allow") else None,
            request_id=request_id,
            operator=operator,
            actor=actor,
        )
        facts.commit()  # type: ignore[attr-defined]
    facts.delivered(event.id)  # type: ignore[attr-defined]
    return result


def override(
    session: Session,
    ctx: GateContext,
    *,
    access_point_id: str,
    request_id: str,
    actor: str,
    operator: str,
    reason: str,
    subject: str | None = None,
) -> Decision:
    """A staffed manual decision (PIPL-24: every automated denial has a human path)."""
    facts = DbFacts(session)
    ap = facts.access_point(access_point_id)
    if subject is not None:
        person = session.get(Person, subject)
        if person is None or person.site_id != ap.site_id:
            raise NotFound(f"no person {subject!r} at this site", zh="本场所没有此人")
    return _record(
        facts,
        ctx,
        ap,
        "staffed",
        subject,
        "allow",
        f"manual_override:{reason}",
        request_id,
        actor,
        operator=operator,
    )
