"""People-store figures: gallery load (decrypt) time, enrollment and withdrawal latency.

    PYTHONPATH=src python bench/store_bench.py [--n 1000 100000] [--pg URL]

Templates are synthesised (random unit vectors, 256-D like the fused SFace+dlib template);
this measures the store, not the models. Prints one line per figure.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np
from sqlalchemy import create_engine, insert, text

from facegate import domain
from facegate.config import Settings
from facegate.store.crypto import load_keyring
from facegate.store.db import Store, normalize_url
from facegate.store.models import Consent, Person, PersonKey, Template, new_id, utcnow

DIM = 256
MODEL = "bench-model"


class RandomPipe:
    """Enough pipeline for enroll(): a random template per image."""

    model_id, threshold = MODEL, 0.99

    def analyze(self, image, profile="gate"):
        class Q:
            ok, reasons, score = True, (), 1.0

        class F:
            quality, box = Q(), (0, 0, 100, 100)

        v = np.random.default_rng(int(image)).standard_normal(DIM).astype(np.float32)
        f = F()
        f.template = v / np.linalg.norm(v)
        return [f]

    def similarity(self, a, b):
        return float(np.dot(a, b))


def populate(store: Store, keyring, site_id: str, notice_id: int, sha: str, n: int) -> None:
    """Insert n consenting persons with one encrypted template each, in bulk."""
    rng = np.random.default_rng(0)
    now = utcnow()
    batch = 5000
    with store.engine.begin() as conn:
        for start in range(0, n, batch):
            persons, keys, templates, consents = [], [], [], []
            for _ in range(min(batch, n - start)):
                pid = new_id("p")
                dek = keyring.new_data_key()
                kid, wrapped = keyring.wrap_data_key(pid, dek)
                v = rng.standard_normal(DIM).astype(np.float32)
                tid = new_id("t")
                nonce, ct = keyring.encrypt_template(
                    dek, v / np.linalg.norm(v), template_id=tid, person_id=pid, model_id=MODEL
                )
                persons.append(
                    dict(
                        id=pid,
                        site_id=site_id,
                        category="resident",
                        minor_under_14=False,
                        status="active",
                        created_at=now,
                    )
                )
                keys.append(dict(person_id=pid, key_id=kid, wrapped=wrapped, created_at=now))
                templates.append(
                    dict(
                        id=tid,
                        person_id=pid,
                        model_id=MODEL,
                        dim=DIM,
                        nonce=nonce,
                        ciphertext=ct,
                        created_at=now,
                    )
                )
                consents.append(
                    dict(
                        id=new_id("consent"),
                        person_id=pid,
                        site_id=site_id,
                        notice_version_id=notice_id,
                        notice_sha256=sha,
                        scope=[],
                        channel="front_desk",
                        recorded_by="bench",
                        basis="separate_consent",
                        given_at=now,
                    )
                )
            conn.execute(insert(Person), persons)
            conn.execute(insert(PersonKey), keys)
            conn.execute(insert(Template), templates)
            conn.execute(insert(Consent), consents)


def run(label: str, url: str, data_dir: Path, sizes: list[int]) -> None:
    settings = Settings(data_dir=data_dir, db_url=url)
    store = Store(url)
    keyring = load_keyring(settings, create=True)
    with store.session() as s:
        site = domain.init_site(s, settings, actor="bench").site_id
        notice = domain.current_notice(s, site)
    done = 0
    for n in sizes:
        populate(store, keyring, site, notice.id, notice.sha256, n - done)
        done = n
        with store.session() as s:
            t = time.perf_counter()
            count = sum(1 for _ in domain.load_gallery_entries(s, keyring, site, MODEL))
            dt = time.perf_counter() - t
        print(
            f"{label}: load_gallery_entries {count} templates: {dt:.2f} s "
            f"({dt / count * 1e6:.0f} us/template)"
        )
    pipe = RandomPipe()
    enroll_ms, withdraw_ms = [], []
    with store.session() as s:
        gallery = domain.build_site_gallery(s, keyring, site, MODEL)
        for i in range(20):
            p = domain.add_person(s, actor="bench", category="resident")
            domain.record_consent(s, actor="bench", person_id=p.id)
            t = time.perf_counter()
            domain.enroll(
                s,
                keyring,
                pipe,
                actor="bench",
                person_id=p.id,
                images=[10_000_000 + i],
                site_gallery=gallery,
            )
            enroll_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            domain.withdraw(s, actor="bench", person_id=p.id)
            withdraw_ms.append((time.perf_counter() - t) * 1000)
    print(
        f"{label}: enroll (duplicate check over {done} in memory, 1 template) median "
        f"{statistics.median(enroll_ms):.1f} ms; withdraw median "
        f"{statistics.median(withdraw_ms):.1f} ms"
    )
    store.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 100_000])
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite", f"sqlite:///{tmp}/facegate.sqlite", Path(tmp) / "data", args.n)
    schema = f"fg_bench_{secrets.token_hex(4)}"
    admin = create_engine(normalize_url(args.pg))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"{args.pg}?options={quote(f'-csearch_path={schema}')}"
            run("postgresql", url, Path(tmp) / "data", args.n)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


if __name__ == "__main__":
    main()
