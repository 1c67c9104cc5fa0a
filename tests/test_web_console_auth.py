"""The console's sites, API keys and kiosk links, through the real ASGI app (issue 13 items 8,
9 and 10): an operator of one site neither sees nor acts on another site's people; keys expire,
record their use and are listed and revoked; a kiosk link knows its access point's site,
replaces the previous one, and refuses an access point that does not exist.

Two sites on one server, SQLite (the pages are the same on PostgreSQL; the domain functions
they call are tested on both in test_web_domain.py).
"""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from facegate.api import create_app
from facegate.cli.server_cmds import ensure_initialised
from facegate.config import Settings
from facegate.domain import (
    add_access_point,
    add_person,
    create_api_key,
    issue_card,
    submit_rights_request,
)
from facegate.domain.accounts import create_operator
from facegate.store.db import Store
from facegate.store.models import ApiKey, Credential, Organization, Site, utcnow

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
PW = "a long passphrase"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("console-auth"))
    site_a = ensure_initialised(settings)
    store = Store(settings.database_url)
    ids: dict[str, str] = {"site_a": site_a}
    with store.session() as s:
        org = s.execute(select(Organization.id)).scalar_one()
        s.add(Site(id="site-b", organization_id=org, name="Other Court"))
        s.commit()
        ids["site_b"] = "site-b"
        for tag, site in (("a", site_a), ("b", "site-b")):
            ids[f"ap_{tag}"] = add_access_point(
                s, actor="test", name=f"gate {tag}", kind="gate", methods=["card"], site_id=site
            ).id
            ids[f"p_{tag}"] = add_person(s, actor="test", category="resident", site_id=site).id
            issue_card(s, actor="test", person_id=ids[f"p_{tag}"], card_number=f"card-{tag}")
            ids[f"rr_{tag}"] = submit_rights_request(
                s, settings, actor="test", person_id=ids[f"p_{tag}"], kind="export"
            ).id
        create_operator(s, actor="test", username="boss", password=PW, role="admin")
        create_operator(
            s, actor="test", username="desk_a", password=PW, role="operator", site_ids=[site_a]
        )
        create_operator(
            s, actor="test", username="audit_a", password=PW, role="auditor", site_ids=[site_a]
        )
    with TestClient(create_app(settings), headers={"Accept-Language": "en"}) as client:
        # One passage at each site, so each site has an event to show (or not).
        for tag in ("a", "b"):
            with store.session() as s:
                _, key = create_api_key(
                    s, actor="test", scopes=["gate:decide"], access_point_ids=[ids[f"ap_{tag}"]]
                )
            r = client.post(
                f"/v1/access-points/{ids[f'ap_{tag}']}/decide",
                json={"card": f"card-{tag}"},
                headers={"X-API-Key": key},
            )
            assert r.status_code == 200 and r.json()["decision"] == "allow", r.text
        yield {"client": client, "store": store, "ids": ids, "settings": settings}
    store.dispose()


