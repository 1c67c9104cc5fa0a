"""The durable outbox: a broker that is down loses nothing, and nothing is delivered twice.

The test runs its own Mosquitto on a free port (never the machine's), stops it between
decisions, starts it again, and counts every event the subscriber received by id."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta

import pytest
from events_support import Mosquitto, Subscriber, clear_retained, gate_server, wait_until
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from facegate.domain.events import (
    BIOMETRIC_FIELDS,
    EVENT_FIELDS,
    egress_safe,
    event_payload,
    outbox_backlog,
    payload_can_carry_biometric,
    payload_json,
    purge_outbox,
)
from facegate.edge.events import destination_key
from facegate.store.db import Store
from facegate.store.models import AccessEvent, EventOutbox


def _backlog(settings, url: str) -> int:
    store = Store(settings.database_url)
    try:
        with store.session() as s:
            return outbox_backlog(s, destination_key(url))
    finally:
        store.dispose()


def test_broker_down_and_back_every_event_delivered_exactly_once(tmp_path):
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    prefix = f"fgout{secrets.token_hex(4)}"
    url = f"mqtt://127.0.0.1:{broker.port}/{prefix}"
    # A persistent session: the broker queues for the subscriber while it is away.
    sub = Subscriber(
        "127.0.0.1", broker.port, [f"{prefix}/+/+/event"], client_id=prefix, persistent=True
    )
    try:
        with gate_server(tmp_path, [url], events_retry_max_s=0.5) as gate:
            before = [gate.decide(gate.card) for _ in range(5)]
            assert wait_until(lambda: len(sub.events()) == 5)
            assert wait_until(lambda: _backlog(gate.settings, url) == 0)

            broker.stop()
            during = [gate.decide(c) for c in [gate.card, "NOPE"] * 3 + [gate.card]]
            # Decisions go on while the broker is down; their events wait in the outbox.
            assert all(r["decision"] in ("allow", "deny") for r in during)
            assert _backlog(gate.settings, url) == len(during)

            broker.start()
            assert wait_until(lambda: _backlog(gate.settings, url) == 0, 60)
            # A marker after everything: MQTT keeps one publisher's order, so any duplicate
            # of an earlier event would arrive before it.
            marker = gate.decide(gate.card)
            assert wait_until(
                lambda: any(e["request_id"] == marker["request_id"] for e in sub.events()), 60
            )
        sent = [r["request_id"] for r in before + during + [marker]]
        # Every event arrived (a consumer de-duplicating by id sees each decision once) ...
        events = sub.events()
        assert sorted({e["request_id"] for e in events}) == sorted(sent)
        assert len({e["event_id"] for e in events}) == len(sent)
        # ... and facegate published each exactly once, in decision order: the broker's
        # first deliveries (its own re-sends to the subscriber after a restart carry DUP).
        # (Nothing was in flight when the broker stopped: the subscriber had all five.)
        firsts = [json.loads(p)["request_id"] for p in sub.first_deliveries]
        assert firsts == sent
    finally:
        sub.close()
        broker.stop()


def test_outbox_row_is_written_with_the_event_and_purged_once_delivered(tmp_path):
    # No destination configured: the relay is off, rows wait (and are kept bounded).
    with gate_server(tmp_path, []) as gate:
        gate.decide(gate.card)
        gate.decide("NOPE")
        store = Store(gate.settings.database_url)
        with store.session() as s:
            events = s.execute(select(AccessEvent).order_by(AccessEvent.id)).scalars().all()
            rows = s.execute(select(EventOutbox).order_by(EventOutbox.id)).scalars().all()
            assert [r.event_id for r in rows] == [e.id for e in events]
            assert [json.loads(r.payload) for r in rows] == [event_payload(e) for e in events]
            # Nothing delivered to a destination: a purge keeps them until ``keep`` passes.
            assert purge_outbox(s, ["d1"], timedelta(hours=1)) == 0
            assert purge_outbox(s, ["d1"], timedelta(seconds=-1)) == 2
            assert s.execute(select(func.count(EventOutbox.id))).scalar() == 0
        store.dispose()


# --- the payload is a whitelist: no payload can carry face data or a name -------------------

_ANY_TEXT = st.text(min_size=0, max_size=300)
_BLOBS = st.binary(min_size=1, max_size=512).map(lambda b: b.hex())


@settings(max_examples=300, deadline=None)
@given(
    subject=st.one_of(st.none(), _ANY_TEXT, _BLOBS),
    reason=st.one_of(_ANY_TEXT, _BLOBS, st.just("manual_override:Mr Wang from 12-3")),
    request_id=st.one_of(_ANY_TEXT, _BLOBS),
    method=st.one_of(st.sampled_from(["face", "card+face", "staffed"]), _ANY_TEXT),
    outcome=st.one_of(st.sampled_from(["allow", "deny"]), _ANY_TEXT),
    score=st.one_of(st.none(), st.floats(allow_nan=False)),
    operator=st.one_of(st.none(), _ANY_TEXT),
)
def test_no_payload_can_carry_biometric_data(
    subject, reason, request_id, method, outcome, score, operator
):
    from datetime import UTC, datetime

    event = AccessEvent(
        id=42,
        site_id="site-1",
        access_point_id="door-1",
        person_pseudonym=subject,
        method=method,
        outcome=outcome,
        reason=reason,
        score=score,
        request_id=request_id,
        operator=operator,
        occurred_at=datetime(2026, 12, 3, 10, 0, tzinfo=UTC),
    )
    payload = event_payload(event)
    assert tuple(payload) == EVENT_FIELDS  # exactly the whitelist, in order
    assert not set(payload) & BIOMETRIC_FIELDS
    for key, value in payload.items():
        # Every value is an int id or a short string of a closed alphabet: no float (a
        # score), no bytes, no list (a vector), no free text (a name).
        assert value is None or isinstance(value, (int, str)), key
        if isinstance(value, str):
            assert len(value) <= 81 and value.isascii(), (key, value)
            assert " " not in value, (key, value)
    assert len(payload_json(payload)) < 600
    assert egress_safe(payload_json(payload))  # what is built always passes the egress check
    if reason.startswith("manual_override"):
        assert payload["reason"] == "manual_override"  # the operator's note stays home
    assert payload["decision"] in ("allow", "deny")


def test_the_schema_itself_cannot_carry_biometric_data():
    assert payload_can_carry_biometric() is False
    # The same test flags a payload that would: a field named like face data, or a field
    # without a closed type.
    assert payload_can_carry_biometric((*EVENT_FIELDS, "template")) is True
    assert payload_can_carry_biometric((*EVENT_FIELDS, "comment")) is True


@pytest.mark.parametrize("blob_len", [512, 1024])
def test_template_sized_blob_never_reaches_the_payload(blob_len):
    # A 256-D float32 template is 1 KiB; hex or base64 of it is longer than any field allows.
    from datetime import UTC, datetime

    blob = secrets.token_hex(blob_len)
    event = AccessEvent(
        id=1,
        site_id="s",
        access_point_id="a",
        person_pseudonym=blob,
        method="face",
        outcome="allow",
        reason=blob,
        request_id=blob,
        score=0.97,
        occurred_at=datetime.now(UTC),
    )
    text = payload_json(event_payload(event))
    assert blob[:80] not in text and "0.97" not in text


def test_runtime_egress_check_refuses_anything_but_the_whitelist(tmp_path):
    """A row that is not the whitelisted payload (written by anything but the domain
    function) never leaves; the events around it still do."""
    import base64

    from events_support import MACHINE_BROKER

    host, port = MACHINE_BROKER
    prefix = f"fgegress{secrets.token_hex(4)}"
    sub = Subscriber(host, port, [f"{prefix}/+/+/event"])
    try:
        url = f"mqtt://{host}:{port}/{prefix}"
        with gate_server(tmp_path, [url], events_discovery=False) as gate:
            first = gate.decide(gate.card)
            assert wait_until(lambda: len(sub.events()) == 1)
            good = json.loads(sub.on("/event")[0][1])
            template = base64.b64encode(bytes(range(256)) * 4).decode()
            leaky = {**good, "event_id": 10**9, "template": template}
            store = Store(gate.settings.database_url)
            with store.session() as s:
                s.add(
                    EventOutbox(
                        event_id=10**9,
                        site_id=gate.site_id,
                        access_point_id=gate.ap,
                        payload=json.dumps(leaky),
                    )
                )
                s.commit()
            store.dispose()
            last = gate.decide(gate.card)
            assert wait_until(lambda: len(sub.events()) == 2)
        got = sub.events()
        assert [e["request_id"] for e in got] == [first["request_id"], last["request_id"]]
        assert all(template[:40] not in p.decode() for _, p, _ in sub.messages)
        assert not egress_safe(json.dumps(leaky))
        assert not egress_safe(json.dumps({**good, "subject": "Zhang Wei"}))
        assert not egress_safe(json.dumps({**good, "reason": 0.97}))
        assert egress_safe(json.dumps(good, separators=(",", ":")))
    finally:
        sub.close()
        clear_retained(host, port, [f"{prefix}/status"])
