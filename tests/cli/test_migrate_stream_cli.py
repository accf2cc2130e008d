"""``pgshift migrate --mode stream`` as a user runs it: the plan it prints, what it refuses, and a
run killed in the middle of its copy that resumes to exactly the source's rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.fixtures.compare import assert_same, snapshot
from tests.fixtures.journal import journal_of


def pgshift(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, timeout=timeout)


def test_dry_run_plans_the_schema_dump_in_a_snapshot_then_the_copy(fresh_server: Any, tmp_path: Path) -> None:
    source, target = fresh_server(13), fresh_server(17)
    source.execute("CREATE DATABASE shop")
    source.execute("CREATE TABLE t (id int PRIMARY KEY)", "shop")
    done = pgshift("migrate", source.conninfo(), target.conninfo(), "--mode", "stream", "--dry-run", "--json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    kinds = [s["kind"] for s in plan["steps"] if s["database"] == "shop"]
    assert kinds == ["dump", "create-database", "restore-schema", "stream-data", "stream-finish", "analyze", "finish"]
    dump = next(s for s in plan["steps"] if s["kind"] == "dump")["program"]["command"]
    assert "--schema-only" in dump and "--snapshot=" in dump and "--compress" not in dump
    assert plan["options"]["mode"] == "stream"
    with target.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'shop'").fetchone()[0] == 0


def test_stream_mode_with_data_only_is_a_usage_error(fresh_server: Any) -> None:
    source, target = fresh_server(16), fresh_server(17)
    done = pgshift("migrate", source.conninfo(), target.conninfo(), "--mode", "stream", "--data-only")
    assert done.returncode == 64, done.stderr
    assert "--data-only works in dump mode only" in done.stderr and "Traceback" not in done.stderr


def test_a_run_killed_mid_copy_resumes_without_losing_or_doubling_a_row(fresh_server: Any, tmp_path: Path) -> None:
    source, target = fresh_server(14), fresh_server(17)
    source.execute("CREATE DATABASE big")
    source.execute(
        "CREATE TABLE small (id int PRIMARY KEY, v text);"
        "INSERT INTO small SELECT g, md5(g::text) FROM generate_series(1, 5000) g;"
        "CREATE TABLE large (id bigint PRIMARY KEY, v text, n numeric, at timestamptz);"
        "INSERT INTO large SELECT g, repeat(md5(g::text), 4), g * 1.5, now() - g * interval '1 s'"
        " FROM generate_series(1, 1500000) g;"
        "CREATE INDEX large_n ON large (n); CREATE TABLE child (id int REFERENCES small, w int);"
        "INSERT INTO child SELECT g % 5000 + 1, g FROM generate_series(1, 20000) g;",
        "big",
    )
    workdir = tmp_path / "run"
    args = ("migrate", source.conninfo(), target.conninfo(), "-d", "big", "--mode", "stream", "--workdir", str(workdir))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgshift", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    # Killed (as the OOM killer would) while the large table's COPY is under way on the target.
    deadline = time.monotonic() + 300
    killed = False
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with target.connect("big") as conn:
                rows = conn.execute(
                    "SELECT coalesce(max(p.tuples_processed), 0) FROM pg_stat_progress_copy p"
                    " JOIN pg_class c ON c.oid = p.relid WHERE c.relname = 'large'"
                ).fetchone()[0]
        except Exception:
            rows = 0
        if rows > 100_000:
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.05)
    proc.communicate(timeout=60)
    assert killed, "the copy finished before it could be killed: make the table larger"
    journal = journal_of(workdir)
    assert journal is not None and journal.step("db:big:stream-data").state == "running"

    resumed = pgshift("migrate", "--resume", str(workdir), "--json")
    assert resumed.returncode == 0, resumed.stderr
    doc = json.loads(resumed.stdout)
    assert doc["ok"] and doc["verify"]["equal"], doc
    assert_same(snapshot(source, "big"), snapshot(target, "big"))
    with target.connect("big") as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT id) FROM large").fetchone() == (1500000, 1500000)
        # The copy's progress records are gone once the database is finished.
        schemas = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE '%pgshift%'").fetchall()
        assert schemas == []


def test_a_reader_killed_mid_copy_never_loads_its_rows_as_complete(fresh_server: Any, tmp_path: Path) -> None:
    """Large units are read by psql: killed mid-COPY, it ends the data early, which must fail the unit
    (its rows are not committed), never load as if the table were whole; --resume then copies it."""
    source, target = fresh_server(15), fresh_server(17)
    source.execute("CREATE DATABASE rdr")
    source.execute(
        "CREATE TABLE wide (id bigint PRIMARY KEY, v text);"
        "INSERT INTO wide SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 1200000) g",
        "rdr",
    )
    workdir = tmp_path / "run"
    args = ("migrate", source.conninfo(), target.conninfo(), "-d", "rdr", "--mode", "stream", "--workdir", str(workdir))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgshift", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 300
    killed = False
    while time.monotonic() < deadline and proc.poll() is None:
        readers = subprocess.run(["pgrep", "-f", "psql .*COPY .*wide.* TO STDOUT"], capture_output=True, text=True)
        pids = [int(p) for p in readers.stdout.split()]
        if pids:
            time.sleep(0.05)  # some rows are on their way to the target
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed = True
                except ProcessLookupError:  # that range's reader ended first: wait for the next one
                    pass
            if killed:
                break
        time.sleep(0.01)
    _out, err = proc.communicate(timeout=120)
    assert killed, "no psql reader was seen: the table is read through psycopg"
    assert proc.returncode == 5, err
    assert "copying table public.wide" in err and "killed by signal 9" in err, err
    with target.connect("rdr") as conn:
        # The table is copied in ranges: those done are in, the killed one is not, nothing twice.
        rows, distinct = conn.execute("SELECT count(*), count(DISTINCT id) FROM wide").fetchone()
        assert rows < 1200000 and rows == distinct
    resumed = pgshift("migrate", "--resume", str(workdir), "--json")
    assert resumed.returncode == 0, resumed.stderr
    with target.connect("rdr") as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT id) FROM wide").fetchone() == (1200000, 1200000)
