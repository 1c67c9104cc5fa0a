"""The audit log cannot be rewritten unnoticed (issue 13 item 17).

An attacker with write access to the database (SQLite or PostgreSQL) but not to the audit key
tries the tamper cases of the issue: edit, delete, reorder, insert, truncate by 1/10/200 with
and without moving the head, recompute, reset... Every one must be detected, and the main
kinds (truncation, rewriting, insertion, reset) must be reported as such.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, select, text
from store_support import *  # noqa: F403
from store_support import face_image, publish_complete_notice
from typer.testing import CliRunner

from facegate import audit, domain
from facegate.audit import GENESIS, entry_hash
from facegate.audit import anchor as audit_anchor
from facegate.audit.anchor import AuditKey, verify_signature
from facegate.cli.main import app
from facegate.store.db import Store
from facegate.store.models import AuditEntry, AuditHead, Person

FILLER = 240  # entries appended after the people, so that 200 can be cut from the tail

T = AuditEntry.__table__
H = AuditHead.__table__


@pytest.fixture
def anchored(store, settings, keyring, pipe):
    """A data directory with its audit key and genesis checkpoint, two enrolled people and a
    few hundred more entries, checkpointed by an intact ``audit verify``."""
    audit_anchor.ensure(settings, store)
    with store.session() as s:
        domain.init_site(s, settings, actor="op", operator_name="ACME")
        domain.add_access_point(s, actor="op", name="Gate", kind="gate", methods=["face", "qr"])
        publish_complete_notice(s, settings)
        for ident in (31, 32):
            p = domain.add_person(
                s, actor="op", category="resident", name=f"Person {ident}", keyring=keyring
            )
            domain.record_consent(s, actor="op", person_id=p.id)
            imgs = [face_image(ident), face_image(ident, 1)]
            domain.enroll(s, keyring, pipe, actor="op", person_id=p.id, images=imgs)
        for i in range(FILLER):
            audit.append(
                s,
                actor="op",
                operation="config_read",
                purpose="test",
                outcome="ok",
                details={"i": i},
            )
        s.commit()
    with store.session() as s:
        good = audit.verify(s)
    assert good.ok and good.anchored, good
    assert good.checkpoint_seq == good.entries > FILLER
    return good.entries


# --- the attacker's tools: SQL on the database, the public hash recipe, no audit key -----------


def _rows(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(select(T).order_by(T.c.seq))]


def _fields(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("seq", "at", "actor", "operation", "subject", "purpose", "outcome", "details")
    return {k: (r[k] or {}) if k == "details" else r[k] for k in keys}


def _write_chain(
    conn: Connection,
    rows: list[dict[str, Any]],
    *,
    move_head: bool = True,
    recompute: bool = True,
    macs: str = "keep",
) -> None:
    """Replace the table with ``rows`` (renumbered 1..n), every hash recomputed so the chain
    is internally perfect, and the head moved to its end."""
    prev = GENESIS
    out = []
    for i, r in enumerate(rows, start=1):
        r = dict(r, seq=i) if recompute else dict(r)
        if recompute:
            r["prev_hash"] = prev
            r["hash"] = entry_hash(prev, _fields(r))
        if macs == "strip":
            r["mac"] = None
        elif macs == "forge":  # sealed with a key of the attacker's own
            r["mac"] = AuditKey(b"\x07" * 32).seal(r["hash"])
        prev = r["hash"]
        out.append(r)
    conn.execute(T.delete())
    if out:
        conn.execute(T.insert(), out)
    if move_head:
        last = out[-1] if out else {"seq": 0, "hash": GENESIS}
        conn.execute(H.update().values(seq=last["seq"], hash=last["hash"]))


def _new_row(after: dict[str, Any], **kw: Any) -> dict[str, Any]:
    row = dict(after, actor="op", operation="consent_record", outcome="ok", details={}, mac=None)
    return row | kw


def _truncate(n: int, move_head: bool) -> Callable[[Connection], None]:
    def go(conn: Connection) -> None:
        rows = _rows(conn)
        conn.execute(T.delete().where(T.c.seq > rows[-1]["seq"] - n))
        if move_head:
            last = rows[-1 - n]
            conn.execute(H.update().values(seq=last["seq"], hash=last["hash"]))

    return go


def _edit(conn: Connection) -> None:
    conn.execute(T.update().where(T.c.seq == 50).values(outcome="refused:nothing_happened"))


def _edit_details(conn: Connection) -> None:
    conn.execute(T.update().where(T.c.seq == 60).values(details={"i": -1}))


def _edit_rehash_one(conn: Connection) -> None:
    r = next(r for r in _rows(conn) if r["seq"] == 70)
    r["actor"] = "nobody"
    conn.execute(
        T.update()
        .where(T.c.seq == 70)
        .values(actor="nobody", hash=entry_hash(r["prev_hash"], _fields(r)))
    )


def _edit_recompute(macs: str) -> Callable[[Connection], None]:
    def go(conn: Connection) -> None:
        rows = _rows(conn)
        rows[40]["outcome"] = "refused:nothing_happened"
        _write_chain(conn, rows, macs=macs)

    return go


def _delete_middle(conn: Connection) -> None:
    conn.execute(T.delete().where(T.c.seq == 100))


def _delete_middle_recompute(conn: Connection) -> None:
    rows = _rows(conn)
    del rows[99]
    _write_chain(conn, rows)


def _swap(conn: Connection) -> None:
    conn.execute(T.update().where(T.c.seq == 80).values(seq=-1))
    conn.execute(T.update().where(T.c.seq == 81).values(seq=80))
    conn.execute(T.update().where(T.c.seq == -1).values(seq=81))


def _swap_recompute(conn: Connection) -> None:
    rows = _rows(conn)
    rows[79], rows[80] = rows[80], rows[79]
    _write_chain(conn, rows)


def _insert_middle(conn: Connection) -> None:
    rows = _rows(conn)
    rows.insert(120, _new_row(rows[119]))
    _write_chain(conn, rows)


def _append(move_head: bool) -> Callable[[Connection], None]:
    def go(conn: Connection) -> None:
        last = _rows(conn)[-1]
        row = _new_row(last, seq=last["seq"] + 1, prev_hash=last["hash"])
        row["hash"] = entry_hash(last["hash"], _fields(row))
        conn.execute(T.insert(), [row])
        if move_head:
            conn.execute(H.update().values(seq=row["seq"], hash=row["hash"]))

    return go


def _append_with_copied_seal(conn: Connection) -> None:
    rows = _rows(conn)
    last = rows[-1]
    row = _new_row(last, seq=last["seq"] + 1, prev_hash=last["hash"], mac=last["mac"])
    row["hash"] = entry_hash(last["hash"], _fields(row))
    conn.execute(T.insert(), [row])
    conn.execute(H.update().values(seq=row["seq"], hash=row["hash"]))


def _reset(conn: Connection) -> None:
    _write_chain(conn, [])


def _empty_keep_head(conn: Connection) -> None:
    conn.execute(T.delete())


def _rebuild_short(conn: Connection) -> None:
    """Empty the log and write a fresh, perfectly formed chain of five entries."""
    rows = _rows(conn)[:5]
    for r in rows:
        r["actor"] = "cli:someone"
    _write_chain(conn, rows, macs="strip")


def _head_hash(conn: Connection) -> None:
    conn.execute(H.update().values(hash="f" * 64))


def _cut_before_records(conn: Connection) -> None:
    """Cut the chain back to its first three entries (before any person) and recompute."""
    _write_chain(conn, _rows(conn)[:3])


CASES: dict[str, tuple[Callable[[Connection], None], set[str]]] = {
    "edit a row": (_edit, {"rewritten"}),
    "edit a row's details": (_edit_details, {"rewritten"}),
    "edit a row and recompute its own hash": (_edit_rehash_one, {"rewritten"}),
    "edit, recompute every later hash and the head": (_edit_recompute("keep"), {"rewritten"}),
    "edit, recompute, drop the seals": (_edit_recompute("strip"), {"rewritten", "inserted"}),
    "edit, recompute, seal with another key": (_edit_recompute("forge"), {"rewritten"}),
    "delete a middle row": (_delete_middle, {"deleted"}),
    "delete a middle row and recompute": (_delete_middle_recompute, {"rewritten"}),
    "reorder two rows": (_swap, {"rewritten"}),
    "reorder two rows and recompute": (_swap_recompute, {"rewritten"}),
    "insert a row in the middle and recompute": (_insert_middle, {"inserted"}),
    "append a well-formed row and move the head": (_append(True), {"inserted"}),
    "append a well-formed row, head untouched": (_append(False), {"inserted"}),
    "append a row with a copied seal": (_append_with_copied_seal, {"rewritten"}),
    "truncate 1, head untouched": (_truncate(1, False), {"truncated"}),
    "truncate 1 and move the head back": (_truncate(1, True), {"truncated"}),
    "truncate 10, head untouched": (_truncate(10, False), {"truncated"}),
    "truncate 10 and move the head back": (_truncate(10, True), {"truncated"}),
    "truncate 200, head untouched": (_truncate(200, False), {"truncated"}),
    "truncate 200 and move the head back": (_truncate(200, True), {"truncated"}),
    "reset: empty the table and the head": (_reset, {"reset"}),
    "empty the table, head untouched": (_empty_keep_head, {"reset"}),
    "rebuild a short well-formed chain": (_rebuild_short, {"rewritten", "inserted"}),
    "change the head hash": (_head_hash, {"rewritten"}),
    "cut back to before any person and recompute": (_cut_before_records, {"truncated"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_tamper_case_is_detected(case, anchored, store, settings):
    tamper, kinds = CASES[case]
    with store.engine.begin() as conn:
        tamper(conn)
    with store.session() as s:
        r = audit.verify(s)
    assert not r.ok, f"{case}: not detected"
    assert r.kind in kinds, f"{case}: reported as {r.kind}: {r.reason}"
    assert r.reason
    # A tampered chain is never checkpointed: verifying again still finds it.
    with store.session() as s:
        assert not audit.verify(s).ok


def test_reset_and_truncation_say_what_happened(anchored, store):
    with store.engine.begin() as conn:
        _truncate(10, True)(conn)
    with store.session() as s:
        r = audit.verify(s)
    assert r.kind == "truncated" and r.first_bad_seq == anchored - 9
    assert f"entries {anchored - 9} to {anchored} were removed" in r.reason
    with store.engine.begin() as conn:
        _reset(conn)
    with store.session() as s:
        r = audit.verify(s)
    assert r.kind == "reset" and "emptied" in r.reason and r.entries == 0
    assert r.counts.get("unaudited")  # and the people it says nothing about


def test_records_the_log_does_not_speak_for_are_findings(anchored, store):
    with store.engine.begin() as conn:
        row = dict(conn.execute(select(Person.__table__).limit(1)).one()._mapping)
        conn.execute(Person.__table__.insert(), [dict(row, id="p-smuggled")])
    with store.session() as s:
        r = audit.verify(s)
    assert not r.ok and r.kind == "unaudited"
    assert "person p-smuggled exists but no audit entry records them" in r.reason


def test_without_the_anchor_only_the_chain_is_checked(anchored, store, settings):
    """The same truncation goes unseen by the bare hash chain: the anchor is what finds it."""
    with store.engine.begin() as conn:
        _truncate(10, True)(conn)
    bare = Store(store.url)
    try:
        with bare.session() as s:
            r = audit.verify(s, check_records=False)
        assert r.ok and not r.anchored
    finally:
        bare.dispose()


def test_checkpoint_file_tampering_is_a_finding(anchored, store, settings):
    path = settings.audit_checkpoint_path
    lines = path.read_bytes().splitlines()
    rec = json.loads(lines[-1])
    rec["seq"] = 3  # move the anchor back to hide a later truncation
    path.write_bytes(b"\n".join([*lines[:-1], json.dumps(rec).encode()]) + b"\n")
    with store.session() as s:
        r = audit.verify(s)
    assert not r.ok and r.kind == "checkpoints" and "no valid signature" in r.reason
    path.unlink()
    with store.session() as s:
        r = audit.verify(s)
    assert not r.ok and r.kind == "checkpoints" and "missing" in r.reason


def test_checkpoints_are_signed_chained_and_private(anchored, settings):
    path = settings.audit_checkpoint_path
    assert path.stat().st_mode & 0o777 == 0o600
    assert settings.audit_key_path.stat().st_mode & 0o777 == 0o600
    key = audit_anchor.load_key(settings.audit_key_path)
    recs = [json.loads(line) for line in path.read_bytes().splitlines()]
    assert recs[0]["reason"] == "genesis" and recs[0]["seq"] == 0
    assert recs[-1]["reason"] in ("appends", "verify") and recs[-1]["seq"] == anchored
    assert [r["n"] for r in recs] == list(range(len(recs)))
    pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(key.public_b64))
    for r in recs:
        sig = r.pop("sig")
        body = json.dumps(r, sort_keys=True, separators=(",", ":")).encode()
        assert verify_signature(pub, body, sig)


def test_checkpoint_after_n_appends_and_to_a_syslog_witness(tmp_path, db_url, keyring):
    from facegate.config import Settings

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    port = sock.getsockname()[1]
    settings = Settings(
        data_dir=tmp_path / "witnessed",
        db_url=db_url,
        audit_checkpoint_every=5,
        audit_checkpoint_seconds=3600,
        audit_witness_syslog=f"udp://127.0.0.1:{port}",
    )
    store = Store(db_url)
    try:
        anchor = audit_anchor.ensure(settings, store)
        assert anchor is not None
        genesis = sock.recv(65536).decode()  # the genesis checkpoint reaches the witness too
        assert "audit-checkpoint" in genesis
        with store.session() as s:
            for i in range(4):
                audit.append(
                    s, actor="t", operation="x", purpose="t", outcome="ok", details={"i": i}
                )
                s.commit()
        assert len(settings.audit_checkpoint_path.read_bytes().splitlines()) == 1
        with store.session() as s:
            e = audit.append(s, actor="t", operation="x", purpose="t", outcome="ok")
            s.commit()
        assert len(settings.audit_checkpoint_path.read_bytes().splitlines()) == 2
        msg = sock.recv(65536).decode()
        assert msg.startswith("<133>1 ") and " facegate - audit-checkpoint - " in msg
        rec = json.loads(msg.split(" audit-checkpoint - ", 1)[1])
        assert (rec["seq"], rec["hash"], rec["reason"]) == (e.seq, e.hash, "appends")
        sig = rec.pop("sig")
        body = json.dumps(rec, sort_keys=True, separators=(",", ":")).encode()
        assert anchor.key.signature_ok(body, sig)
        # One more append, then shutdown: the shutdown checkpoint anchors it.
        with store.session() as s:
            last = audit.append(s, actor="t", operation="x", purpose="t", outcome="ok")
            s.commit()
        anchor.close()
        rec = json.loads(settings.audit_checkpoint_path.read_bytes().splitlines()[-1])
        assert (rec["seq"], rec["reason"]) == (last.seq, "shutdown")
    finally:
        sock.close()
        store.dispose()


def test_checkpoint_after_t_seconds(tmp_path, db_url):
    import time

    from facegate.config import Settings

    settings = Settings(
        data_dir=tmp_path / "timed",
        db_url=db_url,
        audit_checkpoint_every=1000,
        audit_checkpoint_seconds=0.2,
    )
    store = Store(db_url)
    try:
        anchor = audit_anchor.ensure(settings, store)
        time.sleep(0.3)  # the first append after a quiet spell is anchored at once
        with store.session() as s:
            audit.append(s, actor="t", operation="x", purpose="t", outcome="ok")
            s.commit()
            e = audit.append(s, actor="t", operation="x", purpose="t", outcome="ok")
            s.commit()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            recs = [json.loads(x) for x in settings.audit_checkpoint_path.read_bytes().splitlines()]
            if recs[-1]["seq"] == e.seq:
                break
            time.sleep(0.05)
        assert recs[-1]["seq"] == e.seq and recs[-1]["reason"] in ("timer", "appends")
        assert anchor is not None
    finally:
        store.dispose()


def test_cli_audit_verify_reports_tampering_and_exit_1(anchored, store, settings):
    runner = CliRunner()
    args = ["audit", "verify", "--data-dir", str(settings.data_dir), "--db", settings.database_url]
    ok = runner.invoke(app, args)
    assert ok.exit_code == 0, ok.output
    assert "intact" in ok.stdout and "anchored by the checkpoint" in ok.stdout
    with store.engine.begin() as conn:
        _truncate(200, True)(conn)
    bad = runner.invoke(app, args)
    assert bad.exit_code == 1
    assert "AUDIT LOG TAMPERED (truncated)" in bad.stdout
    js = runner.invoke(app, [*args, "--json"])
    assert js.exit_code == 1 and json.loads(js.stdout)["kind"] == "truncated"
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_entries"))
    bad = runner.invoke(app, args)
    assert bad.exit_code == 1 and "AUDIT LOG TAMPERED (reset)" in bad.stdout


def test_no_new_audit_key_beside_a_sealed_log(anchored, store, settings, tmp_path, db_url):
    """A second machine on the same database must get the audit key copied, not a new one."""
    from facegate.config import Settings
    from facegate.errors import KeyUnavailable

    other = Settings(data_dir=tmp_path / "second-host", db_url=db_url)
    second = Store(db_url)
    try:
        with pytest.raises(KeyUnavailable, match="copy audit.key"):
            audit_anchor.ensure(other, second)
    finally:
        second.dispose()
    assert not other.audit_key_path.exists()


def test_checkpoints_reach_a_webhook_witness(tmp_path, db_url):
    import http.server
    import threading

    from facegate.config import Settings

    got: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings = Settings(
        data_dir=tmp_path / "hooked",
        db_url=db_url,
        audit_witness_webhook=f"http://127.0.0.1:{server.server_port}/audit",
    )
    store = Store(db_url)
    try:
        anchor = audit_anchor.ensure(settings, store)
        with store.session() as s:
            e = audit.append(s, actor="t", operation="x", purpose="t", outcome="ok")
            s.commit()
        anchor.close()  # shutdown checkpoint, delivered before close returns
        recs = [g["audit_checkpoint"] for g in got]
        assert [r["reason"] for r in recs] == ["genesis", "shutdown"]
        assert (recs[-1]["seq"], recs[-1]["hash"]) == (e.seq, e.hash)
    finally:
        server.shutdown()
        store.dispose()
