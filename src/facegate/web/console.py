"""Operator console pages. Each handler parses a form, calls one domain function, renders."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from facegate import audit
from facegate.api.uploads import read_file_form, read_photo_form
from facegate.domain import (
    add_access_point,
    add_person,
    enroll,
    issue_card,
    issue_qr_pass,
    list_api_keys,
    list_persons,
    make_kiosk_key,
    person_summary,
    record_consent,
    revoke_api_key,
    revoke_credential,
    search_persons,
    withdraw,
)
from facegate.domain.accounts import (
    authenticate,
    check_site_visible,
    close_session,
    create_first_admin,
    create_operator,
    has_operators,
    list_operators,
    lookup_session,
    open_session,
    operator_for,
    operator_site_map,
    remember_device,
    require_role,
    visible_person,
    visible_rights_request,
    visible_sites,
)
from facegate.domain.activation import site_overview
from facegate.domain.identities import Identity, identities_of
from facegate.domain.importing import MAX_FILE_BYTES as MAX_IMPORT_BYTES
from facegate.domain.importing import ImportRefused, import_people, read_table
from facegate.domain.rights import (
    erase,
    export_my_data,
    list_rights_requests,
    reject_rights_request,
)
from facegate.domain.selfservice import create_invitation, face_states, recent_access_events
from facegate.errors import (
    Conflict,
    FacegateError,
    Forbidden,
    InvalidInput,
    LoginThrottled,
    NotFound,
    SetupCodeInvalid,
    Unauthorized,
)
from facegate.store.models import ACCESS_POINT_KINDS, CATEGORIES, METHODS
from facegate.web.common import (
    DEVICE_COOKIE,
    OPERATOR_COOKIE,
    PRE_CSRF_COOKIE,
    Redirect,
    WebFailure,
    check_csrf,
    keyring,
    pre_csrf,
    public_base,
    qr_pass_context,
    redirect,
    refusal_words,
    render,
    runtime,
    set_cookie,
    translator,
    with_pre_csrf,
)
from facegate.web.faces import (
    decode_upload,
    enroll_from_camera,
    issue_challenge,
    quality_feedback,
)

router = APIRouter(include_in_schema=False)

STAFF = ("admin", "operator")
ANY_ROLE = ("admin", "operator", "auditor")
LOCATION_TYPES = (
    "entrance",
    "lobby",
    "corridor",
    "elevator",
    "parking",
    "guest_room",
    "bathroom",
    "sales_office",
    "public_area",
)


PSEUDONYM = re.compile(r"\bp-[0-9a-f]{16}\b")

# Refusals the people pages meet most, as sentences in zh-CN and en (web/i18n.py): by the
# error's exact message first, else by its stable code.
_REFUSAL_BY_MESSAGE = {
    "this card number is already in use at this site": "r_card_in_use",
    "card number is empty": "r_card_empty",
    "the person must have read the notice and said yes themselves": "r_read_notice",
    "the birth date must look like 2015-06-30": "r_birth_date",
    "birth date is in the future": "r_birth_future",
}
_REFUSAL_BY_CODE = {
    "consent_required": "r_consent_required",
    "guardian_consent_required": "r_guardian_consent",
    "key_unavailable": "r_key_unavailable",
    "enrollment_not_allowed": "r_enrollment_not_allowed",
}


def refusal_key(exc: FacegateError) -> str | None:
    return _REFUSAL_BY_MESSAGE.get(exc.message) or _REFUSAL_BY_CODE.get(exc.code)


class Ctx:
    """The signed-in operator for one request."""

    def __init__(self, request: Request, roles: tuple[str, ...]) -> None:
        self.request = request
        self.rt = runtime(request)
        with self.rt.store.session() as s:
            if not has_operators(s):
                raise Redirect("/console/setup")
            ws = lookup_session(s, request.cookies.get(OPERATOR_COOKIE), "operator")
            if ws is None:
                raise Redirect("/console/login")
            account = operator_for(s, ws)
            self.username, self.role, self.csrf = account.username, account.role, ws.csrf_token
            # Issue 13 item 8: operators and auditors see only the sites they work for.
            self.sites = visible_sites(s, account)
            try:
                require_role(account, *roles)
            except Forbidden as exc:
                words = refusal_words(translator(request), exc)
                raise WebFailure(403, "error_title", words, "/console", self.nav) from None

    @property
    def nav(self) -> dict[str, Any]:
        """What base.html needs to draw the navigation (refusal pages keep it too)."""
        return {"me": self.username, "role": self.role}

    @property
    def staff(self) -> bool:
        return self.role in STAFF

    def names(self, s: Any, person_ids: list[str]) -> dict[str, Identity]:
        """Names and units for operators; none for auditors (issue 16 item 11). Opened in
        memory with the site key, never beside templates."""
        if not self.staff:
            return {}
        return identities_of(s, keyring(self.request), person_ids)

    def fail(self, exc: FacegateError, back: str) -> WebFailure:
        """A refusal page in the reader's language, with the navigation, and the names of
        the people it speaks of instead of their pseudonyms."""
        tr = translator(self.request)
        key = refusal_key(exc)
        words = tr(key) if key else refusal_words(tr, exc)
        ids = sorted(set(PSEUDONYM.findall(words)))
        if ids and self.staff:
            try:
                with self.rt.store.session() as s:
                    known = self.names(s, [i for i in ids if self._visible(s, i)])
            except FacegateError:
                known = {}
            for pid, ident in known.items():
                if ident.name:
                    words = words.replace(pid, ident.name)
        return WebFailure(exc.http_status, "error_title", words, back, self.nav)

    def _visible(self, s: Any, person_id: str) -> bool:
        try:
            visible_person(s, self.sites, person_id)
        except NotFound:
            return False
        return True

    @property
    def actor(self) -> str:
        return f"web:{self.username}"

    def page(self, name: str, context: dict[str, Any] | None = None, status: int = 200):
        ctx = dict(self.nav)
        ctx.update(context or {})
        return render(self.request, name, ctx, status=status, csrf=self.csrf)

    def check(self, form: Any) -> None:
        check_csrf(form.get("csrf"), self.csrf)

    def person(self, person_id: str, back: str = "/console/people") -> None:
        """Refuse (404 page) a person outside the sites this account works for."""
        try:
            with self.rt.store.session() as s:
                visible_person(s, self.sites, person_id)
        except NotFound:
            raise self.not_here(person_id, back) from None

    def not_here(self, person_id: str, back: str = "/console/people") -> WebFailure:
        words = translator(self.request)("person_not_here").replace("{id}", person_id[:40])
        return WebFailure(404, "error_title", words, back, self.nav)

    def overview(self, s: Any) -> list[dict[str, Any]]:
        return site_overview(s, self.sites)


# --- first run, sign in, sign out ------------------------------------------------------------


@router.get("/console/setup", response_class=HTMLResponse)
def setup_page(request: Request) -> Response:
    with runtime(request).store.session() as s:
        if has_operators(s):
            return redirect("/console/login")
    token = pre_csrf(request)
    minutes = runtime(request).settings.web_setup_code_minutes
    resp = render(request, "setup.html", {"minutes": minutes}, csrf=token)
    return with_pre_csrf(request, resp, token)


@router.post("/console/setup")
async def setup_submit(request: Request) -> Response:
    form = await request.form()
    check_csrf(form.get("csrf"), request.cookies.get(PRE_CSRF_COOKIE))
    rt = runtime(request)
    username = str(form.get("username", ""))
    try:
        with rt.store.session() as s:
            # Issue 13 item 6: the one-time code printed on the machine, not "first come".
            account = create_first_admin(
                s,
                username=username,
                password=str(form.get("password", "")),
                setup_code=str(form.get("setup_code", ""))[:40],
            )
            # Whoever just proved the code and chose the password is signed in (issue 16,
            # measured path: no second form asking for what was typed a moment ago).
            device = remember_device(
                s, rt.settings, operator_id=account.id, token=request.cookies.get(DEVICE_COOKIE)
            )
            opened = open_session(
                s,
                kind="operator",
                subject_id=account.id,
                lifetime=timedelta(hours=rt.settings.web_session_hours),
            )
    except FacegateError as exc:
        token = pre_csrf(request)
        ctx: dict[str, Any] = {
            "username": username,
            "minutes": rt.settings.web_setup_code_minutes,
        }
        if isinstance(exc, SetupCodeInvalid):
            ctx["error_key"] = "setup_code_invalid"
        elif isinstance(exc, Conflict):
            return redirect("/console/login")
        else:
            ctx["error"] = refusal_words(translator(request), exc)
        resp = render(request, "setup.html", ctx, status=exc.http_status, csrf=token)
        return with_pre_csrf(request, resp, token)
    resp = redirect("/console")
    set_cookie(request, resp, OPERATOR_COOKIE, opened.token, rt.settings.web_session_hours * 3600)
    set_cookie(request, resp, DEVICE_COOKIE, device, rt.settings.web_known_device_days * 86400)
    return resp


@router.get("/console/login", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    with runtime(request).store.session() as s:
        if not has_operators(s):
            return redirect("/console/setup")
    token = pre_csrf(request)
    return with_pre_csrf(request, render(request, "login.html", csrf=token), token)


@router.post("/console/login")
async def login_submit(request: Request) -> Response:
    form = await request.form()
    check_csrf(form.get("csrf"), request.cookies.get(PRE_CSRF_COOKIE))
    rt = runtime(request)
    try:
        with rt.store.session() as s:
            # Throttled per name and per address, the same answer for unknown names (item 7).
            account = authenticate(
                s,
                rt.settings,
                username=str(form.get("username", ""))[:64],
                password=str(form.get("password", ""))[:1024],
                client=request.client.host if request.client else "",
                device_token=request.cookies.get(DEVICE_COOKIE),
            )
            device = remember_device(
                s, rt.settings, operator_id=account.id, token=request.cookies.get(DEVICE_COOKIE)
            )
            opened = open_session(
                s,
                kind="operator",
                subject_id=account.id,
                lifetime=timedelta(hours=rt.settings.web_session_hours),
            )
    except FacegateError as exc:
        token = pre_csrf(request)
        ctx: dict[str, Any] = {"error": refusal_words(translator(request), exc)}
        headers = {}
        if isinstance(exc, LoginThrottled):
            ctx = {"error_key": "login_throttled", "retry_after": exc.retry_after_s}
            headers["Retry-After"] = str(exc.retry_after_s)
        elif isinstance(exc, Unauthorized):
            ctx = {"error_key": "login_failed"}
        resp = render(request, "login.html", ctx, status=exc.http_status, csrf=token)
        resp.headers.update(headers)
        return with_pre_csrf(request, resp, token)
    resp = redirect("/console")
    set_cookie(request, resp, OPERATOR_COOKIE, opened.token, rt.settings.web_session_hours * 3600)
    set_cookie(request, resp, DEVICE_COOKIE, device, rt.settings.web_known_device_days * 86400)
    return resp


@router.post("/console/logout")
async def logout(request: Request) -> Response:
    c = Ctx(request, ANY_ROLE)
    c.check(await request.form())
    with c.rt.store.session() as s:
        close_session(s, request.cookies.get(OPERATOR_COOKIE))
    resp = redirect("/console/login")
    resp.delete_cookie(OPERATOR_COOKIE, path="/")
    return resp


# --- overview, sites and access points ----------------------------------------------------------


@router.get("/", include_in_schema=False)
def root() -> Response:
    return redirect("/console")


@router.get("/console", response_class=HTMLResponse)
def home(request: Request) -> Response:
    c = Ctx(request, ANY_ROLE)
    from facegate.compliance.live import next_steps

    with c.rt.store.session() as s:
        overview = c.overview(s)
        try:
            steps = next_steps(s, c.rt.settings, c.sites)
        except FacegateError:  # e.g. an unreadable facts file: the compliance page says why
            steps = {}
    return c.page("home.html", {"ov": overview, "steps": steps})


@router.get("/console/sites", response_class=HTMLResponse)
def sites(request: Request) -> Response:
    c = Ctx(request, ANY_ROLE)
    with c.rt.store.session() as s:
        overview = c.overview(s)
    return c.page(
        "sites.html",
        {
            "ov": overview,
            "kinds": ACCESS_POINT_KINDS,
            "methods": METHODS,
            "locations": LOCATION_TYPES,
            "error": request.query_params.get("error"),
        },
    )


@router.post("/console/access-points", response_class=HTMLResponse)
async def add_ap(request: Request) -> Response:
    c = Ctx(request, ("admin",))
    form = await request.form()
    c.check(form)
    try:
        with c.rt.store.session() as s:
            # The face-only refusal (CAC-FR-10) comes from the domain function itself.
            add_access_point(
                s,
                actor=c.actor,
                name=str(form.get("name", "")).strip() or "entrance",
                kind=str(form.get("kind", "gate")),
                methods=[str(m) for m in form.getlist("methods")],
                location_type=str(form.get("location_type", "entrance")),
            )
    except FacegateError as exc:
        with c.rt.store.session() as s:
            overview = c.overview(s)
        return c.page(
            "sites.html",
            {
                "ov": overview,
                "kinds": ACCESS_POINT_KINDS,
                "methods": METHODS,
                "locations": LOCATION_TYPES,
                "error": refusal_words(translator(request), exc),
            },
            status=exc.http_status,
        )
    return redirect("/console/sites")


@router.post("/console/access-points/{ap_id}/face", response_class=HTMLResponse)
async def face_switch(request: Request, ap_id: str) -> Response:
    c = Ctx(request, ("admin",))
    form = await request.form()
    c.check(form)
    try:
        with c.rt.store.session() as s:
            from facegate.compliance.live import set_face

            # The activation gate refuses while a blocking rule fails (ENF-2025, issue 7).
            set_face(
                s,
                c.rt.settings,
                actor=c.actor,
                site_id=str(form.get("site_id", "")),
                access_point_id=ap_id,
                enabled=form.get("on") == "1",
            )
        c.rt.after_change()
    except FacegateError as exc:
        # A refusal names the failing rules; the steps that fix them are on the docs page.
        back = "/console/docs" if exc.code == "compliance_blocked" else "/console/sites"
        raise c.fail(exc, back) from None
    return redirect("/console/sites")


@router.post("/console/access-points/{ap_id}/liveness", response_class=HTMLResponse)
async def liveness_switch(request: Request, ap_id: str) -> Response:
    """Set the access point's liveness check; `off` only with a credential (issue 14)."""
    from facegate.domain import set_access_point_liveness

    c = Ctx(request, ("admin",))
    form = await request.form()
    c.check(form)
    try:
        with c.rt.store.session() as s:
            set_access_point_liveness(
                s,
                actor=c.actor,
                access_point_id=ap_id,
                policy=str(form.get("liveness", "")),
                sites=c.sites,
            )
        c.rt.after_change()
    except FacegateError as exc:
        raise c.fail(exc, "/console/sites") from None
    return redirect("/console/sites")


