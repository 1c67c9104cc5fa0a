"""A QR pass's short code to type (issue 16 item 10), and only the door's own methods named.

Through the ASGI app (httpx): the decide API with the short code typed as a person would (lower
case, spaces), wrong codes refused then throttled at that door, expired and revoked passes'
codes refused, the code nowhere in the SQLite files in clear; the self-service page, the
visitor pass and the console show it beside the QR picture in zh-CN and en; the resident's
summary and the kiosk name only the methods an entrance accepts.
"""

from __future__ import annotations

import html
import re
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from server_support import make_site

from facegate.api import create_app
from facegate.audit import anchor as audit_anchor
from facegate.config import Settings
from facegate.domain import add_person, issue_qr_pass, revoke_credential
from facegate.domain.accounts import create_operator
from facegate.domain.passcodes import ALPHABET, CODE_LENGTH, format_code, normalize_code
from facegate.domain.selfservice import create_invitation
from facegate.store.models import Credential, utcnow
from facegate.store.web_models import LoginThrottle
from facegate.web.i18n import DECISION_WORDS

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$")
PW = "a long passphrase"
MAX_FAILURES = 4


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("shortcode"),
        decide_deadline_ms=30_000,  # a loaded test machine may need more than the default
        pin_max_failures=MAX_FAILURES,
    )
    setup = make_site(settings)
    store = audit_anchor.open_store(settings)  # the settings, hence the site key, at hand
    with store.session() as s:
        resident = add_person(s, actor="test", category="resident", site_id=setup.site_id).id
        create_operator(
            s,
            actor="test",
            username="desk",
            password=PW,
            role="operator",
            site_ids=[setup.site_id],
        )
    with TestClient(create_app(settings), headers={"Accept-Language": "en"}) as client:
        yield {
            "client": client,
            "setup": setup,
            "store": store,
            "settings": settings,
            "resident": resident,
        }
    store.dispose()


def _decide(env, ap: str, qr: str) -> dict:
    r = env["client"].post(
        f"/v1/access-points/{ap}/decide",
        json={"qr": qr},
        headers={"X-API-Key": env["setup"].keys["gate"]},
    )
    assert r.status_code == 200, r.text
    return r.json()


def _issue(env, **kw):
    with env["store"].session() as s:
        return issue_qr_pass(s, actor="test", person_id=env["resident"], **kw)


def _typed(code: str) -> str:
    """As someone reads it off a phone: lower case, a space for the dash, spaces around."""
    return "  " + code.lower().replace("-", " ") + " "


def test_normalising_a_typed_code():
    code = "7KQ2MXC94D"
    assert format_code(code) == "7KQ2M-XC94D"
    for typed in ("7kq2m-xc94d", " 7KQ2M XC94D ", "7kq2mxc94d", "7kq2m - xc94d"):
        assert normalize_code(typed) == code
    assert normalize_code("7kq2m-xc94o") == "7KQ2MXC940"  # O is read as 0, I and L as 1
    assert normalize_code("cred-abc.secret") is None  # a QR token is not a short code
    assert normalize_code("7KQ2M-XC94") is None
    assert normalize_code("7KQ2M-XC94U") is None  # U is not in Crockford's alphabet
    assert len(ALPHABET) == 32 and CODE_LENGTH * 5 >= 40  # 50 bits, see passcodes


def test_issuing_gives_a_short_code_stored_only_as_a_keyed_hash(env):
    issued = _issue(env)
    assert issued.code and CODE.match(issued.code), issued.code
    import hashlib

    with env["store"].session() as s:
        row = s.get(Credential, issued.credential.id)
        assert row.code_hash and len(row.code_hash) == 64
        plain = normalize_code(issued.code)
        # Not an unkeyed hash of the code either (50 bits would be reversible offline).
        assert row.code_hash != hashlib.sha256(plain.encode()).hexdigest()
        assert plain not in (row.identifier or "") and plain not in (row.secret_hash or "")


