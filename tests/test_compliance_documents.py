"""Generated documents contain every required field (parsed, not eyeballed) and render."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest
from compliance_helpers import EXAMPLES, lawful

from facegate.compliance.checks import notice_digest
from facegate.compliance.documents import (
    notice_for,
    render_filing,
    render_minors,
    render_notice,
    render_pia,
    render_signage,
    write_documents,
)
from facegate.compliance.inventory import load_inventory
from facegate.compliance.model import NOTICE_FIELDS
from facegate.domain.notice import build_notice_fields, flat_notice_fields

CHROMIUM = "/usr/bin/chromium"


class Doc(HTMLParser):
    """Collects the text of every element carrying a data-* marker attribute."""

    MARKERS = ("data-field", "data-sign", "data-pia", "data-filing", "data-minors", "data-notice")

    def __init__(self, html: str) -> None:
        super().__init__()
        self.marked: dict[tuple[str, str], str] = {}
        self.human = 0
        self.empty = 0
        self.svgs = 0
        self.title = ""
        self._open: list[tuple[str, tuple[str, str] | None]] = []
        self._in_title = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.human += "data-human" in a
        self.empty += "data-empty" in a
        self.svgs += tag == "svg"
        self._in_title = tag == "title"
        key = next(((m, a[m] or "") for m in self.MARKERS if m in a), None)
        if key:
            self.marked.setdefault(key, "")
        if tag not in ("br", "meta", "img", "path", "input"):
            self._open.append((tag, key))

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False
        while self._open:
            t, _ = self._open.pop()
            if t == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        for _, key in self._open:
            if key:
                self.marked[key] += data

    def text(self, marker: str, name: str) -> str:
        return " ".join(self.marked.get((marker, name), "").split())


def test_notice_has_every_field_filled_and_its_hash() -> None:
    d = lawful()
    for lang in ("zh-CN", "en"):
        doc = Doc(render_notice(d, lang, version="4", effective_date=date(2026, 12, 1)))
        for key in NOTICE_FIELDS:
            assert doc.text("data-field", key), (lang, key)
        assert doc.empty == 0
        fields = build_notice_fields(d, version="4", effective_date=date(2026, 12, 1))
        n = notice_for(d, lang, version="4", effective_date=date(2026, 12, 1))
        flat = flat_notice_fields(fields, lang)
        assert doc.text("data-notice", "sha256") == n.sha256 == notice_digest(flat, n.text)
        assert doc.text("data-notice", "version") == "4"
    zh = Doc(render_notice(d, "zh-CN"))
    assert d.operator.legal_name in zh.text("data-field", "N11")
    assert d.notice_url in zh.text("data-field", "N11")
    assert "1:1" in zh.text("data-field", "N2") and "1:N" in zh.text("data-field", "N2")
    assert "门禁卡" in zh.text("data-field", "N7")


def test_notice_digest_is_the_sha256_of_canonical_json() -> None:
    fields = {k: f"v{k}" for k in NOTICE_FIELDS}
    body = json.dumps(
        {"fields": fields, "text": "t"}, ensure_ascii=False, sort_keys=True, separators=(",", ":")
    )
    assert notice_digest(fields, "t") == hashlib.sha256(body.encode()).hexdigest()


def test_notice_leaves_unknown_fields_empty_never_invented() -> None:
    d = load_inventory(EXAMPLES / "face-only-compound-gate.yaml")
    fields = flat_notice_fields(build_notice_fields(d, version="1"), "en")
    # No address, no retention rule, an access point without alternative, no PIA, no URLs;
    # the matching mode (N2) and whether images are kept (N3, N4) are not stated either.
    empty = {k for k, v in fields.items() if not v}
    assert empty == {"N1", "N2", "N3", "N4", "N5", "N6", "N7", "N8", "N9", "N10", "N11"} | {
        "N12",
        "N13",
    }
    doc = Doc(render_notice(d, "en", version="1"))
    assert doc.empty == len(empty) + 1  # the effective date in the version table as well
    assert "not configured" in doc.text("data-field", "N7")
    assert 'data-draft="1"' in render_notice(d, "en", version="1")
    assert 'data-draft="1"' not in render_notice(lawful(), "en")


def test_signage_has_headline_operator_purpose_alternatives_and_qr() -> None:
    d = lawful()
    site = d.sites[0]
    gate = site.access_points[0]
    for lang in ("zh-CN", "en"):
        doc = Doc(render_signage(d, site, gate, lang))
        assert doc.text("data-sign", "headline") == "人脸识别区域"
        assert doc.text("data-sign", "headline-en") == "Facial recognition in use"
        assert d.operator.legal_name in doc.text("data-sign", "operator")
        assert doc.text("data-sign", "purpose")
        assert re.search(
            r"(Notice version|告知书版本) 3\b", doc.text("data-sign", "notice-version")
        )
        assert d.notice_url in doc.text("data-sign", "qr-notice")
        assert d.self_service_url in doc.text("data-sign", "qr-self")
        assert doc.svgs == 2
    en = Doc(render_signage(d, site, gate, "en"))
    alts = en.text("data-sign", "alternatives")
    assert "card" in alts and "QR pass" in alts and "staffed desk or guard" in alts


def test_pia_has_the_four_required_items_and_marks_human_parts() -> None:
    d = load_inventory(EXAMPLES / "hotel-front-desk.yaml")
    for lang in ("zh-CN", "en"):
        html = render_pia(d, lang)
        doc = Doc(html)
        for item in ("item1", "item2", "item3", "item4"):
            assert doc.text("data-pia", item), (lang, item)
        assert doc.human >= 7  # necessity, accuracy, four conclusions, incident, sign-off
        for section in ("dataflow", "necessity", "retention", "security", "findings"):
            assert f'data-section="{section}"' in html
        assert "HOTEL-CHECKIN" in html and "CAC-FR-13b" in html  # open findings listed


def test_filing_pack_has_every_cac_fr_15b_part() -> None:
    d = lawful()
    d.counts.people_with_face_data = 100_000
    d.counts.threshold_reached_on = date(2025, 9, 26)
    for lang in ("zh-CN", "en"):
        html = render_filing(d, lang)
        doc = Doc(html)
        for part in ("processor", "purpose", "count", "security", "rules", "pia"):
            assert ("data-filing", part) in doc.marked, (lang, part)
        assert "2025-11-13" in html  # the working-day deadline
        assert "100000" in doc.text("data-filing", "count")
        assert "grxxbh.cacdtsc.cn" in html


def test_minors_rules_cover_default_guardian_and_rights() -> None:
    d = lawful()
    for lang in ("zh-CN", "en"):
        doc = Doc(render_minors(d, lang))
        for part in ("scope", "default", "guardian", "retention", "rights", "status"):
            assert ("data-minors", part) in doc.marked, (lang, part)
    assert "off for children under 14" in Doc(render_minors(d, "en")).text("data-minors", "default")
    d.face_for_minors = True
    assert "guardian" in Doc(render_minors(d, "en")).text("data-minors", "default")


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed")
def test_render_documents_to_png(artifacts_dir: Path, tmp_path: Path) -> None:
    """Render a few documents with headless chromium so a person can look at them."""
    out = artifacts_dir / "compliance"
    shutil.rmtree(out, ignore_errors=True)
    d = lawful()
    d.counts.people_with_face_data = 100_000
    d.counts.threshold_reached_on = date(2025, 9, 26)
    pages = [  # one of each kind of document, in both languages between them
        (write_documents(d, "notice", out, "zh-CN")[0], "900,2000"),
        (write_documents(d, "signage", out, "zh-CN")[0], "700,760"),
        (write_documents(d, "pia", out, "en")[0], "900,2600"),
        (write_documents(d, "filing", out, "zh-CN")[0], "900,1900"),
        (write_documents(d, "minors", out, "en")[0], "900,1100"),
    ]
    for html, size in pages:
        png = html.with_suffix(".png")
        subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--hide-scrollbars",
                f"--user-data-dir={tmp_path / 'profile'}",
                f"--screenshot={png}",
                f"--window-size={size}",
                html.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        assert png.stat().st_size > 10_000, png
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
