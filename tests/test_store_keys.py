"""Site key sources: the 0600 key file, the environment, a KMS-style hook."""

from __future__ import annotations

import base64
import os
import sys
import types

import numpy as np
import pytest

from facegate.config import Settings
from facegate.errors import KeyUnavailable
from facegate.store.crypto import KeyFile, Keyring, LocalKey, load_keyring


def _b64() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _roundtrip(ring: Keyring) -> None:
    dek = ring.new_data_key()
    key_id, wrapped = ring.wrap_data_key("p-1", dek)
    assert ring.unwrap_data_key("p-1", key_id, wrapped) == dek
    with pytest.raises(KeyUnavailable):  # bound to its person
        ring.unwrap_data_key("p-2", key_id, wrapped)
    vec = np.arange(8, dtype=np.float32)
    nonce, ct = ring.encrypt_template(dek, vec, template_id="t", person_id="p-1", model_id="m")
    assert vec.tobytes() not in ct
    got = ring.decrypt_template(dek, nonce, ct, template_id="t", person_id="p-1", model_id="m")
    assert np.array_equal(got, vec)


def test_key_file_is_created_0600_and_refused_when_readable_by_others(tmp_path):
    settings = Settings(data_dir=tmp_path)
    ring = load_keyring(settings, create=True)
    _roundtrip(ring)
    assert settings.key_file_path.stat().st_mode & 0o777 == 0o600
    assert load_keyring(settings, create=True).key_ids == ring.key_ids  # not replaced
    os.chmod(settings.key_file_path, 0o644)
    with pytest.raises(KeyUnavailable, match="chmod 600"):
        load_keyring(settings)


def test_missing_key_file_says_what_to_do(tmp_path):
    with pytest.raises(KeyUnavailable, match="facegate init"):
        load_keyring(Settings(data_dir=tmp_path))


def test_environment_key_and_rotation_through_previous(tmp_path):
    old, new = _b64(), _b64()
    ring_old = load_keyring(Settings(data_dir=tmp_path, site_key=old))
    _roundtrip(ring_old)
    key_id, wrapped = ring_old.wrap_data_key("p-1", b"k" * 32)
    ring = load_keyring(Settings(data_dir=tmp_path, site_key=new, site_key_previous=old))
    assert ring.active.key_id != key_id and ring.unwrap_data_key("p-1", key_id, wrapped)
    assert not KeyFile(tmp_path / "site.key").exists()  # the environment wins; no file made
    with pytest.raises(KeyUnavailable):
        load_keyring(Settings(data_dir=tmp_path, site_key="not base64!"))


def test_kms_style_hook(tmp_path, monkeypatch):
    module = types.ModuleType("fake_kms")
    module.provider = lambda: LocalKey("kms-1", os.urandom(32))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_kms", module)
    ring = load_keyring(Settings(data_dir=tmp_path, site_key_hook="fake_kms:provider"))
    assert ring.key_ids == ["kms-1"]
    _roundtrip(ring)
    with pytest.raises(KeyUnavailable):
        load_keyring(Settings(data_dir=tmp_path, site_key_hook="fake_kms:missing"))


def test_retention_settings_are_lawful_and_capped():
    s = Settings()
    assert s.retention_for("guest").total_seconds() == 24 * 3600
    assert s.retention_for("resident").days == 7 and s.retention_for("visitor").total_seconds() == 0
    with pytest.raises(ValueError):
        Settings(retention_guest_hours=4 * 365 * 24)
