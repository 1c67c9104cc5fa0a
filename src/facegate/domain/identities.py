"""Names, contacts and units, sealed under the site's field key (issue 13 item 15, PIPL-51).

Every read and write of ``person_identities`` goes through here, with the site keyring passed
in by the caller (like templates): a stolen database file holds ciphertext and keyed hashes,
no one's name. The field key of a site is random, stored only wrapped by the site key
(``site_field_keys``); it is made on the first identity written for that site.

Names stay in their own table, never beside templates (STD-35273-6.3); erasing a person
deletes their identity row (PIPL-47).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from facegate.errors import KeyUnavailable
from facegate.store.crypto import Keyring, SiteFields
from facegate.store.models import Person, PersonIdentity, Site, SiteFieldKey, utcnow

FIELDS = ("name", "contact", "unit")


@dataclass(frozen=True)
class Identity:
    name: str = ""
    contact: str = ""
    unit: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _need(keyring: Keyring | None) -> Keyring:
    if keyring is None:
        raise KeyUnavailable(
            "names, contacts and units are sealed with the site key; this call was made "
            "without the site keyring"
        )
    return keyring


class FieldKeys:
    """The field keys of the sites one call touches, unwrapped once per call."""

    def __init__(self, session: Session, keyring: Keyring | None) -> None:
        self.session = session
        self.keyring = keyring
        self._sites: dict[str, SiteFields] = {}

    def site(self, site_id: str, *, create: bool = False) -> SiteFields | None:
        got = self._sites.get(site_id)
        if got is not None:
            return got
        keyring = _need(self.keyring)
        row = self.session.get(SiteFieldKey, site_id)
        if row is None:
            if not create:
                return None
            # One field key per site: the site row is locked so two writers agree on it.
            self.session.execute(select(Site.id).where(Site.id == site_id).with_for_update())
            row = self.session.get(SiteFieldKey, site_id)
        if row is None:
            key = Keyring.new_data_key()
            key_id, wrapped = keyring.wrap_field_key(site_id, key)
            self.session.add(SiteFieldKey(site_id=site_id, key_id=key_id, wrapped=wrapped))
            self.session.flush()
        else:
            key = keyring.unwrap_field_key(site_id, row.key_id, row.wrapped)
        got = SiteFields(site_id, key)
        self._sites[site_id] = got
        return got


def _keys(session: Session, keyring: Keyring | FieldKeys | None) -> FieldKeys:
    """The keyring, or field keys already opened by the caller (a bulk import opens its
    site's once for every row)."""
    if isinstance(keyring, FieldKeys):
        return keyring
    return FieldKeys(session, keyring)


def _open(keys: FieldKeys, site_id: str, ident: PersonIdentity) -> Identity:
    if ident.sealed is None:  # a row of an older install, not yet sealed
        return Identity(ident.name or "", ident.contact or "", ident.unit or "")
    fields = keys.site(site_id)
    if fields is None:
        raise KeyUnavailable(
            f"site {site_id} has sealed identities but no field key",
            zh="本场所的姓名、电话和房号已加密保存，但找不到解密所需的密钥：请检查站点密钥",
        )
    data = fields.open(ident.person_id, ident.sealed)
    return Identity(**{f: data.get(f, "") for f in FIELDS})


def _seal(keys: FieldKeys, person: Person, ident: PersonIdentity, value: Identity) -> None:
    fields = keys.site(person.site_id, create=True)
    assert fields is not None
    ident.sealed = fields.seal(person.id, value.as_dict())
    ident.unit_index = fields.index("unit", value.unit) if value.unit.strip() else None
    ident.name = ident.contact = ident.unit = ""


def set_identity(
    session: Session,
    keyring: Keyring | FieldKeys | None,
    person: Person,
    *,
    name: str | None = None,
    contact: str | None = None,
    unit: str | None = None,
    new_person: bool = False,
) -> list[str]:
    """Write the given fields (None leaves one as it is); returns the names of the fields
    that changed. Inside the caller's transaction; ``new_person`` (a person being added, who
    has no identity yet) skips the look-up and the flush (the bulk import adds thousands)."""
    given = {"name": name, "contact": contact, "unit": unit}
    if all(v is None for v in given.values()):
        return []
    keys = _keys(session, keyring)
    _need(keys.keyring)
    if new_person:
        value = Identity(name or "", contact or "", unit or "")
        if any(value.as_dict().values()):
            ident = PersonIdentity(person_id=person.id)
            _seal(keys, person, ident, value)
            session.add(ident)
        return [f for f in FIELDS if getattr(value, f)]
    ident = session.get(PersonIdentity, person.id)
    old = _open(keys, person.site_id, ident) if ident is not None else Identity()
    new = Identity(**{f: old.as_dict()[f] if v is None else v for f, v in given.items()})
    changed = [f for f in FIELDS if getattr(new, f) != getattr(old, f)]
    if ident is None:
        if not any(new.as_dict().values()):
            return []
        ident = PersonIdentity(person_id=person.id)
        session.add(ident)
    elif not changed and ident.sealed is not None:
        return []
    _seal(keys, person, ident, new)
    session.flush()
    return changed


def read_identity(session: Session, keyring: Keyring | None, person: Person) -> Identity | None:
    """A person's name, contact and unit, or None when none is kept."""
    ident = session.get(PersonIdentity, person.id)
    if ident is None:
        return None
    return _open(FieldKeys(session, keyring), person.site_id, ident)


def identities_of(
    session: Session, keyring: Keyring | None, person_ids: Iterable[str]
) -> dict[str, Identity]:
    """Opened identities of these people (those without one are absent), decrypted in memory."""
    ids = list(dict.fromkeys(person_ids))
    if not ids:
        return {}
    keys = FieldKeys(session, keyring)
    out: dict[str, Identity] = {}
    for start in range(0, len(ids), 500):
        rows = session.execute(
            select(PersonIdentity, Person.site_id)
            .join(Person, Person.id == PersonIdentity.person_id)
            .where(PersonIdentity.person_id.in_(ids[start : start + 500]))
        ).all()
        for ident, site_id in rows:
            out[ident.person_id] = _open(keys, site_id, ident)
    return out


def unit_index(session: Session, keyring: Keyring | None, site_id: str, unit: str) -> str | None:
    """The blind index of a unit in a site (None when the site has no field key yet)."""
    fields = FieldKeys(session, keyring).site(site_id)
    return fields.index("unit", unit) if fields is not None else None


def seal_plaintext_identities(session: Session, keyring: Keyring) -> int:
    """Seal the identity rows an older install wrote in plaintext, and blank their plaintext
    columns; returns how many. Run on first start (``facegate serve``, ``facegate init``),
    where the site key is at hand. Commits."""
    keys = FieldKeys(session, keyring)
    rows = session.execute(
        select(PersonIdentity, Person)
        .join(Person, Person.id == PersonIdentity.person_id)
        .where(PersonIdentity.sealed.is_(None))
    ).all()
    for ident, person in rows:
        value = Identity(ident.name or "", ident.contact or "", ident.unit or "")
        _seal(keys, person, ident, value)
    session.flush()
    session.commit()
    engine = session.get_bind()
    if rows and engine.dialect.name == "sqlite":
        # The old plaintext bytes are overwritten (the store sets secure_delete) once the WAL
        # is written back: do it now, so no copy of a name is left in either file.
        raw = engine.raw_connection()  # type: ignore[union-attr]
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
    return len(rows)


def rewrap_field_keys(session: Session, keyring: Keyring, new_key_id: str) -> int:
    """Re-wrap every site's field key with the active site key (key rotation); caller's tx."""
    n = 0
    rows = session.execute(
        select(SiteFieldKey).where(SiteFieldKey.key_id != new_key_id).with_for_update()
    ).scalars()
    now = utcnow()
    for row in rows:
        key = keyring.unwrap_field_key(row.site_id, row.key_id, row.wrapped)
        row.key_id, row.wrapped = keyring.wrap_field_key(row.site_id, key)
        row.rotated_at = now
        n += 1
    return n
