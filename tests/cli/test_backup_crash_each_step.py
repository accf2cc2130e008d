"""A backup or a restore killed in each kind of step that only sets have.

``PGSHIFT_INJECT_CRASH_IN_STEP=KIND`` SIGKILLs pgshift at the worst instant of a step: its work is
done, its end not yet in the journal (tests/cli/test_migrate_crash_each_step.py does the same for
migrate's kinds, and leaves these to this file). What must hold then:

* a backup killed before its set is sealed leaves ``NAME.partial``: restore and verify-backup refuse
  it, ``backup list`` says it was killed, and the next backup works (and ``--keep`` clears it away);
* a backup killed once the seal's rename is done (in seal-set's end or rotate-sets) leaves a set that
  is complete because it is whole: every file as its manifest says, its rows the source's;
* a restore killed in pg_restore's step resumes (``pgshift restore --resume WORKDIR``) to a target
  whose rows are the set's, saying that the previous attempt was killed and in which step.

One small database on a shared server; the restore goes to another shared server under a new name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pgshift.backup import open_set
from pgshift.lab import LabServer
from tests.cli.test_migrate_crash_each_step import BACKUP_KINDS
from tests.fixtures.compare import assert_same, snapshot
from tests.fixtures.journal import journal_of

SEALED = ("seal-set", "rotate-sets")  # killed after the rename that makes the set complete
UNSEALED = ("snapshot-counts", "record-facts")
RESTORE_KINDS = ("restore-archive",)


def pgshift(*args: str, crash_in: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PGSHIFT_INJECT_CRASH_IN_STEP": crash_in} if crash_in else None
    return subprocess.run(
        [sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def refused(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    for needle in needles:
        assert needle in done.stderr, done.stderr


def rows_of(server: LabServer, dbname: str) -> dict[str, int]:
    """Every user table's exact row count, by the test's own query."""
    with server.connect(dbname) as conn:
        tables = conn.execute(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        return {name: conn.execute(f"SELECT count(*) FROM {name}".encode()).fetchone()[0] for (name,) in tables}


def manifest_rows(set_path: Path, dbname: str) -> dict[str, int]:
    manifest = json.loads((set_path / "manifest.json").read_text())
    (entry,) = [d for d in manifest["databases"] if d["name"] == dbname]
    return {name: int(n) for name, n in entry["rows"].items()}


@pytest.fixture(scope="module")
def crash_db(servers: Any) -> Iterator[tuple[LabServer, str]]:
    source = servers.get(16)
    dbname = f"crash_bk_{uuid.uuid4().hex[:8]}"
    source.execute(f"CREATE DATABASE {dbname}")
    source.execute(
        "CREATE TABLE a (id int PRIMARY KEY, v text);"
        "INSERT INTO a SELECT g, md5(g::text) FROM generate_series(1, 2000) g;"
        "CREATE TABLE b (id serial PRIMARY KEY, a_id int REFERENCES a, n int CHECK (n >= 0));"
        "INSERT INTO b (a_id, n) SELECT g % 2000 + 1, g FROM generate_series(1, 3000) g; CREATE INDEX b_n ON b (n);",
        dbname,
    )
    try:
        yield source, dbname
    finally:
        source.execute(f"DROP DATABASE IF EXISTS {dbname}")


def test_every_set_only_kind_of_step_has_its_crash_test_here() -> None:
    assert sorted(BACKUP_KINDS) == sorted((*SEALED, *UNSEALED, *RESTORE_KINDS))


def _killed_backup(source: LabServer, dbname: str, to: Path, kind: str, *more: str) -> None:
    killed = pgshift("backup", source.conninfo(), "--to", str(to), "-d", dbname, *more, crash_in=kind)
    assert killed.returncode == -9, f"{kind} was not reached:\n{killed.stderr}"


@pytest.mark.parametrize("kind", UNSEALED)
def test_a_backup_killed_before_its_seal_is_never_a_complete_set(
    crash_db: tuple[LabServer, str], tmp_path: Path, kind: str
) -> None:
    source, dbname = crash_db
    to = tmp_path / "sets"
    _killed_backup(source, dbname, to, kind)
    (partial,) = to.iterdir()
    assert partial.name.endswith(".partial") and not (partial / "manifest.json").exists()
    journal = journal_of(partial)
    assert journal is not None
    running = [r.id for r in journal.steps.values() if r.state == "running"]
    assert len(running) == 1 and running[0].endswith(("globals:facts", ":snapshot-counts")), running
    listed = json.loads(pgshift("backup", "list", str(to), "--json").stdout)
    assert [(s["complete"], s["state"]) for s in listed["sets"]] == [(False, "killed")]
    refused(pgshift("restore", str(partial), source.conninfo()), "incomplete backup set")
    refused(pgshift("verify-backup", str(partial)), "incomplete backup set")
    done = pgshift("backup", source.conninfo(), "--to", str(to), "-d", dbname, "--keep", "1", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["removed_partial"] == [partial.name]
    assert [p.name for p in to.iterdir()] == [result["name"]]
    open_set(to / result["name"])  # every file as its manifest says
    assert manifest_rows(to / result["name"], dbname) == rows_of(source, dbname)


@pytest.mark.parametrize("kind", SEALED)
def test_a_backup_killed_after_its_seal_leaves_a_whole_set_and_the_next_backup_works(
    crash_db: tuple[LabServer, str], tmp_path: Path, kind: str
) -> None:
    source, dbname = crash_db
    to = tmp_path / "sets"
    older = json.loads(pgshift("backup", source.conninfo(), "--to", str(to), "-d", dbname, "--json").stdout)["name"]
    _killed_backup(source, dbname, to, kind, "--keep", "1")
    listed = json.loads(pgshift("backup", "list", str(to), "--json").stdout)["sets"]
    killed_set = [s for s in listed if s["name"] != older]
    assert [(s["complete"], s["state"]) for s in killed_set] == [(True, "complete")], listed
    path = Path(killed_set[0]["path"])
    assert not path.name.endswith(".partial")
    open_set(path)  # complete because whole: every file's size and SHA-256 as the manifest says
    assert manifest_rows(path, dbname) == rows_of(source, dbname)
    # rotate-sets was killed after its work: the older set is gone; seal-set's kill came before rotation.
    assert (to / older).exists() == (kind == "seal-set")
    done = pgshift("backup", source.conninfo(), "--to", str(to), "-d", dbname, "--keep", "1", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [p.name for p in to.iterdir()] == [result["name"]]


def test_a_restore_killed_in_pg_restore_s_step_resumes_to_the_set_s_rows(
    crash_db: tuple[LabServer, str], servers: Any, tmp_path: Path
) -> None:
    source, dbname = crash_db
    target = servers.get(17)
    done = pgshift("backup", source.conninfo(), "--to", str(tmp_path / "sets"), "-d", dbname, "--json")
    assert done.returncode == 0, done.stderr
    set_path = Path(json.loads(done.stdout)["path"])
    restored, workdir = f"{dbname}_r", tmp_path / "w"
    try:
        killed = pgshift(
            "restore", str(set_path), target.conninfo(), "--no-globals", "--rename", f"{dbname}={restored}",
            "--workdir", str(workdir), crash_in="restore-archive",
        )  # fmt: skip
        assert killed.returncode == -9, f"restore-archive was not reached:\n{killed.stderr}"
        journal = journal_of(workdir)
        assert journal is not None
        assert journal.step(f"db:{dbname}:restore-archive").state == "running"
        # Any other run that meets the half-restored database names the command that continues it,
        # and changes nothing: neither a restore with --clean nor a migration into that name.
        continue_with = f"pgshift restore --resume {workdir}"
        again = pgshift(
            "restore", str(set_path), target.conninfo(), "--no-globals", "--rename", f"{dbname}={restored}",
            "--clean", "--if-exists", "--workdir", str(tmp_path / "other"),
        )  # fmt: skip
        refused(again, f"left half-done by pgshift restore run {journal.run_id}")
        assert continue_with in " ".join(again.stderr.split())
        migrated = pgshift(
            "migrate", source.conninfo(), target.conninfo(), "-d", dbname, "--rename", f"{dbname}={restored}",
            "--no-globals", "--workdir", str(tmp_path / "migrating"),
        )  # fmt: skip
        refused(migrated, f"left half-done by pgshift restore run {journal.run_id}")
        assert continue_with in " ".join(migrated.stderr.split())
        resumed = pgshift("restore", "--resume", str(workdir), "--json")
        assert resumed.returncode == 0, resumed.stderr
        # As migrate's resume does: the kill is said, with the step it cut short and when that began.
        said = " ".join(resumed.stderr.split())
        assert "the previous attempt was killed" in said, said
        assert f"while db:{dbname}:restore-archive was running (since 20" in said, said
        assert json.loads(resumed.stdout)["ok"]
        final = journal_of(workdir)
        assert final is not None and final.status == "done"
        assert rows_of(target, restored) == manifest_rows(set_path, dbname)
        assert_same(snapshot(source, dbname), snapshot(target, restored))
    finally:
        target.execute(f"DROP DATABASE IF EXISTS {restored}")
