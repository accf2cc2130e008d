"""A resume can never hurt: it runs only on the servers the run started on, drops only what the run
itself created (the target carries a mark until a database is complete), and a crash between a
statement's commit and the journal's record is resolved from evidence on the target."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pgshift.lab import LabServer
from pgshift.migrate.journal import DatabaseRecord
from tests.fixtures.journal import journal_of


def pgshift(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def scalar(server: LabServer, query: str, dbname: str = "postgres") -> Any:
    with server.connect(dbname) as conn:
        row = conn.execute(query).fetchone()
        return None if row is None else row[0]


def databases(server: LabServer) -> set[str]:
    with server.connect() as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE NOT datistemplate").fetchall()}


def _failing_move(source: LabServer, target: LabServer, workdir: Path) -> None:
    """A run that leaves database ``victim`` half-done on ``target``: the owner role is missing there."""
    source.execute("CREATE ROLE app_owner")
    source.execute("CREATE DATABASE app")
    source.execute("CREATE TABLE t AS SELECT generate_series(1, 100) AS a; ALTER TABLE t OWNER TO app_owner", "app")
    done = pgshift(
        "migrate", source.conninfo(), target.conninfo(), "--no-globals", "--rename", "app=victim",
        "--workdir", str(workdir),
    )  # fmt: skip
    assert done.returncode == 5, done.stderr
    assert "victim" in databases(target)
    mark = scalar(target, "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'victim'")
    assert mark is not None and mark.startswith("pgshift: migration in progress") and str(workdir) in mark


def test_resume_against_another_target_is_refused_and_that_server_is_untouched(
    fresh_server: Any, tmp_path: Path
) -> None:
    source, first, other = fresh_server(16), fresh_server(17), fresh_server(17)
    workdir = tmp_path / "run"
    _failing_move(source, first, workdir)
    other.execute("CREATE DATABASE victim")
    other.execute("CREATE TABLE precious AS SELECT generate_series(1, 7) AS a", "victim")
    other.execute("CREATE ROLE app_owner")  # the fix the failure asked for, on the wrong server

    done = pgshift("migrate", source.conninfo(), other.conninfo(), "--resume", str(workdir))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "the target is not the server this run started on" in done.stderr
    assert "system identifier" in done.stderr and "Traceback" not in done.stderr
    assert scalar(other, "SELECT count(*) FROM precious", "victim") == 7
    assert "victim" in databases(first)  # the run's own half-done database is still where it was


def test_a_half_done_database_is_not_skipped_by_another_run_and_is_replaced_only_when_asked(
    fresh_server: Any, tmp_path: Path
) -> None:
    source, target = fresh_server(16), fresh_server(18)
    workdir = tmp_path / "run"
    _failing_move(source, target, workdir)
    target.execute("CREATE ROLE app_owner")

    skip = pgshift(
        "migrate", source.conninfo(), target.conninfo(), "--no-globals", "--rename", "app=victim",
        "--if-exists", "skip", "--workdir", str(tmp_path / "again"),
    )  # fmt: skip
    assert skip.returncode == 2, skip.stdout + skip.stderr
    assert (
        "left half-done by pgshift migration run" in skip.stderr
        and f"pgshift migrate --resume {workdir}" in skip.stderr
    )

    drop = pgshift(
        "migrate", source.conninfo(), target.conninfo(), "--no-globals", "--rename", "app=victim",
        "--if-exists", "drop", "--yes", "--workdir", str(tmp_path / "replace"), "--json",
    )  # fmt: skip
    assert drop.returncode == 0, drop.stderr
    assert scalar(target, "SELECT count(*) FROM t", "victim") == 100
    mark = "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'victim'"
    assert scalar(target, mark) is None


def test_resume_never_drops_a_database_the_run_did_not_create(fresh_server: Any, tmp_path: Path) -> None:
    source, target = fresh_server(16), fresh_server(17)
    workdir = tmp_path / "run"
    _failing_move(source, target, workdir)
    # Meanwhile someone replaced the half-done database with one of their own.
    target.execute("DROP DATABASE victim")
    target.execute("CREATE DATABASE victim")
    target.execute("CREATE TABLE theirs AS SELECT 1 AS a", "victim")
    target.execute("CREATE ROLE app_owner")

    done = pgshift("migrate", "--resume", str(workdir))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "pgshift drops only databases it created in this run" in done.stderr
    assert scalar(target, "SELECT count(*) FROM theirs", "victim") == 1


def test_the_half_done_database_of_this_run_is_redone_on_resume_and_its_comment_restored(
    fresh_server: Any, tmp_path: Path
) -> None:
    source, target = fresh_server(14), fresh_server(18)
    source.execute("CREATE DATABASE commented")
    source.execute("COMMENT ON DATABASE commented IS 'the sales ledger'")
    workdir = tmp_path / "run"
    _failing_move(source, target, workdir)
    target.execute("CREATE ROLE app_owner")
    done = pgshift("migrate", "--resume", str(workdir), "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["ok"] and all(d["error"] is None for d in doc["databases"])  # no stale error of attempt 1
    assert scalar(target, "SELECT count(*) FROM t", "victim") == 100
    with target.connect() as conn:
        rows = conn.execute(
            "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database WHERE NOT datistemplate"
        ).fetchall()
    comments = {r[0]: r[1] for r in rows}
    assert comments["commented"] == "the sales ledger" and comments["victim"] is None


def test_a_workdir_that_holds_a_run_points_to_resume_before_reading_the_servers(
    fresh_server: Any, tmp_path: Path
) -> None:
    source, target = fresh_server(16), fresh_server(17)
    workdir = tmp_path / "run"
    _failing_move(source, target, workdir)
    again = pgshift(
        "migrate", source.conninfo(), target.conninfo(), "--no-globals", "--rename", "app=victim",
        "--workdir", str(workdir),
    )  # fmt: skip
    assert again.returncode == 64, again.stderr
    assert f"pgshift migrate --resume {workdir}" in again.stderr
    assert "already has database" not in again.stderr


def test_the_resume_hint_says_how_to_give_a_password_from_the_connection_string_again(
    fresh_server: Any, tmp_path: Path
) -> None:
    source = fresh_server(16)
    target = fresh_server(17, password="tgt-secret-9")
    source.execute("CREATE ROLE app_owner")
    source.execute("CREATE DATABASE app")
    source.execute("CREATE TABLE t AS SELECT 1 AS a; ALTER TABLE t OWNER TO app_owner", "app")
    workdir = tmp_path / "run"
    done = pgshift(
        "migrate", source.conninfo(), target.conninfo(password="tgt-secret-9"), "--no-globals",
        "--workdir", str(workdir),
    )  # fmt: skip
    assert done.returncode == 5, done.stderr
    assert "the journal keeps no passwords" in done.stderr and "PGPASSWORD" in done.stderr
    assert "tgt-secret-9" not in done.stderr + done.stdout


# Statements of the globals below, in order: CREATE ROLE r1, ALTER ROLE r1 SET, CREATE ROLE r2,
# CREATE ROLE r3, then the memberships. A crash after each one must lose nothing.
@pytest.mark.parametrize("crash_after", [1, 2, 3, 4, 5])
def test_a_crash_after_any_statement_of_the_globals_loses_nothing(
    fresh_server: Any, tmp_path: Path, crash_after: int
) -> None:
    source, target = fresh_server(15), fresh_server(17)
    source.execute(
        "CREATE ROLE crash_r1 LOGIN; ALTER ROLE crash_r1 SET work_mem = '8MB';"
        "CREATE ROLE crash_r2; CREATE ROLE crash_r3;"
        "GRANT crash_r2 TO crash_r1; GRANT crash_r3 TO crash_r2;"
    )
    source.execute("CREATE DATABASE crash_app OWNER crash_r1")
    source.execute("CREATE TABLE t AS SELECT generate_series(1, 10) AS a", "crash_app")
    workdir = tmp_path / "run"
    args = ("migrate", source.conninfo(), target.conninfo(), "-d", "crash_app", "--workdir", str(workdir))
    killed = pgshift(*args, env={**os.environ, "PGSHIFT_INJECT_CRASH_AFTER_SQL": str(crash_after)})
    assert killed.returncode == -9, killed.stderr
    resumed = pgshift("migrate", "--resume", str(workdir), "--json")
    assert resumed.returncode == 0, resumed.stderr
    doc = json.loads(resumed.stdout)
    assert doc["ok"] and doc["verify"]["equal"]
    with target.connect() as conn:
        rows = conn.execute(
            "SELECT m.rolname, r.rolname FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member "
            "JOIN pg_roles r ON r.oid = a.roleid WHERE m.rolname LIKE 'crash_%'"
        ).fetchall()
    members = {(r[0], r[1]) for r in rows}
    assert members == {("crash_r1", "crash_r2"), ("crash_r2", "crash_r3")}
    setting = scalar(
        target,
        "SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole "
        "WHERE r.rolname = 'crash_r1' AND s.setdatabase = 0",
    )
    assert setting == "work_mem=8MB"
    # A separate verify agrees: nothing is hidden as an "expected" difference.
    check = pgshift("verify", source.conninfo(), target.conninfo(), "-d", "crash_app")
    assert check.returncode == 0, check.stdout + check.stderr


def _record(workdir: Path, source: str) -> DatabaseRecord:
    journal = journal_of(workdir)
    assert journal is not None
    record = journal.database(source)
    assert record is not None
    return record


def owner_failure(source: LabServer, target: LabServer, workdir: Path, *extra: str) -> None:
    """A run that fails in the restore: the table's owner is missing on the target (no globals)."""
    source.execute("CREATE ROLE app_owner")
    source.execute("CREATE DATABASE app")
    source.execute("CREATE TABLE t AS SELECT generate_series(1, 50) AS a; ALTER TABLE t OWNER TO app_owner", "app")
    done = pgshift("migrate", source.conninfo(), target.conninfo(), "--no-globals", "--workdir", str(workdir), *extra)
    assert done.returncode == 5, done.stderr
    record = _record(workdir, "app")
    assert record.dump_complete and record.error and "app_owner" in record.error


