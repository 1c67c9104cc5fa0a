"""Issue 18 test support: a PostgreSQL of the test's own (stopped, frozen, its backends
killed), gate server processes with a small fake face pipeline, and a ready site.

Never the machine's own PostgreSQL: ``PgServer`` runs initdb/pg_ctl from
/usr/lib/postgresql/15/bin on a free port in a temporary directory, as user postgres when
the tests run as root.
"""

from __future__ import annotations

import contextlib
import io
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psycopg
from store_support import FakePipeline, face_image

PG_BIN = Path("/usr/lib/postgresql/15/bin")
TESTS_DIR = Path(__file__).resolve().parent


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """A throw-away PostgreSQL cluster on 127.0.0.1:<free port>."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="fg-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self._run([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"])
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\nfsync = off\n"
                "max_connections = 100\n"
            )
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, cmd: list[str]) -> None:
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True)

    def start(self) -> None:
        self._run(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.root / "log"),
                "-w",
                "start",
            ]
        )

    def stop(self) -> None:
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def pids(self) -> list[int]:
        """The postmaster and every process it started."""
        master = int((self.data / "postmaster.pid").read_text().split()[0])
        out = [master]
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    stat = (d / "stat").read_text()
                except OSError:
                    continue
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if ppid == master:
                    out.append(int(d.name))
        return out

    def freeze(self) -> None:
        """SIGSTOP, as a hung host or a network partition behaves: nothing errors, nothing
        answers (the kernel still accepts the bytes)."""
        for pid in self.pids():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self.pids():
            os.kill(pid, signal.SIGCONT)

    def kill_backends(self) -> int:
        with psycopg.connect(self.url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
            ).fetchall()
        return len(rows)

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.thaw()
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# --- a fake face pipeline a gate process can serve with ---------------------------------------


@dataclass
class _Quality:
    ok: bool
    reasons: tuple[str, ...] = ()
    metrics: dict = field(default_factory=lambda: {"face_px": 100.0, "detector_score": 0.9})


@dataclass
class _Face:
    template: np.ndarray | None
    quality: _Quality
    score: float = 0.9


class GateFakePipeline(FakePipeline):
    """FakePipeline with what the gate server calls: decode raw 24x24x3 bytes, analyze with
    max_faces, 1:1 and 1:N thresholds. Real models are not the point of these tests."""

    margin = 0.02

    def decode(self, data: bytes) -> np.ndarray:
        from PIL import Image

        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    def analyze(self, image, profile: str = "gate", max_faces: int | None = None):  # type: ignore[override]
        faces = super().analyze(image, profile)
        return [_Face(f.template, _Quality(f.quality.ok, f.quality.reasons)) for f in faces]

    def threshold_for_gallery(self, n: int) -> float:
        return self.threshold


def frame_bytes(identity: int, sample: int = 5) -> bytes:
    """A real (lossless PNG) image, so the server's header checks read it like a camera's."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(face_image(identity, sample)).save(buf, format="PNG")
    return buf.getvalue()


# --- gate processes ----------------------------------------------------------------------------


@dataclass
class Gate:
    proc: subprocess.Popen
    base: str
    data_dir: Path
    log: Path

    def health(self, timeout: float = 2.0) -> httpx.Response:
        return httpx.get(f"{self.base}/healthz", timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_gate(db_url: str, data_dir: Path, key_file: Path, name: str, **env: str) -> Gate:
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "gate.log"
    proc = subprocess.Popen(
        [sys.executable, str(TESTS_DIR / "offline_gate.py"), str(port)],
        stdout=open(log, "ab"),  # noqa: SIM115 - the child owns it
        stderr=subprocess.STDOUT,
        env={
            **os.environ,
            "PYTHONPATH": str(TESTS_DIR),
            "FACEGATE_DB_URL": db_url,
            "FACEGATE_DATA_DIR": str(data_dir),
            "FACEGATE_KEY_FILE": str(key_file),
            "FACEGATE_GATE_ID": name,
            "FACEGATE_PORT": str(port),
            **env,
        },
    )
    gate = Gate(proc, f"http://127.0.0.1:{port}", data_dir, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gate exited: {log.read_text()[-3000:]}")
        try:
            h = gate.health(1).json()
            if h["status"] == "ok" and h["sync"] == "listening" and h["gallery_templates"] >= 0:
                return gate
        except (httpx.TransportError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"gate not ready: {log.read_text()[-3000:]}")


def wait_for(cond, timeout: float = 10.0, what: str = "condition") -> None:
    t0 = time.monotonic()
    while True:
        try:
            if cond():
                return
        except (httpx.TransportError, ValueError, KeyError):
            pass
        assert time.monotonic() - t0 < timeout, f"{what} not reached in {timeout} s"
        time.sleep(0.05)
