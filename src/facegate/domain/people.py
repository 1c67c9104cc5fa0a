"""Organisation, sites, access points and people (pseudonymous ids; names kept apart)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from facegate import audit
from facegate.config import Settings
from facegate.domain.common import (
    PURPOSE_ACCESS,
    PURPOSE_CONFIG,
    dump,
    enforce_limit,
    get_person,
    get_site,
    is_under_14,
    iso,
    record_change,
    run,
    utcnow,
)
from facegate.domain.identities import FieldKeys, identities_of, set_identity
from facegate.domain.notice import (
    build_notice_fields,
    current_notice,
    missing_notice_fields,
    publish_notice_in_tx,
    save_notice_draft_in_tx,
)
from facegate.errors import InvalidInput, NotFound
from facegate.store.crypto import Keyring
from facegate.store.models import (
    ACCESS_POINT_KINDS,
    CATEGORIES,
    METHODS,
    NON_BIOMETRIC_METHODS,
    AccessPoint,
    Consent,
    Credential,
    GuardianLink,
    NoticeVersion,
    Organization,
    Person,
    Site,
    Template,
    new_id,
)


@dataclass(frozen=True)
class InitResult:
    organization_id: str
    site_id: str
    notice_version: int
    notice_sha256: str
    created: bool
    # Notice fields still missing (the notice stays a draft until they are filled in).
    notice_missing: tuple[str, ...] = ()
    # On an existing install: which facts this call changed (publish the notice next).
    updated: tuple[str, ...] = ()


def init_site(
    session: Session,
    settings: Settings,
    *,
    actor: str,
    operator_name: str | None = None,
    operator_address: str | None = None,
    operator_contact: str | None = None,
    pipo_contact: str | None = None,
    site_name: str | None = None,
) -> InitResult:
    """Create the organisation, one site and the first notice version; idempotent."""

    def work() -> InitResult:
        site = session.execute(select(Site).order_by(Site.created_at).limit(1)).scalar()
        if site is not None:
            # An existing install (e.g. ``facegate serve`` ran first): update what was given,
            # through the same function the console uses, never drop it silently.
            updated = _update_organization_in_tx(
                session,
                site,
                actor=actor,
                name=operator_name,
                address=operator_address,
                contact=operator_contact,
                pipo_contact=pipo_contact,
            )
            if site_name is not None and site_name.strip() != site.name:
                _rename_site_in_tx(session, site, site_name, actor=actor)
                updated.append("site_name")
            notice = current_notice(session, site.id)
            return InitResult(
                site.organization_id,
                site.id,
                notice.version if notice else 0,
                notice.sha256 if notice else "",
                False,
                updated=tuple(updated),
            )
        org = Organization(
            id=new_id("org"),
            name=operator_name if operator_name is not None else settings.operator_name,
            address=operator_address if operator_address is not None else settings.operator_address,
            contact=operator_contact if operator_contact is not None else settings.operator_contact,
            pipo_contact=pipo_contact if pipo_contact is not None else settings.pipo_contact,
        )
        site = Site(
            id=new_id("site"),
            organization_id=org.id,
            name=site_name if site_name is not None else settings.site_name,
        )
        session.add_all([org, site])
        session.flush()
        fields = build_notice_fields(
            settings,
            operator_name=org.name,
            operator_address=org.address,
            operator_contact=org.contact,
            pipo_contact=org.pipo_contact,
            site_name=site.name,
        )
        # A notice that lacks a required field is only a draft (CAC-FR-05a): published once the
        # operator facts are complete (``facegate notice publish`` or the console).
        missing = missing_notice_fields(fields)
        if missing:
            save_notice_draft_in_tx(session, site.id, fields, actor=actor)
        notice = None if missing else publish_notice_in_tx(session, site.id, fields, actor=actor)
        audit.append(
            session,
            actor=actor,
            operation="init",
            purpose=PURPOSE_CONFIG,
            outcome="ok",
            details={"organization_id": org.id, "site_id": site.id},
        )
        return InitResult(
            org.id,
            site.id,
            notice.version if notice else 0,
            notice.sha256 if notice else "",
            True,
            notice_missing=tuple(sorted(missing)),
        )

    return run(session, work, actor=actor, operation="init", subject=None, purpose=PURPOSE_CONFIG)


_ORG_FIELDS = {
    "name": "operator_name",
    "address": "operator_address",
    "contact": "operator_contact",
    "pipo_contact": "pipo_contact",
}


def _update_organization_in_tx(
    session: Session,
    site: Site,
    *,
    actor: str,
    name: str | None = None,
    address: str | None = None,
    contact: str | None = None,
    pipo_contact: str | None = None,
) -> list[str]:
    """Set the given operator facts (notice N1) inside the caller's transaction, audited;
    ``None`` leaves a fact as it is. Returns the facts that changed."""
    org = session.get(Organization, site.organization_id)
    if org is None:
        raise NotFound(
            "no organisation yet; run `facegate init` first",
            zh="还没有运营者信息：请先运行 `facegate init`",
        )
    given = {"name": name, "address": address, "contact": contact, "pipo_contact": pipo_contact}
    changed = []
    for attr, value in given.items():
        if value is None or value.strip() == (getattr(org, attr) or ""):
            continue
        setattr(org, attr, value.strip())
        changed.append(_ORG_FIELDS[attr])
    if changed:
        audit.append(
            session,
            actor=actor,
            operation="operator_update",
            purpose=PURPOSE_CONFIG,
            outcome="ok",
            details={"organization_id": org.id, "fields": changed},
        )
    return changed


def update_organization(
    session: Session,
    *,
    actor: str,
    site_id: str | None = None,
    name: str | None = None,
    address: str | None = None,
    contact: str | None = None,
    pipo_contact: str | None = None,
) -> list[str]:
    """Change the operator facts the notice names (N1); the CLI, console and ``init`` all use
    this. Publishing the notice that shows them is a separate act."""

    def work() -> list[str]:
        site = get_site(session, site_id)
        return _update_organization_in_tx(
            session,
            site,
            actor=actor,
            name=name,
            address=address,
            contact=contact,
            pipo_contact=pipo_contact,
        )

    return run(
        session,
        work,
        actor=actor,
        operation="operator_update",
        subject=None,
        purpose=PURPOSE_CONFIG,
    )


def _rename_site_in_tx(session: Session, site: Site, name: str, *, actor: str) -> None:
    name = name.strip()
    if not name:
        raise InvalidInput(
            "A site needs a name: the notice states the purpose with it (CAC-FR-05a).",
            zh="场所需要名称：告知书用它说明处理目的（CAC-FR-05a）。",
        )
    if len(name) > 200:
        raise InvalidInput("A site name is at most 200 characters.", zh="场所名称最多 200 个字符。")
    old = site.name
    site.name = name
    audit.append(
        session,
        actor=actor,
        operation="site_rename",
        purpose=PURPOSE_CONFIG,
        outcome="ok",
        details={"site_id": site.id, "old": old, "new": name},
    )


def rename_site(session: Session, *, actor: str, name: str, site_id: str | None = None) -> Site:
    """Name or rename a site (the console's site form and ``facegate site rename``).

    The notice's purpose is built from the site name: publish the notice afterwards so the
    residents read the new name."""

    def work() -> Site:
        site = get_site(session, site_id)
        _rename_site_in_tx(session, site, name, actor=actor)
        return site

    return run(
        session,
        work,
        actor=actor,
        operation="site_rename",
        subject=site_id,
        purpose=PURPOSE_CONFIG,
    )


def list_sites(session: Session) -> list[Site]:
    """Every site, oldest first."""
    return list(session.execute(select(Site).order_by(Site.created_at)).scalars())


def add_access_point(
    session: Session,
    *,
    actor: str,
    name: str,
    kind: str,
    methods: Sequence[str],
    location_type: str = "entrance",
    site_id: str | None = None,
    liveness: str | None = None,
) -> AccessPoint:
    """Add an access point. Face is never the only method (CAC-FR-10, SPC-10, PIPL-16).

    ``liveness``: passive | challenge | off; by default challenge at a kiosk, passive elsewhere
    (issue 14; ``off`` only with a credential for 1:1, CAC-FR-14)."""
    from facegate.access.liveness import check_policy, default_policy

    def work() -> AccessPoint:
        site = get_site(session, site_id)
        if kind not in ACCESS_POINT_KINDS:
            raise InvalidInput(
                f"kind must be one of {', '.join(ACCESS_POINT_KINDS)}", zh="出入口类型无效"
            )
        bad = [m for m in methods if m not in METHODS]
        if bad or not methods:
            raise InvalidInput(
                f"methods must be among {', '.join(METHODS)}",
                zh="识别方式无效：可选人脸、门卡、密码、二维码或人工放行",
            )
        if "face" in methods and not any(m in NON_BIOMETRIC_METHODS for m in methods):
            raise InvalidInput(
                "an access point that accepts face must also accept a card, PIN, QR pass or "
                "staffed check (CAC-FR-10)",
                zh="使用刷脸的出入口必须同时接受门卡、密码、二维码或人工核验（CAC-FR-10）。",
            )
        policy = check_policy(liveness or default_policy(kind), methods)
        n = session.scalar(
            select(func.count()).select_from(AccessPoint).where(AccessPoint.site_id == site.id)
        )
        enforce_limit(session, "max_access_points_per_site", int(n or 0), "access points", "出入口")
        ap = AccessPoint(
            id=new_id("ap"),
            site_id=site.id,
            name=name,
            kind=kind,
            methods=list(dict.fromkeys(methods)),
            location_type=location_type,
            liveness=policy,
        )
        session.add(ap)
        session.flush()
        record_change(session, site.id, None, "access_point")
        audit.append(
            session,
            actor=actor,
            operation="access_point_add",
            purpose=PURPOSE_CONFIG,
            outcome="ok",
            details={
                "access_point_id": ap.id,
                "kind": kind,
                "methods": ap.methods,
                "liveness": policy,
            },
        )
        return ap

    return run(
        session,
        work,
        actor=actor,
        operation="access_point_add",
        subject=None,
        purpose=PURPOSE_CONFIG,
    )


def add_person(
    session: Session,
    *,
    actor: str,
    category: str,
    birth_date: date | None = None,
    minor_under_14: bool = False,
    name: str = "",
    contact: str = "",
    unit: str = "",
    relationship_ends_at: datetime | None = None,
    site_id: str | None = None,
    keyring: Keyring | None = None,
) -> Person:
    """Register a person; they get a pseudonymous id. Adding a person is not consent.

    A name, contact or unit is sealed with the site key: pass ``keyring`` to give one."""

    def work() -> Person:
        return add_person_in_tx(
            session,
            get_site(session, site_id),
            keyring=keyring,
            actor=actor,
            category=category,
            birth_date=birth_date,
            minor_under_14=minor_under_14,
            name=name,
            contact=contact,
            unit=unit,
            relationship_ends_at=relationship_ends_at,
        )

    return run(
        session, work, actor=actor, operation="person_add", subject=None, purpose=PURPOSE_ACCESS
    )


def add_person_in_tx(
    session: Session,
    site: Site,
    *,
    keyring: Keyring | FieldKeys | None = None,
    actor: str,
    category: str,
    birth_date: date | None = None,
    minor_under_14: bool = False,
    name: str = "",
    contact: str = "",
    unit: str = "",
    relationship_ends_at: datetime | None = None,
    details: dict[str, Any] | None = None,
) -> Person:
    """The rules of adding one person, inside the caller's transaction (``add_person`` and
    the bulk import share them)."""
    if category not in CATEGORIES:
        raise InvalidInput(
            f"category must be one of {', '.join(CATEGORIES)}",
            zh="类别无效：请选择业主/住户、租户、酒店住客、员工或访客",
        )
    if birth_date is not None and birth_date > utcnow().date():
        raise InvalidInput("birth date is in the future", zh="出生日期不能晚于今天")
    n = session.scalar(
        select(func.count())
        .select_from(Person)
        .where(Person.site_id == site.id, Person.status == "active")
    )
    enforce_limit(session, "max_persons_per_site", int(n or 0), "people registered", "登记人员")
    ends = relationship_ends_at
    if category == "visitor" and ends is None:
        ends = utcnow() + timedelta(days=1)  # a visit is single use (CAC-FR-08b)
    person = Person(
        id=new_id("p"),
        site_id=site.id,
        category=category,
        birth_date=birth_date,
        minor_under_14=minor_under_14,
        relationship_ends_at=ends,
    )
    session.add(person)
    if name or contact or unit:  # issue 13 item 15: sealed, never stored in plaintext
        set_identity(
            session, keyring, person, name=name, contact=contact, unit=unit, new_person=True
        )
    session.flush()
    audit.append(
        session,
        actor=actor,
        operation="person_add",
        subject=person.id,
        purpose=PURPOSE_ACCESS,
        outcome="ok",
        details={"category": category, **(details or {})},
    )
    return person


def link_guardian(
    session: Session, *, actor: str, minor_id: str, guardian_id: str, relation: str = "guardian"
) -> GuardianLink:
    """Record that ``guardian_id`` is a parent or guardian of ``minor_id`` (CAC-FR-07)."""

    def work() -> GuardianLink:
        minor = get_person(session, minor_id, lock=True)
        guardian = get_person(session, guardian_id)
        if minor.id == guardian.id:
            raise InvalidInput("a person cannot be their own guardian", zh="监护人不能是本人。")
        if is_under_14(guardian):
            raise InvalidInput("a guardian must not be under 14", zh="监护人不能未满 14 周岁。")
        link = session.execute(
            select(GuardianLink).where(
                GuardianLink.minor_id == minor.id, GuardianLink.guardian_id == guardian.id
            )
        ).scalar_one_or_none()
        if link is None:
            link = GuardianLink(minor_id=minor.id, guardian_id=guardian.id, relation=relation)
            session.add(link)
        link.revoked_at = None
        link.relation = relation
        session.flush()
        audit.append(
            session,
            actor=actor,
            operation="guardian_link",
            subject=minor.id,
            purpose=PURPOSE_ACCESS,
            outcome="ok",
            details={"guardian": guardian.id, "relation": relation},
        )
        return link

    return run(
        session,
        work,
        actor=actor,
        operation="guardian_link",
        subject=minor_id,
        purpose=PURPOSE_ACCESS,
    )


def list_persons(
    session: Session,
    *,
    site_id: str | None = None,
    include_erased: bool = False,
    site_ids: frozenset[str] | None = None,
) -> list[Person]:
    """People in order of registration, of one site, of ``site_ids`` (the sites an operator
    works for), or of all."""
    stmt = select(Person).order_by(Person.created_at)
    if site_id is not None:
        stmt = stmt.where(Person.site_id == site_id)
    if site_ids is not None:
        stmt = stmt.where(Person.site_id.in_(site_ids))
    if not include_erased:
        stmt = stmt.where(Person.status == "active")
    return list(session.execute(stmt).scalars())


def search_persons(
    session: Session,
    keyring: Keyring | None,
    *,
    query: str,
    site_ids: frozenset[str] | None = None,
) -> list[Person]:
    """Active people of ``site_ids`` whose name, unit, card number or pseudonym contains
    ``query`` (trimmed, case folded). Names are opened in memory only, the site's at a time
    (issue 16 item 11); an empty query lists everyone. With ``keyring`` None only card
    numbers and pseudonyms are searched."""
    persons = list_persons(session, site_ids=site_ids)
    needle = _fold(query)
    if not needle:
        return persons
    # Without the keyring (an auditor's view) names and units are not searched at all.
    idents = identities_of(session, keyring, [p.id for p in persons]) if keyring else {}
    cards: dict[str, list[str]] = {}
    for pid, ident in session.execute(
        select(Credential.person_id, Credential.identifier).where(
            Credential.kind == "card",
            Credential.revoked_at.is_(None),
            Credential.person_id.in_([p.id for p in persons] or [""]),
        )
    ).all():
        cards.setdefault(pid, []).append(ident or "")

    def hit(p: Person) -> bool:
        i = idents.get(p.id)
        hay = [p.id, *(cards.get(p.id) or [])]
        if i is not None:
            hay += [i.name, i.unit]
        return any(needle in _fold(h) for h in hay)

    return [p for p in persons if hit(p)]


def _fold(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).split()).casefold()


def person_summary(
    session: Session, person_id: str, *, model_id: str | None = None
) -> dict[str, Any]:
    """What an operator may see: consents, credentials, templates as ids (never vectors)."""
    person = session.get(Person, person_id)
    if person is None:
        raise NotFound(f"no person {person_id!r}", zh="找不到此人")
    consents = session.execute(
        select(Consent, NoticeVersion.version)
        .join(NoticeVersion, NoticeVersion.id == Consent.notice_version_id)
        .where(Consent.person_id == person.id)
        .order_by(Consent.given_at)
    ).all()
    creds = session.execute(
        select(Credential).where(Credential.person_id == person.id).order_by(Credential.created_at)
    ).scalars()
    templates = session.execute(
        select(Template.id, Template.model_id, Template.quality, Template.created_at)
        .where(Template.person_id == person.id)
        .order_by(Template.created_at)
    ).all()
    guardians = session.execute(
        select(GuardianLink.guardian_id, GuardianLink.relation).where(
            GuardianLink.minor_id == person.id, GuardianLink.revoked_at.is_(None)
        )
    ).all()
    out = dump(
        person,
        (
            "id",
            "site_id",
            "category",
            "birth_date",
            "minor_under_14",
            "status",
            "relationship_ends_at",
            "last_seen_at",
            "face_declined_at",
            "created_at",
            "erased_at",
        ),
    )
    out["under_14"] = is_under_14(person)
    out["guardians"] = [{"guardian_id": g, "relation": r} for g, r in guardians]
    out["consents"] = [
        {
            **dump(
                c,
                (
                    "id",
                    "channel",
                    "recorded_by",
                    "guardian_id",
                    "scope",
                    "given_at",
                    "withdrawn_at",
                    "renewal_required_at",
                    "notice_sha256",
                    "basis",
                ),
            ),
            "notice_version": v,
            "active": c.withdrawn_at is None and c.renewal_required_at is None,
        }
        for c, v in consents
    ]
    out["credentials"] = [
        dump(
            c,
            (
                "id",
                "kind",
                "identifier",
                "valid_from",
                "valid_until",
                "max_uses",
                "uses",
                "created_at",
                "revoked_at",
            ),
        )
        for c in creds
    ]
    out["templates"] = [
        {"id": t, "model_id": m, "quality": q, "created_at": iso(at)} for t, m, q, at in templates
    ]
    out["needs_reenrollment"] = bool(
        model_id and templates and not any(m == model_id for _, m, _, _ in templates)
    )
    return out


def count_persons_with_templates(session: Session, site_id: str | None = None) -> int:
    """Distinct people whose face data is stored (the CAC-FR-15 filing threshold counts this)."""
    stmt = select(func.count(func.distinct(Template.person_id)))
    if site_id is not None:
        stmt = stmt.join(Person, Person.id == Template.person_id).where(Person.site_id == site_id)
    return int(session.execute(stmt).scalar_one())
