"""Issue 13 item 3: a real ``facegate serve`` keeps its memory flat through a hostile upload
session (16-bit PNG bombs, 39 MP JPEG bursts, 16 MP PNGs, 50 MB bodies without a key).

Stated bound: after a warm-up, 200 hostile requests (4 at a time) grow the server's resident
memory by less than 150 MB. ``bench/hostile_uploads.py`` runs 1,000 and prints the figures.
"""

from __future__ import annotations

import time

from hostile_support import KINDS, hostile_session, start_server, stop_server

BOUND_MB = 150
# Two cheap refusals for each large-but-allowed image (those take ~1 s of CPU each).
MIX = (
    "enroll_png16bit_x5",
    "decide_jpeg39_x3",
    "persons_no_key_50mb",
    "enroll_png16bit_x5",
    "decide_png16mp",
    "persons_no_key_50mb",
)


def test_rss_stays_flat_through_200_hostile_uploads(tmp_path):
    served = start_server(tmp_path / "data", log=tmp_path / "server.log")
    try:
        warm = hostile_session(served, 2 * len(KINDS))  # every kind once or twice: lazy loads
        time.sleep(1)
        before = served.rss_mb
        run = hostile_session(served, 200, kinds=MIX)
        time.sleep(2)
        after = served.rss_mb
        statuses = run["statuses"]
        # Nothing hostile is a server error (503 busy is allowed: the pixel budget at work).
        bad = {k: v for k, v in statuses.items() if k.rsplit(":", 1)[1] in ("500", "502")}
        assert not bad, statuses
        assert all(
            k.endswith((":413", ":401")) or "closed" in k
            for k in statuses
            if "png16bit" in k or "no_key" in k
        ), statuses
        growth = after - before
        assert growth < BOUND_MB, (
            f"RSS grew {growth:.0f} MB ({before:.0f} -> {after:.0f}, peak "
            f"{run['peak_rss_mb']} MB) over 200 hostile requests; warm-up {warm}"
        )
    finally:
        stop_server(served)
