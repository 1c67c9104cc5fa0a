"""The web console, self-service and kiosk in a real browser against a real ``facegate serve``.

One server (temp data dir, free port) and one Chromium for the module; Chromium's fake camera
plays a video made at test time from a live ``pad_replayattack`` sequence (never committed;
a still photo would be refused as an attack, issue 14). The state of a first day (operator
set-up, entrances, a resident who says no, one who says yes, is refused by the camera's
prompted-movement challenge that a recorded clip cannot answer, and is enrolled from a photo
at the front desk, the kiosk, export) is built by module fixtures, each asking for the ones
it needs, so every test runs alone or in any order (issue 16 item 5); without ../shared/data
they all skip with the ``shared_data`` fixture's message. Screenshots at phone and desktop
widths go to ``artifacts/web/``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from web_support import camera_frame, free_port, jpeg, live_camera_frames, write_y4m_frames

pytestmark = pytest.mark.browser

_LIVE = "train__real__real__client001_session01_webcam_authenticate_"
LIVE_A, LIVE_B = _LIVE + "controlled_1", _LIVE + "controlled_2"  # one person, two takes
ADMIN, ADMIN_PW = "chief", "correct horse battery"
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 800}
CHROMIUM = "/usr/bin/chromium"


class World:
    """State the module fixtures build (each test asks for the fixtures it needs)."""

    base = ""
    data_dir: Path
    shots: Path
    gate_key = ""
    ap_id = ""
    decliner = ""
    enrolled = ""
    enrolled_card = "2002"
    decliner_card = "1001"
    video: Path
    desk_photo: Path
    enroll_photo: Path
    kiosk_link = ""
    log: Path
    probe = b""  # another photo of the enrolled person, as a camera frame


W = World()


@pytest.fixture(scope="module")
def server(tmp_path_factory, shared_data, artifacts_dir):
    tmp = tmp_path_factory.mktemp("web")
    W.data_dir = tmp / "data"
    W.shots = artifacts_dir / "web"
    W.shots.mkdir(parents=True, exist_ok=True)
    # A live person at the camera: a still photo is a presentation attack now (issue 14), so
    # the fake camera plays a real live sequence and the probe is another live capture of them.
    W.video = write_y4m_frames(live_camera_frames(shared_data, LIVE_A), tmp / "camera.y4m")
    W.probe = jpeg(live_camera_frames(shared_data, LIVE_B)[2])
    W.enroll_photo = tmp / "enroll.jpg"  # the photo the front desk uploads for them
    W.enroll_photo.write_bytes(jpeg(live_camera_frames(shared_data, LIVE_A)[2]))
    other = sorted((shared_data / "lfw_dev" / "images" / "Adrien_Brody").iterdir())[0]
    W.desk_photo = tmp / "desk.jpg"
    W.desk_photo.write_bytes(jpeg(camera_frame(other)))
    port = free_port()
    W.base = f"http://127.0.0.1:{port}"
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "facegate",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(W.data_dir),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={
            **os.environ,
            "FACEGATE_INFERENCE_WORKERS": "1",
            # A loaded test machine: face inference alone may exceed the 1 s default deadline.
            "FACEGATE_DECIDE_DEADLINE_MS": "30000",
            "FACEGATE_OPERATOR_NAME": "Example Property Services Co.",
            "FACEGATE_OPERATOR_CONTACT": "+86 21 5555 0100",
            "FACEGATE_SITE_NAME": "Garden Court",
            # A sign-in delay long enough that the test never races it (no timing asserted);
            # the browser's one address is not throttled by the deliberate failures below.
            "FACEGATE_WEB_LOGIN_BASE_DELAY_S": "60",
            "FACEGATE_WEB_LOGIN_ADDRESS_FREE_FAILURES": "100",
        },
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((tmp / "server.log").read_text())
        try:
            if httpx.get(W.base + "/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    else:
        proc.kill()
        raise RuntimeError("facegate serve did not become healthy")
    W.log = tmp / "server.log"
    yield W
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is missing at /usr/bin/chromium (.ci/run installs it)")
    pw = sync_playwright().start()
    b = pw.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=[
            "--no-sandbox",
            "--disable-background-networking",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={W.video}",
        ],
    )
    yield b
    b.close()
    pw.stop()


@pytest.fixture(scope="module")
def console(browser):
    """The operator's desktop browser tab (English, to read assertions easily)."""
    ctx = browser.new_context(
        viewport=DESKTOP, locale="en-US", extra_http_headers={"Accept-Language": "en-US,en;q=0.9"}
    )
    ctx.set_default_timeout(15_000)
    page = ctx.new_page()
    yield page
    ctx.close()


