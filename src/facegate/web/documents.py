"""Compliance dashboard and generated documents (notice, signage, PIA) in the console."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from facegate.domain.accounts import visible_access_point
from facegate.domain.selfservice import notice_for_person
from facegate.errors import FacegateError, NotFound
from facegate.web.common import fail, refusal_words, translator
from facegate.web.console import ANY_ROLE, Ctx

router = APIRouter(include_in_schema=False)


def _live(c: Ctx):
    """The live deployment the compliance engine checks; (deployment, problem)."""
    from facegate.compliance.live import deployment_from_store

    try:
        with c.rt.store.session() as s:
            return deployment_from_store(s, c.rt.settings), ""
    except FacegateError as exc:
        return None, refusal_words(translator(c.request), exc)


@router.get("/console/compliance", response_class=HTMLResponse)
def compliance(request: Request) -> Response:
    c = Ctx(request, ANY_ROLE)
    d, problem = _live(c)
    findings = []
    if d is not None:
        from facegate.compliance.checks import run_checks
        from facegate.compliance.findings import sort_findings

        findings = [f.to_dict() for f in sort_findings(run_checks(d))]
    return c.page("compliance.html", {"findings": findings, "problem": problem})


@router.get("/console/docs", response_class=HTMLResponse)
def docs(request: Request) -> Response:
    c = Ctx(request, ANY_ROLE)
    from facegate.domain import list_persons

    with c.rt.store.session() as s:
        ov = c.overview(s)  # the sites this account works for (issue 13 item 8)
        persons = list_persons(s, site_ids=c.sites)
        notice = notice_for_person(s, persons[0].id) if persons else None
    if notice is None:
        from facegate.domain.notice import current_notice

        with c.rt.store.session() as s:
            n = current_notice(s, ov[0]["id"]) if ov else None
            notice = {"version": n.version, "fields": n.fields, "sha256": n.sha256} if n else None
    d, problem = _live(c)
    blockers = []
    if d is not None:
        from facegate.compliance.checks import run_checks

        blockers = [f.to_dict() for f in run_checks(d) if f.severity == "blocker"]
    return c.page(
        "docs.html",
        {"notice": notice, "ov": ov, "problem": problem, "live": d, "blockers": blockers},
    )


@router.get("/console/docs/{kind}", response_class=HTMLResponse)
def doc(request: Request, kind: str) -> Response:
    """The compliance engine's own rendering (print-ready HTML) over the live state."""
    c = Ctx(request, ANY_ROLE)
    d, problem = _live(c)
    lang = (
        "zh-CN"
        if request.query_params.get("lang", c.request.cookies.get("fg_lang")) != "en"
        else "en"
    )
    try:
        if d is None:
            raise NotFound(problem)
        from facegate.compliance import documents as docs_mod

        if kind == "notice":
            # The published version people consent to, in the reader's language; a draft
            # from the configuration only before anything is published.
            html = docs_mod.render_notice(d, lang, published=True)
        elif kind == "pia":
            html = docs_mod.render_pia(d, lang)
        elif kind == "signage":
            ap_id = request.query_params.get("ap", "")
            with c.rt.store.session() as s:
                visible_access_point(s, c.sites, ap_id)
            for site, ap in d.access_points():
                if ap.id == ap_id:
                    html = docs_mod.render_signage(d, site, ap, lang)
                    break
            else:
                raise NotFound(f"no access point {ap_id!r}", zh="找不到这个出入口")
        else:
            raise NotFound(f"no document {kind!r}", zh="找不到这份文件")
    except FacegateError as exc:
        raise fail(request, exc, "/console/docs") from None
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})
