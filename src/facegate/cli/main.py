"""The ``facegate`` command. Each area registers its commands from its own module."""

from __future__ import annotations

import typer

from facegate import __version__
from facegate.cli import agent_cmds, comply_cmds, ops_cmds, site_cmds, store_cmds, vision_cmds
from facegate.cli.server_cmds import serve

app = typer.Typer(
    name="facegate",
    help="Face access control that is lawful by construction.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """Face access control that is lawful by construction."""


@app.command()
def version() -> None:
    """Print the facegate version."""
    typer.echo(__version__)


# Gate server (issue 6).
app.command()(serve)
# Recognition core (issue 4).
app.command()(vision_cmds.detect)
app.command()(vision_cmds.verify)
app.add_typer(vision_cmds.bench_app, name="bench")
# Liveness (issue 14).
app.command()(vision_cmds.liveness)
# People store (issue 5).
store_cmds.register(app)
app.add_typer(site_cmds.site_app, name="site")
ops_cmds.register(app, store_cmds.person_app)
# Compliance engine (issue 7).
app.command("comply")(comply_cmds.comply)
app.command("docs")(comply_cmds.docs)
app.add_typer(comply_cmds.face_app, name="face")
app.add_typer(comply_cmds.register_app, name="register")
# Camera agent at a door (issue 15).
app.command()(agent_cmds.agent)
