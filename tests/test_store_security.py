"""No plaintext template at rest, crypto-shredding, audit tamper detection, schema = models.

Every test runs on SQLite and on PostgreSQL (``backend`` fixture)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.orm import Session
from store_support import *  # noqa: F403
from store_support import face_image, publish_complete_notice

from facegate import audit, domain
from facegate.errors import KeyUnavailable
from facegate.store.crypto import Keyring
from facegate.store.db import Store
from facegate.store.models import AuditEntry, Base, PersonKey, Template


@pytest.fixture
def enrolled(store, settings, keyring, pipe):
    """A site with two enrolled people; returns (site_id, {person_id: [template vectors]})."""
    with store.session() as s:
        init = domain.init_site(s, settings, actor="op", operator_name="ACME")
        domain.add_access_point(s, actor="op", name="Gate", kind="gate", methods=["face", "qr"])
        publish_complete_notice(s, settings)
        vectors = {}
        for ident in (21, 22):
            p = domain.add_person(
                s, keyring=keyring, actor="op", category="resident", name=f"Person {ident}"
            )
            domain.record_consent(s, actor="op", person_id=p.id)
            imgs = [face_image(ident), face_image(ident, 1)]
            domain.enroll(s, keyring, pipe, actor="op", person_id=p.id, images=imgs)
            vectors[p.id] = [pipe.analyze(i)[0].template for i in imgs]
        return init.site_id, vectors


def _needles(vec: np.ndarray) -> list[bytes]:
    """The template's float32 bytes (both byte orders) and every 4-float window of it."""
    out = []
    for order in ("<f4", ">f4"):
        raw = np.asarray(vec, dtype=order).tobytes()
        out.append(raw)
        out += [raw[i : i + 16] for i in range(0, len(raw) - 15, 4)]
    return out


def _all_cells(store: Store) -> list[bytes]:
    cells = []
    with store.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                for v in row:
                    if v is None:
                        continue
                    cells.append(bytes(v) if isinstance(v, bytes | memoryview) else str(v).encode())
    return cells


def test_database_holds_no_plaintext_template(store, enrolled, db_url, backend):
    _, vectors = enrolled
    cells = _all_cells(store)
    assert any(len(c) >= 256 for c in cells)  # the ciphertexts are there...
    blob = b"\x00".join(cells)
    for vecs in vectors.values():
        for vec in vecs:
            for needle in _needles(vec):
                assert needle not in blob  # ...but no plaintext window of any template
            assert f"{float(vec[0]):.6f}".encode() not in blob  # nor a text rendering
    if backend == "sqlite":
        path = db_url.removeprefix("sqlite:///")
        raw = _sqlite_files(path)
        for vecs in vectors.values():
            assert not any(n in raw for v in vecs for n in _needles(v))


def _sqlite_files(path: str) -> bytes:
    """The raw bytes of the database file and its write-ahead log."""
    files = [Path(path), Path(path + "-wal")]
    return b"".join(f.read_bytes() for f in files if f.exists())


def test_templates_decrypt_only_through_their_own_key(store, enrolled, keyring):
    site, vectors = enrolled
    with store.session() as s:
        got = {}
        for e in domain.load_gallery_entries(s, keyring, site, "fake-v1"):
            got.setdefault(e.person_pseudonym, []).append(e.vector)
        for pid, vecs in vectors.items():
            assert sorted(map(bytes, got[pid])) == sorted(map(bytes, vecs))
        # A template row moved to another person does not decrypt (AAD binds it).
        a, b = list(vectors)
        t = s.scalars(select(Template).where(Template.person_id == a)).first()
        kb = s.get(PersonKey, b)
        key_b = keyring.unwrap_data_key(b, kb.key_id, kb.wrapped)
        with pytest.raises(KeyUnavailable):
            keyring.decrypt_template(
                key_b, t.nonce, t.ciphertext, template_id=t.id, person_id=b, model_id=t.model_id
            )


