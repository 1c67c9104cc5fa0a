"""Everyday operations from the command line: bulk import of residents, backup and restore,
running as a service. Thin adapters over the domain."""

from __future__ import annotations

from pathlib import Path

import typer

from facegate.cli.store_cmds import (
    DataDir,
    DbUrl,
    Json,
    _actor,
    _guard,
    _out,
    _session,
    _settings,
)
from facegate.domain.importing import import_people, read_table


def person_import(
    file: Path = typer.Argument(..., help="CSV or .xlsx export: name, unit, category, card..."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check every row, write nothing."),
    skip_invalid: bool = typer.Option(
        False, "--skip-invalid", help="Import the valid rows and list the others."
    ),
    site_id: str = typer.Option(None, "--site", help="Site id (default: the only site)."),
    data_dir: Path = DataDir,
    db: str = DbUrl,
    as_json: bool = Json,
) -> None:
    """Import residents from a property-management system's CSV or Excel file.

    Columns (English or Chinese headers): name/姓名, unit/房号, category/类别 (resident,
    tenant, guest, staff, visitor or 业主, 租户, 住客, 员工, 访客), contact/电话, card/卡号,
    pin/密码, move_in/入住日期, move_out/搬离日期. Every row is checked first; nothing is
    written unless all rows are valid (or --skip-invalid). Never imports photos or consent:
    each person gives or refuses consent themselves."""

    def go() -> None:
        if not file.is_file():
            raise FileNotFoundError(file)
        raw = read_table(file.read_bytes(), file.name)
        with _session(_settings(data_dir, db)) as s:
            res = import_people(
                s, raw, actor=_actor(), site_id=site_id, dry_run=dry_run, skip_invalid=skip_invalid
            )
        lines = [str(e) for e in res.errors]
        if dry_run:
            head = f"checked {res.rows} rows: {res.valid} can be imported; nothing written"
        else:
            head = f"imported {len(res.person_ids)} of {res.rows} rows (import {res.import_id})"
        if res.errors:
            head += f"; {len({e.row for e in res.errors})} rows skipped:"
        _out(as_json, res.to_dict(), "\n".join([head, *lines]))

    def guarded() -> None:
        try:
            go()
        except FileNotFoundError:
            from facegate.errors import InvalidInput

            raise InvalidInput(f"no such file: {file}") from None

    _guard(as_json, guarded)


def register(app: typer.Typer, person_app: typer.Typer) -> None:
    person_app.command("import")(person_import)
