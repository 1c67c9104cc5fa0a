"""Anchoring the audit chain outside the database (issue 13 item 17; PIPL-54, principle 7).

A hash chain stored next to the data cannot, by itself, detect someone with write access to
the database who rewrites a row and recomputes every later hash, cuts the tail and moves the
head back, appends a well-formed row, or empties the table. Two things the database does not
hold close that gap:

* **The audit key** (``audit.key`` beside the site key, 0600): an Ed25519 key. Every entry
  carries a seal, HMAC-SHA256 of its hash under a key derived from it (microseconds on the hot
  path), so a row written or recomputed without the key is found at once.
* **Checkpoints** of the head (sequence, hash, time), signed with the audit key, each chaining
  to the previous one, appended one JSON line each to ``audit-checkpoints.jsonl`` in the data
  directory (0600, append-only) and sent to the configured outside witnesses (syslog, a
  webhook). A chain shorter than its latest checkpoint was truncated or reset; an entry whose
  hash differs from a checkpoint was rewritten.

A checkpoint is written after every N appends or T seconds after an append by the process that
made them (only heads this process committed itself, never a head read back from the
database), at shutdown, and by every ``facegate audit verify`` that found the chain intact.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import queue
import socket
import stat
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from facegate.config import Settings
from facegate.errors import KeyUnavailable

log = logging.getLogger("facegate.audit")

ZERO = "0" * 64
# The key in ``Session.info`` under which a session finds its process's anchor.
INFO_KEY = "facegate_audit_anchor"
# ... and the settings its store was opened with (the domain reads object limits from them).
SETTINGS_INFO_KEY = "facegate_settings"


# --- the audit key ----------------------------------------------------------------------------


class AuditKey:
    """The Ed25519 audit key: signs checkpoints; a derived secret seals entries."""

    def __init__(self, seed: bytes) -> None:
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        self.public = self._private.public_key()
        raw = self.public.public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = "audit-" + hashlib.sha256(raw).hexdigest()[:16]
        self.public_b64 = base64.b64encode(raw).decode()
        self._mac_key = hmac.new(seed, b"facegate/audit-entry-seal/v1", "sha256").digest()

    def seal(self, entry_hash: str) -> str:
        return hmac.new(self._mac_key, entry_hash.encode(), "sha256").hexdigest()

    def seal_ok(self, entry_hash: str, mac: str | None) -> bool:
        return mac is not None and hmac.compare_digest(self.seal(entry_hash), mac)

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self._private.sign(data)).decode()

    def signature_ok(self, data: bytes, signature: str) -> bool:
        return verify_signature(self.public, data, signature)

    def __repr__(self) -> str:  # never print key material
        return f"AuditKey({self.key_id!r})"


def verify_signature(public: Ed25519PublicKey, data: bytes, signature: str) -> bool:
    try:
        public.verify(base64.b64decode(signature, validate=True), data)
    except (InvalidSignature, ValueError):
        return False
    return True


def create_key(path: Path) -> bool:
    """Write a new audit key file (0600 from the start); False when one already exists."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    seed = os.urandom(32)
    body = {"kind": "ed25519", "seed": base64.b64encode(seed).decode()}
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        json.dump(body, fh)
        fh.flush()
        os.fsync(fh.fileno())
    return True


