"""One notice builder (issue 16 item 6): the notice people read, the documents
``facegate docs notice --inventory`` writes and the drafts before the first publish all come from
``facegate.domain.notice.build_notice_fields``, titled by its one table ``NOTICE_TITLES``.

These tests fail when a second builder or a second title table appears: the document's field
texts or titles would then differ from the domain builder's for the same facts, or the source
scan finds a new table keyed by the field ids N1..N13."""

from __future__ import annotations

import ast
import html
import re
from pathlib import Path

import pytest
from compliance_helpers import EXAMPLES
from typer.testing import CliRunner

from facegate.cli.main import app
from facegate.compliance.checks import notice_digest
from facegate.compliance.inventory import load_inventory
from facegate.domain.notice import (
    NOTICE_FIELDS,
    NOTICE_TITLES,
    PART_LABELS,
    build_notice_fields,
    flat_notice_fields,
    render_notice_text,
)

SRC = Path(__file__).resolve().parents[1] / "src" / "facegate"
THE_BUILDER = SRC / "domain" / "notice.py"
FIELD = re.compile(
    r'<dt><span class="field-key">(N\d+)</span> (.*?)</dt>\s*<dd data-field="\1">(.*?)</dd>', re.S
)
SHA = re.compile(r'data-notice="sha256">([0-9a-f]{64})<')


def _docs_notice(inventory: Path, lang: str, out: Path) -> str:
    r = CliRunner().invoke(
        app,
        ["docs", "notice", "--inventory", str(inventory), "--lang", lang, "--out", str(out)],
        env={"FACEGATE_DATA_DIR": str(out / "data"), "COLUMNS": "200"},
    )
    assert r.exit_code == 0, r.output
    (path,) = [Path(p) for p in r.stdout.split() if p.endswith(".html")]
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
@pytest.mark.parametrize("example", ["lawful-compound.yaml", "face-only-compound-gate.yaml"])
def test_inventory_notice_is_what_the_domain_builder_writes(tmp_path, lang, example):
    d = load_inventory(EXAMPLES / example)
    page = _docs_notice(EXAMPLES / example, lang, tmp_path)
    shown = {k: (html.unescape(t), html.unescape(v)) for k, t, v in FIELD.findall(page)}
    assert list(shown) == list(NOTICE_FIELDS)
    version = d.notice.version if d.notice else "draft"
    effective = d.notice.effective_date if d.notice else None
    fields = build_notice_fields(d, version=version, effective_date=effective)
    expected = flat_notice_fields(fields, lang)
    i = 0 if lang == "zh-CN" else 1
    for key, (title, text) in shown.items():
        assert title == NOTICE_TITLES[key][i], key
        if expected[key]:
            assert text == expected[key], key
        else:  # a fact the inventory does not state: shown as missing, never invented
            assert 'data-empty="1"' in text, key
    text = render_notice_text(fields, d.name, lang)
    assert SHA.search(page).group(1) == notice_digest(expected, text)
    if lang == "zh-CN":  # the whole notice in Chinese: no English part label is left
        english = [en for _zh, en in PART_LABELS.values()]
        assert [w for w in english if f"{w}:" in page or f"{w}：" in page] == []


def test_the_live_draft_and_the_published_notice_share_the_builder(tmp_path):
    """The draft shown before the first publish (no notice yet) comes from the same builder
    through ``deployment_from_store``: same titles, and every field it can state it states
    in the reader's language."""
    from facegate.cli.server_cmds import ensure_initialised
    from facegate.compliance import live
    from facegate.compliance.documents import notice_for
    from facegate.config import Settings

    settings = Settings(data_dir=tmp_path)
    ensure_initialised(settings)
    d = live.live_deployment(settings)
    assert d.notice is None
    for lang in ("zh-CN", "en"):
        n = notice_for(d, lang)
        assert n.version == "draft"
        assert n.fields == flat_notice_fields(build_notice_fields(d, version="draft"), lang)
    # No operator named yet: N1 and the parts naming the operator stay empty (CAC-FR-05a);
    # what facegate itself does is stated, in Chinese for the Chinese notice.
    zh = build_notice_fields(d, version="draft")["zh-CN"]
    assert zh["N1"]["operator_name"] == "" and zh["N3"]["access"] == ""
    assert zh["N3"]["storage"] == "加密存储在现场的 facegate 服务器上；从不通过互联网传输"
    assert zh["N4"]["images_kept"] == "不保存"
    # What facegate does is worded alike whether the facts come from the settings (publish)
    # or from the deployment description (draft, compliance documents).
    published = build_notice_fields(settings)
    drafted = build_notice_fields(d)
    for a, b in ((published, drafted), (published["zh-CN"], drafted["zh-CN"])):
        for key, part in (
            ("N3", "capture"),
            ("N3", "storage"),
            ("N4", "images_kept"),
            ("N6", "impact"),
            ("N10", "separate_consent"),
            ("N10", "optional_features"),
        ):
            assert a[key][part] == b[key][part], (key, part)


def _n_keys(node: ast.Dict) -> set[str]:
    return {
        k.value
        for k in node.keys
        if isinstance(k, ast.Constant)
        and isinstance(k.value, str)
        and re.fullmatch(r"N(1[0-3]|[1-9])", k.value)
    }


def test_no_second_notice_builder_or_title_table_in_the_source():
    """A dict literal keyed by several of N1..N13 (a title or sentence table) or a function
    building notice fields anywhere but ``domain/notice.py`` is a second builder."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path == THE_BUILDER:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict) and len(_n_keys(node)) >= 4:
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno} table keyed N1..N13")
            if isinstance(node, ast.FunctionDef) and re.fullmatch(
                r"_?(build|make|generate)_notice\w*|_n(1[0-3]|[1-9])", node.name
            ):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}()")
    assert offenders == []
