"""One violating configuration per check (from the lawful baseline), and the baseline passes."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from compliance_helpers import ap, findings, lawful, rule_ids

from facegate.compliance.model import Listener, Outbound, RetentionRule, Signage


def test_lawful_baseline_has_no_findings() -> None:
    assert findings(lawful()) == []


def test_face_only_access_point() -> None:
    d = lawful()
    a = ap(d, "b1-elevator")
    a.accepted_methods, a.alternatives, a.credential_for_1to1 = ["face"], None, None
    found = findings(d)
    assert {(f.rule_id, f.object) for f in found} == {
        ("CAC-FR-10", "ghy/b1-elevator"),
        ("HZ-PM", "ghy/b1-elevator"),
        ("SPC-10", "ghy"),
    }
    # Every finding names the object, both languages and the fix.
    for f in found:
        assert f.severity == "blocker" and f.fix and f.fix_zh and f.message_zh and f.message_en


def test_face_off_point_without_alternative_is_not_face_only() -> None:
    d = lawful()
    a = ap(d, "b1-elevator")
    a.accepted_methods, a.alternatives = ["face"], None
    a.face_enabled = False
    assert "CAC-FR-10" not in rule_ids(d)


def test_hotel_front_desk_face_only() -> None:
    d = lawful()
    d.sites[0].kind = "hotel"
    desk = ap(d, "b1-lobby")
    desk.kind, desk.location_type, desk.accepted_methods = "front_desk", "front_desk", ["face"]
    assert {"HOTEL-CHECKIN", "CAC-FR-10"} <= rule_ids(d)
    assert "SPC-10" not in rule_ids(d)  # not a residential compound


@pytest.mark.parametrize(
    "location", ["hotel_room", "bathroom", "shower", "changing_room", "toilet", "other_private"]
)
def test_private_space(location: str) -> None:
    d = lawful()
    ap(d, "b1-lobby").location_type = location
    assert rule_ids(d) == {"CAC-FR-13b"}


def test_sales_office_and_public_area_capture() -> None:
    d = lawful()
    ap(d, "b1-lobby").location_type = "sales_office"
    assert rule_ids(d) == set()  # NJ-2020 is Nanjing's order; the site is in Hangzhou
    d.sites[0].province, d.sites[0].city, d.sites[0].division_code = "江苏省", "南京市", None
    assert rule_ids(d) == {"NJ-2020"}  # any face device in a Nanjing sales office
    ap(d, "b1-lobby").kind = "camera"
    ap(d, "b1-lobby").capture = None  # a camera captures every visitor in view
    assert rule_ids(d) == {"NJ-2020", "PIPL-26", "CAC-DRAFT23-2"}
    d = lawful()
    ap(d, "b1-lobby").location_type = "public_area"
    assert rule_ids(d) == set()  # a terminal people choose to use is cooperative
    ap(d, "b1-lobby").capture = "passive"
    assert rule_ids(d) == {"PIPL-26", "CAC-DRAFT23-2"}


def test_passive_capture() -> None:
    d = lawful()
    ap(d, "north-gate").capture = "passive"
    assert rule_ids(d) == {"CAC-DRAFT23-2"}


@pytest.mark.parametrize("field", [f"N{i}" for i in range(1, 14)])
def test_notice_missing_field(field: str) -> None:
    d = lawful()
    assert d.notice is not None
    d.notice.fields[field] = "  "
    d.notice.sha256 = ""  # this test is about the field, not the hash
    found = findings(d)
    assert [(f.rule_id, f.object) for f in found] == [("CAC-FR-05a", "v3")]
    assert field in found[0].message_en and field in found[0].message_zh


def test_no_notice_and_tampered_notice() -> None:
    d = lawful()
    d.notice = None
    assert {"CAC-FR-05a", "CAC-FR-13a"} == rule_ids(d)  # signs exist for a notice that is gone
    d = lawful()
    assert d.notice is not None
    d.notice.fields["N5"] = "保存一年"  # edited after hashing
    assert [f.message_en for f in findings(d)] == [
        "The SHA-256 of notice v3 does not match its content; it may have been altered."
    ]


def test_notice_older_than_config() -> None:
    d = lawful()
    d.config.changed_at = datetime(2026, 10, 5, tzinfo=UTC)
    assert rule_ids(d) == {"CAC-FR-05b"}


def test_accessibility_missing() -> None:
    d = lawful()
    d.accessibility.audio = False
    found = findings(d)
    assert [(f.rule_id, f.severity) for f in found] == [("CAC-FR-05c", "warning")]
    assert "audio" in found[0].message_en


def test_signage_missing_or_for_old_notice() -> None:
    d = lawful()
    ap(d, "north-gate").signage = None
    ap(d, "b1-lobby").signage = Signage(notice_version="2")
    assert {(f.rule_id, f.object) for f in findings(d)} == {
        ("CAC-FR-13a", "ghy/north-gate"),
        ("CAC-FR-13a", "ghy/b1-lobby"),
    }


def test_pia_missing_unsigned_without_necessity_and_stale() -> None:
    d = lawful()
    d.pia = []
    assert rule_ids(d) == {"CAC-FR-09a"}
    d = lawful()
    d.pia[0].signer = ""
    d.pia[0].necessity_statement = ""
    d.notice.fields["N6"] = d.notice.fields["N6"]  # notice unchanged
    assert rule_ids(d) == {"CAC-FR-09a", "CAC-FR-04"}
    d = lawful()
    d.config.reconsent_trigger_changed_at = datetime(2026, 9, 30, tzinfo=UTC)
    assert rule_ids(d) == {"CAC-FR-09b"}
    d = lawful()
    d.security.last_major_incident_at = datetime(2026, 11, 1, tzinfo=UTC)
    assert rule_ids(d) == {"CAC-FR-09b"}


def test_retention_missing_over_cap_and_past_due() -> None:
    d = lawful()
    d.retention = [r for r in d.retention if r.category != "staff"]
    assert [(f.rule_id, f.object) for f in findings(d)] == [("CAC-FR-08b", "staff")]
    d = lawful()
    d.retention.append(RetentionRule(category="visitor", max_days=None))
    d.person_categories.append("visitor")
    assert [(f.rule_id, f.object) for f in findings(d)] == [("CAC-FR-08b", "visitor")]
    d = lawful()
    d.retention[0].max_days = 4000
    assert [f.message_en for f in findings(d)] == [
        "Person category 'resident' keeps face data 4000 days, more than the cap of 1095 days."
    ]
    d = lawful()
    d.counts.templates_past_retention = 3
    assert [(f.rule_id, f.object) for f in findings(d)] == [("CAC-FR-08b", "templates")]


def test_consent() -> None:
    d = lawful()
    d.counts.templates_without_active_consent = 2
    assert rule_ids(d) == {"CAC-FR-06a"}
    d = lawful()
    d.counts.minor_templates_without_guardian_consent = 1
    assert rule_ids(d) == {"CAC-FR-07"}
    d = lawful()
    d.consent_method = "bundled"
    assert rule_ids(d) == {"CAC-FR-06a"}
    d = lawful()
    d.consent_method = "pre_ticked"
    assert rule_ids(d) == {"CAC-FR-06a", "CAC-FR-12"}
    d = lawful()
    d.face_for_minors = True
    assert [(f.rule_id, f.severity) for f in findings(d)] == [("STD-41819-03", "warning")]


def test_images_and_outbound() -> None:
    d = lawful()
    d.store_images, d.image_retention = True, None
    assert rule_ids(d) == {"STD-41819-04"}
    d = lawful()
    cloud = Outbound(name="cloud", kind="sync", can_carry_biometric=True, off_site=True)
    d.outbound.append(cloud.model_copy(update={"country": "CN"}))
    assert rule_ids(d) == {"CAC-FR-08a", "STD-41819-04"}
    d = lawful()
    d.outbound.append(cloud.model_copy(update={"name": "hq", "country": "SG"}))
    assert rule_ids(d) == {"CAC-FR-08a", "STD-41819-04", "PIPL-38-40"}
    d = lawful()  # an event webhook without face data is fine, even off site
    d.outbound.append(Outbound(name="events", kind="webhook", can_carry_biometric=False))
    assert rule_ids(d) == set()
    d = lawful()
    d.face_storage = "cloud"
    assert "CAC-FR-08a" in rule_ids(d)


def test_prohibited_uses_configured() -> None:
    d = lawful()
    d.uses.append("credit_export")
    ap(d, "north-gate").uses = ["access_control", "emotion_recognition"]
    # In Hangzhou, Tianjin's credit rule does not apply; the national ones do.
    assert {(f.rule_id, f.object) for f in findings(d)} == {
        ("CAC-FR-04", "deployment"),
        ("STD-41819-01", "deployment"),
        ("CAC-DRAFT23-1", "ghy/north-gate"),
        ("STD-41819-01", "ghy/north-gate"),
    }
    d.sites[0].division_code = "120101"  # 天津市和平区
    assert ("TJ-16", "deployment") in {(f.rule_id, f.object) for f in findings(d)}
    d = lawful()
    d.purpose = "marketing"
    assert rule_ids(d) == {"CAC-FR-04"}


def test_security() -> None:
    cases = {
        "key_file_mode": (0o644, "key_file"),
        "key_outside_database": (False, "key"),
        "templates_encrypted": (False, "templates"),
        "default_admin_credentials": (True, "admin"),
        "weak_admin_credentials": (True, "admin"),
        "audit_chain_intact": (False, "audit_log"),
    }
    for attr, (value, obj) in cases.items():
        d = lawful()
        setattr(d.security, attr, value)
        assert [(f.rule_id, f.object) for f in findings(d)] == [("CAC-FR-14", obj)], attr
    d = lawful()
    d.security.listeners.append(Listener(host="0.0.0.0", port=8000, tls=False))
    d.security.listeners.append(Listener(host="::1", port=8001, tls=False))
    d.security.listeners.append(Listener(host="localhost", port=8002, tls=False))
    assert [(f.rule_id, f.object) for f in findings(d)] == [("CAC-FR-14", "0.0.0.0:8000")]


def test_filing_threshold_warning_level_is_configurable() -> None:
    d = lawful()
    d.counts.people_with_face_data = 80_000
    assert [(f.rule_id, f.severity) for f in findings(d)] == [("CAC-FR-15a", "warning")]
    assert rule_ids(d, warn_at=90_000) == set()
    d.counts.people_with_face_data = 79_999
    assert rule_ids(d) == set()


def test_filing_due_overdue_and_filed() -> None:
    d = lawful()
    d.config.reconsent_trigger_changed_at = datetime(2025, 9, 1, tzinfo=UTC)
    d.counts.people_with_face_data = 100_000
    d.counts.threshold_reached_on = date(2025, 9, 26)
    due = findings(d, as_of=date(2025, 10, 1))
    # Over 100,000 with no filing recorded is a blocker even before the deadline.
    assert [(f.rule_id, f.severity) for f in due] == [("CAC-FR-15a", "blocker")]
    assert "2025-11-13" in due[0].message_en  # counted by hand in test_compliance_workdays
    late = findings(d, as_of=date(2025, 11, 14))
    assert [(f.rule_id, f.severity) for f in late] == [("CAC-FR-15a", "blocker")]
    d.filing.filed_on = date(2025, 10, 20)
    assert rule_ids(d, as_of=date(2025, 11, 14)) == set()
    # A material change after the filing: update it within 30 working days (CAC-FR-15c).
    d.config.reconsent_trigger_changed_at = datetime(2025, 12, 1, tzinfo=UTC)
    d.pia[0].date = date(2025, 12, 2)
    assert rule_ids(d, as_of=date(2025, 12, 3)) == {"CAC-FR-15c"}


def test_filing_deadline_provisional_when_calendar_lacks_the_year() -> None:
    d = lawful()
    d.counts.people_with_face_data = 120_000
    d.counts.threshold_reached_on = date(2026, 12, 20)  # deadline falls in 2027
    found = findings(d, as_of=date(2026, 12, 21))
    assert [(f.rule_id, f.severity) for f in found] == [("CAC-FR-15a", "blocker")]
    # 21 Dec 2026 .. 31 Dec: 9 working days (2026 official); 2027 by statute: 1 Jan off; the
    # weekends 2-3 and 9-10 Jan are near New Year's Day, so possible make-up days: 26 Jan is
    # the earliest the deadline can be. With every weekend off it would be 1 Feb.
    assert "2027-01-26 (provisional:" in found[0].message_en
    assert "with every weekend off: 2027-02-01" in found[0].message_en
    assert "2027" in found[0].message_en and "pip install -U chinesecalendar" in found[0].message_en
    assert "2027-01-26（暂定" in found[0].message_zh
    d.counts.threshold_reached_on = None
    (f,) = findings(d)
    assert (
        f.severity == "blocker" and "overdue unless filed; record the date reached" in f.message_en
    )
