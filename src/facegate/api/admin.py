"""Admin, enrollment and rights routes: the same domain functions the CLI calls.

Each route checks the key's scope and site, calls one domain function, tells the gate-side
galleries about the change (in-process on SQLite; other processes hear NOTIFY on PostgreSQL)
and renders the result. No route returns a template, an image or a person's name.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from facegate import domain
from facegate.api.auth import Principal, require
from facegate.api.errors import error_responses
from facegate.api.uploads import read_images
from facegate.errors import NotFound

if TYPE_CHECKING:  # adapters name the models in type hints only; queries live in the domain
    from facegate.store.models import AccessPoint, Person

router = APIRouter()

Id = Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._-]+$")
ShortText = Field(default="", max_length=200)
Ident = Field(max_length=40, pattern=r"^[A-Za-z0-9._-]+$")


def _rt(request: Request) -> Any:
    return request.app.state.runtime


def _person(rt: Any, principal: Principal, person_id: str) -> None:
    """404 for an unknown person; 403 for a person of another site."""
    with rt.store.session() as s:
        principal.check_site(domain.get_person(s, person_id).site_id)


def _access_points(rt: Any, principal: Principal, ids: list[str] | None) -> None:
    if not ids:
        return
    with rt.store.session() as s:
        for ap_id in ids:
            principal.check_site(domain.get_access_point(s, ap_id).site_id)


def _iso(v: datetime | date | None) -> str | None:
    return None if v is None else v.isoformat()


# --- access points --------------------------------------------------------------------------


class AccessPointIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["gate", "door", "elevator", "lobby", "kiosk"]
    methods: list[Literal["face", "card", "pin", "qr", "staffed"]] = Field(min_length=1)
    location_type: str = Field(default="entrance", max_length=32, pattern=r"^[a-z_]+$")
    liveness: Literal["passive", "challenge", "off"] | None = Field(
        default=None,
        description="presentation-attack check; default challenge at a kiosk, passive "
        "elsewhere; off only with a card, PIN or QR pass for 1:1 (issue 14)",
    )


class AccessPointOut(BaseModel):
    id: str
    site_id: str
    name: str
    kind: str
    location_type: str
    methods: list[str]
    face_enabled: bool
    liveness: str


def _ap_out(ap: AccessPoint) -> AccessPointOut:
    return AccessPointOut(
        id=ap.id,
        site_id=ap.site_id,
        name=ap.name,
        kind=ap.kind,
        location_type=ap.location_type,
        methods=list(ap.methods or []),
        face_enabled=bool(ap.face_enabled),
        liveness=ap.liveness or "passive",
    )


@router.post(
    "/v1/access-points",
    response_model=AccessPointOut,
    status_code=201,
    tags=["admin"],
    responses=error_responses(401, 403, 404, 409),
)
def create_access_point(
    body: AccessPointIn, request: Request, principal: Principal = Depends(require("admin"))
) -> AccessPointOut:
    """Add an access point; face is never its only method (CAC-FR-10)."""
    rt = _rt(request)
    with rt.store.session() as s:
        ap = domain.add_access_point(
            s,
            actor=principal.actor,
            name=body.name,
            kind=body.kind,
            methods=body.methods,
            location_type=body.location_type,
            site_id=principal.site_id,
            liveness=body.liveness,
        )
        out = _ap_out(ap)
    rt.after_change()
    return out


class LivenessIn(BaseModel):
    liveness: Literal["passive", "challenge", "off"]


@router.put(
    "/v1/access-points/{access_point_id}/liveness",
    response_model=AccessPointOut,
    tags=["admin"],
    responses=error_responses(401, 403, 404, 422),
)
def set_access_point_liveness(
    body: LivenessIn,
    request: Request,
    access_point_id: str = Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._-]+$"),
    principal: Principal = Depends(require("admin")),
) -> AccessPointOut:
    """Set the liveness policy; `off` only where a credential always accompanies the face."""
    rt = _rt(request)
    sites = frozenset({principal.site_id})
    with rt.store.session() as s:
        ap = domain.set_access_point_liveness(
            s,
            actor=principal.actor,
            access_point_id=access_point_id,
            policy=body.liveness,
            sites=sites,
        )
        out = _ap_out(ap)
    rt.after_change()
    return out


@router.get(
    "/v1/access-points",
    response_model=list[AccessPointOut],
    tags=["admin"],
    responses=error_responses(401, 403),
)
def list_access_points(
    request: Request, principal: Principal = Depends(require("admin", "enroll"))
) -> list[AccessPointOut]:
    with _rt(request).store.session() as s:
        return [_ap_out(ap) for ap in domain.list_access_points(s, principal.site_id)]


# --- people -----------------------------------------------------------------------------------


class PersonIn(BaseModel):
    category: Literal["resident", "tenant", "guest", "staff", "visitor"]
    birth_date: date | None = None
    minor_under_14: bool = False
    # Kept apart from templates and never returned by the API (STD-35273-6.3).
    name: str = ShortText
    contact: str = ShortText
    unit: str = Field(default="", max_length=100)
    relationship_ends_at: datetime | None = None


class PersonOut(BaseModel):
    id: str = Field(description="the pseudonym used everywhere else")
    site_id: str
    category: str
    status: str
    created_at: str | None


def _person_out(p: Person) -> PersonOut:
    return PersonOut(
        id=p.id,
        site_id=p.site_id,
        category=p.category,
        status=p.status,
        created_at=_iso(p.created_at),
    )


@router.post(
    "/v1/persons",
    response_model=PersonOut,
    status_code=201,
    tags=["people"],
    responses=error_responses(401, 403, 404),
)
def create_person(
    body: PersonIn, request: Request, principal: Principal = Depends(require("admin", "enroll"))
) -> PersonOut:
    """Register a person (pseudonymous id). Registering is not consent."""
    ends = body.relationship_ends_at
    if ends is not None and ends.tzinfo is None:
        from facegate.errors import InvalidInput

        raise InvalidInput("relationship_ends_at needs a time zone (e.g. 2026-12-01T00:00:00Z)")
    rt = _rt(request)
    with rt.store.session() as s:
        p = domain.add_person(
            s,
            actor=principal.actor,
            category=body.category,
            birth_date=body.birth_date,
            minor_under_14=body.minor_under_14,
            name=body.name,
            contact=body.contact,
            unit=body.unit,
            relationship_ends_at=ends,
            site_id=principal.site_id,
            keyring=rt.galleries.loader.keyring,  # names are sealed (issue 13 item 15)
        )
        return _person_out(p)


@router.get(
    "/v1/persons",
    response_model=list[PersonOut],
    tags=["people"],
    responses=error_responses(401, 403),
)
def list_people(
    request: Request,
    principal: Principal = Depends(require("admin", "enroll")),
    limit: int = Query(default=100, ge=1, le=1000),
    offset: int = Query(default=0, ge=0, le=10_000_000),
) -> list[PersonOut]:
    with _rt(request).store.session() as s:
        people = domain.list_persons(s, site_id=principal.site_id)
        return [_person_out(p) for p in people[offset : offset + limit]]


@router.get(
    "/v1/persons/{person_id}",
    response_model=dict[str, Any],
    tags=["people"],
    responses=error_responses(401, 403, 404),
)
def show_person(
    request: Request,
    person_id: str = Id,
    principal: Principal = Depends(require("admin", "enroll", "rights")),
) -> dict[str, Any]:
    """Consents, credentials, templates as ids with model and date (never vectors)."""
    rt = _rt(request)
    _person(rt, principal, person_id)
    model_id = rt.pipeline.model_id if rt.pipeline_loaded else None
    with rt.store.session() as s:
        return domain.person_summary(s, person_id, model_id=model_id)


class ConsentIn(BaseModel):
    channel: Literal["front_desk", "web", "kiosk", "terminal", "app"] = "front_desk"
    guardian_id: str | None = Field(default=None, max_length=40)
    guardian_relation: str | None = Field(default=None, max_length=40)
    scope: list[str] | None = Field(
        default=None, max_length=200, description="face access point ids; default: all of them"
    )


class ConsentOut(BaseModel):
    id: str
    person_id: str
    notice_sha256: str
    scope: list[str]
    given_at: str | None


@router.post(
    "/v1/persons/{person_id}/consents",
    response_model=ConsentOut,
    status_code=201,
    tags=["people"],
    responses=error_responses(401, 403, 404, 409),
)
def record_consent(
    body: ConsentIn,
    request: Request,
    person_id: str = Id,
    principal: Principal = Depends(require("admin", "enroll")),
) -> ConsentOut:
    """Record the person's separate consent to the current notice (CAC-FR-06a)."""
    rt = _rt(request)
    _person(rt, principal, person_id)
    _access_points(rt, principal, body.scope)
    with rt.store.session() as s:
        c = domain.record_consent(
            s,
            actor=principal.actor,
            person_id=person_id,
            channel=body.channel,
            guardian_id=body.guardian_id,
            guardian_relation=body.guardian_relation,
            scope=body.scope,
        )
        out = ConsentOut(
            id=c.id,
            person_id=c.person_id,
            notice_sha256=c.notice_sha256,
            scope=list(c.scope or []),
            given_at=_iso(c.given_at),
        )
    rt.after_change()
    return out


