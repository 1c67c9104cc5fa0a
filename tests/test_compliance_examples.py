"""Each example inventory gets exactly the findings a regulator would raise."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
import yaml
from compliance_helpers import EXAMPLES, findings

from facegate.compliance.inventory import (
    generate_schema,
    inventory_schema,
    load_inventory,
    validate_inventory,
)
from facegate.errors import InvalidInput

ALWAYS_WITHOUT_NOTICE = {"CAC-FR-05a", "CAC-FR-05c", "CAC-FR-13a", "CAC-FR-09a"}
# Facts the news stories did not give, left unknown in the examples: each is a "cannot be
# assessed" warning naming the field (unknown is not compliant), never a pass.
NO_MINORS = {("CAC-FR-07", "face_for_minors"), ("STD-41819-03", "face_for_minors")}
NO_SECURITY = {
    ("CAC-FR-14", "security.key_outside_database"),
    ("CAC-FR-14", "security.templates_encrypted"),
}
NO_IMAGES = {("STD-41819-04", "store_images")}
NO_COUNT = {("CAC-FR-15a", "counts.people_with_face_data")}

# name -> (rule ids raised, (rule id, field) that cannot be assessed)
EXPECTED: dict[str, tuple[set[str], set[tuple[str, str]]]] = {
    # Face-only gate and elevator (Tianjin, Ningbo judgments), consent inside the contract.
    # The city is not stated: Hangzhou's HZ-PM cannot be assessed.
    "face-only-compound-gate": (
        ALWAYS_WITHOUT_NOTICE | {"CAC-FR-10", "SPC-10", "CAC-FR-06a", "CAC-FR-08b"},
        NO_MINORS
        | NO_SECURITY
        | NO_IMAGES
        | {
            ("HZ-PM", "sites[compound].city"),
            ("CAC-DRAFT23-2", "sites[compound].access_points[main-gate].capture"),
            ("CAC-DRAFT23-2", "sites[compound].access_points[b3-elevator].capture"),
        },
    ),
    # Recording cameras in elevator cars, images to the vendor cloud, face-only floor access.
    "elevator-cameras": (
        ALWAYS_WITHOUT_NOTICE
        | {"CAC-FR-10", "SPC-10", "CAC-DRAFT23-2", "STD-41819-04", "CAC-FR-08a", "CAC-FR-06a"},
        NO_MINORS
        | NO_SECURITY
        | NO_COUNT
        | {
            ("HZ-PM", "sites[towers].city"),
            ("PIPL-38-40", "outbound[vendor-cloud-sync].country"),
            ("CAC-FR-04", "uses"),
        },
    ),
    # Age/gender estimation, tracking and marketing export of shoppers.
    "mall-shoppers": (
        ALWAYS_WITHOUT_NOTICE
        | {"CAC-FR-04", "CAC-DRAFT23-1", "CAC-DRAFT23-2", "STD-41819-01", "PIPL-26"}
        | {"STD-41819-04", "CAC-FR-08a", "CAC-FR-06a", "CAC-FR-14"},
        NO_MINORS
        | NO_COUNT
        | {
            ("CAC-FR-14", "security.key_outside_database"),
            ("PIPL-38-40", "outbound[marketing-platform].country"),
        },
    ),
    # Attention and emotion scoring of pupils without guardian consent; no count invented.
    "classroom-camera": (
        ALWAYS_WITHOUT_NOTICE
        | {"CAC-DRAFT23-1", "STD-41819-01", "CAC-DRAFT23-2", "CAC-FR-07", "STD-41819-03"}
        | {"CAC-FR-06a"},
        NO_SECURITY
        | NO_IMAGES
        | NO_COUNT
        | {
            ("CAC-FR-04", "purpose"),
            ("CAC-DRAFT23-2", "sites[school].access_points[gate].capture"),
        },
    ),
    # Sales office identifying visitors (Nanjing 2020, Ningbo 2021 fines); city not stated.
    "sales-office": (
        ALWAYS_WITHOUT_NOTICE | {"PIPL-26", "CAC-DRAFT23-2", "STD-41819-04", "CAC-FR-06a"},
        NO_MINORS
        | NO_SECURITY
        | NO_COUNT
        | {("NJ-2020", "sites[sales].city"), ("CAC-FR-04", "purpose")},
    ),
    # Face-only check-in (the ID card is the 1:1 credential), face lock on room doors, stale
    # notice and PIA, weak security.
    "hotel-front-desk": (
        {
            "HOTEL-CHECKIN",
            "CAC-FR-10",
            "CAC-FR-13b",
            "CAC-FR-05a",
            "CAC-FR-05b",
            "CAC-FR-05c",
            "CAC-FR-09a",
            "CAC-FR-09b",
            "CAC-FR-04",
            "CAC-FR-08b",
            "CAC-FR-06a",
            "CAC-FR-14",
        },
        NO_MINORS | NO_SECURITY | NO_IMAGES,
    ),
    "lawful-compound": (set(), set()),
}


def test_every_example_has_an_expectation() -> None:
    assert {p.stem for p in EXAMPLES.glob("*.yaml")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_findings(name: str) -> None:
    found = findings(load_inventory(EXAMPLES / f"{name}.yaml"))
    raised, unknown = EXPECTED[name]
    assert {f.rule_id for f in found if not f.needs} == raised
    assert {(f.rule_id, f.needs) for f in found if f.needs} == unknown
    for f in found:
        if f.needs:  # "cannot be assessed: state X" is a warning naming the field
            assert f.severity == "warning" and f.needs in f.message_en and f.needs in f.message_zh
            assert "cannot be assessed: state" in f.message_en
    if raised:
        assert any(f.severity == "blocker" for f in found)


def test_hotel_notice_lists_the_missing_fields() -> None:
    found = findings(load_inventory(EXAMPLES / "hotel-front-desk.yaml"))
    missing = sorted(
        m.group(1) for f in found if (m := re.search(r"required field (N\d+)", f.message_en))
    )
    assert missing == ["N13", "N5", "N7", "N9"]


def test_shipped_schema_matches_the_model() -> None:
    # Regenerate with: PYTHONPATH=src python -m facegate.compliance.inventory
    assert inventory_schema() == json.loads(json.dumps(generate_schema()))
    jsonschema.Draft202012Validator.check_schema(inventory_schema())


def test_bad_inventory_errors_name_the_path(tmp_path) -> None:
    data = yaml.safe_load((EXAMPLES / "lawful-compound.yaml").read_text(encoding="utf-8"))
    data["sites"][0]["access_points"][1]["location_type"] = "bedroom"
    data["sites"][0]["access_points"][2]["accepted_methods"] = ["face", "fingerprint"]
    del data["sites"][0]["access_points"][3]["kind"]
    data["surprise"] = 1
    with pytest.raises(InvalidInput) as err:
        validate_inventory(json.loads(json.dumps(data, default=str)), source="site.yaml")
    msg = err.value.message
    assert "\n" not in msg and msg.startswith("site.yaml: (top level): unknown field(s): surprise")
    assert "(and 3 more error(s))" in msg
    errors = err.value.details["errors"]
    assert "sites[0].access_points[1].location_type: 'bedroom' is not one of" in errors[1]
    assert "sites[0].access_points[2].accepted_methods[1]: 'fingerprint' is not one of" in errors[2]
    assert "sites[0].access_points[3]: 'kind' is a required property" in errors[3]


def test_unquoted_mode_in_yaml_is_caught(tmp_path) -> None:
    # YAML 1.1 reads 1:1 as the sexagesimal number 61; the schema names the field.
    text = (EXAMPLES / "lawful-compound.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "site.yaml"
    bad.write_text(text.replace('mode: "1:1"', "mode: 1:1"), encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"access_points\[2\]\.mode: 61 is not one of"):
        load_inventory(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(InvalidInput, match="empty"):
        load_inventory(empty)
