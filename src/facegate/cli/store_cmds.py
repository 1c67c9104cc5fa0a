"""CLI of the people store: init, person, consent, enroll, rights, purge, keys, audit, notice.

Thin adapter: parse input, call one domain function, render the result (``--json`` for
machines). Errors print their message on stderr and exit with status 1; nothing is
half-written because every domain function is one transaction.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import typer

from facegate import audit, domain
from facegate.audit import anchor as audit_anchor
from facegate.config import Settings
from facegate.domain.identities import seal_plaintext_identities
from facegate.errors import FacegateError, InvalidInput, NoticeIncomplete
from facegate.store.crypto import Keyring, load_keyring
from facegate.store.db import Store

T = TypeVar("T")

DataDir = typer.Option(None, "--data-dir", help="Data directory (default: FACEGATE_DATA_DIR).")
DbUrl = typer.Option(None, "--db", help="Database URL (default: SQLite in the data directory).")
Json = typer.Option(False, "--json", help="Print JSON.")

person_app = typer.Typer(
    help="Register and inspect people (pseudonymous ids).", no_args_is_help=True
)
consent_app = typer.Typer(help="Record or withdraw face-recognition consent.", no_args_is_help=True)
rights_app = typer.Typer(
    help="Answer rights requests: export, correct, erase.", no_args_is_help=True
)
keys_app = typer.Typer(help="Site key rotation and API keys.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
notice_app = typer.Typer(help="The privacy notice (processing rules).", no_args_is_help=True)
ap_app = typer.Typer(help="Access points (gates, doors, elevators).", no_args_is_help=True)
admin_app = typer.Typer(
    help="Console accounts, made on the machine itself (no default password exists).",
    no_args_is_help=True,
)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no user name in some containers
        return "cli"


def _settings(data_dir: Path | None, db: str | None) -> Settings:
    kwargs: dict[str, Any] = {}
    if data_dir is not None:
        kwargs["data_dir"] = data_dir
    if db is not None:
        kwargs["db_url"] = db
    return Settings(**kwargs)


@contextmanager
def _session(settings: Settings, *, create_audit_key: bool = False) -> Iterator[Any]:
    store = Store(settings.database_url)
    anchor = None
    try:
        # Entries are sealed and the head checkpointed with the audit key (issue 13 item 17).
        if create_audit_key:
            anchor = audit_anchor.ensure(settings, store)
        else:
            anchor = audit_anchor.attach(store, settings)
        with store.session() as s:
            yield s
    finally:
        try:
            audit_anchor.flush_refusals(store)
        finally:
            store.dispose()
            if anchor is not None:
                anchor.close()


def _fail(message: str, code: str, as_json: bool, details: dict | None = None) -> None:
    if as_json:
        body: dict[str, Any] = {"code": code, "message": message}
        if details:
            body["details"] = details
        typer.echo(json.dumps(body, ensure_ascii=False, default=str), err=True)
    else:
        typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _guard(as_json: bool, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except FacegateError as exc:
        _fail(exc.message, exc.code, as_json, exc.details)
    except ValueError as exc:  # settings validation and the like
        _fail(str(exc), "invalid_input", as_json)
    raise AssertionError("unreachable")


def _out(as_json: bool, data: Any, human: str) -> None:
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False, indent=1, default=str))
    else:
        typer.echo(human)


def _date(value: str | None, what: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"{what} must be a date like 2015-06-30") from exc


def _datetime(value: str | None, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"{what} must be a date or time like 2026-12-31T12:00") from exc
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def _keyring(settings: Settings) -> Keyring:
    return load_keyring(settings)


def load_pipeline(settings: Settings) -> Any:
    """The face pipeline, loaded only by the commands that need it."""
    from facegate.vision import FacePipeline  # heavy models: loaded on demand only

    return FacePipeline(settings)


# --- init --------------------------------------------------------------------------------------


def init(
    operator_name: str = typer.Option(None, help="Legal name of the processor (notice N1)."),
    operator_address: str = typer.Option(None, help="Address of the processor (N1)."),
    operator_contact: str = typer.Option(None, help="Phone or e-mail of the processor (N1)."),
    pipo_contact: str = typer.Option(None, help="PI protection officer contact, if any (N1)."),
    site_name: str = typer.Option(None, help="Name of the compound, hotel or office."),
    data_dir: Path = DataDir,
    db: str = DbUrl,
    as_json: bool = Json,
) -> None:
    """Create the data directory, site key (0600), database, organisation, site and notice.

    On an existing install (for example after ``facegate serve``) it updates the operator
    facts and the site name it is given, and says what changed."""

    def go() -> None:
        settings = _settings(data_dir, db)
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        keyring = load_keyring(settings, create=True)
        with _session(settings, create_audit_key=True) as s:
            res = domain.init_site(
                s,
                settings,
                actor=_actor(),
                operator_name=operator_name,
                operator_address=operator_address,
                operator_contact=operator_contact,
                pipo_contact=pipo_contact,
                site_name=site_name,
            )
            seal_plaintext_identities(s, keyring)  # an older install's names (issue 13 #15)
        data = {
            "created": res.created,
            "updated": list(res.updated),
            "organization_id": res.organization_id,
            "site_id": res.site_id,
            "notice_version": res.notice_version,
            "notice_sha256": res.notice_sha256,
            "data_dir": str(settings.data_dir),
            "key_id": keyring.active.key_id,
        }
        data["notice_missing"] = list(res.notice_missing)
        if res.created:
            word = "initialised"
        elif res.updated:
            word = "already initialised; updated " + ", ".join(res.updated)
        else:
            word = "already initialised; nothing changed"
        notice = (
            f"notice v{res.notice_version}"
            if res.notice_version
            else "notice not published yet: a notice lacking a required field is only a draft "
            "(CAC-FR-05a); `facegate notice show` says what is missing, then run "
            "`facegate notice publish`"
        )
        hint = (
            "\nPublish the notice so residents read the change: facegate notice publish"
            if res.updated
            else ""
        )
        _out(
            as_json,
            data,
            f"facegate {word}: site {res.site_id}, {notice} ({settings.data_dir}){hint}",
        )

    _guard(as_json, go)


# --- access points and notice ----------------------------------------------------------------


@ap_app.command("add")
def ap_add(
    name: str,
    kind: str = typer.Option(..., help="gate, door, elevator, lobby or kiosk"),
    methods: str = typer.Option(..., help="Comma-separated: face,card,pin,qr,staffed"),
    location_type: str = typer.Option("entrance", help="entrance, lobby, elevator, ..."),
    liveness: str | None = typer.Option(
        None, help="passive, challenge or off (default: challenge at a kiosk, else passive)"
    ),
    data_dir: Path = DataDir,
    db: str = DbUrl,
    as_json: bool = Json,
) -> None:
    """Add an access point; face is never accepted as its only method."""

    def go() -> None:
        settings = _settings(data_dir, db)
        with _session(settings) as s:
            ap = domain.add_access_point(
                s,
                actor=_actor(),
                name=name,
                kind=kind,
                methods=[m.strip() for m in methods.split(",") if m.strip()],
                location_type=location_type,
                liveness=liveness,
            )
            _out(
                as_json,
                {
                    "id": ap.id,
                    "name": ap.name,
                    "kind": ap.kind,
                    "methods": ap.methods,
                    "liveness": ap.liveness,
                },
                f"{ap.id}  {ap.name}  {ap.kind}  {','.join(ap.methods)}  liveness={ap.liveness}",
            )

    _guard(as_json, go)


@ap_app.command("liveness")
def ap_liveness(
    access_point_id: str,
    policy: str = typer.Argument(..., help="passive, challenge or off"),
    data_dir: Path = DataDir,
    db: str = DbUrl,
    as_json: bool = Json,
) -> None:
    """Set an access point's liveness check; off only with a card, PIN or QR pass (1:1)."""

    def go() -> None:
        with _session(_settings(data_dir, db)) as s:
            ap = domain.set_access_point_liveness(
                s, actor=_actor(), access_point_id=access_point_id, policy=policy
            )
            data = {"id": ap.id, "liveness": ap.liveness}
            _out(as_json, data, f"{ap.id}  liveness={ap.liveness}")

    _guard(as_json, go)


