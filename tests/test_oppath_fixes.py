"""The dead ends met on the README's operator path (issue 16, measured; see
docs/notes/2026-12-03/oppath.md), each with the behaviour that replaced it. SQLite, the real
CLI (in process) and the real ASGI app."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from facegate.api import create_app
from facegate.audit import anchor as audit_anchor
from facegate.cli.main import app
from facegate.compliance import live
from facegate.config import Settings
from facegate.domain.accounts import create_operator
from facegate.domain.notice import current_notice, describe_missing
from facegate.errors import InvalidInput

PUBLIC = "https://gate.sunny.example.cn"
NOTICE_ARGS = (
    "--necessity",
    "夜间大门无人值守；门卡可能被借用或丢失",
    "--minors-rules-link",
    PUBLIC + "/minors",
    "--accessibility",
    "大字版告知书，前台工作人员协助",
)
PW = "a long passphrase"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """A fresh data directory, named, with one face gate; the CLI reads it from the env."""
    monkeypatch.setenv("FACEGATE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("FACEGATE_PUBLIC_URL", raising=False)
    runner = CliRunner()

    def cli(*args: str, code: int = 0):
        res = runner.invoke(app, list(args))
        assert res.exit_code == code, (args, res.output, res.exception)
        return res

    cli(
        "init",
        "--operator-name",
        "阳光物业",
        "--operator-address",
        "上海市阳光路1号",
        "--operator-contact",
        "400-000-0000",
        "--site-name",
        "阳光花园",
    )
    out = cli("access-point", "add", "北门", "--kind", "gate", "--methods", "face,card", "--json")
    ap = re.search(r'"id": "(ap-[0-9a-f]+)"', out.stdout).group(1)
    return cli, Settings(data_dir=tmp_path / "data"), ap


def _session(settings):
    store = audit_anchor.open_store(settings)
    return store, store.session()


def test_notice_publish_keeps_its_facts_so_the_console_publishes_the_same(setup):
    """Before: `facegate notice publish --necessity ...` put its options in the notice only;
    the console's notice page showed them empty and its publish was refused (N9, N13 missing)."""
    cli, settings, _ = setup
    out = cli("notice", "publish", *NOTICE_ARGS, "--public-url", PUBLIC)
    # The first version: nobody has consented yet, so nobody is asked to renew.
    assert out.stdout.startswith("notice v1") and "renew" not in out.stdout
    facts = live.load_facts(settings)
    assert facts.necessity_statement == NOTICE_ARGS[1]
    assert facts.minors_rules_url == PUBLIC + "/minors"
    assert facts.accessibility_note == NOTICE_ARGS[5]
    assert facts.public_url == PUBLIC
    store, s = _session(settings)
    try:
        with s:
            # The console's preview and publish: nothing to change, the same version.
            assert live.preview_notice(s, settings).changed_fields == []
            again = live.publish_notice_from_config(s, settings, actor="console")
            assert again.version == 1
            n11 = current_notice(s, again.site_id).fields["N11"]
            assert n11["qr_target"] == PUBLIC + "/notice"
    finally:
        store.dispose()
    # A later publish with one option changes that fact only.
    out = cli("notice", "publish", "--necessity", "出入口多，人工核验成本高")
    assert out.stdout.startswith("notice v2")
    facts = live.load_facts(settings)
    assert facts.necessity_statement == "出入口多，人工核验成本高"
    assert facts.minors_rules_url == PUBLIC + "/minors" and facts.public_url == PUBLIC


