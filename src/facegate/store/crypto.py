"""Envelope encryption of templates (AES-256-GCM, ``cryptography``).

Each person has a random 256-bit data key; their templates are encrypted with it, and the data
key is stored only wrapped (encrypted) by a site key that lives outside the database (CAC-FR-14,
PIPL-51): a 0600 key file in the data directory by default, the ``FACEGATE_SITE_KEY``
environment variable, or a KMS-style hook. Deleting a person's wrapped data key makes every
copy of their template ciphertext undecipherable (crypto-shredding, PIPL-47).

Associated data binds each ciphertext to its row: a template cannot be moved to another person
or model, nor a wrapped key to another person, without failing authentication.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import json
import os
import secrets
import stat
import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from facegate.config import Settings
from facegate.errors import KeyUnavailable

NONCE_BYTES = 12
KEY_BYTES = 32


@runtime_checkable
class KeyProvider(Protocol):
    """Wraps and unwraps data keys; a KMS or HSM can implement this without exposing its key."""

    key_id: str

    def wrap(self, data_key: bytes, aad: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes: ...


class LocalKey:
    """A site key held in memory (from the key file or the environment)."""

    def __init__(self, key_id: str, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise KeyUnavailable(f"site key {key_id!r} must be {KEY_BYTES} bytes")
        self.key_id = key_id
        self._aead = AESGCM(key)

    def wrap(self, data_key: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data_key, aad)

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], aad)
        except InvalidTag as exc:
            raise KeyUnavailable(f"data key does not open with site key {self.key_id!r}") from exc

    def __repr__(self) -> str:  # never print key material
        return f"LocalKey({self.key_id!r})"


def _wrap_aad(person_id: str) -> bytes:
    return f"facegate/data-key/v1/{person_id}".encode()


def _template_aad(template_id: str, person_id: str, model_id: str) -> bytes:
    return f"facegate/template/v1/{template_id}/{person_id}/{model_id}".encode()


def _field_wrap_aad(site_id: str) -> bytes:
    return f"facegate/field-key/v1/{site_id}".encode()


def _identity_aad(site_id: str, person_id: str) -> bytes:
    return f"facegate/identity/v1/{site_id}/{person_id}".encode()


def _derive(field_key: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=purpose).derive(
        field_key
    )


class SiteFields:
    """One site's identity cipher and blind index (issue 13 item 15, PIPL-51).

    From the site's field key, HKDF derives two independent keys: an AES-256-GCM key that
    seals a person's name, contact and unit (bound to site and person by associated data),
    and an HMAC-SHA256 key for the blind index, so an exact look-up (a unit) needs no
    plaintext in the database and a stolen file cannot be searched by guessing without it."""

    def __init__(self, site_id: str, field_key: bytes) -> None:
        self.site_id = site_id
        self._aead = AESGCM(_derive(field_key, b"facegate/identity-seal/v1"))
        self._index_key = _derive(field_key, b"facegate/identity-index/v1")
        # A third key, for the short codes of QR passes (issue 16 item 10): independent of the
        # identity keys, and kept across a site-key rotation (the field key is re-wrapped).
        self._code_key = _derive(field_key, b"facegate/pass-code-index/v1")

    def seal(self, person_id: str, values: dict[str, str]) -> bytes:
        plain = json.dumps(values, ensure_ascii=False, sort_keys=True).encode()
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plain, _identity_aad(self.site_id, person_id))

    def open(self, person_id: str, sealed: bytes) -> dict[str, str]:
        try:
            plain = self._aead.decrypt(
                sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _identity_aad(self.site_id, person_id)
            )
        except InvalidTag as exc:
            raise KeyUnavailable(
                f"the identity of {person_id} does not open with its site's field key"
            ) from exc
        data = json.loads(plain)
        return {str(k): str(v) for k, v in data.items()}

    def index(self, kind: str, value: str) -> str:
        """The blind index of ``value``: equal after trimming and case folding, else apart."""
        norm = " ".join(unicodedata.normalize("NFKC", value).split()).casefold()
        msg = f"{kind}\0{norm}".encode()
        return hmac.new(self._index_key, msg, hashlib.sha256).hexdigest()

    def code_index(self, code: str) -> str:
        """The keyed hash under which a pass's short code (already normalised) is stored."""
        msg = f"{self.site_id}\0{code}".encode()
        return hmac.new(self._code_key, msg, hashlib.sha256).hexdigest()

    def __repr__(self) -> str:  # never print key material
        return f"SiteFields({self.site_id!r})"