class WithdrawIn(BaseModel):
    channel: Literal["front_desk", "web", "kiosk", "terminal", "app"] = "front_desk"


class IssuedOut(BaseModel):
    id: str
    kind: str
    token: str | None = Field(
        default=None, description="the QR pass token, shown only this once (a card has none)"
    )
    code: str | None = Field(
        default=None,
        description="the QR pass's short code to type at a kiosk or keypad (7KQ2M-XC94D), "
        "shown only this once; accepted in the decide API's `qr` field like the token",
    )
    valid_from: str | None = None
    valid_until: str | None = None
    max_uses: int | None = None


class WithdrawOut(BaseModel):
    person_id: str
    consents_withdrawn: int
    templates_erased: int
    key_destroyed: bool
    issued: IssuedOut | None = Field(
        description="a credential issued because the person had no other way in (PIPL-16)"
    )


def _issued(i: Any) -> IssuedOut:
    c = i.credential
    return IssuedOut(
        id=c.id,
        kind=c.kind,
        token=i.secret if c.kind == "qr" else None,
        code=i.code if c.kind == "qr" else None,
        valid_from=_iso(c.valid_from),
        valid_until=_iso(c.valid_until),
        max_uses=c.max_uses,
    )


@router.post(
    "/v1/persons/{person_id}/withdraw",
    response_model=WithdrawOut,
    tags=["people"],
    responses=error_responses(401, 403, 404),
)
def withdraw(
    body: WithdrawIn,
    request: Request,
    person_id: str = Id,
    principal: Principal = Depends(require("admin", "enroll", "rights")),
) -> WithdrawOut:
    """Withdraw consent: templates and key erased at once, every gate stops matching."""
    rt = _rt(request)
    _person(rt, principal, person_id)
    with rt.store.session() as s:
        r = domain.withdraw(s, actor=principal.actor, person_id=person_id, channel=body.channel)
        out = WithdrawOut(
            person_id=r.person_id,
            consents_withdrawn=r.consents_withdrawn,
            templates_erased=r.templates_erased,
            key_destroyed=r.key_destroyed,
            issued=_issued(r.issued) if r.issued else None,
        )
    rt.after_change()
    rt.dedup.forget(lambda k: k[1] == person_id)
    return out


