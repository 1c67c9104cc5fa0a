"""The people-store CLI end to end, on SQLite and PostgreSQL (``--db``)."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from sqlalchemy import text
from store_support import *  # noqa: F403
from store_support import COMPLETE_INIT_ARGS, COMPLETE_NOTICE_ARGS, FakePipeline, face_image
from typer.testing import CliRunner

from facegate.cli import store_cmds
from facegate.cli.main import app
from facegate.store.db import Store


class BytesPipeline(FakePipeline):
    """The fake pipeline fed with the bytes of .npy files, as the CLI reads image files."""

    def analyze(self, image, profile="gate"):
        return super().analyze(np.load(io.BytesIO(image)), profile)


@pytest.fixture
def cli(settings, monkeypatch):
    monkeypatch.setattr(store_cmds, "load_pipeline", lambda _settings: BytesPipeline())
    runner = CliRunner()
    common = ["--data-dir", str(settings.data_dir), "--db", settings.db_url]

    def run(*args, ok=True):
        res = runner.invoke(app, [*args, *common, "--json"])
        assert (res.exit_code == 0) == ok, (args, res.output, res.exception)
        return json.loads(res.stdout) if ok and res.stdout.strip() else res

    return run


def _npy(tmp_path, name, arr):
    path = tmp_path / f"{name}.npy"
    np.save(path, arr)
    return str(path)


def test_cli_flow(cli, tmp_path, settings):
    first = cli("init", *COMPLETE_INIT_ARGS)
    again = cli("init")
    assert first["created"] and not again["created"]
    assert first["site_id"] == again["site_id"]
    # No face access point yet: the notice lacks its alternatives (N7) and the facts only
    # compliance knows (N6...), so it is a draft, not published (CAC-FR-05a).
    assert first["notice_version"] == 0 and {"N6", "N7"} <= set(first["notice_missing"])
    assert settings.key_file_path.stat().st_mode & 0o777 == 0o600

    ap = cli("access-point", "add", "North gate", "--kind", "gate", "--methods", "face,card")
    bad = cli("access-point", "add", "Door", "--kind", "door", "--methods", "face", ok=False)
    assert "CAC-FR-10" in bad.stderr

    pid = cli("person", "add", "--category", "resident", "--name", "Li Lei")["id"]
    assert [p["id"] for p in cli("person", "list")] == [pid]
    img = _npy(tmp_path, "a", face_image(60))
    refused = cli("enroll", pid, img, ok=False)
    assert json.loads(refused.stderr)["code"] == "consent_required"
    # Consent against no complete notice is not informed (CAC-FR-06a): refused, naming why.
    uninformed = json.loads(cli("consent", "record", pid, ok=False).stderr)
    assert uninformed["code"] == "consent_not_informed"
    draft = cli("notice", "show")
    assert draft["draft"] is True and "N6" in draft["missing"]
    lacking = json.loads(cli("notice", "publish", ok=False).stderr)
    assert lacking["code"] == "notice_incomplete" and "N6 Why it is needed" in lacking["message"]
    assert "必要性" in lacking["message"]
    assert cli("notice", "publish", *COMPLETE_NOTICE_ARGS)["version"] == 1

    consent = cli("consent", "record", pid, "--channel", "kiosk")
    assert consent["scope"] == [ap["id"]]
    enrolled = cli("enroll", pid, img, _npy(tmp_path, "b", face_image(60, 1)))
    assert len(enrolled["template_ids"]) == 2
    shown = cli("person", "show", pid)
    assert [t["id"] for t in shown["templates"]] == enrolled["template_ids"]
    assert "vector" not in json.dumps(shown) and "Li Lei" not in json.dumps(shown)

    rotated = cli("keys", "rotate")
    assert rotated["rewrapped"] == 1
    exported = cli("rights", "export", pid)
    assert exported["identity"]["name"] == "Li Lei" and len(exported["templates"]) == 2
    cli("rights", "correct", pid, "--unit", "3-1201")
    req = cli("rights", "request", pid, "--kind", "explanation")
    assert [r["id"] for r in cli("rights", "list", "--open")] == [req["id"]]
    assert cli("rights", "reject", req["id"], ok=False).exit_code == 2  # --reason is required
    cli("rights", "reject", req["id"], "--reason", "answered in person at the desk")
    assert cli("rights", "list", "--open") == []
    assert {r["kind"] for r in cli("rights", "list")} >= {"export", "correction", "explanation"}
    out = cli("consent", "withdraw", pid)
    assert out["templates_erased"] == 2 and out["issued_qr_pass"]
    assert cli("person", "show", pid)["templates"] == []
    assert cli("rights", "erase", pid, ok=False).exit_code == 1  # needs --yes
    assert cli("rights", "erase", pid, "--yes")["key_destroyed"] is False  # already shredded
    assert cli("purge")["erased"] == []
    key = cli("keys", "create", "--scope", "gate:decide", "--access-point", ap["id"])
    assert key["key"].startswith("fg_") and cli("keys", "list")[0]["id"] == key["id"]
    assert cli("audit", "verify")["ok"] is True
    cli("access-point", "add", "Lobby", "--kind", "lobby", "--methods", "face,card")
    args = dict(zip(COMPLETE_NOTICE_ARGS[::2], COMPLETE_NOTICE_ARGS[1::2], strict=True))
    args["--necessity"] = "gates are unstaffed at night"
    flat = [x for kv in args.items() for x in kv]
    notice = cli("notice", "publish", *flat)
    # The lobby added since v1 changed the purpose (N2): a re-consent trigger (CAC-FR-06c).
    assert notice["version"] == 2 and notice["requires_reconsent"] is True
    same = cli("notice", "publish", *flat)
    assert same["version"] == 2
    assert cli("notice", "show")["fields"]["N6"]["necessity"] == "gates are unstaffed at night"


def test_cli_audit_verify_fails_on_tampering(cli, settings):
    cli("init")
    cli("person", "add", "--category", "guest")
    store = Store(settings.database_url)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE audit_entries SET actor = 'someone else' WHERE seq = 2"))
    store.dispose()
    res = cli("audit", "verify", ok=False)
    assert res.exit_code == 1 and json.loads(res.stdout)["first_bad_seq"] == 2


def test_cli_entry_point_errors_cleanly(tmp_path):
    base = [sys.executable, "-m", "facegate"]
    res = subprocess.run(
        [*base, "person", "add", "--category", "resident", "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1 and "facegate init" in res.stderr and "Traceback" not in res.stderr


def test_gate_keys_are_bound_to_access_points_by_default(cli):
    """Issue 16 item 4: an all-doors gate key needs --all-access-points, explicitly."""
    cli("init", "--operator-name", "ACME Property")
    ap = cli("access-point", "add", "North gate", "--kind", "gate", "--methods", "face,card")
    unbound = cli("keys", "create", "--scope", "gate:decide", ok=False)
    assert "--access-point" in unbound.stderr and "--all-access-points" in unbound.stderr
    missing = cli("keys", "create", "--scope", "gate:decide", "--access-point", "ap-x", ok=False)
    assert "no access point 'ap-x'" in missing.stderr
    bound = cli("keys", "create", "--scope", "gate:decide", "--access-point", ap["id"])
    assert bound["access_point_ids"] == [ap["id"]]
    every = cli("keys", "create", "--scope", "gate:decide", "--all-access-points")
    assert every["access_point_ids"] is None
    admin = cli("keys", "create", "--scope", "admin", "--expires", "2099-01-31")
    assert admin["expires_at"].startswith("2099-01-31")
    past = cli("keys", "create", "--scope", "admin", "--expires", "2001-01-01", ok=False)
    assert "future" in past.stderr
    listed = {k["id"]: k for k in cli("keys", "list")}
    assert listed[admin["id"]]["last_used_at"] is None


def test_admin_accounts_and_setup_code_on_the_machine(settings, monkeypatch):
    """Issue 13 item 6: the machine is the other way to the first admin."""
    from facegate.domain import accounts

    runner = CliRunner()
    common = ["--data-dir", str(settings.data_dir), "--db", settings.db_url, "--json"]
    assert runner.invoke(app, ["init", *common]).exit_code == 0
    from facegate.cli.server_cmds import _first_run_code

    printed = _first_run_code(settings)  # what `facegate serve` prints on a fresh install
    assert printed and len(printed) == 19
    res = runner.invoke(app, ["admin", "setup-code", *common])
    assert res.exit_code == 0, res.output
    code = json.loads(res.stdout)["setup_code"]
    res = runner.invoke(
        app,
        ["admin", "create", "--username", "chief", "--password-stdin", *common],
        input="correct horse battery\n",
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["role"] == "admin"
    # An account exists: no more setup codes, and the one printed before is spent.
    res = runner.invoke(app, ["admin", "setup-code", *common])
    assert res.exit_code == 1 and "account exists" in res.stderr
    assert _first_run_code(settings) is None
    store = Store(settings.db_url)
    try:
        with store.session() as s:
            assert accounts.authenticate(
                s, settings, username="chief", password="correct horse battery"
            )
            with pytest.raises(Exception, match="already exists"):
                accounts.create_first_admin(
                    s, username="other", password="another long one", setup_code=code
                )
    finally:
        store.dispose()
    weak = runner.invoke(
        app,
        [
            "admin",
            "create",
            "--username",
            "desk",
            "--role",
            "operator",
            "--password-stdin",
            *common,
        ],
        input="short\n",
    )
    assert weak.exit_code == 1 and "at least 10" in weak.stderr
