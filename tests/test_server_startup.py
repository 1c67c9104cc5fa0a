"""Issue 13 items 12-14: what a real ``facegate serve`` does at start-up with its data
directory, its site key and its listen address."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
from web_support import free_port

from facegate.cli.server_cmds import ensure_initialised
from facegate.config import Settings


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEGATE_")}
    env.update(extra)
    return env


def _serve(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "facegate", "serve", *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _wait_healthy(proc: subprocess.Popen, url: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "server did not become ready"
        try:
            return httpx.get(url, timeout=2, verify=False).json()
        except (httpx.TransportError, ValueError):
            time.sleep(0.2)


def test_missing_site_key_beside_a_database_is_refused_in_one_line(tmp_path):
    """Item 14: the database holds a site, site.key is gone: no new key is written, and the
    refusal is one line saying where the key belongs and how to restore it."""
    data = tmp_path / "data"
    settings = Settings(data_dir=data)
    assert ensure_initialised(settings)
    key = settings.key_file_path
    key.unlink()
    for cmd in (["serve", "--port", str(free_port())], ["init"]):
        r = subprocess.run(
            [sys.executable, "-m", "facegate", *cmd, "--data-dir", str(data)],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode != 0, r.stderr
        assert not key.exists(), f"`facegate {cmd[0]}` wrote a new site key"
        assert "Traceback" not in r.stderr
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, r.stderr
        assert str(key) in lines[0] and "restore" in lines[0].lower()


def test_fresh_data_dir_is_owner_only(tmp_path):
    """Item 13: `facegate serve --data-dir NEW` makes the directory, models/ and tls/ 0700 and
    every file 0600, whatever the caller's umask."""
    data = tmp_path / "new" / "data"
    port = free_port()
    old = os.umask(0o022)
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "facegate",
                "serve",
                "--data-dir",
                str(data),
                "--port",
                str(port),
                "--self-signed",
            ],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    finally:
        os.umask(old)
    try:
        _wait_healthy(proc, f"https://127.0.0.1:{port}/healthz")
        seen: list[Path] = []
        for path in [data, *data.rglob("*")]:
            mode = stat.S_IMODE(path.stat().st_mode)
            want = 0o700 if path.is_dir() else 0o600
            assert mode == want, f"{path.relative_to(tmp_path)} is {oct(mode)}, not {oct(want)}"
            seen.append(path)
        names = {p.name for p in seen}
        assert {"models", "tls", "site.key", "facegate.sqlite"} <= names, names
    finally:
        proc.terminate()
        proc.wait(20)


def test_plain_http_beyond_loopback_needs_insecure_http_and_is_reported(tmp_path):
    """Item 12: no TLS on a non-loopback address is refused unless --insecure-http says so;
    the choice is recorded, and `facegate comply` reports it under CAC-FR-14."""
    data = tmp_path / "data"
    for host in ("0.0.0.0", "192.0.2.10"):
        r = _serve("--host", host, "--port", str(free_port()), "--data-dir", str(data), timeout=60)
        assert r.returncode == 2, r.stderr
        assert "--insecure-http" in r.stderr and "Traceback" not in r.stderr
        assert not data.exists(), "refused before anything was created"
    # What `serve --insecure-http` records (not started here: tests listen on loopback only).
    from facegate.compliance.live import record_listener

    settings = Settings(data_dir=data)
    ensure_initialised(settings)

    def tls_findings() -> list[str]:
        r = subprocess.run(
            [sys.executable, "-m", "facegate", "comply", "--json", "--lang", "en"],
            env=_env(FACEGATE_DATA_DIR=str(data)),
            capture_output=True,
            text=True,
            timeout=120,
        )
        found = json.loads(r.stdout)["findings"]
        return [
            f["message_en"]
            for f in found
            if f["rule_id"] == "CAC-FR-14" and "without TLS" in f["message_en"]
        ]

    assert tls_findings() == []
    assert record_listener(settings, "0.0.0.0", 8000, tls=False)
    assert any("0.0.0.0:8000" in m for m in tls_findings())
    # Started again on the same port with TLS: the record is replaced, the finding goes.
    assert record_listener(settings, "0.0.0.0", 8000, tls=True)
    assert tls_findings() == []
    assert not record_listener(settings, "127.0.0.1", 9000, tls=False)  # loopback: nothing