@router.post("/console/access-points/{ap_id}/kiosk", response_class=HTMLResponse)
async def kiosk_key(request: Request, ap_id: str) -> Response:
    c = Ctx(request, ("admin",))
    form = await request.form()
    c.check(form)
    try:
        with c.rt.store.session() as s:
            # The access point's own site, any number of sites; a new link for the same
            # access point revokes the previous one (issue 13 items 9, 10).
            _, secret = make_kiosk_key(s, actor=c.actor, access_point_id=ap_id)
    except NotFound:
        words = translator(request)("kiosk_no_ap").replace("{id}", ap_id[:40])
        raise WebFailure(404, "error_title", words, "/console/sites") from None
    except FacegateError as exc:
        raise c.fail(exc, "/console/sites") from None
    base = public_base(request)
    # The key travels in the fragment: browsers never send it to a server or a log.
    return c.page(
        "shown_once.html",
        {
            "label": "kiosk_link_once",
            "link": f"{base}/kiosk/{ap_id}#key={secret}",
            "back": "/console/sites",
        },
    )


# --- people ------------------------------------------------------------------------------------


def _people_page(c: Ctx, query: str = "", status: int = 200, **extra: Any) -> Response:
    """The people list: search by name, unit, card number or pseudonym (issue 16 item 11).
    Operators see names and units; auditors only pseudonyms (and find by card or pseudonym)."""
    query = query.strip()[:100]
    try:
        with c.rt.store.session() as s:
            kr = keyring(c.request) if c.staff else None
            persons = search_persons(s, kr, query=query, site_ids=c.sites)
            states = face_states(s, [p.id for p in persons])
            rows = [person_summary(s, p.id) for p in persons]
            names = c.names(s, [p.id for p in persons])
            sites = c.overview(s)
    except FacegateError as exc:
        raise c.fail(exc, "/console") from None
    ctx = {
        "rows": rows,
        "states": states,
        "names": names,
        "q": query,
        "categories": CATEGORIES,
        "sites": sites,
        "typed": {},
    }
    ctx.update(extra)
    return c.page("people.html", ctx, status=status)


