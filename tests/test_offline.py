"""Issue 18: a gate keeps deciding when its database is away, and never answers late.

A PostgreSQL of the test's own (``offline_support.PgServer``, never the machine's) is stopped,
frozen with SIGSTOP and has its backends killed, under real gate server processes (the real
app and runtime; a small fake face pipeline, since models are not the point here).
"""

from __future__ import annotations

import os
import random
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from offline_support import (
    PgServer,
    frame_bytes,
    start_gate,
    wait_for,
)
from server_support import make_site
from sqlalchemy import func, select
from store_support import FakePipeline, face_image

from facegate import audit, domain
from facegate.audit import anchor as audit_anchor
from facegate.config import Settings
from facegate.store.crypto import load_keyring
from facegate.store.models import AccessEvent, AuditEntry, OfflineMerge

pytestmark = pytest.mark.pg

# A loaded test machine: one argon2 PIN check alone takes about a second here, so the gates
# get a longer deadline than the 1 s default; every call below waits at most that (+ slack).
DEADLINE_MS = 4000
CLIENT_TIMEOUT = DEADLINE_MS / 1000 + 3.0
GATE_ENV = {
    "FACEGATE_DECIDE_DEADLINE_MS": str(DEADLINE_MS),
    "FACEGATE_EVENT_DEDUP_S": "0",  # every answered decision is its own event here
    "FACEGATE_PIN_MAX_FAILURES": "3",
    "FACEGATE_DB_PROBE_INTERVAL_MS": "100",
}


class Site:
    """A site on the test's PostgreSQL: people with cards, PINs, faces and QR passes."""

    def __init__(self, pg: PgServer, root: Path) -> None:
        self.pg = pg
        self.root = root
        settings = Settings(data_dir=root / "admin", db_url=pg.url)
        self.setup = make_site(settings)
        self.key_file = settings.key_file_path
        # Seals its audit entries with the site's audit key, as every writer must (issue 13).
        self.store = audit_anchor.open_store(settings)
        self.keyring = load_keyring(settings)
        self.people: dict[str, str] = {}
        for name, identity in (("alice", 1), ("walter", 2), ("bob", 3)):
            self.add_person(name, identity)
        self.qr = {}
        with self.store.session() as s:
            for name in ("once", "twice"):
                issued = domain.issue_qr_pass(
                    s,
                    actor="test",
                    site_id=self.setup.site_id,
                    max_uses=1 if name == "once" else 2,
                )
                self.qr[name] = issued.secret

    def add_person(self, name: str, identity: int) -> str:
        with self.store.session() as s:
            pid = domain.add_person(
                s, actor="test", category="resident", site_id=self.setup.site_id
            ).id
            domain.record_consent(s, actor="test", person_id=pid)
            domain.enroll(
                s,
                self.keyring,
                FakePipeline(),
                actor="test",
                person_id=pid,
                images=[face_image(identity, 0), face_image(identity, 1)],
            )
            domain.issue_card(s, actor="test", person_id=pid, card_number=f"CARD-{name}")
            domain.issue_pin(s, actor="test", person_id=pid, pin="2468", identifier=f"unit-{name}")
        self.people[name] = pid
        return pid

    def gate(self, name: str, **env: str):
        return start_gate(self.pg.url, self.root / name, self.key_file, name, **{**GATE_ENV, **env})

    def withdraw(self, name: str) -> None:
        with self.store.session() as s:
            domain.withdraw(s, actor="test", person_id=self.people[name])

    def events_by_request(self) -> dict[str, list[AccessEvent]]:
        out: dict[str, list[AccessEvent]] = {}
        with self.store.session() as s:
            for (e,) in s.execute(select(AccessEvent)):
                out.setdefault(e.request_id, []).append(e)
        return out

    def close(self) -> None:
        self.store.dispose()


@pytest.fixture
def pg():
    server = PgServer()
    yield server
    server.destroy()


@pytest.fixture
def site(pg, tmp_path):
    s = Site(pg, tmp_path)
    yield s
    s.close()


