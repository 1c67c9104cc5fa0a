"""kill -9 in the middle of an enrollment leaves the store consistent: both the templates and
their audit entry, or neither, and an intact chain. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from store_support import *  # noqa: F403
from store_support import face_image, publish_complete_notice

from facegate import audit, domain
from facegate.store.models import AuditEntry, ChangeLog, PersonKey, Template

CHILD = r"""
import os, sys, time
from sqlalchemy import event
sys.path.insert(0, sys.argv[4])
from store_support import FakePipeline, face_image
from facegate import domain
from facegate.config import Settings
from facegate.store.crypto import load_keyring
from facegate.store.db import Store

url, data_dir, person_id, _, point, marker = sys.argv[1:7]
settings = Settings(data_dir=data_dir, db_url=url)
store = Store(url)
session = store.session()

from facegate.store.models import AuditEntry

flushed_enrollment = []

def watch_flush(sess, _ctx):
    # Only the commit that writes the enrollment counts (it flushed the enroll audit entry).
    if any(isinstance(o, AuditEntry) and o.operation == "enroll" and o.outcome == "ok"
           for o in sess.new):
        flushed_enrollment.append(True)

def stop_here(sess):
    if flushed_enrollment:
        open(marker, "w").write(str(os.getpid()))
        time.sleep(120)  # the parent kills us with SIGKILL here

event.listen(session, "after_flush", watch_flush)
event.listen(session, point, stop_here)
domain.enroll(session, load_keyring(settings), FakePipeline(), actor="crash-test",
              person_id=person_id, images=[face_image(50), face_image(50, 1)])
"""


def _counts(store, person_id):
    with store.session() as s:
        return (
            s.scalar(select(func.count()).select_from(Template)),
            s.get(PersonKey, person_id) is not None,
            s.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.operation == "enroll", AuditEntry.subject == person_id)
            ),
            s.scalar(
                select(func.count()).select_from(ChangeLog).where(ChangeLog.kind == "enrolled")
            ),
            audit.verify(s),
        )


@pytest.mark.parametrize("point", ["before_commit", "after_commit"])
def test_sigkill_during_enrollment(store, settings, keyring, pipe, db_url, tmp_path, point):
    with store.session() as s:
        domain.init_site(s, settings, actor="op")
        domain.add_access_point(s, actor="op", name="Gate", kind="gate", methods=["face", "card"])
        publish_complete_notice(s, settings)
        p = domain.add_person(s, actor="op", category="resident")
        domain.record_consent(s, actor="op", person_id=p.id)
    marker = tmp_path / "paused"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            db_url,
            str(settings.data_dir),
            p.id,
            str(Path(__file__).parent),
            point,
            str(marker),
        ],
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, "the child ended before reaching the kill point"
            assert time.monotonic() < deadline, "the child never reached the kill point"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    templates, key, entries, changes, chain = _counts(store, p.id)
    assert chain.ok, chain.reason
    if point == "before_commit":  # neither the rows nor their audit entry
        assert (templates, key, entries, changes) == (0, False, 0, 0)
    else:  # both
        assert (templates, key, entries, changes) == (2, True, 1, 1)
    # The store is usable at once: no lock or half row left behind.
    with store.session() as s:
        domain.enroll(s, keyring, pipe, actor="op", person_id=p.id, images=[face_image(50, 2)])
        assert audit.verify(s).ok
