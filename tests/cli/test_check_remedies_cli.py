"""``pgshift check --remedy NAME --exclude-object OBJECT``, as a user runs it on real servers (14 -> 18).

The source holds what 18 refuses (tests/fixtures/trial.py): a generated child column under a plain
parent column, a non-view rule named _RETURN, a view on a column 17 moved away and a view on that
view. Without remedies check exits 2; with the remedies migrate would be given, the trial runs with
them applied, the carried blockers are warnings naming their remedy in every format, the view left
out has no finding and its dependent is listed.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from typing import Any

import pytest

from tests.fixtures.trial import Hazards, hazards, scratch_databases

CARRY = ("--remedy", "generated-as-plain", "--remedy", "rename-rule", "--exclude-object", "view public.bgw")


def pgshift(*args: str) -> subprocess.CompletedProcess[str]:
    # A wide console: each table cell on one line, so that its text can be looked for whole.
    env = {**os.environ, "COLUMNS": "1000"}
    return subprocess.run(
        [sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, timeout=300, env=env
    )


@pytest.fixture(scope="module")
def source(servers: Any) -> Any:
    return servers.get(14)


@pytest.fixture(scope="module")
def target(servers: Any) -> Any:
    return servers.get(18)


@pytest.fixture(scope="module")
def hz(source: Any) -> Hazards:
    return hazards(source, "cr" + secrets.token_hex(3))


def test_without_remedies_the_blockers_stop_the_move(source: Any, target: Any, hz: Hazards) -> None:
    done = pgshift("check", source.conninfo(), target.conninfo(), "-d", hz.database, "--json")
    assert done.returncode == 2, done.stderr
    doc = json.loads(done.stdout)
    blockers = {f["rule_id"] for f in doc["findings"] if f["severity"] == "blocker"}
    assert {"generated-inheritance-mismatch", "reserved-rule-name", "schema-trial"} <= blockers
    assert not any(f["carried_by"] for f in doc["findings"])
    assert doc["remedies"] == [] and doc["counts"]["carried"] == 0


def test_remedies_carry_the_blockers_and_the_trial_runs_with_them(source: Any, target: Any, hz: Hazards) -> None:
    done = pgshift("check", source.conninfo(), target.conninfo(), "-d", hz.database, *CARRY, "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    assert doc["counts"]["blocker"] == 0 and doc["counts"]["carried"] == 2
    carried = {f["rule_id"]: f for f in doc["findings"] if f["carried_by"]}
    assert carried["generated-inheritance-mismatch"]["carried_by"] == "generated-as-plain"
    assert carried["reserved-rule-name"]["carried_by"] == "rename-rule"
    assert all(f["severity"] == "warning" and not f["refused_by_trial"] for f in carried.values())
    # The view left out, and the view on it, are no hazard of this move: no finding names them.
    assert not [f for f in doc["findings"] if "bgw" in (f["object"] or "") + f["message"]]
    excluded = next(r for r in doc["remedies"] if r["remedy"] == "exclude-object")
    assert excluded["object"] == "view public.bgw" and excluded["also"] == ["view public.bgw_on_bgw"]
    assert {(r["remedy"], r["object"]) for r in doc["remedies"]} >= {
        ("generated-as-plain", "column public.gc.b"),
        ("rename-rule", "rule public.rt._RETURN"),
    }
    # The trial restored the schema with the remedies applied: 18 refused nothing.
    trial = doc["trial"]
    assert trial["ran"] and trial["refused"] == 0, trial
    assert any("restored as a plain column" in n for d in trial["databases"] for n in d["notes"])
    assert scratch_databases(target) == []


@pytest.mark.parametrize("fmt", ["console", "markdown", "html"])
def test_every_format_says_what_carries_each_blocker(source: Any, target: Any, hz: Hazards, fmt: str) -> None:
    done = pgshift(
        "check", source.conninfo(), target.conninfo(), "-d", hz.database, *CARRY, "--no-trial", "--format", fmt
    )
    assert done.returncode == 1, done.stdout + done.stderr
    out = " ".join(done.stdout.split()).replace("│ ", "").replace(" │", "")
    assert "Carried by --remedy generated-as-plain" in out and "Carried by --remedy rename-rule" in out
    assert "2 blocker(s) carried by remedies" in out
    assert "view public.bgw_on_bgw" in out  # the dependent left out with the view


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--remedy", "generated-as-plainn"), "--remedy generated-as-plainn: no such remedy"),
        (("--remedy", "exclude-object"), "--remedy exclude-object: no such remedy"),
        (("--exclude-object", "view public.bgx"), "--exclude-object 'view public.bgx': no database of this run has"),
        (("--exclude-object", "nodb:view public.bgw"), "--exclude-object names database 'nodb'"),
        (("--exclude-object", "public.bgw"), "--exclude-object 'public.bgw': say which kind of object it is"),
    ],
)
def test_a_remedy_or_object_that_names_nothing_is_a_usage_error(
    source: Any, target: Any, hz: Hazards, args: tuple[str, ...], message: str
) -> None:
    done = pgshift("check", source.conninfo(), target.conninfo(), "-d", hz.database, *args)
    assert done.returncode == 64, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
