"""Options of ``pgshift migrate`` on real servers: filters, renames, ownership and privileges,
data/schema only, roles that exist or cannot be granted, tablespaces, the postgres database."""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from typing import Any

from pgshift.events import Collector, Level
from pgshift.lab import LabServer
from pgshift.lab.server import lab_user
from pgshift.migrate import MigrateOptions, plan_migration, run_migration
from tests.fixtures.journal import journal_of


def rows(server: LabServer, dbname: str, query: str) -> list[tuple[Any, ...]]:
    with server.connect(dbname) as conn:
        return list(conn.execute(query).fetchall())


def options(source: LabServer, target: LabServer, tmp_path: Path, **changes: Any) -> MigrateOptions:
    return MigrateOptions(
        source=source.endpoint("source"), target=target.endpoint("target"), workdir=tmp_path / "run", **changes
    )


def test_rename_and_object_filters_pass_through(fresh_server: Any, tmp_path: Path) -> None:
    source, target = fresh_server(15), fresh_server(17)
    source.execute("CREATE DATABASE app")
    source.execute(
        "CREATE SCHEMA keep; CREATE SCHEMA drop_me;"
        "CREATE TABLE keep.a AS SELECT generate_series(1, 7) AS x; CREATE TABLE keep.skip_me AS SELECT 1 AS x;"
        "CREATE TABLE drop_me.b AS SELECT 1 AS x;",
        "app",
    )
    result = run_migration(
        options(
            source,
            target,
            tmp_path,
            databases=("app",),
            renames={"app": "app 2026"},
            schemas=("keep",),
            exclude_tables=("keep.skip_me",),
        )
    )
    assert result.ok, result.verify_note
    assert [(d.source, d.target, d.status) for d in result.databases] == [("app", "app 2026", "done")]
    tables = rows(
        target,
        "app 2026",
        "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'r' AND n.nspname IN ('keep', 'drop_me') ORDER BY 1",
    )
    assert tables == [("keep.a",)]
    assert rows(target, "app 2026", "SELECT count(*) FROM keep.a") == [(7,)]
    assert "app" not in {r[0] for r in rows(target, "postgres", "SELECT datname FROM pg_database")}


def test_no_owner_no_privileges_without_globals(fresh_server: Any, tmp_path: Path) -> None:
    source, target = fresh_server(14), fresh_server(18)
    source.execute("CREATE ROLE app_owner; CREATE ROLE app_reader")
    source.execute("CREATE DATABASE app OWNER app_owner")
    source.execute(
        "CREATE TABLE t AS SELECT 1 AS x; ALTER TABLE t OWNER TO app_owner; GRANT SELECT ON t TO app_reader", "app"
    )
    events = Collector()
    result = run_migration(
        options(source, target, tmp_path, globals=False, no_owner=True, no_privileges=True), sink=events
    )
    assert result.ok, result.verify_note
    assert rows(target, "app", "SELECT tableowner FROM pg_tables WHERE tablename = 't'") == [("postgres",)]
    assert rows(target, "app", "SELECT relacl FROM pg_class WHERE relname = 't'") == [(None,)]
    assert rows(target, "postgres", "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'app'") == [
        ("postgres",)
    ]
    assert rows(target, "postgres", "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'app\\_%'") == [(0,)]


def test_existing_roles_are_left_alone_and_protected_roles_never_touched(fresh_server: Any, tmp_path: Path) -> None:
    source, target = fresh_server(16), fresh_server(17)
    source.execute("CREATE ROLE alice LOGIN CREATEDB CONNECTION LIMIT 4; CREATE ROLE grp; GRANT grp TO alice")
    source.execute("CREATE ROLE bob LOGIN PASSWORD 'bob-secret'; GRANT grp TO bob")
    source.execute("ALTER ROLE postgres SET work_mem = '9MB'")
    target.execute("CREATE ROLE alice NOLOGIN")
    source.execute("CREATE DATABASE app OWNER alice")
    result = run_migration(options(source, target, tmp_path))
    # alice differs on the target, by design: an expected difference with its rule, not a failure.
    assert result.ok, result.verify_note
    assert any(e.rule == "target-own-role" and e.difference.object == "role alice" for e in result.verify.expected), (
        result.verify.expected
    )
    assert result.globals is not None
    assert set(result.globals.created_roles) == {"grp", "bob"}
    assert set(result.globals.existing_roles) == {"alice"}
    # alice keeps the target's attributes and gets no membership; bob is created with his hash.
    assert rows(
        target, "postgres", "SELECT rolcanlogin, rolcreatedb, rolconnlimit FROM pg_roles WHERE rolname = 'alice'"
    ) == [(False, False, -1)]
    members = rows(
        target,
        "postgres",
        "SELECT pg_get_userbyid(member) FROM pg_auth_members WHERE roleid = 'grp'::regrole ORDER BY 1",
    )
    assert members == [("bob",)]
    with source.connect() as s, target.connect() as t:
        query = "SELECT rolpassword FROM pg_authid WHERE rolname = 'bob'"
        assert s.execute(query).fetchone() == t.execute(query).fetchone()
    # The bootstrap superuser (the connecting role) is not altered.
    assert rows(target, "postgres", "SELECT count(*) FROM pg_db_role_setting WHERE setrole = 10") == [(0,)]
    assert "bob-secret" not in result.log_path.read_text()
    assert "PASSWORD '********'" in result.log_path.read_text()