class Keyring:
    """The site keys in use: the active one wraps, any of them unwraps (for rotation)."""

    def __init__(self, providers: Iterable[KeyProvider], key_file: KeyFile | None = None) -> None:
        self.providers = list(providers)
        if not self.providers:
            raise KeyUnavailable("no site key configured")
        self.key_file = key_file

    @property
    def active(self) -> KeyProvider:
        return self.providers[0]

    @property
    def key_ids(self) -> list[str]:
        return [p.key_id for p in self.providers]

    def reload(self) -> None:
        """Re-read the key file (after a rotation by this or another process)."""
        if self.key_file is not None:
            self.providers = self.key_file.providers()

    def provider(self, key_id: str) -> KeyProvider:
        for attempt in range(2):
            for p in self.providers:
                if p.key_id == key_id:
                    return p
            if attempt == 0 and self.key_file is not None:
                self.reload()  # another process may have rotated the key file
        raise KeyUnavailable(
            f"site key {key_id!r} is not available; "
            "restore the key file or set FACEGATE_SITE_KEY_PREVIOUS"
        )

    # -- data keys --------------------------------------------------------------------------

    @staticmethod
    def new_data_key() -> bytes:
        return AESGCM.generate_key(bit_length=256)

    def wrap_data_key(self, person_id: str, data_key: bytes) -> tuple[str, bytes]:
        """Wrap with the active site key; returns (key_id, wrapped)."""
        return self.active.key_id, self.active.wrap(data_key, _wrap_aad(person_id))

    def unwrap_data_key(self, person_id: str, key_id: str, wrapped: bytes) -> bytes:
        return self.provider(key_id).unwrap(wrapped, _wrap_aad(person_id))

    def wrap_field_key(self, site_id: str, field_key: bytes) -> tuple[str, bytes]:
        """A site's field key (identities), wrapped like a data key; returns (key_id, wrapped)."""
        return self.active.key_id, self.active.wrap(field_key, _field_wrap_aad(site_id))

    def unwrap_field_key(self, site_id: str, key_id: str, wrapped: bytes) -> bytes:
        return self.provider(key_id).unwrap(wrapped, _field_wrap_aad(site_id))

    # -- templates --------------------------------------------------------------------------

    @staticmethod
    def encrypt_template(
        data_key: bytes, vector: np.ndarray, *, template_id: str, person_id: str, model_id: str
    ) -> tuple[bytes, bytes]:
        """Encrypt a float32 template; returns (nonce, ciphertext)."""
        plain = np.ascontiguousarray(vector, dtype="<f4").tobytes()
        nonce = os.urandom(NONCE_BYTES)
        aad = _template_aad(template_id, person_id, model_id)
        return nonce, AESGCM(data_key).encrypt(nonce, plain, aad)

    @staticmethod
    def decrypt_template(
        data_key: bytes,
        nonce: bytes,
        ciphertext: bytes,
        *,
        template_id: str,
        person_id: str,
        model_id: str,
    ) -> np.ndarray:
        aad = _template_aad(template_id, person_id, model_id)
        try:
            plain = AESGCM(data_key).decrypt(nonce, ciphertext, aad)
        except InvalidTag as exc:
            raise KeyUnavailable(f"template {template_id} does not decrypt with its key") from exc
        return np.frombuffer(plain, dtype="<f4").astype(np.float32)


# --- the key file ---------------------------------------------------------------------------


