"""Names, contacts and units are sealed under the site key (issue 13 item 15, PIPL-51): the
database file holds no one's name, yet export, correction, search, import, key rotation and
erasure work as before. Rows of an older install are sealed on first start.

Every test that touches the store runs on SQLite and on PostgreSQL (``backend`` fixture)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text
from store_support import *  # noqa: F403

from facegate import domain
from facegate.domain.identities import (
    identities_of,
    read_identity,
    seal_plaintext_identities,
    unit_index,
)
from facegate.domain.importing import import_people
from facegate.errors import KeyUnavailable
from facegate.store.db import Store
from facegate.store.models import Person, PersonIdentity, SiteFieldKey

NAMES = ("Zhang Weiqiang", "王小明", "Ruth Okonkwo-Baptiste")
CONTACT = "13812345678"
UNIT = "Block 7 Room 1203"


def _all_cells(store: Store) -> bytes:
    cells = []
    with store.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                for v in row:
                    if v is not None:
                        b = bytes(v) if isinstance(v, bytes | memoryview) else str(v).encode()
                        cells.append(b)
    return b"\x00".join(cells)


def _sqlite_files(db_url: str) -> bytes:
    path = db_url.removeprefix("sqlite:///")
    files = [Path(path), Path(path + "-wal")]
    return b"".join(f.read_bytes() for f in files if f.exists())


def _needles() -> list[bytes]:
    out = []
    for word in (*NAMES, CONTACT, UNIT):
        out += [word.encode("utf-8"), word.encode("utf-16-le")]
    out.append("王小明".encode("gb18030"))
    return out


@pytest.fixture
def people(store, settings, keyring):
    """Three people with a name; one with contact, unit and a card."""
    with store.session() as s:
        init = domain.init_site(s, settings, actor="op", operator_name="ACME")
        ids = []
        for i, name in enumerate(NAMES):
            p = domain.add_person(
                s,
                keyring=keyring,
                actor="op",
                category="resident",
                name=name,
                contact=CONTACT if i == 0 else "",
                unit=UNIT if i == 0 else f"Block 9 Room {i}",
            )
            ids.append(p.id)
        domain.issue_card(s, actor="op", person_id=ids[0], card_number="0042")
        return init.site_id, ids


def test_no_name_contact_or_unit_in_the_database_bytes(store, people, db_url, backend):
    blob = _all_cells(store)
    assert b"ACME" in blob  # the scan sees plaintext where there is some...
    for needle in _needles():
        assert needle not in blob, needle  # ...but no one's name, contact or unit
    if backend == "sqlite":
        raw = _sqlite_files(db_url)
        assert b"ACME" in raw
        for needle in _needles():
            assert needle not in raw, needle
    with store.session() as s:
        rows = s.execute(select(PersonIdentity)).scalars().all()
        assert len(rows) == 3
        assert all(r.sealed and r.name == r.contact == r.unit == "" for r in rows)


def test_search_export_and_correct_open_the_sealed_fields(store, settings, keyring, people):
    site, (zhang, wang, ruth) = people
    with store.session() as s:
        find = lambda q: [p.id for p in domain.search_persons(s, keyring, query=q)]  # noqa: E731
        assert find("weiqiang") == [zhang]  # part of a name, any case
        assert find("小明") == [wang]
        assert find("room 1203") == [zhang]  # part of a unit
        assert find("0042") == [zhang]  # a card number
        assert find("block") == [zhang, wang, ruth]
        assert find("nobody here") == []
        assert len(find("")) == 3
        # The blind index: equal units hash equal (spacing, case, full-width digits aside).
        ident = s.get(PersonIdentity, zhang)
        assert ident.unit_index == unit_index(s, keyring, site, "block 7  ROOM １２０３")
        assert ident.unit_index != unit_index(s, keyring, site, "Block 7 Room 1204")

        data = domain.export_my_data(s, settings, actor="op", person_id=zhang, keyring=keyring)
        assert data["identity"] == {"name": NAMES[0], "contact": CONTACT, "unit": UNIT}
        domain.correct(s, settings, actor="op", person_id=wang, unit="Block 2", keyring=keyring)
        got = identities_of(s, keyring, [wang])[wang]
        assert (got.name, got.unit) == ("王小明", "Block 2")
        assert find("block 2") == [wang]


def test_a_name_cannot_be_written_or_read_without_the_keyring(store, settings, keyring, people):
    _, (zhang, wang, _) = people
    with store.session() as s:
        with pytest.raises(KeyUnavailable):
            domain.add_person(s, actor="op", category="resident", name="No Key")
        assert s.execute(select(Person).where(Person.status == "active")).all().__len__() == 3
        with pytest.raises(KeyUnavailable):
            read_identity(s, None, s.get(Person, zhang))
        # A sealed identity moved onto another person does not open (AAD binds it).
        a, b = s.get(PersonIdentity, zhang), s.get(PersonIdentity, wang)
        a.sealed, b.sealed = b.sealed, a.sealed
        s.flush()
        with pytest.raises(KeyUnavailable):
            read_identity(s, keyring, s.get(Person, zhang))
        s.rollback()


def test_bulk_import_seals_and_erase_deletes(store, settings, keyring, people, backend, db_url):
    with store.session() as s:
        res = import_people(
            s,
            [{"name": "Imported Ivanova", "unit": "Tower 3-804", "category": "tenant"}],
            actor="op",
            keyring=keyring,
        )
        (pid,) = res.person_ids
        assert domain.search_persons(s, keyring, query="ivanova")[0].id == pid
        domain.erase(s, settings, actor="op", person_id=pid)
        assert s.get(PersonIdentity, pid) is None
        assert domain.search_persons(s, keyring, query="ivanova") == []
    assert b"Ivanova" not in _all_cells(store)
    if backend == "sqlite":
        assert b"Ivanova" not in _sqlite_files(db_url)


def test_key_rotation_rewraps_the_field_key(store, settings, keyring, people):
    _, (zhang, *_) = people
    with store.session() as s:
        before = s.get(SiteFieldKey, people[0]).key_id
        result = domain.rotate_keys(s, keyring, actor="op")
        s.expire_all()
        assert s.get(SiteFieldKey, people[0]).key_id == result.new_key_id != before
        assert before in result.retired  # nothing needs the old key any more
        assert read_identity(s, keyring, s.get(Person, zhang)).name == NAMES[0]


def test_plaintext_rows_of_an_older_install_are_sealed_on_first_start(tmp_path):
    """Revision 0004's plaintext identities: ``facegate serve`` seals them and no copy is left."""
    from alembic import command

    from facegate.cli.server_cmds import ensure_initialised
    from facegate.config import Settings
    from facegate.store.crypto import load_keyring
    from facegate.store.db import alembic_config, make_engine

    settings = Settings(data_dir=tmp_path / "data")
    site = ensure_initialised(settings)
    url = settings.database_url
    engine = make_engine(url)
    with engine.begin() as conn:  # back to the schema of before, with a plaintext name
        command.downgrade(alembic_config(conn), "0004")
        conn.execute(
            text(
                "INSERT INTO persons (id, site_id, category, minor_under_14, status, created_at)"
                " VALUES ('p-old', :site, 'resident', false, 'active', '2025-01-01')"
            ),
            {"site": site},
        )
        conn.execute(
            text(
                "INSERT INTO person_identities (person_id, name, contact, unit)"
                " VALUES ('p-old', 'Old Plaintext Name', '13900001111', 'Old Unit 5')"
            )
        )
    engine.dispose()
    assert b"Old Plaintext Name" in _sqlite_files(url)
    assert ensure_initialised(settings) is None  # migrates, then seals
    assert b"Old Plaintext Name" not in _sqlite_files(url)
    assert b"13900001111" not in _sqlite_files(url)
    store = Store(url)
    keyring = load_keyring(settings)
    with store.session() as s:
        got = read_identity(s, keyring, s.get(Person, "p-old"))
        assert (got.name, got.contact, got.unit) == (
            "Old Plaintext Name",
            "13900001111",
            "Old Unit 5",
        )
        assert seal_plaintext_identities(s, keyring) == 0  # once only
    store.dispose()
