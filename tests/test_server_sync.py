"""The PostgreSQL change listener: wakes on NOTIFY, and after losing its connection it
reconnects and catches up on what was committed meanwhile (no notification needed)."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

import psycopg
import pytest
from conftest import TEST_PG
from test_server_infra import _Loader, _vec

from facegate.access.galleries import Change, GalleryEntry, GalleryService
from facegate.access.sync import ChangeListener

pytestmark = pytest.mark.pg


def wait_for(cond, timeout: float = 5.0) -> float:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "condition not reached"
        time.sleep(0.005)
    return time.monotonic() - t0


def test_listener_notify_then_reconnect_and_catch_up() -> None:
    loader = _Loader()
    loader.entries["p1"] = [GalleryEntry("p1", "t1", _vec(0), "m", None)]
    svc = GalleryService(loader, dim=8, model_id="m")
    svc.start()
    sg = svc.site("s1")
    channel = f"fg_test_{secrets.token_hex(4)}"
    # A long poll, so only a notification or a reconnect can trigger a catch-up here.
    listener = ChangeListener(TEST_PG, svc, channel=channel, reconnect_s=0.05, poll_s=30)
    listener.start()
    try:
        assert listener.connected.wait(5)
        # 1. NOTIFY wakes the listener: the withdrawal is applied at once.
        del loader.entries["p1"]
        loader.changes.append(Change(1, "s1", "p1", "withdrawn", datetime.now(UTC)))
        with psycopg.connect(TEST_PG, autocommit=True) as conn:
            conn.execute("SELECT pg_notify(%s, '1')", (channel,))
        assert wait_for(lambda: not sg.has_person("p1")) < 1.0
        # 2. The connection dies; a change is committed while it is away (no NOTIFY is sent).
        old_pid = listener.backend_pid
        with psycopg.connect(TEST_PG, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (old_pid,))
        loader.entries["p2"] = [GalleryEntry("p2", "t2", _vec(1), "m", None)]
        loader.changes.append(Change(2, "s1", "p2", "enrolled", datetime.now(UTC)))
        wait_for(lambda: sg.has_person("p2"))
        assert listener.reconnects >= 1 and listener.backend_pid != old_pid
        assert svc.last_seq == 2
    finally:
        listener.stop()