def load_key(path: Path) -> AuditKey | None:
    """The audit key, or None when this data directory has none (an older install)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyUnavailable(f"audit key file {path} is readable by others; run `chmod 600 {path}`")
    try:
        seed = base64.b64decode(json.loads(path.read_text())["seed"], validate=True)
        return AuditKey(seed)
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyUnavailable(f"audit key file {path} is damaged") from exc


# --- the checkpoint file ----------------------------------------------------------------------


def _canonical(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Checkpoint:
    n: int
    seq: int
    hash: str
    at: str
    reason: str
    line_hash: str


@dataclass(frozen=True)
class CheckpointLog:
    """What the checkpoint file says, after checking every signature and link."""

    checkpoints: list[Checkpoint]
    problems: list[str]
    exists: bool

    @property
    def genesis(self) -> Checkpoint | None:
        cps = self.checkpoints
        return cps[0] if cps and cps[0].reason == "genesis" and cps[0].n == 0 else None

    @property
    def latest(self) -> Checkpoint | None:
        return max(self.checkpoints, key=lambda c: c.seq) if self.checkpoints else None


class CheckpointFile:
    """``audit-checkpoints.jsonl``: one signed line per checkpoint, each naming the previous
    line's SHA-256. Appends are serialised across processes with an exclusive file lock."""

    def __init__(self, path: Path, key: AuditKey) -> None:
        self.path = path
        self.key = key

    def _last_line(self, fh: Any) -> bytes | None:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size == 0:
            return None
        back = min(size, 8192)
        fh.seek(size - back)
        lines = fh.read(back).splitlines()
        return lines[-1] if lines and lines[-1].strip() else None

    def append(self, seq: int, head_hash: str, reason: str) -> dict[str, Any] | None:
        """Append a checkpoint unless one at this sequence or later is already there.

        Returns the record written (for the witnesses), or None when nothing was written."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "r+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                last = self._last_line(fh)
                if last is None:
                    n, prev = 0, ZERO
                    if reason != "genesis":
                        reason = f"{reason} (file started again)"
                else:
                    try:
                        rec = json.loads(last)
                        n, prev = int(rec["n"]) + 1, hashlib.sha256(last).hexdigest()
                        if seq <= int(rec["seq"]):
                            return None  # already anchored at this point or beyond
                    except (ValueError, KeyError, TypeError):
                        n, prev = -1, hashlib.sha256(last).hexdigest()
                fields = {
                    "v": 1,
                    "n": n,
                    "seq": seq,
                    "hash": head_hash,
                    "at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "reason": reason,
                    "prev": prev,
                    "key_id": self.key.key_id,
                }
                record = dict(fields, sig=self.key.sign(_canonical(fields)))
                line = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
                fh.seek(0, os.SEEK_END)
                fh.write(line + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
                return record
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def read(self) -> CheckpointLog:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return CheckpointLog([], [], False)
        out: list[Checkpoint] = []
        problems: list[str] = []
        prev, last_seq = ZERO, -1
        for i, line in enumerate(raw.splitlines()):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                sig = rec.pop("sig")
                cp = Checkpoint(
                    int(rec["n"]),
                    int(rec["seq"]),
                    str(rec["hash"]),
                    str(rec["at"]),
                    str(rec["reason"]),
                    hashlib.sha256(line).hexdigest(),
                )
            except (ValueError, KeyError, TypeError, AttributeError):
                problems.append(f"checkpoint line {i + 1} is not readable")
                prev = hashlib.sha256(line).hexdigest()
                continue
            if not self.key.signature_ok(_canonical(rec), str(sig)):
                problems.append(f"checkpoint {cp.n} (line {i + 1}) has no valid signature")
            elif rec.get("prev") != prev or cp.n != len(out):
                problems.append(f"checkpoint {cp.n} (line {i + 1}) does not follow the one before")
            elif cp.seq < last_seq:
                problems.append(f"checkpoint {cp.n} goes back from entry {last_seq} to {cp.seq}")
            else:
                out.append(cp)
                last_seq = cp.seq
            prev = cp.line_hash
        if out and out[0].reason != "genesis":
            problems.append(
                "the checkpoint file does not start with the checkpoint made when the audit "
                "key was created: its beginning was removed"
            )
        if self.path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            problems.append(f"the checkpoint file {self.path} is writable or readable by others")
        return CheckpointLog(out, problems, True)


# --- outside witnesses --------------------------------------------------------------------------


class SyslogWitness:
    """RFC 5424 messages over UDP (facility local0, severity notice)."""

    def __init__(self, url: str) -> None:
        parsed = urlparse(url if "://" in url else f"udp://{url}")
        if parsed.scheme != "udp" or not parsed.hostname or not parsed.port:
            raise ValueError(f"audit syslog witness must look like udp://host:514, not {url!r}")
        self.addr = (parsed.hostname, parsed.port)
        self.name = f"syslog {parsed.hostname}:{parsed.port}"

    def send(self, record: dict[str, Any]) -> None:
        body = json.dumps(record, sort_keys=True, separators=(",", ":"))
        msg = f"<133>1 {record['at']} {socket.gethostname()} facegate - audit-checkpoint - {body}"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(msg.encode(), self.addr)


class WebhookWitness:
    """A JSON POST of each checkpoint to an HTTP(S) endpoint."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        if urlparse(url).scheme not in ("http", "https"):
            raise ValueError(f"audit webhook witness must be an http(s) URL, not {url!r}")
        self.url, self.timeout_s, self.name = url, timeout_s, f"webhook {url}"

    def send(self, record: dict[str, Any]) -> None:
        req = urllib.request.Request(
            self.url,
            data=json.dumps({"audit_checkpoint": record}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310
            resp.read(1024)


class _WitnessQueue:
    """Sends off the request path, one thread, bounded: a slow witness never slows a gate."""

    def __init__(self, witnesses: list[Any]) -> None:
        self.witnesses = witnesses
        self.q: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=1000)
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def put(self, record: dict[str, Any]) -> None:
        if not self.witnesses:
            return
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="audit-witness", daemon=True)
                self.thread.start()
        try:
            self.q.put_nowait(record)
        except queue.Full:
            log.warning("audit witness queue full; a checkpoint was not sent")

    def _run(self) -> None:
        while True:
            record = self.q.get()
            try:
                if record is None:
                    return
                for w in self.witnesses:
                    try:
                        w.send(record)
                    except Exception as exc:  # noqa: BLE001 - the file copy stays; say so
                        log.warning(
                            "audit checkpoint not delivered to %s: %s", w.name, exc.__class__
                        )
            finally:
                self.q.task_done()

    def flush(self, timeout_s: float = 5.0) -> None:
        end = time.monotonic() + timeout_s
        while self.q.unfinished_tasks and time.monotonic() < end:
            time.sleep(0.01)