class EnrollOut(BaseModel):
    person_id: str
    template_ids: list[str]
    model_id: str


_ENROLL_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image": {"type": "array", "items": {"type": "string", "format": "binary"}}
                    },
                    "required": ["image"],
                }
            }
        },
    }
}


@router.post(
    "/v1/persons/{person_id}/enroll",
    response_model=EnrollOut,
    status_code=201,
    tags=["people"],
    responses=error_responses(400, 401, 403, 404, 409, 413, 415, 503),
    openapi_extra=_ENROLL_BODY,
)
async def enroll(
    request: Request,
    person_id: str = Id,
    principal: Principal = Depends(require("admin", "enroll")),
) -> EnrollOut:
    """Enroll from 1-5 photos (strict quality); needs an active consent. Photos are not kept."""
    rt = _rt(request)
    await run_in_threadpool(_person, rt, principal, person_id)
    images = await read_images(request, rt.settings)
    try:
        result = await rt.pool.run(_enroll, rt, principal, person_id, images)
    finally:
        images.clear()  # STD-41819-04: no enrollment photo is retained
    await run_in_threadpool(rt.after_change)
    return EnrollOut(
        person_id=result.person_id, template_ids=result.template_ids, model_id=result.model_id
    )


def _enroll(rt: Any, principal: Principal, person_id: str, images: list[bytes]) -> Any:
    from facegate.api.gate import safe_decode
    from facegate.vision.decode import DEFAULT_LIMITS, check_request_pixels

    pipe = rt.pipeline
    limits = getattr(pipe, "limits", DEFAULT_LIMITS)
    check_request_pixels(images, rt.settings.max_request_pixels, limits)  # issue 13 item 3
    decoded = [safe_decode(pipe, b) for b in images]
    with rt.store.session() as s:
        site_id = domain.get_person(s, person_id).site_id
    site_gallery = rt.galleries.site(site_id).gallery
    with rt.store.session() as s:
        return domain.enroll(
            s,
            rt.galleries.loader.keyring,
            pipe,
            actor=principal.actor,
            person_id=person_id,
            images=decoded,
            site_gallery=site_gallery,
            source="document_photo",  # uploaded by an operator's key (issue 14)
        )


