"""Backup sets on real servers: taken on 11, 14, 16 and 17, restored into the same and newer majors,
restored selectively, proven by verify-backup, rotated; checked with the tests' own SQL."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pgshift.backup import BackupOptions, open_set, run_backup
from pgshift.backup.proof import VerifyBackupOptions, verify_backup
from pgshift.backup.restore import RestoreOptions, list_archive, run_restore
from pgshift.backup.sets import list_sets, rotate
from pgshift.conninfo import Endpoint
from pgshift.errors import PreflightRefused
from pgshift.lab import LabServer


def counts(server: LabServer, dbname: str) -> dict[str, int]:
    """The test's own exact row counts of every user table."""
    with server.connect(dbname) as conn:
        tables = conn.execute(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'"
        ).fetchall()
        return {t: conn.execute(f"SELECT count(*) FROM ONLY {t}").fetchone()[0] for (t,) in tables}


def databases(server: LabServer) -> set[str]:
    with server.connect() as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}


@contextlib.contextmanager
def shop(server: LabServer, rows: int = 120) -> Iterator[tuple[str, str]]:
    """A database of its own (two schemas, an owner role of its own, a sequence, a view) on a shared server."""
    tag = uuid.uuid4().hex[:8]
    db, role = f"hb_shop_{tag}", f"hb_owner_{tag}"
    server.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'secret-{tag}'")
    server.execute(f"CREATE DATABASE {db} OWNER {role}")
    server.execute(f"ALTER DATABASE {db} SET work_mem = '8MB'")
    server.execute(
        f"""
        CREATE TABLE public.items (id serial PRIMARY KEY, name text NOT NULL);
        INSERT INTO public.items (name) SELECT 'item ' || g FROM generate_series(1, {rows}) g;
        CREATE SCHEMA sales;
        CREATE TABLE sales.orders (id int PRIMARY KEY, item int, qty int);
        CREATE TABLE sales.lines (order_id int REFERENCES sales.orders, n int);
        INSERT INTO sales.orders SELECT g, 1 + g % {rows}, g FROM generate_series(1, 40) g;
        CREATE TABLE sales.notes (id int, body text);
        INSERT INTO sales.notes VALUES (1, 'a'), (2, 'b'), (3, 'c');
        CREATE VIEW sales.big AS SELECT * FROM sales.orders WHERE qty > 10;
        ALTER TABLE public.items OWNER TO {role};
        """,
        db,
    )
    try:
        yield db, role
    finally:
        drop(server, db, role)


def drop(server: LabServer, *names: str) -> None:
    with server.connect() as conn:
        conn.autocommit = True
        for name in names:
            if name.startswith("hb_owner_") or name.startswith("hb_role"):
                continue
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        for name in names:
            if name.startswith(("hb_owner_", "hb_role")):
                conn.execute(f'DROP ROLE IF EXISTS "{name}"')


def endpoint(server: LabServer, role: str) -> Endpoint:
    return Endpoint.parse(server.conninfo(), role)


def backup(server: LabServer, to: Path, *databases: str, **options: Any) -> Path:
    result = run_backup(BackupOptions(endpoint(server, "source"), to, databases=databases, **options))
    assert result.ok and result.path.is_dir()
    return result.path


@pytest.mark.parametrize(
    ("source_major", "target_major"),
    [(11, 11), (11, 16), (14, 14), (14, 17), (16, 18), (17, 17), (17, 18)],
)
def test_backup_restores_into_same_and_newer_major(
    servers: Any, tmp_path: Path, source_major: int, target_major: int
) -> None:
    source = servers.get(source_major)
    target = servers.get(target_major)
    with shop(source) as (db, role):
        expected = counts(source, db)
        path = backup(source, tmp_path / "sets", db)
        manifest = json.loads((path / "manifest.json").read_text())
        # The manifest's counts are the source's, table by table; 11 has no client: a newer pg_dump took it.
        assert manifest["databases"][0]["rows"] == expected
        assert manifest["server"]["version_num"] // 10000 == source_major
        assert int(manifest["client"]["major_num"]) >= max(source_major, 14)
        restored = f"{db}_r"
        try:
            run_restore(
                RestoreOptions(path, endpoint(target, "target"), renames={db: restored}, workdir=tmp_path / "w")
            )
            assert counts(target, restored) == expected
            with target.connect(restored) as conn:
                owner = conn.execute(
                    "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
                ).fetchone()[0]
                setting = conn.execute(
                    "SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting s JOIN pg_database d "
                    "ON d.oid = s.setdatabase WHERE d.datname = current_database() AND s.setrole = 0"
                ).fetchone()[0]
                assert (owner, setting) == (role, "work_mem=8MB")
                assert conn.execute("SELECT count(*) FROM sales.big").fetchone()[0] == 30
                assert conn.execute("SELECT nextval('public.items_id_seq')").fetchone()[0] == 121
        finally:
            drop(target, restored)
            if target is not source:
                drop(target, role)


