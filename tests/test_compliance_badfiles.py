"""Every bad inventory file gets a one-line error naming where, and exit 2; never a crash,
a hang or gigabytes of memory (issue 17)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from compliance_helpers import EXAMPLES
from typer.testing import CliRunner

from facegate.cli.main import app
from facegate.compliance.inventory import DEFAULT_MAX_BYTES, MAX_DEPTH, load_inventory
from facegate.errors import InvalidInput

RUNNER = CliRunner()

# 351 bytes that expand to 10^9 "lol"s when the aliases are followed.
BILLION_LAUGHS = textwrap.dedent(
    """\
    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
    i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
    """
)


def _lawful_text() -> str:
    return (EXAMPLES / "lawful-compound.yaml").read_text(encoding="utf-8")


def _cases(tmp: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, a fragment the one-line error must contain: the place in the document)."""
    out: dict[str, tuple[Path, str]] = {}

    def put(name: str, data: bytes | str, where: str) -> None:
        p = tmp / f"{name}.yaml"
        p.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
        out[name] = (p, where)

    put("billion_laughs", BILLION_LAUGHS, "line 1, column 4")
    put("anchor", "schema_version: 1\nname: &n x\n", "line 2, column 7")
    big = b"# " + b"x" * (DEFAULT_MAX_BYTES + 10) + b"\nschema_version: 1\n"
    put("huge", big, "(whole file)")
    put(
        "impossible_date",
        _lawful_text().replace("date: 2026-09-25", "date: 2026-02-30"),
        "pia[0].date",
    )
    text = _lawful_text().encode("utf-8")
    line = text[: text.index(b"\nname:")].count(b"\n") + 2
    put("non_utf8", text.replace(b"name:", b"name: \xff\xfe", 1), f"line {line} (byte ")
    put(
        "wrong_type",
        _lawful_text().replace("max_days: 7,", "max_days: [7],", 1),
        "retention[0].max_days",
    )
    put("deep", "a: " + "[" * 5000 + "]" * 5000 + "\n", "line 1, column ")
    put("deep40", "a: " + "[" * 40 + "]" * 40 + "\n", f"deeper than {MAX_DEPTH}")
    put(
        "deep_map",
        "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 200)),
        f"deeper than {MAX_DEPTH}",
    )
    put("not_yaml", "sites: [\n  - id: x\n", "line ")
    put("scalar", "just a sentence\n", "(top level)")
    put("long_value", "schema_version: " + "9" * 200_000 + "\n", "line 1, column 17")
    put("long_key", "x" * 300_000 + ": 1\n", "line 1")
    put("empty", "", "(top level)")
    put("duplicate_key", "schema_version: 1\nname: a\nname: b\n", "line 3, column 1")
    put("python_tag", "name: !!python/object:os.system x\n", "line 1, column 7")
    put("two_documents", "name: a\n---\nname: b\n", "line 2")
    put("infinity", "schema_version: .inf\n", "(top level)")
    put("binary", bytes(range(256)) * 100, "line ")
    return out


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    return _cases(tmp_path_factory.mktemp("bad"))


NAMES = [
    "billion_laughs", "anchor", "huge", "impossible_date", "non_utf8", "wrong_type", "deep",
    "deep40", "deep_map", "not_yaml", "scalar", "long_value", "long_key", "empty", "binary",
    "duplicate_key", "python_tag", "two_documents", "infinity",
]  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_bad_file_is_one_line_error_and_exit_2(name: str, cases) -> None:
    path, where = cases[name]
    r = RUNNER.invoke(app, ["comply", "--inventory", str(path), "--json"])
    assert r.exit_code == 2, (name, r.exit_code, r.output[:500], r.exception)
    assert r.exception is None or isinstance(r.exception, SystemExit)
    err = r.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err, err[:500]
    assert str(path) in err and where in err, err
    assert len(err) < 1300 + len(str(path)), len(err)
    assert r.stdout == ""


def test_every_case_is_tested(cases) -> None:
    assert set(cases) == set(NAMES)


def test_size_limit_is_a_setting(tmp_path: Path) -> None:
    p = tmp_path / "inv.yaml"
    p.write_text(_lawful_text(), encoding="utf-8")
    size = p.stat().st_size
    with pytest.raises(InvalidInput, match=f"is {size} bytes, more than the limit of 2000 bytes"):
        load_inventory(p, max_bytes=2000)
    r = RUNNER.invoke(
        app, ["comply", "-i", str(p), "--json"], env={"FACEGATE_INVENTORY_MAX_BYTES": "2000"}
    )
    assert r.exit_code == 2 and "FACEGATE_INVENTORY_MAX_BYTES" in r.stderr
    assert load_inventory(p).name  # the default limit takes it


def test_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    # /dev/zero never ends: reading it whole would never return.
    with pytest.raises(InvalidInput, match="not a regular file"):
        load_inventory(Path("/dev/zero"))
    with pytest.raises(InvalidInput, match="not a regular file"):
        load_inventory(tmp_path)


def test_error_lists_every_path_in_details(tmp_path: Path) -> None:
    p = tmp_path / "two.yaml"
    p.write_text(
        _lawful_text()
        .replace("kind: turnstile", "kind: drawbridge")
        .replace("kind: parking", "kind: moat"),
        encoding="utf-8",
    )
    with pytest.raises(InvalidInput) as err:
        load_inventory(p)
    assert "(and 1 more error(s))" in err.value.message
    paths = [e.split(":")[0] for e in err.value.details["errors"]]
    assert paths == ["sites[0].access_points[0].kind", "sites[0].access_points[3].kind"]


MEASURE = """
import json, resource, sys, tracemalloc
from pathlib import Path
from facegate.compliance.inventory import load_inventory
from facegate.errors import InvalidInput
tracemalloc.start()
try:
    load_inventory(Path(sys.argv[1]))
    out = "loaded"
except InvalidInput as e:
    out = e.message
peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({"peak": peak, "out": out}))
"""


@pytest.mark.parametrize("name", ["billion_laughs", "huge", "deep", "long_value", "binary"])
def test_bad_file_costs_a_few_megabytes(name: str, cases) -> None:
    path, _ = cases[name]
    # A subprocess with a 1 GiB address-space cap: the old loader needed 5.6 GB here and would
    # die of MemoryError; the timeout only guards the test run, the limits bound the work.
    r = subprocess.run(
        [sys.executable, "-c", "import resource; resource.setrlimit(resource.RLIMIT_AS, "
         "(4 << 30, 4 << 30))\n" + MEASURE, str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    assert res["out"] != "loaded"
    # Python objects for a file of at most 1 MB, the file's text held twice at most.
    assert res["peak"] < 8 * DEFAULT_MAX_BYTES, res