@ap_app.command("list")
def ap_list(data_dir: Path = DataDir, db: str = DbUrl, as_json: bool = Json) -> None:
    """List access points."""

    def go() -> None:
        with _session(_settings(data_dir, db)) as s:
            aps = domain.list_access_points(s)
            data = [
                {
                    "id": a.id,
                    "name": a.name,
                    "kind": a.kind,
                    "methods": a.methods,
                    "location_type": a.location_type,
                    "face_enabled": a.face_enabled,
                }
                for a in aps
            ]
            _out(
                as_json,
                data,
                "\n".join(
                    f"{a['id']}  {a['name']}  {a['kind']}  {','.join(a['methods'])}" for a in data
                )
                or "no access points",
            )

    _guard(as_json, go)


@notice_app.command("show")
def notice_show(data_dir: Path = DataDir, db: str = DbUrl, as_json: bool = Json) -> None:
    """Print the current notice version."""

    def go() -> None:
        settings = _settings(data_dir, db)
        with _session(settings) as s:
            site = domain.get_site(s, None)
            n = domain.current_notice(s, site.id)
            if n is None:  # only a draft so far: preview it and say what it lacks
                fields = domain.site_notice_fields(s, settings, site)
                missing = domain.missing_notice_fields(fields)
                zh, en = domain.describe_missing(missing)
                _out(
                    as_json,
                    {"version": None, "draft": True, "fields": fields, "missing": list(missing)},
                    "DRAFT (not published)\n"
                    + domain.render_notice_text(fields, site.name)
                    + (f"\nmissing: {en}\n缺少：{zh}" if missing else ""),
                )
                return
            _out(
                as_json,
                {
                    "version": n.version,
                    "sha256": n.sha256,
                    "fields": n.fields,
                    "requires_reconsent": n.requires_reconsent,
                    "effective_at": n.effective_at.isoformat(),
                    "text": n.text,
                },
                n.text + f"\nsha256: {n.sha256}",
            )

    _guard(as_json, go)