def test_non_superuser_target_gets_roles_without_attributes_it_may_not_grant(fresh_server: Any, tmp_path: Path) -> None:
    source, target = fresh_server(16), fresh_server(17)
    source.execute("CREATE ROLE power SUPERUSER REPLICATION BYPASSRLS LOGIN; CREATE ROLE plain LOGIN")
    source.execute("CREATE DATABASE app")
    source.execute("CREATE TABLE t AS SELECT 1 AS x", "app")
    target.execute("CREATE ROLE admin LOGIN CREATEDB CREATEROLE")
    events = Collector()
    result = run_migration(
        MigrateOptions(
            source=source.endpoint("source"),
            target=target.endpoint("target").with_params(user="admin"),
            workdir=tmp_path / "run",
            no_owner=True,
            no_privileges=True,
            no_role_passwords=True,
        ),
        sink=events,
    )
    assert result.ok, result.verify_note
    assert rows(
        target,
        "postgres",
        "SELECT rolsuper, rolreplication, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = 'power'",
    ) == [(False, False, False, True)]
    warnings = [m.title for m in events.messages(Level.WARNING)]
    assert any("'power'" in w and "SUPERUSER, REPLICATION, BYPASSRLS dropped" in w for w in warnings)
    assert any("SUPERUSER" in w for w in result.warnings)
    assert rows(target, "app", "SELECT count(*) FROM t") == [(1,)]


def test_schema_only_then_data_only(fresh_server: Any, tmp_path: Path) -> None:
    source, target = fresh_server(13), fresh_server(16)
    source.execute("CREATE DATABASE app")
    source.execute(
        "CREATE TABLE parent (id int PRIMARY KEY); CREATE TABLE child (id int REFERENCES parent);"
        "INSERT INTO parent SELECT generate_series(1, 50); INSERT INTO child SELECT generate_series(1, 50);",
        "app",
    )
    first = run_migration(options(source, target, tmp_path, schema_only=True))
    assert first.ok, first.verify_note
    assert rows(target, "app", "SELECT count(*) FROM parent") == [(0,)]
    second = run_migration(
        MigrateOptions(
            source=source.endpoint("source"),
            target=target.endpoint("target"),
            workdir=tmp_path / "run2",
            data_only=True,
            globals=False,
        )
    )
    assert second.ok, second.verify_note
    assert rows(target, "app", "SELECT (SELECT count(*) FROM parent), (SELECT count(*) FROM child)") == [(50, 50)]


def test_postgres_database_moves_only_when_asked(fresh_server: Any, tmp_path: Path) -> None:
    source, target = fresh_server(16), fresh_server(18)
    source.execute("CREATE TABLE in_postgres AS SELECT generate_series(1, 3) AS x")
    source.execute("CREATE DATABASE app")
    source.execute("CREATE DATABASE other")
    plan = plan_migration(options(source, target, tmp_path))
    assert [d.source for d in plan.databases] == ["app", "other"]
    assert [
        d.source for d in plan_migration(options(source, target, tmp_path, exclude_databases=("other",))).databases
    ] == ["app"]
    result = run_migration(options(source, target, tmp_path, databases=("postgres",)))
    assert result.ok, result.verify_note
    assert rows(target, "postgres", "SELECT count(*) FROM in_postgres") == [(3,)]


def _server_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    user = lab_user()
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        for parent in path.parents:
            if parent == Path("/tmp") or parent == Path("/"):
                break
            parent.chmod(parent.stat().st_mode | 0o011)
    return path


