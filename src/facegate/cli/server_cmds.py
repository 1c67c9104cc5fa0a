"""``facegate serve``: the gate server on the embedded SQLite default or PostgreSQL."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from facegate.config import Settings
from facegate.errors import FacegateError

log = logging.getLogger("facegate.server")

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


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
    from facegate.domain.people import init_site
    from facegate.store.crypto import load_keyring
    from facegate.store.db import Store
    from facegate.store.models import Site

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    load_keyring(settings, create=True)
    store = Store(settings.database_url)
    try:
        # The audit key and its first checkpoint come with the data directory (issue 13
        # item 17); an older install gets them on its first start.
        audit_anchor.ensure(settings, store)
        with store.session() as s:
            if s.query(Site.id).first() is not None:
                return None
            result = init_site(s, settings, actor="facegate serve")
            return result.site_id
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
    self_signed: bool = typer.Option(
        False,
        "--self-signed",
        help="Make (once) a self-signed certificate in the data directory and serve HTTPS: "
        "phones and tablets give the camera only to secure pages",
    ),
) -> None:
    """Run the gate server (REST decision API, admin routes, /healthz, /metrics)."""
    import uvicorn

    from facegate.access.single_process import lock_for_database
    from facegate.api import create_app
    from facegate.api.observability import configure_logging

    try:
        settings = _settings(data_dir, db, host=host, port=port, inference_workers=workers)
    except ValueError as exc:
        typer.echo(f"error: invalid configuration: {exc}", err=True)
        raise typer.Exit(2) from None
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
    if host not in _LOOPBACK and not (tls_cert and tls_key):
        # CAC-FR-14: TLS on the LAN. Allowed (a gate may sit behind a TLS proxy) but said loudly.
        log.warning("listening beyond loopback without TLS; pass --tls-cert and --tls-key")
    app = create_app(settings, warm_up=True)
    scheme = "https" if tls_cert and tls_key else "http"
    backend = "PostgreSQL" if settings.database_url.startswith("postgres") else "SQLite"
    typer.echo(
        f"facegate serving on {scheme}://{host}:{port} (database: {backend}, data: "
        f"{settings.data_dir}). Make a gate key with: facegate keys create --scope gate:decide",
        err=True,
    )
    from facegate.web.tls import open_urls

    urls = open_urls(host, port, bool(tls_cert and tls_key))
    typer.echo(f"Open the console at: {'  or  '.join(urls)}", err=True)
    if self_signed:
        typer.echo(
            "The certificate is self-signed: each phone or tablet asks once to accept it.",
            err=True,
        )
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            ssl_certfile=str(tls_cert) if tls_cert else None,
            ssl_keyfile=str(tls_key) if tls_key else None,
        )
    finally:
        if lock is not None:
            lock.release()