class CredentialIn(BaseModel):
    kind: Literal["card", "pin"]
    card_number: str | None = Field(default=None, min_length=1, max_length=100)
    pin: str | None = Field(default=None, min_length=4, max_length=12, pattern=r"^[0-9]+$")
    identifier: str | None = Field(
        default=None, max_length=100, description="whose PIN, e.g. the unit number"
    )
    access_point_ids: list[str] | None = Field(default=None, max_length=200)


@router.post(
    "/v1/persons/{person_id}/credentials",
    response_model=IssuedOut,
    status_code=201,
    tags=["people"],
    responses=error_responses(401, 403, 404, 409),
)
def add_credential(
    body: CredentialIn,
    request: Request,
    person_id: str = Id,
    principal: Principal = Depends(require("admin", "enroll")),
) -> IssuedOut:
    """Give a person a card or a PIN (stored hashed)."""
    from facegate.errors import InvalidInput

    rt = _rt(request)
    _person(rt, principal, person_id)
    _access_points(rt, principal, body.access_point_ids)
    with rt.store.session() as s:
        if body.kind == "card":
            if not body.card_number:
                raise InvalidInput("a card needs `card_number`")
            issued = domain.issue_card(
                s,
                actor=principal.actor,
                person_id=person_id,
                card_number=body.card_number,
                access_point_ids=body.access_point_ids,
            )
        else:
            if not body.pin:
                raise InvalidInput("a PIN credential needs `pin`")
            issued = domain.issue_pin(
                s,
                actor=principal.actor,
                person_id=person_id,
                pin=body.pin,
                identifier=body.identifier,
                access_point_ids=body.access_point_ids,
            )
        return _issued(issued)


class PassIn(BaseModel):
    person_id: str | None = Field(
        default=None, max_length=40, description="omit for a visitor who is not registered"
    )
    access_point_ids: list[str] | None = Field(default=None, max_length=200)
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    max_uses: int | None = Field(default=1, ge=1, le=10_000)


@router.post(
    "/v1/passes",
    response_model=IssuedOut,
    status_code=201,
    tags=["people"],
    responses=error_responses(401, 403, 404),
)
def issue_pass(
    body: PassIn, request: Request, principal: Principal = Depends(require("admin", "enroll"))
) -> IssuedOut:
    """Issue a time-boxed QR pass (single or multi use); no face needed."""
    from facegate.errors import InvalidInput

    rt = _rt(request)
    for v in (body.valid_from, body.valid_until):
        if v is not None and v.tzinfo is None:
            raise InvalidInput("times need a time zone (e.g. 2026-12-01T08:00:00Z)")
    person_id = body.person_id or None
    if person_id is not None:
        _person(rt, principal, person_id)
    _access_points(rt, principal, body.access_point_ids)
    with rt.store.session() as s:
        issued = domain.issue_qr_pass(
            s,
            actor=principal.actor,
            person_id=person_id,
            site_id=principal.site_id,
            access_point_ids=body.access_point_ids,
            valid_from=body.valid_from,
            valid_until=body.valid_until,
            max_uses=body.max_uses,
        )
        return _issued(issued)