def test_short_code_opens_where_a_qr_pass_is_accepted(env):
    setup = env["setup"]
    issued = _issue(env)
    got = _decide(env, setup.ap_side, _typed(issued.code))
    assert (got["decision"], got["method"], got["subject"]) == ("allow", "qr", env["resident"])
    # The lobby takes face and card only: a code is refused there as a QR pass would be.
    got = _decide(env, setup.ap_lobby, _typed(issued.code))
    assert (got["decision"], got["reason"]) == ("deny", "method_not_accepted:qr")


def test_the_passes_api_returns_the_short_code_once(env):
    setup = env["setup"]
    r = env["client"].post(
        "/v1/passes",
        json={"access_point_ids": [setup.ap_side], "max_uses": 2},
        headers={"X-API-Key": setup.keys["admin"]},
    )
    assert r.status_code == 201, r.text
    code = r.json()["code"]
    assert CODE.match(code)
    assert _decide(env, setup.ap_side, _typed(code))["decision"] == "allow"
    # Bound to the side door: the code, like the token, is not valid at the main gate.
    assert _decide(env, setup.ap_main, _typed(code))["reason"] == "not_valid_here"


def test_single_use_pass_code_and_token_share_their_uses(env):
    setup = env["setup"]
    issued = _issue(env, max_uses=1)
    assert _decide(env, setup.ap_side, _typed(issued.code))["decision"] == "allow"
    assert _decide(env, setup.ap_side, issued.secret)["reason"] == "pass_used"


def test_expired_and_revoked_passes_codes_are_refused(env):
    setup = env["setup"]
    now = utcnow()
    expired = _issue(env, valid_from=now - timedelta(hours=2), valid_until=now - timedelta(hours=1))
    got = _decide(env, setup.ap_side, _typed(expired.code))
    assert (got["decision"], got["reason"]) == ("deny", "pass_expired")
    live = _issue(env)
    assert _decide(env, setup.ap_side, _typed(live.code))["decision"] == "allow"
    with env["store"].session() as s:
        revoke_credential(s, actor="test", credential_id=live.credential.id)
    got = _decide(env, setup.ap_side, _typed(live.code))
    assert (got["decision"], got["reason"]) == ("deny", "credential_revoked")


def test_wrong_codes_are_refused_then_throttled_at_that_door(env):
    """Counted per access point: a door of its own here, so no other test meets its block."""
    from sqlalchemy import func, select

    from facegate.domain import add_access_point
    from facegate.store.models import AccessEvent

    setup = env["setup"]
    with env["store"].session() as s:
        door = add_access_point(
            s, actor="test", name="bike room", kind="door", methods=["qr"], site_id=setup.site_id
        ).id
    good = _issue(env)
    wrong = [format_code(c * CODE_LENGTH) for c in "23456789"]
    reasons = [_decide(env, door, w)["reason"] for w in wrong[:MAX_FAILURES]]
    assert reasons == ["unknown_credential"] * (MAX_FAILURES - 1) + ["code_throttled"]
    # Blocked: even the right code is not looked up at that door now...
    got = _decide(env, door, _typed(good.code))
    assert (got["decision"], got["reason"]) == ("deny", "code_throttled")
    # ...while scanning the QR picture still opens there, and the code opens elsewhere.
    assert _decide(env, door, good.secret)["decision"] == "allow"
    assert _decide(env, setup.ap_side, _typed(good.code))["decision"] == "allow"
    with env["store"].session() as s:
        row = s.get(LoginThrottle, f"code:{door}")
        assert row is not None and row.blocked_until is not None
        # Every refusal is an event an operator can see (a run of guesses included).
        n = s.scalar(
            select(func.count())
            .select_from(AccessEvent)
            .where(AccessEvent.access_point_id == door, AccessEvent.reason == "code_throttled")
        )
        assert n == 2


