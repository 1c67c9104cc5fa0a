"""Every refusal a person can read exists in zh-CN and en (issue 16 item 7).

The domain and gate layers raise typed errors with an English message; a Chinese console or
self-service page shows ``exc.zh`` instead (``web.common.refusal_words``). This test reads
their source: every ``raise SomeFacegateError("message", ...)`` must also give ``zh=`` (or be
an "English / 中文" message), unless it is on the allow-list below with the reason it never
reaches a page. The importer's per-row problems are checked the same way, by running them."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from facegate.domain.importing import (
    COLUMN_ZH,
    ImportRefused,
    ImportResult,
    read_table,
    validate_rows,
)
from facegate.errors import FacegateError, InvalidInput

SRC = Path(__file__).resolve().parents[1] / "src" / "facegate"
# Every module whose errors can reach a page: the domain and the gate, the pages themselves,
# the compliance checks the console runs, and the reader of the pages' upload forms.
SCANNED = ("domain/*.py", "access/*.py", "web/*.py", "compliance/*.py", "api/uploads.py")
CJK = re.compile(r"[\u4e00-\u9fff]")

# Errors raised with an English message only, because no console or self-service page can
# show them. Keyed by file and the start of the message's source text. Keep it short: an
# entry here is a promise that the error is API-, CLI- or programmer-only.
ALLOWED_ENGLISH_ONLY: dict[tuple[str, str], str] = {
    ("domain/accounts.py", '"session kind must'): "internal: the web layer passes a constant",
    ("domain/backup.py", 'f"a facegate database already'): "`facegate restore` (CLI) only",
    ("domain/backup.py", 'f"{path} is neither'): "`facegate restore` (CLI) only",
    ("domain/consent.py", 'f"channel must be one'): "pages pass a fixed channel; API/CLI only",
    ("domain/rights.py", 'f"channel must be one'): "pages pass a fixed channel; API/CLI only",
    ("domain/credentials.py", 'f"scopes must be among'): "key scopes: API/CLI only",
    ("domain/door_outputs.py", "\"name the decision's"): "door-output report: gate API only",
    ("domain/enrollment.py", 'f"person {person_id} has no'): "internal invariant (data key)",
    ("domain/identities.py", '"names, contacts and units'): "programmer error (no keyring)",
    ("domain/notice.py", 'f"unknown notice fields'): "field names: API/CLI only",
    ("access/decide.py", '"send a camera frame or'): "decide API body; the kiosk has words",
    ("access/decide.py", '"a PIN needs `person`'): "decide API body; the kiosk has words",
    ("access/journal.py", 'f"the offline journal holds'): "gate internals; kiosk has words",
    ("access/journal.py", '"neither the database nor'): "gate internals; kiosk has words",
    ("access/offline.py", "\"the caller's deadline"): "gate internals, never shown",
    ("access/offline.py", '"the decision was already'): "gate internals, never shown",
    ("access/single_process.py", 'f"another facegate process'): "`facegate serve` start-up",
    # compliance/: the CLI's documents and inventory audit; pages pass a known language and
    # check the document kind themselves (web/documents.py has its own zh).
    ("compliance/documents.py", 'f"Unsupported language'): "pages pass LANGS; CLI only",
    ("compliance/documents.py", 'f"Unknown document'): "web/documents.py checks first; CLI",
    ("compliance/inventory.py", 'f"{path}: (top level): the'): "`facegate comply audit` file",
    ("compliance/inventory.py", 'f"{source}: (top level): not'): "`facegate comply audit` file",
    ("compliance/live.py", 'f"No site in {settings'): "live_deployment: CLI only",
    # api/uploads.py: the gate's decide body and the admin API's photos; the pages' forms
    # (read_photo_form, read_file_form, read_camera_burst, _parse_multipart) have zh.
    ("api/uploads.py", 'f"content type'): "decide API body; the kiosk has words",
    ("api/uploads.py", '"send a frame as'): "decide API body; the kiosk has words",
    ("api/uploads.py", '"the request body is empty'): "decide API body; the kiosk has words",
    ("api/uploads.py", 'f"a frame may be at most'): "decide API body; the kiosk has words",
    ("api/uploads.py", 'f"the request body is larger than {cap}'): "decide API JSON/form body",
    ("api/uploads.py", '"the body is not valid JSON'): "decide API JSON body",
    ("api/uploads.py", '"the JSON body must'): "decide API JSON body",
    ("api/uploads.py", '"the form body is not'): "decide API form body",
    ("api/uploads.py", 'f"unknown field {key'): "decide API JSON/form body",
    ("api/uploads.py", 'f"`{key}` was sent twice'): "decide API form body",
    ("api/uploads.py", '"send the photos as'): "admin API enrollment (read_images)",
    ("api/uploads.py", '"send at least one photo'): "admin API enrollment (read_images)",
}


def _error_class(module: object, call: ast.Call) -> type | None:
    name = call.func.id if isinstance(call.func, ast.Name) else None
    cls = getattr(module, name, None) if name else None
    return cls if isinstance(cls, type) and issubclass(cls, FacegateError) else None


def _english_only_raises() -> list[tuple[str, int, str]]:
    """(file, line, message source) of every FacegateError raised with a literal message
    and neither ``zh=`` nor an "English / 中文" message."""
    found = []
    importlib.import_module("facegate.api.app")  # the app first: web and api import each other
    for pattern in SCANNED:
        for path in sorted(SRC.glob(pattern)):
            rel = path.relative_to(SRC).as_posix()
            module = importlib.import_module(
                "facegate." + rel.removesuffix(".py").replace("/", ".")
            )
            text = path.read_text(encoding="utf-8")
            for node in ast.walk(ast.parse(text)):
                if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                    continue
                call = node.exc
                if not call.args or _error_class(module, call) is None:
                    continue
                message = call.args[0]
                if not isinstance(message, ast.Constant | ast.JoinedStr | ast.BinOp):
                    continue  # a message built elsewhere: checked where it is built
                source = ast.get_source_segment(text, message) or ""
                if any(k.arg == "zh" for k in call.keywords) or CJK.search(source):
                    continue
                found.append((rel, node.lineno, source))
    return found


def test_every_domain_error_a_page_can_show_has_a_chinese_sentence():
    missing = [
        f"{rel}:{line}: {source[:80]}"
        for rel, line, source in _english_only_raises()
        if not any(rel == f and source.startswith(p) for f, p in ALLOWED_ENGLISH_ONLY)
    ]
    assert missing == [], "give these zh=... (or allow-list them with a reason):\n" + "\n".join(
        missing
    )


def test_the_allow_list_holds_no_stale_entry():
    """An entry whose error got its Chinese sentence (or went away) is removed."""
    left = _english_only_raises()
    stale = [
        key
        for key in ALLOWED_ENGLISH_ONLY
        if not any(rel == key[0] and source.startswith(key[1]) for rel, _, source in left)
    ]
    assert stale == []


def test_the_scan_sees_an_english_only_error():
    """The scan itself: a raise without zh is found, one with zh is not."""
    text = 'raise InvalidInput("nope")\nraise InvalidInput("ok", zh="好")\n'
    calls = [n.exc for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Raise)]
    module = importlib.import_module("facegate.domain.importing")
    assert all(_error_class(module, c) is InvalidInput for c in calls)
    assert [any(k.arg == "zh" for k in c.keywords) for c in calls] == [False, True]


BAD_CSV = (
    "姓名,房号,类别,卡号,密码,入住日期,搬离日期\n"
    ",1-101,业主,1001,,,\n"  # no name
    "李四,1-102,外星人,1002,12,,\n"  # unknown category, PIN too short
    "王五,1-103,租户,1001,,2025-13-01,\n"  # card also on row 2, not a date
    "赵六,1-104,访客,1004,,2026-01-01,2025-01-01\n"  # visitor with a card, out before in
    "钱七,1-105,员工,,,,\n"  # valid
)


def test_every_row_problem_reads_in_chinese_and_english():
    rows, errors = validate_rows(read_table(BAD_CSV.encode("utf-8"), "r.csv"))
    assert [r.name for r in rows] == ["钱七"]
    assert {e.row for e in errors} == {2, 3, 4, 5}
    for e in errors:
        zh = e.text("zh-CN")
        assert e.zh and CJK.search(e.zh), e
        assert zh.startswith(f"第 {e.row} 行，{COLUMN_ZH[e.column]}："), zh
        assert not re.search(r"\b(row|is|the|not|use)\b", zh), zh  # no English sentence left
        assert e.text("en") == str(e) and str(e).startswith(f"row {e.row}, {e.column}: ")
    words = " ".join(e.text("zh-CN") for e in errors)
    for expected in ("姓名为空", "“外星人”不是可用的类别", "密码须为 4 至 12 位数字"):
        assert expected in words
    assert "卡号 1001 与第 2 行重复" in words and "搬离日期早于入住日期" in words


def test_the_refusal_of_a_whole_file_has_a_chinese_sentence():
    _, errors = validate_rows(read_table(BAD_CSV.encode("utf-8"), "r.csv"))
    exc = ImportRefused(ImportResult(import_id="imp-x", rows=5, valid=1, errors=errors))
    assert exc.zh and exc.zh.startswith(f"共 5 行，发现 {len(errors)} 处问题，未导入任何人员。")
    assert "第 2 行，姓名：姓名为空" in exc.zh
    assert exc.message.startswith(f"{len(errors)} problem(s) in 5 row(s)")


@pytest.mark.parametrize(
    "data, name",
    [
        (b"", "r.csv"),
        (b"\xd0\xcf\x11\xe0", "old.xls"),
        ("城市,电话\n杭州,1\n".encode(), "r.csv"),
        (b"PK\x03\x04garbage", "r.xlsx"),
        (b"a\x00b", "r.csv"),
    ],
)
def test_file_problems_read_in_chinese(data, name):
    with pytest.raises(InvalidInput) as info:
        read_table(data, name)
    assert info.value.zh and CJK.search(info.value.zh) and "column" not in info.value.zh


def test_a_photo_refused_for_quality_says_why_in_chinese():
    """A photo whose face is not good enough says why in the page's words for each quality
    reason (web.i18n.QUALITY_WORDS): too small, blurred, too dark, not frontal..."""
    from types import SimpleNamespace

    from facegate.domain.enrollment import _templates_from_images
    from facegate.errors import LowQuality
    from facegate.web.common import refusal_words
    from facegate.web.i18n import Translator

    quality = SimpleNamespace(ok=False, reasons=["too_dark", "face_too_small", "off_angle"])
    face = SimpleNamespace(quality=quality, template=[0.1, 0.2], score=0.9)
    pipe = SimpleNamespace(analyze=lambda image, profile: [face])
    with pytest.raises(LowQuality) as info:
        _templates_from_images(pipe, [object()])
    zh = refusal_words(Translator("zh-CN"), info.value)
    assert zh == (
        "第 1 张照片中的人脸质量不够，不能录入（太暗了，请到更亮的地方；请靠近一点；请正对摄像头）"
    )
    en = refusal_words(Translator("en"), info.value)
    assert (
        en == "image 1: the face is not good enough to enroll (too_dark, face_too_small, off_angle)"
    )
    # A reason with no words (no template) adds nothing; an error without reasons neither.
    bare = LowQuality("x", zh="人脸质量不够", reasons=["no_template"])
    assert refusal_words(Translator("zh-CN"), bare) == "人脸质量不够"
    assert refusal_words(Translator("zh-CN"), InvalidInput("x", zh="好")) == "好"
