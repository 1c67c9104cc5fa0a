"""`facegate comply` and `facegate docs` from the command line."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from click.testing import Result
from compliance_helpers import EXAMPLES
from typer.testing import CliRunner

from facegate.cli.main import app
from facegate.compliance.inventory import inventory_schema

RUNNER = CliRunner()


def fg(*args: str, data: Path | None = None) -> Result:
    """Run the CLI in-process (interpreter start-up and imports would dominate the runtime)."""
    env = {"COLUMNS": "220"}  # a wide terminal keeps table cells on one line
    if data is not None:
        env["FACEGATE_DATA_DIR"] = str(data)
    return RUNNER.invoke(app, list(args), env=env)


def test_comply_lawful_passes_and_violating_fails(tmp_path: Path) -> None:
    ok = fg("comply", "--inventory", str(EXAMPLES / "lawful-compound.yaml"), "--lang", "en")
    assert ok.exit_code == 0, ok.stderr
    assert "no findings" in ok.stdout
    html = tmp_path / "report.html"
    bad = fg(
        "comply",
        "--inventory",
        str(EXAMPLES / "sales-office.yaml"),
        "--json",
        "--html",
        str(html),
        "--as-of",
        "2026-11-25",
    )
    assert bad.exit_code == 1, bad.stderr
    report = json.loads(bad.stdout)
    assert report["passed"] is False and report["as_of"] == "2026-11-25"
    assert {"NJ-2020", "PIPL-26"} <= {f["rule_id"] for f in report["findings"]}
    first = report["findings"][0]
    assert set(first) >= {"rule_id", "severity", "object", "message_zh", "message_en", "fix"}
    assert first["title_zh"] and first["source"]
    assert 'data-finding="NJ-2020"' in html.read_text(encoding="utf-8")


def test_comply_table_names_rule_object_and_fix() -> None:
    r = fg("comply", "--inventory", str(EXAMPLES / "face-only-compound-gate.yaml"), "--lang", "en")
    assert r.exit_code == 1
    assert "CAC-FR-10" in r.stdout and "compound/main-gate" in r.stdout
    assert "FAIL" in r.stdout and "non-biometric" in r.stdout


def test_schema_is_printed() -> None:
    r = fg("comply", "--schema")
    assert r.exit_code == 0
    assert json.loads(r.stdout) == inventory_schema()


def test_bad_inventory_exits_2_naming_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "site.yaml"
    bad.write_text("sites:\n  - id: a\n    access_points:\n      - {id: x, kind: portal}\n")
    r = fg("comply", "--inventory", str(bad))
    assert r.exit_code == 2
    # One line: the first error by path, and how many more.
    assert r.stderr.count("\n") == 1
    assert "sites[0].access_points[0]: 'location_type' is a required property" in r.stderr
    assert "(and 1 more error(s))" in r.stderr


def test_docs_writes_html(tmp_path: Path) -> None:
    r = fg(
        "docs",
        "signage",
        "--out",
        str(tmp_path),
        "--inventory",
        str(EXAMPLES / "lawful-compound.yaml"),
    )
    assert r.exit_code == 0, r.stderr
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == [
        "signage-ghy-b1-elevator.zh-CN.html",
        "signage-ghy-b1-lobby.zh-CN.html",
        "signage-ghy-north-gate.zh-CN.html",
    ]
    r = fg("docs", "leaflet", "--out", str(tmp_path))
    assert r.exit_code == 2 and "Unknown document" in r.stderr


def test_live_system_from_the_command_line(tmp_path: Path) -> None:
    from facegate import domain
    from facegate.config import Settings
    from facegate.store.crypto import load_keyring
    from facegate.store.db import Store

    env_dir = tmp_path / "data"
    settings = Settings(data_dir=env_dir)
    load_keyring(settings, create=True)
    store = Store(settings.database_url)
    with store.session() as s:
        site = domain.init_site(s, settings, actor="t", operator_name="ACME").site_id
        domain.add_access_point(s, actor="t", name="Gate", kind="gate", methods=["face", "qr"])
    store.dispose()

    def live(*args: str, data: Path = env_dir) -> Result:
        return fg(*args, data=data)

    r = live("comply", "--json")
    assert r.exit_code == 1, r.output
    assert json.loads(r.stdout)["source"] == "live"
    r = live("face", "on", "--site", site)
    assert r.exit_code == 2 and "CAC-FR-09a" in r.stderr
    r = live("register", "pia", "--version", "1", "--date", "2026-11-25", "--signer", "W")
    assert r.exit_code == 2  # --necessity is required
    r = live("face", "off", "--site", site)
    assert r.exit_code == 0, r.output
    r = live("comply", data=tmp_path / "empty")
    assert r.exit_code == 2 and "facegate init" in r.stderr


def test_face_switched_on_from_the_command_line(tmp_path: Path) -> None:
    """init -> operator facts (publish) -> PIA -> sign -> face on, each refusal naming its rule."""
    from facegate import domain
    from facegate.config import Settings
    from facegate.store.crypto import load_keyring
    from facegate.store.db import Store

    data = tmp_path / "data"
    # The PIA and the sign must postdate the notice published below (CAC-FR-09b, CAC-FR-13a).
    today = date.today().isoformat()
    settings = Settings(data_dir=data)
    load_keyring(settings, create=True)
    store = Store(settings.database_url)
    with store.session() as s:
        site = domain.init_site(s, settings, actor="t", site_name="Garden Court").site_id
        ap = domain.add_access_point(
            s, actor="t", name="Gate", kind="gate", methods=["face", "card"]
        ).id
    store.dispose()

    r = fg("face", "on", "--site", site, data=data)
    assert r.exit_code == 2 and "CAC-FR-05a" in r.stderr
    r = fg("register", "operator", "--name", "ACME", "--address", "", "--contact", "x", data=data)
    assert r.exit_code == 2 and "CAC-FR-05a" in r.stderr  # an empty address is refused
    r = fg(
        "register", "operator", "--name", "ACME Property Services Co.",
        "--address", "1 Garden Road, Hangzhou", "--contact", "+86 571 0000 0000",
        "--necessity", "Residents asked for hands-free entry; card, PIN and QR stay available.",
        "--notice-url", "https://gate.example/notice",
        "--self-service-url", "https://gate.example/me",
        "--minors-rules-url", "https://gate.example/minors",
        "--accessible", "large_print,audio,staff_assistance", "--publish",
        data=data,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    r = fg(
        "register", "pia", "--version", "1", "--date", today, "--signer", "W. Zhang",
        "--necessity", "Hands-free entry for residents who opt in.",
        data=data,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    r = fg("face", "on", "--site", site, data=data)
    assert r.exit_code == 2 and "CAC-FR-13a" in r.stderr  # no sign up yet
    r = fg("register", "signage", "--ap", ap, "--where", "", "--date", today, data=data)
    assert r.exit_code == 2  # where the sign is must be said
    r = fg(
        "register", "signage", "--ap", ap, "--where", "left of the turnstile",
        "--date", today,
        data=data,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    r = fg("face", "on", "--site", site, data=data)
    assert r.exit_code == 0, r.stderr
    store = Store(settings.database_url)
    with store.session() as s:
        assert domain.get_access_point(s, ap).face_enabled
    store.dispose()
