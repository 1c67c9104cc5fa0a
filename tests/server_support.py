"""Helpers for the gate server tests: one shared pipeline, a ready site, real face images."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import update
from store_support import publish_complete_notice

from facegate.audit import anchor as audit_anchor
from facegate.cli.server_cmds import ensure_initialised
from facegate.config import Settings
from facegate.domain import add_access_point, add_person, create_api_key
from facegate.store.db import Store
from facegate.store.models import AccessPoint, Organization, Site


@functools.cache
def pipeline():
    """The real FacePipeline, loaded once per test session."""
    from facegate.vision import FacePipeline

    return FacePipeline()


@functools.cache
def people_images(shared_data: Path) -> dict[str, list[bytes]]:
    """Per identity: images whose largest face passes the strict enroll profile, in file order.

    Chosen by quality only (what an operator's camera check would do), never by score.
    """
    pipe = pipeline()
    out: dict[str, list[bytes]] = {}
    for who in ("Colin_Powell", "Donald_Rumsfeld", "Ariel_Sharon"):
        good: list[bytes] = []
        for path in sorted((shared_data / "lfw_dev" / "images" / who).glob("*.jpg"))[:20]:
            data = path.read_bytes()
            faces = pipe.analyze(data, profile="enroll", max_faces=1)
            if faces and faces[0].template is not None:
                good.append(data)
            if len(good) == 4:
                break
        assert len(good) == 4, f"not enough good images of {who}"
        out[who] = good
    return out


def enable_face(store: Store, site_id: str, *access_point_ids: str) -> None:
    """Stand-in for the compliance activation gate (issue 7), which owns switching face on."""
    with store.session() as s:
        s.execute(update(Site).where(Site.id == site_id).values(face_enabled=True))
        s.execute(
            update(AccessPoint)
            .where(AccessPoint.id.in_(access_point_ids))
            .values(face_enabled=True)
        )
        s.commit()


@dataclass
class SiteSetup:
    settings: Settings
    site_id: str
    ap_main: str  # face, card, pin, qr
    ap_lobby: str  # face, card
    ap_side: str  # card, qr (no face)
    keys: dict[str, str] = field(default_factory=dict)
    other_site: str = ""


def make_site(settings: Settings) -> SiteSetup:
    """A site with three access points, face on where configured, and keys of every kind."""
    site_id = ensure_initialised(settings) or ""
    store = audit_anchor.open_store(settings)  # seals its audit entries, as the server does
    try:
        with store.session() as s:
            if not site_id:
                site_id = s.query(Site.id).first()[0]
            main = add_access_point(
                s,
                actor="test",
                name="main gate",
                kind="gate",
                methods=["face", "card", "pin", "qr"],
                site_id=site_id,
            ).id
            lobby = add_access_point(
                s,
                actor="test",
                name="lobby",
                kind="lobby",
                methods=["face", "card"],
                site_id=site_id,
            ).id
            side = add_access_point(
                s,
                actor="test",
                name="side door",
                kind="door",
                methods=["card", "qr"],
                site_id=site_id,
            ).id
            publish_complete_notice(s, settings, site_id=site_id)
        enable_face(store, site_id, main, lobby)
        setup = SiteSetup(settings, site_id, main, lobby, side)
        with store.session() as s:
            org = s.query(Organization.id).first()[0]
            other = Site(id="site-other", organization_id=org, name="other")
            s.add(other)
            s.commit()
            setup.other_site = other.id
        with store.session() as s:
            for name, scopes, site, aps in [
                ("gate", ["gate:decide"], site_id, None),
                ("gate_main_only", ["gate:decide"], site_id, [main]),
                ("admin", ["admin"], site_id, None),
                ("enroll", ["enroll"], site_id, None),
                ("rights", ["rights"], site_id, None),
                ("other_gate", ["gate:decide"], setup.other_site, None),
                ("other_admin", ["admin", "enroll", "rights"], setup.other_site, None),
            ]:
                _, secret = create_api_key(
                    s,
                    actor="test",
                    scopes=scopes,
                    site_id=site,
                    access_point_ids=aps,
                    all_access_points=aps is None,  # explicit (issue 16 item 4)
                    name=name,
                )
                setup.keys[name] = secret
            add_person(s, actor="test", category="resident", site_id=setup.other_site)
    finally:
        store.dispose()
    return setup
