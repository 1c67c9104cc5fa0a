"""The live adapter: facegate's own database and settings as a Deployment, the activation
gate on the real access points, and the documents/records that make activation possible.

Every test runs on SQLite and on PostgreSQL (``backend`` fixture)."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select, update
from store_support import *  # noqa: F403
from store_support import face_image, publish_complete_notice

from facegate import audit, domain
from facegate.compliance.checks import run_checks
from facegate.compliance.live import (
    LiveFacts,
    deployment_from_store,
    load_facts,
    place_signage,
    preview_notice,
    publish_notice_from_config,
    record_signage,
    register_pia,
    save_facts,
    set_face,
    update_operator_facts,
)
from facegate.compliance.model import Accessibility, PiaRecord
from facegate.errors import ComplianceBlocked, ConsentNotInformed, InvalidInput
from facegate.store.models import (
    AccessPoint,
    AuditEntry,
    Consent,
    NoticeVersion,
    Person,
    Site,
    Template,
)


@pytest.fixture
def site(store, settings, keyring):
    with store.session() as s:
        init = domain.init_site(
            s,
            settings,
            actor="op",
            operator_name="ACME Property",
            operator_address="1 Garden Road",
            operator_contact="010-0000",
            site_name="Garden",
        )
        domain.add_access_point(s, actor="op", name="Gate 1", kind="gate", methods=["face", "card"])
        domain.add_access_point(s, actor="op", name="Garage", kind="door", methods=["card"])
        return init.site_id


def ids(d):
    return {f.rule_id for f in run_checks(d)}


def good_facts() -> LiveFacts:
    return LiveFacts(
        site_kinds={},
        necessity_statement="Residents may use face instead of a card; cards stay valid.",
        notice_url="https://garden.example/privacy",
        self_service_url="https://garden.example/me",
        minors_rules_url="https://garden.example/minors",
        accessibility=Accessibility(large_print=True, audio=True, staff_assistance=True),
        rights_channels=["property office"],
    )


def test_fresh_install_is_described_truthfully(store, settings, site, keyring, pipe):
    with store.session() as s:
        p = domain.add_person(s, actor="op", category="resident")
        # No complete notice yet: a consent would not be informed (CAC-FR-05a, 06a).
        with pytest.raises(ConsentNotInformed):
            domain.record_consent(s, actor="op", person_id=p.id)
        d = deployment_from_store(s, settings)
        draft = domain.site_notice_fields(s, settings, domain.get_site(s, site))
    assert [a.id for a in d.sites[0].access_points][0].startswith("ap-")
    gate = d.sites[0].access_points[0]
    assert gate.accepted_methods == ["face", "card"] and gate.face_enabled is False
    assert d.counts.people_with_face_data == 0
    assert d.security.audit_chain_intact is True
    assert d.security.key_file_mode == 0o600
    # The notice is only a draft: what facegate cannot know is flagged, not invented
    # (necessity, minors' rules link, notice link, accessibility), so nothing is published.
    assert d.notice is None
    assert sorted(domain.missing_notice_fields(draft)) == ["N11", "N13", "N6", "N9"]
    assert "CAC-FR-05a" in ids(d) and "CAC-FR-09a" in ids(d)
    # facegate knows its own facts: it states every one a check needs (issue 17).
    assert (d.purpose, d.uses, d.store_images, d.image_retention) == (
        "access_control",
        ["access_control"],
        False,
        "0 days",
    )
    assert (gate.mode, gate.capture, gate.uses) == ("1:N", "cooperative", ["access_control"])
    assert d.face_for_minors is False and d.consent_method == "separate"
    assert [f.needs for f in run_checks(d) if f.needs] == []


def test_gate_refuses_then_allows_and_off_is_always_allowed(store, settings, site):
    with store.session() as s:
        with pytest.raises(ComplianceBlocked) as err:
            set_face(s, settings, actor="op", site_id=site, enabled=True)
        # No notice is published yet (an incomplete one is only a draft): 05a, not 05b.
        assert err.value.details["rules"] == ["CAC-FR-05a", "CAC-FR-09a", "CAC-FR-13a"]
        last = s.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
        assert (last.operation, last.outcome) == ("face_on", "refused:compliance_blocked")
        assert not s.get(Site, site).face_enabled

        save_facts(settings, good_facts())
        notice = publish_notice_from_config(s, settings, actor="op")
        assert notice.version == 1
        register_pia(
            s,
            settings,
            PiaRecord(
                version="1",
                date=datetime.now(UTC).date(),
                signer="Wang Min",
                necessity_statement="Face is optional; cards remain.",
            ),
            actor="op",
        )
        d = deployment_from_store(s, settings)
        record_signage(settings, [ap.id for ap in d.sites[0].access_points], "1", datetime.now(UTC))

        changed = set_face(s, settings, actor="op", site_id=site, enabled=True)
        gate_id = changed[0]
        assert len(changed) == 1  # only the point that accepts face
        assert s.get(AccessPoint, gate_id).face_enabled and s.get(Site, site).face_enabled
        assert run_checks(deployment_from_store(s, settings)) == []
        assert audit.verify(s).ok

        # Break things: switching off is still allowed, on is refused again.
        facts = load_facts(settings)
        facts.pia = []
        save_facts(settings, facts)
        assert set_face(
            s, settings, actor="op", site_id=site, access_point_id=gate_id, enabled=False
        )
        assert not s.get(AccessPoint, gate_id).face_enabled
        with pytest.raises(ComplianceBlocked, match="CAC-FR-09a"):
            set_face(s, settings, actor="op", site_id=site, access_point_id=gate_id, enabled=True)


def test_counts_security_and_tampering(store, settings, site, keyring, pipe):
    long_ago = datetime.now(UTC) - timedelta(days=400)
    with store.session() as s:
        publish_complete_notice(s, settings)
        a = domain.add_person(s, actor="op", category="resident")
        domain.record_consent(s, actor="op", person_id=a.id)
        domain.enroll(s, keyring, pipe, actor="op", person_id=a.id, images=[face_image(1)])
        g = domain.add_person(s, actor="op", category="resident")
        kid = domain.add_person(s, actor="op", category="resident", birth_date=date(2020, 1, 1))
        domain.link_guardian(s, actor="op", minor_id=kid.id, guardian_id=g.id)
        domain.record_consent(s, actor="op", person_id=kid.id, guardian_id=g.id)
        domain.enroll(s, keyring, pipe, actor="op", person_id=kid.id, images=[face_image(2)])
        # Simulate rows a faulty import could leave: consent gone, guardian missing, expired.
        s.execute(update(Consent).where(Consent.person_id == a.id).values(withdrawn_at=long_ago))
        s.execute(update(Consent).where(Consent.person_id == kid.id).values(guardian_id=None))
        s.execute(update(Person).where(Person.id == kid.id).values(relationship_ends_at=long_ago))
        s.commit()
        d = deployment_from_store(s, settings)
        assert d.counts.people_with_face_data == 2
        assert d.counts.templates_without_active_consent == 1
        assert d.counts.minor_templates_without_guardian_consent == 1
        assert d.counts.templates_past_retention == 1
        assert {"CAC-FR-06a", "CAC-FR-07", "CAC-FR-08b"} <= ids(d)

        os.chmod(settings.key_file_path, 0o644)
        s.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(actor="mallory"))
        n = s.scalars(select(NoticeVersion)).first()
        n.text = n.text + " (edited)"
        s.commit()
        found = run_checks(deployment_from_store(s, settings))
        objects = {(f.rule_id, f.object) for f in found}
        assert ("CAC-FR-14", "key_file") in objects and ("CAC-FR-14", "audit_log") in objects
        assert any("does not match its content" in f.message_en for f in found)
        quick = deployment_from_store(s, settings, verify_audit=False)
        assert quick.security.audit_chain_intact is None
        assert s.scalars(select(Template)).first() is not None  # nothing was deleted by checking


def test_unknown_location_type_is_refused_not_guessed(store, settings, site):
    with store.session() as s:
        s.execute(update(AccessPoint).values(location_type="rooftop"))
        s.commit()
        with pytest.raises(InvalidInput, match="rooftop"):
            deployment_from_store(s, settings)
        s.execute(update(AccessPoint).values(location_type="guest_room"))
        s.commit()
        d = deployment_from_store(s, settings)
        assert {ap.location_type for _, ap in d.access_points()} == {"hotel_room"}


def test_own_configuration_refuses_prohibited_uses(tmp_path) -> None:
    from facegate.config import Settings
    from facegate.errors import ProhibitedUse

    settings = Settings(data_dir=tmp_path)
    (settings.data_dir / "compliance.yaml").write_text("uses: [access_control, watch_list]\n")
    with pytest.raises(ProhibitedUse, match="CAC-DRAFT23-2"):
        load_facts(settings)
    with pytest.raises(ProhibitedUse, match="TJ-16"):
        LiveFacts(uses=["credit_export"])


def test_threshold_and_filing_records(store, settings, site) -> None:
    from facegate.compliance.live import record_filing, record_threshold

    record_threshold(settings, date(2025, 9, 26))
    with store.session() as s:
        d = deployment_from_store(s, settings)
    assert d.counts.threshold_reached_on == date(2025, 9, 26)
    record_filing(settings, date(2025, 10, 20), "CAC-2025-001")
    assert load_facts(settings).filing.reference == "CAC-2025-001"


def test_operator_facts_preview_publish_signage_then_face_on(store, settings, site, keyring):
    """The console's path: facts, preview (with the renewal consequence), publish, PIA, sign."""
    today = datetime.now(UTC).date()
    with store.session() as s:
        publish_complete_notice(s, settings)
        p = domain.add_person(s, actor="op", category="resident")
        domain.record_consent(s, actor="op", person_id=p.id)
        with pytest.raises(InvalidInput, match="address"):
            update_operator_facts(
                s, settings, actor="op", name="ACME Property", address=" ", contact="010-0000"
            )
        gate = s.scalars(select(AccessPoint).where(AccessPoint.name == "Gate 1")).one()
        garage = s.scalars(select(AccessPoint).where(AccessPoint.name == "Garage")).one()
        with pytest.raises(InvalidInput, match="does not accept face"):
            place_signage(
                s, settings, actor="op", access_point_id=garage.id, placed_on=today,
                location_note="door",
            )  # fmt: skip
        update_operator_facts(
            s,
            settings,
            actor="op",
            name="ACME Property",
            address="1 Garden Road",
            contact="010-0000",
            necessity_statement="Residents may use face instead of a card; cards stay valid.",
            notice_url="https://garden.example/privacy",
            minors_rules_url="https://garden.example/minors",
            accessibility=Accessibility(large_print=True, audio=True, staff_assistance=True),
        )
        # The facts name no entrusted processor where v1 said "none" (N3, a re-consent
        # trigger): publishing asks the one consent again.
        pv = preview_notice(s, settings)
        assert pv.current_version == 1 and pv.requires_reconsent
        assert {"N3", "N6", "N9", "N11", "N13"} <= set(pv.changed_fields)
        assert "N1" not in pv.changed_fields  # init already had these
        assert (pv.active_consents, pv.awaiting_renewal) == (1, 0)
        assert publish_notice_from_config(s, settings, actor="op").version == 2
        pv = preview_notice(s, settings)
        assert pv.changed_fields == [] and not pv.requires_reconsent
        assert (pv.active_consents, pv.awaiting_renewal) == (0, 1)

        # Changing only the contact is not a re-consent trigger.
        update_operator_facts(
            s,
            settings,
            actor="op",
            name="ACME Property",
            address="1 Garden Road",
            contact="010-9999",
            necessity_statement="Residents may use face instead of a card; cards stay valid.",
            notice_url="https://garden.example/privacy",
            minors_rules_url="https://garden.example/minors",
        )
        pv = preview_notice(s, settings)
        assert "N1" in pv.changed_fields and not pv.requires_reconsent
        assert load_facts(settings).accessibility.audio  # None leaves it as it was
        publish_notice_from_config(s, settings, actor="op")

        register_pia(
            s,
            settings,
            PiaRecord(version="1", date=today, signer="Wang Min", necessity_statement="optional"),
            actor="op",
        )
        with pytest.raises(ComplianceBlocked, match="CAC-FR-13a"):
            set_face(s, settings, actor="op", site_id=site, access_point_id=gate.id, enabled=True)
        with pytest.raises(InvalidInput, match="future"):
            place_signage(
                s, settings, actor="op", access_point_id=gate.id,
                placed_on=today + timedelta(days=2), location_note="left of the gate",
            )  # fmt: skip
        sign = place_signage(
            s, settings, actor="op", access_point_id=gate.id, placed_on=today,
            location_note="left of the gate",
        )  # fmt: skip
        assert sign.notice_version == "3" and sign.location_note == "left of the gate"
        assert load_facts(settings).signage[gate.id].placed_at.date() == today
        assert set_face(
            s, settings, actor="op", site_id=site, access_point_id=gate.id, enabled=True
        ) == [gate.id]
        ops = [e.operation for e in s.scalars(select(AuditEntry).order_by(AuditEntry.seq))]
        assert {"operator_facts_update", "signage_placed", "face_on"} <= set(ops)
        assert audit.verify(s).ok


def test_admin_credentials_fact_comes_from_the_accounts_table(store, settings, site):
    from facegate.domain.accounts import create_first_admin, issue_setup_code
    from facegate.store.web_models import OperatorAccount

    with store.session() as s:
        sec = deployment_from_store(s, settings).security
        assert (sec.default_admin_credentials, sec.weak_admin_credentials) == (None, None)
        code = issue_setup_code(s, settings, actor="test")
        create_first_admin(s, username="chief", password="correct horse battery", setup_code=code)
        sec = deployment_from_store(s, settings).security
        assert (sec.default_admin_credentials, sec.weak_admin_credentials) == (False, False)
        assert not {f.rule_id for f in run_checks(deployment_from_store(s, settings))} & {
            "CAC-FR-14"
        }
        # An admin row whose hash the account code did not make (hand-written, other tool).
        s.add(OperatorAccount(id="op-x", username="root", password_hash="plain", role="admin"))
        s.commit()
        found = run_checks(deployment_from_store(s, settings))
        assert ("CAC-FR-14", "admin") in {(f.rule_id, f.object) for f in found}
