"""Time and peak memory of `facegate comply` on the largest inventory the limits allow, and on
each kind of bad file (issue 17).

    PYTHONPATH=src .venv/bin/python bench/inventory_limits.py [--max-bytes 1048576]

The largest inventory is the lawful example with access points added (each a full entry with
signage and a practice text) until the file is just under ``--max-bytes``. Each file is run in
a fresh subprocess of ``facegate comply --inventory FILE --json``: wall time (including
interpreter start-up and imports, which are measured alone too) and the child's peak RSS
(ru_maxrss). Figures from a shared, loaded 2-core machine.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

RUN = """
import resource, sys, time, tracemalloc
t0 = time.perf_counter()
from facegate.cli.main import app
t1 = time.perf_counter()
if sys.argv[2] == "trace":
    tracemalloc.start()
try:
    app(["comply", "--inventory", sys.argv[1], "--json", "--as-of", "2026-11-25"])
except SystemExit as e:
    code = e.code
t2 = time.perf_counter()
traced = tracemalloc.get_traced_memory()[1] / 2**20
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"STATS {t1 - t0:.3f} {t2 - t1:.3f} {code} {rss:.1f} {traced:.1f}", file=sys.stderr)
"""


def largest(max_bytes: int, out: Path) -> tuple[Path, int]:
    data = yaml.safe_load((EXAMPLES / "lawful-compound.yaml").read_text(encoding="utf-8"))
    template = data["sites"][0]["access_points"][0]
    points = data["sites"][0]["access_points"]

    def dump() -> bytes:
        return yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode("utf-8")

    # Grow in big steps, then one at a time, to the last size under the limit.
    step = 256
    while step:
        while True:
            for _ in range(step):
                p = copy.deepcopy(template)  # no shared objects: safe_dump would anchor them
                p.update(id=f"gate-{len(points)}", name=f"人行闸机 {len(points)}")
                p["practice"] = "住户可刷卡、扫码或由门岗人工核验通行，刷脸自愿。"
                points.append(p)
            if len(dump()) > max_bytes:
                del points[-step:]
                break
        step //= 4
    body = dump()
    out.write_bytes(body)
    return out, len(points)


def bad_files(tmp: Path, max_bytes: int) -> dict[str, Path]:
    laughs = textwrap.dedent(
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
    lawful = (EXAMPLES / "lawful-compound.yaml").read_text(encoding="utf-8")
    files = {
        "billion_laughs": laughs.encode(),
        "50 MB": b"# " + b"x" * (50 * 1024 * 1024) + b"\n",
        "2026-02-30": lawful.replace("date: 2026-09-25", "date: 2026-02-30").encode(),
        "non-UTF-8": lawful.encode().replace(b"name:", b"name: \xff", 1),
        "wrong types": lawful.replace("max_days: 7,", "max_days: [7],", 1).encode(),
        "deep nesting": b"a: " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
        "one huge integer": b"schema_version: " + b"9" * (max_bytes - 100) + b"\n",
    }
    out = {}
    for name, body in files.items():
        p = tmp / (name.replace(" ", "_").replace("/", "_") + ".yaml")
        p.write_bytes(body)
        out[name] = p
    return out


def run(path: Path, trace: bool) -> tuple[float, float, float, float, int, int, str]:
    """wall s (whole process), s in `comply` after imports, peak RSS MB of the process, peak MB
    Python allocated during `comply` (tracemalloc, when ``trace``: it slows the run, so times
    come from a run without it), exit code, stdout bytes, the first stderr line."""
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-c", RUN, str(path), "trace" if trace else "time"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    wall = time.perf_counter() - t0
    lines = r.stderr.strip().splitlines()
    stats = lines[-1].split()
    _, _imp, comply_s, code, rss, traced = stats
    first = lines[0][:90] if len(lines) > 1 else ""
    return wall, float(comply_s), float(rss), float(traced), int(code), len(r.stdout), first


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-bytes", type=int, default=1_048_576)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        path, n = largest(args.max_bytes, t / "largest.yaml")
        base = t / "tiny.yaml"
        base.write_text("schema_version: 1\n", encoding="utf-8")
        cases = {"start-up (tiny file)": base, f"largest valid ({n} access points)": path}
        cases |= bad_files(t, args.max_bytes)
        print(
            f"{'file':34} {'bytes':>9} {'wall s':>6} {'comply s':>8} {'RSS MB':>6} "
            f"{'alloc MB':>8} exit  first stderr line"
        )
        for name, p in cases.items():
            wall, comply_s, peak, _, code, out_len, err = run(p, trace=False)
            traced = run(p, trace=True)[3]
            size = p.stat().st_size
            print(
                f"{name:34} {size:>9} {wall:6.2f} {comply_s:8.2f} {peak:6.1f} {traced:8.1f} "
                f"{code:>4}  {err}"
            )
            if name.startswith("largest"):
                print(f"{'':36} report JSON on stdout: {out_len} bytes")
        print(json.dumps({"max_bytes": args.max_bytes, "access_points": n}))


if __name__ == "__main__":
    main()
