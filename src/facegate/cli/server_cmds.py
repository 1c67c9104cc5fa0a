"""``facegate serve``: the gate server on the embedded SQLite default or PostgreSQL."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import typer

from facegate.config import Settings
from facegate.errors import FacegateError

log = logging.getLogger("facegate.server")

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost; anything else (0.0.0.0 too) reaches beyond the machine."""
    import ipaddress

    if host in _LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _settings(data_dir: Path | None, db: str | None, **extra: object) -> Settings:
    kwargs: dict[str, object] = {k: v for k, v in extra.items() if v is not None}
    if data_dir is not None:
        kwargs["data_dir"] = data_dir
    if db is not None:
        kwargs["db_url"] = db
    return Settings(**kwargs)


def _fail(exc: FacegateError) -> typer.Exit:
    typer.echo(f"error: {exc.message}", err=True)
    return typer.Exit(2 if exc.http_status < 500 else 1)


def ensure_initialised(settings: Settings) -> str | None:
    """Create the data directory, site key, database and first site when missing.

    Returns the id of the site created, or None when the data dir was ready. Safe to run
    every time: ``init_site`` changes nothing the second time.
    """
    from facegate.audit import anchor as audit_anchor
    from facegate.domain.identities import seal_plaintext_identities
    from facegate.domain.people import init_site
    from facegate.store.crypto import load_keyring
    from facegate.store.db import Store
    from facegate.store.models import Site

    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # issue 13 item 13
    keyring = load_keyring(settings, create=True)
    store = Store(settings.database_url)
    try:
        # The audit key and its first checkpoint come with the data directory (issue 13
        # item 17); an older install gets them on its first start.
        audit_anchor.ensure(settings, store)
        with store.session() as s:
            if s.query(Site.id).first() is not None:
                # Issue 13 item 15: names an older install kept in plaintext are sealed now.
                seal_plaintext_identities(s, keyring)
                return None
            result = init_site(s, settings, actor="facegate serve")
            return result.site_id
    finally:
        store.dispose()


def _first_run_code(settings: Settings) -> str | None:
    """A one-time setup code while no console account exists, else None."""
    from facegate.audit import anchor as audit_anchor
    from facegate.domain.accounts import issue_setup_code

    store = audit_anchor.open_store(settings)  # its audit entry is sealed like every other
    try:
        with store.session() as s:
            return issue_setup_code(s, settings, actor="facegate serve")
    finally:
        store.dispose()


