"""Issue 18 figures: decision latency during each database fault, journal drain time, journal size.

Runs a PostgreSQL of its own (initdb/pg_ctl from /usr/lib/postgresql/15/bin on a free port,
as user postgres when run as root) and one real gate server process (the small fake face
pipeline of the tests: model time is not what is measured here).

    .venv/bin/python bench/offline_bench.py [--decisions 100] [--drain 1000 50000]

Prints, per phase (database up, stopped, frozen with SIGSTOP, backends killed): card and face
decision latency p50/p99 as the door controller sees it (HTTP round trip) and how many were
answered; then, for each drain size, the time from the database coming back to the last
offline decision merged into it, and the journal's size per 10,000 decisions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import shutil
import sqlite3
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from offline_support import PgServer, frame_bytes, wait_for  # noqa: E402
from test_offline import Site  # noqa: E402

from facegate.access.journal import Journal  # noqa: E402
from facegate.access.snapshot import AccessPointCopy  # noqa: E402


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def server_ms(gate, start_line: int) -> tuple[list[float], int]:
    """The gate's own time per decide request (its access log), from ``start_line`` on."""
    lines = gate.log.read_text().splitlines()
    out = []
    for line in lines[start_line:]:
        if line.startswith("{") and '"/v1/access-points/{access_point_id}/decide"' in line:
            out.append(float(json.loads(line)["ms"]))
    return out, len(lines)


def run_phase(site: Site, gate, n: int, label: str) -> None:
    _, first = server_ms(gate, 0)
    key = site.setup.keys["gate"]
    url = f"{gate.base}/v1/access-points/{site.setup.ap_main}/decide"
    for kind in ("card", "face"):
        lat, codes = [], {}
        for _ in range(n):
            headers = {"X-API-Key": key, "X-Request-Id": secrets.token_hex(8)}
            t0 = time.perf_counter()
            try:
                if kind == "card":
                    r = httpx.post(url, json={"card": "CARD-alice"}, headers=headers, timeout=5)
                else:
                    files = [("frame", ("f.raw", frame_bytes(1), "application/octet-stream"))]
                    r = httpx.post(url, files=files, headers=headers, timeout=5)
                code = r.status_code
            except httpx.TimeoutException:
                code = "timeout"
            lat.append((time.perf_counter() - t0) * 1000)
            codes[code] = codes.get(code, 0) + 1
        srv, first = server_ms(gate, first)
        print(
            f"{label:<18} {kind:<5} n={n:<4} client p50={pct(lat, 0.5):6.1f} "
            f"p99={pct(lat, 0.99):6.1f} ms | gate p50={pct(srv, 0.5):6.1f} "
            f"p99={pct(srv, 0.99):6.1f} max={max(srv, default=0):6.1f} ms | status={codes}"
        )


def fill_journal(path: Path, site: Site, n: int) -> float:
    """Append n card decisions as the gate does (fsync each); returns seconds taken."""
    j = Journal(path, "bench", max_events=10_000_000)
    ap = AccessPointCopy(site.setup.ap_main, site.setup.site_id, ("card",), False)
    t0 = time.perf_counter()
    for i in range(n):
        j.append(
            {
                "ap": ap,
                "method": "card",
                "outcome": "allow",
                "reason": "ok",
                "subject": site.people["alice"],
                "score": None,
                "request_id": f"bench-{i}",
                "actor": "api_key:bench",
                "operator": None,
            },
            effects=[],
        )
    took = time.perf_counter() - t0
    j.close()
    return took


def journal_count(path: Path) -> int:
    conn = sqlite3.connect(path, timeout=5)
    try:
        return int(conn.execute("SELECT count(*) FROM entries").fetchone()[0])
    finally:
        conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--decisions", type=int, default=100)
    ap.add_argument("--drain", type=int, nargs="*", default=[1000, 50000])
    args = ap.parse_args()
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="fg-offline-bench-"))
    pg = PgServer()
    try:
        site = Site(pg, root)
        gate = site.gate("bench", FACEGATE_DECIDE_DEADLINE_MS="1000")
        try:
            print("latency as the door controller sees it (1 s deadline; loaded machine):")
            run_phase(site, gate, args.decisions, "database up")
            pg.stop()
            wait_for(lambda: gate.health().json()["status"] == "offline", 15, "offline")
            run_phase(site, gate, args.decisions, "database stopped")
            pg.start()
            wait_for(lambda: gate.health().json()["status"] == "ok", 60, "online")
            pg.freeze()
            run_phase(site, gate, args.decisions, "database frozen")
            pg.thaw()
            wait_for(lambda: gate.health().json()["status"] == "ok", 60, "online")
            # Backends killed every 10 decisions, while deciding.
            import threading

            stop = threading.Event()

            def killer() -> None:
                while not stop.wait(0.5):
                    with contextlib.suppress(Exception):
                        pg.kill_backends()

            t = threading.Thread(target=killer, daemon=True)
            t.start()
            run_phase(site, gate, args.decisions, "backends killed")
            stop.set()
            t.join()
            wait_for(lambda: gate.health().json()["status"] == "ok", 60, "online")

            journal = gate.data_dir / "offline-journal.sqlite"
            for n in args.drain:
                pg.stop()
                wait_for(lambda: gate.health().json()["status"] == "offline", 15, "offline")
                _checkpoint(journal)
                before = journal.stat().st_size
                took = fill_journal(journal, site, n)
                peak = journal.stat().st_size + _wal(journal) - before
                _checkpoint(journal)
                size = journal.stat().st_size - before
                print(
                    f"journal: {n} offline decisions appended in {took:.1f} s "
                    f"({took / n * 1000:.2f} ms each, fsync included); "
                    f"{size / n * 10_000 / 1e6:.2f} MB per 10,000 in the file "
                    f"(peak with its WAL {peak / n * 10_000 / 1e6:.2f} MB per 10,000)"
                )
                t0 = time.perf_counter()
                pg.start()
                back = time.perf_counter()
                wait_for(lambda: journal_count(journal) == 0, 3600, "journal drained")
                done = time.perf_counter()
                print(
                    f"drain: {n} offline decisions merged in {done - back:.1f} s after the "
                    f"database was back ({n / (done - back):.0f} events/s; pg start "
                    f"{back - t0:.1f} s)"
                )
                wait_for(lambda: gate.health().json()["status"] == "ok", 60, "online")
        finally:
            gate.stop()
            site.close()
    finally:
        pg.destroy()
        shutil.rmtree(root, ignore_errors=True)


def _checkpoint(path: Path) -> None:
    conn = sqlite3.connect(path, timeout=5)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def _wal(path: Path) -> int:
    wal = Path(str(path) + "-wal")
    return wal.stat().st_size if wal.exists() else 0


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # clean up the cluster and gate
    main()
