"""A resident invites a visitor from the self-service page: a QR pass with no face and no name.

Issue 6: visitor QR passes are issued by an operator or by a resident. Through the ASGI app
(httpx), then the gate's decide API with the pass.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from server_support import make_site

from facegate.api import create_app
from facegate.config import Settings
from facegate.domain import add_person, issue_visitor_pass
from facegate.domain.selfservice import create_invitation
from facegate.errors import Forbidden, InvalidInput
from facegate.store.db import Store

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    # decide_deadline_ms: a loaded test machine may need more than the 1 s default.
    settings = Settings(data_dir=tmp_path_factory.mktemp("visitor"), decide_deadline_ms=30_000)
    setup = make_site(settings)
    store = Store(settings.database_url)
    with store.session() as s:
        resident = add_person(s, actor="test", category="resident", site_id=setup.site_id).id
        visitor = add_person(s, actor="test", category="visitor", site_id=setup.site_id).id
    with TestClient(create_app(settings)) as client:
        yield {
            "client": client,
            "setup": setup,
            "store": store,
            "resident": resident,
            "visitor": visitor,
            "settings": settings,
        }
    store.dispose()


def _open_self_service(env, person_id: str) -> None:
    client = env["client"]
    client.cookies.clear()
    with env["store"].session() as s:
        token = create_invitation(s, env["settings"], actor="test", person_id=person_id).token
    page = client.get(f"/i/{token}")
    r = client.post(
        f"/i/{token}", data={"csrf": CSRF.search(page.text).group(1)}, follow_redirects=False
    )
    assert r.status_code in (302, 303), r.text


def _decide_qr(env, token: str) -> dict:
    setup = env["setup"]
    r = env["client"].post(
        f"/v1/access-points/{setup.ap_side}/decide",
        json={"qr": token},
        headers={"X-API-Key": setup.keys["gate"]},
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_resident_issues_a_single_use_visitor_pass(env):
    _open_self_service(env, env["resident"])
    page = env["client"].get("/me/data")
    assert 'id="visitor-form"' in page.text
    r = env["client"].post(
        "/me/visitor-pass",
        data={"csrf": CSRF.search(page.text).group(1), "hours": "2", "uses": "1"},
    )
    assert r.status_code == 200, r.text
    token = re.search(r'id="visitor-token">([^<]+)<', r.text).group(1)
    assert "<svg" in r.text  # the QR code to send to the visitor
    first = _decide_qr(env, token)
    assert (first["decision"], first["method"], first["subject"]) == ("allow", "qr", None)
    assert _decide_qr(env, token)["reason"] == "pass_used"


def test_visitor_pass_form_needs_csrf_and_a_host(env):
    _open_self_service(env, env["resident"])
    r = env["client"].post("/me/visitor-pass", data={"csrf": "forged", "hours": "2", "uses": "1"})
    assert r.status_code == 403
    _open_self_service(env, env["visitor"])
    page = env["client"].get("/me/data")
    assert 'id="visitor-form"' not in page.text
    r = env["client"].post(
        "/me/visitor-pass",
        data={"csrf": CSRF.search(page.text).group(1), "hours": "2", "uses": "1"},
    )
    assert r.status_code == 403


def test_visitor_pass_bounds(env):
    with env["store"].session() as s:
        with pytest.raises(InvalidInput):
            issue_visitor_pass(s, actor="t", host_id=env["resident"], hours=0)
        with pytest.raises(InvalidInput):
            issue_visitor_pass(s, actor="t", host_id=env["resident"], hours=24 * 8)
        with pytest.raises(InvalidInput):
            issue_visitor_pass(s, actor="t", host_id=env["resident"], hours=1, max_uses=11)
        with pytest.raises(Forbidden):
            issue_visitor_pass(s, actor="t", host_id=env["visitor"], hours=1)


def test_declining_shows_the_new_qr_pass_as_a_picture_and_a_code(env):
    """Issue 16.10: the pass a resident gets on declining is a QR image and a typeable code,
    and the code opens a door that takes QR passes."""
    with env["store"].session() as s:
        person = add_person(s, actor="test", category="resident", site_id=env["setup"].site_id).id
    _open_self_service(env, person)
    client = env["client"]
    me = client.get("/me")
    r = client.post("/me/choice", data={"csrf": CSRF.search(me.text).group(1), "choice": "no"})
    assert r.status_code == 200, r.text
    assert 'id="qr-pass"' in r.text and "<svg" in r.text.split('id="qr-pass"', 1)[1]
    code = re.search(r'id="qr-pass-code"[^>]*>([^<]+)<', r.text).group(1)
    assert _decide_qr(env, code)["decision"] == "allow"
