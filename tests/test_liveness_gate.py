"""Liveness in every face decision (issue 14, integration): the per-access-point policy, the
gate's ``liveness_failed`` through the decide API, nothing stored about a refused face, and
the CAC-FR-14 finding for a point whose check is off.

Attack frames: printed photos of ``../shared/data/pad_nuaa`` (the passive pair separates them
completely, see tests/test_liveness.py); enrolled people: ``lfw_dev`` as in test_server_api.
"""

from __future__ import annotations

import csv
import sqlite3

import numpy as np
import pytest
from fastapi.testclient import TestClient
from server_support import enable_face, make_site, people_images, pipeline
from sqlalchemy import select

from facegate.access import challenge, liveness
from facegate.api import create_app
from facegate.compliance.checks import run_checks
from facegate.compliance.live import deployment_from_store
from facegate.config import Settings
from facegate.domain import enroll
from facegate.errors import InvalidInput, LivenessFailed
from facegate.store.db import Store
from facegate.store.models import AccessEvent, AccessPoint, AuditEntry, Template

A = "Colin_Powell"


def _nuaa(shared_data, label: str) -> list[bytes]:
    root = shared_data / "pad_nuaa"
    with (root / "manifest.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["label"] == label]
    return [(root / r["path"]).read_bytes() for r in rows[::45][:3]]


@pytest.fixture(scope="module")
def env(tmp_path_factory, shared_data):
    images = people_images(shared_data)
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("liveint"),
        inference_workers=1,
        inference_queue=0,
        max_frame_bytes=400_000,
    )
    setup = make_site(settings)
    app = create_app(settings, pipeline=pipeline())
    with TestClient(app) as client:

        def h(name):
            return {"X-API-Key": setup.keys[name]}

        r = client.post("/v1/persons", json={"category": "resident"}, headers=h("enroll"))
        pid = r.json()["id"]
        assert client.post(f"/v1/persons/{pid}/consents", json={}, headers=h("enroll")).is_success
        files = [("image", (f"{i}.jpg", b, "image/jpeg")) for i, b in enumerate(images[A][:2])]
        r = client.post(f"/v1/persons/{pid}/enroll", files=files, headers=h("enroll"))
        assert r.status_code == 201, r.text
        r = client.post(
            f"/v1/persons/{pid}/credentials",
            json={"kind": "card", "card_number": "CARD-LIVE-A"},
            headers=h("enroll"),
        )
        assert r.status_code == 201, r.text
        yield {
            "client": client,
            "h": h,
            "setup": setup,
            "settings": settings,
            "pid": pid,
            "images": images,
            "print": _nuaa(shared_data, "spoof"),
            "app": app,
        }


def _decide(env, ap, frames, **cred):
    files = [("frame", (f"f{i}.jpg", f, "image/jpeg")) for i, f in enumerate(frames)]
    return env["client"].post(
        f"/v1/access-points/{ap}/decide", files=files, data=cred, headers=env["h"]("gate")
    )


def _counts(db_path) -> dict[str, int]:
    with sqlite3.connect(db_path) as con:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {n: con.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0] for n in names}


def _db_path(settings: Settings):
    return settings.database_url.removeprefix("sqlite:///")


LIVE = "train__real__real__client001_session01_webcam_authenticate_"


def test_live_burst_of_an_enrolled_person_is_allowed_and_a_repeated_frame_is_not(env, shared_data):
    """A real live sequence (pad_replayattack, 0.5 s apart) opens for the enrolled person;
    the same frame sent three times is as still as a photo on a stand and is refused."""
    from web_support import jpeg, live_camera_frames

    client, h = env["client"], env["h"]
    pid = client.post("/v1/persons", json={"category": "resident"}, headers=h("enroll")).json()
    pid = pid["id"]
    assert client.post(f"/v1/persons/{pid}/consents", json={}, headers=h("enroll")).is_success
    enroll_frames = live_camera_frames(shared_data, LIVE + "controlled_1")
    files = [
        ("image", (f"e{i}.jpg", jpeg(f), "image/jpeg")) for i, f in enumerate(enroll_frames[:3])
    ]
    r = client.post(f"/v1/persons/{pid}/enroll", files=files, headers=h("enroll"))
    assert r.status_code == 201, r.text
    burst = [jpeg(f) for f in live_camera_frames(shared_data, LIVE + "controlled_2")[:3]]
    ap = env["setup"].ap_main
    r = _decide(env, ap, burst)
    assert (r.json()["decision"], r.json()["subject"]) == ("allow", pid), r.text
    r = _decide(env, ap, [burst[0]] * 3)
    assert (r.json()["decision"], r.json()["reason"]) == ("deny", "liveness_failed")


