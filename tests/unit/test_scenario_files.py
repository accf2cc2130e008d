"""Scenario files: the packaged catalogue reads and covers what issue 19 asks; a bad file is refused
with one message naming the file, the key and the fix (exit 64), before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgshift.errors import ExitCode, UsageError
from pgshift.lab import corpus
from pgshift.scenario import load
from pgshift.scenario.load import ScenarioFileError

GOOD = """
description = "a table moves"
source = [13, 14]
target = [14, 18]

[[setup]]
sql = "CREATE DATABASE d"

[[step]]
run = "migrate {source} {target} -d d"
verify = "equal"

[[step.assert]]
database = "d"
sql = "SELECT 1"
equals = 1
"""


def write(tmp_path: Path, text: str, name: str = "case.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_packaged_catalogue_reads_and_covers_the_issue() -> None:
    scenarios = load.catalogue()
    names = {s.name for s in scenarios}
    assert len(scenarios) >= 30, sorted(names)
    setups = [item for s in scenarios for item in s.setup]
    # every packaged sample database is moved by some scenario
    assert set(corpus.packaged_names()) <= {item.sample for item in setups if item.sample}
    runs = [step.run for s in scenarios for step in s.steps]
    assert any("--mode stream" in run for run in runs)
    for remedy in ("generated-as-plain", "rename-rule", "drop-removed-settings", "leave-out-extension"):
        assert any(f"--remedy {remedy}" in run for run in runs), remedy
    assert any("--exclude-object" in run for run in runs)
    assert any(s.target.role != "postgres" for s in scenarios)  # a target role that is not a superuser
    assert {s.source.encoding for s in scenarios} >= {"UTF8", "LATIN1"}
    assert any(s.slow for s in scenarios) and not all(s.slow for s in scenarios)
    majors = {m for s in scenarios for pair in s.pairs for m in pair}
    assert majors == set(range(10, 19)), majors


def test_a_matrix_of_majors_becomes_every_upward_pair(tmp_path: Path) -> None:
    scenario = load.read(write(tmp_path, GOOD))
    assert scenario.name == "case"
    assert scenario.pairs == ((13, 14), (13, 18), (14, 14), (14, 18))
    assert scenario.steps[0].asserts[0].equals == "1"
    assert [c.id for c in scenario.cases()][:1] == ["case@13-14"]


HEAD = "description = 'x'\nsource = 14\ntarget = 18\n"
BAD = [
    (
        HEAD + "[[step]]\nrun = 'migrate {source} {target}'\nexti = 0\n",
        "key 'step[1].exti': is not a key pgshift knows here",
        "use one of:",
    ),
    (
        HEAD + "[[step]]\nrun = 'migrate {source} {target}'\nexit = 'zero'\n",
        "key 'step[1].exit': expected an exit code, got 'zero'",
        "exit = [0, 1]",
    ),
    (
        HEAD + "[[step]]\nrun = 'migrate {source} {target}'\nexit = 7\n",
        "key 'step[1].exit': 7 is not an exit code pgshift uses",
        "use one of 0, 1, 2",
    ),
    (
        "description = 'x'\nsource = 9\ntarget = 18\n[[step]]\nrun = 'check {source}'\n",
        "key 'source': PostgreSQL 9 is not a major pgshift's lab runs",
        "from 10 to 18",
    ),
    ("description = 'x'\ntarget = 18\n[[step]]\nrun = 'check {source}'\n", "key 'source': is missing", "source = 14"),
    (HEAD, "has no [[step]]", "add one"),
    ("source = 14\ntarget = 18\n[[step]]\nrun = 'check {source}'\n", "key 'description': is missing", "description ="),
    (
        HEAD + "[[step]]\nrun = 'check {src}'\n",
        "key 'step[1].run': has an unknown placeholder {src}",
        "{source}",
    ),
    (
        HEAD + "[[setup]]\nsample = 'sakila'\n[[step]]\nrun = 'check {source}'\n",
        "key 'setup[1].sample': there is no packaged sample 'sakila'",
        "pagila",
    ),
    (
        HEAD + "[[setup]]\nsql = 'SELECT 1'\nsample = 'pagila'\n[[step]]\nrun = 'check {source}'\n",
        "setup[1]: gives sample and sql together",
        "give one of",
    ),
    (
        HEAD + "[[setup]]\nfile = 'missing.sql'\n[[step]]\nrun = 'check {source}'\n",
        "missing.sql does not exist",
        "relative to the scenario file",
    ),
    (
        HEAD + "[[step]]\nrun = 'migrate {source} {target}'\nblockers = ['with-oids']\n",
        "findings are read from check's report",
        "run check in a step of its own",
    ),
    (
        HEAD + "[[step]]\nrun = 'migrate {source} {target}'\n[[step.assert]]\nsql = 'SELECT 1'\n",
        "step[1].assert[1]: needs exactly one of equals",
        'equals = "42"',
    ),
    (
        "description = 'x'\nsource = 18\ntarget = 14\n[[step]]\nrun = 'check {source}'\n",
        "no target is at least as new as a source",
        ">= the source's",
    ),
    (
        HEAD + "[servers.target]\nencoding = 8\n[[step]]\nrun = 'check {source}'\n",
        "key 'servers.target.encoding': expected a string, got 8",
        "in quotes",
    ),
    (
        HEAD + "[[step]]\nrun = 'migrate {source} {target}\n",
        "is not valid TOML",
        "fix the syntax",
    ),
]


@pytest.mark.parametrize(("text", "message", "hint"), BAD, ids=[b[1][:40] for b in BAD])
def test_a_bad_file_is_refused_naming_the_file_the_key_and_the_fix(
    tmp_path: Path, text: str, message: str, hint: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioFileError) as caught:
        load.read(path)
    assert caught.value.message.startswith(f"{path}: "), caught.value.message
    assert message in caught.value.message
    assert caught.value.hint is not None and hint in caught.value.hint, caught.value.hint
    assert caught.value.exit_code is ExitCode.USAGE


def test_two_files_of_one_name_and_unknown_names_are_usage_errors(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "sample-pagila.toml")  # the packaged catalogue has one of that name
    with pytest.raises(ScenarioFileError, match="is named 'sample-pagila', like"):
        load.catalogue([tmp_path])
    with pytest.raises(UsageError, match="there is no scenario named 'pagila'") as caught:
        load.choose(load.catalogue(), ["pagila"])
    assert caught.value.hint is not None and "sample-pagila" in caught.value.hint
    with pytest.raises(UsageError, match="has no pair '9-18'"):
        load.choose(load.catalogue(), ["sample-pagila@9-18"])
