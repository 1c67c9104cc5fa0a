"""Backup and restore, and the shred list: whose face data was crypto-shredded, and when, so
that restoring an older backup never brings it back (PIPL-47, CAC-FR-06b).

The list is read off the audit log (every withdrawal, erasure and retention purge is recorded
there with the person's pseudonym), exported with every backup and kept in the data directory;
a restore replays the newest list it is given over the restored database. It holds pseudonyms
and times only: no name, no face data.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from facegate import audit
from facegate.audit import anchor as audit_anchor
from facegate.config import Settings
from facegate.domain.common import PURPOSE_RIGHTS, PURPOSE_SECURITY, record_change, run
from facegate.domain.rights import erase_in_tx
from facegate.errors import Conflict, InvalidInput
from facegate.store.backup import (
    MAGIC,
    BackupInfo,
    backend_of,
    create_backup,
    open_backup,
    restore_files,
)
from facegate.store.db import Store
from facegate.store.models import AuditEntry, Consent, Person, PersonKey, Template

# Audit operations after which a person's templates and data key no longer exist.
SHRED_OPERATIONS = ("withdraw", "decline", "erase_face", "erase", "purge_face")


@dataclass(frozen=True)
class Shred:
    person_id: str
    at: str  # ISO time of the audit entry
    operation: str

    @property
    def full_erasure(self) -> bool:
        return self.operation == "erase"


def shred_list(session: Session) -> list[Shred]:
    """Every crypto-shredding the audit log records, oldest first."""
    rows = session.execute(
        select(AuditEntry.subject, AuditEntry.at, AuditEntry.operation)
        .where(
            AuditEntry.operation.in_(SHRED_OPERATIONS),
            AuditEntry.outcome == "ok",
            AuditEntry.subject.is_not(None),
        )
        .order_by(AuditEntry.seq)
    ).all()
    return [Shred(person_id=s, at=at, operation=op) for s, at, op in rows]


def shreds_to_json(shreds: list[Shred]) -> list[dict[str, str]]:
    return [asdict(s) for s in shreds]


def shreds_from_json(items: list[dict[str, str]]) -> list[Shred]:
    out = []
    for it in items:
        out.append(Shred(str(it["person_id"]), str(it["at"]), str(it["operation"])))
    return out


def replay_shreds(session: Session, shreds: list[Shred], *, actor: str) -> list[str]:
    """Shred again, in the restored database, whatever was shredded after the backup was made.

    A face shredding removes the templates made before it (a person who enrolled again later
    keeps the newer ones) and the data key when none remains; an erasure erases the person.
    Returns the pseudonyms that changed; one audited operation."""

    def work() -> list[str]:
        changed: list[str] = []
        for s in shreds:
            person = session.get(Person, s.person_id)
            if person is None or person.status != "active":
                continue
            at = datetime.fromisoformat(s.at)
            if s.full_erasure:
                erase_in_tx(session, person, actor=actor, channel="terminal", reason="restore")
                if person.id not in changed:
                    changed.append(person.id)
                continue
            n = session.execute(
                delete(Template).where(Template.person_id == person.id, Template.created_at <= at)
            ).rowcount
            left = session.execute(
                select(Template.id).where(Template.person_id == person.id).limit(1)
            ).first()
            k = 0
            if left is None:
                k = session.execute(
                    delete(PersonKey).where(PersonKey.person_id == person.id)
                ).rowcount
            consents = session.execute(
                select(Consent).where(
                    Consent.person_id == person.id,
                    Consent.withdrawn_at.is_(None),
                    Consent.given_at <= at,
                )
            ).scalars()
            withdrawn = 0
            for c in consents:
                c.withdrawn_at = at
                withdrawn += 1
            if n or k or withdrawn:
                if person.face_declined_at is None:
                    person.face_declined_at = at
                record_change(session, person.site_id, person.id, "withdrawn")
                if person.id not in changed:
                    changed.append(person.id)
        audit.append(
            session,
            actor=actor,
            operation="shred_replay",
            purpose=PURPOSE_RIGHTS,
            outcome="ok",
            details={"listed": len(shreds), "shredded_again": len(changed)},
        )
        return changed

    return run(
        session,
        work,
        actor=actor,
        operation="shred_replay",
        subject=None,
        purpose=PURPOSE_RIGHTS,
        shred=True,
    )


# --- backup and restore, as one act each --------------------------------------------------------


def backup(settings: Settings, *, out: Path, passphrase: str, actor: str) -> BackupInfo:
    """Write an encrypted backup (database, data directory, shred list), audited."""
    store = audit_anchor.open_store(settings)  # entries sealed like every other writer's
    try:
        with store.session() as session:

            def work() -> list[Shred]:
                audit.append(
                    session,
                    actor=actor,
                    operation="backup",
                    purpose=PURPOSE_SECURITY,
                    outcome="ok",
                    details={"file": out.name},
                )
                return shred_list(session)

            shreds = run(
                session,
                work,
                actor=actor,
                operation="backup",
                subject=None,
                purpose=PURPOSE_SECURITY,
            )
        return create_backup(settings, out, passphrase, shreds=shreds_to_json(shreds))
    finally:
        store.dispose()


@dataclass
class RestoreResult:
    backup_created_at: str
    files: list[str]
    shreds_known: int
    shredded_again: list[str]
    audit_ok: bool
    audit_entries: int


def _current_shreds(settings: Settings) -> list[Shred] | None:
    """The shred list of the database being replaced, when there is one."""
    url = settings.database_url
    if backend_of(url) == "sqlite" and not Path(make_url(url).database or "").is_file():
        return None
    try:
        store = Store(url, auto_migrate=False)
    except Exception:  # noqa: BLE001 - an unreadable old database has nothing to tell
        return None
    try:
        with store.session() as session:
            return shred_list(session)
    except Exception:  # noqa: BLE001 - empty or foreign database
        return None
    finally:
        store.dispose()


def read_shred_source(path: Path, passphrase: str) -> list[Shred]:
    """Shreds from a newer backup (same passphrase) or a JSON list."""
    head = path.read_bytes()[:64] if path.is_file() else b""
    if head.startswith(MAGIC):
        return shreds_from_json(open_backup(path, passphrase).manifest.get("shreds", []))
    try:
        return shreds_from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        raise InvalidInput(f"{path} is neither a facegate backup nor a shred list (JSON)") from None


def restore(
    settings: Settings,
    *,
    path: Path,
    passphrase: str,
    actor: str,
    shred_sources: list[Path] | None = None,
    force: bool = False,
) -> RestoreResult:
    """Restore a backup, then shred again everything shredded since it was made: what the
    database being replaced records, what newer backups or shred lists say, and the backup's
    own list. Crypto-shredded people stay gone."""
    opened = open_backup(path, passphrase)
    extra: list[Shred] = []
    for src in shred_sources or []:
        extra.extend(read_shred_source(src, passphrase))
    current = _current_shreds(settings)
    if current is not None and not force:
        raise Conflict(
            f"a facegate database already exists at {settings.database_url}; restoring replaces "
            "it (its shred list is kept and replayed): add --force to go ahead"
        )
    files = restore_files(opened, settings)
    shreds = (current or []) + extra + shreds_from_json(opened.manifest.get("shreds", []))
    seen: set[tuple[str, str]] = set()
    unique = []
    for s in sorted(shreds, key=lambda s: s.at):
        if (s.person_id, s.at) not in seen:
            seen.add((s.person_id, s.at))
            unique.append(s)
    # Migrates an older backup to this version; entries sealed with the restored audit key.
    store = audit_anchor.open_store(settings)
    try:
        with store.session() as session:
            changed = replay_shreds(session, unique, actor=actor)

            def note() -> None:
                audit.append(
                    session,
                    actor=actor,
                    operation="restore",
                    purpose=PURPOSE_SECURITY,
                    outcome="ok",
                    details={
                        "backup_created_at": opened.manifest.get("created_at", ""),
                        "shreds_replayed": len(changed),
                    },
                )

            run(
                session,
                note,
                actor=actor,
                operation="restore",
                subject=None,
                purpose=PURPOSE_SECURITY,
            )
            check = audit.verify(session)
    finally:
        store.dispose()
    return RestoreResult(
        backup_created_at=str(opened.manifest.get("created_at", "")),
        files=files,
        shreds_known=len(unique),
        shredded_again=changed,
        audit_ok=check.ok,
        audit_entries=check.entries,
    )
