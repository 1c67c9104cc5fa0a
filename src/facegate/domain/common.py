"""Helpers shared by the domain functions: the unit of work, lookups, change feed."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from facegate import audit
from facegate.errors import FacegateError, InvalidInput, LimitReached, NotFound
from facegate.store.models import ChangeLog, Person, Site

T = TypeVar("T")

# Purposes recorded in the audit log. Access control is the only purpose of face data
# (purpose lock, CAC-FR-04 / PIPL-26); the others are the duties around it.
PURPOSE_ACCESS = "access_control"
PURPOSE_RIGHTS = "rights_request"
PURPOSE_RETENTION = "retention"
PURPOSE_SECURITY = "key_management"
PURPOSE_CONFIG = "configuration"

# PostgreSQL channel the gate servers LISTEN on; payload is JSON {seq, site_id, person_id, kind}.
NOTIFY_CHANNEL = "facegate_changes"


def utcnow() -> datetime:
    return datetime.now(UTC)


def run(
    session: Session,
    work: Callable[[], T],
    *,
    actor: str,
    operation: str,
    subject: str | None,
    purpose: str,
    shred: bool = False,
) -> T:
    """One unit of work: commit the change with its audit entry, or roll back and audit the
    refusal. Every domain function goes through here, so a crash leaves both or neither.

    ``shred``: the work deleted face data; on SQLite, checkpoint the WAL so the old pages
    (already overwritten in the main file by secure_delete) leave the log file too."""
    try:
        result = work()
        session.commit()
        if shred:
            checkpoint_wal(session)
        tracker = session.info.get(audit.REFUSALS_INFO_KEY)
        if tracker is not None and tracker.has_due():
            # Counted refusals whose window has passed become their summary entry.
            audit.write_refusal_summaries(session)
            session.commit()
        return result
    except FacegateError as exc:
        session.rollback()
        # Every refusal is accounted for; a flood of them becomes counted summaries (issue 13
        # item 18) rather than one row each.
        audit.record_refusal(
            session,
            actor=actor,
            operation=operation,
            subject=(subject or "")[:40] or None,
            purpose=purpose,
            code=exc.code,
        )
        session.commit()
        raise
    except BaseException:
        session.rollback()
        raise


def enforce_limit(session: Session, setting: str, count: int, what_en: str, what_zh: str) -> None:
    """Refuse to create one more object than the site's configured limit (issue 13 item 18):
    an admin key must not be able to create without bound. The limit comes from the settings
    the store was opened with (``facegate.audit.anchor.attach``), else its default."""
    from facegate.audit.anchor import SETTINGS_INFO_KEY
    from facegate.config import Settings

    settings = session.info.get(SETTINGS_INFO_KEY)
    limit = int(
        getattr(settings, setting)
        if settings is not None
        else Settings.model_fields[setting].default
    )
    if count >= limit:
        env = "FACEGATE_" + setting.upper()
        raise LimitReached(
            f"This site already has {count} {what_en}, the most allowed ({env}={limit}); "
            f"remove ones no longer used, or raise the limit. / 本站点已有{count}个{what_zh}，"
            f"已达上限（{env}={limit}）；请删除不再使用的，或调高上限。",
            limit=limit,
            setting=env,
        )


def checkpoint_wal(session: Session) -> None:
    """Best effort, after face data was erased: drop the old row versions from disk too.

    SQLite: the main file's freed pages are already overwritten (secure_delete); fold the WAL
    into it and truncate it. PostgreSQL: VACUUM the key and template tables so the deleted
    row versions (MVCC) become reusable space. The site key stays the real guard: dead data
    that survives in a backup or WAL segment is ciphertext whose data key is gone."""
    bind = session.get_bind()
    try:
        if bind.dialect.name == "sqlite":
            raw = bind.raw_connection()  # type: ignore[union-attr]
            try:
                cur = raw.cursor()
                cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # outside any transaction
                cur.close()
            finally:
                raw.close()
        elif bind.dialect.name == "postgresql":
            with bind.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:  # type: ignore[union-attr]
                conn.exec_driver_sql("VACUUM person_keys, templates")
    except Exception:  # noqa: BLE001 - busy readers only delay it to the next time
        pass


def get_site(session: Session, site_id: str | None) -> Site:
    """The given site, or the only site when none is given."""
    if site_id is not None:
        site = session.get(Site, site_id)
        if site is None:
            raise NotFound(f"no site {site_id!r}", zh="找不到这个场所")
        return site
    sites = session.execute(select(Site).order_by(Site.created_at).limit(2)).scalars().all()
    if not sites:
        raise NotFound(
            "no site yet; run `facegate init` first", zh="还没有场所：请先运行 `facegate init`"
        )
    if len(sites) > 1:
        raise InvalidInput("several sites exist; name the site", zh="有多个场所：请选择场所")
    return sites[0]


def get_person(session: Session, person_id: str, *, lock: bool = False) -> Person:
    """An active (not erased) person; ``lock`` serialises changes to them on PostgreSQL."""
    stmt = select(Person).where(Person.id == person_id)
    if lock:
        stmt = stmt.with_for_update()
    person = session.execute(stmt).scalar_one_or_none()
    if person is None or person.status != "active":
        raise NotFound(f"no person {person_id!r}", zh="找不到此人")
    return person


def is_under_14(person: Person, today: date | None = None) -> bool:
    """CAC-FR-07 / PIPL-31: under-14s need a guardian's consent."""
    return under_14(person.birth_date, person.minor_under_14, today)


def under_14(birth_date: date | None, minor_flag: bool, today: date | None = None) -> bool:
    """Age from the birth date when known, else the recorded age band."""
    if birth_date is None:
        return bool(minor_flag)
    today = today or utcnow().date()
    b = birth_date
    age = today.year - b.year - ((today.month, today.day) < (b.month, b.day))
    return age < 14


def record_change(session: Session, site_id: str, person_id: str | None, kind: str) -> ChangeLog:
    """Append to the change feed gates follow; on PostgreSQL also NOTIFY (sent at commit)."""
    change = ChangeLog(site_id=site_id, person_id=person_id, kind=kind, at=utcnow())
    session.add(change)
    session.flush()
    if session.get_bind().dialect.name == "postgresql":
        payload = json.dumps(
            {"seq": change.seq, "site_id": site_id, "person_id": person_id, "kind": kind}
        )
        session.execute(text("SELECT pg_notify(:c, :p)"), {"c": NOTIFY_CHANNEL, "p": payload})
    return change


def changes_since(
    session: Session, after_seq: int, site_id: str | None = None, limit: int = 10_000
) -> list[ChangeLog]:
    """Gallery changes after ``after_seq`` in commit order, for a gate catching up (after a
    start or a lost LISTEN connection). Reload the person named, or everything when
    ``person_id`` is None (a notice renewal, a key rotation, a new access point)."""
    stmt = select(ChangeLog).where(ChangeLog.seq > after_seq).order_by(ChangeLog.seq).limit(limit)
    if site_id is not None:
        stmt = stmt.where(ChangeLog.site_id == site_id)
    return list(session.execute(stmt).scalars())


def iso(value: datetime | date | None) -> str | None:
    return None if value is None else value.isoformat()


def dump(obj: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields:
        v = getattr(obj, f)
        out[f] = iso(v) if isinstance(v, datetime | date) else v
    return out
