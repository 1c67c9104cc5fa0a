"""Enrollment with the real FacePipeline on real photos (lfw_dev), on SQLite and PostgreSQL:
the duplicate check finds the same person under another pseudonym; another person enrolls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from store_support import *  # noqa: F403
from store_support import COMPLETE_INIT_ARGS, COMPLETE_NOTICE_ARGS, publish_complete_notice
from typer.testing import CliRunner

from facegate import audit, domain
from facegate.cli.main import app
from facegate.errors import DuplicateFace


@pytest.fixture(scope="module")
def real_pipe():
    from facegate.vision import FacePipeline

    return FacePipeline()


def _usable(pipe, shared_data: Path, person: str, n: int) -> list[bytes]:
    """The first ``n`` photos of ``person`` that pass the strict enroll profile."""
    out = []
    for f in sorted((shared_data / "lfw_dev" / "images" / person).glob("*.jpg")):
        faces = pipe.analyze(f.read_bytes(), profile="enroll")
        if faces and faces[0].quality.ok:
            out.append(f.read_bytes())
        if len(out) == n:
            return out
    pytest.skip(f"fewer than {n} usable photos of {person}")


@pytest.fixture(scope="module")
def photos(real_pipe, shared_data):
    return {
        "a": _usable(real_pipe, shared_data, "Colin_Powell", 3),
        "b": _usable(real_pipe, shared_data, "Donald_Rumsfeld", 1),
        "c": _usable(real_pipe, shared_data, "Ariel_Sharon", 2),
    }


def test_duplicate_check_with_real_faces(store, settings, keyring, real_pipe, photos):
    a_imgs, b_imgs = photos["a"], photos["b"]
    with store.session() as s:
        site = domain.init_site(s, settings, actor="op").site_id
        domain.add_access_point(s, actor="op", name="Gate", kind="gate", methods=["face", "card"])
        publish_complete_notice(s, settings)
        a, borrowed, b = (domain.add_person(s, actor="op", category="resident") for _ in range(3))
        for p in (a, borrowed, b):
            domain.record_consent(s, actor="op", person_id=p.id)
        res = domain.enroll(s, keyring, real_pipe, actor="op", person_id=a.id, images=a_imgs[:2])
        assert res.model_id == real_pipe.model_id and len(res.template_ids) == 2
        # A third, different photo of the same man under another pseudonym is refused.
        with pytest.raises(DuplicateFace) as err:
            domain.enroll(
                s, keyring, real_pipe, actor="op", person_id=borrowed.id, images=a_imgs[2:3]
            )
        assert err.value.details["matches"] == a.id
        domain.enroll(s, keyring, real_pipe, actor="op", person_id=b.id, images=b_imgs)
        entries = list(domain.load_gallery_entries(s, keyring, site, real_pipe.model_id))
        assert sorted({e.person_pseudonym for e in entries}) == sorted([a.id, b.id])
        assert all(e.vector.shape == (real_pipe.dim,) for e in entries)
        assert audit.verify(s).ok


def test_cli_enroll_with_real_images(tmp_path, real_pipe, photos):
    """The CLI path (files in, real models) once, on the embedded default."""
    paths = []
    for i, data in enumerate(photos["c"]):
        paths.append(tmp_path / f"{i}.jpg")
        paths[-1].write_bytes(data)
    common = ["--data-dir", str(tmp_path / "data"), "--json"]
    runner = CliRunner()

    def run(*args):
        res = runner.invoke(app, [*args, *common])
        assert res.exit_code == 0, (args, res.output, res.exception)
        return json.loads(res.stdout)

    run("init", *COMPLETE_INIT_ARGS)
    run("access-point", "add", "Gate", "--kind", "gate", "--methods", "face,card")
    run("notice", "publish", *COMPLETE_NOTICE_ARGS)
    pid = run("person", "add", "--category", "tenant")["id"]
    run("consent", "record", pid)
    out = run("enroll", pid, *map(str, paths))
    assert out["model_id"] == real_pipe.model_id and len(out["template_ids"]) == 2