class Caller:
    """A door controller: sends decisions, remembers every answer it received."""

    def __init__(self, site: Site, gate) -> None:
        self.site = site
        self.gate = gate
        self.key = site.setup.keys["gate"]
        self.answered: dict[str, dict] = {}  # request id -> answer

    def decide(
        self,
        ap: str | None = None,
        *,
        frame: bytes | None = None,
        timeout: float = CLIENT_TIMEOUT,
        deadline_ms: int | None = None,
        **cred: str,
    ) -> httpx.Response:
        ap = ap or self.site.setup.ap_main
        rid = secrets.token_hex(8)
        headers = {"X-API-Key": self.key, "X-Request-Id": rid}
        if deadline_ms is not None:
            headers["X-Facegate-Deadline-Ms"] = str(deadline_ms)
        url = f"{self.gate.base}/v1/access-points/{ap}/decide"
        if frame is not None:
            files = [("frame", ("f.raw", frame, "application/octet-stream"))]
            r = httpx.post(url, files=files, data=cred, headers=headers, timeout=timeout)
        else:
            r = httpx.post(url, json=cred, headers=headers, timeout=timeout)
        if r.status_code == 200:
            self.answered[rid] = r.json()
        return r

    def ok(self, **kw) -> dict:
        r = self.decide(**kw)
        assert r.status_code == 200, r.text
        return r.json()


def check_recorded(site: Site, callers: list[Caller]) -> None:
    """Every answered decision is in the events exactly once, as answered; the audit log has
    one entry per event and verifies; every offline one came through a merge."""
    events = site.events_by_request()
    offline = 0
    for c in callers:
        for rid, answer in c.answered.items():
            got = events.get(rid, [])
            assert len(got) == 1, f"{rid}: {len(got)} events for one answered decision"
            assert got[0].outcome == answer["decision"] and got[0].reason == answer["reason"]
            offline += bool(answer.get("offline"))
    with site.store.session() as s:
        n_events = s.scalar(select(func.count()).select_from(AccessEvent))
        n_audit = s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.operation == "match_decision")
        )
        assert n_events == n_audit
        merged = s.scalar(select(func.count()).select_from(OfflineMerge))
        assert merged == offline
        if offline:
            merges = s.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.operation == "offline_merge")
            )
            assert merges >= 1
        result = audit.verify(s)
        assert result.ok, result.reason


def wait_state(gate, status: str, code: int, timeout: float = 15.0) -> dict:
    seen = {}

    def reached():
        r = gate.health()
        seen["last"] = (r.status_code, r.json())
        return r.status_code == code and r.json()["status"] == status

    wait_for(reached, timeout, f"healthz {status}/{code} (last {seen.get('last')})")
    return seen["last"][1]


def test_stopped_database_gate_decides_from_memory_and_merges_once(site, pg):
    gate = site.gate("g1")
    try:
        c = Caller(site, gate)
        ap = site.setup.ap_main
        assert c.ok(card="CARD-alice")["decision"] == "allow"
        # Withdrawn BEFORE the outage: the change feed brings it to the gate's copy. From then
        # on a card sent with a frame is a card decision and the frame is not used (issue 16.3).
        site.withdraw("walter")
        wait_for(
            lambda: c.ok(frame=frame_bytes(2), card="CARD-walter")["method"] == "card",
            what="withdrawal reached the gate",
        )
        pg.stop()
        body = wait_state(gate, "offline", 200)
        assert body["offline_since"] and body["database"] is False
        # Card, PIN, QR and face keep answering from memory, within the deadline.
        a = c.ok(card="CARD-alice")
        assert (a["decision"], a["offline"]) == ("allow", True)
        assert c.ok(pin="2468", person="unit-alice")["decision"] == "allow"
        face = c.ok(frame=frame_bytes(1))
        assert (face["decision"], face["subject"]) == ("allow", site.people["alice"])
        assert c.ok(qr=site.qr["once"])["decision"] == "allow"
        assert c.ok(qr=site.qr["once"])["reason"] == "pass_used"  # single use, offline too
        # The person who withdrew is refused by face, their frame is not used with their card,
        # and their card still works (PIPL-16, CAC-FR-06b), offline too.
        w = c.ok(frame=frame_bytes(2), card="CARD-walter")
        assert (w["decision"], w["method"]) == ("allow", "card")
        assert c.ok(frame=frame_bytes(2))["decision"] == "deny"
        assert c.ok(card="CARD-walter")["decision"] == "allow"
        # PIN lockouts count offline.
        reasons = [c.ok(pin="0000", person="unit-bob")["reason"] for _ in range(3)]
        assert reasons == ["wrong_pin", "wrong_pin", "pin_locked"]
        assert c.ok(pin="2468", person="unit-bob")["reason"] == "pin_locked"
        # Everything else: 503 with Retry-After, saying the database is away.
        r = httpx.post(
            f"{gate.base}/v1/persons",
            json={"category": "resident"},
            headers={"X-API-Key": site.setup.keys["enroll"]},
            timeout=5,
        )
        assert r.status_code == 503 and r.headers["Retry-After"]
        assert r.json()["code"] == "database_unavailable" and "database" in r.json()["message"]
        page = httpx.get(f"{gate.base}/console/login", timeout=5)
        assert page.status_code == 503 and "数据库" in page.text and "database" in page.text
        depth = gate.health().json()["journal_depth"]
        assert depth == sum(bool(x.get("offline")) for x in c.answered.values())
        metrics = httpx.get(f"{gate.base}/metrics", timeout=5).text
        assert "facegate_offline 1.0" in metrics and "facegate_database_up 0.0" in metrics

        pg.start()
        body = wait_state(gate, "ok", 200, timeout=30)
        assert body["journal_depth"] == 0
        check_recorded(site, [c])
        verify = subprocess.run(
            [sys.executable, "-m", "facegate", "audit", "verify", "--db", site.pg.url],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "FACEGATE_DATA_DIR": str(site.root / "admin")},
        )
        assert verify.returncode == 0 and "intact" in verify.stdout, verify.stdout + verify.stderr
        # The lockout counted offline is in the database now, as is the QR pass's use.
        with site.store.session() as s:
            from facegate.store.models import Credential

            bob_pin = s.scalars(
                select(Credential).where(
                    Credential.person_id == site.people["bob"], Credential.kind == "pin"
                )
            ).one()
            assert bob_pin.locked_until is not None
        assert c.ok(qr=site.qr["once"])["reason"] == "pass_used"  # online now, same answer
        assert ap
    finally:
        gate.stop()


