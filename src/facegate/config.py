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
    # dlib's ResNet runs in onnxruntime when the graph converted on this machine passes its
    # start-up self-check against dlib (same vectors, same model_id); False forces dlib.
    dlib_onnx: bool = True

    @property
    def database_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{self.data_dir / 'facegate.sqlite'}"
