"""``pgshift scenario`` as a user runs it: the whole catalogue green on lab servers (what CI runs), a
scenario whose expectations are not met fails with the matrix saying where, and bad input is one
message with exit 64 and no traceback."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def pgshift(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_catalogue_runs_green(capsys: pytest.CaptureFixture[str]) -> None:
    """CI's set: every scenario not marked slow, two cases at a time."""
    started = time.monotonic()
    done = pgshift("scenario", "run", "--all", "--skip-slow", "--jobs", "2", "--json", timeout=1800)
    seconds = time.monotonic() - started
    doc = json.loads(done.stdout)
    failed = {c["id"]: c["failures"] for c in doc["cases"] if c["status"] != "passed"}
    assert done.returncode == 0 and not failed, json.dumps(failed, indent=1, ensure_ascii=False)
    assert doc["kind"] == "scenario-run" and doc["counts"]["passed"] == len(doc["cases"]) >= 40
    with capsys.disabled():
        print(f"\nscenario catalogue: {len(doc['cases'])} cases passed in {seconds:.0f}s (--jobs 2)")


def test_the_slow_scenarios_run_green_too(capsys: pytest.CaptureFixture[str]) -> None:
    """The scenarios marked slow (a database of a few hundred MB) run beside the rest of the suite:
    CI runs the whole catalogue, in two tests that xdist can run side by side."""
    listed = json.loads(pgshift("scenario", "list", "--json").stdout)
    slow = [s["name"] for s in listed["scenarios"] if s["slow"]]
    assert slow, "no scenario is marked slow: the catalogue test runs them all"
    started = time.monotonic()
    done = pgshift("scenario", "run", *slow, "--json", timeout=1800)
    doc = json.loads(done.stdout)
    failed = {c["id"]: c["failures"] for c in doc["cases"] if c["status"] != "passed"}
    assert done.returncode == 0 and not failed, json.dumps(failed, indent=1, ensure_ascii=False)
    with capsys.disabled():
        print(f"\nslow scenarios: {len(doc['cases'])} cases passed in {time.monotonic() - started:.0f}s")


def test_a_scenario_whose_expectations_fail_exits_1_naming_the_case_and_why(tmp_path: Path) -> None:
    (tmp_path / "wrong.toml").write_text(
        """
description = "expects a row the target does not have, and a blocker check does not report"
source = 14
target = 16

[[setup]]
sql = "CREATE DATABASE scn_wrong"

[[setup]]
database = "scn_wrong"
sql = "CREATE TABLE t (a int); INSERT INTO t VALUES (1)"

[[step]]
run = "check {source} {target} -d scn_wrong"
exit = [0, 1]
blockers = ["with-oids"]
""",
        encoding="utf-8",
    )
    (tmp_path / "row.toml").write_text(
        """
description = "the target has one row, the scenario says two"
pairs = [[14, 16]]

[[setup]]
sql = ["CREATE DATABASE scn_row"]

[[setup]]
database = "scn_row"
sql = "CREATE TABLE t (a int); INSERT INTO t VALUES (1)"

[[step]]
run = "migrate {source} {target} -d scn_row"
verify = "equal"

[[step.assert]]
database = "scn_row"
sql = "SELECT count(*) FROM t"
equals = "2"
""",
        encoding="utf-8",
    )
    done = pgshift("scenario", "run", "--dir", str(tmp_path), "wrong", "row", "-j", "2", timeout=600)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "check did not report with-oids as blocker" in done.stdout
    assert "target:scn_row `SELECT count(*) FROM t` = '2': got '1'" in done.stdout
    assert "0 of 2 case(s) passed; 2 failed" in done.stdout
    markdown = pgshift("scenario", "run", "--dir", str(tmp_path), "row", "--format", "markdown", timeout=600)
    assert markdown.returncode == 1
    assert "| `row` | ✗14 |" in markdown.stdout and "## Failures" in markdown.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("scenario", "run", "pagila"), "there is no scenario named 'pagila'"),
        (("scenario", "run"), "name the scenarios to run, or give --all"),
        (("scenario", "run", "--all", "sample-pagila"), "give scenario names or --all, not both"),
        (("scenario", "run", "sample-pagila", "--backend", "vm"), "--backend"),
        (("scenario", "list", "--tag", "nosuchtag"), "no scenario has the tag 'nosuchtag'"),
    ],
)
def test_bad_arguments_are_one_message_and_exit_64(args: tuple[str, ...], needle: str) -> None:
    done = pgshift(*args)
    assert done.returncode == 64, done.stdout + done.stderr
    assert needle in done.stderr and "hint:" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_bad_scenario_file_stops_everything_before_a_server_starts(tmp_path: Path) -> None:
    (tmp_path / "typo.toml").write_text(
        'description = "x"\nsource = 14\ntarget = 18\n[[step]]\nrun = "migrate {source} {target}"\nverfy = "equal"\n'
    )
    for args in (("scenario", "list"), ("scenario", "run", "--all")):
        done = pgshift(*args, "--dir", str(tmp_path))
        assert done.returncode == 64, done.stdout + done.stderr
        assert f"error: {tmp_path / 'typo.toml'}: key 'step[1].verfy': is not a key pgshift knows here" in " ".join(
            done.stderr.split()
        )
        assert "hint: use one of:" in done.stderr and "verify" in done.stderr
        assert "Traceback" not in done.stderr and not done.stdout


