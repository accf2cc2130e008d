"""``pgshift demo`` as a user runs it: a subprocess, real lab servers, nothing left behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def isolated() -> Iterator[tuple[dict[str, str], Path, Path]]:
    """An environment whose lab servers and temporary files live in directories of this test only.

    The lab directory is under /tmp (not pytest's 0700 tmp_path): lab servers run as an
    unprivileged user when the tests run as root, and must reach it.
    """
    base = Path(tempfile.mkdtemp(prefix="pgshift-demo-test-", dir="/tmp"))
    base.chmod(0o755)
    lab, tmp, state = base / "lab", base / "tmp", base / "state"
    for d in (lab, tmp, state):
        d.mkdir()
        d.chmod(0o755)
    env = {
        **os.environ,
        "PGSHIFT_LAB_DIR": str(lab),
        "PGSHIFT_STATE_DIR": str(state),
        "TMPDIR": str(tmp),
        "NO_COLOR": "1",
        "COLUMNS": "160",
    }
    env.pop("PGSHIFT_DEBUG", None)
    try:
        yield env, lab, tmp
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _pgshift(*args: str) -> list[str]:
    return [sys.executable, "-m", "pgshift", *args]


def _processes_using(path: Path) -> list[str]:
    """Command lines of live processes that mention ``path`` (a postmaster's -D, a psql …)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


def _assert_nothing_left(lab: Path, tmp: Path) -> None:
    assert list(lab.iterdir()) == [], "lab server directories left behind"
    assert [p for p in tmp.iterdir() if p.name.startswith("pgshift-demo-")] == [], "demo work directory left behind"
    assert _processes_using(lab) == [], "lab server processes left behind"


def test_demo_moves_pagila_from_14_to_18_verifies_it_and_leaves_nothing(
    isolated: tuple[dict[str, str], Path, Path],
) -> None:
    env, lab, tmp = isolated
    done = subprocess.run(_pgshift("demo"), env=env, capture_output=True, text=True, timeout=600)
    out = done.stdout
    assert done.returncode == 0, f"stdout:\n{out}\nstderr:\n{done.stderr}"
    assert "pgshift demo — sample pagila, PostgreSQL 14." in out
    assert "READY" in out and "NOT READY" not in out  # the check's verdict
    assert "migration done: PostgreSQL 14." in out
    assert "pagila: " in out and "49,636 / 49,636 rows" in out  # verify's per-database line
    assert "EQUAL — compared 1 database" in out
    assert "DEMO PASSED (pagila: PostgreSQL 14." in out and "→ 18." in out
    assert "Traceback" not in done.stderr
    _assert_nothing_left(lab, tmp)


def test_demo_json_with_another_sample_and_versions(isolated: tuple[dict[str, str], Path, Path]) -> None:
    env, lab, tmp = isolated
    done = subprocess.run(
        _pgshift("demo", "--sample", "iso3166", "--source-version", "16", "--target-version", "17", "--json"),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)  # JSON alone on stdout
    assert doc["kind"] == "demo" and doc["ok"] is True and doc["cleaned"] is True
    assert doc["source_version"].startswith("16.") and doc["target_version"].startswith("17.")
    assert doc["load"]["sample"] == "iso3166"
    assert doc["verify"]["equal"] is True and doc["verify"]["rows_target"] == 4237
    assert [d["status"] for d in doc["migration"]["databases"]] == ["done"]
    assert set(doc["phases"]) >= {"provision", "load", "check", "migrate", "verify", "cleanup"}
    _assert_nothing_left(lab, tmp)


def test_demo_refuses_a_sample_the_source_cannot_hold_before_starting_anything(
    isolated: tuple[dict[str, str], Path, Path],
) -> None:
    env, lab, tmp = isolated
    done = subprocess.run(
        _pgshift("demo", "--source-version", "10"), env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 64
    assert "pagila sample needs a source of PostgreSQL 11 or newer" in done.stderr
    assert "--source-version 11" in done.stderr and "Traceback" not in done.stderr
    _assert_nothing_left(lab, tmp)


@pytest.mark.parametrize(
    ("stage", "signum", "code", "said"),
    [
        ("provision", signal.SIGINT, 130, "interrupted during provision"),
        ("migrate", signal.SIGINT, 130, "interrupted during migrate"),
        ("load", signal.SIGTERM, 143, "terminated during load"),
    ],
)
def test_a_signal_in_any_stage_removes_everything_and_exits_with_its_code(
    isolated: tuple[dict[str, str], Path, Path], stage: str, signum: int, code: int, said: str
) -> None:
    env, lab, tmp = isolated
    # --verbose prints "… <step title>" on stderr as each step starts (stderr is not a terminal).
    marker = {
        "provision": "… start PostgreSQL 14 and 18 lab servers",
        "load": "… load the pagila sample into the source",
        "migrate": "… pgshift migrate",
    }[stage]
    proc = subprocess.Popen(
        _pgshift("demo", "--verbose"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    seen: list[str] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            if line.startswith(marker):
                proc.send_signal(signum)
                break
        else:
            pytest.fail("the demo ended before the stage started:\n" + "".join(seen))
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = "".join(seen) + err
    assert proc.returncode == code, f"stdout:\n{out}\nstderr:\n{err}"
    assert said in err and "nothing is left behind" in err and "Traceback" not in err
    _assert_nothing_left(lab, tmp)