def _db_bytes(settings: Settings) -> bytes:
    path = Path(settings.database_url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def test_the_code_is_not_in_the_database_in_clear(env):
    codes = [_issue(env).code for _ in range(3)]
    data = _db_bytes(env["settings"])
    assert data
    for code in codes:
        plain = normalize_code(code)
        for form in (code, plain, code.lower(), plain.lower()):
            assert form.encode() not in data, form


# --- the pages ---------------------------------------------------------------------------------


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


def _short(text: str, ident: str) -> str:
    return re.search(rf'id="{ident}"[^>]*>([^<]+)<', text).group(1)


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_declining_shows_the_picture_the_short_code_and_where_it_opens(env, lang):
    setup = env["setup"]
    with env["store"].session() as s:
        person = add_person(s, actor="test", category="resident", site_id=setup.site_id).id
    _open_self_service(env, person)
    client = env["client"]
    client.cookies.set("fg_lang", lang)
    try:
        me = client.get("/me")
        r = client.post("/me/choice", data={"csrf": CSRF.search(me.text).group(1), "choice": "no"})
    finally:
        client.cookies.delete("fg_lang")
    assert r.status_code == 200, r.text
    box = r.text.split('id="qr-pass"', 1)[1]
    assert "<svg" in box
    code = _short(box, "qr-pass-short")
    assert CODE.match(code)
    label = "短码" if lang == "zh-CN" else "short code"
    assert label in html.unescape(box)
    # Only the entrances that take QR passes are named: main gate and side door, not lobby.
    doors = html.unescape(box.split('id="qr-pass-doors"', 1)[1].split("</p>", 1)[0])
    assert "main gate" in doors and "side door" in doors and "lobby" not in doors
    got = _decide(env, setup.ap_side, _typed(code))
    assert (got["decision"], got["subject"]) == ("allow", person)


def test_visitor_pass_page_shows_a_short_code_that_opens(env):
    _open_self_service(env, env["resident"])
    client = env["client"]
    page = client.get("/me/data")
    r = client.post(
        "/me/visitor-pass",
        data={"csrf": CSRF.search(page.text).group(1), "hours": "2", "uses": "2"},
    )
    assert r.status_code == 200, r.text
    assert "<svg" in r.text
    code = _short(r.text, "visitor-code")
    got = _decide(env, env["setup"].ap_side, _typed(code))
    assert (got["decision"], got["subject"]) == ("allow", None)  # a visitor: no one named


def _console(env) -> str:
    client = env["client"]
    client.cookies.clear()
    page = client.get("/console/login")
    r = client.post(
        "/console/login",
        data={"csrf": CSRF.search(page.text).group(1), "username": "desk", "password": PW},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return CSRF.search(client.get("/console").text).group(1)


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_console_issues_shows_and_revokes_a_pass_with_its_short_code(env, lang):
    setup = env["setup"]
    with env["store"].session() as s:
        person = add_person(s, actor="test", category="resident", site_id=setup.site_id).id
    csrf = _console(env)
    client = env["client"]
    client.cookies.set("fg_lang", lang)
    r = client.post(f"/console/people/{person}/qr-pass", data={"csrf": csrf})
    assert r.status_code == 200, r.text
    box = r.text.split('id="qr-pass"', 1)[1]
    assert "<svg" in box
    code = _short(box, "qr-pass-short")
    assert ("短码" if lang == "zh-CN" else "short code") in html.unescape(box)
    assert _decide(env, setup.ap_side, _typed(code))["decision"] == "allow"
    with env["store"].session() as s:
        cred_id = s.query(Credential.id).filter(Credential.person_id == person).one()[0]
    r = client.post(f"/console/people/{person}/credentials/{cred_id}/revoke", data={"csrf": csrf})
    assert r.status_code == 200, r.text
    client.cookies.delete("fg_lang")
    assert _decide(env, setup.ap_side, _typed(code))["reason"] == "credential_revoked"


# --- only the methods a door accepts ------------------------------------------------------------


def test_resident_summary_names_only_each_doors_own_methods(env):
    """A resident with a QR pass (and no face) is told: main gate and side door by QR pass, the
    lobby (face and card only) by nothing they hold; never "card, PIN or QR" in general."""
    setup = env["setup"]
    with env["store"].session() as s:
        person = add_person(s, actor="test", category="resident", site_id=setup.site_id).id
        issue_qr_pass(s, actor="test", person_id=person)
    _open_self_service(env, person)
    page = env["client"].get("/me/data").text
    ways = page.split('id="ways-in"', 1)[1].split("</ul>", 1)[0]
    rows = dict(re.findall(r'<li data-ap="([^"]+)">(.*?)</li>', ways, flags=re.S))
    methods = {ap: re.findall(r'data-method="([^"]+)"', row) for ap, row in rows.items()}
    assert methods[setup.ap_main] == ["qr"]
    assert methods[setup.ap_side] == ["qr"]
    assert methods[setup.ap_lobby] == []
    for ap_methods, ap in (
        (["face", "card", "pin", "qr"], setup.ap_main),
        (["face", "card"], setup.ap_lobby),
    ):
        assert set(methods[ap]) <= set(ap_methods)


def test_kiosk_names_only_the_methods_of_its_door(env):
    setup = env["setup"]
    r = env["client"].get(
        f"/v1/access-points/{setup.ap_lobby}/kiosk",
        headers={"X-API-Key": env["setup"].keys["gate"]},
    )
    assert r.status_code == 200, r.text
    assert sorted(r.json()["methods"]) == ["card", "face"]
    page = env["client"].get(f"/kiosk/{setup.ap_lobby}").text
    # Every way-in form starts hidden; the script shows those the door's methods name.
    assert len(re.findall(r'<form class="kform" data-kind="\w+" hidden>', page)) == 3
    # No refusal of a face names a way in on its own (the kiosk adds the door's own methods).
    face_refusals = (
        "no_face",
        "no_match",
        "ambiguous",
        "burst_disagree",
        "not_enrolled_here",
        "consent_withdrawn",
        "consent_renewal_required",
        "face_not_enabled",
    )
    for zh, en in (DECISION_WORDS[k] for k in face_refusals):
        assert not re.search(r"\b(card|PIN|QR)\b", en), en
        assert not any(w in zh for w in ("门卡", "密码", "二维码")), zh


def test_a_code_typed_while_the_database_is_away(env, tmp_path):
    """Offline (issue 18) the gate's copy holds each pass's keyed hash and the gate holds the
    site's code key: the code opens, counts its use in the journal, and wrong codes are
    throttled in the gate's memory."""
    from facegate.access.decide import CredentialInput, GateContext, decide
    from facegate.access.dedup import EventDeduplicator
    from facegate.access.journal import Journal
    from facegate.access.offline import Deadline
    from facegate.access.snapshot import Snapshot, SnapshotFacts
    from facegate.domain.passcodes import warm
    from facegate.store.crypto import load_keyring

    setup = env["setup"]
    issued = _issue(env, max_uses=1)
    snap = Snapshot()
    with env["store"].session() as s:
        snap.load_all(s)
        assert warm(s, load_keyring(env["settings"])) >= 1
    journal = Journal(tmp_path / "j.sqlite", "g-test")
    ctx = GateContext(None, None, EventDeduplicator(0), 1, MAX_FAILURES, timedelta(minutes=15))

    def offline(code: str, rid: str):
        return decide(
            SnapshotFacts(snap, journal, Deadline(5)),
            ctx,
            access_point_id=setup.ap_side,
            request_id=rid,
            actor="t",
            credential=CredentialInput(qr=code),
        )

    assert offline(_typed(issued.code), "off-1").decision == "allow"
    assert offline(_typed(issued.code), "off-2").reason == "pass_used"
    wrong = [offline(format_code("Z" * CODE_LENGTH), f"off-w{i}") for i in range(MAX_FAILURES)]
    assert [w.reason for w in wrong][-1] == "code_throttled"
    assert journal.depth >= 2 + MAX_FAILURES