@router.get("/console/people", response_class=HTMLResponse)
def people(request: Request) -> Response:
    c = Ctx(request, ANY_ROLE)
    return _people_page(c, request.query_params.get("q", ""))


@router.post("/console/people", response_class=HTMLResponse)
async def people_add(request: Request) -> Response:
    c = Ctx(request, STAFF)
    form = await request.form()
    c.check(form)
    typed = {k: str(form.get(k) or "")[:200] for k in ("category", "name", "unit", "birth_date")}
    typed["site_id"] = str(form.get("site_id") or "")[:40]
    try:
        birth = str(form.get("birth_date") or "").strip()
        try:
            birth_date = date.fromisoformat(birth) if birth else None
        except ValueError:
            raise InvalidInput(
                "the birth date must look like 2015-06-30", zh="出生日期格式应为 2015-06-30"
            ) from None
        site_id = str(form.get("site_id") or "").strip() or None
        with c.rt.store.session() as s:
            if site_id is None and c.sites is not None and len(c.sites) == 1:
                site_id = next(iter(c.sites))
            if site_id is not None or c.sites is not None:
                check_site_visible(c.sites, site_id)
            person = add_person(
                s,
                actor=c.actor,
                site_id=site_id,
                category=str(form.get("category", "resident")),
                birth_date=birth_date,
                name=str(form.get("name", "")).strip(),
                unit=str(form.get("unit", "")).strip(),
                keyring=keyring(request),
            )
    except FacegateError as exc:
        # Refused: the same page with what was typed still in the form, and why.
        refusal = c.fail(exc, "/console/people").message
        return _people_page(c, status=exc.http_status, typed=typed, error=refusal)
    return redirect(f"/console/people/{person.id}?done=person_added")


