"""The hash-chained audit log (principle 7, PIPL-54, PIPL-57, SPC-10-2).

Each entry's hash is SHA-256 over the previous entry's hash and the entry's canonical JSON
(seq, time, actor, operation, subject pseudonym, purpose, outcome, details). Entries are
appended in the same transaction as the change they record (the caller commits both), and the
single ``audit_head`` row is locked while appending so concurrent writers cannot fork the chain.
No template, image or name may go in: details accept only short scalar values.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from facegate.audit.anchor import INFO_KEY, Anchor, AuditKey, CheckpointLog
from facegate.errors import InvalidInput
from facegate.store.models import AuditEntry, AuditHead, Consent, Person, Template

GENESIS = "0" * 64
_MAX_DETAIL_STR = 200  # long enough for ids and reasons, far too short for a template


def _canonical(fields: Mapping[str, Any]) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    return hashlib.sha256((prev_hash + "\n" + _canonical(fields)).encode()).hexdigest()


def _fields(e: AuditEntry) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "at": e.at,
        "actor": e.actor,
        "operation": e.operation,
        "subject": e.subject,
        "purpose": e.purpose,
        "outcome": e.outcome,
        "details": e.details or {},
    }


def _check_details(value: Any, path: str = "details") -> None:
    """Refuse anything that could carry a template, an image or free text at length."""
    if value is None or isinstance(value, bool | int | float):
        return
    if isinstance(value, str):
        if len(value) > _MAX_DETAIL_STR:
            raise InvalidInput(f"audit {path} is too long to be an id or a reason")
        return
    if isinstance(value, list | tuple):
        if len(value) > 100:
            raise InvalidInput(f"audit {path} has too many items")
        for i, v in enumerate(value):
            _check_details(v, f"{path}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if str(k).lower() in {"name", "template", "vector", "image", "embedding"}:
                raise InvalidInput(f"audit {path} may not contain {k!r}")
            _check_details(v, f"{path}.{k}")
        return
    raise InvalidInput(f"audit {path} has a value of type {type(value).__name__}")


def append(
    session: Session,
    *,
    actor: str,
    operation: str,
    purpose: str,
    outcome: str,
    subject: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Add one entry to the chain inside the caller's transaction (flushed, not committed)."""
    details = dict(details or {})
    _check_details(details)
    head = session.execute(
        select(AuditHead).where(AuditHead.id == 1).with_for_update()
    ).scalar_one()
    entry = AuditEntry(
        seq=head.seq + 1,
        at=datetime.now(UTC).isoformat(timespec="microseconds"),
        # Cut to the column sizes so SQLite and PostgreSQL hash exactly the same values.
        actor=(actor or "system")[:100],
        operation=operation[:50],
        subject=subject[:40] if subject else None,
        purpose=purpose[:100],
        outcome=outcome[:100],
        details=details,
        prev_hash=head.hash,
        hash="",
    )
    entry.hash = entry_hash(head.hash, _fields(entry))
    anchor: Anchor | None = session.info.get(INFO_KEY)
    if anchor is not None:
        # Sealed with the audit key, which the database does not hold (issue 13 item 17).
        entry.mac = anchor.seal(entry.hash)
        session.info[_PENDING] = (
            entry.seq,
            entry.hash,
            session.info.get(_PENDING, (0, "", 0))[2] + 1,
        )
    session.add(entry)
    head.seq, head.hash = entry.seq, entry.hash
    session.flush()
    return entry


_PENDING = "facegate_audit_pending"


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    anchor: Anchor | None = session.info.get(INFO_KEY)
    if pending is not None and anchor is not None:
        anchor.committed(pending[0], pending[1], pending[2])


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


# --- refusals: counted, not one row each (issue 13 item 18) ------------------------------------

REFUSALS_INFO_KEY = "facegate_refusal_summaries"
_MAX_OPEN_WINDOWS = 10_000


@dataclass
class _Window:
    started: float
    started_at: str
    suppressed: int = 0


