"""QR pass short codes at the store level, on SQLite and PostgreSQL (issue 16 item 10): the
gate's rules over ``DbFacts``, the per-door count of wrong codes in the throttle table, and
codes that keep working after a site-key rotation (the field key is re-wrapped, not changed)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from store_support import *  # noqa: F403

from facegate import domain
from facegate.access.decide import CredentialInput, DbFacts, GateContext, decide
from facegate.access.dedup import EventDeduplicator
from facegate.domain.passcodes import KEYRING_INFO_KEY, format_code
from facegate.store.models import Credential
from facegate.store.web_models import LoginThrottle

MAX = 3


@pytest.fixture
def site(store, settings, keyring):
    # The gate server gives its store's sessions the site keyring; so does this test.
    store.session_factory.configure(info={KEYRING_INFO_KEY: keyring})
    with store.session() as s:
        init = domain.init_site(s, settings, actor="op", operator_name="ACME Property")
        ap = domain.add_access_point(s, actor="op", name="Gate 1", kind="gate", methods=["qr"])
        p = domain.add_person(s, actor="op", category="resident")
        return init.site_id, ap.id, p.id


def _decide(store, ap: str, qr: str, rid: str):
    ctx = GateContext(None, None, EventDeduplicator(0), 1, MAX, timedelta(minutes=15))
    with store.session() as s:
        return decide(
            DbFacts(s),
            ctx,
            access_point_id=ap,
            request_id=rid,
            actor="t",
            credential=CredentialInput(qr=qr),
        )


def test_codes_open_fail_and_throttle_per_door(store, site):
    _, ap, person = site
    with store.session() as s:
        issued = domain.issue_qr_pass(s, actor="op", person_id=person, max_uses=2)
    typed = issued.code.lower().replace("-", " ")
    got = _decide(store, ap, typed, "r1")
    assert (got.decision, got.method, got.subject) == ("allow", "qr", person)
    wrong = [_decide(store, ap, format_code("Y" * 10), f"w{i}").reason for i in range(MAX)]
    assert wrong == ["unknown_credential"] * (MAX - 1) + ["code_throttled"]
    assert _decide(store, ap, typed, "r2").reason == "code_throttled"
    assert _decide(store, ap, issued.secret, "r3").decision == "allow"  # the picture still works
    with store.session() as s:
        assert s.get(LoginThrottle, f"code:{ap}").blocked_until is not None
        assert s.scalar(select(Credential.uses).where(Credential.id == issued.credential.id)) == 2


def test_revoked_pass_code_is_refused_and_codes_survive_a_key_rotation(store, site, keyring):
    _, ap, person = site
    with store.session() as s:
        kept = domain.issue_qr_pass(s, actor="op", person_id=person)
        gone = domain.issue_qr_pass(s, actor="op", person_id=person)
        domain.revoke_credential(s, actor="op", credential_id=gone.credential.id)
    assert _decide(store, ap, gone.code, "g1").reason == "credential_revoked"
    with store.session() as s:
        domain.rotate_keys(s, keyring, actor="op")
    assert _decide(store, ap, kept.code, "k1").decision == "allow"
