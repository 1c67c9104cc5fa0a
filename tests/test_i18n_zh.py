"""Chinese for Chinese residents (issue 16 items 6-9): the notice, the console and the
documents read in Chinese throughout, through the real ASGI app (SQLite).

The notice is scanned as a resident reads it (/me), as the console shows it and as
``facegate docs notice`` writes it; the console pages are scanned for message keys, raw part
ids and English field labels left in a zh-CN page."""

from __future__ import annotations

import html
import json
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from facegate.api import create_app
from facegate.audit import anchor as audit_anchor
from facegate.cli.server_cmds import ensure_initialised
from facegate.compliance import live
from facegate.compliance.documents import render_notice
from facegate.compliance.model import Accessibility
from facegate.config import Settings
from facegate.domain import add_access_point, add_person, create_api_key, issue_card
from facegate.domain.accounts import create_operator
from facegate.domain.notice import PART_LABELS, current_notice
from facegate.domain.selfservice import create_invitation
from facegate.store.db import Store
from facegate.store.models import Organization, Person, Site

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
PW = "a long passphrase"
ZH_HEADERS = {"Accept-Language": "zh-CN"}
# What a zh-CN notice showed before (issue 16 item 6): part ids and English sentences.
ENGLISH_NOTICE = [
    *(f"{part.replace('_', ' ')}:" for part in PART_LABELS),
    "face template",
    "Entry control at",
    "within 15 days",
    "after the end of",
]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("zh"))
    site = ensure_initialised(settings)
    store = audit_anchor.open_store(settings)  # its audit entries sealed, as the server's
    with store.session() as s:
        org = s.execute(select(Organization)).scalar_one()
        org.name, org.address = "杭州某物业服务有限公司", "杭州市西湖区某路 1 号"
        org.contact = "0571-0000"
        org.pipo_contact = "张三 0571-0001"
        s.get(Site, site).name = "翠苑小区"
        s.commit()
        ap = add_access_point(
            s, actor="test", name="北门", kind="gate", methods=["face", "card"], site_id=site
        ).id
        person = add_person(s, actor="test", category="resident", site_id=site).id
        issue_card(s, actor="test", person_id=person, card_number="0042")
        create_operator(s, actor="test", username="boss", password=PW, role="admin")
        # The facts a complete notice needs (CAC-FR-05a), as the console's notice page saves them.
        live.save_facts(
            settings,
            live.LiveFacts(
                necessity_statement="夜间大门无人值守；门卡可能被借用或丢失",
                minors_rules_url="https://gate.example.cn/notice/minors",
                notice_url="https://gate.example.cn/notice",
                accessibility=Accessibility(large_print=True, staff_assistance=True),
            ),
        )
        live.publish_notice_from_config(s, settings, actor="test")
    with TestClient(create_app(settings), headers=ZH_HEADERS) as client:
        with store.session() as s:  # one passage, so the events pages have a row to show
            _, key = create_api_key(s, actor="test", scopes=["gate:decide"], access_point_ids=[ap])
        r = client.post(
            f"/v1/access-points/{ap}/decide", json={"card": "0042"}, headers={"X-API-Key": key}
        )
        assert r.status_code == 200 and r.json()["decision"] == "allow", r.text
        yield {
            "client": client,
            "store": store,
            "settings": settings,
            "site": site,
            "ap": ap,
            "person": person,
        }
    store.dispose()