class RefusalSummaries:
    """Refusals of one kind (operation, code, purpose) by one principal within a window: the
    first is recorded in full, the rest are counted and recorded as one summary entry with the
    count when the window has passed. A flood of refused requests (a fuzzer, a stuck client)
    costs one row per minute and principal, and is still accounted for (PIPL-54)."""

    def __init__(self, window_s: float = 60.0) -> None:
        self.window_s = window_s
        self._open: dict[tuple[str, ...], _Window] = {}
        self._lock = threading.Lock()
        self.next_due = float("inf")  # when the first window with counted refusals ends

    def admit(self, key: tuple[str, ...]) -> bool:
        """True: record this refusal in full (and open a window for it); False: counted."""
        now = time.monotonic()
        with self._lock:
            w = self._open.get(key)
            if w is not None and now - w.started < self.window_s:
                w.suppressed += 1
                self.next_due = min(self.next_due, w.started + self.window_s)
                return False
            return True

    def open_window(self, key: tuple[str, ...]) -> None:
        with self._lock:
            self._open[key] = _Window(
                time.monotonic(), datetime.now(UTC).isoformat(timespec="seconds")
            )

    def has_due(self) -> bool:
        return time.monotonic() >= self.next_due

    def due(self, *, everything: bool = False) -> list[tuple[tuple[str, ...], _Window]]:
        """Windows that have ended (all of them at shutdown) with refusals not yet written."""
        now = time.monotonic()
        out = []
        with self._lock:
            flood = len(self._open) > _MAX_OPEN_WINDOWS
            for key, w in list(self._open.items()):
                if everything or flood or now - w.started >= self.window_s:
                    del self._open[key]
                    if w.suppressed:
                        out.append((key, w))
            self.next_due = min(
                (w.started + self.window_s for w in self._open.values() if w.suppressed),
                default=float("inf"),
            )
        return out


def record_refusal(
    session: Session,
    *,
    actor: str,
    operation: str,
    purpose: str,
    code: str,
    subject: str | None = None,
) -> None:
    """Audit a refused request inside the caller's transaction: in full, or counted into a
    summary when the session's store keeps refusal summaries (``anchor.attach``)."""
    tracker: RefusalSummaries | None = session.info.get(REFUSALS_INFO_KEY)
    if tracker is not None:
        key = (operation[:50], code[:40], (actor or "system")[:100], purpose[:100])
        if not tracker.admit(key):
            return
        write_refusal_summaries(session)
        tracker.open_window(key)
    append(
        session,
        actor=actor,
        operation=operation,
        subject=subject,
        purpose=purpose,
        outcome=f"refused:{code}",
    )