def test_a_fix_on_the_source_is_picked_up_by_resume_with_a_new_dump(fresh_server: Any, tmp_path: Path) -> None:
    source, target = fresh_server(13), fresh_server(17)
    workdir = tmp_path / "run"
    owner_failure(source, target, workdir)
    # The user fixes the cause where it is: on the source.
    source.execute("ALTER TABLE t OWNER TO CURRENT_USER; INSERT INTO t VALUES (51)", "app")
    dry = pgshift("migrate", "--resume", str(workdir), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "pg_dump" in dry.stdout and "01-app-attempt2" in dry.stdout
    done = pgshift("migrate", "--resume", str(workdir))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the source database changed since the earlier dump was taken" in done.stderr
    assert scalar(target, "SELECT count(*) FROM t", "app") == 51


def test_a_resume_with_nothing_changed_on_the_source_reuses_the_dump_and_says_so(
    fresh_server: Any, tmp_path: Path
) -> None:
    source, target = fresh_server(16), fresh_server(18)
    workdir = tmp_path / "run"
    owner_failure(source, target, workdir)
    target.execute("CREATE ROLE app_owner")  # the fix is on the target
    done = pgshift("migrate", "--resume", str(workdir))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the dump of an earlier attempt is reused" in done.stderr
    log = (workdir / "migrate.log").read_text().splitlines()
    dumps = [line for line in log if " command " in line and "pg_dump " in line]
    assert len(dumps) == 1, dumps  # the first attempt's only
    assert _record(workdir, "app").dump_dir == "01-app"
    assert scalar(target, "SELECT count(*) FROM t", "app") == 50


def test_a_crash_after_analyze_redoes_only_the_last_steps(fresh_server: Any, tmp_path: Path) -> None:
    source, target = fresh_server(12), fresh_server(17)
    source.execute("CREATE DATABASE app")
    source.execute("COMMENT ON DATABASE app IS 'orders'")
    source.execute("CREATE TABLE t AS SELECT generate_series(1, 1000) AS a", "app")
    workdir = tmp_path / "run"
    args = ("migrate", source.conninfo(), target.conninfo(), "--workdir", str(workdir))
    killed = pgshift(*args, env={**os.environ, "PGSHIFT_INJECT_CRASH_AFTER_SQL": "ANALYZE"})
    assert killed.returncode == -9, killed.stderr
    record = _record(workdir, "app")
    assert record.step("restore-data").done and record.step("analyze").state == "running"
    resumed = pgshift("migrate", "--resume", str(workdir), "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["verify"]["equal"]
    log = (workdir / "migrate.log").read_text()
    assert log.count('CREATE DATABASE "app"') == 1 and "DROP DATABASE" not in log
    assert sum(1 for line in log.splitlines() if " command " in line and "pg_restore " in line) == 2  # schema, data
    assert log.count("start db:app:analyze") == 2  # the ANALYZE the crash cut short, then once again
    assert scalar(target, "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'app'") == (
        "orders"
    )


def test_redump_takes_a_new_dump_of_an_unchanged_source(fresh_server: Any, tmp_path: Path) -> None:
    source, target = fresh_server(16), fresh_server(17)
    workdir = tmp_path / "run"
    owner_failure(source, target, workdir)
    target.execute("CREATE ROLE app_owner")
    done = pgshift("migrate", "--resume", str(workdir), "--redump")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "dumped again (--redump)" in done.stderr
    assert _record(workdir, "app").dump_dir == "01-app-attempt2"


def test_a_resume_says_how_the_plan_changed_before_it_runs(fresh_server: Any, tmp_path: Path) -> None:
    source, target = fresh_server(15), fresh_server(18)
    workdir = tmp_path / "run"
    owner_failure(source, target, workdir)
    source.execute("CREATE DATABASE later")
    target.execute("CREATE ROLE app_owner")
    dry = pgshift("migrate", "--resume", str(workdir), "--jobs", "1", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    said = " ".join((dry.stdout + dry.stderr).split())  # the console wraps long lines
    assert "database 'later' is new to this run" in said
    assert "option jobs is now 1 (was 2)" in said
    done = pgshift("migrate", "--resume", str(workdir), "--jobs", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "database 'later' is new to this run" in " ".join(done.stderr.split())
    assert "later" in databases(target)
