"""``pgshift backup``, ``restore`` and ``verify-backup`` as a user runs them: a killed backup is never a
good set, bad input gets one clear message and a documented exit code, a dry run changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from pgshift.backup import open_set
from tests.fixtures.faults import small_filesystem


def pgshift(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def clean_failure(done: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "error:" in done.stderr
    for needle in needles:
        assert needle in done.stderr, done.stderr


def test_a_backup_killed_mid_way_is_never_counted_as_good(servers: Any, tmp_path: Path) -> None:
    source = servers.get(16)
    db = f"hb_kill_{uuid.uuid4().hex[:8]}"
    source.execute(f"CREATE DATABASE {db}")
    try:
        source.execute("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g", db)
        to = tmp_path / "sets"
        # SIGKILL of pgshift itself right after the dump's work, before anything is sealed.
        env = {**os.environ, "PGSHIFT_INJECT_CRASH_IN_STEP": "dump"}
        killed = pgshift("backup", source.conninfo(), "--to", str(to), "-d", db, env=env)
        assert killed.returncode == -9, killed.stderr
        (partial,) = to.iterdir()
        assert partial.name.endswith(".partial") and not (partial / "manifest.json").exists()
        listed = json.loads(pgshift("backup", "list", str(to), "--json").stdout)
        assert [(s["complete"], s["state"]) for s in listed["sets"]] == [(False, "killed")]
        clean_failure(pgshift("restore", str(partial), source.conninfo()), 2, "incomplete backup set")
        clean_failure(pgshift("verify-backup", str(partial)), 2, "incomplete backup set")
        # The next backup with --keep counts only good sets and clears the dead one away.
        done = pgshift("backup", source.conninfo(), "--to", str(to), "-d", db, "--keep", "1", "--json")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["removed_partial"] == [partial.name]
        assert [p.name for p in to.iterdir()] == [result["name"]]
    finally:
        source.execute(f"DROP DATABASE IF EXISTS {db}")


def test_dry_run_prints_the_plan_and_writes_nothing(servers: Any, tmp_path: Path) -> None:
    source = servers.get(14)
    to = tmp_path / "sets"
    done = pgshift("backup", source.conninfo(), "--to", str(to), "-d", "postgres", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "pg_dump --format=custom" in done.stdout and "--snapshot=" in done.stdout
    assert "manifest.json written last" in done.stdout
    assert not to.exists()


def test_bad_input_is_refused_in_words(servers: Any, tmp_path: Path) -> None:
    source = servers.get(14)
    clean_failure(pgshift("backup", source.conninfo()), 64, "--to DIR")
    clean_failure(pgshift("backup", source.conninfo(), "--to", str(tmp_path), "--format", "tar"), 64, "--format")
    clean_failure(
        pgshift("backup", source.conninfo(), "--to", str(tmp_path), "--format", "plain", "--compress", "gzip"),
        64,
        "uncompressed",
    )
    clean_failure(pgshift("backup", source.conninfo(), "--to", str(tmp_path), "-d", "nope_hb"), 64, "'nope_hb'")
    clean_failure(pgshift("restore", str(tmp_path / "missing"), source.conninfo()), 64, "no backup set")
    clean_failure(pgshift("restore", str(tmp_path), source.conninfo(), "--if-exists"), 64, "--clean")
    clean_failure(pgshift("restore", str(tmp_path), source.conninfo(), "--accept", "no-such-rule"), 64, "no check rule")


def test_restore_of_a_set_with_a_truncated_archive_names_the_file(servers: Any, tmp_path: Path) -> None:
    source = servers.get(17)
    db = f"hb_trunc_{uuid.uuid4().hex[:8]}"
    source.execute(f"CREATE DATABASE {db}")
    try:
        source.execute("CREATE TABLE t AS SELECT g FROM generate_series(1, 500) g", db)
        done = pgshift("backup", source.conninfo(), "--to", str(tmp_path / "sets"), "-d", db, "--json")
        assert done.returncode == 0, done.stderr
        path = Path(json.loads(done.stdout)["path"])
        archive = next((path / "dumps").iterdir())
        archive.write_bytes(archive.read_bytes()[:100])
        target = servers.get(18)
        clean_failure(pgshift("restore", str(path), target.conninfo()), 2, archive.name, "truncated")
        with target.connect() as conn:
            assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (db,)).fetchone()[0] == 0
        proof = pgshift("verify-backup", str(path), "--json")
        assert proof.returncode == 1 and json.loads(proof.stdout)["ok"] is False
    finally:
        source.execute(f"DROP DATABASE IF EXISTS {db}")


def only_clients(tmp_path: Path, *majors: int) -> dict[str, str]:
    """The environment of a machine whose only client programs are these majors' (no Debian 15 on PATH,
    no Docker): the cache holds links to them alone."""
    cache = tmp_path / "cache"
    (cache / "pg").mkdir(parents=True)
    for major in majors:
        (cache / "pg" / str(major)).symlink_to(f"/var/cache/pgshift/pg/{major}")
    return {
        **os.environ,
        "PGSHIFT_CACHE_DIR": str(cache),
        "PATH": str(Path(sys.executable).parent),
        "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock",
    }


def test_a_plain_set_of_pg_dump_17_restores_into_16_without_its_transaction_timeout(
    servers: Any, tmp_path: Path
) -> None:
    """Only 17 clients: pg_dump 17 writes SET transaction_timeout into a plain set of a 16 source, which a
    16 target rejects (psql stops on it); restore feeds psql the script without that one line, the set's
    file unchanged, and any other error still fails the restore."""
    source = target = servers.get(16)  # restored under another name
    tag = uuid.uuid4().hex[:8]
    db, gone = f"hb_plain_{tag}", f"hb_role_gone_{tag}"
    env = only_clients(tmp_path, 17)
    source.execute(f"CREATE DATABASE {db}")
    try:
        source.execute("CREATE TABLE t AS SELECT g FROM generate_series(1, 77) g", db)
        to = tmp_path / "sets"
        done = pgshift("backup", source.conninfo(), "--to", str(to), "-d", db, "-F", "plain", "--json", env=env)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["client"].startswith("pg_dump 17")
        path = Path(result["path"])
        script = next((path / "dumps").iterdir())
        assert "\nSET transaction_timeout = 0;\n" in script.read_text()
        restored = pgshift(
            "restore",
            str(path),
            target.conninfo(),
            "--rename",
            f"{db}={db}_r",
            "--workdir",
            str(tmp_path / "w"),
            env=env,
        )
        assert restored.returncode == 0, restored.stderr
        with target.connect(f"{db}_r") as conn:
            assert conn.execute("SELECT count(*), sum(g) FROM t").fetchone() == (77, 77 * 78 // 2)
        open_set(path)  # every file as its checksum says: the script itself was not edited
        assert "without its SET transaction_timeout" in (tmp_path / "w" / "restore.log").read_text()
        # Another error still stops it: a table owned by a role the target lacks (no globals restored).
        source.execute(f"CREATE ROLE {gone}")
        source.execute(f"CREATE TABLE u (x int); ALTER TABLE u OWNER TO {gone}", db)
        again = pgshift("backup", source.conninfo(), "--to", str(to), "-d", db, "-F", "plain", "--json", env=env)
        second = Path(json.loads(again.stdout)["path"])
        source.execute("DROP TABLE u", db)
        source.execute(f"DROP ROLE {gone}")  # the target (the same server) no longer has it
        failed = pgshift(
            "restore",
            str(second),
            target.conninfo(),
            "--no-globals",
            "--rename",
            f"{db}={db}_f",
            "--workdir",
            str(tmp_path / "f"),
            env=env,
        )
        clean_failure(failed, 5, f'role "{gone}" does not exist')
    finally:
        for name in (db, f"{db}_r", f"{db}_f"):
            target.execute(f"DROP DATABASE IF EXISTS {name}")
        source.execute(f"DROP ROLE IF EXISTS {gone}")


def test_a_set_written_by_a_newer_pg_dump_than_any_installed_is_refused_naming_the_major(
    servers: Any, tmp_path: Path
) -> None:
    """Taken where 18 clients were installed, restored where only 17 are: pg_restore 17 cannot read
    an archive of pg_dump 18, so restore and --list stop before anything is changed (exit 4)."""
    server = servers.get(16)
    db = f"hb_newer_{uuid.uuid4().hex[:8]}"
    server.execute(f"CREATE DATABASE {db}")
    try:
        server.execute("CREATE TABLE t AS SELECT 1 AS x", db)
        taken = pgshift(
            "backup",
            server.conninfo(),
            "--to",
            str(tmp_path / "sets"),
            "-d",
            db,
            "--json",
            env=only_clients(tmp_path / "a", 18),
        )
        assert taken.returncode == 0, taken.stderr
        path = Path(json.loads(taken.stdout)["path"])
        here = only_clients(tmp_path / "b", 17)
        restore = pgshift("restore", str(path), server.conninfo(), "--rename", f"{db}={db}_r", env=here)
        clean_failure(restore, 4, "written by pg_dump 18", "pgshift toolchain install 18")
        clean_failure(pgshift("restore", str(path), "--list", env=here), 4, "written by pg_dump 18")
        with server.connect() as conn:
            assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (f"{db}_r",)).fetchone()[0] == 0
    finally:
        server.execute(f"DROP DATABASE IF EXISTS {db}")


def test_a_set_without_its_globals_file_is_refused_and_one_taken_without_globals_needs_no_globals(
    servers: Any, tmp_path: Path
) -> None:
    server = servers.get(17)
    db = f"hb_glob_{uuid.uuid4().hex[:8]}"
    server.execute(f"CREATE DATABASE {db}")
    try:
        server.execute("CREATE TABLE t AS SELECT generate_series(1, 9) AS x", db)
        to = tmp_path / "sets"
        done = pgshift("backup", server.conninfo(), "--to", str(to), "-d", db, "--json")
        path = Path(json.loads(done.stdout)["path"])
        (path / "globals.json").unlink()
        renamed = ("--rename", f"{db}={db}_r")
        clean_failure(
            pgshift("restore", str(path), server.conninfo(), *renamed), 2, "damaged", "globals.json is missing"
        )
        proof = pgshift("verify-backup", str(path), "--json")
        assert proof.returncode == 1 and "globals.json is missing" in json.loads(proof.stdout)["problem"]
        # A set taken with --no-globals has none to miss: restore says so unless told --no-globals.
        done = pgshift("backup", server.conninfo(), "--to", str(to), "-d", db, "--no-globals", "--json")
        bare = Path(json.loads(done.stdout)["path"])
        clean_failure(
            pgshift("restore", str(bare), server.conninfo(), *renamed), 2, "taken without them", "--no-globals"
        )
        with server.connect() as conn:
            assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (f"{db}_r",)).fetchone()[0] == 0
        ok = pgshift("restore", str(bare), server.conninfo(), *renamed, "--no-globals")
        assert ok.returncode == 0, ok.stderr
        with server.connect(f"{db}_r") as conn:
            assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 9
    finally:
        for name in (db, f"{db}_r"):
            server.execute(f"DROP DATABASE IF EXISTS {name}")


def test_a_full_disk_during_a_backup_leaves_a_partial_set_marked_failed(servers: Any, tmp_path: Path) -> None:
    """40 MB of incompressible rows into a 20 MB file system: exit 5 naming the full directory; the set
    stays NAME.partial, listed as failed, refused by restore, and the next --keep removes it."""
    server = servers.get(16)
    db = f"hb_full_{uuid.uuid4().hex[:8]}"
    server.execute(f"CREATE DATABASE {db}")
    try:
        server.execute(
            "CREATE TABLE noise AS SELECT g AS id, (SELECT string_agg(md5(random()::text || k || g), '')"
            " FROM generate_series(1, 32) k) AS payload FROM generate_series(1, 40 * 1024) g",
            db,
        )
        with small_filesystem(tmp_path / "fs", 20) as fs:
            to = fs / "sets"
            full = pgshift("backup", server.conninfo(), "--to", str(to), "-d", db)
            clean_failure(full, 5, f"error: the backup directory {to} is full (", " needed, ", " free)")
            assert "never restored" in full.stderr and full.stderr.count("hint:") == 1
            (partial,) = to.iterdir()
            assert partial.name.endswith(".partial") and not (partial / "manifest.json").exists()
            assert not list((partial / "dumps").iterdir())  # the archive cut short is gone: its space is free
            listed = json.loads(pgshift("backup", "list", str(to), "--json").stdout)
            assert [(s["complete"], s["state"]) for s in listed["sets"]] == [(False, "failed")]
            clean_failure(pgshift("restore", str(partial), server.conninfo()), 2, "incomplete backup set")
            # With the large table left out the set fits; --keep clears the failed one away.
            done = pgshift(
                "backup", server.conninfo(), "--to", str(to), "-d", db, "-T", "noise", "--keep", "3", "--json"
            )
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)["removed_partial"] == [partial.name]
    finally:
        server.execute(f"DROP DATABASE IF EXISTS {db}")


def test_a_database_refusing_connections_is_left_out_by_default_and_refused_when_named(
    fresh_server: Any, tmp_path: Path
) -> None:
    # Chosen as check and migrate choose (checks.databases), but with postgres kept, as pg_dumpall keeps it.
    source = fresh_server(16)
    source.execute("CREATE DATABASE hb_open")
    source.execute("CREATE TABLE t AS SELECT g FROM generate_series(1, 10) g", "hb_open")
    source.execute("CREATE DATABASE hb_closed")
    source.execute("ALTER DATABASE hb_closed ALLOW_CONNECTIONS false")
    to = tmp_path / "sets"
    done = pgshift("backup", source.conninfo(), "--to", str(to), "--json")
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stderr.split())
    assert "database 'hb_closed' does not accept connections (datallowconn = false)" in said, said
    assert "it is left out" in said
    result = json.loads(done.stdout)
    assert sorted(d["name"] for d in result["databases"]) == ["hb_open", "postgres"]
    assert sorted(d["name"] for d in open_set(Path(result["path"])).databases) == ["hb_open", "postgres"]
    named = pgshift("backup", source.conninfo(), "--to", str(to), "-d", "hb_open", "-d", "hb_closed")
    clean_failure(named, 2, "'hb_closed'", "ALLOW_CONNECTIONS true")
    assert len(list(to.iterdir())) == 1  # the refused backup wrote nothing
