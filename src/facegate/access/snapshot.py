"""What a gate needs to decide without its database, kept in memory beside the gallery.

Each gate process holds, for the sites it serves: the access points and the sites' face
switches, every credential (card numbers, argon2 PIN hashes, QR pass hashes with validity,
uses and lockout counters), each person's status and consent state, and the API keys (their
SHA-256 only). It is loaded from the database at start and kept current through the same
change feed as the gallery (``change_log``, LISTEN/NOTIFY or the SQLite poll), with a full
reload now and then as a safety net. Nothing about a face is here: the gallery holds the
templates, as before (issue 18).

``SnapshotFacts`` answers the decision's questions from this copy (``facegate.access.decide``
runs the same rules over it), and writes the decision to the local journal with the counters
it changed, which the database receives when it returns.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from facegate.domain.consent import pick_valid_consent
from facegate.errors import NotFound
from facegate.store.models import AccessPoint, ApiKey, Consent, Credential, Person, Site

log = logging.getLogger("facegate.offline")

_CRED_FIELDS = (
    "id",
    "site_id",
    "person_id",
    "kind",
    "identifier",
    "secret_hash",
    "code_hash",
    "access_point_ids",
    "failed_attempts",
    "locked_until",
    "valid_from",
    "valid_until",
    "max_uses",
    "uses",
    "revoked_at",
)


@dataclass
class CredentialCopy:
    """A credential as the rules see it (same attribute names as the model)."""

    id: str
    site_id: str
    person_id: str | None
    kind: str
    identifier: str | None
    secret_hash: str | None
    code_hash: str | None
    access_point_ids: list[str] | None
    failed_attempts: int
    locked_until: datetime | None
    valid_from: datetime | None
    valid_until: datetime | None
    max_uses: int | None
    uses: int
    revoked_at: datetime | None

    @classmethod
    def of(cls, c: Credential) -> CredentialCopy:
        values = {f: getattr(c, f) for f in _CRED_FIELDS}
        values["failed_attempts"] = values["failed_attempts"] or 0
        values["uses"] = values["uses"] or 0
        values["access_point_ids"] = (
            list(values["access_point_ids"]) if values["access_point_ids"] is not None else None
        )
        return cls(**values)


@dataclass(frozen=True)
class AccessPointCopy:
    id: str
    site_id: str
    methods: tuple[str, ...]
    face_enabled: bool
    liveness: str = "passive"  # the point's policy (issue 14); decided offline alike


@dataclass(frozen=True)
class PersonCopy:
    id: str
    site_id: str
    status: str
    birth_date: date | None
    minor_under_14: bool
    # The scope of the valid consent (computed by the consent rule when loaded), or None.
    consent_scope: tuple[str, ...] | None
    # Every consent's (withdrawn_at, renewal_required_at), for the reason of a refusal.
    consent_states: tuple[tuple[datetime | None, datetime | None], ...]


@dataclass(frozen=True)
class KeyCopy:
    id: str
    site_id: str
    key_hash: str
    scopes: tuple[str, ...]
    access_point_ids: tuple[str, ...] | None
    revoked: bool


@dataclass
class CodeThrottle:
    """Wrong short codes at one access point, as ``LoginThrottle`` holds them online."""

    key: str
    failures: int = 0
    last_failure_at: datetime | None = None
    blocked_until: datetime | None = None


@dataclass
class _SiteData:
    face_enabled: bool = False
    access_points: dict[str, AccessPointCopy] = field(default_factory=dict)


class Snapshot:
    """The offline copy of every site this gate serves. Thread-safe; reads never block on I/O."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._sites: dict[str, _SiteData] = {}
        self._aps: dict[str, AccessPointCopy] = {}
        self._creds: dict[str, CredentialCopy] = {}
        self._persons: dict[str, PersonCopy] = {}
        self._keys: dict[str, KeyCopy] = {}  # by key_hash
        # Wrong pass short codes per access point while the database is away: counted in this
        # process only (the journal does not carry them); issue 16 item 10.
        self.code_throttles: dict[str, CodeThrottle] = {}
        self.loaded_at: float | None = None  # time.time() of the last full load
        self.last_seq = 0

    # --- loading from the database ---------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.loaded_at is not None

    def load_all(self, session: Session, last_seq: int | None = None) -> None:
        """Replace the whole copy with the database's current state."""
        sites: dict[str, _SiteData] = {}
        for (site,) in session.execute(select(Site)):
            sites[site.id] = _SiteData(bool(site.face_enabled))
        aps: dict[str, AccessPointCopy] = {}
        for (ap,) in session.execute(select(AccessPoint)):
            aps[ap.id] = _ap_copy(ap)
            if ap.site_id in sites:
                sites[ap.site_id].access_points[ap.id] = aps[ap.id]
        creds = {c.id: CredentialCopy.of(c) for (c,) in session.execute(select(Credential))}
        consents: dict[str, list[Consent]] = {}
        for (c,) in session.execute(select(Consent)):
            consents.setdefault(c.person_id, []).append(c)
        persons = {
            p.id: _person_copy(p, consents.get(p.id, []))
            for (p,) in session.execute(select(Person))
        }
        keys = {k.key_hash: _key_copy(k) for (k,) in session.execute(select(ApiKey))}
        with self._lock:
            self._sites, self._aps, self._creds = sites, aps, creds
            self._persons, self._keys = persons, keys
            if last_seq is not None:
                self.last_seq = last_seq
            self.loaded_at = time.time()

    def apply_change(self, session: Session, site_id: str, person_id: str | None) -> None:
        """One change from the feed: reload that person (consents, credentials), or the
        site's access points, face switch, site-wide credentials and keys."""
        if person_id is not None:
            person = session.get(Person, person_id)
            consents = list(
                session.execute(select(Consent).where(Consent.person_id == person_id)).scalars()
            )
            creds = list(
                session.execute(
                    select(Credential).where(Credential.person_id == person_id)
                ).scalars()
            )
            with self._lock:
                if person is None:
                    self._persons.pop(person_id, None)
                else:
                    self._persons[person_id] = _person_copy(person, consents)
                for cid in [c.id for c in self._creds.values() if c.person_id == person_id]:
                    self._creds.pop(cid, None)
                for c in creds:
                    self._creds[c.id] = CredentialCopy.of(c)
            return
        site = session.get(Site, site_id)
        aps = list(session.execute(select(AccessPoint).where(AccessPoint.site_id == site_id)))
        creds = list(
            session.execute(
                select(Credential).where(
                    Credential.site_id == site_id, Credential.person_id.is_(None)
                )
            ).scalars()
        )
        keys = list(session.execute(select(ApiKey).where(ApiKey.site_id == site_id)).scalars())
        with self._lock:
            data = _SiteData(bool(site.face_enabled) if site is not None else False)
            for (ap,) in aps:
                data.access_points[ap.id] = _ap_copy(ap)
            for ap_id in [a for a, v in self._aps.items() if v.site_id == site_id]:
                self._aps.pop(ap_id, None)
            self._aps.update(data.access_points)
            self._sites[site_id] = data
            for cid in [
                c.id for c in self._creds.values() if c.site_id == site_id and c.person_id is None
            ]:
                self._creds.pop(cid, None)
            for c in creds:
                self._creds[c.id] = CredentialCopy.of(c)
            for h in [h for h, k in self._keys.items() if k.site_id == site_id]:
                self._keys.pop(h, None)
            for k in keys:
                self._keys[k.key_hash] = _key_copy(k)

    def catch_up(self, session: Session, changes: Iterable[Any]) -> int:
        n = 0
        for ch in changes:
            if ch.seq <= self.last_seq:
                continue
            self.apply_change(session, ch.site_id, ch.person_id)
            self.last_seq = max(self.last_seq, ch.seq)
            n += 1
        return n

    def update_credentials(self, rows: Iterable[Any]) -> None:
        """After an online decision: its counters and uses, so the copy stays current."""
        with self._lock:
            for c in rows:
                self._creds[c.id] = CredentialCopy.of(c)

    # --- reads (never the database) ---------------------------------------------------------

    def key(self, key_hash: str) -> KeyCopy | None:
        with self._lock:
            return self._keys.get(key_hash)

    def access_point(self, access_point_id: str) -> AccessPointCopy | None:
        with self._lock:
            return self._aps.get(access_point_id)

    def site_face_enabled(self, site_id: str) -> bool:
        with self._lock:
            s = self._sites.get(site_id)
            return bool(s and s.face_enabled)

    def person(self, person_id: str) -> PersonCopy | None:
        with self._lock:
            return self._persons.get(person_id)

    def credentials(self, pred: Callable[[CredentialCopy], bool]) -> list[CredentialCopy]:
        """Working copies: a decision changes them, ``commit_credentials`` keeps the change."""
        with self._lock:
            return [copy.copy(c) for c in self._creds.values() if pred(c)]

    def credential(self, credential_id: str) -> CredentialCopy | None:
        with self._lock:
            c = self._creds.get(credential_id)
            return copy.copy(c) if c is not None else None

    def original(self, credential_id: str) -> CredentialCopy | None:
        with self._lock:
            return self._creds.get(credential_id)

    def commit_credentials(self, rows: Iterable[CredentialCopy]) -> None:
        with self._lock:
            for c in rows:
                self._creds[c.id] = replace(c)

    def sizes(self) -> dict[str, int]:
        with self._lock:
            return {
                "access_points": len(self._aps),
                "credentials": len(self._creds),
                "persons": len(self._persons),
                "api_keys": len(self._keys),
            }


