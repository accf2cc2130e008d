"""Options given with ``pgshift migrate --resume``: how the rest is done may change (and does, even
when the value given is the default); what the run moves may not — that would be a new run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_migrate_cli import assert_clean_failure, counts, pgshift
from tests.cli.test_migrate_resume_safety import owner_failure


def _journal_options(workdir: Path) -> dict[str, Any]:
    options: dict[str, Any] = json.loads((workdir / "journal.json").read_text())["options"]
    return options


@pytest.mark.parametrize(
    ("given", "named"),
    [
        (("-d", "other"), "--database"),
        (("--exclude-database", "x"), "--exclude-database"),
        (("--rename", "app=app2"), "--rename"),
        (("-n", "public"), "--schema"),
        (("--schema-only",), "--schema-only"),
        (("--allow-downgrade",), "--allow-downgrade"),
    ],
)
def test_an_option_that_selects_what_moves_is_refused_with_resume(
    given: tuple[str, ...], named: str, tmp_path: Path
) -> None:
    done = pgshift("migrate", "--resume", str(tmp_path / "no-such-run"), *given)
    assert_clean_failure(done, 64, f"{named} cannot be given with --resume", "a changed selection is a new run")
    assert len(done.stderr.splitlines()) == 2  # the error and its hint


def test_resume_of_a_directory_without_a_journal_is_a_usage_error(tmp_path: Path) -> None:
    done = pgshift("migrate", "--resume", str(tmp_path / "no-such-run"), "--jobs", "3")
    assert_clean_failure(done, 64, "holds no migration journal", "--resume DIR")


def test_jobs_given_again_with_resume_applies_even_when_it_is_the_default(fresh_server: Any, tmp_path: Path) -> None:
    source, target = fresh_server(16), fresh_server(17)
    workdir = tmp_path / "run"
    owner_failure(source, target, workdir, "--jobs", "1")
    assert _journal_options(workdir)["jobs"] == 1

    refused = pgshift("migrate", "--resume", str(workdir), "-d", "other")
    assert_clean_failure(refused, 64, "--database cannot be given with --resume", "a changed selection is a new run")
    assert _journal_options(workdir)["databases"] == []

    target.execute("CREATE ROLE app_owner")
    resumed = pgshift("migrate", "--resume", str(workdir), "--jobs", "2", "--json")  # 2: the default
    assert resumed.returncode == 0, resumed.stderr
    assert "option jobs is now 2 (was 1)" in " ".join(resumed.stderr.split())
    assert _journal_options(workdir)["jobs"] == 2
    assert _journal_options(workdir)["globals"] is False  # what was not given again stays as recorded
    assert counts(target, "app") == {"public.t": 50}