IMPORT_MODES = ("check", "import", "skip_invalid")


@router.post("/console/people/import", response_class=HTMLResponse)
async def people_import(request: Request) -> Response:
    """Bulk import from a CSV or .xlsx export (issue 16 item 12, in the console): every row
    checked first, nothing written unless all are valid (or "import the valid rows only").
    The per-row problems are listed in the reader's language (issue 16 item 7). The file is
    parsed in memory: a list of residents never goes to a temporary file."""
    c = Ctx(request, STAFF)
    lang = translator(request).lang
    try:
        data, fields = await read_file_form(request, MAX_IMPORT_BYTES, ("csrf", "mode", "site_id"))
    except FacegateError as exc:
        raise c.fail(exc, "/console/people") from None
    c.check(fields)
    mode = fields.get("mode", "check")
    mode = mode if mode in IMPORT_MODES else "check"
    try:
        if not data.strip():
            raise InvalidInput("choose a file", zh="请选择文件")
        raw = read_table(data, "upload.csv")
        site_id = fields.get("site_id", "").strip() or None
        if site_id is None and c.sites is not None and len(c.sites) == 1:
            site_id = next(iter(c.sites))
        if site_id is not None or c.sites is not None:
            check_site_visible(c.sites, site_id)
        with c.rt.store.session() as s:
            res = import_people(
                s,
                raw,
                actor=c.actor,
                site_id=site_id,
                dry_run=mode == "check",
                skip_invalid=mode == "skip_invalid",
                keyring=None if mode == "check" else keyring(request),
            )
    except ImportRefused as exc:
        res = exc.result
        return _people_page(
            c,
            status=exc.http_status,
            import_error=translator(request)("import_refused")
            .replace("{n}", str(len(res.errors)))
            .replace("{rows}", str(res.rows)),
            import_problems=[e.text(lang) for e in res.errors[:200]],
        )
    except FacegateError as exc:
        refusal = c.fail(exc, "/console/people").message
        return _people_page(c, status=exc.http_status, import_error=refusal)
    if res.written:
        c.rt.after_change()
    key = "import_checked" if mode == "check" else "import_done"
    words = (
        translator(request)(key)
        .replace("{rows}", str(res.rows))
        .replace("{valid}", str(res.valid))
        .replace("{n}", str(len(res.person_ids)))
    )
    return _people_page(
        c,
        import_status=words,
        import_problems=[e.text(lang) for e in res.errors[:200]],
    )


