"""``pgshift check`` with its schema trial, as a user runs it: output, JSON, --no-trial, Ctrl-C and SIGTERM."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.fixtures.trial import Hazards, databases_and_roles, hazards, many_objects, scratch_databases


def pgshift(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def prefix() -> str:
    return "tc" + secrets.token_hex(3)


@pytest.fixture(scope="module")
def source(servers: Any) -> Any:
    return servers.get(14)


@pytest.fixture(scope="module")
def target(servers: Any) -> Any:
    return servers.get(18)


@pytest.fixture(scope="module")
def hz(source: Any, prefix: str) -> Hazards:
    return hazards(source, prefix)


def test_check_with_a_target_runs_the_trial_and_names_what_no_rule_knows(source: Any, target: Any, hz: Hazards) -> None:
    done = pgshift("check", source.conninfo(), target.conninfo(), "-d", hz.database)
    assert done.returncode == 2, done.stdout + done.stderr
    out = " ".join(done.stdout.split())
    assert "schema trial" in out and "3 refused" in out
    assert "schema-trial" in out and "_RETURN" in out
    assert f"needs role {hz.owner}, which migrate creates first" in out
    assert scratch_databases(target) == []


def test_json_has_the_trial_section(source: Any, target: Any, hz: Hazards) -> None:
    done = pgshift("check", source.conninfo(), target.conninfo(), "-d", hz.database, "--json")
    assert done.returncode == 2, done.stderr
    doc = json.loads(done.stdout)
    trial = doc["trial"]
    assert trial["ran"] and trial["where"] == "target" and trial["refused"] == 3
    failures = {f["label"]: f for f in trial["databases"][0]["failures"]}
    assert failures["rule _RETURN on public.rt"]["sqlstate"] == "42P17"
    assert failures["view public.bgw"]["also_fails"] == ["view public.bgw_on_bgw"]
    # The renamed rule's refusal confirms the rule that knows it (reserved-rule-name).
    assert {f["object"] for f in doc["findings"] if f["rule_id"] == "schema-trial"} == {"view public.bgw"}
    assert any(
        f["rule_id"] == "reserved-rule-name" and "schema trial confirmed" in f["message"] for f in doc["findings"]
    )


def test_no_trial_skips_it(source: Any, target: Any, hz: Hazards) -> None:
    before = databases_and_roles(target)
    done = pgshift("check", source.conninfo(), target.conninfo(), "-d", hz.database, "--no-trial", "--json")
    doc = json.loads(done.stdout)
    assert doc["trial"] is None
    assert [f for f in doc["findings"] if f["rule_id"] == "schema-trial"] == []
    # The rule still names the generated column: exit 2 all the same.
    assert done.returncode == 2 and any(f["rule_id"] == "generated-inheritance-mismatch" for f in doc["findings"])
    assert databases_and_roles(target) == before


def test_offline_trial_on_a_lab_server(source: Any, hz: Hazards) -> None:
    done = pgshift("check", source.conninfo(), "--target-version", "18", "--trial", "-d", hz.database, "--json")
    assert done.returncode == 2, done.stderr
    trial = json.loads(done.stdout)["trial"]
    assert trial["where"] == "lab" and trial["refused"] == 3 and trial["not_tried"] == 0


def test_offline_check_runs_no_trial_unless_asked(source: Any, hz: Hazards) -> None:
    done = pgshift("check", source.conninfo(), "--target-version", "18", "-d", hz.database, "--json")
    assert json.loads(done.stdout)["trial"] is None


@pytest.fixture(scope="module")
def big(source: Any, prefix: str) -> Any:
    name = prefix + "_big"
    many_objects(source, name, 1500)
    yield name
    source.execute(f"DROP DATABASE {name}")


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_the_trial_drops_the_scratch_database(
    source: Any, target: Any, big: str, signum: int, code: int
) -> None:
    before = databases_and_roles(target)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgshift", "check", source.conninfo(), target.conninfo(), "-d", big, "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not scratch_databases(target):
            assert proc.poll() is None, "check ended before its trial was seen: " + proc.communicate()[1]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)  # into the statements
        proc.send_signal(signum)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, err
    assert "interrupted" in err and "scratch database was dropped" in err
    assert "Traceback" not in err
    assert scratch_databases(target) == []
    assert databases_and_roles(target) == before
