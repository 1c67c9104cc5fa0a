"""Issue 18, piece by piece: the request deadline, an answer given up during its commit, the
journal's chain and the merge's exactly-once (on SQLite and PostgreSQL)."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from store_support import *  # noqa: F403

from facegate import audit, domain
from facegate.access.decide import CredentialInput, DbFacts, GateContext, decide
from facegate.access.dedup import EventDeduplicator
from facegate.access.journal import Journal, merge
from facegate.access.offline import Deadline
from facegate.access.snapshot import Snapshot, SnapshotFacts
from facegate.errors import DecisionAbandoned
from facegate.store.models import AccessEvent, AuditEntry, OfflineMerge


@pytest.fixture
def site(store, settings):
    with store.session() as s:
        init = domain.init_site(s, settings, actor="op", operator_name="ACME Property")
        ap = domain.add_access_point(
            s, actor="op", name="Gate 1", kind="gate", methods=["card", "qr"]
        )
        p = domain.add_person(s, actor="op", category="resident")
        domain.issue_card(s, actor="op", person_id=p.id, card_number="C-1")
        return init.site_id, ap.id, p.id


def _ctx() -> GateContext:
    return GateContext(None, None, EventDeduplicator(0), 2, 3, timedelta(minutes=5))


def _count(store, model, *where) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_deadline_lets_one_path_record_and_none_after_the_caller_left():
    d = Deadline(5)
    d.claim("database")
    with pytest.raises(DecisionAbandoned):
        d.claim("memory")
    assert d.close("database") is True  # it claimed and is committing
    d2 = Deadline(5)
    d2.close("database")
    with pytest.raises(DecisionAbandoned):
        d2.claim("database")  # the gate moved on to its memory
    d2.claim("memory")
    d3 = Deadline(5)
    d3.abandon()
    with pytest.raises(DecisionAbandoned):
        d3.claim("memory")  # the caller hung up: nothing may be recorded
    d4 = Deadline(0.0)
    with pytest.raises(DecisionAbandoned):
        d4.claim("database")  # too late
    d5 = Deadline(5)
    d5.claim("database")
    d5.release("database")  # failed with nothing committed
    d5.claim("memory")


def test_caller_gone_before_the_claim_leaves_no_event(store, site):
    _, ap, _ = site
    d = Deadline(5)
    d.abandon()
    before = _count(store, AccessEvent)
    with store.session() as s, pytest.raises(DecisionAbandoned):
        decide(
            DbFacts(s, guard=d),
            _ctx(),
            access_point_id=ap,
            request_id="gone",
            actor="t",
            credential=CredentialInput(card="C-1"),
        )
    assert _count(store, AccessEvent) == before


class _LeftDuringCommit(Deadline):
    """A caller whose deadline passed while its decision was being committed."""

    def delivered(self) -> bool:
        super().delivered()
        return True


def test_answer_given_up_during_its_commit_is_recorded_as_abandoned_not_allow(store, site):
    _, ap, pid = site
    with store.session() as s:
        result = decide(
            DbFacts(s, guard=_LeftDuringCommit(5)),
            _ctx(),
            access_point_id=ap,
            request_id="late",
            actor="t",
            credential=CredentialInput(card="C-1"),
        )
    assert result.decision == "allow"  # what was decided; nobody received it
    with store.session() as s:
        ev = s.scalars(select(AccessEvent).where(AccessEvent.request_id == "late")).one()
        assert ev.outcome == "abandoned"
        entry = s.scalars(
            select(AuditEntry).where(AuditEntry.operation == "decision_abandoned")
        ).one()
        assert entry.details["event_id"] == ev.id and entry.details["decided"] == "allow"
        assert audit.verify(s).ok


def _offline_decisions(store, tmp_path, ap, n: int) -> Journal:
    snap = Snapshot()
    with store.session() as s:
        snap.load_all(s)
    journal = Journal(tmp_path / "j.sqlite", "g-test")
    for i in range(n):
        r = decide(
            SnapshotFacts(snap, journal, Deadline(5)),
            _ctx(),
            access_point_id=ap,
            request_id=f"off-{i}",
            actor="t",
            credential=CredentialInput(card="C-1"),
        )
        assert r.decision == "allow"
    return journal


def test_journal_is_private_chained_and_a_tampered_one_is_refused(store, site, tmp_path):
    _, ap, _ = site
    journal = _offline_decisions(store, tmp_path, ap, 3)
    assert (journal.path.stat().st_mode & 0o777) == 0o600
    assert journal.depth == 3
    conn = sqlite3.connect(journal.path)
    conn.execute("UPDATE entries SET body = replace(body, '\"allow\"', '\"deny\"') WHERE seq = 2")
    conn.commit()
    conn.close()
    with pytest.raises(RuntimeError, match="altered"):
        merge(journal, store.session)
    assert _count(store, OfflineMerge) == 0


def test_merge_is_exactly_once_even_when_run_again_after_a_crash(store, site, tmp_path):
    _, ap, _ = site
    journal = _offline_decisions(store, tmp_path, ap, 7)
    copy = tmp_path / "copy.sqlite"
    journal.close()
    shutil.copyfile(journal.path, copy)  # as if the gate died before emptying its journal
    journal = Journal(journal.path, "g-test")
    first = merge(journal, store.session, batch=3)
    assert (first.merged, first.batches, journal.depth) == (7, 3, 0)
    again = merge(Journal(copy, "g-test"), store.session, batch=3)
    assert (again.merged, again.skipped) == (0, 7)
    for i in range(7):
        assert _count(store, AccessEvent, AccessEvent.request_id == f"off-{i}") == 1
    with store.session() as s:
        assert audit.verify(s).ok
        ops = s.scalars(select(AuditEntry.operation).order_by(AuditEntry.seq)).all()
        assert ops.count("offline_merge") == 3  # each batch audited, none for the re-run
        details = s.scalars(
            select(AuditEntry.details).where(AuditEntry.operation == "match_decision")
        ).all()
        offline = [d for d in details if d.get("offline")]
        assert [d["journal_seq"] for d in offline] == list(range(1, 8))  # in journal order