DONE = (
    "person_added",
    "card_issued",
    "consent_recorded",
    "enroll_done",
    "withdraw_done",
    "qr_issued",
    "credential_revoked_done",
)


def _person_page(c: Ctx, person_id: str, status: int = 200, **extra: Any) -> Response:
    try:
        with c.rt.store.session() as s:
            try:
                person = visible_person(s, c.sites, person_id)
            except NotFound:
                raise c.not_here(person_id) from None
            summary = person_summary(s, person_id, model_id=None)
            state = face_states(s, [person_id])[person_id]
            events = recent_access_events(s, person_id=person_id, limit=20)
            others = [p for p in list_persons(s, site_id=person.site_id) if p.id != person_id]
            names = c.names(s, [person_id, *(g["guardian_id"] for g in summary["guardians"])])
    except FacegateError as exc:
        raise c.fail(exc, "/console/people") from None
    flash = extra.pop("flash", None)
    flash_text = ""
    if flash in DONE:
        flash_text = translator(c.request)(flash)
        if flash == "card_issued":  # the newest card, as the operator typed it
            cards = [x for x in summary["credentials"] if x["kind"] == "card"]
            number = cards[-1]["identifier"] if cards else ""
            flash_text = flash_text.replace("{card}", str(number))
    ctx = {
        "p": summary,
        "state": state,
        "events": events,
        "others": others,
        "names": names,
        "flash_text": flash_text,
        "typed": {},
    }
    ctx.update(extra)
    return c.page("person.html", ctx, status=status)