def serve(
    db: str | None = typer.Option(
        None, "--db", help="Database URL; default: the SQLite file in the data directory"
    ),
    host: str = typer.Option("127.0.0.1", help="Listen address (loopback by default)"),
    port: int = typer.Option(8000, help="Listen port"),
    data_dir: Path | None = typer.Option(None, "--data-dir", envvar="FACEGATE_DATA_DIR"),
    workers: int | None = typer.Option(
        None, "--workers", help="Face inference threads (default from FACEGATE_INFERENCE_WORKERS)"
    ),
    tls_cert: Path | None = typer.Option(
        None, "--tls-cert", "--cert", help="PEM certificate for HTTPS"
    ),
    tls_key: Path | None = typer.Option(
        None, "--tls-key", "--key", help="PEM private key for HTTPS"
    ),
    events: list[str] | None = typer.Option(
        None,
        "--events",
        help="Publish every access decision to this destination (repeatable): "
        "mqtt://host:1883/PREFIX (optional), mqtts://..., https://host/path#secret=SECRET "
        "(see docs/events.md). Adds to FACEGATE_EVENTS.",
    ),
    self_signed: bool = typer.Option(
        False,
        "--self-signed",
        help="Make (once) a self-signed certificate in the data directory and serve HTTPS: "
        "phones and tablets give the camera only to secure pages",
    ),
    insecure_http: bool = typer.Option(
        False,
        "--insecure-http",
        help="Serve plain HTTP beyond loopback (e.g. behind a TLS-terminating proxy). Without "
        "it, a non-loopback address needs TLS (CAC-FR-14); `facegate comply` reports the choice",
    ),
) -> None:
    """Run the gate server (REST decision API, admin routes, /healthz, /metrics)."""
    import uvicorn

    # Issue 13 item 13 (CAC-FR-14): everything this process creates (data directory, models/,
    # tls/, the database, keys, caches) is owner-only: directories 0700, files 0600.
    os.umask(0o077)
    # Issue 13 item 3: large image buffers go back to the system when freed.
    from facegate.vision.decode import tune_malloc

    tune_malloc()

    from facegate.access.single_process import lock_for_database
    from facegate.api import create_app
    from facegate.api.observability import configure_logging

    try:
        settings = _settings(
            data_dir,
            db,
            host=host,
            port=port,
            inference_workers=workers,
            insecure_http=insecure_http or None,
        )
        if events:
            settings = Settings(
                **{**settings.model_dump(exclude_unset=True), "events": settings.events + events}
            )
    except ValueError as exc:
        # The sentences only: pydantic's own text repeats the input, which for an event
        # destination may hold a webhook secret.
        errors = getattr(exc, "errors", None)
        text = "; ".join(e["msg"] for e in errors()) if callable(errors) else str(exc)
        typer.echo(f"error: invalid configuration: {text}", err=True)
        raise typer.Exit(2) from None
    tls = bool(tls_cert and tls_key) or self_signed
    if not is_loopback(host) and not tls and not settings.insecure_http:
        # CAC-FR-14: TLS on the LAN. Plain HTTP beyond loopback only when asked for by name.
        typer.echo(
            f"error: refusing to serve plain HTTP on {host} (beyond loopback; CAC-FR-14). Pass "
            "--tls-cert and --tls-key, or --self-signed, or --insecure-http if a TLS proxy "
            "sits in front of this server",
            err=True,
        )
        raise typer.Exit(2)
    configure_logging(settings.log_json)
    try:
        # With SQLite one process serves; hold the lock for the whole process lifetime.
        lock = lock_for_database(settings.database_url)
        created = ensure_initialised(settings)
    except FacegateError as exc:
        raise _fail(exc) from None
    if created:
        log.info("initialised a new data directory", extra={"fields": {"site": created}})
    if self_signed and not (tls_cert and tls_key):
        from facegate.web.tls import self_signed_pair

        tls_cert, tls_key = self_signed_pair(settings.data_dir, host)
    if not is_loopback(host) and not (tls_cert and tls_key):
        # Only reached with --insecure-http: said loudly, and recorded for `facegate comply`.
        log.warning("listening beyond loopback without TLS (--insecure-http)")
    try:
        from facegate.compliance.live import record_listener

        record_listener(settings, host, port, tls=bool(tls_cert and tls_key))
    except FacegateError as exc:
        raise _fail(exc) from None
    setup_code = _first_run_code(settings)
    app = create_app(settings, warm_up=True)
    scheme = "https" if tls_cert and tls_key else "http"
    backend = "PostgreSQL" if settings.database_url.startswith("postgres") else "SQLite"
    typer.echo(
        f"facegate serving on {scheme}://{host}:{port} (database: {backend}, data: "
        f"{settings.data_dir}). Make a key for one gate with: facegate keys create --scope "
        "gate:decide --access-point ID (ids: facegate access-point list)",
        err=True,
    )
    from facegate.web.tls import open_urls

    urls = open_urls(host, port, bool(tls_cert and tls_key))
    typer.echo(f"Open the console at: {'  or  '.join(urls)}", err=True)
    if settings.events:
        from facegate.edge.events import redact

        names = ", ".join(redact(u) for u in settings.events)
        typer.echo(f"Publishing access events to: {names}", err=True)
    if self_signed:
        typer.echo(
            "The certificate is self-signed: each phone or tablet asks once to accept it.",
            err=True,
        )
    if setup_code:
        # Issue 13 item 6: only someone who sees this console may create the first admin.
        typer.echo(
            f"First run: no console account exists yet. Open /console/setup and enter the "
            f"setup code {setup_code} (valid once, for {settings.web_setup_code_minutes} "
            "minutes), or run `facegate admin create` on this machine.",
            err=True,
        )
    from facegate.api.connections import raise_fd_limit, uvicorn_options

    # Issue 13 item 4: header deadline, keep-alive, connection cap, and the descriptors for it.
    raise_fd_limit(settings.max_connections + 1024)
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            ssl_certfile=str(tls_cert) if tls_cert else None,
            ssl_keyfile=str(tls_key) if tls_key else None,
            **uvicorn_options(settings),
        )
    finally:
        if lock is not None:
            lock.release()
