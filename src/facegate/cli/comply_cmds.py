"""``facegate comply``, ``docs``, ``face on|off`` and ``register pia``: thin adapters over
``facegate.compliance``."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import typer
from rich.console import Console

from facegate.compliance import report
from facegate.compliance.checks import CheckContext, run_checks
from facegate.compliance.documents import DOC_KINDS, signage_points, write_documents
from facegate.compliance.inventory import inventory_schema, load_inventory
from facegate.compliance.model import Deployment, PiaRecord
from facegate.config import Settings
from facegate.errors import FacegateError, InvalidInput

face_app = typer.Typer(help="Switch face recognition on (through the compliance gate) or off.")
register_app = typer.Typer(
    help="Register compliance records: signed PIA, filing threshold date, CAC filing."
)


def _fail(err: FacegateError) -> typer.Exit:
    typer.echo(f"error: {err.message}", err=True)
    return typer.Exit(2)


def _check_lang(lang: str) -> None:
    if lang not in ("zh-CN", "en"):
        raise InvalidInput(f"Unsupported language {lang!r}; use zh-CN or en.")


def _load(inventory: Path | None, settings: Settings) -> tuple[Deployment, str]:
    if inventory is not None:
        return load_inventory(inventory, settings.inventory_max_bytes), str(inventory)
    from facegate.compliance.live import live_deployment

    return live_deployment(settings), "live"


def comply(
    inventory: Path | None = typer.Option(
        None, "--inventory", "-i", help="YAML inventory of a deployment (default: this system)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    html: Path | None = typer.Option(None, "--html", help="Also write the report as HTML."),
    schema: bool = typer.Option(False, "--schema", help="Print the inventory JSON Schema."),
    lang: str = typer.Option("zh-CN", "--lang", help="zh-CN or en."),
    as_of: str | None = typer.Option(None, "--as-of", help="Check as of this date (YYYY-MM-DD)."),
) -> None:
    """Check a deployment against the rule catalog; exit 1 when a blocker fails."""
    if schema:
        typer.echo(json.dumps(inventory_schema(), ensure_ascii=False, indent=2))
        return
    settings = Settings()
    try:
        _check_lang(lang)
        try:
            day = date.fromisoformat(as_of) if as_of else None
        except ValueError as exc:
            raise InvalidInput(f"--as-of must be YYYY-MM-DD, not {as_of!r}.") from exc
        d, source = _load(inventory, settings)
    except FacegateError as err:
        raise _fail(err) from err
    ctx = CheckContext(warn_at=settings.filing_warn_at)
    if day is not None:
        ctx = CheckContext(as_of=day, warn_at=settings.filing_warn_at)
    found = run_checks(d, ctx)
    if as_json:
        body = report.to_json(d, found, ctx.as_of, source)
        typer.echo(json.dumps(body, ensure_ascii=False, indent=2))
    else:
        report.print_table(Console(), d, found, lang, source)
        if inventory is None:
            _print_activation_blockers(d, found, ctx, lang)
    if html is not None:
        html.write_text(report.render_html(d, found, lang, ctx.as_of, source), encoding="utf-8")
        if not as_json:
            typer.echo(f"wrote {html}", err=True)
    if any(f.severity == "blocker" for f in found):
        raise typer.Exit(1)


def _print_activation_blockers(d: Deployment, found: list, ctx: CheckContext, lang: str) -> None:
    """What else stops `facegate face on` at a site where face is still off: the report checks
    the deployment as it is, the activation gate as it would be with face on (for example a
    sign at each face entrance, CAC-FR-13a), so both are said before the operator tries."""
    from facegate.compliance.gate import activation_blockers

    reported = {(f.rule_id, f.object) for f in found}
    for site in d.sites:
        if any(ap.face_enabled for ap in site.access_points):
            continue
        extra = [
            f
            for f in activation_blockers(d, site.id, ctx=ctx)
            if (f.rule_id, f.object) not in reported
        ]
        if not extra:
            continue
        name = site.name or site.id
        typer.echo(
            f"开启人脸识别前（{name}）还须整改："
            if lang == "zh-CN"
            else f"Before face can be switched on at {name}, also fix:"
        )
        for f in extra:
            typer.echo(f"  {f.rule_id} ({f.object}): {f.message(lang)} -> {f.fix_in(lang)}")


def docs(
    kind: str = typer.Argument(..., help="notice | signage | pia | filing | minors"),
    out: Path = typer.Option(..., "--out", "-o", help="Directory to write the HTML into."),
    inventory: Path | None = typer.Option(None, "--inventory", "-i", help="YAML inventory."),
    lang: str = typer.Option("zh-CN", "--lang", help="zh-CN or en."),
    publish: bool = typer.Option(
        False, "--publish", help="notice, this system only: publish a new version first."
    ),
    actor: str = typer.Option("operator", "--actor", help="Who publishes (audit log)."),
) -> None:
    """Generate a compliance document from the deployment description.

    For this system (no --inventory) the notice is the published version people consent to,
    and generating signs records them for the current notice version (CAC-FR-13a)."""
    settings = Settings()
    try:
        if kind not in DOC_KINDS:
            raise InvalidInput(f"Unknown document {kind!r}; use one of {', '.join(DOC_KINDS)}.")
        _check_lang(lang)
        live = inventory is None
        if publish:
            if not live or kind != "notice":
                raise InvalidInput("--publish applies to `docs notice` for this system only.")
            _publish(settings, actor)
        d, _ = _load(inventory, settings)
        written = write_documents(d, kind, out, lang, published=live)
        if live and kind == "signage" and d.notice is not None:
            from facegate.compliance.live import record_signage

            ids = [ap.id for _, ap in signage_points(d)]
            record_signage(settings, ids, d.notice.version, datetime.now(UTC))
    except FacegateError as err:
        raise _fail(err) from err
    for path in written:
        typer.echo(str(path))
    if not written:
        typer.echo("no access point accepts face; no sign written", err=True)


def _publish(settings: Settings, actor: str) -> None:
    from facegate.audit import anchor as audit_anchor
    from facegate.compliance.live import publish_notice_from_config

    store = audit_anchor.open_store(settings)
    try:
        with store.session() as session:
            n = publish_notice_from_config(session, settings, actor=actor)
            typer.echo(f"notice v{n.version} published (sha256 {n.sha256[:16]}...)", err=True)
    finally:
        store.dispose()


def _set_face(site: str | None, ap: str | None, enabled: bool, actor: str) -> None:
    from facegate.audit import anchor as audit_anchor
    from facegate.compliance.live import set_face

    settings = Settings()
    store = audit_anchor.open_store(settings)
    try:
        with store.session() as session:
            changed = set_face(
                session, settings, actor=actor, site_id=site, access_point_id=ap, enabled=enabled
            )
    except FacegateError as err:
        raise _fail(err) from err
    finally:
        store.dispose()
    state = "on" if enabled else "off"
    where = site or "the site"
    typer.echo(f"face {state} at {where}" + (f": {', '.join(changed)}" if changed else ""))


@face_app.command("on")
def face_on(
    site: str | None = typer.Option(
        None, "--site", help="Site id (default: the only site; `facegate site list`)."
    ),
    ap: str | None = typer.Option(None, "--ap", help="One access point id (default: all)."),
    actor: str = typer.Option("operator", "--actor", help="Who does this (audit log)."),
) -> None:
    """Switch face on; refused while any blocking compliance rule fails."""
    _set_face(site, ap, True, actor)


@face_app.command("off")
def face_off(
    site: str | None = typer.Option(
        None, "--site", help="Site id (default: the only site; `facegate site list`)."
    ),
    ap: str | None = typer.Option(None, "--ap", help="One access point id (default: the site)."),
    actor: str = typer.Option("operator", "--actor", help="Who does this (audit log)."),
) -> None:
    """Switch face off; always allowed."""
    _set_face(site, ap, False, actor)


@register_app.command("pia")
def register_pia_cmd(
    version: str = typer.Option(..., "--version", help="PIA version."),
    signed_on: str = typer.Option(..., "--date", help="Date signed (YYYY-MM-DD)."),
    signer: str = typer.Option(..., "--signer", help="Who signed it."),
    necessity: str = typer.Option(..., "--necessity", help="The necessity statement."),
    document: str = typer.Option("", "--document", help="Where the signed report is kept."),
    actor: str = typer.Option("operator", "--actor", help="Who does this (audit log)."),
) -> None:
    """Register a signed PIA (CAC-FR-09a); the activation gate needs one."""
    from facegate.audit import anchor as audit_anchor
    from facegate.compliance.live import register_pia

    settings = Settings()
    try:
        try:
            day = date.fromisoformat(signed_on)
        except ValueError as exc:
            raise InvalidInput(f"--date must be YYYY-MM-DD, not {signed_on!r}.") from exc
        record = PiaRecord(
            version=version,
            date=day,
            signer=signer,
            necessity_statement=necessity,
            document=document,
        )
        store = audit_anchor.open_store(settings)
        try:
            with store.session() as session:
                register_pia(session, settings, record, actor=actor)
        finally:
            store.dispose()
    except FacegateError as err:
        raise _fail(err) from err
    typer.echo(f"registered PIA v{version} ({day}, {signer})")


def _day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"{option} must be YYYY-MM-DD, not {value!r}.") from exc


@register_app.command("threshold")
def register_threshold_cmd(
    reached_on: str = typer.Option(..., "--date", help="Date 100,000 people was reached."),
) -> None:
    """Record when stored face data reached 100,000 people (starts the 30-working-day clock)."""
    from facegate.compliance.live import record_threshold

    try:
        record_threshold(Settings(), _day(reached_on, "--date"))
    except FacegateError as err:
        raise _fail(err) from err
    typer.echo(f"recorded: 100,000 reached on {reached_on}")


@register_app.command("filing")
def register_filing_cmd(
    filed_on: str = typer.Option(..., "--date", help="Date the CAC filing was made."),
    reference: str = typer.Option("", "--reference", help="Filing reference number."),
) -> None:
    """Record the CAC filing (CAC-FR-15a) or its update after a material change (CAC-FR-15c)."""
    from facegate.compliance.live import record_filing

    try:
        record_filing(Settings(), _day(filed_on, "--date"), reference)
    except FacegateError as err:
        raise _fail(err) from err
    typer.echo(f"recorded: filed on {filed_on}")


@register_app.command("operator")
def register_operator_cmd(
    name: str = typer.Option(..., "--name", help="Operator's legal name (notice N1)."),
    address: str = typer.Option(..., "--address", help="Operator's address (N1)."),
    contact: str = typer.Option(..., "--contact", help="Phone or e-mail (N1)."),
    pipo_contact: str | None = typer.Option(
        None, "--pipo-contact", help="PI protection officer (N1)."
    ),
    necessity: str | None = typer.Option(None, "--necessity", help="Necessity statement (N6)."),
    notice_url: str | None = typer.Option(
        None, "--notice-url", help="Notice address, the sign's QR (default: PUBLIC_URL/notice)."
    ),
    self_service_url: str | None = typer.Option(
        None, "--self-service-url", help="Self-service page (default: PUBLIC_URL/me)."
    ),
    minors_rules_url: str | None = typer.Option(
        None, "--minors-rules-url", help="Minors' rules (N9)."
    ),
    public_url: str | None = typer.Option(
        None,
        "--public-url",
        help="The HTTPS address residents' phones reach this server at (signs, invitations).",
    ),
    accessible: str = typer.Option(
        "", "--accessible", help="N13, comma list of: large_print, audio, staff_assistance."
    ),
    publish: bool = typer.Option(False, "--publish", help="Publish a new notice version too."),
    actor: str = typer.Option("operator", "--actor", help="Who does this (audit log)."),
) -> None:
    """Set the operator facts the notice needs (the console's "Operator facts" form); an
    option left out keeps its value."""
    from facegate.audit import anchor as audit_anchor
    from facegate.compliance.live import update_operator_facts
    from facegate.compliance.model import Accessibility

    settings = Settings()
    store = audit_anchor.open_store(settings)
    try:
        forms = {f.strip() for f in accessible.split(",") if f.strip()}
        unknown = forms - {"large_print", "audio", "staff_assistance"}
        if unknown:
            raise InvalidInput(f"--accessible does not know {', '.join(sorted(unknown))}.")
        with store.session() as session:
            update_operator_facts(
                session,
                settings,
                actor=actor,
                name=name,
                address=address,
                contact=contact,
                pipo_contact=pipo_contact,
                necessity_statement=necessity,
                notice_url=notice_url,
                self_service_url=self_service_url,
                minors_rules_url=minors_rules_url,
                accessibility=Accessibility(**{f: True for f in forms}) if forms else None,
                public_url=public_url,
            )
        if publish:
            _publish(settings, actor)
    except FacegateError as err:
        raise _fail(err) from err
    finally:
        store.dispose()
    typer.echo(
        "operator facts saved" + ("" if publish else "; publish with `docs notice --publish`")
    )


@register_app.command("signage")
def register_signage_cmd(
    ap: str = typer.Option(..., "--ap", help="Access point id."),
    where: str = typer.Option(..., "--where", help="Where the sign was put up."),
    placed_on: str = typer.Option(..., "--date", help="Date it went up (YYYY-MM-DD)."),
    actor: str = typer.Option("operator", "--actor", help="Who does this (audit log)."),
) -> None:
    """Record that the sign for the current notice is up at an access point (CAC-FR-13a)."""
    from facegate.audit import anchor as audit_anchor
    from facegate.compliance.live import place_signage

    settings = Settings()
    try:
        day = _day(placed_on, "--date")
        store = audit_anchor.open_store(settings)
        try:
            with store.session() as session:
                sign = place_signage(
                    session,
                    settings,
                    actor=actor,
                    access_point_id=ap,
                    placed_on=day,
                    location_note=where,
                )
        finally:
            store.dispose()
    except FacegateError as err:
        raise _fail(err) from err
    typer.echo(f"sign for notice v{sign.notice_version} recorded at {ap} ({where}, {day})")