# The option of `notice publish` that fills each field a notice may lack (CAC-FR-05a).
_NOTICE_OPTIONS = (
    ("N6", "--necessity"),
    ("N9", "--minors-rules-link"),
    ("N11", "--public-url (or --notice-link)"),
    ("N13", "--accessibility"),
)


@notice_app.command("publish")
def notice_publish(
    necessity: str = typer.Option("", help="Why face recognition is necessary here (N6)."),
    processors: str = typer.Option("", help="Vendors or entrusted processors, or 'none' (N3)."),
    accessibility: str = typer.Option("", help="The accessible version offered (N13)."),
    minors_rules_link: str = typer.Option("", help="Where the minors' rules are (N9)."),
    notice_link: str = typer.Option(
        "", help="URL the signage QR code opens (N11); default: PUBLIC_URL/notice."
    ),
    public_url: str = typer.Option(
        "",
        "--public-url",
        help="The HTTPS address residents' phones reach this server at (signs, invitations).",
    ),
    data_dir: Path = DataDir,
    db: str = DbUrl,
    as_json: bool = Json,
) -> None:
    """Publish the notice; the facts given are kept (the console shows and publishes the same).

    A changed purpose, method, data, retention or scope asks everyone to consent again."""

    def go() -> None:
        from facegate.compliance.live import publish_notice_with

        settings = _settings(data_dir, db)
        with _session(settings) as s:
            try:
                n = publish_notice_with(
                    s,
                    settings,
                    actor=_actor(),
                    necessity=necessity,
                    processors=processors,
                    accessibility=accessibility,
                    minors_rules_url=minors_rules_link,
                    notice_url=notice_link,
                    public_url=public_url,
                )
            except NoticeIncomplete as exc:
                # Which option of this command fills each missing field.
                wanted = [f"{k} {o}" for k, o in _NOTICE_OPTIONS if k in exc.details["missing"]]
                raise NoticeIncomplete(
                    f"{exc.message} Options: {'; '.join(wanted)}.", **exc.details
                ) from None
            # The first version asks nobody to renew: nobody has consented yet.
            renew = n.requires_reconsent and n.version > 1
            _out(
                as_json,
                {
                    "version": n.version,
                    "sha256": n.sha256,
                    "requires_reconsent": n.requires_reconsent,
                },
                f"notice v{n.version} ({n.sha256[:12]})"
                + ("; everyone must renew consent" if renew else ""),
            )

    _guard(as_json, go)


# --- people ----------------------------------------------------------------------------------


