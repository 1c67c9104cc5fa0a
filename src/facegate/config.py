"""The one validated place for configuration. Defaults are the lawful choice.

Values come from keyword arguments, then ``FACEGATE_*`` environment variables.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("facegate", appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACEGATE_", extra="forbid")

    data_dir: Path = Field(default_factory=default_data_dir)
    # None means the embedded SQLite file inside data_dir.
    db_url: str | None = None

    # Recognition: one validated setting picks the plugins (CompreFace-style registry).
    detector: str = "yunet"
    embedders: tuple[str, ...] = ("sface", "dlib")
    inference_threads: int = Field(default=1, ge=1, le=64)

    # CAC-FR-15a: warn well before the 100,000-person filing threshold.
    filing_warn_at: int = Field(default=80_000, ge=1, le=100_000)

    @property
    def database_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{self.data_dir / 'facegate.sqlite'}"
