"""The gate server through real HTTP semantics (httpx against the ASGI app), on SQLite.

Real images of real people from ../shared/data, the real FacePipeline (loaded once).
"""

from __future__ import annotations

import base64
import io
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from server_support import make_site, people_images, pipeline

from facegate import audit
from facegate.api import create_app
from facegate.config import Settings
from facegate.domain import withdraw
from facegate.store.db import Store
from facegate.store.models import AccessEvent, AuditEntry

A, B, C = "Colin_Powell", "Donald_Rumsfeld", "Ariel_Sharon"


class Recorder:
    """Wraps the client to keep every response body for the template scan."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.bodies: list[bytes] = []

    def __getattr__(self, name):
        method = getattr(self.client, name)

        def call(*args, **kwargs):
            r = method(*args, **kwargs)
            self.bodies.append(r.content)
            return r

        return call


@pytest.fixture(scope="module")
def env(tmp_path_factory, shared_data):
    images = people_images(shared_data)
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("gate"),
        inference_workers=1,
        inference_queue=0,
        max_frame_bytes=400_000,
        pin_max_failures=3,
        # Rules, not deadlines, are tested here: on a loaded test machine one argon2 PIN check
        # alone takes about a second (the 1 s default is for a gate's own hardware).
        decide_deadline_ms=30_000,
        db_decision_timeout_ms=10_000,
    )
    setup = make_site(settings)
    app = create_app(settings, pipeline=pipeline())
    with TestClient(app) as client:
        http = Recorder(client)
        k = setup.keys

        def h(name):
            return {"X-API-Key": k[name]}

        people = {}
        for who in (A, B):
            r = http.post("/v1/persons", json={"category": "resident"}, headers=h("enroll"))
            assert r.status_code == 201, r.text
            pid = r.json()["id"]
            r = http.post(f"/v1/persons/{pid}/consents", json={}, headers=h("enroll"))
            assert r.status_code == 201, r.text
            files = [
                ("image", (f"{i}.jpg", img, "image/jpeg")) for i, img in enumerate(images[who][:2])
            ]
            r = http.post(f"/v1/persons/{pid}/enroll", files=files, headers=h("enroll"))
            assert r.status_code == 201, r.text
            people[who] = pid
        yield {
            "http": http,
            "setup": setup,
            "h": h,
            "people": people,
            "images": images,
            "app": app,
            "settings": settings,
        }


def decide(env, ap, key="gate", frames=(), **cred):
    files = [("frame", (f"f{i}.jpg", f, "image/jpeg")) for i, f in enumerate(frames)]
    kwargs = {"headers": env["h"](key)}
    if files:
        kwargs["files"] = files
        if cred:
            kwargs["data"] = cred
    else:
        kwargs["json"] = cred
    return env["http"].post(f"/v1/access-points/{ap}/decide", **kwargs)


def test_face_allows_enrolled_and_denies_stranger(env):
    s, img, ppl = env["setup"], env["images"], env["people"]
    for who in (A, B):
        r = decide(env, s.ap_main, frames=[img[who][2]])
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["decision"] == "allow" and body["subject"] == ppl[who]
        assert body["method"] == "face" and body["request_id"]
    r = decide(env, s.ap_main, frames=[img[C][0]])
    assert r.json()["decision"] == "deny" and r.json()["reason"] == "no_match"
    assert r.json()["subject"] is None
    # A non-match stores nothing about the face: no pseudonym, no score.
    with env["app"].state.runtime.store.session() as db:
        ev = db.query(AccessEvent).filter_by(request_id=r.json()["request_id"]).one()
        assert ev.person_pseudonym is None and ev.score is None and ev.outcome == "deny"


def test_raw_image_body_and_burst(env):
    s, img, ppl = env["setup"], env["images"], env["people"]
    r = env["http"].post(
        f"/v1/access-points/{s.ap_main}/decide",
        content=img[A][3],
        headers={**env["h"]("gate"), "content-type": "image/jpeg"},
    )
    assert r.json()["decision"] == "allow" and r.json()["subject"] == ppl[A]
    # Two photos taken years apart are no camera's burst: liveness refuses them before any
    # matching (issue 14). A live burst is allowed in tests/test_liveness_gate.py; the
    # burst_disagree rule itself is tested in test_server_infra.
    r = decide(env, s.ap_main, frames=[img[A][2], img[A][3]])
    assert (r.json()["decision"], r.json()["reason"]) == ("deny", "liveness_failed")
    # Two frames of different people never let either in.
    r = decide(env, s.ap_main, frames=[img[A][2], img[B][2]])
    assert r.json()["decision"] == "deny" and r.json()["subject"] is None


def test_no_face_and_face_not_accepted(env, shared_data):
    s = env["setup"]
    giraffe = (shared_data / "detection/images/dlib/giraffe.jpg").read_bytes()
    r = decide(env, s.ap_main, frames=[giraffe])
    assert r.json()["reason"] == "no_face" and r.json()["decision"] == "deny"
    r = decide(env, s.ap_side, frames=[env["images"][A][2]])
    assert r.json()["reason"] == "method_not_accepted:face"


def test_card_pin_and_one_to_one(env):
    s, img, ppl, h, http = env["setup"], env["images"], env["people"], env["h"], env["http"]
    r = http.post(
        f"/v1/persons/{ppl[A]}/credentials",
        json={"kind": "card", "card_number": "CARD-A"},
        headers=h("enroll"),
    )
    assert r.status_code == 201, r.text
    r = decide(env, s.ap_side, card="CARD-A")
    assert r.json() | {"request_id": ""} == {
        "decision": "allow",
        "method": "card",
        "subject": ppl[A],
        "reason": "ok",
        "request_id": "",
    }
    assert decide(env, s.ap_side, card="NOPE").json()["reason"] == "unknown_credential"
    # 1:1: the card names A, the face confirms; B's face with A's card is refused.
    r = decide(env, s.ap_main, frames=[img[A][2]], card="CARD-A")
    assert (r.json()["decision"], r.json()["method"]) == ("allow", "card+face")
    r = decide(env, s.ap_main, frames=[img[B][2]], card="CARD-A")
    assert r.json()["decision"] == "deny" and r.json()["reason"] == "no_match"


def test_pin_lockout(env):
    s, ppl, h, http = env["setup"], env["people"], env["h"], env["http"]
    r = http.post(
        f"/v1/persons/{ppl[B]}/credentials",
        json={"kind": "pin", "pin": "4821", "identifier": "unit-1203"},
        headers=h("enroll"),
    )
    assert r.status_code == 201, r.text
    r = decide(env, s.ap_main, pin="4821", person="unit-1203")
    assert r.json()["decision"] == "allow" and r.json()["subject"] == ppl[B]
    answers = [decide(env, s.ap_main, pin="0000", person="unit-1203").json() for _ in range(3)]
    assert [a["reason"] for a in answers] == ["wrong_pin", "wrong_pin", "pin_locked"]
    # Every failed attempt is its own event (never folded into one like repeated passages).
    with env["app"].state.runtime.store.session() as db:
        for a in answers:
            assert db.query(AccessEvent).filter_by(request_id=a["request_id"]).count() == 1
    # Locked: even the right PIN is refused until the lockout ends.
    assert decide(env, s.ap_main, pin="4821", person="unit-1203").json()["reason"] == "pin_locked"
    assert decide(env, s.ap_main, pin="4821").status_code == 422  # whose PIN?


def test_qr_pass_expiry_and_reuse(env):
    s, h, http = env["setup"], env["h"], env["http"]
    r = http.post("/v1/passes", json={"max_uses": 1}, headers=h("enroll"))
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    first = decide(env, s.ap_side, qr=token).json()
    assert (first["decision"], first["method"], first["subject"]) == ("allow", "qr", None)
    assert decide(env, s.ap_side, qr=token).json()["reason"] == "pass_used"
    now = datetime.now(UTC)
    r = http.post(
        "/v1/passes",
        json={
            "max_uses": 5,
            "valid_from": (now - timedelta(hours=2)).isoformat(),
            "valid_until": (now - timedelta(hours=1)).isoformat(),
        },
        headers=h("enroll"),
    )
    assert decide(env, s.ap_side, qr=r.json()["token"]).json()["reason"] == "pass_expired"
    r = http.post(
        "/v1/passes",
        json={"valid_from": (now + timedelta(hours=1)).isoformat()},
        headers=h("enroll"),
    )
    assert decide(env, s.ap_side, qr=r.json()["token"]).json()["reason"] == "pass_not_yet_valid"
    r = http.post("/v1/passes", json={"access_point_ids": [s.ap_lobby]}, headers=h("enroll"))
    assert decide(env, s.ap_side, qr=r.json()["token"]).json()["reason"] == "not_valid_here"
    assert decide(env, s.ap_side, qr=token[:-3] + "xyz").json()["reason"] == "unknown_credential"


def test_keys_scope_and_site_isolation(env):
    s, http, ppl = env["setup"], env["http"], env["people"]
    h = env["h"]
    assert http.get("/v1/persons").status_code == 401
    assert http.get("/v1/persons", headers={"X-API-Key": "fg_key-x_wrong"}).status_code == 401
    r = http.get("/v1/persons", headers={"Authorization": f"Bearer {env['setup'].keys['admin']}"})
    assert r.status_code == 200 and {p["id"] for p in r.json()} >= set(ppl.values())
    assert "name" not in r.text
    # A gate key can decide, not enroll, list people or read events.
    assert http.get("/v1/persons", headers=h("gate")).status_code == 403
    assert http.get("/v1/events", headers=h("gate")).status_code == 403
    files = [("image", ("a.jpg", env["images"][A][0], "image/jpeg"))]
    assert (
        http.post(f"/v1/persons/{ppl[A]}/enroll", files=files, headers=h("gate")).status_code == 403
    )
    # Bound to one access point: refused at another.
    assert decide(env, s.ap_lobby, key="gate_main_only", card="CARD-A").status_code == 403
    assert decide(env, s.ap_main, key="gate_main_only", card="CARD-A").status_code == 200
    # Another site's keys see nothing here.
    assert decide(env, s.ap_side, key="other_gate", card="CARD-A").status_code == 403
    r = http.get(f"/v1/persons/{ppl[A]}", headers=h("other_admin"))
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert http.get("/v1/persons", headers=h("other_admin")).json()[0]["id"] not in ppl.values()
    assert decide(env, "ap-nope", card="x").status_code == 404


def test_bad_uploads_are_4xx(env):
    s, http = env["setup"], env["http"]
    url = f"/v1/access-points/{s.ap_main}/decide"
    hdr = env["h"]("gate")

    def raw(body, ctype="image/jpeg"):
        return http.post(url, content=body, headers={**hdr, "content-type": ctype})

    r = raw(b"this is not an image at all, just text" * 10)
    assert r.status_code == 400 and r.json()["code"] == "image_decode_error"
    r = raw(env["images"][A][0][:2000])  # truncated JPEG
    assert r.status_code in (400, 422) and r.json()["code"].startswith("image_")
    r = raw(b"x" * 500_000)
    assert r.status_code == 413 and r.json()["code"] == "image_too_large"
    assert raw(b"").status_code == 422
    assert raw(b"{}", "text/plain").status_code == 415
    tiny = io.BytesIO()
    Image.new("RGB", (8, 8)).save(tiny, "PNG")
    r = raw(tiny.getvalue(), "image/png")
    assert r.status_code == 400 and r.json()["code"] == "image_too_small"
    r = http.post(url, json={"card": 5}, headers=hdr)
    assert r.status_code == 422 and r.json()["code"] == "invalid_input"
    r = http.post(url, json={}, headers=hdr)
    assert r.status_code == 422


def test_busy_pool_answers_503_and_cards_stay_fast(env):
    s, rt = env["setup"], env["app"].state.runtime
    rt.pool.try_acquire()  # the single slot is taken by "another" face decision
    try:
        r = decide(env, s.ap_main, frames=[env["images"][A][2]])
        assert r.status_code == 503 and r.json()["code"] == "busy"
        assert int(r.headers["retry-after"]) >= 1
        r = decide(env, s.ap_side, card="CARD-A")
        assert r.status_code == 200 and r.json()["decision"] == "allow"
    finally:
        rt.pool.release()


def test_override_and_events(env):
    s, http, h, ppl = env["setup"], env["http"], env["h"], env["people"]
    body = {"operator": "guard-07", "reason": "intercom_verified", "subject": ppl[B]}
    assert (
        http.post(
            f"/v1/access-points/{s.ap_main}/override", json=body, headers=h("gate")
        ).status_code
        == 403
    )
    r = http.post(f"/v1/access-points/{s.ap_main}/override", json=body, headers=h("admin"))
    assert r.status_code == 200 and r.json()["method"] == "staffed"
    assert r.json()["reason"] == "manual_override:intercom_verified"
    events = http.get("/v1/events", headers=h("admin")).json()
    assert events[0]["operator"] == "guard-07" and events[0]["subject"] == ppl[B]


def test_withdrawal_denies_face_at_once_card_still_works(env):
    s, http, h, ppl, img = env["setup"], env["http"], env["h"], env["people"], env["images"]
    assert decide(env, s.ap_main, frames=[img[A][3]]).json()["decision"] == "allow"
    r = http.post(f"/v1/persons/{ppl[A]}/withdraw", json={}, headers=h("enroll"))
    assert r.status_code == 200 and r.json()["templates_erased"] == 2
    r = decide(env, s.ap_main, frames=[img[A][3]])
    assert r.json()["decision"] == "deny" and r.json()["subject"] is None
    # At a card+face reader the card alone decides, and the face of someone who withdrew is
    # not processed at all (issue 16.3, CAC-FR-06b): the pipeline is never called.
    pipe = env["app"].state.runtime.pipeline
    calls = []
    original = pipe.analyze
    pipe.analyze = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        r = decide(env, s.ap_main, frames=[img[A][3]], card="CARD-A")
        assert (r.json()["decision"], r.json()["method"]) == ("allow", "card"), r.json()
        assert calls == []
        # B still consents: B's frame with B's card is processed and confirms B (1:1).
        http.post(
            f"/v1/persons/{ppl[B]}/credentials",
            json={"kind": "card", "card_number": "CARD-B-16"},
            headers=h("enroll"),
        )
        r = decide(env, s.ap_main, frames=[img[B][3]], card="CARD-B-16")
        assert (r.json()["decision"], r.json()["method"]) == ("allow", "card+face")
        assert calls == [1]
    finally:
        pipe.analyze = original
    # PIPL-16: withdrawing face never removes access.
    assert decide(env, s.ap_side, card="CARD-A").json()["decision"] == "allow"


def test_ops_endpoints(env):
    http = env["http"]
    health = http.get("/healthz").json()
    assert health["status"] == "ok" and health["models_loaded"] and health["database"]
    assert health["gallery_templates"] >= 2
    text = http.get("/metrics").text
    assert 'facegate_decisions_total{method="face",outcome="allow"}' in text
    assert "facegate_decision_seconds_bucket" in text and "facegate_gallery_templates" in text
    assert "facegate_revocation_lag_seconds" in text


def test_audit_chain_intact_and_every_decision_recorded(env):
    rt = env["app"].state.runtime
    with rt.store.session() as db:
        assert audit.verify(db).ok
        events = db.query(AccessEvent).count()
        entries = db.query(AuditEntry).filter(AuditEntry.operation == "match_decision").count()
    assert events > 10 and entries == events


def test_repeated_decisions_are_one_event(env):
    s, rt = env["setup"], env["app"].state.runtime
    with rt.store.session() as db:
        before = db.query(AccessEvent).count()
    for _ in range(3):
        assert decide(env, s.ap_side, card="CARD-A").json()["decision"] == "allow"
    with rt.store.session() as db:
        assert db.query(AccessEvent).count() - before <= 1
    # Denials without a known person are never folded together.
    for _ in range(2):
        decide(env, s.ap_side, card="NO-SUCH-CARD")
    with rt.store.session() as db:
        assert db.query(AccessEvent).count() - before >= 2


def test_change_made_by_the_cli_reaches_the_gallery(env):
    """The CLI writes the same SQLite file from another process: the server's poll applies it."""
    http, h = env["http"], env["h"]
    pid = http.post("/v1/persons", json={"category": "resident"}, headers=h("enroll")).json()["id"]
    assert http.post(f"/v1/persons/{pid}/consents", json={}, headers=h("enroll")).status_code == 201
    files = [("image", ("c.jpg", env["images"][C][0], "image/jpeg"))]
    assert (
        http.post(f"/v1/persons/{pid}/enroll", files=files, headers=h("enroll")).status_code == 201
    )
    before = http.get("/healthz").json()["gallery_templates"]
    store = Store(env["settings"].database_url)  # as `facegate consent withdraw` would
    with store.session() as db:
        withdraw(db, actor="cli", person_id=pid)
    store.dispose()
    deadline = time.monotonic() + 3
    while http.get("/healthz").json()["gallery_templates"] >= before:
        assert time.monotonic() < deadline, "the CLI's withdrawal never reached the gallery"
        time.sleep(0.05)