@person_app.command("add")
def person_add(
    category: str = typer.Option(..., help="resident, tenant, guest, staff or visitor"),
    birth_date: str = typer.Option(None, help="YYYY-MM-DD; under-14s need a guardian."),
    minor: bool = typer.Option(False, "--minor", help="Under 14 (when no birth date is known)."),
    name: str = typer.Option("", help="Kept apart from any face data."),
    contact: str = typer.Option(""),
    unit: str = typer.Option("", help="Unit or room."),
    ends_at: str = typer.Option(None, help="Move-out, lease end, checkout or employment end."),
    data_dir: Path = DataDir,
    db: str = DbUrl,
    as_json: bool = Json,
) -> None:
    """Register a person and print their pseudonymous id (this is not consent)."""

    def go() -> None:
        settings = _settings(data_dir, db)
        keyring = _keyring(settings) if (name or contact or unit) else None
        with _session(settings) as s:
            p = domain.add_person(
                s,
                keyring=keyring,
                actor=_actor(),
                category=category,
                birth_date=_date(birth_date, "--birth-date"),
                minor_under_14=minor,
                name=name,
                contact=contact,
                unit=unit,
                relationship_ends_at=_datetime(ends_at, "--ends-at"),
            )
            _out(as_json, {"id": p.id, "category": p.category}, p.id)

    _guard(as_json, go)


@person_app.command("list")
def person_list(data_dir: Path = DataDir, db: str = DbUrl, as_json: bool = Json) -> None:
    """List people (pseudonyms and categories; no names)."""

    def go() -> None:
        with _session(_settings(data_dir, db)) as s:
            data = [
                {"id": p.id, "category": p.category, "created_at": p.created_at.isoformat()}
                for p in domain.list_persons(s)
            ]
            _out(
                as_json, data, "\n".join(f"{d['id']}  {d['category']}" for d in data) or "no people"
            )

    _guard(as_json, go)


@person_app.command("show")
def person_show(
    person_id: str, data_dir: Path = DataDir, db: str = DbUrl, as_json: bool = Json
) -> None:
    """Consents, credentials and templates (ids, model, date; never vectors) of a person."""

    def go() -> None:
        with _session(_settings(data_dir, db)) as s:
            data = domain.person_summary(s, person_id)
            _out(as_json, data, json.dumps(data, ensure_ascii=False, indent=1, default=str))

    _guard(as_json, go)


# --- consent and enrollment ------------------------------------------------------------------


@consent_app.command("record")
def consent_record(
    person_id: str,
    guardian: str = typer.Option(None, "--guardian", help="Guardian's id, for an under-14."),
    relation: str = typer.Option(None, help="Guardian's relation, e.g. mother."),
    channel: str = typer.Option("front_desk", help="front_desk, web, kiosk, terminal, app"),
    scope: list[str] = typer.Option(None, "--scope", help="Access point id (repeatable)."),
    data_dir: Path = DataDir,
    db: str = DbUrl,
    as_json: bool = Json,
) -> None:
    """Record the person's separate consent to the current notice version."""

    def go() -> None:
        with _session(_settings(data_dir, db)) as s:
            c = domain.record_consent(
                s,
                actor=_actor(),
                person_id=person_id,
                channel=channel,
                guardian_id=guardian,
                guardian_relation=relation,
                scope=scope or None,
            )
            _out(
                as_json,
                {
                    "id": c.id,
                    "person_id": c.person_id,
                    "scope": c.scope,
                    "notice_sha256": c.notice_sha256,
                    "guardian_id": c.guardian_id,
                },
                f"consent {c.id} recorded",
            )

    _guard(as_json, go)


@consent_app.command("withdraw")
def consent_withdraw(
    person_id: str,
    channel: str = typer.Option("front_desk"),
    data_dir: Path = DataDir,
    db: str = DbUrl,
    as_json: bool = Json,
) -> None:
    """Withdraw consent: face data erased now; access continues by card, PIN or QR."""

    def go() -> None:
        with _session(_settings(data_dir, db)) as s:
            r = domain.withdraw(s, actor=_actor(), person_id=person_id, channel=channel)
            data = {
                "person_id": r.person_id,
                "templates_erased": r.templates_erased,
                "key_destroyed": r.key_destroyed,
                "consents_withdrawn": r.consents_withdrawn,
                "issued_qr_pass": r.issued.secret if r.issued else None,
                "issued_qr_code": r.issued.code if r.issued else None,
            }
            human = f"withdrawn; {r.templates_erased} template(s) erased"
            if r.issued:
                human += f"\nnew QR pass (shown once): {r.issued.secret}"
                if r.issued.code:
                    human += f"\nits short code to type: {r.issued.code}"
            _out(as_json, data, human)

    _guard(as_json, go)


