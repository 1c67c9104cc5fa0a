"""Events through the outbox to Mosquitto: throughput and decision-to-publish delay.

    PYTHONPATH=src:tests .venv/bin/python bench/events_bench.py --backlog 5000 --decisions 300

Starts its own Mosquitto on a free port (never the machine's), and a gate server on a fresh
SQLite data directory with ``--events mqtt://127.0.0.1:PORT/bench``.

1. Throughput: ``--backlog`` access events are recorded while the relay is not running
   (as after a broker outage), then the relay starts; events/s = backlog / time until a
   subscriber has received them all (publish, PUBACK, marking delivered, per batch of 100).
2. Delay: ``--decisions`` card decisions through the HTTP API one after another; for each,
   the delay from the event's ``time`` (set in the deciding transaction, before its commit)
   to the subscriber receiving it. p50/p99 printed. Same clock: one machine.

Figures depend on the machine's load; this machine is shared by several agents.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from events_support import Mosquitto, Subscriber, gate_server, wait_until

from facegate.domain.events import record_access_event_in_tx
from facegate.edge.events import relay_from_settings
from facegate.store.db import Store


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backlog", type=int, default=5000)
    ap.add_argument("--decisions", type=int, default=300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        broker = Mosquitto(tmp_path / "mq")
        broker.start()
        url = f"mqtt://127.0.0.1:{broker.port}/bench"
        try:
            sub = Subscriber("127.0.0.1", broker.port, ["bench/+/+/event"])
            arrivals: dict[str, float] = {}

            def on_message(client, userdata, msg):
                import json

                arrivals[json.loads(msg.payload)["request_id"]] = time.time()

            sub.client.on_message = on_message

            # 1. throughput from a backlog
            with gate_server(tmp_path, []) as gate:
                store = Store(gate.settings.database_url)
                with store.session() as s:
                    for i in range(args.backlog):
                        record_access_event_in_tx(
                            s,
                            site_id=gate.site_id,
                            access_point_id=gate.ap,
                            method="card",
                            outcome="allow",
                            person_pseudonym=gate.person,
                            request_id=f"backlog-{i}",
                        )
                        if i % 500 == 499:
                            s.commit()
                    s.commit()
                settings = gate.settings.model_copy(update={"events": [url]})
                relay = relay_from_settings(settings, store.session)
                t0 = time.perf_counter()
                relay.start()
                assert wait_until(lambda: len(arrivals) >= args.backlog, 600, 0.01)
                took = time.perf_counter() - t0
                relay.stop()
                store.dispose()
            print(
                f"throughput: {args.backlog} events from the outbox to Mosquitto in "
                f"{took:.2f} s = {args.backlog / took:.0f} events/s"
            )

            # 2. delay from decision to publish
            arrivals.clear()
            delays = []
            with gate_server(tmp_path / "b", [url]) as gate:
                sent = {}
                for _ in range(args.decisions):
                    r = gate.decide(gate.card)
                    sent[r["request_id"]] = True
                assert wait_until(lambda: all(k in arrivals for k in sent), 120, 0.01)
                store = Store(gate.settings.database_url)
                with store.session() as s:
                    from sqlalchemy import select

                    from facegate.store.models import AccessEvent

                    rows = s.execute(select(AccessEvent.request_id, AccessEvent.occurred_at))
                    for rid, at in rows:
                        if rid in arrivals:
                            delays.append((arrivals[rid] - at.timestamp()) * 1000)
                store.dispose()
            delays.sort()
            p = statistics.quantiles(delays, n=100)
            print(
                f"delay decision -> subscriber ({len(delays)} decisions, one at a time): "
                f"p50 {p[49]:.1f} ms, p99 {p[98]:.1f} ms, max {delays[-1]:.1f} ms"
            )
            print(f"(measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on a shared, loaded machine)")
            sub.close()
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
