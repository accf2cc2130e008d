"""A move from a source taking writes says so before it runs and, in its report, as of when each
database was copied; verify proves the target equal to the source as of that moment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.writer import ticking


@pytest.mark.parametrize("mode", ["dump", "stream"])
def test_a_live_source_is_verified_as_of_each_database_dump(servers: Any, tmp_path: Path, mode: str) -> None:
    source, target = servers.get(14), servers.get(17)
    names = [f"live_{mode}_a", f"live_{mode}_b"]
    for server in (source, target):
        for name in names:
            server.execute(f"DROP DATABASE IF EXISTS {name}")
    for name in names:
        source.execute(f"CREATE DATABASE {name}")
    with ticking(source, names[0]), ticking(source, names[1]):
        args = [sys.executable, "-m", "pgshift", "migrate", source.conninfo(), target.conninfo()]
        args += [a for n in names for a in ("-d", n)]
        done = subprocess.run(
            [*args, "--mode", mode, "--jobs", "1", "--json", "--workdir", str(tmp_path / "w")],
            capture_output=True,
            text=True,
        )
    assert done.returncode == 0, done.stderr
    assert f"check: source-taking-writes [{names[0]}: {names[0]}]" in done.stderr
    doc = json.loads(done.stdout)
    assert any("source-taking-writes" in w for w in doc["warnings"])
    assert [d["as_of"][:2] for d in doc["databases"]] == ["20", "20"]
    verify = doc["verify"]
    assert verify["equal"] is True, verify["differences"]
    assert all(d["source_in_snapshot"] for d in verify["databases"])
    # The writers went on after each dump: the source holds rows the target does not, and verify
    # was right to compare with the dumps' moments (its own count, outside any snapshot, differs).
    for name in names:
        later = _one(source, name, "SELECT count(*) FROM ticks")
        moved = _one(target, name, "SELECT count(*) FROM ticks")
        assert 0 < moved < later, (name, moved, later)
        # The target's sequence covers every row it holds: no key is handed out twice after a cut-over.
        assert _one(target, name, "SELECT max(id) <= (SELECT last_value FROM ticks_id_seq) FROM ticks")
    rules = {e["rule"] for e in verify["expected"]}
    assert rules <= {"sequence-moved-on", "maintain-privilege-17", "public-schema-15"}, rules
    for server in (source, target):
        for name in names:
            server.execute(f"DROP DATABASE {name}")


def _one(server: Any, dbname: str, query: str) -> Any:
    with server.connect(dbname) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


@pytest.mark.parametrize("mode", ["dump", "stream"])
def test_a_move_under_pgbench_is_one_consistent_moment_verified_with_checksums(
    servers: Any, tmp_path: Path, mode: str
) -> None:
    """pgbench's TPC-B-like writes keep one invariant across four tables (every transaction adds the
    same delta to an account, its teller, its branch, and a history row): a target that holds one
    moment of the source keeps it; a copy made of different moments would not."""
    source, target = servers.get(14), servers.get(17)
    db = f"bench_{mode}"
    for server in (source, target):
        server.execute(f"DROP DATABASE IF EXISTS {db}")
    source.execute(f"CREATE DATABASE {db}")
    pgbench = str(source.bin_dir / "pgbench")
    conn = ["-h", source.host, "-p", str(source.port), "-U", source.superuser]
    env = source.psql_env()
    subprocess.run([pgbench, "-i", "-s", "2", "-q", *conn, db], check=True, capture_output=True, env=env)
    writers = subprocess.Popen(
        [pgbench, "-c", "2", "-T", "600", "-n", *conn, db],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        args = [sys.executable, "-m", "pgshift", "migrate", source.conninfo(), target.conninfo(), "-d", db]
        done = subprocess.run(
            [*args, "--mode", mode, "--checksums", "--json", "--workdir", str(tmp_path / "w")],
            capture_output=True,
            text=True,
        )
    finally:
        writers.terminate()
        writers.wait()
    assert done.returncode == 0, done.stderr
    verify = json.loads(done.stdout)["verify"]
    assert verify["equal"] and verify["options"]["checksums"], verify["differences"]
    moved = _one(target, db, "SELECT count(*) FROM pgbench_history")
    assert 0 < moved < _one(source, db, "SELECT count(*) FROM pgbench_history")  # it ran during the move
    for table, balance in (
        ("pgbench_accounts", "abalance"),
        ("pgbench_tellers", "tbalance"),
        ("pgbench_branches", "bbalance"),
    ):
        assert _one(target, db, f"SELECT sum({balance}) = (SELECT sum(delta) FROM pgbench_history) FROM {table}"), table
    for server in (source, target):
        server.execute(f"DROP DATABASE {db}")
