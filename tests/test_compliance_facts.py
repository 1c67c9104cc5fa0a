"""Facts an inventory can now state (issue 17), and unknown facts that are never a pass."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from compliance_helpers import EXAMPLES, ap, findings, lawful, rule_ids
from typer.testing import CliRunner

from facegate.cli.main import app
from facegate.compliance.catalog import load_catalog
from facegate.compliance.checks import CHECKS, coercive_phrase
from facegate.compliance.inventory import inventory_schema, validate_inventory
from facegate.compliance.model import Deployment, Signage
from facegate.compliance.purpose import PROHIBITED_USES, USE_VOCABULARY
from facegate.errors import InvalidInput


def raw() -> dict[str, Any]:
    """The lawful example as plain data, to edit field by field."""
    return json.loads(
        json.dumps(
            yaml.safe_load((EXAMPLES / "lawful-compound.yaml").read_text(encoding="utf-8")),
            default=str,
        )
    )


def load(data: dict[str, Any]) -> Deployment:
    return validate_inventory(data, source="inv.yaml")


def needs(d: Deployment) -> set[tuple[str, str]]:
    return {(f.rule_id, f.needs) for f in findings(d) if f.needs}


def face_only_elevator(d: Deployment) -> Deployment:
    a = ap(d, "b1-elevator")
    a.accepted_methods, a.alternatives, a.credential_for_1to1 = ["face"], None, None
    return d


# --- where the site is: city rules only there --------------------------------------------------


def test_hangzhou_rule_only_in_hangzhou() -> None:
    d = face_only_elevator(lawful())  # the lawful compound is in Hangzhou
    assert "HZ-PM" in rule_ids(d)
    site = d.sites[0]
    site.province, site.city, site.division_code = "北京市", "北京市", "110105"  # 朝阳区
    assert rule_ids(d) == {"CAC-FR-10", "SPC-10"}  # national rules everywhere
    site.province = site.city = site.division_code = None
    assert rule_ids(d) == {"CAC-FR-10", "SPC-10", "HZ-PM"}
    (unknown,) = [f for f in findings(d) if f.rule_id == "HZ-PM"]
    assert unknown.severity == "warning" and unknown.needs == "sites[ghy].city"
    assert "cannot be assessed: state sites[ghy].city" in unknown.message_en


@pytest.mark.parametrize(
    ("place", "in_hangzhou"),
    [
        ({"city": "Hangzhou"}, True),
        ({"city": "杭州"}, True),
        ({"division_code": "330102"}, True),
        ({"province": "浙江省", "city": "宁波市"}, False),
        ({"province": "浙江省"}, None),  # which city in Zhejiang is not said
        ({"province": "Beijing"}, False),
        ({"division_code": "120116"}, False),
    ],
)
def test_site_place(place: dict[str, str], in_hangzhou: bool | None) -> None:
    d = lawful()
    site = d.sites[0]
    site.province = site.city = site.division_code = None
    for k, v in place.items():
        setattr(site, k, v)
    assert site.in_city("hangzhou") is in_hangzhou


def test_tianjin_credit_rule_only_in_tianjin() -> None:
    d = lawful()
    d.uses = ["access_control", "credit_export"]
    d.sites[0].province, d.sites[0].city, d.sites[0].division_code = "北京市", "北京市", None
    found = {(f.rule_id, f.severity) for f in findings(d)}
    assert ("TJ-16", "blocker") not in found
    assert {("CAC-FR-04", "blocker"), ("STD-41819-01", "blocker")} <= found
    d.sites[0].province, d.sites[0].city = "天津市", "滨海新区"  # a district of the municipality
    assert "TJ-16" in rule_ids(d)


def test_division_code_is_six_digits() -> None:
    data = raw()
    data["sites"][0]["division_code"] = "3301"
    with pytest.raises(InvalidInput, match=r"sites\[0\]\.division_code: '3301' does not match"):
        load(data)


# --- what people were told: coercion ------------------------------------------------------------

COERCIVE = [
    "本小区已全面升级，刷脸才能进。",
    "即日起业主必须刷脸进出。",
    "电梯仅支持刷脸。",
    "未录入人脸的业主将无法进入小区。",
    "不刷脸不能入住。",
    "Face required for entry.",
    "Face recognition is mandatory for all residents.",
    "You must scan your face to enter.",
    "No entry without face verification.",
    "Access cards are no longer accepted.",
]
NOT_COERCIVE = [
    "人脸识别完全自愿，无须刷脸，门禁卡、二维码始终可用。",
    "不必须刷脸。",
    "Face recognition is not required; use your card.",
    "Face is optional. There are no face-only doors.",
    "",
]


@pytest.mark.parametrize("text", COERCIVE)
def test_coercive_statements_are_found(text: str) -> None:
    assert coercive_phrase(text)


@pytest.mark.parametrize("text", NOT_COERCIVE)
def test_voluntary_statements_are_not_coercion(text: str) -> None:
    assert coercive_phrase(text) is None


@pytest.mark.parametrize("where", ["notice", "sign", "practice", "told", "flag"])
def test_coercion_raises_cac_fr_12_and_hz_pm_in_hangzhou(where: str) -> None:
    d = lawful()
    text = "刷脸才能进"
    if where == "notice":
        assert d.notice is not None
        d.notice.text += "\n" + text
        d.notice.sha256 = ""  # this test is about the text, not the hash
    elif where == "sign":
        ap(d, "north-gate").signage = Signage(notice_version="3", text=f"人脸识别区域。{text}")
    elif where == "practice":
        ap(d, "b1-lobby").practice = "Guards tell residents: face required, cards are for guests."
    elif where == "told":
        d.told = ["业主群通知：下月起必须刷脸进出小区。"]
    else:
        d.face_presented_as_required = True
    found = findings(d)
    assert {f.rule_id for f in found} == {"CAC-FR-12", "HZ-PM"}
    assert all(f.severity == "blocker" and f.check == "coercion" for f in found)
    if where != "flag":
        f = next(f for f in found if f.rule_id == "CAC-FR-12")
        assert "刷脸" in f.message_zh or "face required" in f.message_en
    # Outside Hangzhou only the national rule.
    d.sites[0].province, d.sites[0].city, d.sites[0].division_code = "北京市", "北京市", None
    assert rule_ids(d) == {"CAC-FR-12"}


# --- minors: guardian consent unknown is a finding, no count invented ---------------------------


def test_minors_with_guardian_consent_unknown() -> None:
    d = lawful()
    d.face_for_minors = True
    d.counts.minor_templates_without_guardian_consent = None
    found = [f for f in findings(d) if f.rule_id == "CAC-FR-07"]
    assert [(f.severity, f.object) for f in found] == [("blocker", "minors")]
    assert "guardian consent is not stated" in found[0].message_en
    assert not any(c.isdigit() for c in found[0].message_en.replace("14", ""))  # no count
    d.minors_guardian_consent = False
    assert "without a parent's or guardian's consent" in next(
        f.message_en for f in findings(d) if f.rule_id == "CAC-FR-07"
    )
    d.minors_guardian_consent = True
    assert rule_ids(d) == {"STD-41819-03"}


def test_classroom_example_raises_cac_fr_07_without_a_count() -> None:
    data = yaml.safe_load((EXAMPLES / "classroom-camera.yaml").read_text(encoding="utf-8"))
    assert "minor_templates_without_guardian_consent" not in data.get("counts", {})
    d = load(json.loads(json.dumps(data, default=str)))
    (f,) = [f for f in findings(d) if f.rule_id == "CAC-FR-07"]
    assert f.severity == "blocker" and f.object == "minors"


# --- images: any retention reported, with its period --------------------------------------------


def test_image_retention_period_is_shown() -> None:
    d = lawful()
    d.image_retention = "30 days"  # kept, whatever store_images says
    (f,) = findings(d)
    assert (f.rule_id, f.severity) == ("STD-41819-04", "blocker")
    assert "30 days" in f.message_en and "30 days" in f.message_zh
    d.image_retention, d.store_images = None, True
    (f,) = findings(d)
    assert "period not stated: state image_retention" in f.message_en
    d.image_retention, d.store_images = "0 days", False
    assert findings(d) == []


def test_image_retention_must_be_a_period() -> None:
    data = raw()
    data["image_retention"] = "a while"
    with pytest.raises(InvalidInput, match=r"image_retention: 'a while' does not match"):
        load(data)
    data["image_retention"] = "6 months"
    assert load(data).images_kept() is True


# --- the 1:1 credential is not an alternative ---------------------------------------------------


def test_id_card_for_1to1_check_in_is_not_an_alternative() -> None:
    d = lawful()
    d.sites[0].kind = "hotel"
    desk = ap(d, "b1-lobby")
    desk.kind, desk.location_type, desk.mode = "front_desk", "front_desk", "1:1"
    desk.accepted_methods, desk.credential_for_1to1 = ["face", "id_card"], "id_card"
    assert {"HOTEL-CHECKIN", "CAC-FR-10"} <= rule_ids(d)
    # Not saying what the card is for: it cannot be assessed, it is not a pass.
    desk.credential_for_1to1 = None
    assert ("CAC-FR-10", "sites[ghy].access_points[b1-lobby].alternatives") in needs(d)
    # A staffed check without face, stated as the way in: lawful.
    desk.alternatives = ["staffed"]
    assert rule_ids(d) == set()


# --- the vocabulary of uses ---------------------------------------------------------------------


def test_unknown_use_is_an_error_naming_the_allowed_ones() -> None:
    data = raw()
    data["uses"] = ["access_control", "mood_scoring"]
    with pytest.raises(InvalidInput) as err:
        load(data)
    msg = err.value.message
    assert "uses[1]: 'mood_scoring' is not one of the allowed values:" in msg
    assert "credit_export" in msg and "attention_monitoring" in msg and "\n" not in msg


def test_use_vocabulary_is_in_the_schema_with_descriptions() -> None:
    assert set(PROHIBITED_USES) <= set(USE_VOCABULARY)
    text = json.dumps(inventory_schema(), ensure_ascii=False)
    uses = inventory_schema()["properties"]["uses"]["anyOf"][0]["items"]
    assert uses["enum"] == list(USE_VOCABULARY)
    assert len(uses["enumDescriptions"]) == len(uses["enum"])
    assert "customer_analytics" not in uses["enum"] and "customer_profiling" in uses["enum"]
    assert "scoring attention" in text


# --- unknown is not compliant: no compliant defaults --------------------------------------------


def _drop(path: list[str | int]):
    def edit(data: dict[str, Any]) -> None:
        node: Any = data
        for p in path[:-1]:
            node = node[p]
        del node[path[-1]]

    return edit


UNKNOWN_CASES = [
    ("purpose", _drop(["purpose"]), ("CAC-FR-04", "purpose")),
    ("store_images", _drop(["store_images"]), None),  # image_retention 0 days still says it
    ("face_for_minors", _drop(["face_for_minors"]), ("STD-41819-03", "face_for_minors")),
    ("consent_method", _drop(["consent_method"]), ("CAC-FR-06a", "consent_method")),
    ("face_storage", _drop(["face_storage"]), ("CAC-FR-08a", "face_storage")),
    (
        "capture",
        _drop(["sites", 0, "access_points", 0, "capture"]),
        ("CAC-DRAFT23-2", "sites[ghy].access_points[north-gate].capture"),
    ),
    (
        "mode",
        _drop(["sites", 0, "access_points", 1, "mode"]),
        ("CAC-FR-10", "sites[ghy].access_points[b1-lobby].alternatives"),
    ),
    (
        "can_carry_biometric",
        _drop(["outbound", 0, "can_carry_biometric"]),
        ("CAC-FR-08a", "outbound[gate-events-mqtt].can_carry_biometric"),
    ),
    (
        "templates_encrypted",
        _drop(["security", "templates_encrypted"]),
        ("CAC-FR-14", "security.templates_encrypted"),
    ),
    (
        "people_with_face_data",
        _drop(["counts", "people_with_face_data"]),
        ("CAC-FR-15a", "counts.people_with_face_data"),
    ),
]


@pytest.mark.parametrize(
    ("name", "edit", "expected"), UNKNOWN_CASES, ids=[c[0] for c in UNKNOWN_CASES]
)
def test_a_fact_not_given_is_unknown_never_a_pass(name, edit, expected) -> None:
    data = raw()
    edit(data)
    d = load(data)
    got = needs(d)
    if expected is None:
        assert got == set()
        data.pop("image_retention")
        got = needs(load(data))
        expected = ("STD-41819-04", "store_images")
    assert expected in got, got
    assert all(f.severity == "warning" for f in findings(load(data)) if f.needs)


def test_site_kind_and_uses_unknown() -> None:
    data = raw()
    del data["sites"][0]["kind"]
    del data["uses"]
    for p in data["sites"][0]["access_points"]:
        p.pop("uses", None)
    d = face_only_elevator(load(data))
    got = needs(d)
    assert ("SPC-10", "sites[ghy].kind") in got and ("HZ-PM", "sites[ghy].kind") in got
    assert ("CAC-FR-04", "uses") in got
    # National rules do not depend on the kind: face-only is raised anyway.
    assert "CAC-FR-10" in {f.rule_id for f in findings(d) if not f.needs}


# --- the report's stable check key --------------------------------------------------------------


def test_json_report_has_a_stable_check_key(tmp_path: Path) -> None:
    r = CliRunner().invoke(
        app,
        [
            "comply",
            "-i",
            str(EXAMPLES / "hotel-front-desk.yaml"),
            "--json",
            "--as-of",
            "2026-11-25",
        ],
    )
    assert r.exit_code == 1, r.output
    items = json.loads(r.stdout)["findings"]
    catalog = load_catalog()
    for item in items:
        assert item["check"] in CHECKS
        assert item["check"] in catalog[item["rule_id"]].checks
    checks = {i["check"] for i in items}
    assert {"alternatives", "notice", "consent", "security", "location"} <= checks
    assert any(i["needs"] for i in items) and all("needs" in i for i in items)