def _ap_copy(ap: AccessPoint) -> AccessPointCopy:
    return AccessPointCopy(
        ap.id, ap.site_id, tuple(ap.methods or ()), bool(ap.face_enabled), ap.liveness or "passive"
    )


def _person_copy(p: Person, consents: Sequence[Consent]) -> PersonCopy:
    valid = pick_valid_consent(p, consents)  # the consent rule itself, not a copy of it
    return PersonCopy(
        id=p.id,
        site_id=p.site_id,
        status=p.status,
        birth_date=p.birth_date,
        minor_under_14=bool(p.minor_under_14),
        consent_scope=tuple(valid.scope or ()) if valid is not None else None,
        consent_states=tuple((c.withdrawn_at, c.renewal_required_at) for c in consents),
    )


def _key_copy(k: ApiKey) -> KeyCopy:
    return KeyCopy(
        id=k.id,
        site_id=k.site_id,
        key_hash=k.key_hash,
        scopes=tuple(k.scopes or ()),
        access_point_ids=tuple(k.access_point_ids) if k.access_point_ids is not None else None,
        revoked=k.revoked_at is not None,
    )


class SnapshotFacts:
    """``decide``'s facts from the offline copy; the decision goes to the local journal.

    Credential rows handed to the rules are working copies; when the decision is recorded,
    the counters it changed (PIN failures and lockouts, QR uses) are kept in the copy and
    written to the journal beside the event, so the database gets them on merge."""

    offline = True

    def __init__(
        self,
        snapshot: Snapshot,
        journal: Any,
        guard: Any | None,
        *,
        too_long: str | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.journal_ = journal
        self.guard = guard
        self._too_long = too_long
        self._touched: dict[str, CredentialCopy] = {}

    def too_long(self) -> str | None:
        return self._too_long

    def access_point(self, access_point_id: str) -> AccessPointCopy:
        ap = self.snapshot.access_point(access_point_id)
        if ap is None:
            raise NotFound(f"no access point {access_point_id!r}", zh="找不到这个出入口")
        return ap

    def site_face_enabled(self, site_id: str) -> bool:
        return self.snapshot.site_face_enabled(site_id)

    def cards(self, site_id: str, number: str) -> list[CredentialCopy]:
        return self.snapshot.credentials(
            lambda c: c.site_id == site_id and c.kind == "card" and c.identifier == number
        )

    def pins(self, site_id: str, owner: str) -> list[CredentialCopy]:
        rows = self.snapshot.credentials(
            lambda c: (
                c.site_id == site_id
                and c.kind == "pin"
                and c.revoked_at is None
                and (c.identifier == owner or c.person_id == owner)
            )
        )
        self._touched.update((c.id, c) for c in rows)
        return rows

    def qr(self, credential_id: str) -> CredentialCopy | None:
        c = self.snapshot.credential(credential_id)
        if c is not None:
            self._touched[c.id] = c
        return c

    def qr_by_code(self, site_id: str, code: str) -> CredentialCopy | None:
        from facegate.domain.passcodes import code_index

        index = code_index(None, site_id, code)  # the site's key, if this process opened it
        if index is None:
            return None
        rows = self.snapshot.credentials(lambda c: c.site_id == site_id and c.code_hash == index)
        if not rows:
            return None
        self._touched[rows[0].id] = rows[0]
        return rows[0]

    def code_throttle(self, access_point_id: str, now: datetime) -> CodeThrottle:
        key = f"code:{access_point_id}"
        return self.snapshot.code_throttles.get(key) or CodeThrottle(key)

    def keep_code_throttle(self, row: CodeThrottle) -> None:
        self.snapshot.code_throttles[row.key] = row

    def person(self, person_id: str) -> PersonCopy | None:
        return self.snapshot.person(person_id)

    def consent_scope(self, person: PersonCopy) -> Sequence[str] | None:
        return person.consent_scope

    def consent_states(self, person_id: str) -> list[tuple[Any, Any]]:
        p = self.snapshot.person(person_id)
        return list(p.consent_states) if p is not None else []

    def effects(self) -> list[dict[str, Any]]:
        """What the decision changed in credential counters, as journal effects."""
        out: list[dict[str, Any]] = []
        for c in self._touched.values():
            before = self.snapshot.original(c.id)
            if before is None:
                continue
            if c.uses != before.uses:
                out.append({"credential_id": c.id, "kind": "qr_use", "n": c.uses - before.uses})
            if c.failed_attempts != before.failed_attempts or c.locked_until != before.locked_until:
                out.append(
                    {
                        "credential_id": c.id,
                        "kind": "pin_counter",
                        "failed_attempts": c.failed_attempts,
                        "locked_until": c.locked_until.isoformat() if c.locked_until else None,
                    }
                )
        return out

    def journal(self, *, folded: bool, **event: Any) -> None:
        if self.guard is not None:
            self.guard.claim("memory")  # raises DecisionAbandoned: nothing kept
        effects = self.effects()
        if folded and not effects:
            return
        self.journal_.append(event, effects=effects, folded=folded)
        self.snapshot.commit_credentials(self._touched.values())
