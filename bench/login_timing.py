"""Sign-in work for a known name with a wrong password vs a name that does not exist.

    PYTHONPATH=src python bench/login_timing.py [--n 30]

Issue 13 item 7: the answer must not reveal which user names exist, neither in its text
nor in the work done (a dummy argon2 verify stands in for the missing account). Throttling is
set out of the way here (high free-failure counts) so each attempt does the full check.
Prints the median and quartiles of each, in milliseconds, on an embedded SQLite store.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

from facegate import domain
from facegate.config import Settings
from facegate.domain import accounts
from facegate.errors import Unauthorized
from facegate.store.db import Store


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            web_login_max_failures=100,
            web_login_address_free_failures=1000,
        )
        store = Store(settings.database_url)
        with store.session() as s:
            domain.init_site(s, settings, actor="bench")
            code = accounts.issue_setup_code(s, settings, actor="bench")
            accounts.create_first_admin(
                s, username="boss", password="a long passphrase", setup_code=code
            )
        times: dict[str, list[float]] = {"known name": [], "unknown name": []}
        for i in range(args.n):
            for label, name in (("known name", "boss"), ("unknown name", f"nobody{i}")):
                with store.session() as s:
                    t0 = time.perf_counter()
                    with contextlib.suppress(Unauthorized):
                        accounts.authenticate(
                            s, settings, username=name, password="wrong guess", client="bench"
                        )
                    times[label].append((time.perf_counter() - t0) * 1000)
        store.dispose()
    for label, ts in times.items():
        q1, med, q3 = statistics.quantiles(ts, n=4)
        print(f"{label:13s} median {med:6.1f} ms  (quartiles {q1:.1f} .. {q3:.1f}, n={len(ts)})")


if __name__ == "__main__":
    main()
