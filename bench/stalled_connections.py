"""/healthz and card decisions of a real ``facegate serve`` under thousands of stalled connections.

    PYTHONPATH=src python bench/stalled_connections.py [--stalled 2000]
    PYTHONPATH=src python bench/stalled_connections.py --src ../main/src   # before the fix

Opens ``--stalled`` connections that stall in turn: silent after connecting, half a request
line, or an upload's headers and a few bytes of its body (with a valid gate key). While they
are open it times 20 /healthz requests and 20 card decisions (a new connection each), then
counts how many of the stalled connections the server has closed 15, 45 and 75 s later
(issue 13 item 4: header deadline 10 s, body deadline 30 s, keep-alive 5 s by default).
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hostile_support import start_server, stop_server  # noqa: E402


def stall(port: int, kind: int, key: str, ap: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if kind == 1:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    elif kind == 2:
        s.sendall(
            f"POST /v1/access-points/{ap}/decide HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n"
            "Content-Type: image/jpeg\r\nContent-Length: 500000\r\n\r\n".encode()
            + b"\xff\xd8" * 10
        )
    s.setblocking(False)
    return s


def closed_by_server(s: socket.socket) -> bool:
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def timed(fn, n: int = 20) -> dict[str, object]:
    times, errors = [], []
    for _ in range(n):
        t = time.perf_counter()
        try:
            status = fn()
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        dt = (time.perf_counter() - t) * 1000
        if status == 200:
            times.append(dt)
        else:
            errors.append(str(status))
    return {
        "ok": len(times),
        "median_ms": round(statistics.median(times), 1) if times else None,
        "max_ms": round(max(times), 1) if times else None,
        "errors": errors,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stalled", type=int, default=2000)
    ap.add_argument("--src", type=Path, default=None, help="serve this source tree instead")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.stalled + 1024), hard))
    with tempfile.TemporaryDirectory() as tmp:
        served = start_server(Path(tmp) / "data", src=args.src, log=Path(tmp) / "server.log")
        port = int(served.base.rsplit(":", 1)[1])
        socks: list[socket.socket] = []
        try:
            with httpx.Client(base_url=served.base, timeout=60) as c:
                r = c.post(
                    f"/v1/persons/{served.person}/credentials",
                    json={"kind": "card", "card_number": "C-100"},
                    headers={"X-API-Key": served.admin_key},
                )
                r.raise_for_status()

            def health() -> int:
                with httpx.Client(base_url=served.base, timeout=60) as c:
                    return c.get("/healthz").status_code

            def card() -> int:
                with httpx.Client(base_url=served.base, timeout=60) as c:
                    return c.post(
                        f"/v1/access-points/{served.ap}/decide",
                        json={"card": "C-100"},
                        headers={"X-API-Key": served.gate_key},
                    ).status_code

            idle = {"healthz": timed(health), "card": timed(card)}
            t0 = time.perf_counter()
            refused = 0
            for i in range(args.stalled):
                try:
                    socks.append(stall(port, i % 3, served.gate_key, served.ap))
                except OSError:
                    refused += 1
            opened = time.perf_counter() - t0
            loaded = {"healthz": timed(health), "card": timed(card)}
            since = time.perf_counter() - t0
            closed = {}
            for at in (15, 45, 75):
                time.sleep(max(0.0, at - (time.perf_counter() - t0)))
                closed[f"after_{at}s"] = sum(closed_by_server(s) for s in socks)
            print(
                json.dumps(
                    {
                        "server": str(args.src or "this checkout"),
                        "stalled": args.stalled,
                        "connect_refused": refused,
                        "seconds_to_open": round(opened, 1),
                        "idle": idle,
                        "under_stalled": loaded,
                        "measured_within_s": round(since, 1),
                        "closed_by_server": closed,
                    },
                    indent=1,
                )
            )
        finally:
            for s in socks:
                s.close()
            stop_server(served)


if __name__ == "__main__":
    main()