@router.get("/console/people/{person_id}", response_class=HTMLResponse)
def person_page(request: Request, person_id: str) -> Response:
    return _person_page(Ctx(request, ANY_ROLE), person_id, flash=request.query_params.get("done"))


@router.post("/console/people/{person_id}/card", response_class=HTMLResponse)
async def person_card(request: Request, person_id: str) -> Response:
    c = Ctx(request, STAFF)
    form = await request.form()
    c.check(form)
    c.person(person_id)
    number = str(form.get("card_number", "")).strip()
    try:
        with c.rt.store.session() as s:
            issue_card(s, actor=c.actor, person_id=person_id, card_number=number)
    except FacegateError as exc:
        # Refused: the person's page again, the number still typed in, and why.
        refusal = c.fail(exc, f"/console/people/{person_id}").message
        return _person_page(
            c,
            person_id,
            status=exc.http_status,
            typed={"card_number": number[:100]},
            card_error=refusal,
        )
    return redirect(f"/console/people/{person_id}?done=card_issued")


@router.post("/console/people/{person_id}/consent", response_class=HTMLResponse)
async def person_consent(request: Request, person_id: str) -> Response:
    """Consent given in person at the desk: its own act, after reading the notice (CAC-FR-06a)."""
    c = Ctx(request, STAFF)
    form = await request.form()
    c.check(form)
    c.person(person_id)
    try:
        if form.get("read_notice") != "yes":
            raise InvalidInput(
                "the person must have read the notice and said yes themselves",
                zh="须由本人阅读告知书并亲自表示同意",
            )
        guardian = str(form.get("guardian_id") or "").strip() or None
        if guardian:
            c.person(guardian, f"/console/people/{person_id}")
        with c.rt.store.session() as s:
            record_consent(
                s,
                actor=c.actor,
                person_id=person_id,
                channel="front_desk",
                guardian_id=guardian,
            )
        c.rt.after_change()
    except FacegateError as exc:
        raise c.fail(exc, f"/console/people/{person_id}") from None
    return redirect(f"/console/people/{person_id}?done=consent_recorded")


@router.post("/console/people/{person_id}/invite", response_class=HTMLResponse)
async def person_invite(request: Request, person_id: str) -> Response:
    c = Ctx(request, STAFF)
    form = await request.form()
    c.check(form)
    c.person(person_id)
    guardian = str(form.get("guardian_id") or "").strip() or None
    if guardian:
        c.person(guardian, f"/console/people/{person_id}")
    try:
        with c.rt.store.session() as s:
            issued = create_invitation(
                s, c.rt.settings, actor=c.actor, person_id=person_id, guardian_id=guardian
            )
    except FacegateError as exc:
        raise c.fail(exc, f"/console/people/{person_id}") from None
    from facegate.compliance.documents import qr_svg
    from facegate.domain.links import HOW_TO_FIX, url_problem

    base = public_base(request)
    link = f"{base}/i/{issued.token}"
    # The link works on this machine; a QR code to print only with an address a phone can
    # open (issue 16 item 9), else the sentence saying how to fix it.
    problem = url_problem(base)
    zh = translator(request).lang == "zh-CN"
    return c.page(
        "shown_once.html",
        {
            "label": "invite_once",
            "link": link,
            "qr": qr_svg(link, scale=5) if problem is None else None,
            "qr_problem": (problem[0] + HOW_TO_FIX[0] if zh else f"{problem[1]} {HOW_TO_FIX[1]}")
            if problem
            else "",
            "back": f"/console/people/{person_id}",
        },
    )


@router.post("/console/people/{person_id}/enroll", response_class=HTMLResponse)
async def person_enroll(request: Request, person_id: str) -> Response:
    c = Ctx(request, STAFF)
    try:  # parsed in memory: a photo never goes to a temporary file (principle 3)
        data, fields = await read_photo_form(request, c.rt.settings)
    except FacegateError as exc:
        raise c.fail(exc, f"/console/people/{person_id}") from None
    c.check(fields)
    c.person(person_id)
    try:
        image = decode_upload(c.rt, data)
        data = b""  # STD-41819-04: nothing of the photo outlives this request
        with c.rt.store.session() as s:
            enroll(
                s,
                keyring(request),
                c.rt.pipeline,
                actor=c.actor,
                person_id=person_id,
                images=[image],
                source="document_photo",  # an uploaded photo: no liveness vouches for it
            )
        c.rt.after_change()  # the gallery follows at once (SQLite: the only path)
    except FacegateError as exc:
        raise c.fail(exc, f"/console/people/{person_id}") from None
    finally:
        del data
    return _person_page(c, person_id, flash="enroll_done")


