"""Rules behind the web pages: operator accounts, lockout, sessions, invitations, "no thanks".

Every test runs on SQLite and on PostgreSQL (``backend`` fixture of ``store_support``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from store_support import *  # noqa: F403
from store_support import publish_complete_notice

from facegate import audit, domain
from facegate.domain import accounts, selfservice
from facegate.errors import (
    Conflict,
    GuardianConsentRequired,
    InvalidInput,
    InvitationInvalid,
    LoginThrottled,
    SetupCodeInvalid,
    Unauthorized,
)
from facegate.store.models import AuditEntry, Credential, utcnow
from facegate.store.web_models import (
    Invitation,
    KnownDevice,
    LoginThrottle,
    OperatorAccount,
    SetupCode,
    WebSession,
)


@pytest.fixture
def site(store, settings):
    with store.session() as s:
        init = domain.init_site(s, settings, actor="op", operator_name="ACME Property")
        domain.add_access_point(s, actor="op", name="Gate 1", kind="gate", methods=["face", "card"])
        publish_complete_notice(s, settings)
        return init.site_id


def _first_admin(s, settings, username="boss", password="a long passphrase"):
    code = accounts.issue_setup_code(s, settings, actor="test")
    return accounts.create_first_admin(s, username=username, password=password, setup_code=code)


def test_first_admin_needs_the_one_time_setup_code(store, settings, site):
    """Issue 13 item 6: reaching /console/setup first is not enough."""
    with store.session() as s:
        assert not accounts.has_operators(s)
        # No code, a guessed code: refused (before the fix anyone became admin).
        for guess in ("", "AAAA-BBBB-CCCC-DDDD"):
            with pytest.raises(SetupCodeInvalid):
                accounts.create_first_admin(
                    s, username="boss", password="a long passphrase", setup_code=guess
                )
        assert not accounts.has_operators(s)
        code = accounts.issue_setup_code(s, settings, actor="facegate serve")
        stored = s.execute(select(SetupCode)).scalar_one()
        assert accounts._normalise_code(code) not in stored.code_hash  # stored hashed
        assert stored.expires_at - stored.created_at == timedelta(
            minutes=settings.web_setup_code_minutes
        )
        # An expired code is refused.
        stored.expires_at = stored.created_at - timedelta(seconds=1)
        s.commit()
        with pytest.raises(SetupCodeInvalid):
            accounts.create_first_admin(
                s, username="boss", password="a long passphrase", setup_code=code
            )
        code = accounts.issue_setup_code(s, settings, actor="facegate serve")
        with pytest.raises(InvalidInput):  # the code is right, the password too short
            accounts.create_first_admin(s, username="boss", password="short", setup_code=code)
        # Typed in lower case without dashes: the same code.
        typed = code.replace("-", " ").lower()
        admin = accounts.create_first_admin(
            s, username="boss", password="a long passphrase", setup_code=typed
        )
        assert admin.role == "admin"
        assert all(r.used_at is not None for r in s.execute(select(SetupCode)).scalars())
        # Valid once, and no new code once an account exists.
        with pytest.raises(Conflict):
            accounts.create_first_admin(
                s, username="other", password="another long one", setup_code=code
            )
        assert accounts.issue_setup_code(s, settings, actor="facegate serve") is None
        ops = [e.operation for e in s.execute(select(AuditEntry)).scalars()]
        assert "setup_code_issue" in ops
        assert audit.verify(s).ok


def test_login_answers_alike_for_unknown_and_known_names(store, settings, site):
    """Issue 13 item 7: no user enumeration (same error, same message, same throttle)."""
    settings.web_login_max_failures = 3
    t0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    with store.session() as s:
        admin = _first_admin(s, settings)
        row = s.execute(select(OperatorAccount)).scalar_one()
        assert row.password_hash.startswith("$argon2id$")
        assert "a long passphrase" not in row.password_hash
        assert (
            accounts.authenticate(
                s, settings, username="boss", password="a long passphrase", client="10.0.0.1"
            ).id
            == admin.id
        )
        answers = {}
        for name in ("boss", "nobody"):
            seen = []
            for i in range(5):
                try:
                    accounts.authenticate(
                        s,
                        settings,
                        username=name,
                        password="wrong one!",
                        client=f"10.0.1.{i}",
                        now=t0,  # one instant, so the waits announced compare equal
                    )
                except (Unauthorized, LoginThrottled) as exc:
                    seen.append((type(exc).__name__, exc.http_status, exc.message))
            answers[name] = seen
        assert answers["boss"] == answers["nobody"]
        # Three free failures, then a delay: the 4th attempt is answered 429 for both names.
        assert [a[1] for a in answers["nobody"][:4]] == [401, 401, 401, 429]


def test_login_delays_grow_per_name_and_end_no_hard_lock(store, settings, site):
    settings.web_login_max_failures = 3
    settings.web_login_base_delay_s = 2
    settings.web_login_account_max_delay_s = 30
    t0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    with store.session() as s:
        _first_admin(s, settings)

        def attempt(password, at, client="10.0.0.9"):
            return accounts.authenticate(
                s, settings, username="boss", password=password, client=client, now=at
            )

        for i in range(2):
            with pytest.raises(Unauthorized):
                attempt("wrong one!", t0 + timedelta(seconds=i))
        with pytest.raises(Unauthorized):  # 3rd failure: the next attempt must wait 2 s
            attempt("wrong one!", t0 + timedelta(seconds=2))
        # During the delay even the right password is answered 429, unchecked, from any
        # address (a distributed guesser gets no free tries).
        with pytest.raises(LoginThrottled) as exc:
            attempt("a long passphrase", t0 + timedelta(seconds=3), client="10.9.9.9")
        assert exc.value.retry_after_s <= 2
        delays = []
        at = t0 + timedelta(seconds=2)
        for _ in range(6):  # each further failure doubles the wait, up to the cap
            row = s.execute(select(LoginThrottle).where(LoginThrottle.key.like("name:%")))
            until = row.scalar_one().blocked_until
            delays.append(int((until - at).total_seconds()))
            at = until
            with pytest.raises(Unauthorized):
                attempt("wrong one!", at)
        assert delays == [2, 4, 8, 16, 30, 30]
        # Not a lock: once the delay has passed, the right password signs in.
        later = max(r for r in s.execute(select(LoginThrottle.blocked_until)).scalars() if r)
        assert attempt("a long passphrase", later).username == "boss"
        throttled = [
            e
            for e in s.execute(select(AuditEntry)).scalars()
            if e.operation == "operator_login_throttled"
        ]
        assert throttled and {e.details["scope"] for e in throttled} == {"name"}
        assert all(e.details["operator_id"] for e in throttled)
        assert audit.verify(s).ok


def test_others_failures_cannot_keep_an_operator_out_of_a_known_browser(store, settings, site):
    """Failures sent under an operator's name from many addresses delay that name, but the
    operator's own browser (signed in from before) is not delayed by them."""
    settings.web_login_max_failures = 2
    t0 = utcnow()  # one instant throughout: no race with the delay on a loaded machine
    with store.session() as s:
        admin = _first_admin(s, settings)
        accounts.authenticate(
            s, settings, username="boss", password="a long passphrase", client="10.0.0.1", now=t0
        )
        device = accounts.remember_device(s, settings, operator_id=admin.id)
        assert device not in {r.token_hash for r in s.execute(select(KnownDevice)).scalars()}
        for i in range(2):  # an attacker, a new address each time
            with pytest.raises(Unauthorized):
                accounts.authenticate(
                    s, settings, username="boss", password="guess!", client=f"10.7.0.{i}", now=t0
                )
        with pytest.raises(LoginThrottled):  # the name is delayed for everyone else...
            accounts.authenticate(
                s,
                settings,
                username="boss",
                password="a long passphrase",
                client="10.0.0.1",
                now=t0,
            )
        # A made-up device token does not help.
        with pytest.raises(LoginThrottled):
            accounts.authenticate(
                s,
                settings,
                username="boss",
                password="a long passphrase",
                client="10.0.0.1",
                device_token="made-up",
                now=t0,
            )
        # The operator's own browser is not delayed, and its cookie is renewed, not copied.
        ok = accounts.authenticate(
            s,
            settings,
            username="boss",
            password="a long passphrase",
            client="10.0.0.1",
            device_token=device,
            now=t0,
        )
        assert ok.id == admin.id
        assert accounts.remember_device(s, settings, operator_id=admin.id, token=device) == device


