"""The one validated place for configuration. Defaults are the lawful choice.

Values come from keyword arguments, then ``FACEGATE_*`` environment variables.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import platformdirs
from pydantic import Field, SecretStr, model_validator
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
    # Where the pinned model files are read from; None = inside their installed packages.
    model_dir: Path | None = None
    # Image limits, checked before decoding (header) and before reading (bytes).
    max_image_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(default=40_000_000, ge=10_000)
    min_image_side: int = Field(default=48, ge=16)

    # Gate server (issue 6). Loopback by default: a LAN listener needs TLS (CAC-FR-14).
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # Face work runs in this many threads; at most ``inference_workers + inference_queue``
    # face requests are in flight, the next gets 503 busy at once (never an unbounded queue).
    inference_workers: int = Field(default=2, ge=1, le=64)
    inference_queue: int = Field(default=4, ge=0, le=1024)
    busy_retry_after_s: int = Field(default=1, ge=1, le=60)
    # Upload limits, checked on the byte stream before any decoding.
    max_frame_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_burst_frames: int = Field(default=3, ge=1, le=10)
    # A burst decides on this many of its best-quality frames, which must agree.
    burst_agree_frames: int = Field(default=2, ge=1, le=10)
    # Repeated identical decisions for one person at one access point within this many
    # seconds are one AccessEvent, not many.
    event_dedup_s: float = Field(default=10.0, ge=0.0, le=3600.0)
    # Credentials: PIN lockout after this many consecutive failures, for this long.
    pin_max_failures: int = Field(default=5, ge=1, le=100)
    pin_lockout_s: int = Field(default=15 * 60, ge=1, le=7 * 24 * 3600)
    # PostgreSQL: how long the change listener waits before reconnecting after a failure.
    sync_reconnect_s: float = Field(default=0.5, ge=0.05, le=60.0)
    log_json: bool = True

    # --- people store (issue 5) ------------------------------------------------------------
    # Site key that wraps every person's data key (CAC-FR-14). Exactly one source is used, in
    # this order: a KMS-style hook ("module:callable" returning a KeyProvider), the
    # FACEGATE_SITE_KEY environment variable (base64 of 32 bytes), else a 0600 key file.
    site_key: SecretStr | None = None
    # The key being rotated away from, when the site key comes from the environment.
    site_key_previous: SecretStr | None = None
    site_key_hook: str | None = None
    # None means ``data_dir/site.key``.
    key_file: Path | None = None

    # Operator facts for the generated notice (N1). Empty means unknown: the compliance
    # checks flag it; nothing is ever filled with a placeholder (CAC-FR-05a).
    operator_name: str = ""
    operator_address: str = ""
    operator_contact: str = ""
    pipo_contact: str = ""
    site_name: str = ""

    # Retention after the end of the relationship, per person category (CAC-FR-08b, PIPL-19,
    # PIPL-47). Visitors never get a template; their record goes when their pass ends.
    retention_resident_hours: int = Field(default=7 * 24, ge=0)  # move-out + 7 days
    retention_tenant_hours: int = Field(default=7 * 24, ge=0)  # lease end + 7 days
    retention_guest_hours: int = Field(default=24, ge=0)  # checkout + 24 h
    retention_staff_hours: int = Field(default=7 * 24, ge=0)  # employment end + 7 days
    retention_visitor_hours: int = Field(default=0, ge=0)  # single use, no template
    # Global hard cap on face data after the last interaction (best practice, from BIPA).
    retention_hard_cap_days: int = Field(default=3 * 365, ge=1, le=3 * 365)
    # Days within which a rights request must be answered (PIPL-50; notice field N8).
    rights_response_days: int = Field(default=15, ge=1, le=30)

    # --- web console and self-service (issue 8) ---------------------------------------------
    # Failed logins before an operator account is locked, and for how long (CAC-FR-14).
    web_login_max_failures: int = Field(default=5, ge=1, le=100)
    web_lockout_minutes: int = Field(default=15, ge=1, le=24 * 60)
    web_session_hours: int = Field(default=8, ge=1, le=24 * 7)
    # A resident's one-time invitation link, and the self-service session it opens.
    web_invitation_hours: int = Field(default=72, ge=1, le=24 * 30)
    web_self_session_minutes: int = Field(default=60, ge=5, le=24 * 60)
    # Base URL printed in invitation links and QR codes (e.g. https://gate.example:8443);
    # empty means the URL the operator's browser used.
    public_url: str = ""

    @model_validator(mode="after")
    def _retention_within_cap(self) -> Settings:
        cap_hours = self.retention_hard_cap_days * 24
        for category in PERSON_CATEGORIES:
            if getattr(self, f"retention_{category}_hours") > cap_hours:
                raise ValueError(
                    f"retention for {category} exceeds the hard cap of "
                    f"{self.retention_hard_cap_days} days (CAC-FR-08b)"
                )
        return self

    def retention_for(self, category: str) -> timedelta:
        """How long a person's data stays after their relationship ends (CAC-FR-08b)."""
        if category not in PERSON_CATEGORIES:
            raise ValueError(f"unknown person category {category!r}")
        return timedelta(hours=getattr(self, f"retention_{category}_hours"))

    @property
    def retention_hard_cap(self) -> timedelta:
        return timedelta(days=self.retention_hard_cap_days)

    @property
    def key_file_path(self) -> Path:
        return self.key_file or self.data_dir / "site.key"

    # CAC-FR-15a: warn well before the 100,000-person filing threshold.
    filing_warn_at: int = Field(default=80_000, ge=1, le=100_000)
    # dlib's ResNet runs in onnxruntime when the graph converted on this machine passes its
    # start-up self-check against dlib (same vectors, same model_id); False forces dlib.
    dlib_onnx: bool = True
    # YuNet runs in onnxruntime (same pinned file, same boxes to float rounding, about twice
    # as fast) when its start-up self-check agrees with OpenCV's DNN; False forces OpenCV.
    yunet_onnx: bool = True
    # SFace likewise (same file, vectors equal to cosine 1.0, 7.9 vs 14.5 ms CPU per chip).
    sface_onnx: bool = True

    # --- offline decisions and deadlines (issue 18) -----------------------------------------
    # Every database call on the decision path: connect, statement and lock timeouts (ms).
    # A decision that cannot read the database in this time is decided from memory.
    db_decision_timeout_ms: int = Field(default=300, ge=20, le=10_000)
    # Every other database call (enroll, consent, console): statement and lock timeouts (ms).
    db_timeout_ms: int = Field(default=30_000, ge=100, le=600_000)
    # Connecting to PostgreSQL (libpq counts whole seconds, at least 2).
    db_connect_timeout_s: int = Field(default=2, ge=1, le=60)
    # The decide route's total deadline; a gate may send a shorter one in
    # ``X-Facegate-Deadline-Ms``. An answer is given within it or no decision is made.
    decide_deadline_ms: int = Field(default=1000, ge=50, le=30_000)
    # How often the background probe asks the database whether it is there (ms).
    db_probe_interval_ms: int = Field(default=250, ge=20, le=10_000)
    # Deciding from the in-memory copy for at most this long; then deny (offline_too_long).
    offline_max_s: float = Field(default=900.0, ge=0.0, le=7 * 24 * 3600.0)
    # The local journal of offline decisions (None: data_dir/offline-journal.sqlite), and how
    # many undelivered decisions it holds before the gate stops deciding offline.
    offline_journal: Path | None = None
    offline_journal_max: int = Field(default=100_000, ge=100, le=10_000_000)
    # Safety net besides the change feed: reload the offline copy this often (s).
    offline_refresh_s: float = Field(default=60.0, ge=1.0, le=3600.0)
    # Which gate wrote an offline decision (None: host name and port).
    gate_id: str | None = Field(default=None, max_length=60, pattern=r"^[A-Za-z0-9._:-]+$")

    @property
    def offline_journal_path(self) -> Path:
        return self.offline_journal or self.data_dir / "offline-journal.sqlite"

    @property
    def database_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{self.data_dir / 'facegate.sqlite'}"


PERSON_CATEGORIES: tuple[str, ...] = ("resident", "tenant", "guest", "staff", "visitor")
