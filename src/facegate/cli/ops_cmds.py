"""Everyday operations from the command line: bulk import of residents, backup and restore,
running as a service. Thin adapters over the domain."""

from __future__ import annotations

import os
import shlex
import sys
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
from facegate.domain.backup import backup as backup_domain
from facegate.domain.backup import restore as restore_domain
from facegate.domain.importing import import_people, read_table
from facegate.errors import InvalidInput
from facegate.store.crypto import load_keyring


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
        settings = _settings(data_dir, db)
        keyring = None if dry_run else load_keyring(settings)
        with _session(settings) as s:
            res = import_people(
                s,
                raw,
                actor=_actor(),
                site_id=site_id,
                dry_run=dry_run,
                skip_invalid=skip_invalid,
                keyring=keyring,
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
            raise InvalidInput(f"no such file: {file}") from None

    _guard(as_json, guarded)


# --- backup and restore -------------------------------------------------------------------------

PassFile = typer.Option(
    None,
    "--passphrase-file",
    help="File holding the passphrase (default: FACEGATE_BACKUP_PASSPHRASE, else asked).",
)


def _passphrase(path: Path | None, *, confirm: bool) -> str:
    if path is not None:
        try:
            return path.read_text().rstrip("\n")
        except OSError as exc:
            raise InvalidInput(f"cannot read the passphrase file {path}: {exc.strerror}") from None
    env = os.environ.get("FACEGATE_BACKUP_PASSPHRASE")
    if env:
        return env
    if not sys.stdin.isatty():
        raise InvalidInput(
            "no passphrase: give --passphrase-file or set FACEGATE_BACKUP_PASSPHRASE"
        )
    return typer.prompt("Backup passphrase", hide_input=True, confirmation_prompt=confirm)


def backup(
    out: Path = typer.Option(..., "--out", help="The backup file to write (0600)."),
    passphrase_file: Path = PassFile,
    data_dir: Path = DataDir,
    db: str = DbUrl,
    as_json: bool = Json,
) -> None:
    """Back up the database and the data directory, encrypted with a passphrase.

    The site key travels inside the encrypted file, never in clear; keep the passphrase apart
    from the file. SQLite is copied online; PostgreSQL through pg_dump. The shred list goes
    with it, so a restore never brings back crypto-shredded face data."""

    def go() -> None:
        settings = _settings(data_dir, db)
        info = backup_domain(
            settings, out=out, passphrase=_passphrase(passphrase_file, confirm=True), actor=_actor()
        )
        data = {
            "file": str(info.path),
            "backend": info.backend,
            "created_at": info.created_at,
            "files": info.files,
            "shreds": info.shreds,
            "bytes": info.bytes,
        }
        _out(
            as_json,
            data,
            f"backup written to {info.path} ({info.bytes:,} bytes, {info.backend} database, "
            f"{len(info.files)} files, {info.shreds} shredded people listed)",
        )

    _guard(as_json, go)


def restore(
    file: Path = typer.Argument(..., help="A file written by `facegate backup`."),
    shred_list: list[Path] = typer.Option(
        None,
        "--shred-list",
        help="A newer backup (same passphrase) or shred list whose shreddings to replay.",
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing database."),
    passphrase_file: Path = PassFile,
    data_dir: Path = DataDir,
    db: str = DbUrl,
    as_json: bool = Json,
) -> None:
    """Restore a backup onto this machine (a new one, or this one with --force).

    Everything crypto-shredded since the backup was made is shredded again: what the replaced
    database records, what --shred-list files say, and the backup's own list. Then the audit
    chain is verified."""

    def go() -> None:
        settings = _settings(data_dir, db)
        res = restore_domain(
            settings,
            path=file,
            passphrase=_passphrase(passphrase_file, confirm=False),
            actor=_actor(),
            shred_sources=list(shred_list or []),
            force=force,
        )
        data = {
            "backup_created_at": res.backup_created_at,
            "files": res.files,
            "shreds_known": res.shreds_known,
            "shredded_again": res.shredded_again,
            "audit_ok": res.audit_ok,
            "audit_entries": res.audit_entries,
        }
        _out(
            as_json,
            data,
            f"restored the backup of {res.backup_created_at} into {settings.data_dir}; "
            f"{len(res.shredded_again)} shredded people shredded again; audit chain "
            f"{'intact' if res.audit_ok else 'BROKEN: run facegate audit verify'} "
            f"({res.audit_entries} entries)",
        )
        if not res.audit_ok:
            raise typer.Exit(1)

    _guard(as_json, go)


# --- running as a service -------------------------------------------------------------------------

service_app = typer.Typer(help="Run facegate as a systemd service.", no_args_is_help=True)

UNIT_TEMPLATE = """\
# facegate gate server: written by `facegate service install`.
# Logs go to the journal (journalctl -u {name}); journald rotates them
# (SystemMaxUse= in /etc/systemd/journald.conf). No frame or template is ever logged.
[Unit]
Description=facegate face access control (gate server, console, self-service)
Wants=network-online.target
After=network-online.target{after}

[Service]
Type=simple
User={user}
Group={user}
Environment=FACEGATE_DATA_DIR={data_dir}
ExecStart={exec_start}
Restart=on-failure
RestartSec=2
# The data directory holds the site key: nobody else may read it (CAC-FR-14).
UMask=0077
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=strict
ProtectHome=yes
ReadWritePaths={data_dir}
ProtectKernelTunables=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
"""


def unit_text(
    *,
    user: str,
    data_dir: Path,
    db: str | None,
    host: str,
    port: int,
    cert: Path | None,
    key: Path | None,
    self_signed: bool,
    name: str = "facegate",
) -> str:
    """The systemd unit for ``facegate serve`` with these options (one source for install and
    the printed unit)."""
    args = [sys.executable, "-m", "facegate", "serve", "--host", host, "--port", str(port)]
    args += ["--data-dir", str(data_dir)]
    if db:
        args += ["--db", db]
    if cert and key:
        args += ["--cert", str(cert), "--key", str(key)]
    elif self_signed:
        args.append("--self-signed")
    after = "\nAfter=postgresql.service" if db and db.startswith("postgres") else ""
    exec_start = " ".join(shlex.quote(a) for a in args)
    return UNIT_TEMPLATE.format(
        name=name, user=user, data_dir=data_dir, exec_start=exec_start, after=after
    )


def service_install(
    user: str = typer.Option("facegate", "--user", help="System user the service runs as."),
    data_dir: Path = typer.Option(
        Path("/var/lib/facegate"), "--data-dir", help="Data directory (site key, database)."
    ),
    db: str = typer.Option(None, "--db", help="Database URL (default: SQLite in the data dir)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Listen address."),
    port: int = typer.Option(8000, "--port", help="Listen port."),
    cert: Path = typer.Option(None, "--cert", help="TLS certificate (PEM)."),
    key: Path = typer.Option(None, "--key", help="TLS private key (PEM)."),
    self_signed: bool = typer.Option(False, "--self-signed", help="Make a certificate once."),
    unit_dir: Path = typer.Option(
        Path("/etc/systemd/system"), "--unit-dir", help="Where systemd reads units."
    ),
    print_only: bool = typer.Option(False, "--print", help="Print the unit, write nothing."),
) -> None:
    """Write a systemd unit for `facegate serve` and say the commands that start it.

    Beyond loopback the gate server needs TLS: give --cert/--key or --self-signed."""
    if host not in ("127.0.0.1", "::1", "localhost") and not (cert and key) and not self_signed:
        typer.echo(
            "error: a service listening beyond this machine needs TLS (CAC-FR-14): add "
            "--cert and --key, or --self-signed",
            err=True,
        )
        raise typer.Exit(1)
    text = unit_text(
        user=user,
        data_dir=data_dir,
        db=db,
        host=host,
        port=port,
        cert=cert,
        key=key,
        self_signed=self_signed,
    )
    if print_only:
        typer.echo(text, nl=False)
        return
    unit_dir.mkdir(parents=True, exist_ok=True)
    path = unit_dir / "facegate.service"
    path.write_text(text)
    path.chmod(0o644)
    typer.echo(
        f"wrote {path}. Then, as root:\n"
        f"  useradd --system --home {data_dir} --shell /usr/sbin/nologin {user}\n"
        f"  install -d -m 0700 -o {user} -g {user} {data_dir}\n"
        "  systemctl daemon-reload && systemctl enable --now facegate\n"
        "  journalctl -u facegate -f      # the first start prints the console's setup code"
    )


service_app.command("install")(service_install)


def register(app: typer.Typer, person_app: typer.Typer) -> None:
    person_app.command("import")(person_import)
    app.command("backup")(backup)
    app.command("restore")(restore)
    app.add_typer(service_app, name="service")