def test_register_operator_sets_the_public_url_and_keeps_what_it_is_not_given(setup):
    cli, settings, _ = setup
    # Without a public address the sign's QR target (N11) is unknown: refused, naming the option.
    lacking = cli("notice", "publish", *NOTICE_ARGS, code=1)
    assert "N11 --public-url (or --notice-link)" in lacking.output
    assert "--necessity" not in lacking.output.split("Options:")[1]
    base = ("register", "operator", "--name", "阳光物业", "--address", "上海")
    cli(*base, "--contact", "400-000-0000", "--public-url", PUBLIC + "/")
    facts = live.load_facts(settings)
    assert facts.public_url == PUBLIC  # no trailing slash
    assert facts.necessity_statement == NOTICE_ARGS[1]  # not given: kept, not wiped
    assert facts.minors_rules_url == PUBLIC + "/minors"
    bad = cli(*base, "--contact", "400", "--public-url", "gate dot example", code=2)
    assert "not a web address" in bad.output


def test_printed_addresses_are_derived_from_the_public_address(tmp_path):
    settings = Settings(data_dir=tmp_path)
    nothing = live.public_links(settings, live.LiveFacts())
    assert nothing.notice_url == "" and nothing.self_service_url == ""  # never guessed
    facts = live.LiveFacts(public_url=PUBLIC)
    links = live.public_links(settings, facts)
    assert (links.notice_url, links.self_service_url) == (PUBLIC + "/notice", PUBLIC + "/me")
    env = Settings(data_dir=tmp_path, public_url="https://door.example.cn")
    assert live.public_links(env, facts).notice_url == "https://door.example.cn/notice"
    stated = live.LiveFacts(public_url=PUBLIC, notice_url="https://elsewhere.cn/rules")
    assert live.public_links(settings, stated).notice_url == "https://elsewhere.cn/rules"
    # The live deployment (signs, compliance checks) uses them too.
    live.save_facts(settings, facts)
    assert live.public_links(settings).self_service_url == PUBLIC + "/me"


def test_face_on_needs_no_site_id_and_every_blocker_comes_with_its_fix(setup):
    """Before: `face on` without --site was a usage error, and `comply` listed only the PIA,
    so the sign (CAC-FR-13a) came up only when switching on, in English, without a fix."""
    cli, settings, ap = setup
    cli("notice", "publish", *NOTICE_ARGS, "--public-url", PUBLIC)
    report = cli("comply", "--lang", "en", code=1)
    assert "CAC-FR-09a" in report.stdout
    assert "Before face can be switched on at 阳光花园, also fix:" in report.stdout
    assert "CAC-FR-13a" in report.stdout.split("also fix:")[1]
    refused = cli("face", "on", code=2)
    assert "CAC-FR-09a" in refused.output and "Fix:" in refused.output
    today = date.today().isoformat()  # after the notice (CAC-FR-09b, CAC-FR-13a)
    pia = ("register", "pia", "--version", "1", "--date", today, "--necessity", "夜间")
    cli(*pia, "--signer", "王经理")
    assert "already registered" in cli(*pia, "--signer", "X", code=2).output
    # The sign can be printed now: its QR code is the public notice page.
    signs = cli("docs", "signage", "--out", str(settings.data_dir / "docs"))
    sign = Path(signs.stdout.split()[0]).read_text(encoding="utf-8")
    assert PUBLIC + "/notice" in sign
    cli("register", "signage", "--ap", ap, "--where", "北门左侧", "--date", today)
    assert "face on" in cli("face", "on").stdout
    assert "face off" in cli("face", "off").stdout


def test_zh_refusals_of_the_operator_facts():
    with pytest.raises(InvalidInput) as exc:
        live._checked_public_url("gate dot example")
    assert "不是网址" in exc.value.zh and "not a web address" in exc.value.message
    assert "zh" not in exc.value.to_dict().get("details", {})  # not a detail of the API's body


def test_missing_part_keeps_its_acronym():
    zh, en = describe_missing({"N11": ["qr_target"]})
    assert "(QR code address)" in en and "qR" not in en
    assert "二维码地址" in zh


