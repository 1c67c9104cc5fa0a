"""Issue 18 on the embedded SQLite: a locked or full database file gets the same deadlines and
a clear refusal, never a hang; decisions go on from memory and reach the file afterwards."""

from __future__ import annotations

import sqlite3
import time

import pytest
from fastapi.testclient import TestClient
from offline_support import GateFakePipeline, wait_for
from server_support import make_site
from sqlalchemy import event, func, select

from facegate import audit, domain
from facegate.api import create_app
from facegate.audit import anchor as audit_anchor
from facegate.config import Settings
from facegate.store.models import AccessEvent, AuditEntry, OfflineMerge


@pytest.fixture
def gate(tmp_path):
    settings = Settings(
        data_dir=tmp_path,
        db_timeout_ms=1000,  # every other database call: 1 s, then 503
        decide_deadline_ms=3000,
        event_dedup_s=0,
        db_probe_interval_ms=100,
    )
    setup = make_site(settings)
    store = audit_anchor.open_store(settings)  # its audit entries sealed, as the server's
    with store.session() as s:
        pid = domain.add_person(s, actor="test", category="resident", site_id=setup.site_id).id
        domain.issue_card(s, actor="test", person_id=pid, card_number="CARD-1")
    store.dispose()
    app = create_app(settings, pipeline=GateFakePipeline())
    with TestClient(app) as client:
        yield client, app.state.runtime, setup, settings


def _decide(client, setup, rid: str):
    return client.post(
        f"/v1/access-points/{setup.ap_main}/decide",
        json={"card": "CARD-1"},
        headers={"X-API-Key": setup.keys["gate"], "X-Request-Id": rid},
    )


def _enroll_person(client, setup):
    return client.post(
        "/v1/persons", json={"category": "resident"}, headers={"X-API-Key": setup.keys["enroll"]}
    )


def _check_recorded(rt, rids: list[str]) -> None:
    with rt.store.session() as s:
        for rid in rids:
            n = s.scalar(
                select(func.count()).select_from(AccessEvent).where(AccessEvent.request_id == rid)
            )
            assert n == 1, rid
        assert s.scalar(select(func.count()).select_from(OfflineMerge)) >= 1
        assert s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.operation == "offline_merge")
        )
        assert audit.verify(s).ok


def test_locked_sqlite_file_decides_from_memory_and_refuses_the_rest_in_time(gate):
    client, rt, setup, settings = gate
    assert _decide(client, setup, "before").json()["decision"] == "allow"
    # Another program holds the write lock (a stuck writer, a backup tool).
    holder = sqlite3.connect(settings.data_dir / "facegate.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        rids = [f"locked-{i}" for i in range(3)]
        for rid in rids:
            r = _decide(client, setup, rid)
            assert r.status_code == 200, r.text
            assert r.json()["decision"] == "allow" and r.json()["offline"] is True
        t0 = time.monotonic()
        r = _enroll_person(client, setup)
        waited = time.monotonic() - t0
        assert r.status_code == 503 and r.headers["Retry-After"]
        assert r.json()["code"] == "database_unavailable"
        assert waited < 10  # db_timeout_ms is 1 s; never the old 30 s, never a hang
        assert client.get("/healthz").json()["journal_depth"] >= 1
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    wait_for(lambda: client.get("/healthz").json()["status"] == "ok", 30, "merged")
    _check_recorded(rt, ["before", *rids])


def test_full_sqlite_file_is_a_clear_refusal_and_decisions_go_on(gate):
    client, rt, setup, settings = gate
    # The disk fills up: no page may be added to the file any more (SQLITE_FULL).
    engines = [rt.store.engine]
    rt.store.decision_session().close()
    engines.append(rt.store._decision_engine)

    def full(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        pages = cur.execute("PRAGMA page_count").fetchone()[0]
        cur.execute(f"PRAGMA max_page_count = {pages}")
        cur.close()

    for e in engines:
        event.listen(e, "connect", full)
        e.dispose()
    rids = []
    try:
        for i in range(40):  # enough events to need a new page
            rid = f"full-{i}"
            r = _decide(client, setup, rid)
            assert r.status_code == 200, r.text
            rids.append(rid)
            if r.json().get("offline"):
                break
        assert r.json()["offline"] is True, "the file never filled up"
        r = _enroll_person(client, setup)
        assert r.status_code == 503 and r.json()["code"] == "database_unavailable"
        assert "database" in r.json()["message"]
    finally:
        for e in engines:
            event.remove(e, "connect", full)
            e.dispose()
    wait_for(lambda: client.get("/healthz").json()["status"] == "ok", 30, "merged")
    _check_recorded(rt, rids)