def test_crypto_shredded_templates_cannot_be_decrypted(store, enrolled, keyring, db_url, backend):
    _, vectors = enrolled
    victim, other = list(vectors)
    with store.session() as s:
        stolen = [
            (t.id, t.model_id, bytes(t.nonce), bytes(t.ciphertext))
            for t in s.scalars(select(Template).where(Template.person_id == victim))
        ]
        domain.withdraw(s, actor="op", person_id=victim)
        remaining = s.scalars(select(PersonKey)).all()
        assert [k.person_id for k in remaining] == [other]
        candidates = [keyring.unwrap_data_key(k.person_id, k.key_id, k.wrapped) for k in remaining]
        # An attacker with a stolen copy of the old ciphertext, the database and the site key
        # file still cannot open it: the only key that could is gone.
        for key in candidates:
            for tid, model, nonce, ct in stolen:
                for pid in (victim, other):
                    with pytest.raises(KeyUnavailable):
                        Keyring.decrypt_template(
                            key, nonce, ct, template_id=tid, person_id=pid, model_id=model
                        )
    if backend == "sqlite":  # nor is the ciphertext left in the file or its WAL
        path = db_url.removeprefix("sqlite:///")
        raw = _sqlite_files(path)
        assert not any(ct in raw for *_, ct in stolen)


def _tamper_then_verify(store: Store, *sql: str) -> audit.VerifyResult:
    with store.engine.connect() as conn:
        trans = conn.begin()
        for stmt in sql:
            conn.execute(text(stmt))
        result = audit.verify(Session(bind=conn))
        trans.rollback()
    return result


def test_audit_chain_detects_edit_delete_reorder(store, enrolled):
    with store.session() as s:
        good = audit.verify(s)
    assert good.ok and good.entries >= 8 and good.first_bad_seq is None
    n = good.entries

    edited = _tamper_then_verify(
        store, "UPDATE audit_entries SET outcome = 'refused:x' WHERE seq = 5"
    )
    assert not edited.ok and edited.first_bad_seq == 5
    actor = _tamper_then_verify(store, "UPDATE audit_entries SET actor = 'nobody' WHERE seq = 7")
    assert not actor.ok and actor.first_bad_seq == 7

    deleted = _tamper_then_verify(store, "DELETE FROM audit_entries WHERE seq = 4")
    assert not deleted.ok and deleted.first_bad_seq == 4
    tail = _tamper_then_verify(store, f"DELETE FROM audit_entries WHERE seq = {n}")
    assert not tail.ok and tail.first_bad_seq == n

    swapped = _tamper_then_verify(
        store,
        "UPDATE audit_entries SET seq = -1 WHERE seq = 3",
        "UPDATE audit_entries SET seq = 3 WHERE seq = 6",
        "UPDATE audit_entries SET seq = 6 WHERE seq = -1",
    )
    assert not swapped.ok and swapped.first_bad_seq == 3

    with store.session() as s:  # untouched after the rollbacks
        assert audit.verify(s).ok


def test_audit_entries_carry_no_names_or_templates(store, enrolled):
    with store.session() as s:
        rows = s.scalars(select(AuditEntry)).all()
    blob = " ".join(f"{r.actor} {r.subject} {r.outcome} {r.details}" for r in rows)
    assert "Person 21" not in blob and "Person 22" not in blob
    with store.session() as s, pytest.raises(Exception, match="may not contain"):
        audit.append(
            s, actor="x", operation="x", purpose="x", outcome="x", details={"name": "Li Lei"}
        )


def test_migrated_schema_equals_models(store):
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_migration_is_idempotent_and_zero_config(tmp_path):
    url = f"sqlite:///{tmp_path / 'new' / 'facegate.sqlite'}"
    Store(url).dispose()
    Store(url).dispose()  # second open: already at head, nothing happens
    with Store(url).engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_upgrade_from_first_migration_keeps_data(tmp_path):
    """A database made by an older release is upgraded in place on first use."""
    from alembic import command

    from facegate.store.db import alembic_config, make_engine

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = make_engine(url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0001")
        conn.execute(
            text(
                "INSERT INTO organizations (id, name, address, contact, pipo_contact,"
                " created_at) VALUES ('org-1', 'Old', '', '', '', '2025-01-01')"
            )
        )
    engine.dispose()
    store = Store(url)
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM organizations")).scalar() == "Old"
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    store.dispose()