def write_refusal_summaries(session: Session, *, everything: bool = False) -> int:
    """Append one summary entry per finished window of counted refusals (not committed)."""
    tracker: RefusalSummaries | None = session.info.get(REFUSALS_INFO_KEY)
    if tracker is None:
        return 0
    windows = tracker.due(everything=everything)
    for (operation, code, actor, purpose), w in windows:
        append(
            session,
            actor=actor,
            operation=operation,
            purpose=purpose,
            outcome=f"refused:{code}",
            details={
                "summary": True,
                "count": w.suppressed,
                "from": w.started_at,
                "to": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )
    return len(windows)


def current_head(session: Session) -> tuple[int, str]:
    head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one_or_none()
    return (head.seq, head.hash) if head is not None else (0, GENESIS)


# --- verification --------------------------------------------------------------------------------

# What a finding is, most serious first. Each one alone fails verification (exit 1).
KINDS = (
    "reset",  # the log was emptied (and the head set back) while checkpoints or records say more
    "truncated",  # entries were removed from the end (with or without moving the head)
    "inserted",  # an entry the audit key did not seal (appended or slipped in by someone else)
    "deleted",  # entries missing from the middle of the chain
    "rewritten",  # an entry's content, order, hash or seal was changed
    "head",  # the head row disagrees with the chain
    "checkpoints",  # the checkpoint file is missing, unsigned, reordered or cut
    "unaudited",  # a person, consent or template the log says nothing about
)
_MAX_FINDINGS = 20


@dataclass(frozen=True)
class Finding:
    kind: str
    seq: int | None
    message: str


def append_many(session: Session, entries: list[Mapping[str, Any]]) -> list[AuditEntry]:
    """``append`` for several entries in order, locking the head once (a merged batch of
    offline decisions, issue 18); each entry takes the same keyword arguments."""
    if not entries:
        return []
    head = session.execute(
        select(AuditHead).where(AuditHead.id == 1).with_for_update()
    ).scalar_one()
    out = []
    seq, prev = head.seq, head.hash
    for kw in entries:
        details = dict(kw.get("details") or {})
        _check_details(details)
        subject = kw.get("subject")
        seq += 1
        entry = AuditEntry(
            seq=seq,
            at=datetime.now(UTC).isoformat(timespec="microseconds"),
            actor=(kw.get("actor") or "system")[:100],
            operation=kw["operation"][:50],
            subject=subject[:40] if subject else None,
            purpose=kw["purpose"][:100],
            outcome=kw["outcome"][:100],
            details=details,
            prev_hash=prev,
            hash="",
        )
        entry.hash = entry_hash(prev, _fields(entry))
        prev = entry.hash
        out.append(entry)
    anchor: Anchor | None = session.info.get(INFO_KEY)
    if anchor is not None:
        # Sealed like every entry ``append`` writes (issue 13 item 17), or verification would
        # report a merged batch of offline decisions as inserted.
        for entry in out:
            entry.mac = anchor.seal(entry.hash)
        session.info[_PENDING] = (
            seq,
            prev,
            session.info.get(_PENDING, (0, "", 0))[2] + len(out),
        )
    session.add_all(out)
    head.seq, head.hash = seq, prev
    session.flush()
    return out


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str = ""
    kind: str = ""
    findings: tuple[Finding, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    anchored: bool = False
    checkpoint_seq: int | None = None
    checkpoint_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Findings:
    def __init__(self) -> None:
        self.by_seq: dict[int | None, Finding] = {}
        self.extra: list[Finding] = []
        self.counts: dict[str, int] = {}

    def add(self, kind: str, seq: int | None, message: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if seq is None:
            if len(self.extra) < _MAX_FINDINGS:
                self.extra.append(Finding(kind, seq, message))
            return
        old = self.by_seq.get(seq)
        if old is None:
            if len(self.by_seq) < _MAX_FINDINGS:
                self.by_seq[seq] = Finding(kind, seq, message)
        elif KINDS.index(kind) < KINDS.index(old.kind):
            self.by_seq[seq] = Finding(kind, seq, message)

    def ordered(self) -> list[Finding]:
        resets = [f for f in self.extra if f.kind == "reset"]
        seqd = sorted(self.by_seq.values(), key=lambda f: (f.seq, KINDS.index(f.kind)))
        rest = sorted(
            (f for f in self.extra if f.kind != "reset"), key=lambda f: KINDS.index(f.kind)
        )
        return resets + seqd + rest


def verify(
    session: Session,
    batch: int = 5000,
    *,
    anchor: Anchor | None = None,
    check_records: bool = True,
    checkpoint: bool = True,
) -> VerifyResult:
    """Walk the whole chain and check it against the audit key and the signed checkpoints
    (issue 13 item 17, PIPL-54): report truncation, reset, insertion, deletion and rewriting
    distinctly, and every person, consent or template the log says nothing about.

    ``anchor`` defaults to the one the session was given (``facegate.audit.anchor.attach``);
    without an audit key only the hash chain and the records can be checked. When the chain
    is intact and anchored, its head is checkpointed (``checkpoint``)."""
    anchor = anchor if anchor is not None else session.info.get(INFO_KEY)
    key: AuditKey | None = anchor.key if anchor is not None else None
    cps: CheckpointLog | None = anchor.file.read() if anchor is not None else None
    found = _Findings()
    head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one_or_none()

    seal_from: int | None = None
    cp_by_seq: dict[int, Any] = {}
    if cps is not None and anchor is not None:
        for p in cps.problems:
            found.add("checkpoints", None, p)
        if not cps.exists:
            found.add(
                "checkpoints",
                None,
                f"the checkpoint file {anchor.file.path} is missing: nothing outside the "
                "database vouches for the chain",
            )
        if cps.genesis is not None:
            seal_from = cps.genesis.seq
        for cp in cps.checkpoints:
            cp_by_seq.setdefault(cp.seq, cp)

    subjects: set[str] = set()
    consent_ids: set[str] = set()
    enrolled: set[tuple[str, int]] = set()
    prev, expected, count, last_seq = GENESIS, 1, 0, 0
    rows = session.execute(
        select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=batch)
    ).scalars()
    for e in rows:
        if e.seq != expected:
            found.add("deleted", expected, f"entries {expected} to {e.seq - 1} are missing")
            prev = e.prev_hash
        if e.prev_hash != prev:
            found.add("rewritten", e.seq, f"entry {e.seq} does not follow entry {e.seq - 1}")
        if entry_hash(e.prev_hash, _fields(e)) != e.hash:
            found.add("rewritten", e.seq, f"entry {e.seq} was altered (its hash does not match)")
        if key is not None:
            if e.mac is None:
                if seal_from is not None and e.seq > seal_from:
                    found.add(
                        "inserted",
                        e.seq,
                        f"entry {e.seq} was not written by facegate: it has no seal made "
                        "with the audit key",
                    )
            elif not key.seal_ok(e.hash, e.mac):
                found.add(
                    "rewritten",
                    e.seq,
                    f"entry {e.seq} was rewritten: its seal does not match the audit key",
                )
            elif seal_from is None:
                seal_from = e.seq - 1
        cp = cp_by_seq.get(e.seq)
        if cp is not None and cp.hash != e.hash:
            found.add(
                "rewritten",
                e.seq,
                f"entry {e.seq} differs from the checkpoint signed at {cp.at}",
            )
        if e.subject:
            subjects.add(e.subject)
        if e.outcome == "ok" and isinstance(e.details, dict):
            if e.operation == "consent_record" and e.details.get("consent_id"):
                consent_ids.add(str(e.details["consent_id"]))
            elif e.operation == "enroll" and e.subject:
                enrolled.add((e.subject, int(e.details.get("templates") or 0)))
        prev, expected, count, last_seq = e.hash, e.seq + 1, count + 1, e.seq

    latest = cps.latest if cps is not None else None
    if latest is not None and last_seq < latest.seq:
        if count == 0:
            found.add(
                "reset",
                None,
                f"the audit log was emptied: the checkpoint signed at {latest.at} vouches for "
                f"{latest.seq} entries",
            )
        else:
            found.add(
                "truncated",
                last_seq + 1,
                f"entries {last_seq + 1} to {latest.seq} were removed from the end: the "
                f"checkpoint signed at {latest.at} vouches for {latest.seq} entries",
            )
    if head is None:
        found.add("head", None, "the audit head row is missing")
    elif head.seq > last_seq:
        found.add(
            "truncated",
            last_seq + 1,
            f"the chain ends at entry {last_seq} but the head says {head.seq}: entries were "
            "removed from the end",
        )
    elif head.seq < last_seq:
        found.add(
            "inserted",
            head.seq + 1,
            f"entries {head.seq + 1} to {last_seq} lie beyond the head: they were added "
            "without going through facegate",
        )
    elif head.hash != prev:
        found.add("rewritten", last_seq, "the head hash does not match the last entry")

    if check_records:
        _check_records(session, found, subjects, consent_ids, enrolled, empty=count == 0)

    ordered = found.ordered()
    head_seq, head_hash = (head.seq, head.hash) if head is not None else (0, "")
    first = ordered[0] if ordered else None
    result = VerifyResult(
        ok=first is None,
        entries=count,
        head_seq=head_seq,
        head_hash=head_hash,
        first_bad_seq=first.seq if first else None,
        reason=first.message if first else "",
        kind=first.kind if first else "",
        findings=tuple(ordered),
        counts=dict(found.counts),
        anchored=key is not None,
        checkpoint_seq=latest.seq if latest else None,
        checkpoint_at=latest.at if latest else None,
    )
    if result.ok and checkpoint and anchor is not None and head is not None:
        anchor.checkpoint(head.seq, head.hash, "verify")
    return result


def _check_records(
    session: Session,
    found: _Findings,
    subjects: set[str],
    consent_ids: set[str],
    enrolled: set[tuple[str, int]],
    *,
    empty: bool,
) -> None:
    """People, consents and templates the audit log speaks for must each have their entry."""
    people = [p for (p,) in session.execute(select(Person.id)).all()]
    unaudited = [p for p in people if p not in subjects]
    if empty and people:
        found.add(
            "reset",
            None,
            f"the audit log is empty while {len(people)} people are registered: it was reset",
        )
    for p in unaudited[:_MAX_FINDINGS]:
        found.add("unaudited", None, f"person {p} exists but no audit entry records them")
    for cid, pid in session.execute(select(Consent.id, Consent.person_id)).all():
        if cid not in consent_ids:
            found.add(
                "unaudited",
                None,
                f"consent {cid} of person {pid} exists but no audit entry records it",
            )
    rows = session.execute(
        select(Template.person_id, func.count()).group_by(Template.person_id)
    ).all()
    for pid, n in rows:
        if (pid, int(n)) not in enrolled:
            found.add(
                "unaudited",
                None,
                f"person {pid} has {n} template(s) that no enrollment entry records",
            )
