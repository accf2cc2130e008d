"""pgshift stays bounded at scale (issues 16 and 17): peak RSS < 300 MB, and the lock table foreseen.

pgshift runs as a user runs it (``python -m pgshift …``); its peak resident set is the kernel's
high-water mark of that one process (VmHWM in ``/proc/PID/status``, tests/fixtures/rss.py, shared
with bench/scale.py), so the pg_dump and pg_restore children are not counted. Every move is then
checked by the test's own queries on the target. The full-size figures (and times) come from
bench/scale.py and are in docs/reliability.md, "Scale".
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pgshift.lab import LabServer, start
from tests.fixtures.rss import Measured, run_pgshift

TABLES = 10_000
DATABASES = 50
TABLES_PER_DATABASE = 20
# bench/scale.py moves 100,000 large objects (see docs/reliability.md for its time); here a tenth:
# pg_dump and pg_restore handle each one as its own archive entry, and the full count would take
# most of this file's CI budget while pgshift's own memory does not depend on it (it never holds
# the large objects, only their count and a digest per database).
LARGE_OBJECTS = 10_000
LIMIT_MB = 300
# pg_dump locks every table it dumps in one transaction: the lock table must hold 10,000.
LOCKS = {"max_locks_per_transaction": "256"}


def _assert_bounded(done: Measured, what: str) -> None:
    print(f"pgshift {what}: {done.seconds:.1f} s, peak RSS {done.peak_mb:.0f} MB")
    assert 0 < done.peak_mb < LIMIT_MB, f"pgshift {what}: peak RSS was {done.peak_mb:.0f} MB"


def _public_tables(server: LabServer, db: str) -> int:
    with server.connect(db) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
        ).fetchone()
        assert row is not None
        return int(row[0])


@pytest.fixture(scope="module")
def many_tables() -> Iterator[LabServer]:
    """A source with one database of 10,000 tables (a primary key and one row each)."""
    source = start(16, settings=LOCKS)
    try:
        source.execute("CREATE DATABASE many")
        # One transaction per thousand tables keeps the lock table within max_locks_per_transaction.
        for first in range(0, TABLES, 1000):
            source.execute(
                f"DO $$ BEGIN FOR i IN {first}..{first + 999} LOOP EXECUTE format("
                "'CREATE TABLE t%s (id int PRIMARY KEY, v text); INSERT INTO t%s VALUES (1, ''x'')', i, i); "
                "END LOOP; END $$",
                "many",
            )
        yield source
    finally:
        source.stop()


def test_check_of_10000_tables_keeps_pgshift_under_300_mb(many_tables: LabServer, fresh_server: Any) -> None:
    target = fresh_server(17)
    done = run_pgshift(["check", many_tables.conninfo(), target.conninfo(), "-d", "many", "--json"])
    assert done.returncode in (0, 1), done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["counts"]["blocker"] == 0
    # check read the whole database: its inventory counts every table.
    assert [d["object_counts"]["tables"] for d in report["source"]["checked"]] == [TABLES]
    _assert_bounded(done, f"check, {TABLES} tables")


@pytest.mark.parametrize("mode", ["dump", "stream"])
def test_migrating_and_verifying_10000_tables_keeps_pgshift_under_300_mb(
    many_tables: LabServer, fresh_server: Any, tmp_path: Path, mode: str
) -> None:
    target = fresh_server(17, settings=LOCKS)
    pair = [many_tables.conninfo(), target.conninfo()]
    done = run_pgshift(["migrate", *pair, "-d", "many", "--mode", mode, "--workdir", str(tmp_path / "w")])
    assert done.returncode == 0, done.stderr[-3000:]
    assert _public_tables(target, "many") == TABLES
    with target.connect("many") as conn:
        assert conn.execute("SELECT count(*) FROM t9999").fetchone() == (1,)
    _assert_bounded(done, f"migrate --mode {mode}, {TABLES} tables")
    if mode == "dump":  # verify on its own, once: what it compares does not depend on the mode
        verified = run_pgshift(["verify", *pair, "-d", "many", "--json"])
        assert verified.returncode == 0, verified.stdout[-3000:] + verified.stderr[-3000:]
        summary = json.loads(verified.stdout)
        assert (summary["tables_compared"], summary["rows_source"], summary["rows_target"]) == (TABLES,) * 3
        _assert_bounded(verified, f"verify, {TABLES} tables")


def test_one_migrate_moves_50_databases_with_pgshift_under_300_mb(fresh_server: Any, tmp_path: Path) -> None:
    source, target = fresh_server(16), fresh_server(17)
    source.execute("CREATE DATABASE scale_tpl")
    source.execute(
        f"DO $$ BEGIN FOR i IN 1..{TABLES_PER_DATABASE} LOOP EXECUTE format("
        "'CREATE TABLE t%s (id int PRIMARY KEY); INSERT INTO t%s SELECT generate_series(1, 3)', i, i); "
        "END LOOP; END $$",
        "scale_tpl",
    )
    names = [f"scale_{i:02d}" for i in range(DATABASES)]
    for name in names:
        source.execute(f"CREATE DATABASE {name} TEMPLATE scale_tpl")
    source.execute("DROP DATABASE scale_tpl")
    # No -d: every database but postgres and the templates, as a user's first run does.
    done = run_pgshift(["migrate", source.conninfo(), target.conninfo(), "--workdir", str(tmp_path / "w")])
    assert done.returncode == 0, done.stderr[-3000:]
    with target.connect() as conn:
        arrived = sorted(r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'scale_%'"))
    assert arrived == names
    for name in (names[0], names[-1]):
        assert _public_tables(target, name) == TABLES_PER_DATABASE
        with target.connect(name) as conn:
            assert conn.execute(f"SELECT count(*) FROM t{TABLES_PER_DATABASE}").fetchone() == (3,)
    _assert_bounded(done, f"migrate, {DATABASES} databases")


def _large_objects(server: LabServer) -> tuple[Any, ...]:
    with server.connect("blobs") as conn:
        row = conn.execute(
            "SELECT count(*), md5(string_agg(oid::text || ':' || encode(lo_get(oid), 'hex'), ',' ORDER BY oid)) "
            "FROM pg_largeobject_metadata"
        ).fetchone()
        assert row is not None
        return tuple(row)


def test_large_objects_are_moved_and_verified_with_pgshift_under_300_mb(fresh_server: Any, tmp_path: Path) -> None:
    source, target = fresh_server(16), fresh_server(17)
    source.execute("CREATE DATABASE blobs")
    source.execute(
        f"SELECT lo_from_bytea(0, convert_to('large object ' || g, 'UTF8')) FROM generate_series(1, {LARGE_OBJECTS}) g",
        "blobs",
    )
    pair = [source.conninfo(), target.conninfo()]
    done = run_pgshift(["migrate", *pair, "-d", "blobs", "--workdir", str(tmp_path / "w")])
    assert done.returncode == 0, done.stderr[-3000:]
    expected = _large_objects(source)
    assert expected[0] == LARGE_OBJECTS
    assert _large_objects(target) == expected
    _assert_bounded(done, f"migrate, {LARGE_OBJECTS} large objects")
    verified = run_pgshift(["verify", *pair, "-d", "blobs"])
    assert verified.returncode == 0, verified.stdout[-3000:] + verified.stderr[-3000:]
    _assert_bounded(verified, f"verify, {LARGE_OBJECTS} large objects")


def _tables_in_batches(server: LabServer, db: str, tables: int) -> None:
    for first in range(0, tables, 40):  # 40 tables (and their indexes) per transaction fit a small lock table
        server.execute(
            f"DO $$ BEGIN FOR i IN {first}..{min(first + 39, tables - 1)} LOOP "
            "EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY)', i); END LOOP; END $$",
            db,
        )


# The smallest lock table a server accepts: 10 × (20 connections + 3 autovacuum workers + 1 + 8
# worker processes + 10 WAL senders) = 420 locks before PostgreSQL 18.
SMALL_LOCK_TABLE = {"max_locks_per_transaction": "10", "max_connections": "20"}


def test_check_foresees_the_lock_table_that_pg_dump_would_exhaust(fresh_server: Any, tmp_path: Path) -> None:
    """A source whose shared lock table cannot hold one database's tables.

    The lock table is sized for max_locks_per_transaction × (max_connections + the other
    backend slots + max_prepared_transactions) locks: 420 here. The unused shared memory holds
    more: PostgreSQL 14's pg_dump failed from 761 tables on this server. 1,000 are more than both,
    so check must block, migrate must refuse before it dumps anything, and a run that accepts the
    blocker must fail at the dump with a message that says what to raise.
    """
    source = fresh_server(14, settings=SMALL_LOCK_TABLE)
    target = fresh_server(17)
    source.execute("CREATE DATABASE locky")
    _tables_in_batches(source, "locky", 1000)
    pair = [source.conninfo(), target.conninfo()]

    checked = run_pgshift(["check", *pair, "-d", "locky", "--json"])
    assert checked.returncode == 2, checked.stderr[-3000:]
    (finding,) = [f for f in json.loads(checked.stdout)["findings"] if f["rule_id"] == "max-locks-for-dump"]
    assert finding["severity"] == "blocker"
    assert "1000 relations" in finding["message"] and "about 420" in finding["message"]
    assert "max_locks_per_transaction" in finding["remediation"]

    refused = run_pgshift(["migrate", *pair, "-d", "locky", "--workdir", str(tmp_path / "refused")])
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert "max-locks-for-dump" in refused.stderr and "max_locks_per_transaction" in refused.stderr
    with target.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'locky'").fetchone() == (0,)
    assert not list((tmp_path / "refused").glob("dumps/*")), "migrate began a dump before refusing"

    accepted = run_pgshift(
        ["migrate", *pair, "-d", "locky", "--accept", "max-locks-for-dump", "--workdir", str(tmp_path / "accepted")]
    )
    assert accepted.returncode == 5, accepted.stderr[-3000:]
    assert "out of shared memory" in accepted.stderr
    assert "raise max_locks_per_transaction on the source" in accepted.stderr


def test_check_sizes_postgresql_18_s_lock_table_with_its_autovacuum_worker_slots(fresh_server: Any) -> None:
    """PostgreSQL 18 counts autovacuum_worker_slots (16) and two special workers in its backends.

    Its lock table then holds 10 × (20 + 16 + 2 + 8 + 10) = 560 locks, not the 420 of the formula
    before 18: 500 tables (which its pg_dump locks without trouble) are a warning, not a blocker.
    """
    source = fresh_server(18, settings=SMALL_LOCK_TABLE)
    source.execute("CREATE DATABASE locky")
    _tables_in_batches(source, "locky", 500)
    checked = run_pgshift(["check", source.conninfo(), "--target-version", "18", "-d", "locky", "--json"])
    findings = [f for f in json.loads(checked.stdout)["findings"] if f["rule_id"] == "max-locks-for-dump"]
    assert [(f["severity"], "about 560" in f["message"]) for f in findings] == [("warning", True)], checked.stdout
    dumped = subprocess.run(
        [str(source.bin_dir / "pg_dump"), "--schema-only", "--file", "/dev/null", "--dbname", source.conninfo("locky")],
        capture_output=True,
        text=True,
    )
    assert dumped.returncode == 0, dumped.stderr  # the warning is right: pg_dump 18 locks them all