@router.post("/console/people/{person_id}/withdraw", response_class=HTMLResponse)
async def person_withdraw(request: Request, person_id: str) -> Response:
    c = Ctx(request, STAFF)
    form = await request.form()
    c.check(form)
    c.person(person_id)
    try:
        with c.rt.store.session() as s:
            result = withdraw(s, actor=c.actor, person_id=person_id, channel="front_desk")
        c.rt.after_change()  # every gate stops matching them now
    except FacegateError as exc:
        raise c.fail(exc, f"/console/people/{person_id}") from None
    # A person left with no other way in gets a QR pass: shown here once (issue 16 item 10).
    return _person_page(
        c, person_id, flash="withdraw_done", **qr_pass_context(result.issued, c.rt.store)
    )


@router.post("/console/people/{person_id}/qr-pass", response_class=HTMLResponse)
async def person_qr_pass(request: Request, person_id: str) -> Response:
    """A QR pass for the person, shown once as a picture and a short code (issue 16.10)."""
    c = Ctx(request, STAFF)
    c.check(await request.form())
    c.person(person_id)
    try:
        with c.rt.store.session() as s:
            issued = issue_qr_pass(s, actor=c.actor, person_id=person_id)
    except FacegateError as exc:
        raise c.fail(exc, f"/console/people/{person_id}") from None
    return _person_page(c, person_id, flash="qr_issued", **qr_pass_context(issued, c.rt.store))


@router.post(
    "/console/people/{person_id}/credentials/{credential_id}/revoke",
    response_class=HTMLResponse,
)
async def person_credential_revoke(
    request: Request, person_id: str, credential_id: str
) -> Response:
    """Revoke one of the person's credentials (a QR pass: its short code with it)."""
    c = Ctx(request, STAFF)
    c.check(await request.form())
    c.person(person_id)
    try:
        with c.rt.store.session() as s:
            mine = person_summary(s, person_id, model_id=None)["credentials"]
            if credential_id not in {x["id"] for x in mine}:
                raise NotFound(
                    f"no credential {credential_id!r} for this person", zh="此人没有这张凭证"
                )
            revoke_credential(s, actor=c.actor, credential_id=credential_id)
    except FacegateError as exc:
        raise c.fail(exc, f"/console/people/{person_id}") from None
    return redirect(f"/console/people/{person_id}?done=credential_revoked_done")


@router.post("/console/people/{person_id}/enroll-challenge")
def person_enroll_challenge(request: Request, person_id: str) -> Response:
    """A random prompt for the person at the front-desk webcam (issue 14 item 3)."""
    c = Ctx(request, STAFF)
    check_csrf(request.headers.get("x-csrf-token"), c.csrf)
    c.person(person_id)
    return issue_challenge(request, person_id)


@router.post("/console/people/{person_id}/enroll-camera")
async def person_enroll_camera(request: Request, person_id: str) -> Response:
    """Front-desk webcam enrollment: the frames taken while the person followed the prompt,
    with its nonce (multipart), JSON back; the same path as self-service enrollment."""
    c = Ctx(request, STAFF)
    check_csrf(request.headers.get("x-csrf-token"), c.csrf)
    c.person(person_id)
    return await enroll_from_camera(
        request, c.rt, keyring(request), person_id=person_id, actor=c.actor
    )


@router.post("/console/quality")
async def console_quality(request: Request) -> Response:
    """Live enrollment feedback for the front-desk webcam; the frame is dropped at once."""
    c = Ctx(request, STAFF)
    check_csrf(request.headers.get("x-csrf-token"), c.csrf)
    return await quality_feedback(request, c.rt)


# --- records -----------------------------------------------------------------------------------


@router.get("/console/rights", response_class=HTMLResponse)
def rights(request: Request) -> Response:
    c = Ctx(request, ANY_ROLE)
    with c.rt.store.session() as s:
        reqs = list_rights_requests(s, site_ids=c.sites)
    return c.page("rights.html", {"reqs": reqs})


