"""Shared fixtures for the people-store tests: a fresh store on SQLite and on PostgreSQL, a
keyring, and a small deterministic fake face pipeline with the FacePipeline surface.

Import the fixtures into a test module with ``from store_support import *``.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest
from conftest import TEST_PG
from sqlalchemy import create_engine, text

from facegate.audit import GENESIS
from facegate.config import Settings
from facegate.store.crypto import Keyring, load_keyring
from facegate.store.db import Store, normalize_url
from facegate.store.models import Base

__all__ = [
    "COMPLETE_NOTICE_FACTS",
    "FakePipeline",
    "publish_complete_notice",
    "COMPLETE_INIT_ARGS",
    "COMPLETE_NOTICE_ARGS",
    "backend",
    "db_url",
    "face_image",
    "keyring",
    "pipe",
    "settings",
    "store",
    "store_pg_schema",
    "store_sqlite_template",
]

IMG = 24  # synthetic "images" are 24x24x3 uint8 arrays


def face_image(identity: int, sample: int = 0, *, dark: bool = False) -> np.ndarray:
    """A synthetic image: a fixed pattern per identity plus a little noise per sample."""
    base = np.random.default_rng(1000 + identity).integers(40, 216, (IMG, IMG, 3))
    noise = np.random.default_rng(10_000 * identity + sample + 1).integers(-12, 13, base.shape)
    img = np.clip(base + noise, 0, 255).astype(np.uint8)
    return (img // 12).astype(np.uint8) if dark else img


@dataclass
class FakeQuality:
    ok: bool
    reasons: tuple[str, ...] = ()
    score: float = 0.9


@dataclass
class FakeFace:
    template: np.ndarray | None
    quality: FakeQuality
    box: tuple[float, float, float, float] = (0.0, 0.0, float(IMG), float(IMG))


@dataclass
class FakePipeline:
    """Deterministic templates: a fixed random projection of the centred pixels."""

    model_id: str = "fake-v1"
    threshold: float = 0.6
    dim: int = 64
    calls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._proj = np.random.default_rng(7).standard_normal((self.dim, IMG * IMG * 3))

    def analyze(self, image: np.ndarray, profile: str = "gate") -> list[FakeFace]:
        self.calls.append(profile)
        img = np.asarray(image, dtype=np.float32)
        if img.size == 0 or img.max() == 0:
            return []
        if img.mean() < 25:
            return [FakeFace(None, FakeQuality(False, ("too_dark",)))]
        v = self._proj @ (img.reshape(-1) - img.mean())
        v = (v / np.linalg.norm(v)).astype(np.float32)
        return [FakeFace(v, FakeQuality(True))]

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        return float(np.dot(a, b))

    def liveness_of(self, rgbs: list[np.ndarray], faces: list[Any]) -> Any:
        """Every face is live here: these tests are about what follows the liveness check;
        tests/test_liveness*.py check liveness itself, with the real models on real sequences."""
        from facegate.vision.liveness import Liveness

        return Liveness(True, 1.0, 0.5, "live", frames=sum(f is not None for f in faces))


# What the generated notice needs beyond the database to have every required field
# (CAC-FR-05a): consent is only recorded against a complete notice (CAC-FR-06a).
COMPLETE_NOTICE_FACTS = {
    "necessity": "the gates are unstaffed at night; a card alone can be lent or stolen",
    "processors": "none",
    "accessibility": "large print and audio at the front desk; staff help on request",
    "minors_rules_link": "https://gate.example.org/notice/minors",
    "notice_link": "https://gate.example.org/notice",
}

# The same through the CLI: ``facegate init ...``, then ``facegate notice publish ...`` once the
# face access points exist.
COMPLETE_INIT_ARGS = (
    "--operator-name",
    "ACME Property",
    "--operator-address",
    "1 Garden Road, Hangzhou",
    "--operator-contact",
    "0571-0000-0000",
    "--site-name",
    "Sunny Garden",
)
COMPLETE_NOTICE_ARGS = tuple(
    x for k, v in COMPLETE_NOTICE_FACTS.items() for x in ("--" + k.replace("_", "-"), v)
)


def publish_complete_notice(
    session: Any, settings: Settings, *, site_id: str | None = None, actor: str = "test"
) -> Any:
    """Fill in the operator facts a fixture left empty and publish a complete notice.

    Call it once the site has its face access points (N7 names their alternatives)."""
    from facegate import domain
    from facegate.store.models import Organization

    site = domain.get_site(session, site_id)
    org = session.get(Organization, site.organization_id)
    org.name = org.name or "ACME Property"
    org.address = org.address or "1 Garden Road, Hangzhou"
    org.contact = org.contact or "0571-0000-0000"
    site.name = site.name or "Sunny Garden"
    session.commit()
    return domain.publish_site_notice(
        session, settings, actor=actor, site_id=site.id, **COMPLETE_NOTICE_FACTS
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def store_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per test run; each test gets a copy (migrating is the slow
    part, and the migration itself is tested separately)."""
    path = tmp_path_factory.mktemp("template") / "facegate.sqlite"
    Store(f"sqlite:///{path}").dispose()
    return path


@pytest.fixture(scope="session")
def store_pg_schema() -> Iterator[str]:
    """A random PostgreSQL schema for this test run, migrated once, dropped at the end, so
    parallel runs and other suites never collide."""
    schema = f"fg_test_{secrets.token_hex(6)}"
    admin = create_engine(normalize_url(TEST_PG))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in TEST_PG else "?"
    url = f"{TEST_PG}{sep}options={quote(f'-csearch_path={schema}')}"
    Store(url).dispose()
    try:
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, migrated, empty database: a copy of the SQLite template, or the run's
    PostgreSQL schema with every table emptied."""
    if backend == "sqlite":
        path = tmp_path / "facegate.sqlite"
        shutil.copyfile(request.getfixturevalue("store_sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("store_pg_schema")
    engine = create_engine(normalize_url(url))
    with engine.begin() as conn:  # DELETE: much faster than TRUNCATE on tiny tables
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
        conn.execute(
            text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h)"), {"h": GENESIS}
        )
    engine.dispose()
    yield url


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", db_url=db_url)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    yield s
    s.dispose()


@pytest.fixture
def keyring(settings: Settings) -> Keyring:
    return load_keyring(settings, create=True)


@pytest.fixture
def pipe() -> FakePipeline:
    return FakePipeline()