def _login(env) -> None:
    client = env["client"]
    client.cookies.clear()
    page = client.get("/console/login")
    r = client.post(
        "/console/login",
        data={"csrf": CSRF.search(page.text).group(1), "username": "boss", "password": PW},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text


def _open_me(env) -> None:
    client = env["client"]
    client.cookies.clear()
    with env["store"].session() as s:
        token = create_invitation(s, env["settings"], actor="test", person_id=env["person"]).token
    page = client.get(f"/i/{token}")
    r = client.post(
        f"/i/{token}", data={"csrf": CSRF.search(page.text).group(1)}, follow_redirects=False
    )
    assert r.status_code in (302, 303), r.text


def _english_left(text: str) -> list[str]:
    return [w for w in ENGLISH_NOTICE if w in text]


def test_the_notice_reads_in_chinese_on_me_in_the_console_and_in_docs(env):
    """Item 6: every label and generated sentence of the notice in Chinese."""
    _open_me(env)
    me = env["client"].get("/me").text
    assert "处理者及联系方式" in me and "比对方式" in me and "保存期限" in me
    assert _english_left(me) == []
    _login(env)
    docs = env["client"].get("/console/docs").text
    assert "比对方式：</span> 1:N" in docs and _english_left(docs) == []
    printed = env["client"].get("/console/docs/notice?lang=zh-CN").text
    assert "翠苑小区出入控制（大门）" in printed and _english_left(printed) == []
    d = live.live_deployment(env["settings"])
    doc = render_notice(d, "zh-CN", published=True)
    assert "比对方式：1:N" in doc and "翠苑小区出入控制（大门）" in doc
    assert _english_left(doc) == []
    # The English notice stays English, and both are hashed into the version.
    en = render_notice(d, "en", published=True)
    assert "Matching: 1:N" in en and "比对方式" not in en
    with env["store"].session() as s:
        n = current_notice(s, env["site"])
        assert "zh-CN" in n.fields and "比对方式" in n.text and "Matching" in n.text


def test_republishing_a_notice_in_chinese_asks_nobody_again(tmp_path):
    """Item 6: a version published before the Chinese text existed (English parts only, with
    the old "1 days") is re-published with Chinese: a new version, no re-consent (the
    meaning did not change); a change of retention still asks everyone again."""
    from store_support import COMPLETE_NOTICE_FACTS, publish_complete_notice

    from facegate.domain.notice import publish_notice, publish_site_notice, site_notice_fields

    settings = Settings(data_dir=tmp_path)
    site = ensure_initialised(settings)
    store = Store(settings.database_url)
    try:
        with store.session() as s:
            add_access_point(
                s, actor="test", name="gate", kind="gate", methods=["face", "card"], site_id=site
            )
            publish_complete_notice(s, settings)  # fills in the operator; the facts below
            legacy = site_notice_fields(s, settings, s.get(Site, site), **COMPLETE_NOTICE_FACTS)
            legacy.pop("zh-CN")
            legacy["N5"]["retention"] = legacy["N5"]["retention"].replace("1 day ", "1 days ")
            assert "guest: 1 days after" in legacy["N5"]["retention"]
            old = publish_notice(s, site, legacy, actor="test")
            new = publish_site_notice(s, settings, actor="test", **COMPLETE_NOTICE_FACTS)
            assert new.version == old.version + 1 and not new.requires_reconsent
            assert "zh-CN" in new.fields and "guest: 1 day after" in new.text
            settings.retention_guest_hours = 48
            changed = publish_site_notice(s, settings, actor="test", **COMPLETE_NOTICE_FACTS)
            assert changed.version == new.version + 1 and changed.requires_reconsent
    finally:
        store.dispose()


# Words a Chinese page may contain in Latin letters: names of things, not sentences.
ALLOWED_LATIN = {
    "facegate",
    "sha",
    "pin",
    "qr",
    "api",
    "id",
    "cac",
    "fr",
    "pipl",
    "pia",
    "http",
    "https",
    "www",
    "cn",
    "english",
    "n",
    "csv",
    "excel",
    "xlsx",
    "url",
    "ok",
    "svg",
    "png",
    "html",
    "pdf",
    "tls",
    "json",
}
ID_LIKE = re.compile(r"\b(?:site|ap|p|per|org|op|key|cred|inv|rr|nv|evt|pia)-[0-9a-z]+|v[0-9]+\b")


def _visible_text(page: str) -> str:
    page = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", page)
    page = re.sub(r"(?s)<[^>]+>", " ", page)
    return re.sub(r"\s+", " ", html.unescape(page))


def _latin_words(text: str, known: set[str]) -> set[str]:
    text = ID_LIKE.sub(" ", text)
    text = re.sub(r"`[^`]*`|\b[A-Z]{2,}(?:-[A-Z0-9]+)+[a-z]?\b", " ", text)  # commands, rule ids
    text = re.sub(r"https?://\S+|[\w.-]+@[\w.-]+|\b[0-9a-f]{16,}\b", " ", text)
    words = set(re.findall(r"[A-Za-z][A-Za-z_+]*[A-Za-z]|[A-Za-z]", text))
    return {w for w in words if w.lower() not in ALLOWED_LATIN and w not in known}


def test_zh_pages_hold_no_message_key_or_english_label(env):
    """Item 7: an operator's and a resident's zh-CN pages, scanned for Latin words that are
    neither a name typed by someone nor an accepted abbreviation (message keys such as
    ``m_card+face``, raw values such as ``gate`` or ``guest_room``, English labels)."""
    client = env["client"]
    _login(env)
    person = env["person"]
    known = {env["ap"], person, env["site"], "boss"}
    pages = [
        "/console",
        "/console/people",
        f"/console/people/{person}",
        "/console/sites",
        "/console/events",
        "/console/audit",
        "/console/keys",
        "/console/operators",
        "/console/rights",
        "/console/compliance",
        "/console/notice",
        "/console/docs",
        "/console/pia",
        "/console/signage",
    ]
    found = {}
    for path in pages:
        r = client.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text[-1500:])
        left = _latin_words(_visible_text(r.text), known)
        if left:
            found[path] = sorted(left)
    # Events name the access point and give the time in the site's zone (Asia/Shanghai).
    events = _visible_text(client.get("/console/events").text)
    assert "北门" in events and env["ap"] not in events
    assert re.search(r"20\d\d-\d\d-\d\d \d\d:\d\d:\d\d \+08:00", events)
    assert "UTC" not in events
    _open_me(env)
    for path in ("/me", "/me/data"):
        left = _latin_words(_visible_text(client.get(path).text), known)
        if left:
            found[path] = sorted(left)
    assert found == {}, json.dumps(found, ensure_ascii=False)


