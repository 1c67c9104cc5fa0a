"""Two real ``facegate serve`` processes on one PostgreSQL database (a fresh one per run).

A withdrawal through one server must be refused by the other within one second, through
LISTEN/NOTIFY (its in-memory gallery drops the person) and at decision time.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from conftest import TEST_PG
from server_support import make_site, people_images
from test_server_schemathesis import free_port

from facegate.config import Settings


@pytest.fixture(scope="module")
def pg_url():
    """A fresh database on the CI PostgreSQL, dropped afterwards."""
    name = f"fg_server_{secrets.token_hex(4)}"
    with psycopg.connect(TEST_PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = TEST_PG.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(TEST_PG, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_server(url: str, data_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "facegate",
            "serve",
            "--db",
            url,
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        # A loaded test machine: face inference alone may exceed the 1 s default deadline.
        env={
            **os.environ,
            "FACEGATE_INFERENCE_WORKERS": "1",
            "FACEGATE_DECIDE_DEADLINE_MS": "30000",
        },
    )
    return proc, f"http://127.0.0.1:{port}"


def wait_ready(proc: subprocess.Popen, base: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            h = httpx.get(f"{base}/healthz", timeout=1).json()
            if h["models_loaded"] and h["sync"] == "listening":
                return
        except (httpx.TransportError, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError("server did not become ready")


@pytest.mark.pg
def test_withdrawal_through_one_gate_is_denied_by_the_other_within_a_second(
    pg_url, tmp_path, shared_data
):
    setup = make_site(Settings(data_dir=tmp_path, db_url=pg_url))
    procs = [start_server(pg_url, tmp_path) for _ in range(2)]
    try:
        images = people_images(shared_data)  # while the servers load their models
        for proc, base in procs:
            wait_ready(proc, base)
        (_, one), (_, two) = procs
        enroll = {"X-API-Key": setup.keys["enroll"]}
        gate = {"X-API-Key": setup.keys["gate"]}
        pid = httpx.post(f"{one}/v1/persons", json={"category": "resident"}, headers=enroll)
        pid = pid.json()["id"]
        assert (
            httpx.post(f"{one}/v1/persons/{pid}/consents", json={}, headers=enroll).status_code
            == 201
        )
        files = [("image", ("a.jpg", images["Colin_Powell"][0], "image/jpeg"))]
        r = httpx.post(f"{one}/v1/persons/{pid}/enroll", files=files, headers=enroll, timeout=30)
        assert r.status_code == 201, r.text

        def face_at(base: str) -> dict:
            files = [("frame", ("f.jpg", images["Colin_Powell"][2], "image/jpeg"))]
            url = f"{base}/v1/access-points/{setup.ap_main}/decide"
            return httpx.post(url, files=files, headers=gate, timeout=30).json()

        # The enrollment made through server one reaches server two's gallery.
        deadline = time.monotonic() + 5
        while httpx.get(f"{two}/healthz").json()["gallery_templates"] < 1:
            assert time.monotonic() < deadline, "enrollment never reached the second server"
            time.sleep(0.02)
        first = face_at(two)
        assert first["decision"] == "allow" and first["subject"] == pid

        r = httpx.post(f"{one}/v1/persons/{pid}/withdraw", json={}, headers=enroll)
        assert r.status_code == 200
        withdrawn_at = time.monotonic()
        # Server two's in-memory gallery drops the person (LISTEN/NOTIFY)...
        while httpx.get(f"{two}/healthz").json()["gallery_templates"] > 0:
            assert time.monotonic() - withdrawn_at < 1.0, "gallery still holds the person"
            time.sleep(0.01)
        gallery_lag = time.monotonic() - withdrawn_at
        # ...and its next decision denies them.
        after = face_at(two)
        assert after["decision"] == "deny" and after["subject"] is None
        assert gallery_lag < 1.0
        metrics = httpx.get(f"{two}/metrics").text
        assert "facegate_revocation_lag_seconds_count" in metrics
    finally:
        for proc, _ in procs:
            proc.terminate()
        for proc, _ in procs:
            proc.wait(10)


def test_serve_starts_with_zero_configuration_and_refuses_a_second_on_sqlite(tmp_path):
    """A fresh data directory: `facegate serve` initialises it and serves; a second
    `facegate serve` on the same SQLite file refuses with a clear message."""
    env = {**os.environ, "FACEGATE_DATA_DIR": str(tmp_path / "fresh")}
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "facegate", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline
            try:
                health = httpx.get(f"{base}/healthz", timeout=1).json()
                break
            except (httpx.TransportError, ValueError):
                time.sleep(0.1)
        assert health["status"] == "ok" and health["sync"] == "in_process"
        assert (tmp_path / "fresh" / "facegate.sqlite").exists()
        # No default credentials: nothing gets in without a key made on the machine.
        assert httpx.get(f"{base}/v1/persons").status_code == 401
        second = subprocess.run(
            [sys.executable, "-m", "facegate", "serve", "--port", str(free_port())],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0
        assert "already serves this SQLite database" in second.stderr
    finally:
        proc.terminate()
        proc.wait(10)
