"""Resident and guest self-service, reached by a one-time invitation link or QR code.

Notice first; "Use face access" and "No thanks" equally prominent, nothing pre-ticked
(CAC-FR-06a, CAC-FR-12); a "no" is remembered and never re-asked (STD-41819-02); withdrawal
is one click plus a confirmation (CAC-FR-06b); export and rights requests (PIPL-44-48).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from facegate.compliance.documents import qr_svg
from facegate.domain import issue_visitor_pass, person_summary, withdraw
from facegate.domain.accounts import lookup_session
from facegate.domain.credentials import VISITOR_HOSTS, VISITOR_PASS_MAX_HOURS, VISITOR_PASS_MAX_USES
from facegate.domain.rights import export_my_data, submit_rights_request
from facegate.domain.selfservice import (
    accept_face,
    decline_face,
    face_state,
    notice_for_person,
    pass_entrances,
    recent_access_events,
    redeem_invitation,
    split_subject,
    ways_in,
)
from facegate.errors import FacegateError, InvalidInput
from facegate.web.common import (
    PERSON_COOKIE,
    PRE_CSRF_COOKIE,
    WebFailure,
    check_csrf,
    fail,
    keyring,
    local_time,
    pre_csrf,
    qr_pass_context,
    redirect,
    render,
    runtime,
    set_cookie,
    with_pre_csrf,
)
from facegate.web.faces import enroll_from_camera, issue_challenge, quality_feedback

router = APIRouter(include_in_schema=False)

SELF_RIGHTS = ("access", "correction", "erasure", "explanation")


class Me:
    """The person (or the guardian acting for a child) behind a self-service session."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.rt = runtime(request)
        with self.rt.store.session() as s:
            ws = lookup_session(s, request.cookies.get(PERSON_COOKIE), "person")
            if ws is None:
                raise WebFailure(401, "error_title", translate(request, "session_over"), "/")
            self.person_id, self.guardian_id = split_subject(ws.subject_id)
            self.csrf = ws.csrf_token

    @property
    def actor(self) -> str:
        who = self.guardian_id or self.person_id
        return f"self-service:{who}"

    def page(self, name: str, context: dict[str, Any] | None = None, status: int = 200):
        ctx = {"guardian": self.guardian_id, "person_id": self.person_id}
        ctx.update(context or {})
        return render(self.request, name, ctx, status=status, csrf=self.csrf)

    def check(self, form: Any) -> None:
        check_csrf(form.get("csrf"), self.csrf)


def translate(request: Request, key: str) -> str:
    from facegate.web.common import translator

    return translator(request)(key)


@router.get("/i/{token}", response_class=HTMLResponse)
def invitation_page(request: Request, token: str) -> Response:
    """A landing page with one button: link previews and scanners never spend the token."""
    csrf = pre_csrf(request)
    resp = render(request, "invite.html", {"token": token}, csrf=csrf)
    return with_pre_csrf(request, resp, csrf)


@router.post("/i/{token}")
async def invitation_open(request: Request, token: str) -> Response:
    form = await request.form()
    check_csrf(form.get("csrf"), request.cookies.get(PRE_CSRF_COOKIE))
    rt = runtime(request)
    try:
        with rt.store.session() as s:
            redeemed = redeem_invitation(s, rt.settings, token=token)
    except FacegateError as exc:
        raise fail(request, exc, "/") from None
    resp = redirect("/me")
    set_cookie(
        request,
        resp,
        PERSON_COOKIE,
        redeemed.opened.token,
        rt.settings.web_self_session_minutes * 60,
    )
    return resp


