"""``facegate comply`` and ``facegate docs``: thin adapters over ``facegate.compliance``."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

import typer
from rich.console import Console

from facegate.compliance import report
from facegate.compliance.checks import CheckContext, run_checks
from facegate.compliance.documents import DOC_KINDS, write_documents
from facegate.compliance.inventory import inventory_schema, load_inventory
from facegate.compliance.model import Deployment
from facegate.config import Settings
from facegate.errors import FacegateError, InvalidInput


def _fail(err: FacegateError) -> typer.Exit:
    typer.echo(f"error: {err.message}", err=True)
    return typer.Exit(2)


def _load(inventory: Path | None, settings: Settings) -> tuple[Deployment, str]:
    if inventory is not None:
        return load_inventory(inventory), str(inventory)
    from facegate.compliance.live import live_deployment

    return live_deployment(settings), settings.database_url


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
        if lang not in ("zh-CN", "en"):
            raise InvalidInput(f"Unsupported language {lang!r}; use zh-CN or en.")
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
        typer.echo(
            json.dumps(report.to_json(d, found, ctx.as_of, source), ensure_ascii=False, indent=2)
        )
    else:
        report.print_table(Console(), d, found, lang, source)
    if html is not None:
        html.write_text(report.render_html(d, found, lang, ctx.as_of, source), encoding="utf-8")
        if not as_json:
            typer.echo(f"wrote {html}", err=True)
    if any(f.severity == "blocker" for f in found):
        raise typer.Exit(1)


def docs(
    kind: str = typer.Argument(..., help="notice | signage | pia | filing | minors"),
    out: Path = typer.Option(..., "--out", "-o", help="Directory to write the HTML into."),
    inventory: Path | None = typer.Option(None, "--inventory", "-i", help="YAML inventory."),
    lang: str = typer.Option("zh-CN", "--lang", help="zh-CN or en."),
) -> None:
    """Generate a compliance document from the deployment description."""
    try:
        if kind not in DOC_KINDS:
            raise InvalidInput(f"Unknown document {kind!r}; use one of {', '.join(DOC_KINDS)}.")
        if lang not in ("zh-CN", "en"):
            raise InvalidInput(f"Unsupported language {lang!r}; use zh-CN or en.")
        d, _ = _load(inventory, Settings())
        written = write_documents(d, kind, out, lang)
    except FacegateError as err:
        raise _fail(err) from err
    for path in written:
        typer.echo(str(path))
    if not written:
        typer.echo("no access point has face enabled; no sign written", err=True)
        sys.exit(0)
