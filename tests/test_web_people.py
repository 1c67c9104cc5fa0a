"""The people pages (issue 16 item 11, issue 13 item 15), through the real ASGI app on SQLite:
search by name, unit or card number; names and units for operators and not for auditors; a
confirmation after every action; a refused form keeps what was typed; refusals keep the
navigation and read as sentences in zh-CN and en; names never reach the database file.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from store_support import publish_complete_notice

from facegate.api import create_app
from facegate.audit import anchor as audit_anchor
from facegate.cli.server_cmds import ensure_initialised
from facegate.config import Settings
from facegate.domain import add_access_point
from facegate.domain.accounts import create_operator

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
PID = re.compile(r"/console/people/(p-[0-9a-f]{16})")
PW = "a long passphrase"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("web-people"))
    ensure_initialised(settings)
    store = audit_anchor.open_store(settings)  # its audit entries sealed, as the server's
    with store.session() as s:
        add_access_point(s, actor="test", name="gate", kind="gate", methods=["face", "card"])
        publish_complete_notice(s, settings)  # consent needs a complete notice (CAC-FR-05a)
        create_operator(s, actor="test", username="desk", password=PW, role="operator")
        create_operator(s, actor="test", username="audit", password=PW, role="auditor")
    with TestClient(create_app(settings), headers={"Accept-Language": "en"}) as client:
        yield {"client": client, "settings": settings}
    store.dispose()


def login(env, username: str) -> str:
    client = env["client"]
    client.cookies.clear()
    page = client.get("/console/login")
    r = client.post(
        "/console/login",
        data={"csrf": CSRF.search(page.text).group(1), "username": username, "password": PW},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return CSRF.search(client.get("/console").text).group(1)


def add(env, csrf: str, **form) -> tuple[str, str]:
    """Register a person through the form; returns (person id, the page shown after)."""
    r = env["client"].post("/console/people", data={"csrf": csrf, **form})
    assert r.status_code == 200, r.text
    return PID.search(str(r.url)).group(1), html.unescape(r.text)


def _db_bytes(settings: Settings) -> bytes:
    path = Path(settings.database_url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def test_operator_adds_finds_and_acts_with_a_confirmation_each_time(env):
    client = env["client"]
    csrf = login(env, "desk")
    ann, page = add(env, csrf, category="resident", name="Annika Lindqvist", unit="3-1201")
    assert "Person registered." in page and "Annika Lindqvist" in page and "3-1201" in page
    bo, _ = add(env, csrf, category="tenant", name="欧阳博文", unit="5-0802")

    r = client.post(f"/console/people/{ann}/card", data={"csrf": csrf, "card_number": "0042"})
    assert r.status_code == 200 and "Card 0042 issued." in r.text
    r = client.post(f"/console/people/{ann}/consent", data={"csrf": csrf, "read_notice": "yes"})
    assert "Consent recorded." in r.text

    def found(q: str) -> list[str]:
        page = client.get("/console/people", params={"q": q}).text
        return sorted(set(PID.findall(page)))

    assert found("lindq") == [ann]  # part of a name, any case
    assert found("博文") == [bo]
    assert found("0802") == [bo]  # part of a unit
    assert found("0042") == [ann]  # a card number
    assert found("no such person") == []
    assert set(found("")) >= {ann, bo}
    people = html.unescape(client.get("/console/people", params={"q": "lindq"}).text)
    assert "Annika Lindqvist" in people and "3-1201" in people and "1 found" in people

    # Nothing of it is in the database file (issue 13 item 15).
    raw = _db_bytes(env["settings"])
    for word in ("Annika", "Lindqvist", "欧阳博文", "3-1201"):
        assert word.encode() not in raw, word


def test_auditor_sees_no_names_and_cannot_search_by_them(env):
    csrf = login(env, "desk")
    pid, _ = add(env, csrf, category="resident", name="Kofi Mensah", unit="9-0101")
    env["client"].post(f"/console/people/{pid}/card", data={"csrf": csrf, "card_number": "7700"})
    login(env, "audit")
    client = env["client"]
    people = client.get("/console/people").text
    assert pid in people and "Kofi" not in people and "9-0101" not in people
    assert "Name" not in re.findall(r"<th[^>]*>([^<]*)</th>", people)
    assert pid not in client.get("/console/people", params={"q": "kofi"}).text
    assert pid in client.get("/console/people", params={"q": "7700"}).text
    page = client.get(f"/console/people/{pid}").text
    assert "Kofi" not in page and "9-0101" not in page


def test_refused_forms_keep_what_was_typed_and_the_navigation(env):
    client = env["client"]
    csrf = login(env, "desk")
    first, _ = add(env, csrf, category="resident", name="Wei Chen")
    client.post(f"/console/people/{first}/card", data={"csrf": csrf, "card_number": "5150"})
    other, _ = add(env, csrf, category="resident", name="Lena Park")

    r = client.post(f"/console/people/{other}/card", data={"csrf": csrf, "card_number": "5150"})
    page = html.unescape(r.text)
    assert r.status_code == 409
    assert "This card number is already in use at this site. Use another card." in page
    assert 'value="5150"' in page and "Lena Park" in page
    assert 'href="/console/people"' in page and 'aria-label="console"' in page  # navigation

    r = client.post(
        "/console/people",
        data={
            "csrf": csrf,
            "category": "tenant",
            "name": "Rosa Díaz",
            "unit": "8-0303",
            "birth_date": "2999-01-01",
        },
    )
    page = html.unescape(r.text)
    assert r.status_code == 422 and "The birth date cannot be in the future." in page
    assert 'value="Rosa Díaz"' in page and 'value="8-0303"' in page
    assert '<option value="tenant" selected>' in page
    assert 'aria-label="console"' in page

    # The same refusal in Chinese.
    client.cookies.set("fg_lang", "zh-CN")
    try:
        r = client.post(
            f"/console/people/{other}/consent",
            data={"csrf": csrf},  # the box not ticked
        )
        page = html.unescape(r.text)
        assert r.status_code == 422 and "请先让本人（或监护人）阅读告知书" in page
        assert 'aria-label="console"' in page
    finally:
        client.cookies.delete("fg_lang")


def test_a_refusal_names_the_person_not_the_pseudonym(env):
    """A refusal that mentions a person shows their name to an operator (issue 16 item 11)."""
    from facegate.errors import NotFound
    from facegate.web.console import Ctx

    csrf = login(env, "desk")
    pid, _ = add(env, csrf, category="resident", name="Mira Haddad")
    client = env["client"]

    class Req:  # the console context of a signed-in request, as a handler builds it
        cookies = client.cookies
        headers = {"accept-language": "en"}
        app = client.app

    ctx = Ctx.__new__(Ctx)
    ctx.request, ctx.rt = Req, client.app.state.runtime
    ctx.username, ctx.role, ctx.sites = "desk", "operator", None
    words = ctx.fail(NotFound(f"person {pid} has no open request"), "/console").message
    assert words == "person Mira Haddad has no open request"
    ctx.role = "auditor"
    assert pid in ctx.fail(NotFound(f"person {pid} has no open request"), "/x").message
