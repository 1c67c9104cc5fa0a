"""Rule ids raised for each new inventory fact of issue 17, one change at a time from the
lawful example (the table in the closing note), as of 2026-11-25.

    PYTHONPATH=src .venv/bin/python bench/comply_facts_table.py
"""

from datetime import date
from pathlib import Path

from facegate.compliance.checks import CheckContext, run_checks
from facegate.compliance.inventory import load_inventory
from facegate.compliance.model import Signage

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def lawful():
    return load_inventory(EXAMPLES / "lawful-compound.yaml")


def findings(d):
    return run_checks(d, CheckContext(as_of=date(2026, 11, 25)))


def ap(d, ap_id):
    return next(a for _, a in d.access_points() if a.id == ap_id)


def show(name, d):
    fs = findings(d)
    raised = sorted({f"{f.rule_id}({f.severity[0]})" for f in fs if not f.needs})
    unk = sorted({f"{f.rule_id}:{f.needs}" for f in fs if f.needs})
    print(f"| {name} | {', '.join(raised) or '-'} | {', '.join(unk) or '-'} |")


def fo(d):
    a = ap(d, "b1-elevator")
    a.accepted_methods, a.alternatives, a.credential_for_1to1 = ["face"], None, None
    return d


d = fo(lawful())
show("face-only elevator, Hangzhou (330106)", d)
d = fo(lawful())
s = d.sites[0]
s.province = s.city = "北京市"
s.division_code = "110105"
show("face-only elevator, Beijing", d)
d = fo(lawful())
s = d.sites[0]
s.province = s.city = s.division_code = None
show("face-only elevator, place not stated", d)
d = lawful()
d.uses = ["access_control", "credit_export"]
s = d.sites[0]
s.province = s.city = "北京市"
s.division_code = None
show("credit_export, Beijing", d)
d = lawful()
d.uses = ["access_control", "credit_export"]
s = d.sites[0]
s.division_code = "120101"
show("credit_export, Tianjin (120101)", d)
d = lawful()
d.notice.text += "\n刷脸才能进"
d.notice.sha256 = ""
show("notice text '刷脸才能进', Hangzhou", d)
d = lawful()
ap(d, "north-gate").signage = Signage(notice_version="3", text="Face required")
s = d.sites[0]
s.province = s.city = "北京市"
s.division_code = None
show("sign 'Face required', Beijing", d)
d = lawful()
d.told = ["下月起必须刷脸进出小区"]
show("told '必须刷脸', Hangzhou", d)
d = lawful()
d.face_for_minors = True
d.counts.minor_templates_without_guardian_consent = None
show("minors processed, guardian consent unknown", d)
d = lawful()
d.face_for_minors = True
d.minors_guardian_consent = False
d.counts.minor_templates_without_guardian_consent = None
show("minors processed, no guardian consent", d)
d = lawful()
d.face_for_minors = None
show("face_for_minors not stated", d)
d = lawful()
d.image_retention = "30 days"
show("image_retention 30 days", d)
d = lawful()
d.store_images = True
d.image_retention = None
show("store_images true, no period", d)
d = lawful()
d.store_images = None
d.image_retention = None
show("images not stated", d)
d = lawful()
d.sites[0].kind = "hotel"
a = ap(d, "b1-lobby")
a.kind = a.location_type = "front_desk"
a.mode = "1:1"
a.accepted_methods = ["face", "id_card"]
a.credential_for_1to1 = "id_card"
show("hotel desk 1:1, ID card is the credential", d)
a.credential_for_1to1 = None
show("hotel desk 1:1 [face,id_card], credential not stated", d)
d = lawful()
d.purpose = None
d.uses = None
[setattr(x, "uses", None) for _, x in d.access_points()]
show("purpose and uses not stated", d)
d = lawful()
d.sites[0].kind = None
d = fo(d)
show("site kind not stated (face-only elevator)", d)
d = lawful()
ap(d, "north-gate").capture = None
ap(d, "b1-lobby").mode = None
show("capture / mode not stated", d)
d = lawful()
d.outbound[0].can_carry_biometric = None
show("outbound can_carry_biometric not stated", d)
d = lawful()
d.counts.people_with_face_data = 120000
d.counts.threshold_reached_on = None
show("120,000 people, no filing, date not recorded", d)
d = lawful()
d.counts.people_with_face_data = 120000
d.counts.threshold_reached_on = date(2026, 11, 25)
show("120,000 people, reached 2026-11-25, no filing", d)
print([f.message_en for f in findings(d)][0])
