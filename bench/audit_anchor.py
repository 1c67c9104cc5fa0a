"""The audit tamper cases of issue 13 item 17, before and after anchoring, and the cost of
anchoring on the hot path.

    PYTHONPATH=src .venv/bin/python bench/audit_anchor.py [--pg postgresql://...]

For every tamper case of ``tests/test_audit_anchor.py``: what the bare hash chain says (what
``facegate audit verify`` said before the anchor) and what the anchored verification says.
Then the time of N appends (one commit each) with and without the seal and checkpoints.
Timings are wall-clock on whatever machine runs this; a loaded machine gives larger numbers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from facegate import audit, domain  # noqa: E402
from facegate.audit import anchor as audit_anchor  # noqa: E402
from facegate.config import Settings  # noqa: E402
from facegate.store.crypto import load_keyring  # noqa: E402
from facegate.store.db import Store  # noqa: E402


def build(tmp: Path, url: str) -> tuple[Settings, Store]:
    from store_support import FakePipeline, face_image, publish_complete_notice
    from test_audit_anchor import FILLER

    settings = Settings(data_dir=tmp, db_url=url)
    keyring = load_keyring(settings, create=True)
    store = Store(url)
    audit_anchor.ensure(settings, store)
    pipe = FakePipeline()
    with store.session() as s:
        domain.init_site(s, settings, actor="op", operator_name="ACME")
        domain.add_access_point(s, actor="op", name="Gate", kind="gate", methods=["face", "qr"])
        publish_complete_notice(s, settings)
        for ident in (31, 32):
            p = domain.add_person(s, actor="op", category="resident")
            domain.record_consent(s, actor="op", person_id=p.id)
            domain.enroll(s, keyring, pipe, actor="op", person_id=p.id, images=[face_image(ident)])
        for i in range(FILLER):
            audit.append(s, actor="op", operation="x", purpose="t", outcome="ok", details={"i": i})
        s.commit()
        assert audit.verify(s).ok
    return settings, store


def fresh_sqlite(tmp: Path) -> str:
    return f"sqlite:///{tmp / 'facegate.sqlite'}"


def tamper_table(pg: str | None) -> None:
    from test_audit_anchor import CASES

    print(f"{'tamper case':50} {'bare chain (before)':22} anchored (after)")
    detected = 0
    for name, (tamper, _kinds) in CASES.items():
        with tempfile.TemporaryDirectory() as d:
            url = fresh_sqlite(Path(d)) if pg is None else pg
            if pg is not None:
                _empty_pg(pg)
            _, store = build(Path(d), url)
            with store.engine.begin() as conn:
                tamper(conn)
            bare = Store(url)
            with bare.session() as s:
                before = audit.verify(s, check_records=False)
            bare.dispose()
            with store.session() as s:
                after = audit.verify(s)
            store.dispose()
            detected += not after.ok
            was = "intact" if before.ok else "broken"
            print(f"{name:50} {was:22} {after.kind or 'INTACT'}")
    print(f"detected after anchoring: {detected} of {len(CASES)}")


def _empty_pg(url: str) -> None:
    from sqlalchemy import create_engine, text

    from facegate.store.db import normalize_url
    from facegate.store.models import Base

    Store(url).dispose()
    engine = create_engine(normalize_url(url))
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
        conn.execute(
            text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h)"),
            {"h": audit.GENESIS},
        )
    engine.dispose()


def hot_path(n: int) -> None:
    for anchored in (False, True):
        with tempfile.TemporaryDirectory() as d:
            settings = Settings(data_dir=Path(d), audit_checkpoint_seconds=3600)
            store = Store(settings.database_url)
            if anchored:
                audit_anchor.ensure(settings, store)
            times = []
            with store.session() as s:
                for _ in range(n):
                    t0 = time.perf_counter()
                    audit.append(s, actor="op", operation="x", purpose="t", outcome="ok")
                    s.commit()
                    times.append(time.perf_counter() - t0)
            lines = len(settings.audit_checkpoint_path.read_bytes().splitlines()) if anchored else 0
            store.dispose()
            label = "sealed + checkpoint every 100" if anchored else "bare chain"
            med, mean = statistics.median(times) * 1e3, statistics.mean(times) * 1e3
            print(
                f"{label:32} {n} appends, one commit each: median {med:.3f} ms, mean {mean:.3f} ms"
                + (f"; {lines} checkpoint lines" if anchored else "")
            )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg", help="PostgreSQL URL of an empty scratch schema (else SQLite)")
    ap.add_argument("--appends", type=int, default=2000)
    args = ap.parse_args()
    tamper_table(args.pg)
    hot_path(args.appends)


if __name__ == "__main__":
    main()
