"""The one validated place for configuration. Defaults are the lawful choice.

Values come from keyword arguments, then ``FACEGATE_*`` environment variables.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import platformdirs
from pydantic import Field, SecretStr, field_validator, model_validator
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
    # (Sign-in throttling: see the issue 13 block below.)
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

    # --- hardening: bodies, decoding, connections, TLS (issue 13 items 1-5, 11-14) ----------
    # Every request body is limited on the byte stream, before it is parsed (Content-Length
    # checked first, streamed bytes counted). JSON and form bodies; uploads have their own
    # limits from max_frame_bytes (decide: x max_burst_frames, enroll: x 5).
    max_json_body_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024)
    max_form_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # Decoded pixels: per request (all its images together) and across the whole process
    # (a budget every decode takes from and gives back; beyond it a request waits, then 503).
    max_request_pixels: int = Field(default=60_000_000, ge=10_000)
    decode_pixel_budget: int = Field(default=120_000_000, ge=10_000)
    decode_budget_wait_s: float = Field(default=5.0, ge=0.0, le=120.0)
    # Images larger than this many pixels are decoded downscaled (JPEG draft mode, reduce on
    # load): detection works on a 640 px copy, embedding on 112-150 px chips.
    decode_target_pixels: int = Field(default=4_000_000, ge=100_000)
    # Formats that cannot be decoded downscaled (PNG, WebP, ...): refused from the header above
    # this many pixels, 16-bit samples counting twice (a 6000x6600 16-bit PNG of 88 KB would
    # otherwise take ~700 MB to decode).
    max_full_decode_pixels: int = Field(default=16_000_000, ge=10_000)
    # Connections: request headers must arrive within this many seconds of connecting or of
    # the previous response, a request body within body_timeout_s; at most max_connections
    # open at once (beyond it new connections are closed at once).
    header_timeout_s: float = Field(default=10.0, ge=0.5, le=600.0)
    body_timeout_s: float = Field(default=30.0, ge=0.5, le=3600.0)
    keep_alive_s: int = Field(default=5, ge=1, le=600)
    max_connections: int = Field(default=4096, ge=16, le=1_000_000)
    # /docs and /redoc (Swagger UI, ReDoc) load their scripts from a public CDN: off unless
    # asked for (an on-site product makes no call off the site). /openapi.json stays.
    api_docs: bool = False
    # CAC-FR-14: set by `facegate serve --insecure-http` (plain HTTP beyond loopback, e.g.
    # behind a TLS proxy); recorded so `facegate comply` reports the choice.
    insecure_http: bool = False
    # --- sign-in, first run and API keys (issue 13 items 6, 7, 9; issue 16 item 4) ---------
    # The one-time code `facegate serve` prints while no account exists; it lasts this long.
    web_setup_code_minutes: int = Field(default=30, ge=1, le=24 * 60)
    # Failed sign-ins are counted per user name (known or not, so the answer reveals no
    # account) and per client address. After the free failures each further failure makes
    # the next attempt wait a growing delay (base doubled per failure, capped); attempts
    # during a delay are answered at once and not checked. The per-name cap stays short, so
    # nobody can keep an operator out for long; an address guessing many names waits longer.
    web_login_max_failures: int = Field(default=5, ge=1, le=100)  # free, per user name
    web_login_address_free_failures: int = Field(default=10, ge=1, le=1000)
    web_login_base_delay_s: int = Field(default=2, ge=1, le=60)
    web_login_account_max_delay_s: int = Field(default=60, ge=1, le=3600)
    web_login_address_max_delay_s: int = Field(default=15 * 60, ge=1, le=24 * 3600)
    # A name or address with no failure for this long starts again from zero.
    web_login_forget_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    # A browser an operator signed in from skips the per-name delay for this long.
    web_known_device_days: int = Field(default=90, ge=1, le=400)
    # An API key's last_used_at is written at most this often (no write per request).
    api_key_touch_interval_s: int = Field(default=60, ge=1, le=24 * 3600)
    # --- events out: MQTT and signed webhooks from a durable outbox (issue 15) -------------
    # Destinations, each ``mqtt://[user:pass@]host[:port][/prefix]`` (``mqtts://`` for TLS),
    # ``https://host/path#secret=SECRET`` or ``http://`` on loopback only (CAC-FR-14). The
    # payload is a whitelist with a pseudonym at most (CAC-FR-08a); see docs/events.md.
    events: list[str] = Field(default_factory=list)
    # Longest wait between retries to a destination that is down (backoff doubles up to it).
    events_retry_max_s: float = Field(default=30.0, ge=0.1, le=3600.0)
    # Outbox rows go once every destination acknowledged them, or after this long regardless.
    events_keep_hours: int = Field(default=72, ge=1, le=24 * 30)
    # Home Assistant MQTT discovery (retained config per access point) and its topic prefix.
    events_discovery: bool = True
    events_discovery_prefix: str = Field(default="homeassistant", pattern=r"^[A-Za-z0-9_/-]+$")

    @field_validator("events")
    @classmethod
    def _events_urls(cls, urls: list[str]) -> list[str]:
        from urllib.parse import urlsplit

        for url in urls:
            parts = urlsplit(url)
            where = parts.hostname or ""
            if parts.scheme in ("mqtt", "mqtts", "https") and where:
                pass
            elif parts.scheme == "http" and where in ("127.0.0.1", "::1", "localhost"):
                pass  # plain HTTP only to a receiver on this machine (CAC-FR-14)
            else:
                raise ValueError(
                    f"event destination {url.split('#')[0]!r}: use mqtt://, mqtts://, "
                    "https:// or http:// to 127.0.0.1 (plain HTTP leaves the machine unencrypted)"
                )
            if parts.scheme.startswith("http") and "secret=" not in parts.fragment:
                raise ValueError(
                    f"webhook {url.split('#')[0]!r} needs a signing secret: append "
                    "#secret=<at least 16 characters> (or #secret_file=/path)"
                )
        return urls

    # --- compliance inventories (issue 17) --------------------------------------------------
    # Largest inventory file `facegate comply --inventory` reads (bytes); a larger file is
    # refused before it is parsed, so a bad file costs bounded time and memory.
    inventory_max_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    # --- audit anchoring and refusal limits (issue 13, items 17 and 18) -------------------
    # The audit key (Ed25519, 0600) that seals every audit entry and signs checkpoints of the
    # chain's head; it never goes into the database. None means ``audit.key`` beside the site
    # key. Checkpoints are appended to ``audit-checkpoints.jsonl`` in the data directory.
    audit_key_file: Path | None = None
    # A checkpoint after this many appends by one process, or this many seconds after an
    # append, whichever comes first; also at shutdown and at every ``audit verify``.
    audit_checkpoint_every: int = Field(default=100, ge=1, le=1_000_000)
    audit_checkpoint_seconds: float = Field(default=60.0, ge=0.1, le=24 * 3600)
    # Outside witnesses that receive every checkpoint: a syslog receiver "udp://host:port" and
    # an HTTP(S) webhook URL (JSON POST). Empty means none.
    audit_witness_syslog: str = ""
    audit_witness_webhook: str = ""
    # Refusals of the same kind by the same principal within this window are one counted
    # summary entry after the first, not one audit row each.
    audit_refusal_window_s: int = Field(default=60, ge=1, le=24 * 3600)
    # How many objects one site may hold (an admin key cannot create without bound).
    max_access_points_per_site: int = Field(default=200, ge=1, le=100_000)
    max_api_keys_per_site: int = Field(default=200, ge=1, le=100_000)
    max_persons_per_site: int = Field(default=150_000, ge=1, le=10_000_000)

    @property
    def audit_key_path(self) -> Path:
        return self.audit_key_file or self.key_file_path.parent / "audit.key"

    @property
    def audit_checkpoint_path(self) -> Path:
        return self.data_dir / "audit-checkpoints.jsonl"

    # --- camera agent and HTTP door output (issue 15, `facegate agent`) ------------------
    # Faces are detected on a copy of each camera frame at most this many pixels long...
    agent_detect_side: int = Field(default=480, ge=160, le=1920)
    # ...and a face whose shorter box side reaches this many camera pixels (and passes the
    # gate quality profile: sharp, lit, frontal) is at gate size: its frames join a burst.
    agent_min_face_px: int = Field(default=80, ge=40, le=2000)
    # With nobody in view, or only people already decided, faces are searched at most this
    # often per second (0: every frame); while a person's burst is being gathered, every frame.
    agent_idle_fps: float = Field(default=5.0, ge=0.0, le=120.0)
    # Gate-size frames of one person looked at before sending the best ``max_burst_frames``
    # of them. 2 (``agent_burst_gap_s`` apart): the door opens about 0.5 s after the first
    # usable frame (both frames must name the same person, ``burst_agree_frames``); each more
    # frame adds a gap (see README, "Connect a camera and a door").
    agent_burst_window: int = Field(default=2, ge=1, le=30)
    # The frames of a burst are at least this far apart: liveness (issue 14) reads motion
    # across the burst, and its burst rule was calibrated on frames about 0.5 s apart; frames
    # 1/15 s apart show a live face as still as a photo. It adds this much to a decision.
    agent_burst_gap_s: float = Field(default=0.4, ge=0.0, le=2.0)
    # A person is gone when unseen this long (and for 3 processed frames): the next
    # appearance is a new approach with its own decision.
    agent_track_lost_s: float = Field(default=1.0, ge=0.1, le=60.0)
    # A person who stays in view is decided again only after this many seconds.
    agent_redecide_s: float = Field(default=10.0, ge=1.0, le=3600.0)
    # After facegate could not decide (server down, timeout), try again after this long.
    agent_retry_s: float = Field(default=2.0, ge=0.1, le=600.0)
    # Card+face doors: a card waits this long for a face burst, then is dropped.
    agent_credential_wait_s: float = Field(default=10.0, ge=1.0, le=120.0)
    # Camera reconnect backoff: doubles from min to max while the camera stays down.
    agent_reconnect_min_s: float = Field(default=0.5, ge=0.05, le=60.0)
    agent_reconnect_max_s: float = Field(default=10.0, ge=0.1, le=600.0)
    # Remote decide call (agent with --server): past this the door stays closed.
    agent_decide_timeout_s: float = Field(default=5.0, ge=0.5, le=60.0)
    # Door outputs: release time, and per-call timeout and retries (HTTP relays).
    door_open_s: float = Field(default=3.0, ge=0.1, le=600.0)
    door_timeout_s: float = Field(default=2.0, ge=0.1, le=60.0)
    door_retries: int = Field(default=2, ge=0, le=10)
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

    # --- Chinese throughout, times and addresses people can use (issue 16 items 7, 9) -------
    # Times are stored in UTC and shown in the site's time zone (an IANA name).
    site_time_zone: str = "Asia/Shanghai"

    @field_validator("site_time_zone")
    @classmethod
    def _known_time_zone(cls, name: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {name!r}; use an IANA name such as Asia/Shanghai"
            ) from exc
        return name

    @property
    def database_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{self.data_dir / 'facegate.sqlite'}"


PERSON_CATEGORIES: tuple[str, ...] = ("resident", "tenant", "guest", "staff", "visitor")