@consent_app.command("decline")
def consent_decline(
    person_id: str,
    channel: str = typer.Option("front_desk"),
    data_dir: Path = DataDir,
    db: str = DbUrl,
    as_json: bool = Json,
) -> None:
    """Record a 'no thanks' to face: access continues by card, PIN or QR."""

    def go() -> None:
        with _session(_settings(data_dir, db)) as s:
            r = domain.decline_face(s, actor=_actor(), person_id=person_id, channel=channel)
            data = {
                "person_id": r.person_id,
                "templates_erased": r.templates_erased,
                "issued_qr_pass": r.issued.secret if r.issued else None,
                "issued_qr_code": r.issued.code if r.issued else None,
            }
            human = "declined; access continues by card, PIN or QR"
            if r.issued:
                human += f"\nnew QR pass (shown once): {r.issued.secret}"
                if r.issued.code:
                    human += f"\nits short code to type: {r.issued.code}"
            _out(as_json, data, human)

    _guard(as_json, go)


def enroll(
    person_id: str,
    images: list[Path] = typer.Argument(..., help="One or more photos of the person."),
    data_dir: Path = DataDir,
    db: str = DbUrl,
    as_json: bool = Json,
) -> None:
    """Enroll a consenting person's face (strict quality); images are not kept."""

    def go() -> None:
        settings = _settings(data_dir, db)
        blobs = []
        for p in images:
            if not p.is_file():
                raise InvalidInput(f"{p} is not a file")
            blobs.append(p.read_bytes())
        keyring = _keyring(settings)
        with _session(settings) as s:
            domain.get_person(s, person_id)  # fail fast, before loading the models
            pipe = load_pipeline(settings)
            r = domain.enroll(s, keyring, pipe, actor=_actor(), person_id=person_id, images=blobs)
            _out(
                as_json,
                {"person_id": r.person_id, "template_ids": r.template_ids, "model_id": r.model_id},
                f"enrolled {r.person_id}: {len(r.template_ids)} template(s), {r.model_id}",
            )

    _guard(as_json, go)


# --- rights ----------------------------------------------------------------------------------


@rights_app.command("list")
def rights_list(
    open_only: bool = typer.Option(False, "--open", help="Only requests still to answer."),
    data_dir: Path = DataDir,
    db: str = DbUrl,
    as_json: bool = Json,
) -> None:
    """Rights requests with their deadlines, soonest first (PIPL-50)."""

    def go() -> None:
        with _session(_settings(data_dir, db)) as s:
            rows = domain.list_rights_requests(s, open_only=open_only)
            data = [
                {
                    "id": r.id,
                    "person_id": r.person_id,
                    "kind": r.kind,
                    "status": r.status,
                    "received_at": r.received_at.isoformat(),
                    "deadline_at": r.deadline_at.isoformat(),
                    "outcome": r.outcome,
                    "rejection_reason": r.rejection_reason,
                }
                for r in rows
            ]
            human = "\n".join(
                f"{d['id']}  {d['kind']:<11} {d['status']:<8} due {d['deadline_at'][:10]}  "
                f"{d['person_id']}"
                for d in data
            )
            _out(as_json, data, human or "no rights requests")

    _guard(as_json, go)


@rights_app.command("request")
def rights_request(
    person_id: str,
    kind: str = typer.Option(
        ..., help="access, export, correction, erasure, withdrawal, explanation"
    ),
    channel: str = typer.Option("front_desk"),
    data_dir: Path = DataDir,
    db: str = DbUrl,
    as_json: bool = Json,
) -> None:
    """Record a request to answer later; its deadline is set from the configuration."""

    def go() -> None:
        settings = _settings(data_dir, db)
        with _session(settings) as s:
            r = domain.submit_rights_request(
                s, settings, actor=_actor(), person_id=person_id, kind=kind, channel=channel
            )
            _out(
                as_json,
                {"id": r.id, "kind": r.kind, "deadline_at": r.deadline_at.isoformat()},
                f"request {r.id} recorded; answer by {r.deadline_at:%Y-%m-%d}",
            )

    _guard(as_json, go)