@router.get("/notice", response_class=HTMLResponse)
def public_notice(request: Request) -> Response:
    """The published notice, for anyone: where the sign's QR code leads (CAC-FR-13a, N11). A
    passer-by has no invitation, so this page needs none; it shows the rules and nothing about
    any person. ``?site=`` picks a site; by default the first."""
    from sqlalchemy import select

    from facegate.domain.notice import current_notice
    from facegate.store.models import Site

    rt = runtime(request)
    wanted = request.query_params.get("site")
    with rt.store.session() as s:
        stmt = select(Site).order_by(Site.created_at)
        if wanted:
            stmt = stmt.where(Site.id == wanted[:40])
        site = s.execute(stmt.limit(1)).scalar()
        notice = current_notice(s, site.id) if site is not None else None
        view = (
            {"version": notice.version, "fields": notice.fields, "site": site.name}
            if notice is not None and site is not None
            else None
        )
    return render(request, "public_notice.html", {"notice": view}, status=200 if view else 404)


@router.get("/me", response_class=HTMLResponse)
def me_home(request: Request) -> Response:
    me = Me(request)
    with me.rt.store.session() as s:
        state = face_state(s, me.person_id)
        notice = notice_for_person(s, me.person_id)
    return me.page("me.html", {"state": state, "notice": notice, "flash": None})


@router.post("/me/choice", response_class=HTMLResponse)
async def me_choice(request: Request) -> Response:
    me = Me(request)
    form = await request.form()
    me.check(form)
    choice = form.get("choice")
    issued = None
    try:
        with me.rt.store.session() as s:
            if choice == "yes":
                accept_face(
                    s,
                    actor=me.actor,
                    person_id=me.person_id,
                    guardian_id=me.guardian_id,
                    channel="web",
                )
                me.rt.after_change()
            elif choice == "no":
                issued = decline_face(s, actor=me.actor, person_id=me.person_id).issued
            else:
                raise InvalidInput("choose one of the two buttons", zh="请点击两个按钮中的一个")
    except FacegateError as exc:
        raise fail(request, exc, "/me") from None
    if choice == "yes":
        return redirect("/me/enroll")
    with me.rt.store.session() as s:
        state = face_state(s, me.person_id)
        notice = notice_for_person(s, me.person_id)
    return me.page(
        "me.html",
        {
            "state": state,
            "notice": notice,
            "flash": "declined_msg",
            **qr_pass_context(issued, me.rt.store),
        },
    )


@router.get("/me/enroll", response_class=HTMLResponse)
def me_enroll_page(request: Request) -> Response:
    me = Me(request)
    with me.rt.store.session() as s:
        state = face_state(s, me.person_id)
    if not state["consent_active"]:
        return redirect("/me")
    return me.page(
        "enroll.html",
        {
            "quality_url": "/me/quality",
            "enroll_url": "/me/enroll",
            "challenge_url": "/me/challenge",
        },
    )


@router.post("/me/quality")
async def me_quality(request: Request) -> Response:
    me = Me(request)
    check_csrf(request.headers.get("x-csrf-token"), me.csrf)
    return await quality_feedback(request, me.rt)


@router.post("/me/challenge")
def me_challenge(request: Request) -> Response:
    """A random prompt for this person's own camera enrollment (issue 14 item 3)."""
    me = Me(request)
    check_csrf(request.headers.get("x-csrf-token"), me.csrf)
    return issue_challenge(request, me.person_id)


@router.post("/me/enroll")
async def me_enroll(request: Request) -> Response:
    """The frames taken while the person followed the prompt, with its nonce (multipart);
    answered in JSON for the page's script."""
    me = Me(request)
    check_csrf(request.headers.get("x-csrf-token"), me.csrf)
    return await enroll_from_camera(
        request,
        me.rt,
        keyring(request),
        person_id=me.person_id,
        actor=me.actor,
        next_url="/me/data",
    )


