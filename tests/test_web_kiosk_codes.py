"""The kiosk in a real browser (issue 16 item 10): a QR pass's short code typed on the tablet
opens a door that takes QR passes, and each kiosk offers only its own door's methods.

A real ``facegate serve`` (temp data dir, free port) and Debian's Chromium, headless, without
a camera (no face data needed, so nothing here skips).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from server_support import make_site
from web_support import free_port

from facegate.audit import anchor as audit_anchor
from facegate.config import Settings
from facegate.domain import add_person, issue_qr_pass, make_kiosk_key

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    data = tmp_path_factory.mktemp("kiosk-codes") / "data"
    settings = Settings(data_dir=data)
    setup = make_site(settings)
    store = audit_anchor.open_store(settings)
    with store.session() as s:
        person = add_person(s, actor="test", category="resident", site_id=setup.site_id).id
        code = issue_qr_pass(s, actor="test", person_id=person).code
        keys = {
            ap: make_kiosk_key(s, actor="test", access_point_id=ap)[1]
            for ap in (setup.ap_side, setup.ap_lobby)
        }
    store.dispose()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = data.parent / "server.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [sys.executable, "-m", "facegate", "serve", "--port", str(port), "--data-dir", str(data)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={
            **os.environ,
            "FACEGATE_INFERENCE_WORKERS": "1",
            "FACEGATE_DECIDE_DEADLINE_MS": "30000",
        },
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(log_path.read_text())
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    else:
        proc.kill()
        raise RuntimeError("facegate serve did not become healthy")
    yield {"base": base, "setup": setup, "code": code, "person": person, "keys": keys}
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def page(served):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is missing at /usr/bin/chromium (.ci/run installs it)")
    pw = sync_playwright().start()
    b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
    ctx = b.new_context(locale="en-US", extra_http_headers={"Accept-Language": "en-US,en;q=0.9"})
    yield ctx.new_page()
    ctx.close()
    b.close()
    pw.stop()


def _open(page, served, ap: str) -> None:
    page.goto(f"{served['base']}/kiosk/{ap}#key={served['keys'][ap]}")
    page.wait_for_selector("#sign:not([hidden])", timeout=20_000)


def _visible_forms(page) -> list[str]:
    return page.eval_on_selector_all(
        ".kform", "fs => fs.filter(f => !f.hidden).map(f => f.dataset.kind)"
    )


def test_kiosk_takes_a_typed_short_code_where_qr_passes_are_accepted(page, served):
    _open(page, served, served["setup"].ap_side)  # card and QR
    assert sorted(_visible_forms(page)) == ["card", "qr"]
    typed = served["code"].lower().replace("-", " ")
    page.fill("#k-qr", typed)
    page.locator('.kform[data-kind="qr"] button').click()
    page.wait_for_selector("#verdict[data-decision]", timeout=20_000)
    assert page.locator("#verdict").get_attribute("data-decision") == "allow"
    assert page.locator("#verdict").get_attribute("data-method") == "qr"


def test_kiosk_offers_only_its_doors_methods(page, served):
    _open(page, served, served["setup"].ap_lobby)  # face and card only
    assert _visible_forms(page) == ["card"]
    alts = page.locator("#ap-alt-tags .tag").all_inner_texts()
    assert alts == ["Card"]
    assert "QR" not in page.locator("#sign").inner_text()
    assert "PIN" not in page.locator("#sign").inner_text()
