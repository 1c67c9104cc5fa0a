"""Gate server benchmarks over real HTTP on loopback.

    PYTHONPATH=src python bench/server_bench.py throughput [--sizes 1000 100000] [--workers 1 2]
    PYTHONPATH=src python bench/server_bench.py revocation --db postgresql://... [--n 50]

``throughput``: decisions per second and p50/p95/p99 latency for face and card decisions
against a real ``facegate serve`` (SQLite, one process) with 1k and 100k people enrolled.
The gallery is synthetic (random unit vectors shaped like fused templates, encrypted and
stored like real ones) plus a few real people; the probes are real photos from
../shared/data/lfw_dev.

``revocation``: two ``facegate serve`` processes on one PostgreSQL database; people are
withdrawn one at a time through the first and the delay until the second's in-memory
gallery no longer holds them is measured (client side, polling /healthz every 2 ms), plus
the server-side lag histogram (commit time to applied) from the second's /metrics.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import insert

from facegate.cli.server_cmds import ensure_initialised
from facegate.config import Settings
from facegate.domain import (
    add_access_point,
    create_api_key,
    current_notice,
    issue_card,
    record_consent,
)
from facegate.domain.common import record_change
from facegate.domain.enrollment import data_key_for
from facegate.store.crypto import load_keyring
from facegate.store.db import Store
from facegate.store.models import (
    AccessPoint,
    Consent,
    Person,
    PersonKey,
    Site,
    Template,
    new_id,
)
from facegate.vision import FacePipeline

DATA = Path(
    os.environ.get("FACEGATE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared/data")
)
REAL_PEOPLE = (
    "Colin_Powell",
    "Donald_Rumsfeld",
    "Ariel_Sharon",
    "Arnold_Schwarzenegger",
    "Alejandro_Toledo",
    "Andre_Agassi",
    "Alvaro_Uribe",
    "David_Beckham",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def synthetic_templates(pipe: FacePipeline, n: int, rng: np.random.Generator) -> np.ndarray:
    """Random unit vectors per embedder, scaled by its fusion weight, like real templates."""
    parts = []
    for emb, w in zip(pipe.embedders.values(), pipe.weights, strict=True):
        v = rng.standard_normal((n, emb.dim)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        parts.append(v * w)
    return np.concatenate(parts, axis=1)


def populate(settings: Settings, pipe: FacePipeline, n_synthetic: int) -> dict:
    """A site with one face+card gate, n synthetic people, real people, cards and a gate key."""
    ensure_initialised(settings)
    store = Store(settings.database_url)
    keyring = load_keyring(settings)
    rng = np.random.default_rng(42)
    with store.session() as s:
        site_id = s.query(Site.id).first()[0]
        ap = add_access_point(
            s, actor="bench", name="gate", kind="gate", methods=["face", "card"], site_id=site_id
        ).id
        s.query(Site).update({"face_enabled": True})
        s.query(AccessPoint).update({"face_enabled": True})
        s.commit()
        notice = current_notice(s, site_id)
        vecs = synthetic_templates(pipe, n_synthetic, rng)
        t0 = time.time()
        batch_p, batch_c, batch_t = [], [], []
        for i in range(n_synthetic):
            pid = new_id("p")
            batch_p.append(
                {"id": pid, "site_id": site_id, "category": "resident", "status": "active"}
            )
            batch_c.append(
                {
                    "id": new_id("consent"),
                    "person_id": pid,
                    "site_id": site_id,
                    "notice_version_id": notice.id,
                    "notice_sha256": notice.sha256,
                    "scope": [ap],
                    "channel": "front_desk",
                    "recorded_by": "bench",
                    "basis": "separate_consent",
                }
            )
            batch_t.append((pid, vecs[i]))
            if len(batch_p) == 2000 or i == n_synthetic - 1:
                s.execute(insert(Person), batch_p)
                s.execute(insert(Consent), batch_c)
                rows, keys = [], []
                for pid, v in batch_t:
                    key = keyring.new_data_key()
                    key_id, wrapped = keyring.wrap_data_key(pid, key)
                    keys.append({"person_id": pid, "key_id": key_id, "wrapped": wrapped})
                    tid = new_id("t")
                    nonce, ct = keyring.encrypt_template(
                        key, v, template_id=tid, person_id=pid, model_id=pipe.model_id
                    )
                    rows.append(
                        {
                            "id": tid,
                            "person_id": pid,
                            "model_id": pipe.model_id,
                            "dim": int(v.shape[0]),
                            "quality": None,
                            "nonce": nonce,
                            "ciphertext": ct,
                        }
                    )
                s.execute(insert(PersonKey), keys)
                s.execute(insert(Template), rows)
                s.commit()
                batch_p, batch_c, batch_t = [], [], []
        print(f"  {n_synthetic} synthetic people stored in {time.time() - t0:.1f} s", flush=True)
        # Real people: enrolled from their first usable photo; later photos are the probes.
        probes: list[bytes] = []
        cards: list[str] = []
        for who in REAL_PEOPLE:
            photos = sorted((DATA / "lfw_dev/images" / who).glob("*.jpg"))
            faces = [
                (p, pipe.analyze(p.read_bytes(), profile="enroll", max_faces=1)) for p in photos[:8]
            ]
            good = [(p, f[0]) for p, f in faces if f and f[0].template is not None]
            if len(good) < 3:
                continue
            pid = new_id("p")
            s.execute(
                insert(Person),
                [{"id": pid, "site_id": site_id, "category": "resident", "status": "active"}],
            )
            s.commit()
            record_consent(s, actor="bench", person_id=pid, scope=[ap])
            key = data_key_for(s, keyring, pid, create=True)
            tid = new_id("t")
            nonce, ct = keyring.encrypt_template(
                key, good[0][1].template, template_id=tid, person_id=pid, model_id=pipe.model_id
            )
            s.add(
                Template(
                    id=tid,
                    person_id=pid,
                    model_id=pipe.model_id,
                    dim=pipe.dim,
                    nonce=nonce,
                    ciphertext=ct,
                )
            )
            record_change(s, site_id, pid, "enrolled")
            s.commit()
            probes += [p.read_bytes() for p, _ in good[1:3]]
        for i in range(100):
            pid = s.query(Person.id).offset(i).limit(1).scalar()
            number = f"CARD-{i:05d}"
            issue_card(s, actor="bench", person_id=pid, card_number=number)
            cards.append(number)
        _, key = create_api_key(
            s, actor="bench", scopes=["gate:decide", "enroll", "admin"], site_id=site_id
        )
    store.dispose()
    if not settings.db_url:
        # Fold the bulk load's write-ahead log into the database now, so the first decisions
        # do not pay for checkpointing it.
        with sqlite3.connect(settings.data_dir / "facegate.sqlite") as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return {"ap": ap, "key": key, "probes": probes, "cards": cards}


def start_server(settings: Settings, workers: int, extra_env: dict | None = None):
    port = free_port()
    env = {
        **os.environ,
        "FACEGATE_INFERENCE_WORKERS": str(workers),
        "FACEGATE_INFERENCE_QUEUE": str(workers * 2),
        "FACEGATE_EVENT_DEDUP_S": "0",
        **(extra_env or {}),
    }
    cmd = [
        sys.executable,
        "-m",
        "facegate",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(settings.data_dir),
    ]
    if settings.db_url:
        cmd += ["--db", settings.db_url]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    t0 = time.time()
    while True:
        if proc.poll() is not None:
            raise SystemExit("server exited")
        try:
            h = httpx.get(f"{base}/healthz", timeout=2).json()
            if h["models_loaded"]:
                return proc, base, time.time() - t0, h
        except (httpx.TransportError, ValueError):
            pass
        time.sleep(0.1)


def load(base: str, ap: str, key: str, bodies: list, concurrency: int, n: int) -> dict:
    """Send n decisions with `concurrency` clients; latencies of the 2xx answers."""
    url = f"{base}/v1/access-points/{ap}/decide"
    lat: list[float] = []
    outcomes: dict[str, int] = {}

    local = threading.local()

    def one(i: int) -> None:
        body = bodies[i % len(bodies)]
        c = getattr(local, "client", None)
        if c is None:  # one keep-alive connection per client thread, like a gate
            c = local.client = httpx.Client(timeout=60)
        t = time.perf_counter()
        if isinstance(body, bytes):
            r = c.post(
                url,
                files=[("frame", ("f.jpg", body, "image/jpeg"))],
                headers={"X-API-Key": key},
            )
        else:
            r = c.post(url, json=body, headers={"X-API-Key": key})
        dt = time.perf_counter() - t
        if r.status_code == 200:
            lat.append(dt)
            k = f"{r.json()['decision']}:{r.json()['reason']}"
        else:
            k = f"http_{r.status_code}"
        outcomes[k] = outcomes.get(k, 0) + 1

    # Warm-up, then the timed run.
    for i in range(min(3, n)):
        one(i)
    lat.clear()
    outcomes.clear()
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(concurrency) as ex:
        list(ex.map(one, range(n)))
    wall = time.perf_counter() - t0
    return {
        "n": n,
        "concurrency": concurrency,
        "per_s": round(len(lat) / wall, 1),
        "p50_ms": round(pct(lat, 50) * 1000, 1),
        "p95_ms": round(pct(lat, 95) * 1000, 1),
        "p99_ms": round(pct(lat, 99) * 1000, 1),
        "outcomes": outcomes,
    }


def throughput(args) -> None:
    pipe = FacePipeline()
    results = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(data_dir=Path(tmp))
            print(f"gallery {size}: populating", flush=True)
            env = populate(settings, pipe, size - len(REAL_PEOPLE))
            for workers in args.workers:
                proc, base, startup, health = start_server(settings, workers)
                try:
                    print(
                        f"  {workers} worker(s): server ready in {startup:.1f} s, gallery "
                        f"{health['gallery_templates']} templates",
                        flush=True,
                    )
                    face = load(
                        base, env["ap"], env["key"], env["probes"], workers + 1, args.face_n
                    )
                    cards = [{"card": c} for c in env["cards"]]
                    card = load(base, env["ap"], env["key"], cards, 8, args.card_n)
                finally:
                    proc.terminate()
                    proc.wait(10)
                for method, r in (("face", face), ("card", card)):
                    row = {"gallery": size, "workers": workers, "method": method, **r}
                    results.append(row)
                    print("   ", json.dumps(row), flush=True)
    print("\n| gallery | workers | method | decisions/s | p50 ms | p95 ms | p99 ms | outcomes |")
    print("|---:|---:|---|---:|---:|---:|---:|---|")
    for r in results:
        print(
            f"| {r['gallery']:,} | {r['workers']} | {r['method']} | {r['per_s']} | "
            f"{r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | {r['outcomes']} |"
        )


def revocation(args) -> None:
    import psycopg

    name = f"fg_bench_{secrets.token_hex(4)}"
    with psycopg.connect(args.db, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = args.db.rpartition("/")[0] + "/" + name
    pipe = FacePipeline()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(data_dir=Path(tmp), db_url=url)
            env = populate(settings, pipe, args.n + args.background)
            store = Store(url)
            with store.session() as s:
                people = [p for (p,) in s.query(Person.id).limit(args.n).all()]
            store.dispose()
            (p1, one, _, _), (p2, two, _, _) = (start_server(settings, 1) for _ in range(2))
            try:
                while httpx.get(f"{two}/healthz").json()["sync"] != "listening":
                    time.sleep(0.05)
                delays = []
                with httpx.Client(timeout=30) as c:
                    for pid in people:
                        before = c.get(f"{two}/healthz").json()["gallery_templates"]
                        r = c.post(
                            f"{one}/v1/persons/{pid}/withdraw",
                            json={},
                            headers={"X-API-Key": env["key"]},
                        )
                        assert r.status_code == 200, r.text
                        t0 = time.perf_counter()
                        while c.get(f"{two}/healthz").json()["gallery_templates"] >= before:
                            time.sleep(0.002)
                        delays.append(time.perf_counter() - t0)
                metrics = httpx.get(f"{two}/metrics").text
            finally:
                for p in (p1, p2):
                    p.terminate()
                    p.wait(10)
    finally:
        with psycopg.connect(args.db, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    lag = [ln for ln in metrics.splitlines() if ln.startswith("facegate_revocation_lag_seconds_")]
    print(f"withdrawals: {len(delays)}; gallery of {args.n + args.background} people")
    print(
        f"client-observed delay (withdraw answered -> other gate's gallery updated): "
        f"p50 {pct(delays, 50) * 1000:.1f} ms, p99 {pct(delays, 99) * 1000:.1f} ms, "
        f"max {max(delays) * 1000:.1f} ms"
    )
    print("server-side lag histogram (commit -> applied) of the second gate:")
    print("\n".join("  " + ln for ln in lag))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    t.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    t.add_argument("--face-n", type=int, default=60)
    t.add_argument("--card-n", type=int, default=600)
    r = sub.add_parser("revocation")
    r.add_argument(
        "--db",
        default=os.environ.get("FACEGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    r.add_argument("--n", type=int, default=50)
    r.add_argument("--background", type=int, default=1000)
    args = ap.parse_args()
    throughput(args) if args.cmd == "throughput" else revocation(args)


if __name__ == "__main__":
    main()
