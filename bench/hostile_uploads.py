"""RSS of a real ``facegate serve`` before and after a long hostile upload session.

    PYTHONPATH=src python bench/hostile_uploads.py [--requests 1000] [--concurrency 4]
    PYTHONPATH=src python bench/hostile_uploads.py --src ../main/src --requests 20   # before

Each request is one of: five 16-bit 6000x6600 PNGs (230 KB each) to the enroll route, a
burst of three 39 MP JPEGs to decide, one 16 MP PNG to decide, a 50 MB JSON body without a
key (issue 13 items 1 and 3). Prints the server's resident memory after a warm-up, its peak
during the session and after it, and how each kind of request was answered. ``--src`` runs
another source tree's server (e.g. the main checkout, before the fix). The images are
synthetic; the helpers are shared with tests/test_server_memory.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hostile_support import KINDS, hostile_session, payloads, start_server, stop_server  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--src", type=Path, default=None, help="serve this source tree instead")
    ap.add_argument("--kinds", nargs="*", default=list(KINDS), choices=KINDS)
    args = ap.parse_args()
    payloads()  # made before the server starts: the client's work is not timed
    with tempfile.TemporaryDirectory() as tmp:
        served = start_server(Path(tmp) / "data", src=args.src, log=Path(tmp) / "server.log")
        try:
            started = served.rss_mb
            warm = hostile_session(served, len(args.kinds), 1, tuple(args.kinds))
            time.sleep(1)
            before = served.rss_mb
            run = hostile_session(served, args.requests, args.concurrency, tuple(args.kinds))
            time.sleep(2)
            after = served.rss_mb
        finally:
            stop_server(served)
    print(
        json.dumps(
            {
                "server": str(args.src or "this checkout"),
                "rss_started_mb": round(started, 1),
                "rss_after_warm_up_mb": round(before, 1),
                "warm_up_peak_mb": warm["peak_rss_mb"],
                "session_peak_mb": run["peak_rss_mb"],
                "rss_after_session_mb": round(after, 1),
                "growth_mb": round(after - before, 1),
                "requests": run["requests"],
                "concurrency": args.concurrency,
                "seconds": run["seconds"],
                "statuses": run["statuses"],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
