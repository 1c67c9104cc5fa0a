"""Rules behind the web pages: operator accounts, lockout, sessions, invitations, "no thanks".

Every test runs on SQLite and on PostgreSQL (``backend`` fixture of ``store_support``)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from store_support import *  # noqa: F403
from store_support import publish_complete_notice

from facegate import audit, domain
from facegate.domain import accounts, selfservice
from facegate.errors import (
    AccountLocked,
    Conflict,
    GuardianConsentRequired,
    InvalidInput,
    InvitationInvalid,
    Unauthorized,
)
from facegate.store.models import Credential
from facegate.store.web_models import Invitation, OperatorAccount, WebSession


@pytest.fixture
def site(store, settings):
    with store.session() as s:
        init = domain.init_site(s, settings, actor="op", operator_name="ACME Property")
        domain.add_access_point(s, actor="op", name="Gate 1", kind="gate", methods=["face", "card"])
        publish_complete_notice(s, settings)
        return init.site_id


def test_first_admin_once_then_login_with_lockout(store, settings, site):
    settings.web_login_max_failures = 3
    with store.session() as s:
        assert not accounts.has_operators(s)
        with pytest.raises(InvalidInput):
            accounts.create_first_admin(s, username="boss", password="short")
        admin = accounts.create_first_admin(s, username="boss", password="a long passphrase")
        assert admin.role == "admin"
        with pytest.raises(Conflict):
            accounts.create_first_admin(s, username="other", password="another long one")
        row = s.execute(select(OperatorAccount)).scalar_one()
        assert row.password_hash.startswith("$argon2id$")
        assert "a long passphrase" not in row.password_hash
        assert (
            accounts.authenticate(s, settings, username="boss", password="a long passphrase").id
            == admin.id
        )
        with pytest.raises(Unauthorized):
            accounts.authenticate(s, settings, username="nobody", password="a long passphrase")
        for _ in range(2):
            with pytest.raises(Unauthorized):
                accounts.authenticate(s, settings, username="boss", password="wrong one!")
        with pytest.raises(AccountLocked):
            accounts.authenticate(s, settings, username="boss", password="wrong one!")
        # Locked: even the right password is refused until the lock ends.
        with pytest.raises(AccountLocked):
            accounts.authenticate(s, settings, username="boss", password="a long passphrase")
        assert audit.verify(s).ok


def test_sessions_are_stored_hashed_and_expire(store, settings, site):
    with store.session() as s:
        admin = accounts.create_first_admin(s, username="boss", password="a long passphrase")
        opened = accounts.open_session(
            s, kind="operator", subject_id=admin.id, lifetime=timedelta(hours=1)
        )
        row = accounts.lookup_session(s, opened.token, "operator")
        assert row is not None and row.csrf_token == opened.csrf_token
        assert opened.token not in {r.token_hash for r in s.execute(select(WebSession)).scalars()}
        assert accounts.lookup_session(s, opened.token, "person") is None  # other kind
        row.expires_at = row.created_at - timedelta(seconds=1)
        s.commit()
        assert accounts.lookup_session(s, opened.token, "operator") is None
        assert accounts.lookup_session(s, "made-up", "operator") is None


def test_invitation_is_single_use_hashed_and_expires(store, settings, site):
    with store.session() as s:
        p = domain.add_person(s, actor="desk", category="resident")
        issued = selfservice.create_invitation(s, settings, actor="desk", person_id=p.id)
        stored = s.execute(select(Invitation)).scalar_one()
        assert issued.token not in stored.token_hash
        redeemed = selfservice.redeem_invitation(s, settings, token=issued.token)
        assert redeemed.person_id == p.id
        assert accounts.lookup_session(s, redeemed.opened.token, "person") is not None
        with pytest.raises(InvitationInvalid):
            selfservice.redeem_invitation(s, settings, token=issued.token)
        late = selfservice.create_invitation(s, settings, actor="desk", person_id=p.id)
        row = s.get(Invitation, late.invitation.id)
        row.expires_at = row.created_at - timedelta(seconds=1)
        s.commit()
        with pytest.raises(InvitationInvalid):
            selfservice.redeem_invitation(s, settings, token=late.token)


def test_child_is_invited_through_a_linked_guardian_who_consents(store, settings, site):
    with store.session() as s:
        child = domain.add_person(s, actor="desk", category="resident", minor_under_14=True)
        parent = domain.add_person(s, actor="desk", category="resident")
        with pytest.raises(GuardianConsentRequired):
            selfservice.create_invitation(s, settings, actor="desk", person_id=child.id)
        with pytest.raises(InvalidInput):
            selfservice.create_invitation(
                s, settings, actor="desk", person_id=child.id, guardian_id=parent.id
            )
        domain.link_guardian(s, actor="desk", minor_id=child.id, guardian_id=parent.id)
        issued = selfservice.create_invitation(
            s, settings, actor="desk", person_id=child.id, guardian_id=parent.id
        )
        r = selfservice.redeem_invitation(s, settings, token=issued.token)
        assert (r.person_id, r.guardian_id) == (child.id, parent.id)
        ws = accounts.lookup_session(s, r.opened.token, "person")
        assert selfservice.split_subject(ws.subject_id) == (child.id, parent.id)
        selfservice.accept_face(s, actor="web", person_id=child.id, guardian_id=parent.id)
        assert selfservice.face_state(s, child.id)["consent_active"]


def test_declining_is_remembered_keeps_access_and_gives_a_pass_if_needed(store, settings, site):
    with store.session() as s:
        with_card = domain.add_person(s, actor="desk", category="resident")
        domain.issue_card(s, actor="desk", person_id=with_card.id, card_number="77")
        bare = domain.add_person(s, actor="desk", category="guest")
        assert selfservice.face_state(s, with_card.id)["should_ask"]
        r1 = selfservice.decline_face(s, actor="web", person_id=with_card.id)
        assert r1.issued is None  # the card keeps working; nothing else changes
        r2 = selfservice.decline_face(s, actor="web", person_id=bare.id)
        assert r2.issued is not None and r2.issued.credential.kind == "qr"
        for pid in (with_card.id, bare.id):
            state = selfservice.face_state(s, pid)
            assert state["declined"] and not state["should_ask"]  # STD-41819-02
            assert not state["consent_active"]
        creds = s.execute(select(Credential).where(Credential.person_id == with_card.id)).all()
        assert len(creds) == 1
        # Changing one's mind is the person's own act: consent clears the "no".
        selfservice.accept_face(s, actor="web", person_id=with_card.id)
        state = selfservice.face_state(s, with_card.id)
        assert state["consent_active"] and not state["declined"]
        # Withdrawing later is shown as such, and is not followed by a new prompt either.
        domain.withdraw(s, actor="web", person_id=with_card.id, channel="web")
        state = selfservice.face_state(s, with_card.id)
        assert state["withdrawn"] and not state["declined"] and not state["should_ask"]
        assert audit.verify(s).ok