def test_files_are_private_and_checksummed(servers: Any, tmp_path: Path) -> None:
    source = servers.get(16)
    with shop(source) as (db, _role):
        path = backup(source, tmp_path / "sets", db, format="directory", jobs=2)
        assert (tmp_path / "sets").stat().st_mode & 0o777 == 0o700
        for p in [path, *path.rglob("*")]:
            assert p.stat().st_mode & 0o077 == 0, p
        bset = open_set(path)
        listed = {f["path"] for f in bset.manifest["files"]}
        assert "globals.sql" in listed and "globals.json" in listed
        assert any(f.startswith("dumps/01-") and f.endswith("toc.dat") for f in listed)
        assert "secret" not in (path / "manifest.json").read_text()


def test_restore_of_one_schema_and_of_one_table_by_an_edited_list(servers: Any, tmp_path: Path) -> None:
    source = servers.get(16)
    target = servers.get(17)
    with shop(source) as (db, role):
        path = backup(source, tmp_path / "sets", db)
        one_schema, one_table = f"{db}_schema", f"{db}_table"
        try:
            run_restore(
                RestoreOptions(
                    path,
                    endpoint(target, "target"),
                    renames={db: one_schema},
                    schemas=("sales",),
                    workdir=tmp_path / "a",
                )
            )
            assert counts(target, one_schema) == {"sales.orders": 40, "sales.notes": 3, "sales.lines": 0}
            toc = list_archive(path, db)
            # Keep the table sales.notes, its data and nothing else: the schema is created first by hand.
            edited = "\n".join(
                line if (" sales notes " in line and ("TABLE " in line or "TABLE DATA " in line)) else ";" + line
                for line in toc.splitlines()
            )
            use = tmp_path / "one.list"
            use.write_text(edited + "\n")
            target.execute(f"CREATE DATABASE {one_table}")
            target.execute("CREATE SCHEMA sales", one_table)
            run_restore(
                RestoreOptions(
                    path,
                    endpoint(target, "target"),
                    databases=(db,),
                    renames={db: one_table},
                    use_list=use,
                    into_existing=True,
                    workdir=tmp_path / "b",
                )
            )
            assert counts(target, one_table) == {"sales.notes": 3}
        finally:
            drop(target, one_schema, one_table, role)


def test_restore_refuses_a_database_that_exists_and_changes_nothing(servers: Any, tmp_path: Path) -> None:
    source = servers.get(14)
    with shop(source) as (db, _role):
        path = backup(source, tmp_path / "sets", db)
        with pytest.raises(PreflightRefused, match=db):
            run_restore(RestoreOptions(path, endpoint(source, "target"), workdir=tmp_path / "w"))
        assert not (tmp_path / "w").exists()


