"""The known errors of backup, restore and verify-backup, each met on a real server and explained.

Issue 18's list: connection refused or authentication failed, permission denied for a table, a role
that does not exist, a relation that exists already, out of shared memory (max_locks_per_transaction),
a server newer than the pg_dump given, a full disk on the target. Each must be one clear message with
its cause and fix, the documented exit code (docs/exit-codes.md) and no traceback; what a refused
restore would have created is not on the target. (A truncated archive, a set of a newer pg_dump than
any installed, a missing globals file, a full backup disk and a database that exists are in
test_backup_cli.py and tests/integration/test_backup.py.)
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pgshift.lab import LabServer
from pgshift.toolchain.discover import discover
from tests.cli.test_backup_cli import only_clients
from tests.fixtures.faults import small_filesystem


def pgshift(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, timeout=300, env=env
    )


def explained(done: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "error:" in done.stderr, done.stderr
    said = " ".join(done.stderr.split())
    assert "hint:" in said, said
    for needle in needles:
        assert needle in said, said
    return said


def databases(server: LabServer) -> set[str]:
    with server.connect() as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def small_set(servers: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabServer, str, Path]]:
    """A database whose table belongs to a role of its own, backed up without globals."""
    source = servers.get(16)
    tag = uuid.uuid4().hex[:8]
    db, owner = f"hb_err_{tag}", f"hb_err_owner_{tag}"
    source.execute(f"CREATE ROLE {owner}")
    source.execute(f"CREATE DATABASE {db}")
    source.execute(
        f"CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 5);"
        f"ALTER TABLE t OWNER TO {owner}",
        db,
    )
    to = tmp_path_factory.mktemp("hb_err") / "sets"
    try:
        done = pgshift("backup", source.conninfo(), "--to", str(to), "-d", db, "--no-globals", "--json")
        assert done.returncode == 0, done.stderr
        yield source, db, Path(json.loads(done.stdout)["path"])
    finally:
        source.execute(f"DROP DATABASE IF EXISTS {db}")
        source.execute(f"DROP ROLE IF EXISTS {owner}")


def test_a_server_that_refuses_the_connection_is_exit_3_in_each_command(
    small_set: tuple[LabServer, str, Path], tmp_path: Path
) -> None:
    _source, _db, set_path = small_set
    closed = f"host=127.0.0.1 port={free_port()} user=postgres dbname=postgres connect_timeout=5"
    explained(pgshift("backup", closed, "--to", str(tmp_path / "sets")), 3, "Connection refused")
    explained(pgshift("restore", str(set_path), closed, "--no-globals"), 3, "Connection refused")
    explained(pgshift("verify-backup", str(set_path), "--target", closed), 3, "Connection refused")
    assert not (tmp_path / "sets").exists() or not any((tmp_path / "sets").iterdir())


def test_a_failed_authentication_is_exit_3_and_never_shows_the_password(
    small_set: tuple[LabServer, str, Path], fresh_server: Any, tmp_path: Path
) -> None:
    server = fresh_server(16, password="hb-right-secret")
    wrong = server.conninfo(with_password=False) + " password=hb-wrong-secret"
    for done in (
        pgshift("backup", wrong, "--to", str(tmp_path / "sets")),
        pgshift("restore", str(small_set[2]), wrong, "--no-globals"),
    ):
        said = explained(done, 3, "password authentication failed")
        assert "hb-wrong-secret" not in said + done.stdout


def test_a_table_the_backup_role_may_not_read_is_named_with_the_fix(servers: Any, tmp_path: Path) -> None:
    source = servers.get(16)
    tag = uuid.uuid4().hex[:8]
    db, reader = f"hb_perm_{tag}", f"hb_perm_reader_{tag}"
    source.execute(f"CREATE ROLE {reader} LOGIN")
    source.execute(f"CREATE DATABASE {db}")
    try:
        source.execute("CREATE TABLE secret (id int); INSERT INTO secret VALUES (1)", db)
        to = tmp_path / "sets"
        done = pgshift("backup", source.conninfo(user=reader), "--to", str(to), "-d", db, "--no-globals")
        explained(done, 5, "permission denied for table secret", "a role that may read every table")
        assert all(p.name.endswith(".partial") for p in to.iterdir())  # never a complete set
    finally:
        source.execute(f"DROP DATABASE IF EXISTS {db}")
        source.execute(f"DROP ROLE IF EXISTS {reader}")


def test_a_role_the_target_lacks_is_named_with_the_fix(small_set: tuple[LabServer, str, Path], servers: Any) -> None:
    _source, db, set_path = small_set
    target = servers.get(17)
    restored = f"{db}_norole"
    try:
        done = pgshift("restore", str(set_path), target.conninfo(), "--no-globals", "--rename", f"{db}={restored}")
        explained(done, 5, "role", "does not exist", "--no-owner --no-privileges")
        # The same set restores without ownership: the table belongs to the target's role.
        target.execute(f"DROP DATABASE IF EXISTS {restored}")
        again = pgshift(
            "restore", str(set_path), target.conninfo(), "--no-globals", "--no-owner", "--rename", f"{db}={restored}"
        )
        assert again.returncode == 0, again.stderr
    finally:
        target.execute(f"DROP DATABASE IF EXISTS {restored}")


def test_a_relation_that_exists_in_the_target_database_is_named_with_the_fix(
    small_set: tuple[LabServer, str, Path], servers: Any
) -> None:
    _source, db, set_path = small_set
    target = servers.get(17)
    restored = f"{db}_exists"
    target.execute(f"CREATE DATABASE {restored}")
    try:
        target.execute("CREATE TABLE t (id int)", restored)
        done = pgshift(
            "restore", str(set_path), target.conninfo(), "--no-globals", "--no-owner", "--rename", f"{db}={restored}",
            "--into-existing",
        )  # fmt: skip
        explained(done, 5, 'relation "t" already exists', "--clean --if-exists")
    finally:
        target.execute(f"DROP DATABASE IF EXISTS {restored}")


def test_out_of_shared_memory_names_max_locks_per_transaction(fresh_server: Any, tmp_path: Path) -> None:
    # pg_dump locks every table it dumps in one transaction: more tables than the lock table holds.
    source = fresh_server(16, settings={"max_locks_per_transaction": "10", "max_connections": "20"})
    source.execute("CREATE DATABASE hb_locks")
    with source.connect("hb_locks") as conn:
        conn.autocommit = True
        for i in range(600):
            conn.execute(f"CREATE TABLE t{i} (id int)".encode())
    done = pgshift("backup", source.conninfo(), "--to", str(tmp_path / "sets"), "-d", "hb_locks", "--no-globals")
    explained(done, 5, "out of shared memory", "max_locks_per_transaction")


def test_a_pg_dump_older_than_the_server_is_never_the_one_that_dumps(servers: Any, tmp_path: Path) -> None:
    # "server version mismatch" cannot happen: a pg_dump 16 given with --pg-bin is passed over for 17's.
    source = servers.get(17)
    older = next((i for i in discover(()).installations if i.major == 16 and i.has("pg_dump")), None)
    if older is None:
        pytest.skip("no pg_dump 16 installed")
    done = pgshift(
        "backup", source.conninfo(), "--to", str(tmp_path / "sets"), "-d", "postgres", "--pg-bin", str(older.bin_dir),
        "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    manifest = json.loads((Path(json.loads(done.stdout)["path"]) / "manifest.json").read_text())
    assert manifest["client"]["major_num"] == 17
    # On a machine whose only pg_dump is 16's, the backup of 17 is refused before anything is written.
    alone = pgshift("backup", source.conninfo(), "--to", str(tmp_path / "alone"), "-d", "postgres",
                    env=only_clients(tmp_path, 16))  # fmt: skip
    said = explained(alone, 4, "17")
    assert "pgshift toolchain install" in said
    assert not (tmp_path / "alone").exists() or not any((tmp_path / "alone").iterdir())


def test_a_file_whose_checksum_does_not_match_refuses_the_restore_naming_it(
    small_set: tuple[LabServer, str, Path], servers: Any, tmp_path: Path
) -> None:
    _source, db, set_path = small_set
    changed = tmp_path / "changed"
    subprocess.run(["cp", "-a", str(set_path), str(changed)], check=True)
    archive = next((changed / "dumps").iterdir())
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    archive.write_bytes(bytes(data))
    target = servers.get(17)
    restored = f"{db}_changed"
    done = pgshift("restore", str(changed), target.conninfo(), "--no-globals", "--rename", f"{db}={restored}")
    explained(done, 2, archive.name, "SHA-256")
    assert restored not in databases(target)
    proof = pgshift("verify-backup", str(changed), "--json")
    assert proof.returncode == 1 and archive.name in json.loads(proof.stdout)["problem"], proof.stdout


def test_a_full_disk_on_the_target_is_named_and_the_restore_resumes_once_there_is_room(
    servers: Any, fresh_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = servers.get(16)
    db = f"hb_full_{uuid.uuid4().hex[:8]}"
    # The server runs as postgres: its file system is mounted where that user can reach it.
    mount = Path(tempfile.gettempdir()) / f"hb-full-{uuid.uuid4().hex[:8]}"
    source.execute(f"CREATE DATABASE {db}")
    try:
        # About 90 MB on disk: more than the target's file system has left.
        source.execute("CREATE TABLE big AS SELECT g, md5(g::text) AS h FROM generate_series(1, 1200000) g", db)
        done = pgshift("backup", source.conninfo(), "--to", str(tmp_path / "sets"), "-d", db, "--no-globals", "--json")
        assert done.returncode == 0, done.stderr
        set_path = json.loads(done.stdout)["path"]
        with small_filesystem(mount, 110) as fs:
            monkeypatch.setenv("PGSHIFT_LAB_DIR", str(fs))
            target = fresh_server(16, settings={"max_wal_size": "64MB", "min_wal_size": "32MB"})
            workdir = tmp_path / "w"
            full = pgshift("restore", set_path, target.conninfo(), "--no-globals", "--workdir", str(workdir))
            said = explained(full, 5, "No space left on device", "the disk is full")
            assert f"pgshift restore --resume {workdir}" in said
            target.stop()  # before its file system goes
    finally:
        source.execute(f"DROP DATABASE IF EXISTS {db}")
        with contextlib.suppress(OSError):
            mount.rmdir()


def test_an_archive_missing_from_the_set_refuses_the_restore_naming_it(
    small_set: tuple[LabServer, str, Path], servers: Any, tmp_path: Path
) -> None:
    _source, db, set_path = small_set
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(set_path), str(copy)], check=True)
    archive = next((copy / "dumps").iterdir())
    archive.unlink()
    target = servers.get(17)
    restored = f"{db}_gone"
    done = pgshift("restore", str(copy), target.conninfo(), "--no-globals", "--rename", f"{db}={restored}")
    explained(done, 2, archive.name, "missing")
    assert restored not in databases(target)
    explained(pgshift("restore", str(copy), "--list"), 2, archive.name)