def test_login_throttles_an_address_guessing_many_names(store, settings, site):
    settings.web_login_address_free_failures = 4
    with store.session() as s:
        _first_admin(s, settings)
        for i in range(4):
            with pytest.raises(Unauthorized):
                accounts.authenticate(
                    s, settings, username=f"user{i}", password="guess guess", client="10.6.6.6"
                )
        # A fifth name from the same address waits; the real admin elsewhere does not.
        with pytest.raises(LoginThrottled):
            accounts.authenticate(
                s, settings, username="user9", password="guess guess", client="10.6.6.6"
            )
        assert accounts.authenticate(
            s, settings, username="boss", password="a long passphrase", client="10.0.0.2"
        )
        rows = s.execute(select(AuditEntry)).scalars().all()
        scopes = [e.details.get("scope") for e in rows if e.operation == "operator_login_throttled"]
        assert scopes == ["address"]
        # No typed user name is stored in the throttle table or the audit log.
        keys = " ".join(s.execute(select(LoginThrottle.key)).scalars())
        assert "user1" not in keys
        assert "user1" not in " ".join(str(e.details) + e.actor for e in rows)


def test_sessions_are_stored_hashed_and_expire(store, settings, site):
    with store.session() as s:
        admin = _first_admin(s, settings)
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
