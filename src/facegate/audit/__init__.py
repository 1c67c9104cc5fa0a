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
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from facegate.errors import InvalidInput
from facegate.store.models import AuditEntry, AuditHead

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
    session.add(entry)
    head.seq, head.hash = entry.seq, entry.hash
    session.flush()
    return entry


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify(session: Session, batch: int = 5000) -> VerifyResult:
    """Walk the whole chain; report the first entry that is missing, moved or altered."""
    head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one_or_none()
    if head is None:
        return VerifyResult(False, 0, 0, "", 0, "the audit head row is missing")

    def bad(seq: int, reason: str, count: int) -> VerifyResult:
        return VerifyResult(False, count, head.seq, head.hash, seq, reason)

    prev, expected, count = GENESIS, 1, 0
    rows = session.execute(
        select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=batch)
    ).scalars()
    for e in rows:
        if e.seq != expected:
            return bad(expected, f"entry {expected} is missing (next found is {e.seq})", count)
        if e.prev_hash != prev:
            return bad(e.seq, f"entry {e.seq} does not follow entry {e.seq - 1}", count)
        if entry_hash(prev, _fields(e)) != e.hash:
            return bad(e.seq, f"entry {e.seq} was altered (its hash does not match)", count)
        prev, expected, count = e.hash, expected + 1, count + 1
    if head.seq != count:
        return bad(count + 1, f"the chain ends at {count} but the head says {head.seq}", count)
    if head.hash != prev:
        return bad(count, "the head hash does not match the last entry", count)
    return VerifyResult(True, count, head.seq, head.hash)
