"""Console pages that make face activation possible: operator facts and the notice, the PIA,
and the signs at each access point.

Each handler parses a form and calls the compliance function the CLI calls too
(``facegate.compliance.live``); the rules (required fields, re-consent, the gate) live there.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from facegate.compliance.model import Accessibility, PiaRecord
from facegate.errors import FacegateError, InvalidInput
from facegate.web.common import redirect, refusal_words, translator
from facegate.web.console import ANY_ROLE, Ctx

router = APIRouter(include_in_schema=False)
ADMIN = ("admin",)


def _day(value: Any, what: str) -> date:
    try:
        return date.fromisoformat(str(value or "").strip())
    except ValueError:
        raise InvalidInput(
            f"{what} must look like 2026-05-01", zh="日期格式应为 2026-05-01"
        ) from None


def _text(form: Any, name: str) -> str:
    return str(form.get(name) or "").strip()


# --- operator facts and the notice (CAC-FR-05a/b, 06c) ------------------------------------------


def _notice_page(c: Ctx, *, status: int = 200, **extra: Any) -> Response:
    from sqlalchemy import select

    from facegate.compliance.live import load_facts, preview_notice, public_links
    from facegate.domain.notice import current_notice
    from facegate.store import models as m

    with c.rt.store.session() as s:
        site = s.execute(select(m.Site).order_by(m.Site.created_at)).scalar()
        org = s.get(m.Organization, site.organization_id) if site else None
        preview = preview_notice(s, c.rt.settings) if site else None
        cur = current_notice(s, site.id) if site else None
        org_row = {
            "name": org.name if org else "",
            "address": org.address if org else "",
            "contact": org.contact if org else "",
            "pipo_contact": org.pipo_contact if org else "",
        }
    facts = load_facts(c.rt.settings)
    links = public_links(c.rt.settings, facts)
    return c.page(
        "notice_setup.html",
        {
            "org": org_row,
            "facts": facts,
            "preview": preview,
            "current": {"version": cur.version, "at": cur.effective_at} if cur else None,
            # Empty addresses are derived from the public address (never this browser's
            # loopback address): the placeholders show what will be printed.
            "suggest_notice": links.notice_url or "https://gate.example.cn/notice",
            "suggest_self_service": links.self_service_url or "https://gate.example.cn/me",
            "flash": c.request.query_params.get("done"),
            **extra,
        },
        status=status,
    )


@router.get("/console/notice", response_class=HTMLResponse)
def notice_page(request: Request) -> Response:
    return _notice_page(Ctx(request, ANY_ROLE))


@router.post("/console/notice/facts", response_class=HTMLResponse)
async def notice_facts(request: Request) -> Response:
    c = Ctx(request, ADMIN)
    form = await request.form()
    c.check(form)
    from facegate.compliance.live import update_operator_facts

    try:
        with c.rt.store.session() as s:
            update_operator_facts(
                s,
                c.rt.settings,
                actor=c.actor,
                name=_text(form, "name"),
                address=_text(form, "address"),
                contact=_text(form, "contact"),
                pipo_contact=_text(form, "pipo_contact"),
                necessity_statement=_text(form, "necessity"),
                notice_url=_text(form, "notice_url"),
                self_service_url=_text(form, "self_service_url"),
                minors_rules_url=_text(form, "minors_rules_url"),
                public_url=_text(form, "public_url"),
                accessibility=Accessibility(
                    large_print=form.get("large_print") == "1",
                    audio=form.get("audio") == "1",
                    staff_assistance=form.get("staff_assistance") == "1",
                ),
            )
    except FacegateError as exc:
        return _notice_page(
            c, status=exc.http_status, error=refusal_words(translator(c.request), exc)
        )
    return redirect("/console/notice?done=facts_saved#publish")


@router.post("/console/notice/publish", response_class=HTMLResponse)
async def notice_publish(request: Request) -> Response:
    c = Ctx(request, ADMIN)
    form = await request.form()
    c.check(form)
    from facegate.compliance.live import publish_notice_from_config

    try:
        with c.rt.store.session() as s:
            publish_notice_from_config(s, c.rt.settings, actor=c.actor)
        c.rt.after_change()  # consents awaiting renewal stop matching at every gate now
    except FacegateError as exc:
        return _notice_page(
            c, status=exc.http_status, error=refusal_words(translator(c.request), exc)
        )
    return redirect("/console/notice?done=notice_published#publish")


# --- PIA (CAC-FR-09a/b) --------------------------------------------------------------------------


def _pia_page(c: Ctx, *, status: int = 200, **extra: Any) -> Response:
    from facegate.compliance.live import load_facts

    facts = load_facts(c.rt.settings)
    return c.page(
        "pia.html",
        {
            "pias": facts.pia,
            "necessity": facts.necessity_statement,
            "today": date.today().isoformat(),
            "flash": c.request.query_params.get("done"),
            **extra,
        },
        status=status,
    )


@router.get("/console/pia", response_class=HTMLResponse)
def pia_page(request: Request) -> Response:
    return _pia_page(Ctx(request, ANY_ROLE))


@router.post("/console/pia", response_class=HTMLResponse)
async def pia_register(request: Request) -> Response:
    c = Ctx(request, ADMIN)
    form = await request.form()
    c.check(form)
    from facegate.compliance.live import register_pia

    try:
        record = PiaRecord(
            version=_text(form, "version"),
            date=_day(form.get("date"), "The date signed"),
            signer=_text(form, "signer"),
            necessity_statement=_text(form, "necessity"),
            document=_text(form, "document"),
        )
        if not record.version:
            raise InvalidInput(
                "Give the PIA a version, e.g. 1 or 2026-05.",
                zh="请填写评估报告的版本，例如 1 或 2026-05",
            )
        with c.rt.store.session() as s:
            register_pia(s, c.rt.settings, record, actor=c.actor)
    except FacegateError as exc:
        return _pia_page(c, status=exc.http_status, error=refusal_words(translator(c.request), exc))
    return redirect("/console/pia?done=pia_registered")


# --- signs at each access point (CAC-FR-13a) ----------------------------------------------------


def _signage_page(c: Ctx, *, status: int = 200, **extra: Any) -> Response:
    from facegate.compliance.live import load_facts
    from facegate.domain.notice import current_notice

    with c.rt.store.session() as s:
        ov = c.overview(s)  # the sites this account works for (issue 13 item 8)
        versions = {}
        for site in ov:
            n = current_notice(s, site["id"])
            versions[site["id"]] = str(n.version) if n else ""
    facts = load_facts(c.rt.settings)
    points = [
        {
            "site": site,
            "ap": ap,
            "sign": facts.signage.get(ap["id"]),
            "notice": versions[site["id"]],
        }
        for site in ov
        for ap in site["access_points"]
        if "face" in ap["methods"]
    ]
    return c.page(
        "signage.html",
        {
            "points": points,
            "today": date.today().isoformat(),
            "flash": c.request.query_params.get("done"),
            **extra,
        },
        status=status,
    )


@router.get("/console/signage", response_class=HTMLResponse)
def signage_page(request: Request) -> Response:
    return _signage_page(Ctx(request, ANY_ROLE))


@router.post("/console/signage/{ap_id}", response_class=HTMLResponse)
async def signage_placed(request: Request, ap_id: str) -> Response:
    c = Ctx(request, ADMIN)
    form = await request.form()
    c.check(form)
    from facegate.compliance.live import place_signage

    try:
        with c.rt.store.session() as s:
            place_signage(
                s,
                c.rt.settings,
                actor=c.actor,
                access_point_id=ap_id,
                placed_on=_day(form.get("placed_on"), "The date the sign went up"),
                location_note=_text(form, "where"),
            )
    except FacegateError as exc:
        return _signage_page(
            c,
            status=exc.http_status,
            error=refusal_words(translator(c.request), exc),
            error_ap=ap_id,
        )
    return redirect("/console/signage?done=sign_recorded")