def test_zh_kiosk_and_refusal_pages_hold_no_message_key_or_english(env):
    """Item 7 for the pages people meet at the door and when something is refused: the
    kiosk (its visible text and the words its script shows), the 404 and refusal pages of
    the console, the form-expired page and a spent invitation link, all in zh-CN."""
    client = env["client"]
    known = {env["ap"], env["person"], env["site"], "boss"}
    found = {}

    def scan(name: str, r, status: int) -> None:
        assert r.status_code == status, (name, r.status_code, r.text[-800:])
        left = _latin_words(_visible_text(r.text), known)
        words = re.search(r'<script id="kiosk-words"[^>]*>(.*?)</script>', r.text, re.S)
        if words:  # what the kiosk's script shows: decisions, quality hints, methods
            tables = json.loads(words.group(1)).values()
            left |= _latin_words(" ".join(v for t in tables for v in t.values()), known)
        if left:
            found[name] = sorted(left)

    scan("kiosk", client.get(f"/kiosk/{env['ap']}"), 200)
    _login(env)
    csrf = CSRF.search(client.get("/console").text).group(1)
    scan("unknown person", client.get("/console/people/p-0000000000000000"), 404)
    scan(
        "kiosk for an unknown access point",
        client.post("/console/access-points/ap-nope/kiosk", data={"csrf": csrf}),
        404,
    )
    with env["store"].session() as s:
        other = add_person(s, actor="test", category="resident", site_id=env["site"]).id
    known.add(other)
    scan(
        "card already in use",
        client.post(f"/console/people/{other}/card", data={"csrf": csrf, "card_number": "0042"}),
        409,
    )
    scan(
        "consent without reading the notice",
        client.post(f"/console/people/{other}/consent", data={"csrf": csrf}),
        422,
    )
    scan("form expired", client.post("/console/people", data={"csrf": "stale"}), 403)
    # An "English / 中文" refusal (an incomplete notice is never published) reads in Chinese.
    before = live.load_facts(env["settings"])
    facts = {  # the operator as the fixture set it; the statements the notice needs left out
        "csrf": csrf,
        "name": "杭州某物业服务有限公司",
        "address": "杭州市西湖区某路 1 号",
        "contact": "0571-0000",
        "pipo_contact": "张三 0571-0001",
    }
    try:
        assert client.post("/console/notice/facts", data=facts).status_code == 200
        refused = client.post("/console/notice/publish", data={"csrf": csrf})
        assert "告知书缺少必填项" in refused.text and "cannot be published" not in refused.text
        scan("incomplete notice refused", refused, 422)
    finally:
        live.save_facts(env["settings"], before)
    client.cookies.clear()
    page = client.get("/i/not-a-real-invitation")
    scan("invitation page", page, 200)
    scan(
        "invitation link not valid",
        client.post("/i/not-a-real-invitation", data={"csrf": CSRF.search(page.text).group(1)}),
        403,
    )
    assert found == {}, json.dumps(found, ensure_ascii=False)


def test_combined_methods_and_stored_values_read_as_words():
    from facegate.web.i18n import Translator

    zh, en = Translator("zh-CN"), Translator("en")
    assert zh.value("card+face") == "门卡 + 刷脸" and en.value("card+face") == "Card + Face"
    assert zh.value("guest_room") == "客房" and zh.value("gate:decide") == "门禁判定"