def shoot(page, name: str, *, phone: bool = True, desktop: bool = True) -> None:
    """Full-page screenshots at both widths (restores the page's viewport afterwards)."""
    before = page.viewport_size
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        if (label == "phone" and not phone) or (label == "desktop" and not desktop):
            continue
        page.set_viewport_size(size)
        page.screenshot(path=str(W.shots / f"{name}-{label}.png"), full_page=True)
    if before:
        page.set_viewport_size(before)


def decide(**fields: str) -> dict:
    files = None
    if "frame" in fields:
        files = {"frame": ("frame.jpg", fields.pop("frame"), "image/jpeg")}
    r = httpx.post(
        f"{W.base}/v1/access-points/{W.ap_id}/decide",
        headers={"X-API-Key": W.gate_key},
        data=fields or None,
        files=files,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return r.json()


def open_invitation(browser, link: str, **ctx_args):
    ctx = browser.new_context(viewport=PHONE, locale="zh-CN", **ctx_args)
    page = ctx.new_page()
    page.goto(link)
    page.click("#open-page")
    page.wait_for_url(re.compile(r"/me$"))
    return page


# --- operator ----------------------------------------------------------------------------------


def setup_code_printed() -> str:
    """The one-time code ``facegate serve`` printed on its own console (issue 13 item 6)."""
    found = re.findall(r"setup code ([A-Z0-9]{4}(?:-[A-Z0-9]{4}){3})", W.log.read_text())
    assert found, "facegate serve printed no setup code on a fresh install"
    return found[-1]


@pytest.fixture(scope="module")
def admin(console):
    """The first run through the pages: the setup code, the first admin, signed in."""
    page = console
    page.goto(W.base + "/")
    assert page.url.endswith("/console/setup")  # no account, no default password
    shoot(page, "setup")
    # Reaching the page first is not enough: a wrong code creates no one.
    page.fill("#setup_code", "AAAA-BBBB-CCCC-DDDD")
    page.fill("#username", "intruder")
    page.fill("#password", "intruder password")
    page.click("button[type=submit]")
    assert "setup code is wrong" in page.locator("#setup-error").inner_text()
    page.goto(W.base + "/console/login")
    assert page.url.endswith("/console/setup")  # still no account
    page.fill("#setup_code", setup_code_printed())
    # The start-up banner suggests a gate key bound to an access point (issue 16 item 4).
    assert "keys create --scope gate:decide --access-point" in W.log.read_text()
    page.fill("#username", ADMIN)
    page.fill("#password", ADMIN_PW)
    page.click("button[type=submit]")
    # The first admin is signed in at once (issue 16, measured path).
    page.wait_for_url(re.compile(r"/console$"))
    assert page.locator("h1").inner_text() == "Overview"
    # The first-run page is gone once an admin exists.
    page.goto(W.base + "/console/setup")
    assert page.url.endswith("/console/login")
    shoot(page, "login")
    page.fill("#username", ADMIN)
    page.fill("#password", ADMIN_PW)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/console$"))
    assert page.locator("h1").inner_text() == "Overview"
    return ADMIN


def test_first_run_creates_admin_then_login_and_lockout(console, admin):
    page = console
    page.goto(W.base + "/console")
    assert page.locator("h1").inner_text() == "Overview"  # signed in as the first admin
    page.goto(W.base + "/console/setup")
    assert page.url.endswith("/console/login")  # the first-run page is gone

    # An admin adds a front-desk account; five wrong passwords lock it.
    page.goto(W.base + "/console/operators")
    page.fill("#username", "desk")
    page.fill("#password", "front desk pass 1")
    page.select_option("#role", "operator")
    page.click("#add-operator button[type=submit]")
    assert "desk" in page.locator("table").inner_text()
    other = page.context.browser.new_context(locale="en-US")
    p2 = other.new_page()
    answers = {}
    for name in ("desk", "nobody-here"):  # a real account and a name that does not exist
        seen = []
        for _ in range(6):
            p2.goto(W.base + "/console/login")
            p2.fill("#username", name)
            p2.fill("#password", "wrong password!")
            p2.click("button[type=submit]")
            # The seconds left are the only difference allowed (they tick while we type).
            seen.append(re.sub(r"\d+", "N", p2.locator(".error").inner_text()))
        answers[name] = seen
    # The same answers for both: no way to tell which user names exist (issue 13 item 7).
    assert answers["desk"] == answers["nobody-here"]
    assert answers["desk"][0] == "Wrong user name or password."
    assert "wait" in answers["desk"][-1]  # a growing delay, not a lock
    p2.goto(W.base + "/console/login")
    p2.fill("#username", "desk")
    p2.fill("#password", "front desk pass 1")  # right password, during the delay: not checked
    p2.click("button[type=submit]")
    assert "wait" in p2.locator(".error").inner_text()
    assert "/console/login" in p2.url
    other.close()


def test_forms_without_csrf_token_are_refused(console, admin):
    r = console.request.post(
        W.base + "/console/access-points",
        form={"name": "Forged", "kind": "gate", "methods": "card"},
    )
    assert r.status == 403
    assert "This form has expired" in r.text()
    r = console.request.post(
        W.base + "/console/access-points",
        form={"name": "Forged", "kind": "gate", "methods": "card", "csrf": "guessed"},
    )
    assert r.status == 403
    console.goto(W.base + "/console/sites")
    assert "Forged" not in console.content()
    # The activation pages' forms too (PIA, notice facts and publish, signage).
    for path, form in (
        (
            "/console/pia",
            {"version": "9", "date": "2026-01-01", "signer": "Forger", "necessity": "x"},
        ),
        ("/console/notice/facts", {"name": "x", "address": "x", "contact": "x"}),
        ("/console/notice/publish", {}),
        ("/console/signage/ap-x", {"where": "x", "placed_on": "2026-01-01"}),
    ):
        r = console.request.post(W.base + path, form={**form, "csrf": "guessed"})
        assert r.status == 403, path
    console.goto(W.base + "/console/pia")
    assert "Forger" not in console.content()  # no PIA was recorded by the forged form


@pytest.fixture(scope="module")
def gate(console, admin):
    """The main gate with face on (after the notice, PIA and sign) and its kiosk link."""
    page = console
    page.goto(W.base + "/console/sites")
    page.fill("#ap-name", "Main gate")
    for m in ("face", "card", "pin", "qr"):
        page.check(f"#m-{m}")
    page.click("#add-ap button[type=submit]")
    row = page.locator("tr", has_text="Main gate")
    assert row.count() == 1
    W.ap_id = row.get_attribute("data-ap")

    page.fill("#ap-name", "Back door")
    page.check("#m-face")
    page.click("#add-ap button[type=submit]")
    err = page.locator("#form-error").inner_text()
    assert "CAC-FR-10" in err
    assert page.locator("tr", has_text="Back door").count() == 0
    shoot(page, "sites-refused")

    # Switching face on goes through the compliance activation gate over the live state:
    # a fresh site is refused, and the page names the failing rules.
    page.locator("tr", has_text="Main gate").locator("button", has_text="Switch face on").click()
    err = page.locator(".error").inner_text()
    for rule in ("CAC-FR-05a", "CAC-FR-09a", "CAC-FR-13a"):
        assert rule in err
    page.click("text=Back")
    assert page.url.endswith("/console/docs")
    assert "CAC-FR-09a" in page.locator("#blockers").inner_text()

    # 1. Operator facts the notice needs, then a new notice version (shown before publishing).
    page.click("#step-notice")
    page.fill("#f-address", "8 Garden Road, Shanghai")
    page.fill("#f-necessity", "Residents may use face instead of a card; cards stay valid.")
    page.fill("#f-minors-url", W.base + "/me")
    # The sign's QR target: no longer pre-filled with this browser's own (loopback) address;
    # this test serves from 127.0.0.1 and states it (the printed sign is refused below).
    assert page.locator("#f-notice-url").input_value() == ""
    page.fill("#f-notice-url", W.base + "/notice")
    for box in ("#f-large", "#f-audio", "#f-staff"):
        page.check(box)
    page.click("#facts-form button[type=submit]")
    assert "N6" in page.locator("#changed-fields").inner_text()
    assert page.locator("#renewal").count() == 1  # the renewal consequence is stated
    shoot(page, "notice-setup")
    page.click("#publish-form button[type=submit]")
    # The first notice: until the facts were complete it was only a draft (CAC-FR-05a).
    assert page.locator("#notice-version").inner_text() == "v1"
    assert page.locator("#up-to-date").count() == 1

    # 2. The signed PIA.
    page.goto(W.base + "/console/pia")
    page.fill("#pia-version", "1")
    page.fill("#pia-signer", "Wang Min")
    page.click("#pia-form button[type=submit]")
    assert "Wang Min" in page.locator("#pias").inner_text()
    shoot(page, "pia")

    # 3. The sign for the current notice, put up at the gate.
    page.goto(W.base + "/console/signage")
    card = page.locator(f"section[data-ap='{W.ap_id}']")
    card.locator("input[name=where]").fill("left of the gate, eye level")
    card.locator("button[type=submit]").click()
    card = page.locator(f"section[data-ap='{W.ap_id}']")
    assert "left of the gate" in card.locator(".sign-state").inner_text()
    shoot(page, "signage")

    # 4. Now the gate lets face on.
    page.goto(W.base + "/console/sites")
    page.locator("tr", has_text="Main gate").locator("button", has_text="Switch face on").click()
    page.wait_for_url(re.compile(r"/console/sites$"))
    assert page.locator("tr", has_text="Main gate").locator("text=Face on").count() == 1

    # A kiosk link for this entrance carries a gate key in its fragment.
    page.goto(W.base + "/console/sites")
    page.locator("tr", has_text="Main gate").locator("button", has_text="kiosk").click()
    link = page.locator("#once-link").input_value()
    W.kiosk_link = link
    W.gate_key = link.split("#key=", 1)[1]
    return W.ap_id


def test_access_points_and_face_only_is_refused_by_the_rule(console, gate):
    page = console
    page.goto(W.base + "/console/sites")
    assert page.locator("tr", has_text="Main gate").locator("text=Face on").count() == 1
    assert page.locator("tr", has_text="Back door").count() == 0  # face only was refused
    assert W.gate_key.startswith("fg_")
    assert "CAC-FR-09a" not in page.content()  # nothing blocks any more


def _new_person(page, card: str) -> str:
    page.goto(W.base + "/console/people")
    page.select_option("#category", "resident")
    page.click("#add-person button[type=submit]")
    page.wait_for_url(re.compile(r"/console/people/p-"))
    pid = page.locator("#pid").inner_text()
    page.fill("#card_number", card)
    page.click("#card-form button[type=submit]")
    page.wait_for_url(re.compile(rf"/console/people/{pid}\?done=card_issued$"))
    assert f"Card {card} issued." in page.locator("#flash").inner_text()
    return pid


def _invite(page, pid: str) -> str:
    page.goto(f"{W.base}/console/people/{pid}")
    page.click("#invite-form button[type=submit]")
    return page.locator("#once-link").input_value()


# --- residents ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def decliner(console, browser, gate):
    """A resident who opens the invitation and says no to face access."""
    W.decliner = _new_person(console, W.decliner_card)
    link = _invite(console, W.decliner)
    assert "/i/" in link
    page = open_invitation(browser, link)
    # Notice first, then two equally prominent choices, nothing pre-ticked.
    assert page.locator(".notice-text").is_visible()
    yes, no = page.locator("#choose-yes"), page.locator("#choose-no")
    by, bn = yes.bounding_box(), no.bounding_box()
    assert by and bn and abs(by["width"] - bn["width"]) < 2 and abs(by["height"] - bn["height"]) < 2
    assert yes.evaluate("e => getComputedStyle(e).backgroundColor") == no.evaluate(
        "e => getComputedStyle(e).backgroundColor"
    )
    assert page.locator("input[type=checkbox]:checked, input[type=radio]:checked").count() == 0
    shoot(page, "self-choice")
    no.click()
    assert page.locator("#flash").is_visible()
    # Remembered: not asked again.
    page.goto(W.base + "/me")
    assert page.locator("#choose-no").count() == 0
    shoot(page, "self-declined")
    # The link was single use.
    p2 = browser.new_page()
    p2.goto(link)
    p2.click("#open-page")
    assert p2.locator(".error").is_visible()
    p2.close()
    page.context.close()
    return W.decliner


def test_resident_declines_and_keeps_access_by_card(decliner):
    res = decide(card=W.decliner_card)
    assert (res["decision"], res["method"], res["subject"]) == ("allow", "card", decliner)


@pytest.fixture(scope="module")
def enrolled(console, browser, gate):
    """A resident who says yes and tries the camera enrollment; their self-service page, the
    page's answer, and the gate's answer to another photo of them once the front desk has
    enrolled them from a photo.

    Camera enrollment is an active challenge (issue 14 item 3): a random prompt ("turn your
    head left", "nod") that a recorded clip cannot know. The fake camera plays a recorded live
    sequence (its head moves well under the prompted step), so the page shows the prompt and
    then the refusal in plain words; the enrollment is completed through the operator's
    document-photo upload (audited as ``document_photo``). A person answering the prompt is
    tested on a rotated head model in tests/test_enroll_challenge.py."""
    W.enrolled = _new_person(console, W.enrolled_card)
    link = _invite(console, W.enrolled)
    page = open_invitation(browser, link)
    page.click("#choose-yes")
    page.wait_for_url(re.compile(r"/me/enroll$"))
    page.click("#start")
    page.wait_for_selector("#hint.good", timeout=30_000)
    shoot(page, "self-enroll")  # shows the camera: artefacts only
    assert page.locator("#snap").is_enabled() and not page.locator("#start").is_visible()
    page.click("#snap")
    page.wait_for_selector("#prompt:visible", timeout=30_000)
    seen = {"prompt": page.locator("#prompt").inner_text()}
    page.wait_for_selector("#result[data-ok]", timeout=60_000)
    seen["ok"] = page.locator("#result").get_attribute("data-ok")
    seen["refusal"] = page.locator("#result").inner_text()
    # The front desk enrolls them from a photo instead (another capture of the same person).
    console.goto(f"{W.base}/console/people/{W.enrolled}")
    console.set_input_files("#photo", str(W.enroll_photo))
    console.click("#enroll-form button[type=submit]")
    seen["desk"] = console.locator(".notice, .error").first.inner_text()
    res = decide(frame=W.probe)  # another photo of the same person
    return {"page": page, "decision": res, **seen}


def test_resident_consents_camera_refuses_a_recording_and_desk_enrolls(enrolled):
    # The prompt in the page's words (zh-CN: the resident's phone), then the refusal.
    assert "头" in enrolled["prompt"], enrolled["prompt"]
    assert enrolled["ok"] == "0"
    assert "真人" in enrolled["refusal"], enrolled["refusal"]
    assert enrolled["desk"] == "Enrolled."
    res = enrolled["decision"]
    assert (res["decision"], res["method"], res["subject"]) == ("allow", "face", W.enrolled), res


def test_console_enrollment_feedback_in_plain_words(console, decliner):
    # A frame with no face gets the plain-words reason, not a code.
    import numpy as np
    from web_support import H  # noqa: N811
    from web_support import W as WIDTH

    blank = jpeg(np.full((H, WIDTH, 3), 30, np.uint8))
    console.goto(f"{W.base}/console/people/{decliner}")
    csrf = console.locator("#card-form input[name=csrf]").input_value()
    r = console.request.post(
        W.base + "/console/quality",
        data=blank,
        headers={"Content-Type": "image/jpeg", "X-CSRF-Token": csrf},
    )
    body = r.json()
    assert body["ok"] is False and body["reason"] == "no_face"
    assert "look at the camera" in body["message"]
    shoot(console, "person")


def test_front_desk_consent_then_photo_enrollment(console, gate):
    page = console
    pid = _new_person(page, "3003")
    page.click("#consent-form button[type=submit]")  # box not ticked: the browser stops it
    assert page.url.split("?")[0].endswith(f"/console/people/{pid}")
    assert "consent_recorded" not in page.url
    assert "No face consent" in page.locator("#consent-state").inner_text()
    page.check("#consent-form input[name=read_notice]")
    page.click("#consent-form button[type=submit]")
    assert "Face consent active" in page.locator("#consent-state").inner_text()
    assert page.locator("#flash").inner_text() == "Consent recorded."
    page.set_input_files("#photo", str(W.desk_photo))
    page.click("#enroll-form button[type=submit]")
    assert page.locator(".notice, .error").first.inner_text() == "Enrolled."


@pytest.fixture(scope="module")
def kiosk_seen(browser, enrolled, decliner):
    """The kiosk tablet at the gate, while the enrolled resident still has face access."""
    ctx = browser.new_context(viewport={"width": 1024, "height": 768}, locale="en-US")
    page = ctx.new_page()
    page.goto(W.kiosk_link)
    seen = {"url": page.url}
    page.wait_for_selector("#verdict[data-decision=allow][data-method=face]", timeout=30_000)
    seen["face"] = page.locator("#verdict").inner_text()
    shoot(page, "kiosk")  # shows the camera (a face): artefacts only, never committed
    page.fill("#k-card", W.decliner_card)
    page.click("form[data-kind=card] button")
    page.wait_for_selector("#verdict[data-method=card]", timeout=10_000)
    seen["card"] = page.locator("#verdict").get_attribute("data-decision")
    page.fill("#k-card", "999999")
    page.click("form[data-kind=card] button")
    page.wait_for_selector("#verdict[data-decision=deny]", timeout=10_000)
    seen["unknown_card"] = page.locator("#verdict").inner_text()
    ctx.close()
    return seen


def test_kiosk_allows_the_enrolled_face_and_a_card(kiosk_seen):
    assert "#key=" not in kiosk_seen["url"]  # the key is taken off the address bar
    assert "Allowed" in kiosk_seen["face"]
    assert kiosk_seen["card"] == "allow"
    assert "not known" in kiosk_seen["unknown_card"]


@pytest.fixture(scope="module")
def exported(enrolled, tmp_path_factory):
    """The enrolled resident's "my data" page, export and a correction request, while their
    face data is still kept."""
    page = enrolled["page"]
    page.goto(W.base + "/me/data")
    seen = {"templates_shown": page.locator("#tpl-count").inner_text()}
    shoot(page, "self-mydata")
    with page.expect_download() as dl:
        page.click("#export")
    path = tmp_path_factory.mktemp("export") / "export.json"
    dl.value.save_as(path)
    seen["text"] = path.read_text()
    # A rights request gets a deadline.
    page.goto(W.base + "/me/data")
    page.check("input[name=kind][value=correction]")
    page.click("#rights-form button[type=submit]")
    seen["request_notice"] = page.locator(".notice").is_visible()
    return seen


def test_my_data_and_export(exported):
    assert exported["templates_shown"] == "1"
    data = json.loads(exported["text"])
    assert data["id"] == W.enrolled
    assert [c["kind"] for c in data["credentials"]] == ["card"]
    assert len(data["templates"]) == 1 and set(data["templates"][0]) >= {"id", "model_id"}
    text = exported["text"]
    assert "vector" not in text and "ciphertext" not in text and "nonce" not in text
    assert exported["request_notice"]


def test_withdrawal_erases_at_once_and_card_still_works(enrolled, kiosk_seen, exported):
    # After the kiosk and the export (their fixtures ran first): the face is gone from here on.
    page = enrolled["page"]
    page.goto(W.base + "/me/data")
    page.click("#withdraw")
    shoot(page, "self-withdraw-confirm")
    page.click("#withdraw-yes")
    page.wait_for_selector("#withdrawn")
    t0 = time.monotonic()
    res = decide(frame=W.probe)
    while res["decision"] != "deny" and time.monotonic() - t0 < 1.0:
        res = decide(frame=W.probe)
    assert res["decision"] == "deny" and res["subject"] is None, res
    assert time.monotonic() - t0 < 1.5  # denied within a second (slack for the request)
    res = decide(card=W.enrolled_card)
    assert (res["decision"], res["subject"]) == ("allow", W.enrolled)
    page.goto(W.base + "/me/data")
    assert page.locator("#tpl-count").inner_text() == "0"
    page.context.close()


def test_console_pages_show_no_face_and_the_records(console, gate, kiosk_seen, exported):
    page = console
    for path, name in (
        ("/console/events", "events"),
        ("/console/people", "people"),
        ("/console/rights", "rights"),
        ("/console/compliance", "compliance"),
        ("/console/docs", "docs"),
        ("/console/audit", "audit"),
        ("/console", "home"),
    ):
        page.goto(W.base + path)
        assert page.locator("img, video, canvas").count() == 0  # no faces, ever
        shoot(page, name)
    page.goto(W.base + "/console/events")
    table = page.locator("table").inner_text()
    assert "Face" in table and "Card" in table and W.enrolled in table
    page.goto(W.base + "/console/rights")
    assert "correction" in page.locator("table").inner_text()
    # Refusing needs a reason, which the person is told (PIPL-50).
    page.locator("form.reject input[name=reason]").fill("identity could not be confirmed")
    page.locator("form.reject button").click()
    assert "rejected: identity could not be confirmed" in page.locator("table").inner_text()
    page.goto(W.base + "/console/audit")
    assert "intact" in page.locator("#audit-status").inner_text()
    # The compliance engine's own documents over the live state, linked from the console.
    page.goto(W.base + "/console/docs")
    links = page.locator("ul.links a").all()
    assert len(links) == 3  # notice, PIA, the sign of the one face entrance
    for link in links:
        r = page.request.get(W.base + link.get_attribute("href"))
        if "/signage" in link.get_attribute("href"):
            # Issue 16 item 9: this test serves from 127.0.0.1, which no resident's phone
            # can open: the sign is refused, with the way to fix it.
            assert r.status == 422 and "FACEGATE_PUBLIC_URL" in r.text()
            continue
        assert r.status == 200 and "Example Property Services Co." in r.text()


def test_language_switch(browser, admin):  # the sign-in page exists once an admin does
    ctx = browser.new_context(
        viewport=PHONE, locale="en-US", extra_http_headers={"Accept-Language": "en-US,en;q=0.9"}
    )
    page = ctx.new_page()
    page.goto(W.base + "/console/login")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").inner_text() == "Sign in"
    page.click("#lang-switch")
    page.wait_for_url(re.compile(r"/console/login$"))
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator("h1").inner_text() == "登录"
    # Larger text, remembered on the device (CAC-FR-05c).
    page.click("#text-size")
    assert page.evaluate("document.documentElement.classList.contains('large')")
    page.reload()
    assert page.evaluate("document.documentElement.classList.contains('large')")
    # Keyboard: the skip link is the first stop and every field has a label.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    for el in page.locator("input:not([type=hidden])").all():
        assert page.locator(f"label[for={el.get_attribute('id')}]").count() == 1
    ctx.close()
