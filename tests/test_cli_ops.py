"""Running facegate as a service, and --help a person can read (issue 16.14)."""

from __future__ import annotations

import re
import sys

import typer
from typer.testing import CliRunner

from facegate.cli.main import app


def _commands(cmd, path: tuple[str, ...] = ()):
    yield path
    if hasattr(cmd, "commands"):  # a group (Typer bundles its own click)
        for name, sub in cmd.commands.items():
            yield from _commands(sub, (*path, name))


def test_help_of_every_command_names_no_python_types():
    runner = CliRunner()
    paths = list(_commands(typer.main.get_command(app)))
    assert len(paths) > 40  # every command and group, not just the top
    for path in paths:
        res = runner.invoke(app, [*path, "--help"], terminal_width=100)
        assert res.exit_code == 0, (path, res.output)
        placeholders = re.findall(r"<(?:bool|str|int|float|path|list\[[^\]]*\])>", res.output)
        assert not placeholders, (path, placeholders)


def test_service_unit_runs_serve_hardened_and_refuses_plain_http_beyond_loopback(tmp_path):
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "service",
            "install",
            "--unit-dir",
            str(tmp_path),
            "--data-dir",
            "/srv/fg",
            "--port",
            "8443",
        ],
    )
    assert res.exit_code == 0, res.output
    unit = (tmp_path / "facegate.service").read_text()
    assert f"ExecStart={sys.executable} -m facegate serve --host 127.0.0.1 --port 8443" in unit
    assert "ReadWritePaths=/srv/fg" in unit and "UMask=0077" in unit
    assert "systemctl daemon-reload" in res.output
    refused = runner.invoke(
        app, ["service", "install", "--unit-dir", str(tmp_path / "x"), "--host", "0.0.0.0"]
    )
    assert refused.exit_code == 1 and "CAC-FR-14" in refused.output
    assert not (tmp_path / "x" / "facegate.service").exists()
    tls = runner.invoke(
        app, ["service", "install", "--print", "--host", "0.0.0.0", "--self-signed"]
    )
    assert tls.exit_code == 0 and "--self-signed" in tls.output


def test_the_unit_passes_systemd_analyze(tmp_path):
    import shutil
    import subprocess

    import pytest

    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    res = CliRunner().invoke(app, ["service", "install", "--unit-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    check = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "facegate.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    problems = [
        line
        for line in check.stderr.splitlines()
        if "facegate.service" in line and ("Failed" in line or "Unknown" in line)
    ]
    assert not problems, check.stderr