def test_scenario_list_names_the_catalogue(tmp_path: Path) -> None:
    doc = json.loads(pgshift("scenario", "list", "--json").stdout)
    assert doc["kind"] == "scenario-list" and doc["count"] >= 30
    by_name = {s["name"]: s for s in doc["scenarios"]}
    assert by_name["large-database"]["slow"] is True
    assert "14→18" in by_name["sample-pagila"]["pairs"]


def test_the_wheel_ships_the_catalogue(tmp_path: Path) -> None:
    """``pgshift scenario list`` works after pip install: the files are package data."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(tmp_path.glob("pgshift-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    packaged = sorted(p.name for p in (ROOT / "src" / "pgshift" / "data" / "scenarios").glob("*.toml"))
    assert len(packaged) >= 30
    missing = [n for n in packaged if f"pgshift/data/scenarios/{n}" not in names]
    assert not missing, missing


@pytest.mark.docker
def test_the_docker_backend_runs_servers_in_containers_of_local_images() -> None:
    from pgshift.errors import ToolchainError
    from pgshift.process import docker_client

    try:
        docker_client()
    except ToolchainError as exc:
        pytest.skip(f"no Docker daemon reachable: {exc.message}")
    done = pgshift("scenario", "run", "remedy-leave-out-extension", "--backend", "docker", "--json", timeout=900)
    doc = json.loads(done.stdout)
    assert done.returncode == 0, json.dumps(doc["cases"], indent=1)
    assert doc["backend"] == "docker" and [c["status"] for c in doc["cases"]] == ["passed"]
    assert doc["cases"][0]["target_version"].startswith("17.")


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_run_stops_its_children_and_removes_every_server(signum: int, code: int) -> None:
    from pgshift import paths

    proc = subprocess.Popen(
        [sys.executable, "-m", "pgshift", "scenario", "run", "sample-chinook", "-j", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell's background job ignores SIGINT; a user's Ctrl-C is not ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    root = paths.lab_root()
    deadline = time.monotonic() + 120
    mine: list[Path] = []
    while len(mine) < 4 and time.monotonic() < deadline:  # both cases' source and target servers
        time.sleep(0.5)
        mine = [
            d for d in root.iterdir() if (d / "owner.pid").is_file() and (d / "owner.pid").read_text() == str(proc.pid)
        ]
    assert len(mine) == 4, mine
    time.sleep(2)  # the samples are loading
    proc.send_signal(signum)
    _out, err = proc.communicate(timeout=180)
    assert proc.returncode == code, err
    assert "error: interrupted while scenarios were running" in err and "Traceback" not in err
    assert [d for d in mine if d.exists()] == []