def witnesses_for(settings: Settings) -> list[Any]:
    out: list[Any] = []
    if settings.audit_witness_syslog:
        out.append(SyslogWitness(settings.audit_witness_syslog))
    if settings.audit_witness_webhook:
        out.append(WebhookWitness(settings.audit_witness_webhook))
    return out


# --- the anchor one process holds ---------------------------------------------------------------


class Anchor:
    """Seals entries and writes checkpoints for one process and one data directory."""

    def __init__(
        self,
        key: AuditKey,
        checkpoint_path: Path,
        *,
        every: int = 100,
        seconds: float = 60.0,
        witnesses: list[Any] | None = None,
    ) -> None:
        self.key = key
        self.file = CheckpointFile(checkpoint_path, key)
        self.every, self.seconds = every, seconds
        self.witness = _WitnessQueue(list(witnesses or []))
        self._lock = threading.Lock()
        self._unanchored = 0
        self._last: tuple[int, str] | None = None  # newest head this process committed
        self._last_checkpoint = time.monotonic()
        self._timer: threading.Thread | None = None
        self._stop = threading.Event()

    def seal(self, entry_hash: str) -> str:
        return self.key.seal(entry_hash)

    def committed(self, seq: int, head_hash: str, appended: int) -> None:
        """Called after a commit that appended entries; checkpoints every N or T."""
        with self._lock:
            if self._last is None or seq > self._last[0]:
                self._last = (seq, head_hash)
            self._unanchored += appended
            due = self._unanchored >= self.every or (
                time.monotonic() - self._last_checkpoint >= self.seconds
            )
        if due:
            self.flush("appends")
        else:
            self._ensure_timer()

    def checkpoint(self, seq: int, head_hash: str, reason: str) -> dict[str, Any] | None:
        record = self.file.append(seq, head_hash, reason)
        if record is not None:
            self.witness.put(record)
        return record

    def flush(self, reason: str = "shutdown") -> None:
        """Checkpoint the newest head this process committed, if not yet anchored."""
        with self._lock:
            last, pending = self._last, self._unanchored
            self._unanchored = 0
            self._last_checkpoint = time.monotonic()
        if last is not None and pending:
            try:
                self.checkpoint(last[0], last[1], reason)
            except OSError as exc:  # the chain itself is committed; say loudly what is missing
                log.error("audit checkpoint could not be written: %s", exc)

    def _ensure_timer(self) -> None:
        with self._lock:
            if self._timer is not None and self._timer.is_alive():
                return
            self._stop.clear()
            self._timer = threading.Thread(target=self._tick, name="audit-anchor", daemon=True)
            self._timer.start()

    def _tick(self) -> None:
        while not self._stop.wait(min(self.seconds, 5.0)):
            with self._lock:
                due = self._unanchored and (
                    time.monotonic() - self._last_checkpoint >= self.seconds
                )
            if due:
                self.flush("timer")

    def close(self) -> None:
        """At shutdown: anchor what is pending and hand it to the witnesses."""
        self._stop.set()
        self.flush("shutdown")
        self.witness.flush()