GLITCHES = [
    re.compile(r"\b1 (?:people|days|hours|persons|entries)\b"),
    re.compile(r"[.。][;；]"),
    re.compile(r"\bcompound compound\b"),
    re.compile(r"\baccess_control\b"),
    re.compile(r"\b0o[0-7]{3}\b"),
]


def test_documents_and_pages_read_as_peoples_words(env):
    """Item 8: plurals, no doubled words, no ids or octal modes in the documents and pages."""
    from facegate.compliance.documents import render_pia

    d = live.live_deployment(env["settings"])
    texts = {
        f"{kind}.{lang}": _visible_text(fn(d, lang))
        for lang in ("zh-CN", "en")
        for kind, fn in (("pia", render_pia), ("notice", render_notice))
    }
    _login(env)
    for path in ("/console", "/console/compliance", "/console/notice"):
        texts[path] = _visible_text(env["client"].get(path, headers={"Accept-Language": "en"}).text)
    found = {
        name: [m.group(0) for rx in GLITCHES for m in rx.finditer(text)]
        for name, text in texts.items()
    }
    assert {k: v for k, v in found.items() if v} == {}
    assert "Purpose" in texts["pia.en"] and "Access control" in texts["pia.en"]


def test_a_site_named_compound_is_not_called_compound_compound():
    from facegate.compliance.findings import make_finding

    f = make_finding("SPC-10", "site_face_only", "compound", points="gate-1")
    assert "compound compound" not in f.message_en and "“compound”" in f.message_en
    hz = make_finding(
        "HZ-PM", "coercive_text", "compound", where_zh="告示", where_en="a sign", phrase="须刷脸"
    )
    assert "compound compound" not in hz.message_en


def test_printed_links_need_an_address_a_phone_can_open():
    """Item 9: loopback or plain-HTTP addresses are refused for anything printed, with the
    fix in both languages, and reported against CAC-FR-13a."""
    from compliance_helpers import findings, lawful

    from facegate.compliance.documents import render_signage
    from facegate.domain.links import PublicUrlUnusable, url_problem

    assert url_problem("https://gate.example.cn") is None
    for bad in ("http://127.0.0.1:8000", "http://localhost:8000/me", "http://gate.example.cn", ""):
        assert url_problem(bad) is not None, bad
    d = lawful()
    assert not [f for f in findings(d) if "unreachable" in f.message_en]
    d.notice_url = "http://127.0.0.1:8000/me"
    found = [f for f in findings(d) if f.rule_id == "CAC-FR-13a" and f.object == d.notice_url]
    assert found and "手机无法打开" in found[0].message_zh and found[0].severity == "warning"
    assert "FACEGATE_PUBLIC_URL" in found[0].fix
    site, gate = next((s, a) for s, a in d.access_points() if a.face_on)
    with pytest.raises(PublicUrlUnusable) as refused:
        render_signage(d, site, gate, "zh-CN")
    assert "FACEGATE_PUBLIC_URL" in refused.value.zh and "FACEGATE_PUBLIC_URL" in str(refused.value)


