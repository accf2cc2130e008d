"""``pgshift restore SET TARGET --remedy NAME``: migrate's remedies from the facts a set recorded.

A set from 14 holds a generated column of an inheritance child whose parent column is plain: 18
refuses it. Without the remedy the restore is refused before anything is created on the target; with
``--remedy generated-as-plain`` it loads, the child's column plain and holding its values. A remedy
that cannot apply to a set (plain SQL, a selective restore, a set taken before the facts were
recorded) is a usage error naming the remedy and why.
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

from pgshift.lab import LabServer


def pgshift(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, timeout=300)


def q(server: LabServer, query: str, params: tuple[Any, ...] = (), dbname: str = "postgres") -> list[tuple[Any, ...]]:
    with server.connect(dbname) as conn:
        return [tuple(r) for r in conn.execute(query.encode() if not params else query, params or None).fetchall()]


def failed(done: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    said = " ".join(done.stderr.split())
    for needle in needles:
        assert needle in said, said
    return said


@pytest.fixture(scope="module")
def generated_set(servers: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabServer, str, Path]]:
    source = servers.get(14)
    db = f"hb_rem_{uuid.uuid4().hex[:8]}"
    source.execute(f"CREATE DATABASE {db}")
    source.execute(
        """
        CREATE TABLE parent (a int, b int);
        CREATE TABLE child (b int GENERATED ALWAYS AS (a * 2) STORED) INHERITS (parent);
        INSERT INTO parent (a, b) VALUES (1, 100);
        INSERT INTO child (a) SELECT g FROM generate_series(1, 50) g;
        CREATE TABLE other (id int PRIMARY KEY);
        INSERT INTO other SELECT generate_series(1, 10);
        """,
        db,
    )
    to = tmp_path_factory.mktemp("hb_rem") / "sets"
    try:
        done = pgshift("backup", source.conninfo(), "--to", str(to), "-d", db, "--no-globals", "--json")
        assert done.returncode == 0, done.stderr
        yield source, db, Path(json.loads(done.stdout)["path"])
    finally:
        source.execute(f"DROP DATABASE IF EXISTS {db}")


def test_the_set_records_the_remedies_facts_in_the_dump_s_snapshot(generated_set: tuple[LabServer, str, Path]) -> None:
    _source, _db, set_path = generated_set
    (entry,) = json.loads((set_path / "manifest.json").read_text())["databases"]
    columns = entry["remedy_facts"]["generated_child_columns"]
    assert [(c["table"], c["column"], c["expression"]) for c in columns] == [("child", "b", "(a * 2)")]


def test_without_the_remedy_18_refuses_the_set_before_anything_is_created(
    generated_set: tuple[LabServer, str, Path], servers: Any
) -> None:
    _source, db, set_path = generated_set
    target = servers.get(18)
    restored = f"{db}_no"
    done = pgshift("restore", str(set_path), target.conninfo(), "--no-globals", "--rename", f"{db}={restored}")
    failed(
        done, 2, "generated-inheritance-mismatch", "column public.child.b", "--remedy generated-as-plain", "nothing was"
    )
    assert q(target, "SELECT count(*) FROM pg_database WHERE datname = %s", (restored,))[0][0] == 0


def test_with_generated_as_plain_18_loads_the_set_and_the_column_holds_its_values(
    generated_set: tuple[LabServer, str, Path], servers: Any
) -> None:
    _source, db, set_path = generated_set
    target = servers.get(18)
    restored = f"{db}_yes"
    try:
        done = pgshift(
            "restore", str(set_path), target.conninfo(), "--no-globals", "--rename", f"{db}={restored}",
            "--remedy", "generated-as-plain", "--json",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["ok"]
        assert [(r["remedy"], r["object"]) for r in result["remedies"]] == [
            ("generated-as-plain", "column public.child.b")
        ]
        rows = q(target, "SELECT a, b FROM ONLY child ORDER BY a", dbname=restored)
        assert rows == [(g, g * 2) for g in range(1, 51)]
        assert q(target, "SELECT a, b FROM ONLY parent", dbname=restored) == [(1, 100)]
        assert q(target, "SELECT count(*) FROM other", dbname=restored)[0][0] == 10
        # The column is plain now: a row given its own value keeps it.
        generated = q(
            target,
            "SELECT attgenerated FROM pg_attribute WHERE attrelid = 'child'::regclass AND attname = 'b'",
            dbname=restored,
        )
        assert generated == [("",)]
        # The plan names what the remedy does.
        plan = pgshift(
            "restore", str(set_path), target.conninfo(), "--no-globals", "--rename", f"{db}=x_{restored}",
            "--remedy", "generated-as-plain", "--dry-run", "--json",
        )  # fmt: skip
        assert plan.returncode == 0, plan.stderr
        (dbp,) = json.loads(plan.stdout)["databases"]
        assert [(r["remedy"], r["object"]) for r in dbp["remedies"]] == [
            ("generated-as-plain", "column public.child.b")
        ]
        kinds = [s["kind"] for s in json.loads(plan.stdout)["steps"] if s.get("database") == db]
        assert kinds[:5] == ["create-database", "script-schema", "restore-schema", "restore-data", "remedy"], kinds
    finally:
        target.execute(f"DROP DATABASE IF EXISTS {restored}")


def test_a_remedy_that_cannot_apply_to_the_set_is_a_usage_error_naming_it(
    generated_set: tuple[LabServer, str, Path], servers: Any, tmp_path: Path
) -> None:
    source, db, set_path = generated_set
    target = servers.get(18)
    base = (
        "restore",
        str(set_path),
        target.conninfo(),
        "--no-globals",
        "--rename",
        f"{db}={db}_bad",
        "--remedy",
        "generated-as-plain",
    )
    failed(pgshift(*base, "--table", "other"), 64, "--remedy generated-as-plain cannot apply", "--table")
    failed(pgshift(*base, "--clean"), 64, "--remedy generated-as-plain cannot apply", "--clean")
    failed(pgshift(*base[:-2], "--remedy", "no-such"), 64, "--remedy no-such: no such remedy")
    # A set taken before pgshift recorded the remedies' facts: the manifest without them loads, and says so.
    old = tmp_path / "old"
    subprocess.run(["cp", "-a", str(set_path), str(old)], check=True)
    manifest = json.loads((old / "manifest.json").read_text())
    for entry in manifest["databases"]:
        del entry["remedy_facts"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    said = failed(
        pgshift("restore", str(old), *base[2:]), 64, "--remedy generated-as-plain cannot apply", "take a new backup"
    )
    assert "remedy_facts" in said
    listed = pgshift("restore", str(old), "--list")
    assert listed.returncode == 0 and "TABLE public child" in listed.stdout, listed.stderr
    # A plain SQL set has no table of contents for a remedy to edit.
    plain = pgshift("backup", source.conninfo(), "--to", str(tmp_path / "plain"), "-d", db, "--no-globals",
                    "--format", "plain", "--json")  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    plain_set = json.loads(plain.stdout)["path"]
    failed(pgshift("restore", plain_set, *base[2:]), 64, "--remedy generated-as-plain cannot apply", "plain SQL")
    for name in (f"{db}_bad",):
        assert q(target, "SELECT count(*) FROM pg_database WHERE datname = %s", (name,))[0][0] == 0


def test_rename_rule_restores_a_rule_named_return_under_a_name_every_major_accepts(
    servers: Any, tmp_path: Path
) -> None:
    # ALTER RULE … RENAME TO "_RETURN" was accepted up to 14; CREATE RULE "_RETURN" is refused by all.
    source, target = servers.get(14), servers.get(16)
    db = f"hb_rule_{uuid.uuid4().hex[:8]}"
    restored = f"{db}_r"
    source.execute(f"CREATE DATABASE {db}")
    try:
        source.execute(
            """
            CREATE TABLE t (a int); CREATE TABLE log (a int);
            CREATE RULE keep AS ON INSERT TO t DO ALSO INSERT INTO log VALUES (NEW.a);
            ALTER RULE keep ON t RENAME TO "_RETURN";
            INSERT INTO t VALUES (1), (2);
            """,
            db,
        )
        done = pgshift("backup", source.conninfo(), "--to", str(tmp_path / "sets"), "-d", db, "--no-globals", "--json")
        assert done.returncode == 0, done.stderr
        set_path = json.loads(done.stdout)["path"]
        base = ("restore", set_path, target.conninfo(), "--no-globals", "--rename", f"{db}={restored}")
        failed(pgshift(*base), 2, "reserved-rule-name", "rule _RETURN on public.t", "--remedy rename-rule")
        assert q(target, "SELECT count(*) FROM pg_database WHERE datname = %s", (restored,))[0][0] == 0
        loaded = pgshift(*base, "--remedy", "rename-rule")
        assert loaded.returncode == 0, loaded.stderr
        assert q(target, "SELECT rulename FROM pg_rewrite WHERE ev_class = 't'::regclass", dbname=restored) == [
            ("_RETURN_insert",)
        ]
        assert q(target, "SELECT count(*) FROM t", dbname=restored) == [(2,)]
        q(target, "INSERT INTO t VALUES (3) RETURNING a", dbname=restored)
        assert q(target, "SELECT count(*) FROM log", dbname=restored) == [(3,)]  # the rule works
    finally:
        source.execute(f"DROP DATABASE IF EXISTS {db}")
        target.execute(f"DROP DATABASE IF EXISTS {restored}")


@pytest.mark.parametrize("kind", ["script-schema", "restore-data", "remedy"])
def test_a_remedied_restore_killed_in_a_step_resumes_to_the_same_database(
    generated_set: tuple[LabServer, str, Path], servers: Any, tmp_path: Path, kind: str
) -> None:
    _source, db, set_path = generated_set
    target = servers.get(18)
    restored, workdir = f"{db}_k{kind[:3]}", tmp_path / "w"
    try:
        killed = subprocess.run(
            [sys.executable, "-m", "pgshift", "restore", str(set_path), target.conninfo(), "--no-globals",
             "--rename", f"{db}={restored}", "--remedy", "generated-as-plain", "--workdir", str(workdir)],
            capture_output=True, text=True, timeout=300,
            env={**os.environ, "PGSHIFT_INJECT_CRASH_IN_STEP": kind},
        )  # fmt: skip
        assert killed.returncode == -9, f"{kind} was not reached:\n{killed.stderr}"
        resumed = pgshift("restore", "--resume", str(workdir), "--json")
        assert resumed.returncode == 0, resumed.stderr
        assert "the previous attempt was killed" in " ".join(resumed.stderr.split())
        rows = q(target, "SELECT a, b FROM ONLY child ORDER BY a", dbname=restored)
        assert rows == [(g, g * 2) for g in range(1, 51)]
        assert q(target, "SELECT count(*) FROM other", dbname=restored)[0][0] == 10
    finally:
        target.execute(f"DROP DATABASE IF EXISTS {restored}")


def test_verify_backup_proves_a_set_into_a_major_that_needs_remedies(servers: Any, tmp_path: Path) -> None:
    # What a nightly job before an upgrade runs: does last night's set of 14 load into 18?
    source = servers.get(14)
    db = f"hb_vrem_{uuid.uuid4().hex[:8]}"
    source.execute(f"CREATE DATABASE {db}")
    try:
        source.execute(
            "CREATE TABLE parent (a int, b int);"
            " CREATE TABLE child (b int GENERATED ALWAYS AS (a * 2) STORED) INHERITS (parent);"
            " INSERT INTO child (a) SELECT generate_series(1, 20); CREATE EXTENSION adminpack;",
            db,
        )
        done = pgshift("backup", source.conninfo(), "--to", str(tmp_path / "sets"), "-d", db, "--no-globals", "--json")
        assert done.returncode == 0, done.stderr
        set_path = json.loads(done.stdout)["path"]
        refused = pgshift("verify-backup", set_path, "--target-version", "18", "--json")
        assert refused.returncode == 5, refused.stdout  # the restore failed (refused by its preflight)
        problem = json.loads(refused.stdout)["problem"]
        assert "generated-inheritance-mismatch" in problem and "removed-extension" in problem, problem
        proven = pgshift(
            "verify-backup", set_path, "--target-version", "18", "--remedy", "generated-as-plain",
            "--remedy", "leave-out-extension", "--json",
        )  # fmt: skip
        report = json.loads(proven.stdout)
        assert proven.returncode == 0 and report["ok"], proven.stdout + proven.stderr
        (database,) = report["databases"]
        assert database["rows"] == 20 and database["differences"] == []
    finally:
        source.execute(f"DROP DATABASE IF EXISTS {db}")


def test_a_directory_format_set_takes_a_remedy_too(
    generated_set: tuple[LabServer, str, Path], servers: Any, tmp_path: Path
) -> None:
    source, db, _set_path = generated_set
    target = servers.get(18)
    restored = f"{db}_dir"
    done = pgshift("backup", source.conninfo(), "--to", str(tmp_path / "sets"), "-d", db, "--no-globals",
                   "--format", "directory", "--jobs", "2", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    try:
        loaded = pgshift(
            "restore", json.loads(done.stdout)["path"], target.conninfo(), "--no-globals", "--rename",
            f"{db}={restored}", "--remedy", "generated-as-plain", "--jobs", "2",
        )  # fmt: skip
        assert loaded.returncode == 0, loaded.stderr
        assert q(target, "SELECT sum(b) FROM ONLY child", dbname=restored) == [(sum(g * 2 for g in range(1, 51)),)]
    finally:
        target.execute(f"DROP DATABASE IF EXISTS {restored}")
