"""Purpose lock refuses every prohibited use; the activation gate refuses, then allows."""

from __future__ import annotations

import pytest
from compliance_helpers import AS_OF, ap, lawful

from facegate.compliance.checks import CheckContext
from facegate.compliance.gate import assert_can_activate, set_face_enabled
from facegate.compliance.model import Signage
from facegate.compliance.purpose import PROHIBITED_USES, require_allowed_use
from facegate.errors import ComplianceBlocked, NotFound, ProhibitedUse

CTX = CheckContext(as_of=AS_OF)


def test_access_control_is_allowed() -> None:
    require_allowed_use("access_control")


@pytest.mark.parametrize("use", sorted(PROHIBITED_USES))
def test_every_prohibited_use_is_refused_naming_its_rule(use: str) -> None:
    with pytest.raises(ProhibitedUse) as err:
        require_allowed_use(use)
    rules = PROHIBITED_USES[use]
    assert err.value.details["rules"] == list(rules)
    assert rules[0] in err.value.message and use in err.value.message
    assert err.value.http_status == 403


@pytest.mark.parametrize(
    ("use", "rule"),
    [
        ("age_estimation", "CAC-DRAFT23-1"),
        ("gender_estimation", "CAC-DRAFT23-1"),
        ("emotion_recognition", "CAC-DRAFT23-1"),
        ("ethnicity_inference", "CAC-DRAFT23-1"),
        ("history_search_by_face", "STD-41819-01"),
        ("watch_list", "CAC-DRAFT23-2"),
        ("tracking", "CAC-DRAFT23-2"),
        ("credit_export", "TJ-16"),
        ("marketing_export", "PIPL-26"),
        ("dataset_export", "CAC-FR-02"),
        ("something_new", "CAC-FR-04"),
    ],
)
def test_issue_listed_uses_name_the_expected_rule(use: str, rule: str) -> None:
    with pytest.raises(ProhibitedUse, match=rule):
        require_allowed_use(use)


def test_gate_refuses_then_allows_after_fixing() -> None:
    d = lawful()
    garage = ap(d, "garage")
    garage.accepted_methods = ["face"]  # the operator wants face-only parking
    d.pia = []
    with pytest.raises(ComplianceBlocked) as err:
        assert_can_activate(d, "ghy", "garage", CTX)
    assert err.value.details["rules"] == [
        "CAC-FR-09a",
        "CAC-FR-10",
        "CAC-FR-13a",
        "HZ-PM",
        "SPC-10",
    ]
    assert "CAC-FR-10" in err.value.message
    # Fix one thing at a time; the refusal shrinks.
    garage.accepted_methods = ["face", "card"]
    with pytest.raises(ComplianceBlocked) as err:
        assert_can_activate(d, "ghy", "garage", CTX)
    assert err.value.details["rules"] == ["CAC-FR-09a", "CAC-FR-13a"]
    d.pia = lawful().pia
    garage.signage = Signage(notice_version="3")
    assert_can_activate(d, "ghy", "garage", CTX)
    d2 = set_face_enabled(d, "ghy", "garage", True, CTX)
    assert ap(d2, "garage").face_enabled and "face" in ap(d2, "garage").accepted_methods


def test_gate_refuses_private_space_whatever_else_is_right() -> None:
    d = lawful()
    ap(d, "garage").location_type = "changing_room"
    ap(d, "garage").signage = Signage(notice_version="3")
    with pytest.raises(ComplianceBlocked) as err:
        set_face_enabled(d, "ghy", "garage", True, CTX)
    assert err.value.details["rules"] == ["CAC-FR-13b"]


def test_other_access_points_do_not_block_this_one_but_site_wide_rules_do() -> None:
    d = lawful()
    ap(d, "b1-elevator").accepted_methods = ["face"]  # broken elsewhere
    ap(d, "b1-elevator").alternatives = []
    ap(d, "garage").accepted_methods = ["card", "face"]
    ap(d, "garage").signage = Signage(notice_version="3")
    with pytest.raises(ComplianceBlocked) as err:
        assert_can_activate(d, "ghy", "garage", CTX)
    assert err.value.details["rules"] == ["SPC-10"]  # declining face still loses the elevator
    with pytest.raises(ComplianceBlocked):
        assert_can_activate(d, "ghy", None, CTX)


def test_switching_face_off_is_always_allowed() -> None:
    d = lawful()
    d.pia = []
    d.notice = None
    ap(d, "b1-elevator").accepted_methods = ["face"]
    off = set_face_enabled(d, "ghy", "b1-elevator", False, CTX)
    assert not ap(off, "b1-elevator").face_enabled
    with pytest.raises(NotFound):
        set_face_enabled(d, "ghy", "nope", False, CTX)
    with pytest.raises(NotFound):
        assert_can_activate(d, "nope", None, CTX)
