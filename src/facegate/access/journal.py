"""The gate's local journal of decisions made while its database was away (issue 18).

A small SQLite file in the data directory (0600, ``synchronous=FULL``: each decision is on
disk before the door gets its answer), bounded by ``offline_journal_max`` undelivered events.
Entries are hash-chained like the audit log (SHA-256 over the previous hash and the entry's
canonical JSON), so a journal edited while the gate was cut off is refused at merge.

It holds what an access event holds (time, access point, method, outcome, reason, pseudonym,
score of an allowed face, request id) and the credential counters the decision changed (QR
uses, PIN failures and lockouts); never a template or an image (principle 3).

``merge`` writes undelivered entries to the central database in journal order, each as the
same AccessEvent + audit entry an online decision makes, exactly once: each entry's id is
recorded in ``offline_merges`` in the same transaction, so a merge interrupted at any point
and run again (by this gate or another sharing the file) adds nothing twice. Every merged
batch is itself audited (``offline_merge``).

Single-use QR passes used offline at two gates: both passages happened (the doors opened),
so both events are kept as they were decided; the use that finds the pass already used up
in the database is a conflict, noted on its event's audit entry, listed in the batch's
``offline_merge`` audit entry and logged for the operator (docs/offline.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from facegate import audit
from facegate.domain.common import PURPOSE_ACCESS
from facegate.domain.events import access_audit_entry, add_outbox_row, new_access_event
from facegate.errors import DecisionUnavailable
from facegate.store.models import AccessEvent, Credential, OfflineMerge, Person

log = logging.getLogger("facegate.offline")

GENESIS = "0" * 64
_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
"""


def _hash(prev: str, body: str) -> str:
    return hashlib.sha256((prev + "\n" + body).encode()).hexdigest()


@dataclass(frozen=True)
class JournalEntry:
    seq: int
    event_id: str
    body: dict[str, Any]
    prev_hash: str
    hash: str


class JournalFull(DecisionUnavailable):
    """The offline journal is full: no more decisions without the database."""


