"""A notice lacking a required field is a draft: never published, never consented to.

Issue 13 item 16 (``POST /v1/notices {"fields":{}}`` published, marked every consent for
renewal and emptied every gallery) and issue 16 item 2 (consent and enrollment were accepted
against a notice whose operator, purpose and alternatives were missing; CAC-FR-05a, 06a).
Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from server_support import make_site
from sqlalchemy import select
from store_support import *  # noqa: F403
from store_support import face_image, publish_complete_notice

from facegate import domain
from facegate.api import create_app
from facegate.domain.selfservice import accept_face
from facegate.errors import ConsentNotInformed, NoticeIncomplete
from facegate.store.db import Store
from facegate.store.models import Consent, NoticeVersion, Person, Template


@pytest.fixture
def site(store, settings):
    with store.session() as s:
        init = domain.init_site(s, settings, actor="op", operator_name="ACME Property")
        domain.add_access_point(s, actor="op", name="Gate 1", kind="gate", methods=["face", "card"])
        return init.site_id


def test_init_with_missing_facts_publishes_nothing_and_saves_a_draft(store, settings, site):
    with store.session() as s:
        assert domain.current_notice(s, site) is None
        again = domain.init_site(s, settings, actor="op")
        assert again.notice_version == 0 and not again.created
        draft = domain.notice_draft(s, site)
        assert draft is not None and "N6" in draft.missing and "N6. " in draft.text


def test_empty_notice_is_refused_naming_the_fields_in_both_languages(store, settings, site):
    with store.session() as s:
        with pytest.raises(NoticeIncomplete) as err:
            domain.publish_notice(s, site, {}, actor="op")
        assert err.value.code == "notice_incomplete" and err.value.http_status == 422
        msg = err.value.message
        assert "N1 Who processes your data" in msg and "N7 It is voluntary" in msg
        assert "N1 处理者及联系方式" in msg and "草稿" in msg
        assert err.value.details["missing"] == sorted(domain.NOTICE_FIELDS)
        # One part missing is enough: the address of the processor (N1).
        lacking = r"N1 Who processes your data \(address, contact\)"
        with pytest.raises(NoticeIncomplete, match=lacking):
            domain.publish_site_notice(s, settings, actor="op", site_id=site)
        assert s.scalars(select(NoticeVersion)).all() == []


def test_consent_against_incomplete_notice_is_refused(store, settings, site):
    """Front desk and self-service alike; the notice here predates the rule (inserted as an
    older release could have published it)."""
    with store.session() as s:
        fields = domain.site_notice_fields(s, settings, domain.get_site(s, site))
        s.add(NoticeVersion(site_id=site, version=1, fields=fields, text="", sha256="x"))
        s.commit()
        p = domain.add_person(s, actor="op", category="resident")
        for record in (
            lambda: domain.record_consent(s, actor="op", person_id=p.id),
            lambda: accept_face(s, actor="self", person_id=p.id),
        ):
            with pytest.raises(ConsentNotInformed) as err:
                record()
            assert err.value.code == "consent_not_informed"
            assert "N1 Who processes your data (address, contact)" in err.value.message
            assert "N6 Why it is needed" in err.value.message and "知情同意" in err.value.message
        assert s.scalars(select(Consent)).all() == []


def test_no_notice_at_all_is_refused_too(store, site):
    with store.session() as s:
        p = domain.add_person(s, actor="op", category="resident")
        with pytest.raises(ConsentNotInformed, match="publish a complete notice first"):
            domain.record_consent(s, actor="op", person_id=p.id)


def test_enrollment_on_a_consent_to_an_incomplete_notice_is_refused(
    store, settings, keyring, site, pipe
):  # the key before the site's data: no key is ever made beside an existing database
    with store.session() as s:
        publish_complete_notice(s, settings)
        p = domain.add_person(s, actor="op", category="resident")
        c = domain.record_consent(s, actor="op", person_id=p.id)
        # Make the consented notice incomplete, as one published before the rule could be.
        n = s.get(NoticeVersion, c.notice_version_id)
        n.fields = {**n.fields, "N7": {**n.fields["N7"], "alternatives": ""}}
        s.commit()
        with pytest.raises(ConsentNotInformed, match="N7"):
            domain.enroll(s, keyring, pipe, actor="op", person_id=p.id, images=[face_image(5)])
        assert s.scalars(select(Template)).all() == []


def test_api_empty_notice_does_not_publish_renew_or_empty_galleries(settings, keyring, pipe):
    setup = make_site(settings)
    store = Store(settings.database_url)
    try:
        with store.session() as s:
            p = domain.add_person(s, actor="op", category="resident", site_id=setup.site_id)
            domain.record_consent(s, actor="op", person_id=p.id)
            domain.enroll(s, keyring, pipe, actor="op", person_id=p.id, images=[face_image(9)])
            before = domain.current_notice(s, setup.site_id)
        app = create_app(settings, pipeline=pipe)
        with TestClient(app) as http:
            r = http.post(
                "/v1/notices", json={"fields": {}}, headers={"X-API-Key": setup.keys["admin"]}
            )
            assert r.status_code == 422 and r.json()["code"] == "notice_incomplete"
            message = r.json()["message"]
            assert "N1 Who processes your data" in message and "处理者" in message
            cur = http.get("/v1/notices/current", headers={"X-API-Key": setup.keys["admin"]})
            assert cur.json()["version"] == before.version
            # The same body can be saved as a draft and previewed, and changes nothing else.
            h = {"X-API-Key": setup.keys["admin"]}
            d = http.post("/v1/notices/drafts", json={"fields": {}}, headers=h)
            assert d.status_code == 201, d.text
            assert d.json()["missing"] == list(domain.NOTICE_FIELDS)
            assert not d.json()["publishable"] and "处理者" in d.json()["missing_zh"]
            assert "[missing]" in d.json()["text"]
            assert http.get("/v1/notices/draft", headers=h).json()["missing"] == d.json()["missing"]
            cur = http.get("/v1/notices/current", headers=h)
            assert cur.json()["version"] == before.version
        with store.session() as s:
            consent = s.scalars(select(Consent).where(Consent.person_id == p.id)).one()
            assert consent.renewal_required_at is None and consent.withdrawn_at is None
            assert len(s.scalars(select(Template)).all()) == 1
            assert domain.valid_consent(s, s.get(Person, p.id)) is not None
    finally:
        store.dispose()
