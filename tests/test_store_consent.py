"""Consent gates enrollment; withdrawal erases face data and keeps access; notice renewal.

Every test runs on SQLite and on PostgreSQL (``backend`` fixture)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from sqlalchemy import func, select
from store_support import *  # noqa: F403
from store_support import FakePipeline, face_image, publish_complete_notice

from facegate import audit, domain
from facegate.domain.credentials import qr_secret_matches
from facegate.domain.notice import build_notice_fields, current_notice
from facegate.errors import (
    ConsentRequired,
    DuplicateFace,
    EnrollmentNotAllowed,
    GuardianConsentRequired,
    InvalidInput,
    LowQuality,
    NoFaceFound,
)
from facegate.store.models import AuditEntry, Credential, PersonKey, Template


@pytest.fixture
def site(store, settings):
    with store.session() as s:
        init = domain.init_site(s, settings, actor="op", operator_name="ACME Property")
        domain.add_access_point(s, actor="op", name="Gate 1", kind="gate", methods=["face", "card"])
        publish_complete_notice(s, settings)
        return init.site_id


def _entries(s, keyring, site_id, pipe):
    return list(domain.load_gallery_entries(s, keyring, site_id, pipe.model_id))


def test_enrollment_needs_consent_first(store, keyring, pipe, site):
    with store.session() as s:
        p = domain.add_person(s, keyring=keyring, actor="op", category="resident", name="Li Lei")
        with pytest.raises(ConsentRequired):
            domain.enroll(s, keyring, pipe, actor="op", person_id=p.id, images=[face_image(1)])
        assert s.scalar(select(func.count()).select_from(Template)) == 0
        # The refusal itself is on the record, and the chain is intact.
        last = s.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
        assert (last.operation, last.outcome) == ("enroll", "refused:consent_required")
        domain.record_consent(s, actor="op", person_id=p.id, channel="front_desk")
        res = domain.enroll(
            s, keyring, pipe, actor="op", person_id=p.id, images=[face_image(1), face_image(1, 1)]
        )
        assert len(res.template_ids) == 2
        entries = _entries(s, keyring, site, pipe)
        assert {e.person_pseudonym for e in entries} == {p.id}
        assert pipe.calls == ["enroll", "enroll"]
        assert audit.verify(s).ok


def test_child_needs_guardian_consent(store, keyring, pipe, site):
    with store.session() as s:
        today = date.today()
        child = domain.add_person(
            s, actor="op", category="resident", birth_date=date(today.year - 9, 1, 1)
        )
        parent = domain.add_person(s, actor="op", category="resident")
        # The child's own consent is not enough (CAC-FR-07).
        with pytest.raises(GuardianConsentRequired):
            domain.record_consent(s, actor="op", person_id=child.id)
        with pytest.raises(GuardianConsentRequired):
            domain.enroll(s, keyring, pipe, actor="op", person_id=child.id, images=[face_image(3)])
        # A guardian not yet linked must state the relation.
        with pytest.raises(GuardianConsentRequired):
            domain.record_consent(s, actor="op", person_id=child.id, guardian_id=parent.id)
        domain.record_consent(
            s, actor="op", person_id=child.id, guardian_id=parent.id, guardian_relation="mother"
        )
        domain.enroll(s, keyring, pipe, actor="op", person_id=child.id, images=[face_image(3)])
        assert [e.person_pseudonym for e in _entries(s, keyring, site, pipe)] == [child.id]


def test_adult_enrolls_without_guardian_and_flag_only_minor_needs_one(store, keyring, pipe, site):
    with store.session() as s:
        adult = domain.add_person(s, actor="op", category="tenant", birth_date=date(1990, 5, 1))
        domain.record_consent(s, actor="op", person_id=adult.id)
        domain.enroll(s, keyring, pipe, actor="op", person_id=adult.id, images=[face_image(4)])
        band = domain.add_person(s, actor="op", category="resident", minor_under_14=True)
        with pytest.raises(GuardianConsentRequired):
            domain.record_consent(s, actor="op", person_id=band.id)


def test_visitor_never_gets_a_template(store, keyring, pipe, site):
    with store.session() as s:
        v = domain.add_person(s, actor="op", category="visitor")
        with pytest.raises(EnrollmentNotAllowed):
            domain.record_consent(s, actor="op", person_id=v.id)
        with pytest.raises(EnrollmentNotAllowed):
            domain.enroll(s, keyring, pipe, actor="op", person_id=v.id, images=[face_image(5)])


def test_bad_images_are_refused_with_reasons(store, keyring, pipe, site):
    with store.session() as s:
        p = domain.add_person(s, actor="op", category="resident")
        domain.record_consent(s, actor="op", person_id=p.id)
        with pytest.raises(NoFaceFound):
            domain.enroll(
                s,
                keyring,
                pipe,
                actor="op",
                person_id=p.id,
                images=[np.zeros((24, 24, 3), np.uint8)],
            )
        with pytest.raises(LowQuality) as err:
            domain.enroll(
                s, keyring, pipe, actor="op", person_id=p.id, images=[face_image(6, dark=True)]
            )
        assert err.value.details["reasons"] == ["too_dark"]
        with pytest.raises(InvalidInput):  # two different people in one enrollment
            domain.enroll(
                s, keyring, pipe, actor="op", person_id=p.id, images=[face_image(6), face_image(7)]
            )
        assert s.scalar(select(func.count()).select_from(Template)) == 0


def test_same_face_for_another_person_is_refused_for_review(store, keyring, pipe, site):
    with store.session() as s:
        a = domain.add_person(s, actor="op", category="resident")
        b = domain.add_person(s, actor="op", category="resident")
        for p in (a, b):
            domain.record_consent(s, actor="op", person_id=p.id)
        domain.enroll(s, keyring, pipe, actor="op", person_id=a.id, images=[face_image(8)])
        with pytest.raises(DuplicateFace) as err:
            domain.enroll(s, keyring, pipe, actor="op", person_id=b.id, images=[face_image(8, 5)])
        assert err.value.details["matches"] == a.id
        domain.enroll(s, keyring, pipe, actor="op", person_id=b.id, images=[face_image(9)])
        # Re-enrolling the same person is not a duplicate of themself.
        domain.enroll(s, keyring, pipe, actor="op", person_id=a.id, images=[face_image(8, 7)])


def test_templates_of_another_model_are_not_loaded(store, keyring, pipe, site):
    with store.session() as s:
        p = domain.add_person(s, actor="op", category="resident")
        domain.record_consent(s, actor="op", person_id=p.id)
        domain.enroll(s, keyring, pipe, actor="op", person_id=p.id, images=[face_image(10)])
        new_model = FakePipeline(model_id="fake-v2")
        assert _entries(s, keyring, site, new_model) == []
        assert domain.person_summary(s, p.id, model_id="fake-v2")["needs_reenrollment"] is True


def test_withdrawal_erases_templates_and_key_and_keeps_access(store, keyring, pipe, site):
    with store.session() as s:
        p = domain.add_person(s, actor="op", category="resident")
        domain.record_consent(s, actor="op", person_id=p.id)
        domain.enroll(s, keyring, pipe, actor="op", person_id=p.id, images=[face_image(11)])
        assert s.get(PersonKey, p.id) is not None
        res = domain.withdraw(s, actor="resident", person_id=p.id, channel="web")
        assert (res.templates_erased, res.key_destroyed, res.consents_withdrawn) == (1, True, 1)
        assert s.scalar(select(func.count()).select_from(Template)) == 0
        assert s.get(PersonKey, p.id) is None
        assert _entries(s, keyring, site, pipe) == []
        # They had no other credential: a QR pass was issued, and its token works.
        assert res.issued is not None
        cred = s.get(Credential, res.issued.credential.id)
        assert cred.person_id == p.id and cred.kind == "qr" and cred.revoked_at is None
        cred_id, secret = domain.parse_qr_token(res.issued.secret)
        assert cred_id == cred.id and qr_secret_matches(cred, secret)
        # Enrolling again needs a new consent.
        with pytest.raises(ConsentRequired):
            domain.enroll(s, keyring, pipe, actor="op", person_id=p.id, images=[face_image(11)])


def test_withdrawal_keeps_an_existing_card(store, keyring, pipe, site):
    with store.session() as s:
        p = domain.add_person(s, actor="op", category="resident")
        domain.issue_card(s, actor="op", person_id=p.id, card_number="0012345")
        domain.record_consent(s, actor="op", person_id=p.id)
        domain.enroll(s, keyring, pipe, actor="op", person_id=p.id, images=[face_image(12)])
        res = domain.withdraw(s, actor="op", person_id=p.id)
        assert res.issued is None
        cards = s.scalars(select(Credential).where(Credential.person_id == p.id)).all()
        assert [(c.kind, c.identifier, c.revoked_at) for c in cards] == [("card", "0012345", None)]


def test_notice_change_forces_renewal(store, keyring, pipe, settings, site):
    with store.session() as s:
        p = domain.add_person(s, actor="op", category="resident")
        domain.record_consent(s, actor="op", person_id=p.id)
        domain.enroll(s, keyring, pipe, actor="op", person_id=p.id, images=[face_image(13)])
        assert len(_entries(s, keyring, site, pipe)) == 1
        old = current_notice(s, site)
        # A contact change is a new version but not a re-consent trigger.
        fields = {k: dict(v) for k, v in old.fields.items()}
        fields["N1"]["contact"] = "400-000-0000"
        v2 = domain.publish_notice(s, site, fields, actor="op")
        assert (v2.version, v2.requires_reconsent) == (2, False)
        assert len(_entries(s, keyring, site, pipe)) == 1
        # Publishing the same fields again changes nothing.
        assert domain.publish_notice(s, site, fields, actor="op").id == v2.id
        # A retention change is (CAC-FR-05b / 06c): templates stop matching until renewal.
        fields["N5"]["retention"] = "resident: 3 days after move-out"
        v3 = domain.publish_notice(s, site, fields, actor="op")
        assert (v3.version, v3.requires_reconsent) == (3, True)
        assert _entries(s, keyring, site, pipe) == []
        with pytest.raises(ConsentRequired, match="renew"):
            domain.enroll(s, keyring, pipe, actor="op", person_id=p.id, images=[face_image(13)])
        c = domain.record_consent(s, actor="op", person_id=p.id, channel="web")
        assert c.notice_version_id == v3.id and c.notice_sha256 == v3.sha256
        assert [e.person_pseudonym for e in _entries(s, keyring, site, pipe)] == [p.id]


def test_notice_fields_are_never_invented(settings):
    fields = build_notice_fields(settings)
    assert fields["N1"] == {"operator_name": "", "address": "", "contact": "", "pipo_contact": ""}
    assert fields["N6"]["necessity"] == "" and fields["N2"]["purpose"] == ""
    zh = fields.pop("zh-CN")  # the same fields in Chinese (issue 16 item 6)
    assert zh["N1"] == fields["N1"] and zh["N2"]["purpose"] == ""
    assert sorted(fields, key=lambda k: int(k[1:])) == [f"N{i}" for i in range(1, 14)]
    assert sorted(zh, key=lambda k: int(k[1:])) == [f"N{i}" for i in range(1, 14)]
    text = domain.render_notice_text(fields)
    assert "[missing]" in text


def test_face_only_access_point_is_refused(store, site):
    with store.session() as s, pytest.raises(InvalidInput, match="CAC-FR-10"):
        domain.add_access_point(s, actor="op", name="Door", kind="door", methods=["face"])


def test_declining_face_keeps_access_and_is_remembered(store, keyring, pipe, site):
    with store.session() as s:
        p = domain.add_person(s, actor="op", category="guest")
        res = domain.decline_face(s, actor="guest", person_id=p.id, channel="kiosk")
        assert res.issued is not None and res.issued.credential.kind == "qr"
        assert domain.person_summary(s, p.id)["face_declined_at"] is not None
        with pytest.raises(ConsentRequired):
            domain.enroll(s, keyring, pipe, actor="op", person_id=p.id, images=[face_image(14)])
        # Changing their mind later is their own, separate act.
        domain.record_consent(s, actor="op", person_id=p.id)
        assert domain.person_summary(s, p.id)["face_declined_at"] is None
        domain.enroll(s, keyring, pipe, actor="op", person_id=p.id, images=[face_image(14)])


def test_change_feed_for_gates(store, keyring, pipe, site):
    with store.session() as s:
        start = max([c.seq for c in domain.changes_since(s, 0)], default=0)
        p = domain.add_person(s, actor="op", category="resident")
        domain.record_consent(s, actor="op", person_id=p.id)
        domain.enroll(s, keyring, pipe, actor="op", person_id=p.id, images=[face_image(15)])
        domain.withdraw(s, actor="op", person_id=p.id)
        feed = domain.changes_since(s, start, site_id=site)
        assert [(c.person_id, c.kind) for c in feed] == [
            (p.id, "consent"),
            (p.id, "enrolled"),
            (p.id, "withdrawn"),
            # The pass a withdrawing person is given: gates copy credentials (issue 18).
            (p.id, "credential"),
        ]
        assert [c.seq for c in feed] == sorted(c.seq for c in feed)
        assert domain.changes_since(s, feed[-1].seq) == []


def test_notice_with_flat_string_fields(store, keyring, pipe, site):
    """The compliance engine's builder gives one string per field; publishing accepts it."""
    with store.session() as s:
        p = domain.add_person(s, actor="op", category="resident")
        domain.record_consent(s, actor="op", person_id=p.id)
        domain.enroll(s, keyring, pipe, actor="op", person_id=p.id, images=[face_image(16)])
        flat = {f"N{i}": f"field {i}" for i in range(1, 14)}
        v2 = domain.publish_notice(s, site, flat, actor="op", text="the whole notice")
        assert v2.text == "the whole notice" and v2.fields["N12"] == "field 12"
        assert v2.requires_reconsent  # the purpose text differs from v1
        domain.record_consent(s, actor="op", person_id=p.id)
        flat2 = {**flat, "N1": "new phone number"}
        assert not domain.publish_notice(s, site, flat2, actor="op").requires_reconsent
        assert len(_entries(s, keyring, site, pipe)) == 1
        with pytest.raises(InvalidInput):
            domain.publish_notice(s, site, {**flat, "N99": "x"}, actor="op")


@pytest.mark.parametrize("backend", ["postgresql"])  # SQLite: one process, polls the feed
def test_postgresql_notifies_gates_at_commit(store, keyring, pipe, site, db_url):
    """Gate processes LISTEN on NOTIFY_CHANNEL; a withdrawal reaches them when it commits."""
    import json as _json

    import psycopg

    from facegate.store.db import normalize_url

    with store.session() as s:
        p = domain.add_person(s, actor="op", category="resident")
        domain.record_consent(s, actor="op", person_id=p.id)
        domain.enroll(s, keyring, pipe, actor="op", person_id=p.id, images=[face_image(17)])
    dsn = normalize_url(db_url).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute(f"LISTEN {domain.NOTIFY_CHANNEL}")
        with store.session() as s:
            domain.withdraw(s, actor="op", person_id=p.id)
        got = []
        # Other processes may share this database and channel: wait for this person's change.
        for note in listener.notifies(timeout=5):
            payload = _json.loads(note.payload)
            if payload["person_id"] == p.id:
                got.append(payload)
                break
    assert got and got[0]["kind"] == "withdrawn"
    assert got[0]["site_id"] == site and isinstance(got[0]["seq"], int)