# --- events -----------------------------------------------------------------------------------


class EventOut(BaseModel):
    id: int
    access_point_id: str | None
    subject: str | None
    method: str
    outcome: str
    reason: str
    request_id: str
    operator: str | None
    occurred_at: str | None


@router.get(
    "/v1/events",
    response_model=list[EventOut],
    tags=["admin"],
    responses=error_responses(401, 403),
)
def list_events(
    request: Request,
    principal: Principal = Depends(require("admin")),
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[EventOut]:
    """Recent access events of the key's site (no faces: none are kept)."""
    with _rt(request).store.session() as s:
        rows = domain.list_access_events(s, principal.site_id, limit)
        return [
            EventOut(
                id=e.id,
                access_point_id=e.access_point_id,
                subject=e.person_pseudonym,
                method=e.method,
                outcome=e.outcome,
                reason=e.reason,
                request_id=e.request_id,
                operator=e.operator,
                occurred_at=_iso(e.occurred_at),
            )
            for e in rows
        ]


# --- rights (PIPL-44..50) ---------------------------------------------------------------------


@router.post(
    "/v1/persons/{person_id}/export",
    response_model=dict[str, Any],
    tags=["rights"],
    responses=error_responses(401, 403, 404),
)
def export_person(
    request: Request, person_id: str = Id, principal: Principal = Depends(require("rights"))
) -> dict[str, Any]:
    """Everything kept about the person as JSON (no template, no image: none leave the site)."""
    rt = _rt(request)
    _person(rt, principal, person_id)
    with rt.store.session() as s:
        return domain.export_my_data(
            s,
            rt.settings,
            actor=principal.actor,
            person_id=person_id,
            keyring=rt.galleries.loader.keyring,
        )


class CorrectIn(BaseModel):
    name: str | None = Field(default=None, max_length=200)
    contact: str | None = Field(default=None, max_length=200)
    unit: str | None = Field(default=None, max_length=100)
    category: Literal["resident", "tenant", "guest", "staff", "visitor"] | None = None
    relationship_ends_at: datetime | None = None


@router.post(
    "/v1/persons/{person_id}/correct",
    response_model=PersonOut,
    tags=["rights"],
    responses=error_responses(401, 403, 404),
)
def correct_person(
    body: CorrectIn,
    request: Request,
    person_id: str = Id,
    principal: Principal = Depends(require("rights")),
) -> PersonOut:
    """Correct identity or relationship data (PIPL-46); the audit names fields, not values."""
    from facegate.errors import InvalidInput

    rt = _rt(request)
    _person(rt, principal, person_id)
    extra: dict[str, Any] = {}
    if body.relationship_ends_at is not None:
        if body.relationship_ends_at.tzinfo is None:
            raise InvalidInput("relationship_ends_at needs a time zone")
        extra["relationship_ends_at"] = body.relationship_ends_at
    with rt.store.session() as s:
        p = domain.correct(
            s,
            rt.settings,
            actor=principal.actor,
            person_id=person_id,
            name=body.name,
            contact=body.contact,
            unit=body.unit,
            category=body.category,
            keyring=rt.galleries.loader.keyring,
            **extra,
        )
        out = _person_out(p)
    rt.after_change()
    return out


class EraseOut(BaseModel):
    person_id: str
    templates_erased: int
    key_destroyed: bool
    credentials_removed: int
    request_id: str | None


@router.post(
    "/v1/persons/{person_id}/erase",
    response_model=EraseOut,
    tags=["rights"],
    responses=error_responses(401, 403, 404),
)
def erase_person(
    request: Request, person_id: str = Id, principal: Principal = Depends(require("rights"))
) -> EraseOut:
    """Erase a person (PIPL-47): templates, key, identity and credentials; irreversible."""
    rt = _rt(request)
    _person(rt, principal, person_id)
    with rt.store.session() as s:
        r = domain.erase(s, rt.settings, actor=principal.actor, person_id=person_id)
        out = EraseOut(
            person_id=r.person_id,
            templates_erased=r.templates_erased,
            key_destroyed=r.key_destroyed,
            credentials_removed=r.credentials_removed,
            request_id=r.request_id,
        )
    rt.after_change()
    rt.dedup.forget(lambda k: k[1] == person_id)
    return out


# --- notice -----------------------------------------------------------------------------------


class NoticeOut(BaseModel):
    version: int
    sha256: str
    language: str
    text: str
    fields: dict[str, Any]
    effective_at: str | None
    requires_reconsent: bool


def _notice_out(n: Any) -> NoticeOut:
    return NoticeOut(
        version=n.version,
        sha256=n.sha256,
        language=n.language,
        text=n.text,
        fields=dict(n.fields or {}),
        effective_at=_iso(n.effective_at),
        requires_reconsent=bool(n.requires_reconsent),
    )


@router.get(
    "/v1/notices/current",
    response_model=NoticeOut,
    tags=["notice"],
    responses=error_responses(401, 403, 404),
)
def current_notice(
    request: Request, principal: Principal = Depends(require("admin", "enroll", "rights"))
) -> NoticeOut:
    """The notice people consent to (CAC-FR-05a)."""
    with _rt(request).store.session() as s:
        n = domain.current_notice(s, principal.site_id)
        if n is None:
            raise NotFound("this site has no published notice yet")
        return _notice_out(n)


class NoticeIn(BaseModel):
    fields: dict[str, dict[str, str]] = Field(
        description="N1..N13, each a dict of named parts (see `GET /v1/notices/current`)"
    )
    language: str = Field(default="en", max_length=16, pattern=r"^[A-Za-z-]+$")


@router.post(
    "/v1/notices",
    response_model=NoticeOut,
    status_code=201,
    tags=["notice"],
    responses=error_responses(401, 403, 404, 409),
)
def publish_notice(
    body: NoticeIn, request: Request, principal: Principal = Depends(require("admin"))
) -> NoticeOut:
    """Publish a new notice version; a changed re-consent trigger makes consents need renewal
    and their templates stop matching at once (CAC-FR-05b). A notice lacking a required field
    is refused with 422 `notice_incomplete` naming the fields: save it with
    `POST /v1/notices/drafts` instead (CAC-FR-05a)."""
    rt = _rt(request)
    with rt.store.session() as s:
        n = domain.publish_notice(
            s, principal.site_id, body.fields, actor=principal.actor, language=body.language
        )
        out = _notice_out(n)
    rt.after_change()
    return out


# --- API keys (issue 13 item 9, issue 16 item 4) ----------------------------------------------


class KeyIn(BaseModel):
    scopes: list[Literal["gate:decide", "admin", "enroll", "rights"]] = Field(min_length=1)
    # A gate:decide key names the access points it serves, unless all_access_points is true.
    access_point_ids: (
        list[Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._-]+$")]]
        | None
    ) = Field(default=None, max_length=100)
    all_access_points: bool = False
    name: str = Field(default="", max_length=100)
    expires_at: datetime | None = None


class KeyOut(BaseModel):
    id: str
    name: str
    scopes: list[str]
    site_id: str
    access_point_ids: list[str] | None
    created_at: str | None
    last_used_at: str | None
    expires_at: str | None
    revoked_at: str | None


class NewKeyOut(KeyOut):
    key: str = Field(description="the secret, shown once; only its SHA-256 is stored")


def _key_out(k: Any) -> dict[str, Any]:
    return {
        "id": k.id,
        "name": k.name,
        "scopes": list(k.scopes or []),
        "site_id": k.site_id,
        "access_point_ids": k.access_point_ids,
        "created_at": _iso(k.created_at),
        "last_used_at": _iso(k.last_used_at),
        "expires_at": _iso(k.expires_at),
        "revoked_at": _iso(k.revoked_at),
    }


@router.post(
    "/v1/keys",
    response_model=NewKeyOut,
    status_code=201,
    tags=["admin"],
    responses=error_responses(401, 403, 404, 422),
)
def create_key(
    body: KeyIn, request: Request, principal: Principal = Depends(require("admin"))
) -> NewKeyOut:
    """Make an API key for this key's site. A gate:decide key is bound to the access points
    it names; a key valid at every access point needs ``all_access_points: true``."""
    rt = _rt(request)
    _access_points(rt, principal, body.access_point_ids)  # 404 unknown, 403 another site's
    expires = body.expires_at
    if expires is not None and expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    with rt.store.session() as s:
        row, secret = domain.create_api_key(
            s,
            actor=principal.actor,
            scopes=body.scopes,
            site_id=principal.site_id,
            access_point_ids=body.access_point_ids or None,
            all_access_points=body.all_access_points,
            name=body.name,
            expires_at=expires,
        )
        return NewKeyOut(key=secret, **_key_out(row))


@router.get(
    "/v1/keys", response_model=list[KeyOut], tags=["admin"], responses=error_responses(401, 403)
)
def list_keys(request: Request, principal: Principal = Depends(require("admin"))) -> list[KeyOut]:
    """This site's keys with their last use and expiry (never their secrets)."""
    with _rt(request).store.session() as s:
        return [KeyOut(**_key_out(k)) for k in domain.list_api_keys(s, principal.site_id)]


@router.post(
    "/v1/keys/{key_id}/revoke",
    response_model=KeyOut,
    tags=["admin"],
    responses=error_responses(401, 403, 404),
)
def revoke_key(
    request: Request,
    key_id: str = Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._-]+$"),
    principal: Principal = Depends(require("admin")),
) -> KeyOut:
    """Revoke one of this site's keys; it is refused from the next request on."""
    with _rt(request).store.session() as s:
        if key_id not in {k.id for k in domain.list_api_keys(s, principal.site_id)}:
            raise NotFound(f"no API key {key_id!r}")
        return KeyOut(**_key_out(domain.revoke_api_key(s, actor=principal.actor, key_id=key_id)))


