"""A migration killed at each kind of step resumes to a target equal to the source.

``PGSHIFT_INJECT_CRASH_IN_STEP=KIND`` SIGKILLs pgshift at the worst instant of a step: its work is
done on the target, its end not yet in the journal. The resume must find out from evidence what
happened and finish the run; the tests' own snapshots (tests/fixtures/compare.py, sharing nothing
with pgshift) then compare source and target.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import pytest

from pgshift.migrate.plan import StepKind
from tests.fixtures.compare import assert_same, diff_globals, snapshot, snapshot_globals
from tests.fixtures.journal import journal_of
from tests.integration.test_migrate_options import _server_dir

# Every kind of step the plan knows (a new kind gets its crash test by being declared), except the
# reuse of a dump, which only a resume plans (the dump kind covers its crash), and the copy again
# of what a failed verification found different, which only a resume after one plans (its crash is
# tested by tests/cli/test_migrate_recopy_cli.py).
# Backup and restore of sets plan kinds migrate never does: their crashes are tested by backup's own
# commands (tests/cli/test_backup_crash_each_step.py).
BACKUP_KINDS = ("snapshot-counts", "record-facts", "seal-set", "rotate-sets", "restore-archive")
KINDS = [kind for kind in get_args(StepKind) if kind not in ("reuse-dump", "recopy", *BACKUP_KINDS)]
# Steps only a remedy plans: the source then holds what the remedy carries (a generated column of
# an inheritance child under a plain parent column, which 17 refuses) and the run asks for it.
REMEDY_KINDS = ("script-schema", "remedy")
# Steps only stream mode plans (its other steps are dump mode's, crash-tested there).
STREAM_KINDS = ("stream-data", "stream-finish")


def _pgshift(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, timeout=300, env=env
    )


@pytest.mark.parametrize("kind", KINDS)
def test_a_run_killed_in_each_kind_of_step_resumes_to_an_equal_target(
    fresh_server: Any, tmp_path: Path, kind: str
) -> None:
    source, target = fresh_server(12), fresh_server(17)
    location = _server_dir(tmp_path / "ts-src")
    source.execute(
        "CREATE ROLE step_owner LOGIN; CREATE ROLE step_reader; GRANT step_reader TO step_owner;"
        "ALTER ROLE step_owner SET work_mem = '6MB';"
    )
    source.execute(f"CREATE TABLESPACE step_ts LOCATION '{location}'")
    source.execute("CREATE DATABASE step_app OWNER step_owner")
    source.execute("ALTER ROLE step_reader IN DATABASE step_app SET search_path = app, public")
    source.execute("COMMENT ON DATABASE step_app IS 'the app'")
    source.execute(
        "CREATE SCHEMA app; CREATE TABLE app.a (id int PRIMARY KEY, v text) TABLESPACE step_ts;"
        "INSERT INTO app.a SELECT g, md5(g::text) FROM generate_series(1, 3000) g;"
        "CREATE TABLE app.b (id serial PRIMARY KEY, a_id int REFERENCES app.a, n int CHECK (n >= 0));"
        "INSERT INTO app.b (a_id, n) SELECT g % 3000 + 1, g FROM generate_series(1, 5000) g;"
        "CREATE INDEX b_n ON app.b (n); CREATE VIEW app.v AS SELECT a_id, count(*) FROM app.b GROUP BY 1;"
        "GRANT SELECT ON app.a TO step_reader; COMMENT ON TABLE app.b IS 'bees';"
        # restore-triggers has work: a trigger with a comment (its crash test resumes past them).
        "CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;"
        "CREATE TRIGGER b_touch BEFORE UPDATE ON app.b FOR EACH ROW EXECUTE FUNCTION app.touch();"
        "COMMENT ON TRIGGER b_touch ON app.b IS 'touches';",
        "step_app",
    )
    remedy: tuple[str, ...] = ()
    if kind in REMEDY_KINDS:
        source.execute(
            "CREATE TABLE app.p (a int, g int); CREATE TABLE app.c (g int GENERATED ALWAYS AS (a * 2) STORED)"
            " INHERITS (app.p); INSERT INTO app.c (a) SELECT generate_series(1, 500);",
            "step_app",
        )
        remedy = ("--remedy", "generated-as-plain", "--accept", "generated-inheritance-mismatch")
    mode = ("--mode", "stream") if kind in STREAM_KINDS else ()
    target.execute("CREATE DATABASE step_app")  # replaced: --if-exists drop
    workdir = tmp_path / "run"
    ts_target = _server_dir(tmp_path / "ts-tgt")
    args = (
        "migrate", source.conninfo(), target.conninfo(), "-d", "step_app", "--workdir", str(workdir),
        "--if-exists", "drop", "--yes", "--tablespace-map", f"step_ts={ts_target}", *remedy, *mode,
    )  # fmt: skip
    killed = _pgshift(*args, env={**os.environ, "PGSHIFT_INJECT_CRASH_IN_STEP": kind})
    assert killed.returncode == -9, f"{kind} was not reached:\n{killed.stderr}"
    journal = journal_of(workdir)
    assert journal is not None
    running = [r.id for r in journal.steps.values() if r.state == "running"]
    assert len(running) == 1 and running[0] in journal.header["plan"], running  # the killed step

    # --yes again: a database pgshift did not create is dropped only when confirmed, resume included.
    resumed = _pgshift("migrate", "--resume", str(workdir), "--json", "--yes")
    assert resumed.returncode == 0, resumed.stderr
    assert "the previous attempt was killed" in resumed.stderr
    # It names the step the kill cut short, with when it began: where to look in dmesg or the logs.
    said = " ".join(resumed.stderr.split())
    assert f"while {running[0]} was running (since 20" in said, said
    doc = json.loads(resumed.stdout)
    assert doc["ok"] and doc["verify"]["equal"], doc
    assert not any(d["error"] for d in doc["databases"])  # only errors still standing are reported
    expected = snapshot(source, "step_app")
    if remedy:  # the remedy's declared change: the column arrives plain, with its values
        columns = dict(expected.columns)
        columns["app.c.g"] = columns["app.c.g"].replace("generated=s", "generated=-")
        expected = dataclasses.replace(expected, columns=columns)
    assert_same(expected, snapshot(target, "step_app"))
    assert not diff_globals(snapshot_globals(source, "step_"), snapshot_globals(target, "step_"))
    final = journal_of(workdir)
    assert final is not None and final.status == "done"
    last_plan = final.header["plan"]  # the steps of the attempt that finished the run
    assert last_plan and all(final.done(step) for step in last_plan), {s: final.step(s).state for s in last_plan}