_ANCHORS: dict[tuple[str, str], Anchor] = {}
_ANCHORS_LOCK = threading.Lock()


def anchor_for(settings: Settings) -> Anchor | None:
    """This process's anchor for the data directory, or None where no audit key exists."""
    key_path, cp_path = settings.audit_key_path, settings.audit_checkpoint_path
    ident = (str(key_path.resolve()), str(cp_path.resolve()))
    with _ANCHORS_LOCK:
        found = _ANCHORS.get(ident)
        if found is not None:
            return found
        key = load_key(key_path)
        if key is None:
            return None
        anchor = Anchor(
            key,
            cp_path,
            every=settings.audit_checkpoint_every,
            seconds=settings.audit_checkpoint_seconds,
            witnesses=witnesses_for(settings),
        )
        if not _ANCHORS:
            # Whatever a process appended is checkpointed when it exits (CLI commands too).
            atexit.register(flush_all)
        _ANCHORS[ident] = anchor
        return anchor


def attach(store: Any, settings: Settings) -> Anchor | None:
    """Give every session of ``store`` this process's anchor (seals and checkpoints) and a
    refusal counter (a flood of refusals becomes counted summary entries, item 18)."""
    from facegate.audit import REFUSALS_INFO_KEY, RefusalSummaries

    anchor = anchor_for(settings)
    info = dict(store.session_factory.kw.get("info") or {})
    if anchor is not None:
        info[INFO_KEY] = anchor
    info.setdefault(REFUSALS_INFO_KEY, RefusalSummaries(settings.audit_refusal_window_s))
    info[SETTINGS_INFO_KEY] = settings
    store.session_factory.configure(info=info)
    return anchor


def flush_refusals(store: Any) -> None:
    """At shutdown: every counted refusal still in a window becomes its summary entry."""
    from facegate.audit import write_refusal_summaries

    with store.session() as s:
        if write_refusal_summaries(s, everything=True):
            s.commit()


def ensure(settings: Settings, store: Any) -> Anchor | None:
    """Create the audit key with the data directory, and its first (genesis) checkpoint of
    the head as it is now; entries after it must carry a seal. Never re-creates a genesis
    beside an existing key: a missing checkpoint file is a finding, not a fresh start."""
    from sqlalchemy import select

    from facegate.audit import current_head
    from facegate.store.models import AuditEntry

    if not settings.audit_key_path.exists():
        with store.session() as s:
            sealed = s.scalar(select(AuditEntry.seq).where(AuditEntry.mac.is_not(None)).limit(1))
        if sealed is not None:
            # Another machine (or an earlier data directory) seals this database's audit log:
            # a new key here would make every later entry look forged. Never create one.
            raise KeyUnavailable(
                f"the audit log of this database is sealed with an audit key that is not at "
                f"{settings.audit_key_path}; copy audit.key (0600) from the data directory of "
                "the machine that created it, beside site.key"
            )
    created = create_key(settings.audit_key_path)
    anchor = attach(store, settings)
    if created and anchor is not None:
        with store.session() as s:
            seq, head_hash = current_head(s)
        anchor.checkpoint(seq, head_hash, "genesis")
    return anchor


def flush_all() -> None:
    with _ANCHORS_LOCK:
        anchors = list(_ANCHORS.values())
    for a in anchors:
        with contextlib.suppress(Exception):
            a.close()


def open_store(settings: Settings) -> Any:
    """The configured store with this process's anchor attached (every writer of audit
    entries must seal them, or verification reports them as inserted)."""
    from facegate.store.db import Store

    store = Store(settings.database_url)
    attach(store, settings)
    return store