class NoticeDraftOut(BaseModel):
    fields: dict[str, Any]
    text: str
    language: str
    missing: list[str] = Field(description="required fields N1..N13 still missing")
    missing_en: str = Field(description="the missing fields, in English")
    missing_zh: str = Field(description="the missing fields, in Chinese")
    publishable: bool
    saved_at: str | None


def _draft_out(d: Any) -> NoticeDraftOut:
    missing = domain.missing_notice_fields(d.fields or {})
    zh, en = domain.describe_missing(missing)
    return NoticeDraftOut(
        fields=dict(d.fields or {}),
        text=d.text,
        language=d.language,
        missing=list(d.missing or []),
        missing_en=en,
        missing_zh=zh,
        publishable=not missing,
        saved_at=_iso(d.saved_at),
    )


@router.post(
    "/v1/notices/drafts",
    response_model=NoticeDraftOut,
    status_code=201,
    tags=["notice"],
    responses=error_responses(401, 403, 404),
)
def save_notice_draft(
    body: NoticeIn, request: Request, principal: Principal = Depends(require("admin"))
) -> NoticeDraftOut:
    """Save a notice as a draft and preview it, complete or not (CAC-FR-05a): a draft is
    never published, never consented to and changes no consent."""
    with _rt(request).store.session() as s:
        d = domain.save_notice_draft(
            s, principal.site_id, body.fields, actor=principal.actor, language=body.language
        )
        return _draft_out(d)


@router.get(
    "/v1/notices/draft",
    response_model=NoticeDraftOut,
    tags=["notice"],
    responses=error_responses(401, 403, 404),
)
def get_notice_draft(
    request: Request, principal: Principal = Depends(require("admin"))
) -> NoticeDraftOut:
    """The site's saved draft with what it still lacks."""
    with _rt(request).store.session() as s:
        d = domain.notice_draft(s, principal.site_id)
        if d is None:
            raise NotFound("this site has no notice draft")
        return _draft_out(d)
