"""Encrypted backups of a facegate installation, and their restore onto a new machine.

A backup holds a consistent copy of the database (SQLite's online backup, or ``pg_dump``),
the files of the data directory (the site key file among them, so that the wrapped per-person
keys stay usable) and the shred list. The whole archive is AES-256-GCM ciphertext under a key
derived from a passphrase with scrypt: the site key is never in the file in clear
(CAC-FR-14). Templates inside the database stay ciphertext under their own data keys too.

File layout: ``MAGIC``, one JSON header line (KDF parameters, salt, nonce; authenticated as
associated data), then the ciphertext of a tar archive.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from sqlalchemy.engine import make_url

from facegate import __version__
from facegate.config import Settings
from facegate.errors import FacegateError, InvalidInput

MAGIC = b"FACEGATE-BACKUP-1\n"
MIN_PASSPHRASE = 12
# scrypt cost: about 0.1 s and 64 MiB on a small server, per backup or restore.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**16, 8, 1
DB_MEMBER = "database"
# Never copied: the live database files (the consistent copy is DB_MEMBER), caches that are
# rebuilt from the installed packages, and the offline journal (merged before a backup).
SKIP_FILES = {"facegate.sqlite", "facegate.sqlite-wal", "facegate.sqlite-shm"}
SKIP_DIRS = {"models"}


class BackupError(FacegateError):
    """The backup could not be made or restored."""

    code = "backup_failed"
    http_status = 400


@dataclass
class BackupInfo:
    path: Path
    backend: str
    created_at: str
    files: list[str] = field(default_factory=list)
    shreds: int = 0
    bytes: int = 0


def check_passphrase(passphrase: str) -> None:
    if len(passphrase) < MIN_PASSPHRASE:
        raise InvalidInput(
            f"the backup passphrase must be at least {MIN_PASSPHRASE} characters; keep it apart "
            "from the backup file (whoever has both can read the database)"
        )


def _key(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


# --- the database copy -------------------------------------------------------------------------


def backend_of(url: str) -> str:
    return make_url(url.replace("postgresql://", "postgresql+psycopg://", 1)).get_backend_name()


def _sqlite_path(url: str) -> Path:
    return Path(make_url(url).database or "")


def _pg_target(url: str) -> tuple[str, str | None]:
    """A libpq URL for pg_dump/pg_restore and the schema named by ``options=-csearch_path=``
    (the tests' way of giving each run its own schema), if any."""
    url = url.replace("postgresql+psycopg://", "postgresql://", 1)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    schema = None
    for opt in query.get("options", []):
        opt = unquote(opt)
        if "search_path=" in opt:
            schema = opt.split("search_path=", 1)[1].split()[0].split(",")[0]
    return urlunsplit(parts._replace(query="")), schema


def _dump_database(url: str) -> bytes:
    if backend_of(url) == "sqlite":
        path = _sqlite_path(url)
        if not path.is_file():
            raise BackupError(f"no database at {path}; nothing to back up")
        src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        dst = sqlite3.connect(":memory:")
        try:
            src.backup(dst)  # a consistent copy while gates keep writing
            return dst.serialize()
        finally:
            src.close()
            dst.close()
    target, schema = _pg_target(url)
    cmd = ["pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--dbname={target}"]
    if schema:
        cmd.append(f"--schema={schema}")
    return _run(cmd, "pg_dump")


def _restore_database(url: str, data: bytes) -> None:
    if backend_of(url) == "sqlite":
        path = _sqlite_path(url)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(path.name + ".restore")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        for suffix in ("-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        os.replace(tmp, path)
        return
    target, schema = _pg_target(url)
    with tempfile.NamedTemporaryFile(suffix=".dump") as fh:
        fh.write(data)
        fh.flush()
        cmd = ["pg_restore", "--clean", "--if-exists", "--no-owner", "--no-privileges"]
        cmd += ["--single-transaction", f"--dbname={target}"]
        if schema:
            _run(["psql", "-q", target, "-c", f'CREATE SCHEMA IF NOT EXISTS "{schema}"'], "psql")
        _run([*cmd, fh.name], "pg_restore")


def _run(cmd: list[str], tool: str) -> bytes:
    if shutil.which(cmd[0]) is None:
        raise BackupError(
            f"{tool} is not installed; PostgreSQL backups need the PostgreSQL client tools "
            "(apt-get install postgresql-client)"
        )
    proc = subprocess.run(cmd, capture_output=True, timeout=3600, check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise BackupError(f"{tool} failed: {err[-1] if err else 'exit ' + str(proc.returncode)}")
    return proc.stdout


# --- the archive -------------------------------------------------------------------------------


def _data_files(data_dir: Path) -> list[Path]:
    out = []
    if not data_dir.is_dir():
        return out
    for root, dirs, files in os.walk(data_dir):
        rel_root = Path(root).relative_to(data_dir)
        dirs[:] = sorted(d for d in dirs if not (rel_root == Path(".") and d in SKIP_DIRS))
        for name in sorted(files):
            rel = rel_root / name
            if rel_root == Path(".") and (name in SKIP_FILES or name.endswith(".restore")):
                continue
            if name.startswith("journal") and name.endswith(".sqlite"):
                continue
            out.append(rel)
    return out


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = int(datetime.now(UTC).timestamp())
    tar.addfile(info, io.BytesIO(data))


def create_backup(
    settings: Settings, out: Path, passphrase: str, *, shreds: list[dict[str, str]]
) -> BackupInfo:
    """Write an encrypted backup of the database and the data directory to ``out``."""
    check_passphrase(passphrase)
    url = settings.database_url
    backend = backend_of(url)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    buf = io.BytesIO()
    files = _data_files(settings.data_dir)
    key_outside = settings.site_key is not None or settings.site_key_hook is not None
    manifest = {
        "format": 1,
        "facegate": __version__,
        "created_at": created,
        "backend": backend,
        "files": [str(f) for f in files],
        "site_key": "environment or hook: supply the same key on restore"
        if key_outside
        else "site.key file inside this backup",
        "shreds": shreds,
    }
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add(tar, "manifest.json", json.dumps(manifest, ensure_ascii=False).encode())
        _add(tar, DB_MEMBER, _dump_database(url))
        for rel in files:
            _add(tar, f"files/{rel.as_posix()}", (settings.data_dir / rel).read_bytes())
    salt, nonce = os.urandom(16), os.urandom(12)
    header = {
        "kdf": "scrypt",
        "n": SCRYPT_N,
        "r": SCRYPT_R,
        "p": SCRYPT_P,
        "salt": base64.b64encode(salt).decode(),
        "nonce": base64.b64encode(nonce).decode(),
        "cipher": "AES-256-GCM",
        "created_at": created,
        "backend": backend,
    }
    head = MAGIC + json.dumps(header).encode() + b"\n"
    key = _key(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    blob = AESGCM(key).encrypt(nonce, buf.getvalue(), head)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(head)
        fh.write(blob)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, out)
    return BackupInfo(
        out, backend, created, [str(f) for f in files], len(shreds), out.stat().st_size
    )


@dataclass
class OpenedBackup:
    manifest: dict[str, Any]
    members: dict[str, bytes]


def open_backup(path: Path, passphrase: str) -> OpenedBackup:
    """Decrypt and read a backup; a wrong passphrase or a changed byte is refused."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read the backup {path}: {exc.strerror}") from None
    if not raw.startswith(MAGIC):
        raise InvalidInput(f"{path} is not a facegate backup")
    end = raw.find(b"\n", len(MAGIC))
    if end < 0:
        raise InvalidInput(f"{path} is damaged (no header)")
    head = raw[: end + 1]
    try:
        header = json.loads(raw[len(MAGIC) : end])
        salt = base64.b64decode(header["salt"])
        nonce = base64.b64decode(header["nonce"])
        n, r, p = int(header["n"]), int(header["r"]), int(header["p"])
    except (ValueError, KeyError, TypeError):
        raise InvalidInput(f"{path} is damaged (bad header)") from None
    if n > 2**20 or r > 16 or p > 4:
        raise InvalidInput(f"{path} asks for an unreasonable key-derivation cost")
    try:
        plain = AESGCM(_key(passphrase, salt, n, r, p)).decrypt(nonce, raw[end + 1 :], head)
    except InvalidTag:
        raise InvalidInput(
            "the passphrase is wrong, or the backup file was changed; nothing was restored"
        ) from None
    members: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(plain), mode="r") as tar:
        for m in tar.getmembers():
            if not m.isfile():
                continue
            fh = tar.extractfile(m)
            if fh is not None:
                members[m.name] = fh.read()
    if "manifest.json" not in members or DB_MEMBER not in members:
        raise InvalidInput(f"{path} is not a complete facegate backup")
    return OpenedBackup(json.loads(members["manifest.json"]), members)


def restore_files(opened: OpenedBackup, settings: Settings) -> list[str]:
    """Write the database and the data directory's files (0700 folders, 0600 files)."""
    backend = backend_of(settings.database_url)
    if backend != opened.manifest.get("backend"):
        raise InvalidInput(
            f"this backup holds a {opened.manifest.get('backend')} database; restore it with "
            f"--db pointing at one ({backend} was given)"
        )
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    written = []
    for name, data in opened.members.items():
        if not name.startswith("files/"):
            continue
        rel = Path(name[len("files/") :])
        if rel.is_absolute() or ".." in rel.parts:
            raise InvalidInput(f"the backup holds an unsafe path {name!r}; nothing restored")
        target = data_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = target.with_name(target.name + ".restore")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
        written.append(rel.as_posix())
    _restore_database(settings.database_url, opened.members[DB_MEMBER])
    return written
