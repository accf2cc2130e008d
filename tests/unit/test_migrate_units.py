"""Migrate's pure parts: statements composed for the target, options, the journal, restore errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pgshift.catalog import ddl
from pgshift.catalog.cluster import DatabaseInfo, Membership, RoleInfo
from pgshift.cli.common import parse_pairs
from pgshift.conninfo import Endpoint
from pgshift.errors import PreflightRefused, UsageError
from pgshift.migrate import MigrateOptions
from pgshift.migrate.journal import Journal
from pgshift.migrate.steps import RestoreWatcher, explain_restore, restore_advice
from pgshift.migrate.workdir import WorkdirLock, make_private
from pgshift.version import PgVersion

SRC = Endpoint.parse("host=old user=postgres password=s3cret dbname=postgres", "source")
TGT = Endpoint.parse("postgresql://postgres:t0psecret@new/postgres", "target")


def _db(**changes: object) -> DatabaseInfo:
    values: dict[str, object] = {
        "name": "sales",
        "owner": "alice",
        "encoding": "LATIN1",
        "collate": "C",
        "ctype": "C",
        "locale_provider": "libc",
        "icu_locale": None,
        "icu_rules": None,
        "connlimit": 5,
        "tablespace": "pg_default",
        "allow_connections": True,
        "is_template": False,
        "size_bytes": 1,
        "comment": None,
        "acl": (),
        "acl_is_default": True,
    }
    values.update(changes)
    return DatabaseInfo(**values)  # type: ignore[arg-type]


def _role(name: str = 'we "ird"; ü', **changes: object) -> RoleInfo:
    values: dict[str, object] = {
        "name": name,
        "superuser": True,
        "inherit": True,
        "createrole": False,
        "createdb": True,
        "login": True,
        "replication": True,
        "bypassrls": True,
        "connlimit": 3,
        "valid_until": "2030-01-01 00:00:00+00",
        "password_type": "scram-sha-256",
        "comment": None,
    }
    values.update(changes)
    return RoleInfo(**values)  # type: ignore[arg-type]


def test_create_database_keeps_encoding_locale_owner_and_quotes_odd_names() -> None:
    made = ddl.create_database(
        _db(), 'odd "db"; ñ', PgVersion.from_major(17), owner='o "w"; n', tablespace="fast space"
    )
    assert made.statement.display() == (
        'CREATE DATABASE "odd ""db""; ñ" TEMPLATE template0 ENCODING \'LATIN1\' LOCALE_PROVIDER libc '
        'LC_COLLATE \'C\' LC_CTYPE \'C\' OWNER "o ""w""; n" TABLESPACE "fast space" CONNECTION LIMIT 5'
    )
    assert made.statement.no_transaction and made.warnings == ()


def test_create_database_before_15_has_no_provider_and_icu_falls_back_with_a_warning() -> None:
    made = ddl.create_database(
        _db(locale_provider="icu", icu_locale="de-DE", encoding="UTF8"),
        "x",
        PgVersion.from_major(14),
        owner=None,
        tablespace=None,
    )
    text = made.statement.display()
    assert "LOCALE_PROVIDER" not in text and "ICU_LOCALE" not in text
    assert made.warnings and "de-DE" in made.warnings[0]
    on16 = ddl.create_database(
        _db(locale_provider="icu", icu_locale="de-DE", icu_rules="&a<b", encoding="UTF8"),
        "x",
        PgVersion.from_major(16),
        owner=None,
        tablespace=None,
    ).statement.display()
    assert "LOCALE_PROVIDER icu" in on16 and "ICU_LOCALE 'de-DE'" in on16 and "ICU_RULES '&a<b'" in on16


def test_builtin_provider_needs_17() -> None:
    db = _db(locale_provider="builtin", icu_locale="C.UTF-8", encoding="UTF8")
    assert (
        "BUILTIN_LOCALE 'C.UTF-8'"
        in ddl.create_database(db, "x", PgVersion.from_major(18), owner=None, tablespace=None).statement.display()
    )
    older = ddl.create_database(db, "x", PgVersion.from_major(16), owner=None, tablespace=None)
    assert "builtin" not in older.statement.display() and older.warnings


def test_create_role_drops_attributes_the_target_may_not_grant_and_redacts_the_password() -> None:
    statement = ddl.create_role(_role(), password="SCRAM-SHA-256$4096:abc", drop=ddl.SUPERUSER_ONLY_ATTRIBUTES)
    shown = statement.display()
    assert shown.startswith('CREATE ROLE "we ""ird""; ü" WITH INHERIT NOCREATEROLE CREATEDB LOGIN ')
    assert "SUPERUSER" not in shown.replace("NOSUPERUSER", "") and " REPLICATION" not in shown
    assert "BYPASSRLS" not in shown
    assert "CONNECTION LIMIT 3" in shown and "VALID UNTIL '2030-01-01 00:00:00+00'" in shown
    assert "abc" not in shown and "PASSWORD '********'" in shown
    assert "SCRAM-SHA-256$4096:abc" in statement.query.as_string(None)


def test_list_settings_are_split_into_one_literal_per_element() -> None:
    assert ddl.split_list_setting('a, "b c", "x""y", public') == ["a", "b c", 'x"y', "public"]
    shown = ddl.alter_database_set("db", 'search_path=a, "b c"').display()
    assert shown == "ALTER DATABASE \"db\" SET \"search_path\" TO 'a', 'b c'"
    assert ddl.alter_role_set("r", "work_mem=8MB", "my db").display() == (
        'ALTER ROLE "r" IN DATABASE "my db" SET "work_mem" TO \'8MB\''
    )
    assert ddl.alter_role_set("r", "myapp.flag=on").display() == 'ALTER ROLE "r" SET "myapp"."flag" TO \'on\''


def test_membership_options_follow_the_target_version() -> None:
    m = Membership("grp", "alice", "postgres", True, False, True)
    assert ddl.grant_membership(m, PgVersion.from_major(16)).display() == (
        'GRANT "grp" TO "alice" WITH ADMIN TRUE, INHERIT FALSE, SET TRUE'
    )
    assert ddl.grant_membership(m, PgVersion.from_major(15)).display() == 'GRANT "grp" TO "alice" WITH ADMIN OPTION'


def test_options_refuse_contradictions() -> None:
    with pytest.raises(UsageError):
        MigrateOptions(source=SRC, target=TGT, data_only=True, schema_only=True)
    with pytest.raises(UsageError):
        MigrateOptions(source=SRC, target=TGT, jobs=0)
    with pytest.raises(UsageError):
        MigrateOptions(source=SRC, target=TGT, renames={"a": "x", "b": "x"})
    with pytest.raises(UsageError):
        parse_pairs(["novalue"], "--rename")
    assert parse_pairs(["a=b", "c d=e=f"], "--rename") == {"a": "b", "c d": "e=f"}


def test_options_record_has_no_password_and_round_trips() -> None:
    options = MigrateOptions(source=SRC, target=TGT, databases=("a",), renames={"a": "b"}, jobs=4, no_owner=True)
    record = json.dumps(options.as_dict())
    assert "s3cret" not in record and "t0psecret" not in record
    again = MigrateOptions.from_dict(json.loads(record), source=SRC, target=TGT)
    assert again == options


def test_journal_is_written_atomically_private_and_read_back(tmp_path: Path) -> None:
    workdir = make_private(tmp_path / "run")
    journal = Journal.create(workdir, {"run_id": "r1", "options": {}, "source": "s", "target": "t"})
    journal.add_database("sales", "sales2", "01-sales")
    journal.step_started("db:sales:create-database", created_by_run=True)
    journal.step_ended("db:sales:create-database", "done", 0.5)
    journal.step_started("db:sales:dump")
    journal.step_ended("db:sales:dump", "failed", 1.25, error="pg_dump failed")
    journal.items_finished("db:sales:restore-data", [7, 3])
    journal.close()
    for name in ("journal.json", "journal.events"):
        assert (workdir / name).stat().st_mode & 0o777 == 0o600
    assert workdir.stat().st_mode & 0o777 == 0o700
    assert not list(workdir.glob("*.tmp"))
    again = Journal.load(workdir)
    record = again.database("sales")
    assert record is not None and record.target == "sales2" and record.created_by_run
    assert record.step("dump").attempts == 1 and record.error == "pg_dump failed"
    assert record.items_done == {3, 7}
    assert record.seconds() == {"create": 0.5, "dump": 1.25}
    with pytest.raises(UsageError, match="already holds a migration run"):
        make_private(workdir)


def test_journal_appends_instead_of_rewriting_and_compacts_on_a_new_attempt(tmp_path: Path) -> None:
    workdir = make_private(tmp_path / "run")
    journal = Journal.create(workdir, {"run_id": "r1", "options": {}})
    header = (workdir / "journal.json").read_text()
    for i in range(50):
        journal.step_started(f"db:d{i}:analyze")
        journal.step_ended(f"db:d{i}:analyze", "done", 0.1)
    journal.step_started("db:x:dump")  # killed here: no end
    journal.close()
    assert (workdir / "journal.json").read_text() == header  # steps never rewrite the header
    assert len((workdir / "journal.events").read_text().splitlines()) == 102
    # A crash mid-write tears the last line: it is ignored, everything before it stands.
    with (workdir / "journal.events").open("a") as handle:
        handle.write('{"at": "2026-12-02", "e": "step", "id": "db:x:dum')
    later = Journal.load(workdir)
    assert later.done("db:d49:analyze") and later.step("db:x:dump").state == "running"
    assert later.begin_attempt({"options": {"jobs": 4}}) == 2
    later.close()
    events = (workdir / "journal.events").read_text().splitlines()
    assert len(events) == 2 and json.loads(events[0])["e"] == "snapshot"
    final = Journal.load(workdir)
    assert final.step("db:x:dump").state == "interrupted" and final.done("db:d0:analyze")
    assert final.header["options"] == {"jobs": 4} and final.attempts == 2


def test_names_held_undecoded_go_through_the_journal_as_the_same_bytes(tmp_path: Path) -> None:
    # A LATIN1 database's name read through a UTF8 session: byte 0xdc kept as U+DCDC (session.py).
    name = "gr\udcdcn"
    journal = Journal.create(make_private(tmp_path / "run"), {"run_id": "r1", "options": {"databases": [name]}})
    journal.add_database(name, name, "01-x")
    journal.role_intended(name)
    journal.close()
    assert b"gr\xdcn" in (tmp_path / "run" / "journal.events").read_bytes()
    again = Journal.load(tmp_path / "run")
    assert again.header["options"]["databases"] == [name]
    assert again.database(name) is not None and again.roles_of_run({name}) == {name}


def test_a_journal_of_another_schema_version_is_refused_by_name(tmp_path: Path) -> None:
    workdir = make_private(tmp_path / "run")
    (workdir / "journal.json").write_text(json.dumps({"kind": "pgshift-migrate-journal", "schema_version": 1}))
    with pytest.raises(UsageError, match="schema version 1; this pgshift reads version 2"):
        Journal.load(workdir)


def test_roles_stay_this_runs_across_a_crash_between_commit_and_record(tmp_path: Path) -> None:
    journal = Journal.create(make_private(tmp_path / "run"), {"run_id": "r1"})
    journal.role_intended("alice")  # CREATE ROLE committed, then the crash: no "created" record
    journal.role_intended("bob")
    journal.role_not_ours("bob")  # bob was found there already: someone else's
    journal.close()
    again = Journal.load(tmp_path / "run")
    assert again.roles_of_run({"alice", "bob", "carol"}) == {"alice"}
    assert again.roles_of_run({"carol"}) == set()  # intended but never made


def test_a_workdir_is_used_by_one_run_at_a_time(tmp_path: Path) -> None:
    make_private(tmp_path)
    first, second = WorkdirLock(tmp_path), WorkdirLock(tmp_path)
    first.acquire()
    try:
        with pytest.raises(PreflightRefused, match="another pgshift run"):
            second.acquire()
    finally:
        first.release()
    second.acquire()
    second.release()


def test_foreign_directory_is_not_taken_as_a_workdir(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        make_private(tmp_path)
    assert os.listdir(tmp_path) == ["notes.txt"]


def test_restore_errors_name_the_statement_and_the_advice() -> None:
    items: list[int] = []
    watcher = RestoreWatcher(lambda: items.append(1), lambda _line: None)
    for line in (
        "pg_restore: processing item 215 TABLE t",
        "pg_restore: from TOC entry 215; 1259 16390 TABLE t alice",
        'pg_restore: error: could not execute query: ERROR:  role "alice" does not exist',
        "Command was: ALTER TABLE public.t OWNER TO alice;",
    ):
        watcher(line)
    errors = watcher.done()
    assert items == [1]
    assert errors == [('role "alice" does not exist', "ALTER TABLE public.t OWNER TO alice;")]
    assert watcher.object_of(errors[0]) == "TABLE t (owner alice)"
    failure = explain_restore("sales", errors, "", watcher.object_of(errors[0]))
    assert failure.message.startswith("restoring database 'sales' failed on TABLE t (owner alice): role")
    assert "ALTER TABLE public.t OWNER TO alice" in failure.message
    assert failure.hint is not None and "--no-owner --no-privileges" in failure.hint
    assert "install" in restore_advice('extension "postgis" is not available')
    assert "--no-tablespaces" in restore_advice('tablespace "fast" does not exist')


def test_dump_failures_name_pg_dumps_own_error_and_a_fix() -> None:
    from pgshift.errors import StepFailed
    from pgshift.migrate.steps import explain_dump

    failed = StepFailed(
        "pg_dump failed with exit code 1",
        detail="pg_dump: reading extensions\npg_dump: error: query failed: ERROR:  out of shared memory\n"
        'HINT:  You might need to increase "max_locks_per_transaction".',
        returncode=1,
    )
    explained = explain_dump("sales", failed)
    assert (
        explained.message == "dumping database 'sales' on the source failed: query failed: ERROR:  out of shared memory"
    )
    assert explained.hint is not None and "max_locks_per_transaction" in explained.hint
    assert explained.exit_code == 5


def test_every_recorded_option_comes_back_from_the_journal_in_its_own_type(tmp_path: Path) -> None:
    from dataclasses import fields

    from pgshift.conninfo import Endpoint
    from pgshift.migrate.options import MigrateOptions

    src, tgt = Endpoint.parse("host=/tmp port=5 user=a", "source"), Endpoint.parse("host=/tmp port=6", "target")
    changed = MigrateOptions(
        source=src,
        target=tgt,
        databases=("a", "b"),
        exclude_databases=("c",),
        renames={"a": "a2"},
        if_exists="skip",
        jobs=3,
        workdir=tmp_path,
        keep_dumps=True,
        analyze=False,
        accept=("rule-x",),
        allow_downgrade=True,
        globals=False,
        no_role_passwords=True,
        tablespace_map={"fast": "/new"},
        no_tablespaces=True,
        schemas=("s",),
        exclude_schemas=("x",),
        tables=("t",),
        exclude_tables=("u",),
        no_owner=True,
        no_privileges=True,
        schema_only=True,
        pg_bins=(tmp_path / "bin",),
        docker=True,
        docker_image="img:1",
        verify=False,
        checksums=True,
        check=False,
    )
    recorded = json.loads(json.dumps(changed.as_dict()))
    back = MigrateOptions.from_dict(recorded, source=src, target=tgt)
    assert back == changed
    # A field added later is recorded too (or named as one the journal does not keep).
    assert {f.name for f in fields(MigrateOptions)} - set(recorded) == {"resume", "dry_run", "dump_reuse"}


@pytest.mark.parametrize("line", ["GARBAGE", '{"e": "step", "at": "x"}', '{"e": "role", "name": "a"}', "[1, 2]"])
def test_a_journal_damaged_before_its_last_line_is_refused_with_the_line(tmp_path: Path, line: str) -> None:
    workdir = make_private(tmp_path / "run")
    journal = Journal.create(workdir, {"run_id": "r1"})
    journal.close()
    with (workdir / "journal.events").open("a") as handle:
        handle.write(line + '\n{"at": "x", "e": "status", "status": "failed"}\n')
    with pytest.raises(UsageError, match=r"journal\.events is damaged at line 2") as caught:
        Journal.load(workdir)
    assert caught.value.hint and "restore the file" in caught.value.hint