def test_frozen_database_answers_within_deadline_and_records_no_unreceived_answer(site, pg):
    # A probe slow to call the frozen database away, so the caller below surely gives up
    # while the gate still waits on the database.
    gate = site.gate("g1", FACEGATE_DB_DECISION_TIMEOUT_MS="1500")
    try:
        c = Caller(site, gate)
        assert c.ok(card="CARD-alice")["decision"] == "allow"
        pg.freeze()
        try:
            # A caller that gives up (its own timeout, far below the deadline it announced)
            # while the gate still waits on the frozen database: no event, ever.
            gone = secrets.token_hex(8)
            with pytest.raises(httpx.TimeoutException):
                httpx.post(
                    f"{gate.base}/v1/access-points/{site.setup.ap_main}/decide",
                    json={"card": "CARD-alice"},
                    headers={
                        "X-API-Key": c.key,
                        "X-Request-Id": gone,
                        "X-Facegate-Deadline-Ms": "3500",
                    },
                    timeout=0.3,
                )
            # /healthz never waits on the database.
            t0 = time.monotonic()
            gate.health(timeout=2)
            assert time.monotonic() - t0 < 2
            wait_state(gate, "offline", 200)
            for _ in range(2):
                assert c.ok(card="CARD-alice")["offline"] is True
                assert c.ok(frame=frame_bytes(1))["decision"] == "allow"
                assert c.ok(qr=site.qr["twice"])["decision"] == "allow"
            assert c.ok(qr=site.qr["twice"])["reason"] == "pass_used"
            assert c.ok(pin="2468", person="unit-alice")["decision"] == "allow"
        finally:
            pg.thaw()
        wait_state(gate, "ok", 200, timeout=30)
        time.sleep(1.0)  # let any thread that was waiting on the frozen server finish
        check_recorded(site, [c])
        assert gone not in site.events_by_request()
    finally:
        gate.stop()


def test_killed_backends_lose_nothing(site, pg):
    gate = site.gate("g1")
    try:
        c = Caller(site, gate)
        for i in range(20):
            if i % 5 == 2:
                # Back online first (after a kill the gate may decide from memory for a while,
                # holding no connection to kill): each kill then hits the gate's backends.
                wait_state(gate, "ok", 200, timeout=30)
                assert pg.kill_backends() >= 1
            r = c.decide(card="CARD-alice")
            assert r.status_code == 200, r.text
            assert r.json()["decision"] == "allow"
        wait_state(gate, "ok", 200, timeout=30)
        check_recorded(site, [c])
    finally:
        gate.stop()


def test_past_offline_max_the_gate_fails_closed(site, pg):
    gate = site.gate("g1", FACEGATE_OFFLINE_MAX_S="1.5")
    try:
        c = Caller(site, gate)
        pg.stop()
        wait_state(gate, "offline", 200)
        assert c.ok(card="CARD-alice")["decision"] == "allow"
        body = wait_state(gate, "unavailable", 503)
        assert body["cause"] == "offline_too_long" and body["can_decide"] is False
        r = c.ok(card="CARD-alice")
        assert (r["decision"], r["reason"]) == ("deny", "offline_too_long")
        pg.start()
        wait_state(gate, "ok", 200, timeout=30)
        check_recorded(site, [c])
    finally:
        gate.stop()