class Journal:
    """Append-only, fsynced, chained; entries leave it once the database holds them."""

    def __init__(self, path: Path, gate_id: str, max_events: int = 100_000) -> None:
        self.path = Path(path)
        self.gate_id = gate_id
        self.max_events = max_events
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        os.chmod(self.path, 0o600)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            self.path, timeout=2.0, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")  # fsync on every commit
        self._conn.executescript(_SCHEMA)
        self._depth = self._count()

    def _count(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM entries").fetchone()[0])

    @property
    def depth(self) -> int:
        """Decisions waiting for the database."""
        return self._depth

    def refresh_depth(self) -> int:
        with self._lock:
            self._depth = self._count()
            return self._depth

    def append(
        self, event: dict[str, Any], *, effects: list[dict[str, Any]], folded: bool = False
    ) -> JournalEntry:
        """Write one decision durably (returns after fsync), chained to the previous one."""
        ap = event["ap"]
        body = {
            "gate": self.gate_id,
            "at": datetime.now(UTC).isoformat(timespec="microseconds"),
            "site_id": ap.site_id,
            "access_point_id": ap.id,
            "method": event["method"],
            "outcome": event["outcome"],
            "reason": event["reason"],
            "subject": event["subject"],
            "score": event["score"],
            "request_id": event["request_id"],
            "actor": event["actor"],
            "operator": event["operator"],
            "folded": folded,  # a repeat folded into a recent event: counters only
            "effects": effects,
        }
        event_id = uuid.uuid4().hex
        with self._lock:
            if self._depth >= self.max_events:
                raise JournalFull(
                    f"the offline journal holds {self._depth} decisions (its limit); no more "
                    "decisions until the database is back"
                )
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                row = self._conn.execute("SELECT v FROM meta WHERE k = 'head'").fetchone()
                prev = row[0] if row else GENESIS
                text = json.dumps(
                    {"event_id": event_id, **body}, sort_keys=True, separators=(",", ":")
                )
                h = _hash(prev, text)
                cur = self._conn.execute(
                    "INSERT INTO entries (event_id, body, prev_hash, hash) VALUES (?, ?, ?, ?)",
                    (event_id, text, prev, h),
                )
                self._conn.execute(
                    "INSERT INTO meta (k, v) VALUES ('head', ?) "
                    "ON CONFLICT(k) DO UPDATE SET v = excluded.v",
                    (h,),
                )
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise DecisionUnavailable(
                    "neither the database nor the local journal can record a decision "
                    f"({type(exc).__name__}: {exc}); check the gate's disk"
                ) from None
            self._depth += 1
            return JournalEntry(int(cur.lastrowid or 0), event_id, body, prev, h)

    def pending(self, limit: int = 500) -> list[JournalEntry]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, event_id, body, prev_hash, hash FROM entries ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [JournalEntry(r[0], r[1], json.loads(r[2]), r[3], r[4]) for r in rows]

    def verify(self, entries: list[JournalEntry]) -> str | None:
        """None when every entry hashes right and follows the previous; else the problem."""
        prev: str | None = None
        for e in entries:
            text = json.dumps(
                {"event_id": e.event_id, **e.body}, sort_keys=True, separators=(",", ":")
            )
            if _hash(e.prev_hash, text) != e.hash:
                return f"journal entry {e.seq} was altered"
            if prev is not None and e.prev_hash != prev:
                return f"journal entry {e.seq} does not follow the one before it"
            prev = e.hash
        return None

    def remove(self, seqs: list[int]) -> None:
        """Entries the database now holds leave the journal (the head hash stays)."""
        if not seqs:
            return
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany("DELETE FROM entries WHERE seq = ?", [(s,) for s in seqs])
            self._conn.execute("COMMIT")
            self._depth = self._count()

    def size_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal"):
            p = Path(str(self.path) + suffix)
            if p.exists():
                total += p.stat().st_size
        return total

    def close(self) -> None:
        with self._lock:
            self._conn.close()


@dataclass
class MergeResult:
    merged: int = 0
    skipped: int = 0  # already in the database (an earlier, interrupted merge)
    conflicts: int = 0
    batches: int = 0


def merge(
    journal: Journal,
    session_factory: Callable[[], Session],
    *,
    batch: int = 500,
    actor: str | None = None,
) -> MergeResult:
    """Write every journal entry to the database, in order, exactly once; audit each batch."""
    result = MergeResult()
    actor = actor or f"gate:{journal.gate_id}"
    while True:
        entries = journal.pending(batch)
        if not entries:
            return result
        problem = journal.verify(entries)
        if problem:
            log.error(
                "offline journal refused for merge",
                extra={"fields": {"problem": problem, "journal": str(journal.path)}},
            )
            raise RuntimeError(f"offline journal refused: {problem}")
        conflicts: list[dict[str, Any]] = []
        merged = skipped = 0
        with session_factory() as s:
            done = set(
                s.execute(
                    select(OfflineMerge.event_id).where(
                        OfflineMerge.event_id.in_([e.event_id for e in entries])
                    )
                ).scalars()
            )
            todo: list[tuple[JournalEntry, str | None, AccessEvent | None]] = []
            for e in entries:
                if e.event_id in done:
                    skipped += 1
                    continue
                conflict = _apply_effects(s, e.body.get("effects") or [])
                event = None
                if not e.body.get("folded"):
                    event = new_access_event(
                        site_id=e.body["site_id"],
                        access_point_id=e.body["access_point_id"],
                        method=e.body["method"],
                        outcome=e.body["outcome"],
                        reason=e.body["reason"],
                        person_pseudonym=e.body["subject"],
                        score=e.body["score"],
                        request_id=e.body["request_id"] or "",
                        operator=e.body["operator"],
                        occurred_at=datetime.fromisoformat(e.body["at"]),
                    )
                    s.add(event)
                todo.append((e, conflict, event))
            s.flush()  # one multi-row INSERT; the events get their ids
            for _, _, event in todo:
                if event is not None:
                    add_outbox_row(s, event)  # published like any other decision (issue 15)
            audit_entries = []
            seen: dict[str, datetime] = {}
            for e, conflict, event in todo:
                if event is not None:
                    extra: dict[str, Any] = {
                        "offline": True,
                        "gate": e.body["gate"],
                        "journal_seq": e.seq,
                        "journal_hash": e.hash,
                    }
                    if conflict:
                        extra["conflict"] = conflict
                    audit_entries.append(
                        access_audit_entry(event, actor=e.body["actor"] or actor, extra=extra)
                    )
                    if event.person_pseudonym and event.outcome == "allow":
                        at = event.occurred_at
                        seen[event.person_pseudonym] = max(seen.get(event.person_pseudonym, at), at)
                if conflict:
                    conflicts.append(
                        {"event_id": event.id if event else None, "conflict": conflict}
                    )
                s.add(
                    OfflineMerge(
                        event_id=e.event_id,
                        gate=e.body["gate"][:60],
                        journal_seq=e.seq,
                        journal_hash=e.hash,
                        access_event_id=event.id if event is not None else None,
                        conflict=conflict,
                        occurred_at=datetime.fromisoformat(e.body["at"]),
                    )
                )
                merged += 1
            for person_id, at in seen.items():  # the hard cap counts from the last passage
                s.execute(
                    update(Person)
                    .where(Person.id == person_id)
                    .where(or_(Person.last_seen_at.is_(None), Person.last_seen_at < at))
                    .values(last_seen_at=at)
                )
            if merged:
                audit_entries.append(
                    {
                        "actor": actor,
                        "operation": "offline_merge",
                        "purpose": PURPOSE_ACCESS,
                        "outcome": "conflicts" if conflicts else "ok",
                        "details": {
                            "gate": journal.gate_id,
                            "events": merged,
                            "first_journal_seq": entries[0].seq,
                            "last_journal_seq": entries[-1].seq,
                            "journal_hash": entries[-1].hash,
                            "conflicts": conflicts[:100],
                        },
                    }
                )
            audit.append_many(s, audit_entries)
            s.commit()
        for c in conflicts:
            log.warning(
                "offline decision conflicts with another gate's",
                extra={"fields": {"event_id": c["event_id"], "conflict": c["conflict"]}},
            )
        journal.remove([e.seq for e in entries])
        result.merged += merged
        result.skipped += skipped
        result.conflicts += len(conflicts)
        result.batches += 1


def _apply_effects(session: Session, effects: list[dict[str, Any]]) -> str | None:
    """Counters changed offline go to the database; returns a conflict, if one shows."""
    conflict = None
    for eff in effects:
        cred = session.execute(
            select(Credential).where(Credential.id == eff["credential_id"]).with_for_update()
        ).scalar_one_or_none()
        if cred is None:
            continue
        if eff["kind"] == "qr_use":
            if cred.max_uses is not None and (cred.uses or 0) >= cred.max_uses:
                # Used up meanwhile, at another gate (offline too) or online: both passages
                # happened; report it (CAC-FR-10 passes stay single-use in the record).
                conflict = "qr_pass_used_elsewhere"
            if cred.revoked_at is not None:
                conflict = conflict or "credential_revoked_meanwhile"
            cred.uses = (cred.uses or 0) + int(eff.get("n", 1))
        elif eff["kind"] == "pin_counter":
            until = eff.get("locked_until")
            locked_until = datetime.fromisoformat(until) if until else None
            if locked_until is not None:
                current = cred.locked_until
                cred.locked_until = max(current, locked_until) if current else locked_until
                cred.failed_attempts = 0
            elif eff.get("failed_attempts", 0) == 0:
                cred.failed_attempts = 0
                cred.locked_until = None
            else:
                cred.failed_attempts = max(cred.failed_attempts or 0, eff["failed_attempts"])
    return conflict