def test_invitation_qr_only_with_a_public_https_address(env):
    """Item 9: the invitation link still works on this machine (the browser test opens it),
    but the QR code to print appears only once a public HTTPS address is set."""
    client = env["client"]
    _login(env)
    before = live.load_facts(env["settings"])
    home = client.get("/console").text
    csrf = CSRF.search(home).group(1)
    r = client.post(f"/console/people/{env['person']}/invite", data={"csrf": csrf})
    assert r.status_code == 200, r.text
    assert 'id="once-link"' in r.text and "/i/" in r.text
    assert "<svg" not in r.text and 'id="qr-refused"' in r.text
    assert "FACEGATE_PUBLIC_URL" in r.text and "HTTPS" in r.text
    form = {
        "csrf": csrf,
        "name": "杭州某物业服务有限公司",
        "address": "杭州市西湖区某路 1 号",
        "contact": "0571-0000",
        "public_url": "https://gate.example.cn/",
    }
    r = client.post("/console/notice/facts", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert live.load_facts(env["settings"]).public_url == "https://gate.example.cn"
    try:
        r = client.post(f"/console/people/{env['person']}/invite", data={"csrf": csrf})
        assert 'value="https://gate.example.cn/i/' in r.text and "<svg" in r.text
        assert 'id="qr-refused"' not in r.text
    finally:  # the module's other tests see the install as it was
        live.save_facts(env["settings"], before)


IMPORT_BAD = (
    "姓名,房号,类别,卡号,密码,入住日期,搬离日期\n"
    "张伟,2-201,业主,0042,,,\n"  # the fixture's card 0042 is in use at the site
    ",2-202,外星人,5001,12,2026-13-01,\n"  # no name, no such category, short PIN, no date
    "刘洋,2-203,租户,5002,,,\n"  # valid
)


def _import(env, csv_text: str, mode: str, lang: str = "zh-CN"):
    client = env["client"]
    csrf = CSRF.search(client.get("/console/people").text).group(1)
    return client.post(
        "/console/people/import",
        data={"csrf": csrf, "mode": mode},
        files={"file": ("residents.csv", csv_text.encode("gb18030"), "text/csv")},
        headers={"Accept-Language": lang},
    )


def test_console_import_lists_each_row_problem_in_chinese(env):
    """Items 7 and 12: a bad CSV uploaded on the zh-CN people page is refused as a whole, and
    every problem is listed by row and column in Chinese; nothing is written."""
    _login(env)
    with env["store"].session() as s:
        before = len(list(s.execute(select(Person.id)).scalars()))
    r = _import(env, IMPORT_BAD, "import")
    assert r.status_code == 422, r.text[-1500:]
    text = _visible_text(r.text)
    assert "共 3 行，发现 5 处问题，未导入任何人员" in text
    for line in (
        "第 2 行，卡号：卡号 0042 已在本场所使用",
        "第 3 行，姓名：姓名为空",
        "第 3 行，类别：“外星人”不是可用的类别",
        "第 3 行，密码：密码须为 4 至 12 位数字",
        "第 3 行，入住日期：“2026-13-01”不是日期",
    ):
        assert line in text, line
    problems = re.search(r'<ul id="import-problems">(.*?)</ul>', r.text, re.S).group(1)
    assert _latin_words(_visible_text(problems), set()) == set()
    assert "row 3" not in text and "is not a category" not in text
    with env["store"].session() as s:
        assert len(list(s.execute(select(Person.id)).scalars())) == before
    # The same file on an English page: the same problems in English.
    en = _visible_text(_import(env, IMPORT_BAD, "check", lang="en").text)
    assert "row 3, name: the name is empty" in en and "第 3 行" not in en


def test_console_import_checks_then_imports_the_valid_rows(env):
    _login(env)
    checked = _visible_text(_import(env, IMPORT_BAD, "check").text)
    assert "第 2 行，卡号" in checked  # a check lists the problems too, and writes nothing
    r = _import(env, IMPORT_BAD, "skip_invalid")
    assert r.status_code == 200, r.text[-1500:]
    text = _visible_text(r.text)
    assert "已导入 1 人（共 3 行）" in text and "以下各行未导入" in text
    assert "刘洋" in text  # the imported resident is on the list, by name
    file_error = _visible_text(_import(env, "城市,电话\n杭州,1\n", "check").text)
    assert "没有“姓名”列" in file_error


def test_a_role_refusal_reads_in_chinese(env):
    """An auditor (read-only) who posts the import form is refused in Chinese, not with the
    domain's English ``Forbidden`` message."""
    with env["store"].session() as s:
        create_operator(s, actor="test", username="reader", password=PW, role="auditor")
    client = env["client"]
    client.cookies.clear()
    page = client.get("/console/login")
    client.post(
        "/console/login",
        data={"csrf": CSRF.search(page.text).group(1), "username": "reader", "password": PW},
    )
    r = client.post("/console/people/import", data={"csrf": "x", "mode": "check"})
    assert r.status_code == 403, r.text[-800:]
    text = _visible_text(r.text)
    assert "您的账户角色无权执行此操作" in text and "may not do this" not in text


def test_a_photo_upload_with_no_photo_chosen_reads_in_chinese(env):
    """Item 7: the console's photo form posted with no file chosen (a browser sends an empty
    part) says so in Chinese, not "choose a photo"; the same form on an en page in English."""
    _login(env)
    client = env["client"]
    url = f"/console/people/{env['person']}"
    csrf = CSRF.search(client.get(url).text).group(1)
    empty = {"photo": ("", b"", "application/octet-stream")}
    r = client.post(f"{url}/enroll", data={"csrf": csrf}, files=empty)
    assert r.status_code == 422, r.text[-800:]
    text = _visible_text(r.text)
    assert "请选择一张照片" in text and "choose a photo" not in text
    r = client.post(
        f"{url}/enroll", data={"csrf": csrf}, files=empty, headers={"Accept-Language": "en"}
    )
    assert r.status_code == 422 and "choose a photo" in _visible_text(r.text)
