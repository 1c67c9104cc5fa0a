"""``facegate site``: list, show and (re)name sites. Thin adapter over the domain."""

from __future__ import annotations

from pathlib import Path

import typer

from facegate import domain
from facegate.cli.store_cmds import DataDir, DbUrl, Json, _actor, _guard, _out, _session, _settings
from facegate.domain.activation import site_overview

site_app = typer.Typer(help="Sites: list, show, name or rename.", no_args_is_help=True)


@site_app.command("list")
def site_list(data_dir: Path = DataDir, db: str = DbUrl, as_json: bool = Json) -> None:
    """Every site with its name, whether face is on, and its head counts."""

    def go() -> None:
        with _session(_settings(data_dir, db)) as s:
            rows = site_overview(s)
        data = [
            {k: r[k] for k in ("id", "name", "face_enabled", "people", "enrolled")}
            | {"access_points": len(r["access_points"])}
            for r in rows
        ]
        lines = [
            f"{r['id']}  {r['name'] or '(no name yet: facegate site rename --name ...)'}"
            f"  face {'on' if r['face_enabled'] else 'off'}, {r['people']} active"
            f" {'person' if r['people'] == 1 else 'people'}, {r['access_points']}"
            f" access point{'' if r['access_points'] == 1 else 's'}"
            for r in data
        ]
        _out(as_json, data, "\n".join(lines) or "no site yet; run `facegate init` first")

    _guard(as_json, go)


@site_app.command("show")
def site_show(
    site_id: str = typer.Argument(None, help="Site id (default: the only site)."),
    data_dir: Path = DataDir,
    db: str = DbUrl,
    as_json: bool = Json,
) -> None:
    """One site: its name, operator, access points and head counts."""

    def go() -> None:
        with _session(_settings(data_dir, db)) as s:
            site = domain.get_site(s, site_id)
            row = next(r for r in site_overview(s) if r["id"] == site.id)
        aps = "\n".join(
            f"  {a['id']}  {a['name']} ({a['kind']}): {', '.join(a['methods'])}"
            f"; face {'on' if a['face_enabled'] else 'off'}"
            for a in row["access_points"]
        )
        _out(
            as_json,
            row,
            f"{row['id']}  {row['name'] or '(no name yet)'}\n"
            f"face {'on' if row['face_enabled'] else 'off'}; {row['people']} active, "
            f"{row['enrolled']} enrolled\naccess points:\n{aps or '  none yet'}",
        )

    _guard(as_json, go)


@site_app.command("rename")
def site_rename(
    name: str = typer.Option(..., "--name", help="The site's name, as residents know it."),
    site_id: str = typer.Option(None, "--site", help="Site id (default: the only site)."),
    data_dir: Path = DataDir,
    db: str = DbUrl,
    as_json: bool = Json,
) -> None:
    """Name or rename a site (the notice states its purpose with this name)."""

    def go() -> None:
        with _session(_settings(data_dir, db)) as s:
            site = domain.rename_site(s, actor=_actor(), name=name, site_id=site_id)
            data = {"id": site.id, "name": site.name}
        _out(
            as_json,
            data,
            f"site {data['id']} is now called {data['name']!r}; publish the notice so residents"
            " read it: facegate notice publish",
        )

    _guard(as_json, go)