def login(env, username: str) -> str:
    """Sign in as ``username``; returns the session's CSRF token."""
    client = env["client"]
    client.cookies.clear()
    page = client.get("/console/login")
    r = client.post(
        "/console/login",
        data={"csrf": CSRF.search(page.text).group(1), "username": username, "password": PW},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return CSRF.search(client.get("/console").text).group(1)


def test_operator_of_site_a_cannot_see_or_act_on_site_b(env):
    client, ids = env["client"], env["ids"]
    csrf = login(env, "desk_a")
    people = client.get("/console/people").text
    assert ids["p_a"] in people and ids["p_b"] not in people
    # Site B's person does not exist for this operator: a 404 page, not the record.
    r = client.get(f"/console/people/{ids['p_b']}")
    assert r.status_code == 404 and "card-b" not in r.text
    assert f"There is no such person ({ids['p_b']}) at the sites you work for" in r.text
    assert client.get(f"/console/people/{ids['p_a']}").status_code == 200
    # Nor can it act on them: a card, consent, invitation, withdrawal, enrollment.
    for action, form in (
        ("card", {"card_number": "stolen-1"}),
        ("consent", {"read_notice": "yes"}),
        ("invite", {}),
        ("withdraw", {}),
    ):
        r = client.post(f"/console/people/{ids['p_b']}/{action}", data={**form, "csrf": csrf})
        assert r.status_code == 404, (action, r.status_code)
    r = client.post(
        f"/console/people/{ids['p_b']}/enroll-camera",
        content=b"\xff\xd8not a photo",
        headers={"x-csrf-token": csrf, "content-type": "image/jpeg"},
    )
    assert r.status_code == 404
    with env["store"].session() as s:
        cards = s.execute(select(Credential.identifier).where(Credential.kind == "card"))
        assert "stolen-1" not in set(cards.scalars())
    # Nor add someone to site B.
    r = client.post(
        "/console/people", data={"csrf": csrf, "category": "resident", "site_id": ids["site_b"]}
    )
    assert r.status_code == 404
    # Rights requests, events and entrances: only site A's.
    rights = client.get("/console/rights").text
    assert ids["rr_a"] in rights and ids["rr_b"] not in rights
    r = client.post(
        f"/console/rights/{ids['rr_b']}",
        data={"csrf": csrf, "action": "reject", "reason": "no", "person_id": ids["p_b"]},
    )
    assert r.status_code == 404
    events = client.get("/console/events").text
    assert ids["p_a"] in events and ids["p_b"] not in events
    sites = client.get("/console/sites").text
    assert "gate a" in sites and "gate b" not in sites
    home = client.get("/console").text
    assert "Other Court" not in home
    # A person added without naming the site goes to the operator's only site.
    r = client.post(
        "/console/people", data={"csrf": csrf, "category": "resident"}, follow_redirects=False
    )
    assert r.status_code == 303


def test_auditor_is_scoped_too_and_admin_sees_every_site(env):
    client, ids = env["client"], env["ids"]
    login(env, "audit_a")
    assert client.get(f"/console/people/{ids['p_b']}").status_code == 404
    assert ids["p_b"] not in client.get("/console/people").text
    login(env, "boss")
    assert client.get(f"/console/people/{ids['p_b']}").status_code == 200
    people = client.get("/console/people").text
    assert ids["p_a"] in people and ids["p_b"] in people
    accounts = client.get("/console/operators").text
    assert "desk_a" in accounts and "Other Court" in accounts  # a site to choose for new ones


def test_kiosk_link_knows_its_site_replaces_the_previous_and_refuses_unknown(env):
    client, ids, store = env["client"], env["ids"], env["store"]
    csrf = login(env, "boss")
    # Two sites exist: the link is for the access point's own site (no "name the site").
    links = []
    for _ in range(2):
        r = client.post(f"/console/access-points/{ids['ap_b']}/kiosk", data={"csrf": csrf})
        assert r.status_code == 200, r.text
        links.append(re.search(r'id="once-link"[^>]*value="([^"]+)"', r.text).group(1))
    keys = [link.split("#key=", 1)[1] for link in links]
    with store.session() as s:
        rows = s.execute(
            select(ApiKey).where(ApiKey.kiosk_access_point_id == ids["ap_b"])
        ).scalars()
        rows = sorted(rows, key=lambda k: k.created_at)
    assert [r.site_id for r in rows] == [ids["site_b"]] * 2
    assert [r.access_point_ids for r in rows] == [[ids["ap_b"]]] * 2
    assert rows[0].revoked_at is not None and rows[1].revoked_at is None

    def decide(key: str) -> int:
        return client.post(
            f"/v1/access-points/{ids['ap_b']}/decide",
            json={"card": "card-b"},
            headers={"X-API-Key": key},
        ).status_code

    assert decide(keys[0]) == 401  # the previous kiosk's key no longer opens anything
    assert decide(keys[1]) == 200
    # An access point that does not exist: a clear 404, and no key made.
    before = len(client.get("/console/keys").text)
    r = client.post("/console/access-points/ap-nonexistent/kiosk", data={"csrf": csrf})
    assert r.status_code == 404
    assert "There is no access point ap-nonexistent" in html.unescape(r.text)
    with store.session() as s:
        assert s.execute(select(ApiKey).where(ApiKey.name.like("%nonexistent%"))).first() is None
    assert before > 0


def test_keys_record_use_expire_and_are_listed_and_revoked(env):
    client, ids, store = env["client"], env["ids"], env["store"]
    csrf = login(env, "boss")
    with store.session() as s:
        row, key = create_api_key(
            s,
            actor="test",
            scopes=["gate:decide"],
            access_point_ids=[ids["ap_a"]],
            name="north tablet",
            expires_at=utcnow() + timedelta(days=30),
        )
        key_id = row.id
        assert row.last_used_at is None

    def decide() -> int:
        return client.post(
            f"/v1/access-points/{ids['ap_a']}/decide",
            json={"card": "card-a"},
            headers={"X-API-Key": key},
        ).status_code

    assert decide() == 200
    with store.session() as s:
        first = s.get(ApiKey, key_id).last_used_at
    assert first is not None
    assert decide() == 200  # within the minute: not written again
    with store.session() as s:
        assert s.get(ApiKey, key_id).last_used_at == first
    page = client.get("/console/keys").text
    row_html = re.search(rf'<tr data-key="{key_id}">.*?</tr>', page, re.S).group(0)
    assert "north tablet" in row_html and "gate a" in row_html
    assert "Not used yet" not in row_html
    # Revoked from the console: refused at once.
    r = client.post(f"/console/keys/{key_id}/revoke", data={"csrf": csrf})
    assert r.status_code == 200
    assert decide() == 401
    row_html = re.search(
        rf'<tr data-key="{key_id}">.*?</tr>', client.get("/console/keys").text, re.S
    ).group(0)
    assert "Revoked" in row_html
    # An expired key is refused.
    with store.session() as s:
        row, key = create_api_key(
            s, actor="test", scopes=["gate:decide"], access_point_ids=[ids["ap_a"]]
        )
        row.expires_at = utcnow() - timedelta(seconds=1)
        s.commit()
    assert decide() == 401
    # Operators do not manage keys.
    login(env, "desk_a")
    assert client.get("/console/keys").status_code == 403


def test_api_key_route_binds_gate_keys_and_lists_and_revokes(env):
    """Issue 16 item 4 (the API's key creation) and item 9 through the REST API."""
    client, ids, store = env["client"], env["ids"], env["store"]
    with store.session() as s:
        _, admin = create_api_key(s, actor="test", scopes=["admin"], site_id=ids["site_a"])
    h = {"X-API-Key": admin}
    r = client.post("/v1/keys", json={"scopes": ["gate:decide"]}, headers=h)
    assert r.status_code == 422 and "access point" in r.json()["message"]
    r = client.post(
        "/v1/keys", json={"scopes": ["gate:decide"], "access_point_ids": ["ap-nope"]}, headers=h
    )
    assert r.status_code == 404
    r = client.post(
        "/v1/keys", json={"scopes": ["gate:decide"], "access_point_ids": [ids["ap_b"]]}, headers=h
    )
    assert r.status_code == 403  # another site's door
    r = client.post(
        "/v1/keys",
        json={"scopes": ["gate:decide"], "access_point_ids": [ids["ap_a"]], "name": "tablet"},
        headers=h,
    )
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["access_point_ids"] == [ids["ap_a"]] and made["key"].startswith("fg_")
    every = client.post(
        "/v1/keys", json={"scopes": ["gate:decide"], "all_access_points": True}, headers=h
    )
    assert every.status_code == 201 and every.json()["access_point_ids"] is None
    listed = {k["id"]: k for k in client.get("/v1/keys", headers=h).json()}
    assert made["id"] in listed and "key" not in listed[made["id"]]
    assert all(k["site_id"] == ids["site_a"] for k in listed.values())
    assert listed[made["id"]]["last_used_at"] is None
    r = client.post(
        f"/v1/access-points/{ids['ap_a']}/decide",
        json={"card": "card-a"},
        headers={"X-API-Key": made["key"]},
    )
    assert r.status_code == 200
    listed = {k["id"]: k for k in client.get("/v1/keys", headers=h).json()}
    assert listed[made["id"]]["last_used_at"] is not None
    r = client.post(f"/v1/keys/{made['id']}/revoke", headers=h)
    assert r.status_code == 200 and r.json()["revoked_at"], r.text
    r = client.post(
        f"/v1/access-points/{ids['ap_a']}/decide",
        json={"card": "card-a"},
        headers={"X-API-Key": made["key"]},
    )
    assert r.status_code == 401
    # Another site's key cannot be revoked from here.
    with store.session() as s:
        other, _ = create_api_key(s, actor="test", scopes=["admin"], site_id=ids["site_b"])
        other_id = other.id
    assert client.post(f"/v1/keys/{other_id}/revoke", headers=h).status_code == 404


def test_upgrade_gives_existing_operators_every_existing_site(tmp_path):
    """Migration 0004: accounts made before sites were scoped keep seeing what they saw."""
    from alembic import command
    from sqlalchemy import text

    from facegate.store.db import alembic_config, make_engine

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = make_engine(url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0003")
        conn.execute(
            text(
                "INSERT INTO organizations (id, name, address, contact, pipo_contact, created_at)"
                " VALUES ('org-1', 'Old', '', '', '', '2025-01-01')"
            )
        )
        for site in ("site-1", "site-2"):
            conn.execute(
                text(
                    "INSERT INTO sites (id, organization_id, name, face_enabled, created_at)"
                    " VALUES (:id, 'org-1', :id, 0, '2025-01-01')"
                ),
                {"id": site},
            )
        for op_id, role in (("op-a", "admin"), ("op-d", "operator"), ("op-x", "auditor")):
            conn.execute(
                text(
                    "INSERT INTO operator_accounts (id, username, password_hash, role,"
                    " failed_attempts, created_at) VALUES (:id, :id, 'h', :role, 0, '2025-01-01')"
                ),
                {"id": op_id, "role": role},
            )
    engine.dispose()
    store = Store(url)  # upgrades to the head on first use
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(text("SELECT operator_id, site_id FROM operator_sites")).all()
        assert sorted(rows) == [
            ("op-d", "site-1"),
            ("op-d", "site-2"),
            ("op-x", "site-1"),
            ("op-x", "site-2"),
        ]
    finally:
        store.dispose()