@router.post("/console/rights/{request_id}", response_class=HTMLResponse)
async def rights_answer(request: Request, request_id: str) -> Response:
    """Answer an open request with the domain function for its kind, or reject it (PIPL-50).

    An export is handed over at the desk as a JSON download (PIPL-44-48: locally, not by
    e-mail); it never contains a template or an image."""
    c = Ctx(request, STAFF)
    form = await request.form()
    c.check(form)
    action = form.get("action")
    person_id = str(form.get("person_id", ""))
    try:
        with c.rt.store.session() as s:
            req = visible_rights_request(s, c.sites, request_id)
            if person_id and person_id != req.person_id:
                raise InvalidInput("this request is not this person's", zh="这项申请不是此人提出的")
            person_id = req.person_id
            if action == "reject":
                reject_rights_request(
                    s, actor=c.actor, request_id=request_id, reason=str(form.get("reason", ""))
                )
            elif action == "export":
                data = export_my_data(
                    s,
                    c.rt.settings,
                    actor=c.actor,
                    person_id=person_id,
                    channel="front_desk",
                    request_id=request_id,
                    keyring=keyring(request),
                )
                return Response(
                    json.dumps(data, ensure_ascii=False, indent=2, default=str),
                    media_type="application/json",
                    headers={
                        "Content-Disposition": f'attachment; filename="{person_id}.json"',
                        "Cache-Control": "no-store",
                    },
                )
            elif action == "erase":
                erase(
                    s,
                    c.rt.settings,
                    actor=c.actor,
                    person_id=person_id,
                    channel="front_desk",
                    request_id=request_id,
                )
                c.rt.after_change()
            else:
                raise InvalidInput("choose how to answer the request", zh="请选择如何答复这项申请")
    except FacegateError as exc:
        raise c.fail(exc, "/console/rights") from None
    return redirect("/console/rights")


@router.get("/console/events", response_class=HTMLResponse)
def events(request: Request) -> Response:
    c = Ctx(request, ANY_ROLE)
    with c.rt.store.session() as s:
        rows = recent_access_events(s, limit=200, site_ids=c.sites)
    return c.page("events.html", {"events": rows})


@router.get("/console/audit", response_class=HTMLResponse)
def audit_page(request: Request) -> Response:
    c = Ctx(request, ANY_ROLE)
    with c.rt.store.session() as s:
        result = audit.verify(s)
    return c.page("audit.html", {"result": result})


@router.get("/console/operators", response_class=HTMLResponse)
def operators(request: Request) -> Response:
    c = Ctx(request, ("admin",))
    with c.rt.store.session() as s:
        accounts = list_operators(s)
        site_map = operator_site_map(s)
        sites = c.overview(s)
    return c.page(
        "operators.html",
        {
            "accounts": accounts,
            "site_map": site_map,
            "sites": sites,
            "site_names": {x["id"]: x["name"] or x["id"] for x in sites},
        },
    )


@router.post("/console/operators", response_class=HTMLResponse)
async def operators_add(request: Request) -> Response:
    c = Ctx(request, ("admin",))
    form = await request.form()
    c.check(form)
    try:
        with c.rt.store.session() as s:
            create_operator(
                s,
                actor=c.actor,
                username=str(form.get("username", "")),
                password=str(form.get("password", "")),
                role=str(form.get("role", "operator")),
                site_ids=[str(x) for x in form.getlist("site_ids")],
            )
    except FacegateError as exc:
        raise c.fail(exc, "/console/operators") from None
    return redirect("/console/operators")


# --- API keys (issue 13 item 9) ------------------------------------------------------------------


def _keys_page(c: Ctx, status: int = 200, error: str = "") -> Response:
    from facegate.domain.common import utcnow

    with c.rt.store.session() as s:
        keys = list_api_keys(s)
        ap_names = {ap["id"]: ap["name"] for site in c.overview(s) for ap in site["access_points"]}
    return c.page(
        "keys.html",
        {"keys": keys, "ap_names": ap_names, "now": utcnow(), "error": error},
        status=status,
    )


@router.get("/console/keys", response_class=HTMLResponse)
def keys_page(request: Request) -> Response:
    return _keys_page(Ctx(request, ("admin",)))


@router.post("/console/keys/{key_id}/revoke", response_class=HTMLResponse)
async def keys_revoke(request: Request, key_id: str) -> Response:
    c = Ctx(request, ("admin",))
    c.check(await request.form())
    try:
        with c.rt.store.session() as s:
            revoke_api_key(s, actor=c.actor, key_id=key_id)
    except FacegateError as exc:
        raise c.fail(exc, "/console/keys") from None
    return redirect("/console/keys")