def test_verify_backup_proves_a_good_set_and_fails_a_corrupted_one(servers: Any, tmp_path: Path) -> None:
    source = servers.get(16)
    with shop(source) as (db, _role):
        path = backup(source, tmp_path / "sets", db)
        good = verify_backup(VerifyBackupOptions(path))
        assert good.ok, good.differences or good.problem
        assert good.databases[0]["rows"] == sum(counts(source, db).values())
        archive = next((path / "dumps").iterdir())
        data = bytearray(archive.read_bytes())
        data[len(data) // 2] ^= 0xFF
        archive.write_bytes(bytes(data))
        bad = verify_backup(VerifyBackupOptions(path))
        assert not bad.ok and bad.problem is not None and archive.name in bad.problem
        with pytest.raises(PreflightRefused, match=archive.name):
            run_restore(RestoreOptions(path, endpoint(servers.get(17), "target")))
        history = [json.loads(line) for line in (tmp_path / "sets" / "history.jsonl").read_text().splitlines()]
        assert [h["ok"] for h in history] == [True, False]
        listed = list_sets(tmp_path / "sets")
        assert listed[0].verification is not None and listed[0].verification["ok"] is False


def test_verify_backup_finds_rows_the_manifest_does_not_have(servers: Any, tmp_path: Path) -> None:
    """A restore that loads but differs from the manifest (here: the manifest edited) is not proven."""
    source = servers.get(14)
    with shop(source) as (db, _role):
        path = backup(source, tmp_path / "sets", db)
        doc = json.loads((path / "manifest.json").read_text())
        doc["databases"][0]["rows"]["sales.notes"] = 4
        (path / "manifest.json").write_text(json.dumps(doc))
        report = verify_backup(VerifyBackupOptions(path, target_version=17))
        assert not report.ok
        assert report.differences == (f"{db}: table sales.notes has 3 row(s), the backup had 4",)


def test_rotation_keeps_exactly_n_good_sets(servers: Any, tmp_path: Path) -> None:
    source = servers.get(14)
    to = tmp_path / "sets"
    with shop(source, rows=5) as (db, _role):
        made = [backup(source, to, db, keep=2, globals=False).name for _ in range(3)]
        stale = to / "20000101T000000Z.partial"
        stale.mkdir()
        last = backup(source, to, db, keep=2, globals=False).name
        entries = list_sets(to)
        assert [e.name for e in entries] == [made[2], last]
        assert all(e.complete for e in entries) and not stale.exists()
        # Rotation never removes the set just written, even with --keep 1 and nothing else good.
        assert rotate(to, 1, just_written=last) == ([made[2]], [])
        assert [e.name for e in list_sets(to)] == [last]


def test_restore_runs_checks_rules_against_the_target_from_the_inventory_the_set_recorded(
    servers: Any, tmp_path: Path
) -> None:
    """A 14 set with adminpack (gone in 17) and an MD5 password (deprecated in 18), restored into 18:
    check's removed-extension refuses it before anything is made (exit 2); --accept lets the plan go on
    with the blocker said; md5-passwords is a warning; the recorded inventory reads back as it was."""
    from pgshift.backup.inventory import source_inventory
    from pgshift.backup.restore import plan_restore

    source, target = servers.get(14), servers.get(18)
    tag = uuid.uuid4().hex[:8]
    db, role = f"hb_chk_{tag}", f"hb_role_md5_{tag}"
    source.execute(f"SET password_encryption = 'md5'; CREATE ROLE {role} LOGIN PASSWORD 'md5-{tag}'")
    source.execute(f"CREATE DATABASE {db}")
    try:
        source.execute("CREATE EXTENSION adminpack; CREATE TABLE t AS SELECT 1 AS x", db)
        path = backup(source, tmp_path / "sets", db)
        manifest = json.loads((path / "manifest.json").read_text())
        recorded = source_inventory(manifest)
        assert recorded is not None and [d.name for d in recorded.checked] == [db]
        assert json.loads(json.dumps(recorded.as_dict())) == manifest["check"]["source"]
        assert {r.name: r.password_type for r in recorded.roles}[role] == "md5"
        options = RestoreOptions(path, endpoint(target, "target"), workdir=tmp_path / "w")
        with pytest.raises(PreflightRefused) as refused:
            run_restore(options)
        assert refused.value.message == "pgshift check found 1 blocker(s) on the target: removed-extension"
        assert "--accept removed-extension" in (refused.value.hint or "")
        assert f"removed-extension [{db}: adminpack]" in (refused.value.detail or "")
        assert db not in databases(target) and not (tmp_path / "w").exists()
        plan = plan_restore(replace(options, accept=("removed-extension",)))
        assert any(w.startswith(f"accepted blocker removed-extension [{db}: adminpack]") for w in plan.warnings)
        assert any(w.startswith(f"check: md5-passwords: role {role} has an MD5") for w in plan.warnings)
        # Without the rules, restore's own preflight still names the missing extension.
        with pytest.raises(PreflightRefused, match="lacks extension"):
            plan_restore(replace(options, check=False))
    finally:
        drop(source, db)
        source.execute(f"DROP ROLE IF EXISTS {role}")
        target.execute(f"DROP ROLE IF EXISTS {role}")
