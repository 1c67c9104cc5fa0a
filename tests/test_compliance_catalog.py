"""The rule catalog and the check registry agree, and every rule speaks both languages."""

from __future__ import annotations

import re
from pathlib import Path

from facegate.compliance.catalog import LANGS, load_catalog
from facegate.compliance.checks import CHECKS

REGULATIONS = Path(__file__).resolve().parents[2] / "shared" / "regulations.md"


def test_every_check_has_a_catalog_entry() -> None:
    named = {c for r in load_catalog().values() for c in r.checks}
    assert set(CHECKS) <= named, f"checks without a catalog entry: {set(CHECKS) - named}"


def test_every_catalog_check_exists() -> None:
    for r in load_catalog().values():
        assert r.checks, r.id
        for c in r.checks:
            assert c in CHECKS, f"{r.id} names check {c!r}, which does not exist"


def test_rules_have_both_languages_and_messages() -> None:
    for r in load_catalog().values():
        for lang in LANGS:
            assert r.title[lang].strip(), (r.id, lang)
        assert r.messages, r.id
        for key, m in r.messages.items():
            assert m.zh and m.en and m.fix_zh and m.fix_en, (r.id, key)
            # Chinese text really is Chinese, English text is not.
            assert re.search(r"[\u4e00-\u9fff]", m.zh), (r.id, key)
            assert not re.search(r"[\u4e00-\u9fff]", m.en), (r.id, key)


def test_catalog_ids_exist_in_regulations() -> None:
    if not REGULATIONS.is_file():
        import pytest

        pytest.skip(f"{REGULATIONS} not found")
    text = REGULATIONS.read_text(encoding="utf-8")
    for rule_id in load_catalog():
        assert f"| {rule_id} |" in text, f"{rule_id} is not a rule id of regulations.md"
