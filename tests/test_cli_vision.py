"""CLI exit codes and output of detect, verify and bench accuracy (real processes)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "facegate", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def imgs(shared_data):
    lfw = shared_data / "lfw_dev" / "images"
    return {
        "a1": lfw / "Colin_Powell" / "Colin_Powell_0001.jpg",
        "a2": lfw / "Colin_Powell" / "Colin_Powell_0002.jpg",
        "b": lfw / "Bill_Clinton" / "Bill_Clinton_0001.jpg",
        "truncated": shared_data / "detection" / "images" / "decode" / "truncated.jpg",
        "eagle": shared_data / "detection" / "images" / "dlib" / "eagle.jpg",
        "two": shared_data / "detection" / "images" / "face_recognition" / "two_people.jpg",
    }


def test_verify_exit_codes(imgs, tmp_path):
    same = run("verify", str(imgs["a1"]), str(imgs["a2"]), "--json")
    assert same.returncode == 0, same.stderr
    body = json.loads(same.stdout)
    assert set(body) == {"match", "score", "threshold", "reason"} and body["match"] is True
    diff = run("verify", str(imgs["a1"]), str(imgs["b"]), "--json")
    assert diff.returncode == 1 and json.loads(diff.stdout)["reason"] == "no_match"
    bad = run("verify", str(imgs["a1"]), str(imgs["truncated"]))
    assert bad.returncode == 2 and "corrupt or truncated" in bad.stderr
    missing = run("verify", str(imgs["a1"]), str(tmp_path / "none.jpg"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    noface = run("verify", str(imgs["a1"]), str(imgs["eagle"]), "--json")
    assert noface.returncode == 2 and "no usable face" in noface.stderr
    assert json.loads(noface.stdout)["reason"] == "no_face"


def test_detect_json(imgs):
    r = run("detect", str(imgs["two"]), "--json", "--profile", "enroll")
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert len(body["faces"]) == 2
    assert all("multiple_faces" in f["quality"]["reasons"] for f in body["faces"])
    assert "template" not in r.stdout.replace("has_template", "")
    assert run("detect", str(imgs["truncated"])).returncode == 2


def test_bench_accuracy_on_a_small_pairs_file(imgs, shared_data, tmp_path, artifacts_dir):
    pairs = tmp_path / "pairs.csv"
    root = shared_data
    rel = {k: str(v.relative_to(root)) for k, v in imgs.items()}
    pairs.write_text(
        "path_a,path_b,same\n"
        f"{rel['a1']},{rel['a2']},1\n"
        f"{rel['a1']},{rel['b']},0\n"
        f"{rel['a2']},{rel['b']},0\n"
        f"{rel['a1']},{rel['eagle']},0\n"
    )
    plot = artifacts_dir / "bench_accuracy_small.png"
    r = run(
        "bench",
        "accuracy",
        "--pairs",
        str(pairs),
        "--root",
        str(root),
        "--json",
        "--plot",
        str(plot),
    )
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["pairs"] == 4 and body["no_usable_face_pairs"] == 1
    assert body["accuracy"] == 1.0 and body["genuine_pairs"] == 1
    assert plot.is_file() and plot.stat().st_size > 10_000
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert run("bench", "accuracy", "--pairs", str(bad), "--root", str(root)).returncode == 2


def test_bench_speed_reports_every_stage(shared_data):
    r = run("bench", "speed", "--runs", "3", "--sizes", "1000", "--json")
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    for frame in ("640x480", "1280x720"):
        stages = body["frames"][frame]["stages"]
        for stage in ("decode", "detect", "landmarks", "chips", "embed_sface", "embed_dlib"):
            assert stages[stage]["p95_ms"] >= stages[stage]["p50_ms"] > 0
    assert set(body["search"]) == {"1000"}
