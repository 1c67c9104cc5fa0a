"""Shared fixtures: where the labelled face data lives, and the PostgreSQL test database."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FACEGATE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
TEST_PG = os.environ.get("FACEGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
ARTIFACTS = REPO_ROOT / "artifacts"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The labelled face images beside the checkout; tests that need them skip without."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"face data not found at {SHARED_DATA} (set FACEGATE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def face_pipeline():
    """The default FacePipeline, loaded once per test session (models take a moment)."""
    from facegate.vision import FacePipeline

    return FacePipeline()
