"""A property manager's first hour (issue 16): setup works in any order, sites can be named."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from store_support import *  # noqa: F403
from typer.testing import CliRunner

from facegate.cli.main import app
from facegate.store.db import Store
from facegate.store.models import AuditEntry, Organization, Site


@pytest.fixture
def cli(settings):
    runner = CliRunner()
    common = ["--data-dir", str(settings.data_dir), "--db", settings.db_url]

    def run(*args, ok=True):
        res = runner.invoke(app, [*args, *common, "--json"])
        assert (res.exit_code == 0) == ok, (args, res.output, res.exception)
        return json.loads(res.stdout) if ok and res.stdout.strip() else res

    return run


def test_init_after_serve_updates_what_it_is_given(cli, settings):
    # `facegate serve` first: it initialises with nothing named (as the README's first command).
    first = cli("init")
    assert first["created"] and first["updated"] == []
    # The documented init afterwards must not drop its options.
    again = cli(
        "init",
        "--operator-name",
        "ACME Property",
        "--operator-contact",
        "400-000-0000",
        "--site-name",
        "Sunny Garden",
    )
    assert not again["created"]
    assert set(again["updated"]) == {"operator_name", "operator_contact", "site_name"}
    store = Store(settings.db_url)
    try:
        with store.session() as s:
            site = s.get(Site, first["site_id"])
            org = s.get(Organization, site.organization_id)
            assert (site.name, org.name, org.contact) == (
                "Sunny Garden",
                "ACME Property",
                "400-000-0000",
            )
            ops = set(s.execute(select(AuditEntry.operation)).scalars())
            assert {"operator_update", "site_rename"} <= ops
    finally:
        store.dispose()
    assert cli("audit", "verify")["ok"]
    # Unchanged values change nothing.
    third = cli("init", "--site-name", "Sunny Garden")
    assert third["updated"] == []


def test_site_list_show_rename(cli):
    site_id = cli("init")["site_id"]
    listed = cli("site", "list")
    assert [r["id"] for r in listed] == [site_id] and listed[0]["name"] == ""
    renamed = cli("site", "rename", "--name", "阳光花园")
    assert renamed == {"id": site_id, "name": "阳光花园"}
    assert cli("site", "show")["name"] == "阳光花园"
    refused = cli("site", "rename", "--name", "   ", ok=False)
    assert "CAC-FR-05a" in refused.stderr
    missing = cli("site", "show", "site-nope", ok=False)
    assert "site-nope" in missing.stderr


def test_a_person_who_declined_gets_what_their_card_gives_and_no_face_use(store, settings):
    """Issue 16.3: a card sent with a frame by someone who declined face is a card decision;
    ``face_use_allowed`` tells adapters not to process the frame at all."""
    from datetime import timedelta

    import numpy as np

    from facegate import domain
    from facegate.access.burst import FrameProbe
    from facegate.access.decide import (
        CredentialInput,
        DbFacts,
        GateContext,
        decide,
        face_use_allowed,
    )
    from facegate.access.dedup import EventDeduplicator

    with store.session() as s:
        domain.init_site(s, settings, actor="op", operator_name="ACME", site_name="G")
        ap = domain.add_access_point(
            s, actor="op", name="Door", kind="door", methods=["face", "card"]
        ).id
        p = domain.add_person(s, actor="op", category="resident").id
        domain.decline_face(s, actor="op", person_id=p)
        domain.issue_card(s, actor="op", person_id=p, card_number="7")
        card = CredentialInput(card="7")
        assert not face_use_allowed(DbFacts(s), ap, card)
        assert face_use_allowed(DbFacts(s), ap, CredentialInput(card="unknown"))
        ctx = GateContext(None, None, EventDeduplicator(0), 1, 5, timedelta(minutes=15))
        probe = FrameProbe(np.ones(4, dtype=np.float32) / 2, 1.0)
        d = decide(
            DbFacts(s),
            ctx,
            access_point_id=ap,
            request_id="r1",
            actor="gate",
            credential=card,
            frames=[probe],
        )
        s.commit()
        assert (d.decision, d.method, d.subject) == ("allow", "card", p)