@pytest.fixture
def console(setup):
    cli, settings, ap = setup
    store, s = _session(settings)
    with s:
        create_operator(s, actor="test", username="boss", password=PW, role="admin")
    store.dispose()
    with TestClient(create_app(settings), headers={"Accept-Language": "zh-CN"}) as client:
        page = client.get("/console/login")
        r = client.post(
            "/console/login",
            data={"csrf": CSRF.search(page.text).group(1), "username": "boss", "password": PW},
        )
        assert r.status_code in (200, 303), r.text
        yield client, cli, settings


def test_console_says_what_is_next_and_prints_no_loopback_address(console):
    client, cli, settings = console
    home = client.get("/console")
    # Switching face on is refused in Chinese, each blocker with its fix.
    site = re.search(r'name="site_id" value="([^"]+)"', client.get("/console/sites").text)
    ap = re.search(r"/console/access-points/(ap-[0-9a-f]+)/face", client.get("/console/sites").text)
    refused = client.post(
        f"/console/access-points/{ap.group(1)}/face",
        data={"csrf": CSRF.search(home.text).group(1), "site_id": site.group(1), "on": "1"},
    )
    assert refused.status_code == 409
    assert "整改：" in refused.text and "CAC-FR-09a" in refused.text
    assert "Fix:" not in refused.text and "cannot be switched on" not in refused.text
    # Next steps while face cannot be switched on, each with the page that fixes it.
    assert 'href="/console/notice"' in home.text and 'href="/console/pia"' in home.text
    assert "开启人脸识别前还须完成" in home.text
    # Before: the notice page pre-filled the browser's own address (here the test client's)
    # as the sign's QR target, and saving the form stored it.
    page = client.get("/console/notice")
    assert 'name="notice_url" type="url" value=""' in page.text
    assert "testserver" not in page.text.split('id="f-notice-url"')[1].split(">")[0]
    form = {
        "csrf": CSRF.search(page.text).group(1),
        "name": "阳光物业",
        "address": "上海市阳光路1号",
        "contact": "400-000-0000",
        "public_url": "gate dot example",
    }
    refused = client.post("/console/notice/facts", data=form)
    assert refused.status_code == 422
    assert "不是网址" in refused.text and "not a web address" not in refused.text
    form["public_url"] = PUBLIC
    client.post("/console/notice/facts", data=form)
    facts = live.load_facts(settings)
    assert facts.notice_url == "" and facts.public_url == PUBLIC
    assert live.public_links(settings).notice_url == PUBLIC + "/notice"


def test_the_signs_qr_code_opens_the_notice_without_an_invitation(console):
    client, cli, _ = console
    anyone = TestClient(client.app, headers={"Accept-Language": "zh-CN"})
    none = anyone.get("/notice")
    assert none.status_code == 404 and "告知书尚未发布" in none.text
    cli("notice", "publish", *NOTICE_ARGS, "--public-url", PUBLIC)
    page = anyone.get("/notice")
    assert page.status_code == 200
    assert "阳光花园" in page.text and NOTICE_ARGS[1] in page.text
    assert "向前台或物业索取" in page.text
    english = anyone.get("/notice", headers={"Accept-Language": "en"})
    assert "Face access is voluntary" in english.text


def test_front_desk_refusals_read_in_chinese(console):
    """English-only domain messages on zh-CN pages (i18n-2 "Not done"): each form's refusal
    carries its own Chinese sentence."""
    client, _, _ = console
    csrf = CSRF.search(client.get("/console/operators").text).group(1)
    for form, zh, en in (
        ({"username": "desk", "password": "short"}, "密码至少 10 个字符", "at least"),
        ({"username": "desk", "password": "desk"}, "密码至少", "at least"),
        ({"username": "x", "password": "front desk pass 1"}, "用户名须为", "user name is"),
        ({"username": "boss", "password": "front desk pass 1"}, "用户名已被使用", "is taken"),
    ):
        r = client.post("/console/operators", data={**form, "role": "admin", "csrf": csrf})
        assert r.status_code in (409, 422), r.text
        assert zh in r.text and en not in r.text, form
