"""Event destinations in the compliance engine (issue 15): each one is listed in the
deployment description; one off the site's network is reported under CAC-FR-08a only when
its payload could carry face data, which facegate's whitelisted payload cannot."""

from __future__ import annotations

from store_support import *  # noqa: F403

from facegate import domain
from facegate.compliance.checks import run_checks
from facegate.compliance.live import deployment_from_store
from facegate.compliance.model import Outbound
from facegate.domain.events import EVENT_FIELDS

OFF_SITE = "https://hooks.example.com/in#secret=0123456789abcdef0123"
ON_SITE = "mqtt://user:pw@192.168.10.5:1883/facegate"


def _deployment(store, settings):
    with store.session() as s:
        domain.init_site(s, settings, actor="op", operator_name="ACME", site_name="Garden")
        return deployment_from_store(s, settings, verify_audit=False)


def test_each_destination_is_listed_without_secrets_and_not_reported(store, settings):
    settings = settings.model_copy(update={"events": [OFF_SITE, ON_SITE]})
    d = _deployment(store, settings)
    listed = {o.url: o for o in d.outbound}
    off, on = listed["https://hooks.example.com/in"], listed["mqtt://192.168.10.5:1883/facegate"]
    assert (off.kind, off.off_site, on.kind, on.off_site) == ("webhook", True, "mqtt", False)
    for o in (off, on):
        assert o.can_carry_biometric is False
        assert tuple(o.payload_fields) == EVENT_FIELDS
    text = d.model_dump_json()
    assert "0123456789abcdef0123" not in text and "pw@" not in text
    assert not [f for f in run_checks(d) if f.rule_id == "CAC-FR-08a"]


def test_an_off_site_destination_that_could_carry_face_data_is_reported(store, settings):
    settings = settings.model_copy(update={"events": [OFF_SITE]})
    d = _deployment(store, settings)
    # The same destination, had its payload a template field: the declared fields win.
    leaky = d.outbound[0].model_copy(update={"payload_fields": [*EVENT_FIELDS, "template"]})
    on_site = leaky.model_copy(update={"off_site": False, "name": "lan"})
    d = d.model_copy(update={"outbound": [leaky, on_site]})
    found = [f for f in run_checks(d) if f.rule_id == "CAC-FR-08a"]
    assert [f.object for f in found] == [leaky.name]  # off site only
    assert "template" in found[0].message_en and "template" in found[0].message_zh
    # And a destination described as able to carry face data is reported as before.
    flagged = Outbound(name="cloud", kind="webhook", can_carry_biometric=True, off_site=True)
    d = d.model_copy(update={"outbound": [flagged]})
    assert [f.object for f in run_checks(d) if f.rule_id == "CAC-FR-08a"] == ["cloud"]
