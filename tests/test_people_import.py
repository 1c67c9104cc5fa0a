"""Bulk import of residents (issue 16.12): validated first, all or nothing, audited, no consent."""

from __future__ import annotations

import io
import json

import openpyxl
import pytest
from sqlalchemy import func, select
from store_support import *  # noqa: F403
from typer.testing import CliRunner

from facegate.cli.main import app
from facegate.domain.identities import identities_of
from facegate.domain.importing import ImportRefused, import_people, read_table
from facegate.store.crypto import load_keyring
from facegate.store.db import Store
from facegate.store.models import AuditEntry, Consent, Credential, Person, PersonIdentity


def res_ids(s):
    return list(s.execute(select(Person.id)).scalars())


HEADER = "姓名,房号,类别,卡号,密码,入住日期,搬离日期,电话\n"


@pytest.fixture
def cli(settings):
    runner = CliRunner()
    common = ["--data-dir", str(settings.data_dir), "--db", settings.db_url]

    def run(*args, ok=True):
        res = runner.invoke(app, [*args, *common, "--json"])
        assert (res.exit_code == 0) == ok, (args, res.output, res.exception)
        return json.loads(res.stdout) if ok and res.stdout.strip() else res

    run("init")
    return run


def _count(settings, model) -> int:
    store = Store(settings.db_url)
    try:
        with store.session() as s:
            return s.execute(select(func.count()).select_from(model)).scalar_one()
    finally:
        store.dispose()


def test_500_residents_from_a_gb18030_csv(cli, settings, tmp_path):
    lines = [
        f"住户{i},{i // 10}-{i % 10:02d},{'业主' if i % 3 else '租户'},{10000 + i},"
        f"{'1234' + str(i % 10) if i < 5 else ''},2024-01-01,{'2027/06/30' if i % 3 == 0 else ''},"
        for i in range(500)
    ]
    path = tmp_path / "residents.csv"
    path.write_bytes((HEADER + "\n".join(lines) + "\n").encode("gb18030"))  # as Excel saves it
    checked = cli("person", "import", str(path), "--dry-run")
    assert (checked["rows"], checked["valid"], checked["written"]) == (500, 500, False)
    assert _count(settings, Person) == 0
    res = cli("person", "import", str(path))
    assert res["imported"] == 500 and res["written"]
    assert _count(settings, Person) == 500
    assert _count(settings, Credential) == 505  # 500 cards + 5 PINs
    assert _count(settings, Consent) == 0  # consent is each person's own act
    store = Store(settings.db_url)
    try:
        with store.session() as s:
            # Sealed at rest (issue 13 item 15): opened with the site key, never in a column.
            assert set(s.execute(select(PersonIdentity.name)).scalars()) == {""}
            keyring = load_keyring(settings)
            names = {i.name: pid for pid, i in identities_of(s, keyring, res_ids(s)).items()}
            assert "住户7" in names
            tenant = s.get(Person, names["住户3"])
            assert tenant.category == "tenant"
            assert tenant.relationship_ends_at.date().isoformat() == "2027-06-30"
            ops = list(s.execute(select(AuditEntry.operation)).scalars())
            assert ops.count("people_import") == 1 and ops.count("person_add") == 500
    finally:
        store.dispose()
    assert cli("audit", "verify")["ok"]


def test_one_bad_row_refuses_the_whole_file_with_every_problem(cli, settings, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(
        HEADER
        + "李雷,1-101,业主,0042,,,,\n"
        + ",1-102,租户,0043,,,,\n"  # no name
        + "韩梅梅,1-103,landlord,0044,12,2025-02-30,,\n"  # category, pin, date
        + "王芳,1-104,业主,0042,,,,\n",  # duplicate card
        encoding="utf-8",
    )
    res = cli("person", "import", str(path), ok=False)
    err = json.loads(res.stderr)
    assert err["code"] == "import_invalid_rows"
    problems = {(e["row"], e["column"]) for e in err["details"]["errors"]}
    assert problems == {(3, "name"), (4, "category"), (4, "pin"), (4, "move_in"), (5, "card")}
    assert _count(settings, Person) == 0
    partial = cli("person", "import", str(path), "--skip-invalid")
    assert partial["imported"] == 1 and len(partial["errors"]) == 5
    again = cli("person", "import", str(path), "--skip-invalid")
    assert again["imported"] == 0  # card 0042 is now in use at the site
    assert _count(settings, Person) == 1


def test_xlsx_with_english_headers_and_excel_types(cli, settings, tmp_path):
    from datetime import datetime

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Name", "Unit", "Category", "Card", "Move-out"])
    ws.append(["Li Lei", "3-301", "resident", 4242.0, datetime(2027, 6, 30)])
    ws.append(["Guest One", "Room 808", "guest", None, datetime(2026, 12, 31)])
    path = tmp_path / "residents.xlsx"
    wb.save(path)
    res = cli("person", "import", str(path))
    assert res["imported"] == 2
    store = Store(settings.db_url)
    try:
        with store.session() as s:
            card = s.execute(select(Credential).where(Credential.kind == "card")).scalar_one()
            assert card.identifier == "4242"  # not "4242.0"
            assert card.valid_until.date().isoformat() == "2027-06-30"
    finally:
        store.dispose()


@pytest.mark.parametrize(
    ("data", "name", "needle"),
    [
        (b"", "x.csv", "empty"),
        (b"foo,bar\n1,2\n", "x.csv", "'name' column"),
        (b"PK\x03\x04garbage", "x.xlsx", "not a readable .xlsx"),
        (b"\x00\x01\x02name,category\n", "x.csv", "not a CSV"),
        (b"name,category\n", "x.xls", ".xls"),
    ],
)
def test_unreadable_files_get_a_clear_error(data, name, needle):
    from facegate.errors import InvalidInput

    with pytest.raises(InvalidInput) as err:
        read_table(data, name)
    assert needle in err.value.message


def test_refusal_writes_nothing_on_the_store(store, settings):
    from facegate.domain import init_site

    with store.session() as s:
        init_site(s, settings, actor="t")
        raw = read_table(io.BytesIO(b"name,category\nA,resident\nB,alien\n").read(), "f.csv")
        with pytest.raises(ImportRefused):
            import_people(s, raw, actor="t")
        assert s.execute(select(func.count()).select_from(Person)).scalar_one() == 0