class KeyFile:
    """``site.key``: JSON ``{"active": id, "keys": {id: base64}}`` with mode 0600."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def exists(self) -> bool:
        return self.path.exists()

    def read(self) -> dict[str, object]:
        try:
            st = self.path.stat()
        except FileNotFoundError as exc:
            raise KeyUnavailable(
                f"site key file {self.path} not found; run `facegate init` first"
            ) from exc
        if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            # CAC-FR-14: a key others can read protects nothing.
            raise KeyUnavailable(
                f"site key file {self.path} is readable by others; run `chmod 600 {self.path}`"
            )
        try:
            data = json.loads(self.path.read_text())
            keys = data["keys"]
            if data["active"] not in keys:
                raise KeyError(data["active"])
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyUnavailable(f"site key file {self.path} is damaged") from exc
        return data

    def write(self, data: dict[str, object]) -> None:
        """Replace the file atomically, created 0600 from the start (never briefly wider)."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(self.path.name + f".tmp-{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        finally:
            if tmp.exists():
                tmp.unlink()

    @staticmethod
    def _new_entry() -> tuple[str, str]:
        key_id = f"file-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(4)}"
        return key_id, base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()

    def create(self) -> bool:
        """Create the file with a fresh key; returns False when it already exists."""
        if self.exists():
            return False
        key_id, b64 = self._new_entry()
        self.write({"active": key_id, "keys": {key_id: b64}})
        return True

    def add_active_key(self) -> str:
        """Add a new key and make it active; the old ones stay until retired."""
        data = self.read()
        key_id, b64 = self._new_entry()
        keys = dict(data["keys"])  # type: ignore[call-overload]
        keys[key_id] = b64
        self.write({"active": key_id, "keys": keys})
        return key_id

    def retire(self, key_ids: Iterable[str]) -> None:
        data = self.read()
        drop = set(key_ids) - {data["active"]}
        keys = {k: v for k, v in data["keys"].items() if k not in drop}  # type: ignore[union-attr]
        self.write({"active": data["active"], "keys": keys})

    def providers(self) -> list[KeyProvider]:
        data = self.read()
        keys: dict[str, str] = data["keys"]  # type: ignore[assignment]
        active = str(data["active"])
        ordered = [active] + [k for k in keys if k != active]
        return [LocalKey(k, base64.b64decode(keys[k])) for k in ordered]


def _env_key(b64: str, what: str) -> LocalKey:
    try:
        key = base64.b64decode(b64, validate=True)
    except ValueError as exc:
        raise KeyUnavailable(f"{what} is not valid base64") from exc
    if len(key) != KEY_BYTES:
        raise KeyUnavailable(f"{what} must be base64 of {KEY_BYTES} random bytes")
    key_id = "env-" + hashlib.sha256(b"facegate-key-id" + key).hexdigest()[:12]
    return LocalKey(key_id, key)


def _hook_providers(spec: str) -> list[KeyProvider]:
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise KeyUnavailable("site_key_hook must look like 'package.module:callable'")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise KeyUnavailable(f"site key hook {spec!r} cannot be imported") from exc
    result = factory()
    providers = list(result) if isinstance(result, list | tuple) else [result]
    for p in providers:
        if not isinstance(p, KeyProvider):
            raise KeyUnavailable(f"site key hook {spec!r} returned {p!r}, not a KeyProvider")
    return providers


def missing_key_message(settings: Settings) -> str:
    """One line: where the site key is expected and how to put it back."""
    path = settings.key_file_path
    return (
        f"the site key {path} is missing but the database already holds this site's data; "
        f"no new key was made. Restore site.key from your backup to {path} (chmod 600), or "
        "point FACEGATE_KEY_FILE or FACEGATE_SITE_KEY at the key, then start again"
    )


def load_keyring(settings: Settings, *, create: bool = False) -> Keyring:
    """The keyring from the configured source (hook, environment, else the 0600 key file)."""
    if settings.site_key_hook:
        return Keyring(_hook_providers(settings.site_key_hook))
    if settings.site_key is not None:
        providers = [_env_key(settings.site_key.get_secret_value(), "FACEGATE_SITE_KEY")]
        if settings.site_key_previous is not None:
            prev = _env_key(
                settings.site_key_previous.get_secret_value(), "FACEGATE_SITE_KEY_PREVIOUS"
            )
            if prev.key_id != providers[0].key_id:
                providers.append(prev)
        return Keyring(providers)
    key_file = KeyFile(settings.key_file_path)
    if create and not key_file.exists():
        from facegate.store.db import database_has_data

        if database_has_data(settings.database_url):
            # Issue 13 item 14 (CAC-FR-14): a new key beside existing data would lock every
            # person's data key away for good; the missing key must be restored instead.
            raise KeyUnavailable(missing_key_message(settings))
        key_file.create()
    return Keyring(key_file.providers(), key_file=key_file)