def test_rights_export_and_erase(env):
    s, http, h, ppl, img = env["setup"], env["http"], env["h"], env["people"], env["images"]
    assert http.post(f"/v1/persons/{ppl[B]}/export", headers=h("enroll")).status_code == 403
    r = http.post(f"/v1/persons/{ppl[B]}/export", headers=h("rights"))
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["id"] == ppl[B] and data["face_images_kept"] == 0
    assert all(set(t) <= {"id", "model_id", "quality", "created_at"} for t in data["templates"])
    notice = http.get("/v1/notices/current", headers=h("rights")).json()
    assert notice["version"] >= 1 and len(notice["sha256"]) == 64
    assert decide(env, s.ap_main, frames=[img[B][3]]).json()["decision"] == "allow"
    r = http.post(f"/v1/persons/{ppl[B]}/erase", headers=h("rights"))
    assert r.status_code == 200 and r.json()["key_destroyed"]
    assert decide(env, s.ap_main, frames=[img[B][3]]).json()["decision"] == "deny"
    assert http.get(f"/v1/persons/{ppl[B]}", headers=h("admin")).status_code == 404


def test_no_template_bytes_in_any_response(env):
    """Scan every body this module received for the enrolled templates in any encoding."""
    pipe = pipeline()
    needles = []
    for who in (A, B):
        for data in env["images"][who][:4]:
            t = np.asarray(pipe.analyze(data, profile="gate", max_faces=1)[0].template)
            raw = t.astype(np.float32).tobytes()
            needles += [raw[:32], base64.b64encode(raw[:48]), f"{t[0]:.5f}".encode()]
    haystack = b"\n".join(env["http"].bodies)
    assert len(env["http"].bodies) > 30
    for n in needles:
        assert n not in haystack