@router.get("/me/data", response_class=HTMLResponse)
def me_data(request: Request) -> Response:
    me = Me(request)
    with me.rt.store.session() as s:
        summary = person_summary(s, me.person_id)
        state = face_state(s, me.person_id)
        events = recent_access_events(s, person_id=me.person_id, limit=50)
        entrances = ways_in(s, me.person_id)
    by_method: dict[str, int] = {}
    for e in events:
        by_method[e["method"]] = by_method.get(e["method"], 0) + 1
    return me.page(
        "mydata.html",
        {
            "p": summary,
            "state": state,
            "events": events[:20],
            "by_method": by_method,
            "ways_in": entrances,
            "rights_kinds": SELF_RIGHTS,
            "can_invite": summary["category"] in VISITOR_HOSTS,
            "max_hours": VISITOR_PASS_MAX_HOURS,
            "max_uses": VISITOR_PASS_MAX_USES,
            "flash": request.query_params.get("flash"),
        },
    )


@router.post("/me/export")
async def me_export(request: Request) -> Response:
    me = Me(request)
    me.check(await request.form())
    try:
        with me.rt.store.session() as s:
            data = export_my_data(
                s,
                me.rt.settings,
                actor=me.actor,
                person_id=me.person_id,
                channel="web",
                keyring=keyring(request),
            )
    except FacegateError as exc:
        raise fail(request, exc, "/me/data") from None
    body = json.dumps(data, ensure_ascii=False, indent=2, default=str)
    return Response(
        body,
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="my-data-{me.person_id}.json"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/me/withdraw", response_class=HTMLResponse)
def me_withdraw_confirm(request: Request) -> Response:
    return Me(request).page("withdraw.html")


@router.post("/me/withdraw", response_class=HTMLResponse)
async def me_withdraw(request: Request) -> Response:
    me = Me(request)
    me.check(await request.form())
    try:
        with me.rt.store.session() as s:
            result = withdraw(s, actor=me.actor, person_id=me.person_id, channel="web")
        me.rt.after_change()  # every gate stops matching them now (CAC-FR-06b)
    except FacegateError as exc:
        raise fail(request, exc, "/me/data") from None
    return me.page(
        "withdrawn.html",
        qr_pass_context(result.issued, me.rt.store),
    )


@router.post("/me/rights", response_class=HTMLResponse)
async def me_rights(request: Request) -> Response:
    me = Me(request)
    form = await request.form()
    me.check(form)
    kind = str(form.get("kind", ""))
    try:
        if kind not in SELF_RIGHTS:
            raise InvalidInput("choose the kind of request", zh="请选择申请的类型")
        with me.rt.store.session() as s:
            req = submit_rights_request(
                s,
                me.rt.settings,
                actor=me.actor,
                person_id=me.person_id,
                kind=kind,
                channel="web",
            )
    except FacegateError as exc:
        raise fail(request, exc, "/me/data") from None
    return redirect(f"/me/data?flash={req.deadline_at.date().isoformat()}")


def _int_field(form: Any, name: str) -> int:
    try:
        return int(str(form.get(name, "")))
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number", zh="请填写一个整数") from None


@router.post("/me/visitor-pass", response_class=HTMLResponse)
async def me_visitor_pass(request: Request) -> Response:
    """A resident invites a visitor: a time-boxed QR pass, no face, no name (NJ-2020)."""
    me = Me(request)
    form = await request.form()
    me.check(form)
    try:
        hours, uses = _int_field(form, "hours"), _int_field(form, "uses")
        with me.rt.store.session() as s:
            issued = issue_visitor_pass(
                s, actor=me.actor, host_id=me.person_id, hours=hours, max_uses=uses
            )
            valid_until = issued.credential.valid_until
            doors = pass_entrances(s, issued.credential.id)
    except FacegateError as exc:
        raise fail(request, exc, "/me/data") from None
    return me.page(
        "visitor_pass.html",
        {
            "token": issued.secret,
            "code": issued.code,
            "qr_doors": doors,
            "qr": qr_svg(issued.secret or "", scale=5),
            "valid_until": local_time(valid_until, runtime(request).settings.site_time_zone),
            "uses": uses,
        },
    )