def test_policy_rules():
    assert liveness.default_policy("kiosk") == "challenge"
    assert liveness.default_policy("gate") == liveness.default_policy("door") == "passive"
    assert liveness.check_policy("off", ["face", "card"]) == "off"
    with pytest.raises(InvalidInput, match="card, PIN or QR pass"):
        liveness.check_policy("off", ["face", "staffed"])
    with pytest.raises(InvalidInput):
        liveness.check_policy("sometimes", ["face", "card"])
    # off holds only when a credential came with the face.
    assert liveness.effective_mode("off", credential_present=True) == "off"
    assert liveness.effective_mode("off", credential_present=False) == "passive"
    assert liveness.effective_mode(None, credential_present=False) == "passive"


def test_printed_photo_is_denied_liveness_failed_and_nothing_is_kept(env):
    s = env["setup"]
    db = _db_path(env["settings"])
    before = _counts(db)
    frame = env["print"][0]
    r = _decide(env, s.ap_main, [frame])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["decision"] == "deny" and body["reason"] == "liveness_failed"
    assert body["subject"] is None
    # A burst of printed frames too; the reason never says which signal failed.
    r = _decide(env, s.ap_main, env["print"])
    assert r.json()["reason"] == "liveness_failed"
    assert "signal" not in r.text and "score" not in r.text
    after = _counts(db)
    grew = {t for t in after if after[t] != before.get(t, 0)}
    # An access event and its audit entry (and the event outbox), nothing else.
    assert grew <= {"access_events", "audit_entries", "event_outbox"}, grew
    assert after["access_events"] == before["access_events"] + 2
    store = Store(env["settings"].database_url)
    try:
        with store.session() as ses:
            ev = ses.execute(
                select(AccessEvent).where(AccessEvent.request_id == body["request_id"])
            ).scalar_one()
            assert (ev.outcome, ev.reason) == ("deny", "liveness_failed")
            assert ev.person_pseudonym is None and ev.score is None
            audited = [
                a
                for a in ses.execute(select(AuditEntry)).scalars()
                if (a.details or {}).get("request_id") == body["request_id"]
            ]
            assert len(audited) == 1
            assert audited[0].operation == "match_decision" and audited[0].subject is None
            assert audited[0].details["reason"] == "liveness_failed"
    finally:
        store.dispose()
    # Not a byte of the frame in the database files (main file and write-ahead log).
    chunk = frame[len(frame) // 2 : len(frame) // 2 + 48]
    for suffix in ("", "-wal"):
        try:
            with open(db + suffix, "rb") as fh:
                assert chunk not in fh.read()
        except FileNotFoundError:
            pass


def test_off_applies_only_with_a_credential(env):
    s = env["setup"]
    c, h = env["client"], env["h"]
    # lobby accepts face and card: off is allowed there.
    r = c.put(
        f"/v1/access-points/{s.ap_lobby}/liveness", json={"liveness": "off"}, headers=h("admin")
    )
    assert r.status_code == 200, r.text
    assert r.json()["liveness"] == "off"
    try:
        printed = env["print"][0]
        # With a card the face is only confirmed 1:1: no liveness, the match decides.
        r = _decide(env, s.ap_lobby, [printed], card="CARD-LIVE-A")
        assert r.json()["decision"] == "deny" and r.json()["reason"] != "liveness_failed"
        # The enrolled person's own photo with their card passes at an `off` point ...
        own = env["images"][A][3]
        r = _decide(env, s.ap_lobby, [own], card="CARD-LIVE-A")
        assert r.json()["decision"] == "allow", r.text
        # ... but a bare face is still checked there.
        r = _decide(env, s.ap_lobby, [printed])
        assert r.json()["reason"] == "liveness_failed"
        # CAC-FR-14: the compliance engine reports the point.
        store = Store(env["settings"].database_url)
        try:
            with store.session() as ses:
                found = run_checks(deployment_from_store(ses, env["settings"], verify_audit=False))
        finally:
            store.dispose()
        hits = [f for f in found if f.rule_id == "CAC-FR-14" and s.ap_lobby in f.object]
        assert hits and "liveness" in hits[0].message_en and "活体" in hits[0].message_zh
    finally:
        r = c.put(
            f"/v1/access-points/{s.ap_lobby}/liveness",
            json={"liveness": "passive"},
            headers=h("admin"),
        )
        assert r.status_code == 200
    store = Store(env["settings"].database_url)
    try:
        with store.session() as ses:
            found = run_checks(deployment_from_store(ses, env["settings"], verify_audit=False))
    finally:
        store.dispose()
    assert not [f for f in found if "liveness" in f.message_en]


def test_off_refused_where_face_may_be_used_without_a_credential(env):
    c, h = env["client"], env["h"]
    r = c.post(
        "/v1/access-points",
        json={"name": "staffed door", "kind": "door", "methods": ["face", "staffed"]},
        headers=h("admin"),
    )
    assert r.status_code == 201, r.text
    ap = r.json()
    assert ap["liveness"] == "passive"
    r = c.put(
        f"/v1/access-points/{ap['id']}/liveness", json={"liveness": "off"}, headers=h("admin")
    )
    assert r.status_code == 422
    assert r.json()["code"] == "invalid_input" and "card, PIN or QR pass" in r.json()["message"]
    r = c.post(
        "/v1/access-points",
        json={"name": "kiosk", "kind": "kiosk", "methods": ["face", "card"]},
        headers=h("admin"),
    )
    assert r.status_code == 201 and r.json()["liveness"] == "challenge"
    store = Store(env["settings"].database_url)
    try:
        with store.session() as ses:
            assert ses.get(AccessPoint, ap["id"]).liveness == "passive"
    finally:
        store.dispose()


def _consented_person(env) -> str:
    c, h = env["client"], env["h"]
    pid = c.post("/v1/persons", json={"category": "resident"}, headers=h("enroll")).json()["id"]
    assert c.post(f"/v1/persons/{pid}/consents", json={}, headers=h("enroll")).is_success
    return pid


def _templates_and_audit(env, pid):
    store = Store(env["settings"].database_url)
    try:
        with store.session() as ses:
            n = len(ses.execute(select(Template).where(Template.person_id == pid)).all())
            entries = ses.execute(
                select(AuditEntry).where(AuditEntry.operation == "enroll")
            ).scalars()
            mine = [a for a in entries if a.subject == pid]
            return n, [(a.outcome, dict(a.details or {})) for a in mine]
    finally:
        store.dispose()


def test_camera_enrollment_refuses_a_photo_and_marks_document_photos(env):
    rt = env["app"].state.runtime
    keyring = rt.galleries.loader.keyring
    pipe = pipeline()
    pid = _consented_person(env)
    store = Store(env["settings"].database_url)
    try:
        with store.session() as ses, pytest.raises(LivenessFailed):
            enroll(
                ses,
                keyring,
                pipe,
                actor="test",
                person_id=pid,
                images=[pipe.decode(env["print"][1])],
                source="camera",
            )
    finally:
        store.dispose()
    n, entries = _templates_and_audit(env, pid)
    assert n == 0 and not [e for e in entries if e[0] == "ok"]
    # An operator's uploaded photo: enrolled, and the audit log says what it was.
    r = env["client"].post(
        f"/v1/persons/{pid}/enroll",
        files=[("image", ("doc.jpg", env["images"]["Ariel_Sharon"][0], "image/jpeg"))],
        headers=env["h"]("enroll"),
    )
    assert r.status_code == 201, r.text
    n, entries = _templates_and_audit(env, pid)
    assert n == 1
    assert [e[1].get("source") for e in entries if e[0] == "ok"] == ["document_photo"]


# -- active challenge (kiosk) -----------------------------------------------------------------

# A canonical head (x right, y down, z toward the camera; inter-eye distance 1): right eye,
# left eye, nose tip, mouth right, mouth left, as the person's own sides.
_HEAD = np.array(
    [[-0.5, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.6, 0.6], [-0.4, 1.2, 0.1], [0.4, 1.2, 0.1]]
)


class _Seen:
    def __init__(self, yaw_deg: float = 0.0, pitch_deg: float = 0.0) -> None:
        y, p = np.radians(yaw_deg), np.radians(pitch_deg)
        # Turning to the person's left moves the nose toward the image's right (+x).
        ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
        rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
        pts = _HEAD @ (ry @ rx).T
        self.landmarks = (pts[:, :2] * 60 + 200).astype(np.float32)


def test_challenge_geometry_on_a_rotating_head():
    still = [_Seen() for _ in range(4)]
    left = [_Seen(a) for a in (0, 10, 25, 10)]
    right = [_Seen(-a) for a in (0, 10, 25, 10)]
    nod = [_Seen(0, a) for a in (0, 12, 20, 5)]
    assert abs(challenge.head_pose(_Seen().landmarks)[0]) < 1e-6
    for prompt in challenge.PROMPTS:
        assert not challenge.movement_done(prompt, still), prompt
    assert challenge.movement_done("turn_left", left)
    assert not challenge.movement_done("turn_right", left)
    assert challenge.movement_done("turn_right", right)
    assert not challenge.movement_done("turn_left", right)
    assert challenge.movement_done("nod", nod)
    assert not challenge.movement_done("nod", left[:2] + [None, None])  # too few faces
    # Single use, scoped, time-limited.
    book = challenge.ChallengeBook(ttl_s=30)
    c = book.issue("ap-1")
    assert book.take(c.nonce, "ap-2") == (None, "expired")
    c = book.issue("ap-1")
    assert book.take(c.nonce, "ap-1")[1] == "ok"
    assert book.take(c.nonce, "ap-1") == (None, "expired")
    assert set(c.words()) == {"zh-CN", "en"} and all(c.words().values())
    late = challenge.ChallengeBook(ttl_s=0)
    assert late.take(late.issue("ap-1").nonce, "ap-1") == (None, "expired")


def test_kiosk_needs_the_challenge_and_a_still_photo_fails_it(env):
    c, h, s = env["client"], env["h"], env["setup"]
    r = c.post(
        "/v1/access-points",
        json={"name": "lobby kiosk", "kind": "kiosk", "methods": ["face", "card"]},
        headers=h("admin"),
    )
    kiosk = r.json()["id"]
    store = Store(env["settings"].database_url)
    try:
        enable_face(store, s.site_id, kiosk)
    finally:
        store.dispose()
    photo = env["images"][A][3]  # the enrolled person's own photo
    # Without a challenge a kiosk matches no face.
    r = _decide(env, kiosk, [photo, photo, photo])
    assert r.json()["reason"] == "liveness_failed"
    # A still photo held up to the kiosk does not make the prompted move.
    ch = c.post(f"/v1/access-points/{kiosk}/challenge", headers=h("gate"))
    assert ch.status_code == 200, ch.text
    body = ch.json()
    assert body["prompt"] in challenge.PROMPTS and body["message"]["zh-CN"]
    r = _decide(env, kiosk, [photo, photo, photo], challenge=body["challenge"])
    assert r.json()["decision"] == "deny" and r.json()["reason"] == "liveness_failed"
    # The same photo with a card at a passive gate: the match decides (it is the person).
    r = _decide(env, s.ap_main, [photo], card="CARD-LIVE-A")
    assert r.json()["decision"] == "allow", r.text


def test_console_sets_the_policy_and_refuses_off_without_a_credential(env):
    import re

    from facegate.domain.accounts import create_operator

    c, s = env["client"], env["setup"]
    pw = "liveness-console-pw-1"
    store = Store(env["settings"].database_url)
    try:
        with store.session() as ses:
            create_operator(ses, actor="test", username="lv_admin", password=pw, role="admin")
            staffed = AccessPoint(
                id="ap-lv-staffed",
                site_id=s.site_id,
                name="staffed face door",
                kind="door",
                methods=["face", "staffed"],
            )
            ses.add(staffed)
            ses.commit()
    finally:
        store.dispose()
    csrf_re = re.compile(r'name="csrf" value="([^"]+)"')
    c.cookies.clear()
    page = c.get("/console/login", headers={"Accept-Language": "en"})
    r = c.post(
        "/console/login",
        data={"csrf": csrf_re.search(page.text).group(1), "username": "lv_admin", "password": pw},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    try:
        sites = c.get("/console/sites", headers={"Accept-Language": "en"})
        assert f'action="/console/access-points/{s.ap_lobby}/liveness"' in sites.text
        assert "Liveness check" in sites.text
        csrf = csrf_re.search(sites.text).group(1)
        r = c.post(
            "/console/access-points/ap-lv-staffed/liveness",
            data={"csrf": csrf, "liveness": "off"},
            headers={"Accept-Language": "en"},
            follow_redirects=False,
        )
        assert r.status_code == 422 and "card, PIN or QR pass" in r.text
        r = c.post(
            f"/console/access-points/{s.ap_lobby}/liveness",
            data={"csrf": csrf, "liveness": "challenge"},
            follow_redirects=False,
        )
        assert r.status_code == 303
        store = Store(env["settings"].database_url)
        try:
            with store.session() as ses:
                assert ses.get(AccessPoint, s.ap_lobby).liveness == "challenge"
                assert ses.get(AccessPoint, "ap-lv-staffed").liveness == "passive"
                ses.get(AccessPoint, s.ap_lobby).liveness = "passive"
                ses.commit()
        finally:
            store.dispose()
    finally:
        c.cookies.clear()


def test_cli_sets_the_policy_and_explains_a_refusal(env):
    import json

    from typer.testing import CliRunner

    from facegate.cli.main import app

    st = env["settings"]
    common = ["--data-dir", str(st.data_dir), "--db", st.database_url, "--json"]
    runner = CliRunner()
    s = env["setup"]
    res = runner.invoke(app, ["access-point", "liveness", s.ap_main, "off", *common])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"id": s.ap_main, "liveness": "off"}
    res = runner.invoke(app, ["access-point", "liveness", s.ap_main, "passive", *common])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["access-point", "liveness", s.ap_side, "sometimes", *common])
    assert res.exit_code != 0 and "passive, challenge, off" in res.stderr