def test_tablespaces_are_created_at_the_mapped_location_or_ignored(fresh_server: Any, tmp_path: Path) -> None:
    source, target = fresh_server(15), fresh_server(17)
    old = _server_dir(tmp_path / "ts-old")
    new = _server_dir(tmp_path / "ts-new")
    source.execute(f"CREATE TABLESPACE fast LOCATION '{old}'")
    source.execute("CREATE DATABASE app")
    source.execute("CREATE TABLE t (x int) TABLESPACE fast; INSERT INTO t VALUES (1)", "app")
    result = run_migration(options(source, target, tmp_path, tablespace_map={"fast": str(new)}))
    assert result.ok, result.verify_note
    assert rows(target, "postgres", "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'fast'") == [
        (str(new),)
    ]
    assert rows(
        target,
        "app",
        "SELECT t.spcname FROM pg_class c JOIN pg_tablespace t ON t.oid = c.reltablespace WHERE c.relname = 't'",
    ) == [("fast",)]
    other = fresh_server(17)
    plain = run_migration(
        MigrateOptions(
            source=source.endpoint("source"),
            target=other.endpoint("target"),
            workdir=tmp_path / "run-plain",
            no_tablespaces=True,
            verify=False,
        )
    )
    assert [d.status for d in plain.databases] == ["done"]
    assert rows(other, "postgres", "SELECT count(*) FROM pg_tablespace WHERE spcname = 'fast'") == [(0,)]
    assert rows(other, "app", "SELECT reltablespace FROM pg_class WHERE relname = 't'") == [(0,)]


def test_accepted_removed_setting_is_skipped_with_a_warning(fresh_server: Any, tmp_path: Path) -> None:
    source, target = fresh_server(15), fresh_server(16)
    source.execute("CREATE DATABASE app")
    source.execute("ALTER DATABASE app SET force_parallel_mode = off")  # renamed debug_parallel_query in 16
    source.execute("ALTER DATABASE app SET work_mem = '5MB'")
    source.execute("CREATE TABLE t AS SELECT 1 AS x", "app")
    refused = None
    try:
        run_migration(options(source, target, tmp_path / "a"))
    except Exception as exc:  # the check's blocker stops the run before the target is touched
        refused = exc
    assert refused is not None and "removed-guc-settings" in str(refused)
    assert rows(target, "postgres", "SELECT count(*) FROM pg_database WHERE datname = 'app'") == [(0,)]
    events = Collector()
    result = run_migration(
        options(source, target, tmp_path / "b", accept=("removed-guc-settings",), verify=False), sink=events
    )
    assert [d.status for d in result.databases] == ["done"]
    assert any("force_parallel_mode" in w and "not applied" in w for w in result.warnings)
    settings = rows(
        target,
        "postgres",
        "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
        "WHERE d.datname = 'app'",
    )
    assert settings == [(["work_mem=5MB"],)]


def test_differences_found_by_verify_fail_the_run_and_say_what_a_resume_copies_again(
    fresh_server: Any, tmp_path: Path
) -> None:
    source, target = fresh_server(16), fresh_server(17)
    source.execute("CREATE DATABASE app")
    source.execute("CREATE TABLE t AS SELECT generate_series(1, 10) AS x; CREATE TABLE u (y int)", "app")

    def meddle(event: Any) -> None:
        # Between the restore and the verification: a row arrives on the source, which verify reads as of
        # the dump's snapshot (it does not count), and one goes on the target (it does).
        if getattr(event, "step", None) == "verify" and type(event).__name__ == "StepStarted":
            source.execute("INSERT INTO u VALUES (1)", "app")
            target.execute("DELETE FROM t WHERE x = 1", "app")

    result = run_migration(options(source, target, tmp_path), sink=meddle)
    assert not result.ok
    assert result.verify is not None
    assert [d.object for d in result.verify.differences] == ["table public.t"], result.verify.differences
    assert "difference" in result.verify_note
    journal = journal_of(tmp_path / "run")
    assert journal is not None and journal.status == "verify-failed"
    spec = journal.step("verify").artifacts["recopy"]["app"]
    assert [(s, n) for s, n, _fp in spec["tables"]] == [("public", "t")]
    # The dump went once the database was restored: a resume copies again from the source.
    assert not list((tmp_path / "run" / "dumps").glob("*/toc.dat"))
