"""Rights requests, retention purge and key rotation, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from store_support import *  # noqa: F403
from store_support import face_image, publish_complete_notice

from facegate import audit, domain
from facegate.domain.identities import read_identity
from facegate.errors import InvalidInput, NotFound
from facegate.store.crypto import load_keyring
from facegate.store.models import (
    AuditEntry,
    ChangeLog,
    Credential,
    Person,
    PersonIdentity,
    PersonKey,
    RightsRequest,
    Template,
    utcnow,
)


@pytest.fixture
def site(store, settings):
    with store.session() as s:
        init = domain.init_site(s, settings, actor="op", operator_name="ACME Hotel")
        domain.add_access_point(s, actor="op", name="Lobby", kind="lobby", methods=["face", "qr"])
        publish_complete_notice(s, settings)
        return init.site_id


def _enrolled(s, keyring, pipe, ident, **kw):
    p = domain.add_person(s, keyring=keyring, actor="op", **{"category": "resident", **kw})
    domain.record_consent(s, actor="op", person_id=p.id)
    domain.enroll(s, keyring, pipe, actor="op", person_id=p.id, images=[face_image(ident)])
    return p


def test_export_has_records_but_no_template(store, settings, keyring, pipe, site):
    with store.session() as s:
        p = _enrolled(s, keyring, pipe, 31, name="Wang Fang", contact="138")
        domain.record_access_event(
            s,
            site_id=site,
            access_point_id=None,
            method="face",
            outcome="allow",
            person_pseudonym=p.id,
            score=0.9,
            request_id="r1",
        )
        data = domain.export_my_data(s, settings, actor="op", person_id=p.id, keyring=keyring)
        vec = pipe.analyze(face_image(31))[0].template
        text = json.dumps(data)
        assert data["identity"]["name"] == "Wang Fang"
        assert [t["model_id"] for t in data["templates"]] == ["fake-v1"]
        assert data["consents"][0]["active"] and data["access_events"][0]["method"] == "face"
        assert data["face_images_kept"] == 0
        assert f"{float(vec[0]):.5f}" not in text and "ciphertext" not in text
        req = s.scalars(select(RightsRequest).where(RightsRequest.person_id == p.id)).one()
        assert (req.kind, req.status) == ("export", "done")
        assert req.deadline_at - req.received_at == timedelta(days=settings.rights_response_days)


def test_correct_changes_fields_and_logs_names_of_fields_only(store, settings, keyring, site):
    kr = {"keyring": keyring}
    with store.session() as s:
        p = domain.add_person(s, actor="op", category="guest", name="Zhao", **kr)
        domain.correct(s, settings, actor="op", person_id=p.id, name="Zhao Lei", unit="1203", **kr)
        assert read_identity(s, keyring, p).name == "Zhao Lei"
        last = s.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
        assert last.details["fields"] == ["name", "unit"] and "Zhao" not in json.dumps(last.details)
        with pytest.raises(InvalidInput):
            domain.correct(s, settings, actor="op", person_id=p.id, name="Zhao Lei", **kr)


def test_erase_removes_person_data_and_keeps_pseudonymous_evidence(
    store, settings, keyring, pipe, site
):
    with store.session() as s:
        p = _enrolled(s, keyring, pipe, 32, name="Chen Jie")
        domain.issue_card(s, actor="op", person_id=p.id, card_number="C-1")
        res = domain.erase(s, settings, actor="op", person_id=p.id)
        assert (res.templates_erased, res.key_destroyed, res.credentials_removed) == (1, True, 1)
        assert s.get(PersonIdentity, p.id) is None and s.get(PersonKey, p.id) is None
        assert s.scalar(select(func.count()).select_from(Credential)) == 0
        assert s.get(Person, p.id).status == "erased"
        with pytest.raises(NotFound):
            domain.export_my_data(s, settings, actor="op", person_id=p.id)
        kinds = [c.kind for c in s.scalars(select(ChangeLog).where(ChangeLog.person_id == p.id))]
        assert kinds[-1] == "erased"
        assert audit.verify(s).ok


def test_rejecting_a_request_needs_a_reason(store, settings, site):
    with store.session() as s:
        p = domain.add_person(s, actor="op", category="staff")
        req = domain.submit_rights_request(s, settings, actor="web", person_id=p.id, kind="access")
        with pytest.raises(InvalidInput):
            domain.reject_rights_request(s, actor="op", request_id=req.id, reason=" ")
        domain.reject_rights_request(s, actor="op", request_id=req.id, reason="identity unproven")
        assert s.get(RightsRequest, req.id).status == "rejected"


def test_retention_purge(store, settings, keyring, pipe, site):
    now = utcnow()
    with store.session() as s:
        guest = _enrolled(
            s, keyring, pipe, 33, category="guest", relationship_ends_at=now - timedelta(hours=30)
        )
        fresh = _enrolled(
            s, keyring, pipe, 34, category="guest", relationship_ends_at=now - timedelta(hours=20)
        )
        resident = _enrolled(s, keyring, pipe, 35, relationship_ends_at=now - timedelta(days=6))
        visitor = domain.add_person(s, actor="op", category="visitor")
        idle = _enrolled(s, keyring, pipe, 36)
        domain.issue_card(s, actor="op", person_id=idle.id, card_number="C-9")

        res = domain.purge_expired(s, settings, now=now)
        assert res.erased == [guest.id] and res.face_data_expired == []
        assert s.get(Person, guest.id).status == "erased"
        for p in (fresh, resident, idle):
            assert s.get(PersonKey, p.id) is not None

        res = domain.purge_expired(s, settings, now=now + timedelta(hours=12))
        assert res.erased == [fresh.id]
        res = domain.purge_expired(s, settings, now=now + timedelta(days=2))
        assert sorted(res.erased) == sorted([resident.id, visitor.id])
        # Three years without use: the face data goes, the person and their card stay.
        res = domain.purge_expired(s, settings, now=utcnow() + settings.retention_hard_cap)
        assert res.erased == [] and res.face_data_expired == [idle.id]
        assert s.get(Person, idle.id).status == "active"
        assert s.scalar(select(func.count()).select_from(Template)) == 0
        creds = domain.person_summary(s, idle.id)["credentials"]
        assert [c["identifier"] for c in creds] == ["C-9"]
        ops = [e.operation for e in s.scalars(select(AuditEntry))]
        assert ops.count("erase") == 4 and "purge_face" in ops
        assert audit.verify(s).ok


def test_key_rotation_rewraps_without_touching_templates(store, settings, keyring, pipe, site):
    with store.session() as s:
        people = [_enrolled(s, keyring, pipe, 40 + i) for i in range(3)]
        before = {t.id: (bytes(t.nonce), bytes(t.ciphertext)) for t in s.scalars(select(Template))}
        wrapped_before = {
            k.person_id: (k.key_id, bytes(k.wrapped)) for k in s.scalars(select(PersonKey))
        }
        vectors = {
            e.template_id: e.vector
            for e in domain.load_gallery_entries(s, keyring, site, pipe.model_id)
        }
        old_id = keyring.active.key_id
        res = domain.rotate_keys(s, keyring, actor="op")
        assert res.rewrapped == 3 and res.new_key_id != old_id and res.retired == [old_id]
        s.expire_all()
        after = {t.id: (bytes(t.nonce), bytes(t.ciphertext)) for t in s.scalars(select(Template))}
        assert after == before  # template ciphertext untouched
        for k in s.scalars(select(PersonKey)):
            assert k.key_id == res.new_key_id and bytes(k.wrapped) != wrapped_before[k.person_id][1]
        # A fresh process reading the key file decrypts everything with the new key alone.
        fresh = load_keyring(settings)
        assert fresh.key_ids == [res.new_key_id]
        got = {
            e.template_id: e.vector
            for e in domain.load_gallery_entries(s, fresh, site, pipe.model_id)
        }
        assert {k: bytes(v) for k, v in got.items()} == {k: bytes(v) for k, v in vectors.items()}
        assert len({e for e in got}) == len(people)
        assert settings.key_file_path.stat().st_mode & 0o777 == 0o600