@rights_app.command("reject")
def rights_reject(
    request_id: str,
    reason: str = typer.Option(..., help="Told to the person (PIPL-50)."),
    data_dir: Path = DataDir,
    db: str = DbUrl,
    as_json: bool = Json,
) -> None:
    """Reject an open request, with the reason the person is given."""

    def go() -> None:
        with _session(_settings(data_dir, db)) as s:
            r = domain.reject_rights_request(
                s, actor=_actor(), request_id=request_id, reason=reason
            )
            _out(as_json, {"id": r.id, "status": r.status}, f"request {r.id} rejected")

    _guard(as_json, go)


@rights_app.command("export")
def rights_export(
    person_id: str,
    out: Path = typer.Option(None, "--out", help="Write the JSON here instead of stdout."),
    channel: str = typer.Option("front_desk"),
    data_dir: Path = DataDir,
    db: str = DbUrl,
    as_json: bool = Json,
) -> None:
    """Export what is kept about a person as JSON (no template, no image)."""

    def go() -> None:
        settings = _settings(data_dir, db)
        with _session(settings) as s:
            data = domain.export_my_data(
                s,
                settings,
                actor=_actor(),
                person_id=person_id,
                channel=channel,
                keyring=_keyring(settings),
            )
        text = json.dumps(data, ensure_ascii=False, indent=1, default=str)
        if out is not None:
            out.write_text(text + "\n")
            _out(as_json, {"written": str(out)}, f"written to {out}")
        else:
            typer.echo(text)

    _guard(as_json, go)


@rights_app.command("correct")
def rights_correct(
    person_id: str,
    name: str = typer.Option(None),
    contact: str = typer.Option(None),
    unit: str = typer.Option(None),
    category: str = typer.Option(None),
    birth_date: str = typer.Option(None, help="YYYY-MM-DD"),
    ends_at: str = typer.Option(None, help="New end of the relationship."),
    channel: str = typer.Option("front_desk"),
    data_dir: Path = DataDir,
    db: str = DbUrl,
    as_json: bool = Json,
) -> None:
    """Correct a person's data."""
    from facegate.domain.rights import _UNSET

    def go() -> None:
        settings = _settings(data_dir, db)
        with _session(settings) as s:
            p = domain.correct(
                s,
                settings,
                actor=_actor(),
                person_id=person_id,
                name=name,
                contact=contact,
                unit=unit,
                category=category,
                birth_date=_date(birth_date, "--birth-date") if birth_date else _UNSET,
                relationship_ends_at=_datetime(ends_at, "--ends-at") if ends_at else _UNSET,
                channel=channel,
                keyring=_keyring(settings),
            )
            _out(as_json, {"id": p.id, "corrected": True}, f"corrected {p.id}")

    _guard(as_json, go)


@rights_app.command("erase")
def rights_erase(
    person_id: str,
    yes: bool = typer.Option(False, "--yes", help="Confirm: erasure cannot be undone."),
    channel: str = typer.Option("front_desk"),
    data_dir: Path = DataDir,
    db: str = DbUrl,
    as_json: bool = Json,
) -> None:
    """Erase a person: face data, key, identity and credentials."""

    def go() -> None:
        if not yes:
            raise InvalidInput("erasure cannot be undone; add --yes to confirm")
        settings = _settings(data_dir, db)
        with _session(settings) as s:
            r = domain.erase(s, settings, actor=_actor(), person_id=person_id, channel=channel)
            _out(
                as_json,
                {
                    "person_id": r.person_id,
                    "templates_erased": r.templates_erased,
                    "key_destroyed": r.key_destroyed,
                    "credentials_removed": r.credentials_removed,
                    "request_id": r.request_id,
                },
                f"erased {r.person_id}",
            )

    _guard(as_json, go)


# --- purge, keys, audit ----------------------------------------------------------------------


