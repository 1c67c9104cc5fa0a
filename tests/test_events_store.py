"""The outbox in the store, on SQLite and PostgreSQL: a row exactly when the access event
commits, pending per destination, acknowledged once, purged when every destination has it."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import func, select
from store_support import *  # noqa: F403

from facegate import domain
from facegate.domain.credentials import card_for
from facegate.domain.events import (
    expired_undelivered,
    mark_delivered,
    outbox_backlog,
    pending_events,
    purge_outbox,
    record_access_event_in_tx,
)
from facegate.store.models import EventOutbox


def _site(store, settings):
    with store.session() as s:
        init = domain.init_site(s, settings, actor="op", site_name="Garden")
        ap = domain.add_access_point(s, actor="op", name="Door", kind="door", methods=["card"])
        return init.site_id, ap.id


def _record(s, site_id, ap_id, outcome="allow", **kw):
    e = record_access_event_in_tx(
        s, site_id=site_id, access_point_id=ap_id, method="card", outcome=outcome, **kw
    )
    return e


def test_outbox_follows_the_transaction_and_each_destination(store, settings):
    site_id, ap = _site(store, settings)
    with store.session() as s:
        _record(s, site_id, ap, request_id="r1")
        s.rollback()  # the decision did not commit: nothing to publish either
        assert s.execute(select(func.count(EventOutbox.id))).scalar() == 0
        events = [_record(s, site_id, ap, request_id=f"r{i}", score=0.93) for i in range(3)]
        s.commit()
    with store.session() as s:
        a = pending_events(s, "dest-a")
        assert [i.event_id for i in a] == [e.id for e in events]
        assert all("0.93" not in i.payload for i in a)  # the score never leaves
        assert [json.loads(i.payload)["request_id"] for i in a] == ["r0", "r1", "r2"]
        mark_delivered(s, "dest-a", [a[0].id, a[1].id])
    with store.session() as s:
        assert [i.event_id for i in pending_events(s, "dest-a")] == [events[2].id]
        assert outbox_backlog(s, "dest-b") == 3  # another destination keeps its own count
        mark_delivered(s, "dest-a", [a[2].id])
        mark_delivered(s, "dest-b", [a[0].id])
    with store.session() as s:
        # Only the row both destinations acknowledged goes; the rest wait for dest-b.
        assert purge_outbox(s, ["dest-a", "dest-b"], timedelta(hours=1)) == 1
        assert outbox_backlog(s, "dest-b") == 2 and outbox_backlog(s, "dest-a") == 0
        assert expired_undelivered(s, ["dest-a", "dest-b"], timedelta(hours=1)) == 0
        assert expired_undelivered(s, ["dest-a", "dest-b"], timedelta(seconds=-1)) == 2


def test_card_for_is_the_card_valid_here_now(store, settings):
    site_id, ap = _site(store, settings)
    with store.session() as s:
        other = domain.add_access_point(s, actor="op", name="Gym", kind="door", methods=["card"])
        pid = domain.add_person(s, actor="op", category="resident", site_id=site_id).id
        assert card_for(s, pid, ap) is None
        domain.issue_card(
            s, actor="op", person_id=pid, card_number="555", access_point_ids=[other.id]
        )
        assert card_for(s, pid, ap) is None  # valid at the gym only
        domain.issue_card(s, actor="op", person_id=pid, card_number="777")
        assert card_for(s, pid, ap) == "777" and card_for(s, pid, other.id) == "555"


def test_two_gate_processes_on_postgresql_publish_each_event_once(store_pg_schema, tmp_path):
    """Several ``facegate serve`` processes share one PostgreSQL database: each runs a relay
    for the same destination, and still every event reaches the subscriber once."""
    import secrets as _secrets

    from events_support import Mosquitto, Subscriber, wait_until
    from sqlalchemy import create_engine, text

    from facegate.audit import GENESIS
    from facegate.config import Settings
    from facegate.edge.events import relay_from_settings
    from facegate.store.db import Store, normalize_url

    engine = create_engine(normalize_url(store_pg_schema))
    with engine.begin() as conn:  # a fresh schema state, as the db_url fixture leaves it
        for table in reversed(EventOutbox.metadata.sorted_tables):
            conn.execute(table.delete())
        conn.execute(
            text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h)"), {"h": GENESIS}
        )
    engine.dispose()
    settings = Settings(data_dir=tmp_path / "d", db_url=store_pg_schema)
    stores = [Store(store_pg_schema), Store(store_pg_schema)]
    broker = Mosquitto(tmp_path / "mq")
    broker.start()
    prefix = f"fgpg{_secrets.token_hex(4)}"
    url = f"mqtt://127.0.0.1:{broker.port}/{prefix}"
    sub = Subscriber("127.0.0.1", broker.port, [f"{prefix}/+/+/event"])
    relays = [
        relay_from_settings(settings.model_copy(update={"events": [url]}), st.session)
        for st in stores
    ]
    try:
        site_id, ap = _site(stores[0], settings)
        for r in relays:
            r.start()
        for batch in range(4):
            with stores[batch % 2].session() as s:
                for i in range(25):
                    _record(s, site_id, ap, request_id=f"b{batch}-{i}")
                s.commit()
            for r in relays:
                r.wake()
        assert wait_until(lambda: len(sub.events()) >= 100, 60)
        with stores[0].session() as s:
            assert wait_until(lambda: outbox_backlog(s, relays[0].sinks[0].key) == 0, 30)
        with stores[1].session() as s:
            _record(s, site_id, ap, request_id="marker")
            s.commit()
        assert wait_until(lambda: any(e["request_id"] == "marker" for e in sub.events()), 30)
    finally:
        for r in relays:
            r.stop()
        sub.close()
        broker.stop()
        for st in stores:
            st.dispose()
    ids = [e["event_id"] for e in sub.events()]
    assert len(ids) == len(set(ids)) == 101
    assert sum(r.delivered[r.sinks[0].key] for r in relays) == 101
