"""Refusals are counted, not one audit row each; object counts per site are bounded.

Issue 13 item 18: fuzzing wrote one audit row per refused request and an admin key created
1,269 access points. Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from server_support import make_site
from sqlalchemy import select
from store_support import *  # noqa: F403
from store_support import publish_complete_notice

from facegate import audit, domain
from facegate.api import create_app
from facegate.audit import anchor as audit_anchor
from facegate.config import Settings
from facegate.errors import LimitReached, NotFound
from facegate.store.db import Store
from facegate.store.models import AuditEntry


def _refusals(s, operation: str) -> list[AuditEntry]:
    return list(
        s.scalars(
            select(AuditEntry)
            .where(AuditEntry.operation == operation, AuditEntry.outcome.like("refused:%"))
            .order_by(AuditEntry.seq)
        )
    )


@pytest.fixture
def limited(tmp_path, db_url):
    settings = Settings(
        data_dir=tmp_path / "data",
        db_url=db_url,
        audit_refusal_window_s=60,
        max_access_points_per_site=3,
        max_api_keys_per_site=2,
        max_persons_per_site=4,
    )
    store = audit_anchor.open_store(settings)
    with store.session() as s:
        domain.init_site(s, settings, actor="op", operator_name="ACME")
    yield settings, store
    store.dispose()


def test_a_flood_of_refusals_is_one_row_and_a_counted_summary(limited):
    settings, store = limited
    with store.session() as s:
        for _ in range(50):
            with pytest.raises(NotFound):
                domain.record_consent(s, actor="api:key-1", person_id="p-nobody")
        with pytest.raises(NotFound):  # another principal: its own first row
            domain.record_consent(s, actor="api:key-2", person_id="p-nobody")
        rows = _refusals(s, "consent_record")
        assert [(r.actor, r.outcome, r.subject) for r in rows] == [
            ("api:key-1", "refused:not_found", "p-nobody"),
            ("api:key-2", "refused:not_found", "p-nobody"),
        ]
    audit_anchor.flush_refusals(store)  # shutdown (or the window passing) writes the count
    with store.session() as s:
        rows = _refusals(s, "consent_record")
        summary = rows[-1]
        assert (summary.actor, summary.outcome) == ("api:key-1", "refused:not_found")
        assert summary.details["summary"] is True and summary.details["count"] == 49
        assert len(rows) == 3  # 50 + 1 refusals, three rows, every one accounted for
        assert audit.verify(s).ok


def test_a_window_that_passed_is_summarised_at_the_next_refusal(limited):
    settings, store = limited
    with store.session() as s:
        tracker = s.info[audit.REFUSALS_INFO_KEY]
        for _ in range(3):
            with pytest.raises(NotFound):
                domain.record_consent(s, actor="op", person_id="p-nobody")
        tracker.window_s = 0.0  # the window has passed
        with pytest.raises(NotFound):
            domain.record_consent(s, actor="op", person_id="p-nobody")
        rows = _refusals(s, "consent_record")
        assert [r.details.get("count") for r in rows] == [None, 2, None]


def test_object_counts_per_site_are_bounded(limited):
    settings, store = limited
    with store.session() as s:
        for i in range(3):
            domain.add_access_point(
                s, actor="op", name=f"Gate {i}", kind="gate", methods=["face", "card"]
            )
        with pytest.raises(LimitReached) as err:
            domain.add_access_point(s, actor="op", name="one more", kind="gate", methods=["card"])
        assert err.value.code == "limit_reached" and err.value.http_status == 409
        assert "FACEGATE_MAX_ACCESS_POINTS_PER_SITE=3" in err.value.message
        assert "出入口" in err.value.message
        publish_complete_notice(s, settings)
        keys = [domain.create_api_key(s, actor="op", scopes=["admin"])[0] for _ in range(2)]
        with pytest.raises(LimitReached, match="API keys"):
            domain.create_api_key(s, actor="op", scopes=["admin"])
        domain.revoke_api_key(s, actor="op", key_id=keys[0].id)  # revoked keys do not count
        domain.create_api_key(s, actor="op", scopes=["admin"])
        for _ in range(4):
            domain.add_person(s, actor="op", category="resident")
        with pytest.raises(LimitReached, match="people registered"):
            domain.add_person(s, actor="op", category="resident")
        assert audit.verify(s).ok


def test_api_refusal_flood_and_access_point_limit(tmp_path, db_url):
    settings = Settings(data_dir=tmp_path / "gate", db_url=db_url, max_access_points_per_site=4)
    setup = make_site(settings)  # three access points already
    app = create_app(settings)
    h = {"X-API-Key": setup.keys["admin"]}
    with TestClient(app) as http:
        r = http.post("/v1/persons", json={"category": "visitor"}, headers=h)
        visitor = r.json()["id"]
        for _ in range(30):  # visitors never consent to face: refused in the domain, audited
            r = http.post(f"/v1/persons/{visitor}/consents", json={}, headers=h)
            assert r.json()["code"] == "enrollment_not_allowed"
        body = {"name": "x", "kind": "door", "methods": ["card"]}
        assert http.post("/v1/access-points", json=body, headers=h).status_code == 201
        r = http.post("/v1/access-points", json=body, headers=h)
        assert r.status_code == 409 and r.json()["code"] == "limit_reached"
        assert "FACEGATE_MAX_ACCESS_POINTS_PER_SITE=4" in r.json()["message"]
    # The server has shut down: its counted refusals were written as one summary.
    store = Store(settings.database_url)
    try:
        with store.session() as s:
            rows = _refusals(s, "consent_record")
            assert len(rows) == 2 and rows[1].details["count"] == 29
            assert len(_refusals(s, "access_point_add")) == 1
    finally:
        store.dispose()