def purge(
    now: str = typer.Option(None, help="Evaluate retention as of this time (default: now)."),
    data_dir: Path = DataDir,
    db: str = DbUrl,
    as_json: bool = Json,
) -> None:
    """Erase what retention says is due, and record it."""

    def go() -> None:
        settings = _settings(data_dir, db)
        with _session(settings) as s:
            r = domain.purge_expired(s, settings, now=_datetime(now, "--now"))
        _out(
            as_json,
            {"erased": r.erased, "face_data_expired": r.face_data_expired},
            f"erased {len(r.erased)} person(s); face data expired for {len(r.face_data_expired)}",
        )

    _guard(as_json, go)


@keys_app.command("rotate")
def keys_rotate(data_dir: Path = DataDir, db: str = DbUrl, as_json: bool = Json) -> None:
    """Re-wrap every data key with a new site key (templates untouched)."""

    def go() -> None:
        settings = _settings(data_dir, db)
        keyring = _keyring(settings)
        with _session(settings) as s:
            r = domain.rotate_keys(s, keyring, actor=_actor())
        _out(
            as_json,
            {"new_key_id": r.new_key_id, "rewrapped": r.rewrapped, "retired": r.retired},
            f"site key is now {r.new_key_id}; {r.rewrapped} data key(s) re-wrapped",
        )

    _guard(as_json, go)


@keys_app.command("create")
def keys_create(
    scope: list[str] = typer.Option(..., "--scope", help="gate:decide, admin, enroll, rights"),
    access_point: list[str] = typer.Option(
        None,
        "--access-point",
        help="Access point the key serves (repeatable); a gate:decide key needs at least one.",
    ),
    all_access_points: bool = typer.Option(
        False,
        "--all-access-points",
        help="Make a gate:decide key valid at every access point of the site (explicitly).",
    ),
    site: str = typer.Option(None, "--site", help="Site id (default: the only site)."),
    name: str = typer.Option("", help="What the key is for, e.g. 'north gate'."),
    expires: str = typer.Option(
        None, "--expires", help="End of validity, e.g. 2027-06-30 (UTC); default: until revoked."
    ),
    data_dir: Path = DataDir,
    db: str = DbUrl,
    as_json: bool = Json,
) -> None:
    """Create an API key; it is printed once and stored only hashed."""

    def go() -> None:
        if "gate:decide" in scope and not access_point and not all_access_points:
            # Issue 16 item 4: a gate key opens only the doors it names, unless asked.
            raise InvalidInput(
                "a gate:decide key is bound to the access points it serves: add "
                "--access-point ID (repeatable; ids: facegate access-point list), or "
                "--all-access-points for a key valid at every access point of the site"
            )
        with _session(_settings(data_dir, db)) as s:
            row, secret = domain.create_api_key(
                s,
                actor=_actor(),
                scopes=scope,
                site_id=site,
                access_point_ids=access_point or None,
                all_access_points=all_access_points,
                name=name,
                expires_at=_datetime(expires, "--expires"),
            )
            _out(
                as_json,
                {
                    "id": row.id,
                    "key": secret,
                    "scopes": row.scopes,
                    "site_id": row.site_id,
                    "access_point_ids": row.access_point_ids,
                    "expires_at": row.expires_at.isoformat() if row.expires_at else None,
                },
                f"{secret}\n(key {row.id}; shown once, store it now)",
            )

    _guard(as_json, go)


@keys_app.command("list")
def keys_list(data_dir: Path = DataDir, db: str = DbUrl, as_json: bool = Json) -> None:
    """List API keys (never their secrets)."""

    def go() -> None:
        with _session(_settings(data_dir, db)) as s:
            rows = domain.list_api_keys(s)
            data = [
                {
                    "id": r.id,
                    "name": r.name,
                    "scopes": r.scopes,
                    "site_id": r.site_id,
                    "access_point_ids": r.access_point_ids,
                    "created_at": r.created_at.isoformat(),
                    "last_used_at": r.last_used_at.isoformat() if r.last_used_at else None,
                    "expires_at": r.expires_at.isoformat() if r.expires_at else None,
                    "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None,
                }
                for r in rows
            ]
            _out(
                as_json,
                data,
                "\n".join(
                    f"{d['id']}  {','.join(d['scopes'])}  {d['name']}"
                    + f"  last used: {d['last_used_at'] or 'never'}"
                    + (f"  expires: {d['expires_at']}" if d["expires_at"] else "")
                    + ("  (revoked)" if d["revoked_at"] else "")
                    for d in data
                )
                or "no API keys",
            )

    _guard(as_json, go)