def test_randomized_outages_withdrawals_and_decisions_across_two_gates(site, pg):
    """Seeded: outages (stop, freeze), withdrawals and decisions interleaved on two gate
    processes. Invariants: an answered decision is recorded exactly once and as answered; a
    person withdrawn (and known to both gates) before an outage is never allowed by face; a
    single-use pass allowed at both gates offline is reported as a conflict on merge; the
    audit chain verifies."""
    rng = random.Random(18)
    gates = [site.gate("g1"), site.gate("g2")]
    callers = [Caller(site, g) for g in gates]
    withdrawn: set[str] = set()
    faces = {"alice": 1, "walter": 2, "bob": 3}
    passes = []
    with site.store.session() as s:
        for _ in range(4):
            passes.append(
                domain.issue_qr_pass(s, actor="test", site_id=site.setup.site_id, max_uses=1).secret
            )
    db_state = "up"
    try:
        for _step in range(60):
            roll = rng.random()
            if roll < 0.08 and db_state == "up":
                db_state = rng.choice(["stopped", "frozen"])
                pg.stop() if db_state == "stopped" else pg.freeze()
                for g in gates:
                    wait_state(g, "offline", 200)
            elif roll < 0.16 and db_state != "up":
                pg.start() if db_state == "stopped" else pg.thaw()
                db_state = "up"
                for g in gates:
                    wait_state(g, "ok", 200, timeout=30)
            elif roll < 0.22 and db_state == "up":
                left = [n for n in faces if n not in withdrawn]
                if left:
                    name = rng.choice(left)
                    site.withdraw(name)
                    withdrawn.add(name)
                    # Known to both gates before any outage: both refuse the face now.
                    for c in callers:
                        wait_for(
                            lambda c=c, name=name: (
                                c.ok(frame=frame_bytes(faces[name]), card=f"CARD-{name}")["method"]
                                == "card"
                            ),
                            what=f"withdrawal of {name} reached {c.gate.base}",
                        )
            else:
                c = rng.choice(callers)
                kind = rng.choice(["card", "face", "qr", "pin"])
                name = rng.choice(list(faces))
                if kind == "card":
                    a = c.ok(card=f"CARD-{name}")
                    assert a["decision"] == "allow"
                elif kind == "face":
                    a = c.ok(frame=frame_bytes(faces[name]))
                    if name in withdrawn:
                        assert a["decision"] == "deny", (name, a)
                    else:
                        assert (a["decision"], a["subject"]) == ("allow", site.people[name])
                elif kind == "pin":
                    a = c.ok(pin="2468", person=f"unit-{name}")
                    assert a["decision"] == "allow"
                else:
                    c.ok(qr=rng.choice(passes))
        if db_state == "stopped":
            pg.start()
        elif db_state == "frozen":
            pg.thaw()
        for g in gates:
            wait_state(g, "ok", 200, timeout=30)
        time.sleep(1.0)
        check_recorded(site, callers)
        # A single-use pass: allowed once, unless two gates allowed it while cut off, which
        # the merge reports as a conflict.
        with site.store.session() as s:
            conflicts = s.scalar(
                select(func.count())
                .select_from(OfflineMerge)
                .where(OfflineMerge.conflict.is_not(None))
            )
        allows = {}
        for c in callers:
            for answer in c.answered.values():
                if answer["method"] == "qr" and answer["decision"] == "allow":
                    allows[answer["request_id"]] = answer
        used = sum(1 for _ in allows)
        assert used <= len(passes) + conflicts
    finally:
        if db_state == "frozen":
            pg.thaw()
        for g in gates:
            g.stop()


def test_single_use_pass_used_offline_at_two_gates_is_a_merge_conflict(site, pg):
    gates = [site.gate("g1"), site.gate("g2")]
    try:
        callers = [Caller(site, g) for g in gates]
        pg.stop()
        for g in gates:
            wait_state(g, "offline", 200)
        for c in callers:  # each gate's copy says unused: both open (the door did open)
            assert c.ok(qr=site.qr["once"])["decision"] == "allow"
        pg.start()
        for g in gates:
            wait_state(g, "ok", 200, timeout=30)
        check_recorded(site, callers)
        with site.store.session() as s:
            rows = s.scalars(select(OfflineMerge).where(OfflineMerge.conflict.is_not(None)))
            assert [r.conflict for r in rows] == ["qr_pass_used_elsewhere"]
            entry = s.scalars(
                select(AuditEntry)
                .where(AuditEntry.operation == "offline_merge")
                .where(AuditEntry.outcome == "conflicts")
            ).one()
            assert entry.details["conflicts"][0]["conflict"] == "qr_pass_used_elsewhere"
    finally:
        for g in gates:
            g.stop()
