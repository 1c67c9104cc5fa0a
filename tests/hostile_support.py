"""A real ``facegate serve`` under a hostile upload session, and its memory (issue 13 item 3).

Shared by ``tests/test_server_memory.py`` (200 requests, asserts a bound) and
``bench/hostile_uploads.py`` (1,000 requests, prints). Every image is synthetic (no face
photo): what matters here is what the bytes decode to, not what they show.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import io
import os
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from PIL import Image
from sqlalchemy import update

from facegate.cli.server_cmds import ensure_initialised
from facegate.config import Settings
from facegate.domain import add_access_point, add_person, create_api_key
from facegate.store.db import Store
from facegate.store.models import AccessPoint, Site


def png16(w: int, h: int) -> bytes:
    """A 16-bit RGB PNG of black pixels: a few hundred KB that inflate to w * h * 6 bytes
    (written with zlib directly: Pillow cannot write 16-bit RGB)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    c = zlib.compressobj(9)
    row = b"\x00" + b"\x00" * (w * 6)
    body = [c.compress(row * 100) for _ in range(h // 100)]
    body += [c.compress(row * (h % 100)), c.flush()]
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", b"".join(body))
        + chunk(b"IEND", b"")
    )


@functools.cache
def payloads() -> dict[str, bytes]:
    """The hostile files, made once: small on the wire, large once decoded."""

    def encode(img: Image.Image, fmt: str, **kw) -> bytes:
        buf = io.BytesIO()
        img.save(buf, format=fmt, **kw)
        return buf.getvalue()

    return {
        # 39.2 MP JPEG (under the 40 MP limit): decoded in draft mode since the fix.
        "jpeg39": encode(Image.new("RGB", (7000, 5600), (120, 130, 140)), "JPEG", quality=80),
        # 16 MP 8-bit PNG, the most a lossless image may be: decoded whole, then reduced.
        "png16mp": encode(Image.new("RGB", (4000, 4000), (90, 90, 90)), "PNG", compress_level=1),
        # The bomb: 6000x6600 16-bit, refused from its header since the fix.
        "png16bit": png16(6000, 6600),
    }


@dataclass
class Served:
    proc: subprocess.Popen
    base: str
    admin_key: str
    gate_key: str
    ap: str
    person: str
    statuses: Counter = field(default_factory=Counter)

    @property
    def rss_mb(self) -> float:
        return rss_mb(self.proc.pid)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(data_dir: Path, src: Path | None = None, log: Path | None = None) -> Served:
    """A site with a face-enabled access point, keys and a person; then ``facegate serve``.

    ``src``: serve another source tree (e.g. the main checkout, for a before figure).
    """
    settings = Settings(data_dir=data_dir)
    site_id = ensure_initialised(settings) or ""
    store = Store(settings.database_url)
    try:
        with store.session() as s:
            ap = add_access_point(
                s, actor="bench", name="gate", kind="gate", methods=["face", "card"]
            ).id
            s.execute(update(Site).where(Site.id == site_id).values(face_enabled=True))
            s.execute(update(AccessPoint).where(AccessPoint.id == ap).values(face_enabled=True))
            s.commit()
            _, admin = create_api_key(s, actor="bench", scopes=["admin", "enroll"], name="a")
            _, gate = create_api_key(
                s, actor="bench", scopes=["gate:decide"], name="g", access_point_ids=[ap]
            )
            person = add_person(s, actor="bench", category="resident").id
    finally:
        store.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEGATE_")}
    if src is not None:
        env["PYTHONPATH"] = str(src)
    port = free_port()
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - lives with the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "facegate", "serve", "--data-dir", str(data_dir)]
        + ["--port", str(port)],
        env=env,
        stdout=out,
        stderr=out,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("server did not become ready")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    return Served(proc, base, admin, gate, ap, person)


def stop_server(served: Served) -> None:
    served.proc.terminate()
    try:
        served.proc.wait(20)
    except subprocess.TimeoutExpired:
        served.proc.kill()


KINDS = ("enroll_png16bit_x5", "decide_jpeg39_x3", "decide_png16mp", "persons_no_key_50mb")
_NO_KEY_BODY = b'{"category": "resident", "name": "' + b"x" * (50 * 1024 * 1024) + b'"}'


def one_request(served: Served, kind: str, client: httpx.Client) -> str:
    """One hostile request; returns its status (or how the connection ended)."""
    p = payloads()
    try:
        if kind == "enroll_png16bit_x5":
            files = [("image", (f"{i}.png", p["png16bit"], "image/png")) for i in range(5)]
            r = client.post(
                f"/v1/persons/{served.person}/enroll",
                files=files,
                headers={"X-API-Key": served.admin_key},
            )
        elif kind == "decide_jpeg39_x3":
            files = [("frame", (f"{i}.jpg", p["jpeg39"], "image/jpeg")) for i in range(3)]
            r = client.post(
                f"/v1/access-points/{served.ap}/decide",
                files=files,
                headers={"X-API-Key": served.gate_key},
            )
        elif kind == "decide_png16mp":
            r = client.post(
                f"/v1/access-points/{served.ap}/decide",
                content=p["png16mp"],
                headers={"X-API-Key": served.gate_key, "Content-Type": "image/png"},
            )
        else:
            r = client.post(
                "/v1/persons", content=_NO_KEY_BODY, headers={"Content-Type": "application/json"}
            )
        return str(r.status_code)
    except httpx.TransportError as exc:
        return f"closed:{type(exc).__name__}"


def hostile_session(
    served: Served, n: int, concurrency: int = 4, kinds: tuple[str, ...] = KINDS
) -> dict[str, object]:
    """``n`` hostile requests of ``kinds`` in turn, ``concurrency`` at a time; RSS sampled
    every 100 ms."""
    peak = [served.rss_mb]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], served.rss_mb)
            except (OSError, RuntimeError):
                return
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    statuses: Counter = Counter()
    started = time.perf_counter()
    client = httpx.Client(base_url=served.base, timeout=600)
    try:
        with cf.ThreadPoolExecutor(concurrency) as pool:
            futures = [
                pool.submit(one_request, served, kinds[i % len(kinds)], client) for i in range(n)
            ]
            for i, f in enumerate(futures):
                statuses[f"{kinds[i % len(kinds)]}:{f.result()}"] += 1
    finally:
        client.close()
        stop.set()
        sampler.join()
    return {
        "requests": n,
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(peak[0], 1),
        "statuses": dict(sorted(statuses.items())),
    }