@keys_app.command("revoke")
def keys_revoke(
    key_id: str, data_dir: Path = DataDir, db: str = DbUrl, as_json: bool = Json
) -> None:
    """Revoke an API key."""

    def go() -> None:
        with _session(_settings(data_dir, db)) as s:
            row = domain.revoke_api_key(s, actor=_actor(), key_id=key_id)
            _out(as_json, {"id": row.id, "revoked": True}, f"revoked {row.id}")

    _guard(as_json, go)


@admin_app.command("create")
def admin_create(
    username: str = typer.Option(..., "--username", help="User name (3-64 letters, digits, . _)."),
    role: str = typer.Option("admin", "--role", help="admin, operator (front desk) or auditor."),
    site: list[str] = typer.Option(
        None, "--site", help="Site an operator or auditor works for (repeatable)."
    ),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from standard input."
    ),
    data_dir: Path = DataDir,
    db: str = DbUrl,
    as_json: bool = Json,
) -> None:
    """Create a console account on this machine: the alternative to the first-run code."""

    def go() -> None:
        if password_stdin:
            password = typer.get_text_stream("stdin").readline().rstrip("\r\n")
        else:
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        from facegate.domain.accounts import create_operator

        with _session(_settings(data_dir, db)) as s:
            account = create_operator(
                s,
                actor=_actor(),
                username=username,
                password=password,
                role=role,
                site_ids=site or None,
            )
            _out(
                as_json,
                {"id": account.id, "username": account.username, "role": account.role},
                f"created {account.role} {account.username}; sign in at /console/login",
            )

    _guard(as_json, go)


@admin_app.command("setup-code")
def admin_setup_code(data_dir: Path = DataDir, db: str = DbUrl, as_json: bool = Json) -> None:
    """Print a new one-time code for /console/setup (only while no account exists)."""

    def go() -> None:
        from facegate.domain.accounts import issue_setup_code

        settings = _settings(data_dir, db)
        with _session(settings) as s:
            code = issue_setup_code(s, settings, actor=_actor())
        if code is None:
            raise InvalidInput("an account exists already: sign in, or ask an admin")
        _out(
            as_json,
            {"setup_code": code, "valid_minutes": settings.web_setup_code_minutes},
            f"setup code: {code} (valid once, for {settings.web_setup_code_minutes} minutes; "
            "enter it on /console/setup)",
        )

    _guard(as_json, go)


@audit_app.command("verify")
def audit_verify(data_dir: Path = DataDir, db: str = DbUrl, as_json: bool = Json) -> None:
    """Check the whole audit chain against the audit key and the signed checkpoints, and the
    people, consents and templates against it; exit 1 and name every kind of finding."""

    def go() -> None:
        settings = _settings(data_dir, db)
        with _session(settings) as s:
            r = audit.verify(s)
        if r.ok:
            anchored = (
                f"anchored by the checkpoint of {r.checkpoint_at} (entry {r.checkpoint_seq})"
                if r.anchored and r.checkpoint_seq is not None
                else "NOT anchored: no audit key in the data directory "
                f"({settings.audit_key_path}); run `facegate serve` or `facegate init` once"
            )
            _out(
                as_json,
                r.to_dict(),
                f"audit chain intact: {r.entries} entries, head {r.head_hash}; {anchored}",
            )
            return
        counts = ", ".join(f"{k}: {n}" for k, n in r.counts.items())
        lines = [f"AUDIT LOG TAMPERED ({r.kind}): {r.reason}", f"findings by kind: {counts}"]
        lines += [f"  [{f.kind}] {f.message}" for f in r.findings[1:]]
        _out(as_json, r.to_dict(), "\n".join(lines))
        raise typer.Exit(1)

    _guard(as_json, go)


def register(app: typer.Typer) -> None:
    """Attach the people-store commands to the main ``facegate`` app."""
    app.command("init")(init)
    app.command("enroll")(enroll)
    app.command("purge")(purge)
    app.add_typer(person_app, name="person")
    app.add_typer(consent_app, name="consent")
    app.add_typer(rights_app, name="rights")
    app.add_typer(keys_app, name="keys")
    app.add_typer(audit_app, name="audit")
    app.add_typer(notice_app, name="notice")
    app.add_typer(ap_app, name="access-point")
    app.add_typer(admin_app, name="admin")
