"""Backup and restore (issue 16.13): back up, destroy, restore on SQLite and PostgreSQL; the
decisions, consents, audit chain and templates come back, crypto-shredded people do not."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from store_support import *  # noqa: F403
from store_support import FakePipeline, face_image, publish_complete_notice
from typer.testing import CliRunner

from facegate import audit, domain
from facegate.access.decide import CredentialInput, DbFacts, GateContext, decide
from facegate.access.dedup import EventDeduplicator
from facegate.cli.main import app
from facegate.domain.identities import identities_of
from facegate.store.backup import MAGIC
from facegate.store.crypto import load_keyring
from facegate.store.db import Store, normalize_url
from facegate.store.models import Consent, PersonKey, Template

PASS = "a long backup passphrase"


def _cli(settings, *args, ok=True):
    res = CliRunner().invoke(
        app,
        [*args, "--data-dir", str(settings.data_dir), "--db", settings.db_url, "--json"],
        env={"FACEGATE_BACKUP_PASSPHRASE": PASS},
    )
    assert (res.exit_code == 0) == ok, (args, res.output, res.exception)
    return json.loads(res.stdout) if ok else res


def _card(s, ap_id, card):
    ctx = GateContext(None, None, EventDeduplicator(0), 1, 5, timedelta(minutes=15))
    d = decide(
        DbFacts(s),
        ctx,
        access_point_id=ap_id,
        request_id="r-" + card,
        actor="gate",
        credential=CredentialInput(card=card),
    )
    s.commit()
    return d.decision, d.subject


def _destroy(settings):
    shutil.rmtree(settings.data_dir)
    if settings.db_url.startswith("sqlite"):
        for suffix in ("", "-wal", "-shm"):
            Path(settings.db_url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
    else:
        engine = create_engine(normalize_url(settings.db_url))
        with engine.begin() as conn:
            schema = conn.execute(text("select current_schema()")).scalar_one()
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine.dispose()


def test_backup_destroy_restore_keeps_everything_but_the_shredded(settings, tmp_path):
    keyring = load_keyring(settings, create=True)
    pipe = FakePipeline()
    store = Store(settings.db_url)
    with store.session() as s:
        site = domain.init_site(
            s,
            settings,
            actor="op",
            operator_name="ACME Property",
            operator_address="1 Garden Road",
            operator_contact="400-000-0000",
            site_name="Sunny Garden",
        ).site_id
        ap = domain.add_access_point(
            s, actor="op", name="Gate", kind="gate", methods=["face", "card"]
        ).id
        publish_complete_notice(s, settings)
        ids = []
        for n, card in ((1, "0001"), (2, "0002")):
            p = domain.add_person(
                s, keyring=keyring, actor="op", category="resident", name=f"Resident-Number-{n}"
            ).id
            domain.record_consent(s, actor="op", person_id=p, channel="front_desk")
            domain.enroll(s, keyring, pipe, actor="op", person_id=p, images=[face_image(n)])
            domain.issue_card(s, actor="op", person_id=p, card_number=card)
            ids.append(p)
        assert _card(s, ap, "0001") == ("allow", ids[0])
    store.dispose()
    old, new = tmp_path / "old.fgb", tmp_path / "new.fgb"
    _cli(settings, "backup", "--out", str(old))
    raw = old.read_bytes()
    assert raw.startswith(MAGIC)
    site_key = json.loads(settings.key_file_path.read_text())
    for key in site_key["keys"].values():  # the site key never travels in clear
        assert key.encode() not in raw
    assert b"Resident-No-1" not in raw and b"SQLite format" not in raw

    # After the backup the first resident withdraws: their face data is crypto-shredded.
    store = Store(settings.db_url)
    with store.session() as s:
        domain.withdraw(s, actor="op", person_id=ids[0])
    store.dispose()
    _cli(settings, "backup", "--out", str(new))

    _destroy(settings)  # the machine is lost
    refused = _cli(settings, "restore", str(old), "--passphrase-file", "/nonexistent", ok=False)
    assert "passphrase file" in refused.stderr
    res = _cli(settings, "restore", str(old), "--shred-list", str(new))
    assert res["audit_ok"] and res["shredded_again"] == [ids[0]]
    assert (settings.key_file_path.stat().st_mode & 0o777) == 0o600

    keyring = load_keyring(settings)
    store = Store(settings.db_url)
    try:
        with store.session() as s:
            # The withdrawn resident stays shredded; the other one's face and consent are back.
            assert s.execute(select(Template).where(Template.person_id == ids[0])).first() is None
            assert s.get(PersonKey, ids[0]) is None
            entries = list(domain.load_gallery_entries(s, keyring, site, pipe.model_id))
            assert [e.person_pseudonym for e in entries] == [ids[1]]
            consents = {c.person_id: c.withdrawn_at for c in s.execute(select(Consent)).scalars()}
            assert consents[ids[0]] is not None and consents[ids[1]] is None
            # Decisions: both cards still open the gate (withdrawal never removes access).
            assert _card(s, ap, "0001") == ("allow", ids[0])
            assert _card(s, ap, "0002") == ("allow", ids[1])
            # The sealed name is back and opens with the restored site key (issue 13 item 15).
            back = identities_of(s, keyring, ids)
            assert back[ids[1]].name == "Resident-Number-2"
            assert audit.verify(s).ok
    finally:
        store.dispose()
    assert _cli(settings, "audit", "verify")["ok"]


def test_restore_over_a_live_database_replays_its_shreds(settings, tmp_path):
    """Restoring an older backup on the same machine keeps the shreddings made since."""
    keyring = load_keyring(settings, create=True)
    pipe = FakePipeline()
    store = Store(settings.db_url)
    with store.session() as s:
        domain.init_site(s, settings, actor="op", operator_name="ACME", site_name="G")
        domain.add_access_point(s, actor="op", name="Gate", kind="gate", methods=["face", "card"])
        publish_complete_notice(s, settings)
        p = domain.add_person(s, actor="op", category="resident").id
        domain.record_consent(s, actor="op", person_id=p, channel="front_desk")
        domain.enroll(s, keyring, pipe, actor="op", person_id=p, images=[face_image(3)])
    store.dispose()
    old = tmp_path / "old.fgb"
    _cli(settings, "backup", "--out", str(old))
    _cli(settings, "rights", "erase", p, "--yes")
    refused = _cli(settings, "restore", str(old), ok=False)
    assert "--force" in refused.stderr
    res = _cli(settings, "restore", str(old), "--force")
    assert res["shredded_again"] == [p] and res["audit_ok"]
    store = Store(settings.db_url)
    try:
        with store.session() as s:
            assert s.execute(select(Template)).first() is None
    finally:
        store.dispose()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_wrong_passphrase_or_a_changed_byte_restores_nothing(settings, tmp_path):
    load_keyring(settings, create=True)
    _cli(settings, "init")
    path = tmp_path / "b.fgb"
    _cli(settings, "backup", "--out", str(path))
    other = tmp_path / "other"
    data = bytearray(path.read_bytes())
    data[-100] ^= 1
    bad = tmp_path / "bad.fgb"
    bad.write_bytes(bytes(data))
    for f in (bad,):
        res = CliRunner().invoke(
            app,
            ["restore", str(f), "--data-dir", str(other), "--json"],
            env={"FACEGATE_BACKUP_PASSPHRASE": PASS},
        )
        assert res.exit_code == 1 and "passphrase is wrong" in res.stderr
    res = CliRunner().invoke(
        app,
        ["restore", str(path), "--data-dir", str(other), "--json"],
        env={"FACEGATE_BACKUP_PASSPHRASE": "not the right one"},
    )
    assert res.exit_code == 1 and "passphrase is wrong" in res.stderr
    assert not (other / "facegate.sqlite").exists()
    short = CliRunner().invoke(
        app,
        ["backup", "--out", str(tmp_path / "x"), "--data-dir", str(settings.data_dir)],
        env={"FACEGATE_BACKUP_PASSPHRASE": "short"},
    )
    assert short.exit_code == 1 and "at least 12" in short.stderr
