"""Faults a run meets, injected for real: a full work directory, children killed by a signal.

Each test asserts the message and the exit code a user gets, that pgshift ends promptly (never a
hang), that no child is left, and that the journal stays readable (what was written stays valid).
The table in docs/reliability.md lists these tests (tests/unit/test_reliability_doc.py keeps it true).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgshift import process
from pgshift.errors import StepFailed, WorkdirFull
from pgshift.lab import LabServer
from pgshift.migrate.workdir import RunLog
from tests.fixtures.compare import assert_same, snapshot
from tests.fixtures.faults import restart, small_filesystem, terminate, wait_for_backend
from tests.fixtures.journal import journal_of, step_state


def pgshift(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, timeout=timeout)


def children_naming(path: Path) -> list[str]:
    """Command lines of live processes whose arguments name ``path`` (pg_dump, pg_restore …)."""
    found = []
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if (proc_dir / "stat").read_text().split(") ", 1)[1].startswith("Z"):
                continue  # a zombie is no child left running
            cmdline = (proc_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if str(path) in cmdline and "pytest" not in cmdline:
                found.append(cmdline)
    return found


def start_migrate(source: LabServer, target: LabServer, dbname: str, workdir: Path) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "pgshift", "migrate", source.conninfo(), target.conninfo()]
    argv += ["-d", dbname, "--workdir", str(workdir), "--jobs", "1"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def one_line(text: str) -> str:
    """stderr with rich's wrapping undone, for matching whole messages."""
    return " ".join(text.split())


# --- the stderr pump -------------------------------------------------------------------------------

# A child that writes far more than a pipe holds (64 kB) to stderr, then sleeps: if nobody drains
# its pipe it blocks for ever; if nobody stops it, it outlives the test.
_FLOOD = (
    "import sys, time\nfor i in range(20000): sys.stderr.write('line %d of a chatty child\\n' % i)\ntime.sleep(600)"
)


def test_a_log_write_refused_by_a_full_disk_stops_the_child_and_raises_at_once(tmp_path: Path) -> None:
    calls = []

    def full_disk(line: str) -> None:
        calls.append(line)
        if len(calls) == 3:
            raise WorkdirFull(str(tmp_path), reason="full", free=0)

    marker = tmp_path / "flood-marker"
    command = process.Command((sys.executable, "-c", _FLOOD, str(marker)))
    started = time.monotonic()
    with pytest.raises(WorkdirFull, match=f"the work directory {tmp_path} is full"):
        process.run(command, on_stderr=full_disk, timeout=120)
    assert time.monotonic() - started < 20  # the child was stopped, not waited for until its timeout
    assert len(calls) == 3  # the callback is not called again once it failed
    assert not children_naming(marker)
    assert not process.running_groups()


def test_an_unexpected_callback_error_is_raised_after_the_child_is_stopped(tmp_path: Path) -> None:
    def broken(line: str) -> None:
        raise OSError(errno.EBADF, "Bad file descriptor")

    marker = tmp_path / "flood-marker"
    with pytest.raises(OSError, match="Bad file descriptor"):
        process.run(process.Command((sys.executable, "-c", _FLOOD, str(marker))), on_stderr=broken, timeout=120)
    assert not children_naming(marker)


def test_the_run_log_on_a_full_filesystem_raises_workdir_full_and_keeps_whole_lines(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "fs", 1) as fs:
        log = RunLog(fs / "migrate.log")
        log.write("info", "first line")
        with pytest.raises(WorkdirFull) as caught:
            for _ in range(2000):
                log.write("pg_dump", "x" * 1000)
        assert caught.value.message.startswith(f"the work directory {fs} is full (")
        assert "free" in caught.value.message
        assert "free space on its file system" in (caught.value.hint or "")
        log.close()
        text = (fs / "migrate.log").read_text()
        assert text.endswith("\n") and all(line.count(" ") >= 2 for line in text.splitlines())


def test_a_killed_child_says_which_signal_with_its_last_lines(tmp_path: Path) -> None:
    script = "import os, signal, sys\nsys.stderr.write('working on table big\\n'); sys.stderr.flush()\n"
    script += "os.kill(os.getpid(), signal.SIGKILL)"
    with pytest.raises(StepFailed) as caught:
        process.run(process.Command((sys.executable, "-c", script)))
    assert caught.value.message.endswith("was killed by signal 9 (SIGKILL)")
    assert caught.value.returncode == -9
    assert "working on table big" in (caught.value.detail or "")


# --- a real migrate into a work directory too small for its dump ---------------------------------------


def _incompressible(source: LabServer, dbname: str, megabytes: int) -> None:
    """Hex of random numbers: lz4 and gzip shrink it little, so the dump is about as large."""
    source.execute(f"CREATE DATABASE {dbname}")
    source.execute(
        "CREATE TABLE noise AS SELECT g AS id, (SELECT string_agg(md5(random()::text || k || g), '')"
        " FROM generate_series(1, 32) k) AS payload"
        f" FROM generate_series(1, {megabytes * 1024}) g",
        dbname,
    )


def test_a_work_directory_too_small_for_the_dump_fails_promptly_naming_it_then_resume_completes(
    fresh_server: Any, tmp_path: Path
) -> None:
    source, target = fresh_server(16), fresh_server(17)
    _incompressible(source, "roomy", 40)
    with small_filesystem(tmp_path / "fs", 20) as fs:
        workdir = fs / "run"
        started = time.monotonic()
        done = pgshift("migrate", source.conninfo(), target.conninfo(), "-d", "roomy", "--workdir", str(workdir))
        took = time.monotonic() - started
        err = one_line(done.stderr)
        assert done.returncode == 5, done.stderr
        assert f"error: the work directory {workdir} is full (" in err, err
        assert " needed, " in err and " free)" in err
        assert f"pgshift migrate --resume {workdir}" in err
        assert "Traceback" not in done.stderr and "internal error" not in done.stderr
        assert err.count("--resume") == 1, err  # one hint, not two glued together
        assert took < 120
        assert not children_naming(workdir)
        journal = journal_of(workdir)
        assert journal is not None  # still readable: every line whole
        assert journal.step("db:roomy:dump").state in ("failed", "running")
        assert not journal.done("db:roomy:dump")
        # The dump cut short was removed: its space is free again.
        assert not any((workdir / "dumps").glob("*/toc.dat"))
        # The user moves the directory to a larger file system and resumes there.
        roomy = tmp_path / "moved"
        subprocess.run(["cp", "-a", str(workdir), str(roomy)], check=True)
    resumed = pgshift("migrate", "--resume", str(roomy), "--json")
    assert resumed.returncode == 0, resumed.stderr
    with source.connect("roomy") as s, target.connect("roomy") as t:
        query = "SELECT count(*), md5(string_agg(payload, '' ORDER BY id)) FROM noise"
        assert s.execute(query).fetchone() == t.execute(query).fetchone()


def test_ctrl_c_with_a_full_work_directory_still_exits_130(fresh_server: Any, tmp_path: Path) -> None:
    source, target = fresh_server(16), fresh_server(17)
    source.execute("CREATE DATABASE stuffed")
    source.execute(
        "CREATE FUNCTION ok(int) RETURNS boolean IMMUTABLE LANGUAGE sql AS 'SELECT true';"
        "CREATE TABLE slow (id int PRIMARY KEY CHECK (ok(id))); INSERT INTO slow SELECT generate_series(1, 400);"
        "CREATE OR REPLACE FUNCTION ok(int) RETURNS boolean IMMUTABLE LANGUAGE sql"
        " AS 'SELECT pg_sleep(0.02) IS NOT NULL';",
        "stuffed",
    )
    with small_filesystem(tmp_path / "fs", 8) as fs:
        workdir = fs / "run"
        proc = start_migrate(source, target, "stuffed", workdir)
        deadline = time.monotonic() + 180
        while step_state(workdir, "db:stuffed:restore-data") != "running":
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the restore never started"
            time.sleep(0.05)
        with contextlib.suppress(OSError), open(fs / "filler", "wb", buffering=0) as filler:
            while True:
                filler.write(b"\0" * 65536)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err
        assert "interrupted (Ctrl-C)" in one_line(err)
        assert "Traceback" not in err and "internal error" not in err
        assert not children_naming(workdir)
        journal = journal_of(workdir)
        assert journal is not None and not journal.done("db:stuffed:restore-data")
        (fs / "filler").unlink()
        resumed = pgshift("migrate", "--resume", str(workdir), "--json")
        assert resumed.returncode == 0, resumed.stderr
    with target.connect("stuffed") as conn:
        assert conn.execute("SELECT count(*) FROM slow").fetchone() == (400,)


def test_a_killed_pg_dump_is_named_by_its_signal_and_the_run_resumes(fresh_server: Any, tmp_path: Path) -> None:
    source, target = fresh_server(16), fresh_server(17)
    _incompressible(source, "victim", 30)
    workdir = tmp_path / "run"
    proc = start_migrate(source, target, "victim", workdir)
    deadline = time.monotonic() + 180
    dumps: list[int] = []
    while not dumps:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "pg_dump never started"
        found = subprocess.run(["pgrep", "-a", "-x", "pg_dump"], capture_output=True, text=True).stdout
        # The run's dump of the data, not the schema trial's (--format=custom), which may start first:
        # a trial that could not dump says "not tried" and the run goes on.
        dumps = [
            int(line.split(None, 1)[0])
            for line in found.splitlines()
            if str(workdir) in line and "--format=directory" in line
        ]
        time.sleep(0.05)
    for pid in dumps:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 5, err
    assert "pg_dump was killed by signal 9 (SIGKILL)" in one_line(err)
    assert one_line(err).count("--resume") == 1
    assert not children_naming(workdir)
    resumed = pgshift("migrate", "--resume", str(workdir), "--json")
    assert resumed.returncode == 0, resumed.stderr


# --- verify's sessions lost -------------------------------------------------------------------------


def _verify_pair(source: LabServer, target: LabServer, dbname: str) -> None:
    for server in (source, target):
        server.execute(f"DROP DATABASE IF EXISTS {dbname}")
        server.execute(f"CREATE DATABASE {dbname}")
        server.execute(
            "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g; CREATE INDEX t_id ON t (id)", dbname
        )


@contextlib.contextmanager
def count_held_on(server: LabServer, dbname: str) -> Iterator[None]:
    """verify's count of ``t`` waits (its planner opens the index, which REINDEX holds) while the
    catalog reads before it, which lock only the table, go through."""
    with server.connect(dbname, autocommit=False) as holder:
        holder.execute("REINDEX INDEX t_id")
        try:
            yield
        finally:
            with contextlib.suppress(psycopg.Error):
                holder.rollback()


def start_verify(source: LabServer, target: LabServer, dbname: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "pgshift", "verify", source.conninfo(), target.conninfo(), "-d", dbname, "-j", "1"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("fault", ["terminated", "restarted"])
def test_a_verify_session_lost_says_the_connection_was_lost_not_a_missing_privilege(
    servers: Any, fresh_server: Any, fault: str
) -> None:
    source = servers.get(16)
    target = servers.get(17) if fault == "terminated" else fresh_server(17)
    dbname = f"vlost_{fault}"
    _verify_pair(source, target, dbname)
    try:
        with count_held_on(target, dbname):
            proc = start_verify(source, target, dbname)
            pid = wait_for_backend(
                target, f"datname = '{dbname}' AND wait_event_type = 'Lock'", alive=lambda: proc.poll() is None
            )
            if fault == "terminated":
                terminate(target, pid)
            else:
                restart(target)
        _out, err = proc.communicate(timeout=60)
    finally:
        source.execute(f"DROP DATABASE IF EXISTS {dbname}")
        target.execute(f"DROP DATABASE IF EXISTS {dbname}")
    text = one_line(err)
    assert proc.returncode == 5, err
    assert (
        f"counting rows of public.t on the target failed: the connection to the target (database '{dbname}') was lost"
        in text
    )
    assert "terminating connection due to administrator command" in text
    assert "hint: the target server ended the session" in text and "run verify again" in text
    assert "SELECT on every table" not in text
    assert "Traceback" not in err


def test_a_verify_refused_a_table_still_asks_for_the_privilege(servers: Any) -> None:
    source, target = servers.get(16), servers.get(17)
    dbname, role = "vpriv", "vpriv_reader"
    _verify_pair(source, target, dbname)
    for server in (source, target):
        server.execute(f"DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN")
    try:
        done = pgshift(
            "verify", source.conninfo(user=role), target.conninfo(user=role), "-d", dbname, "--no-globals", timeout=60
        )
    finally:
        for server in (source, target):
            server.execute(f"DROP DATABASE IF EXISTS {dbname}")
            server.execute(f"DROP ROLE IF EXISTS {role}")
    text = one_line(done.stderr)
    assert done.returncode == 5, done.stderr
    assert "permission denied for table t" in text, text
    assert "hint: the verifying role needs SELECT on every table of the source" in text, text
    assert "connection" not in text, text


# --- a migration's backends terminated -------------------------------------------------------------------


def test_pg_restore_s_backend_terminated_mid_restore_fails_naming_it_then_resume_completes_equal(
    fresh_server: Any, tmp_path: Path
) -> None:
    source, target = fresh_server(16), fresh_server(17)
    source.execute("CREATE DATABASE cut")
    source.execute(
        "CREATE FUNCTION ok(int) RETURNS boolean IMMUTABLE LANGUAGE sql AS 'SELECT true';"
        "CREATE TABLE slow (id int PRIMARY KEY CHECK (ok(id)), v text); "
        "INSERT INTO slow SELECT g, md5(g::text) FROM generate_series(1, 300) g;"
        "CREATE TABLE other AS SELECT g AS id FROM generate_series(1, 5000) g;"
        "CREATE OR REPLACE FUNCTION ok(int) RETURNS boolean IMMUTABLE LANGUAGE sql"
        " AS 'SELECT pg_sleep(0.02) IS NOT NULL';",
        "cut",
    )
    expected = snapshot(source, "cut")
    workdir = tmp_path / "run"
    proc = start_migrate(source, target, "cut", workdir)
    pid = wait_for_backend(
        target,
        "datname = 'cut' AND query ILIKE 'COPY%slow%'",
        alive=lambda: proc.poll() is None,
        application="pg_restore",
    )
    terminate(target, pid)
    _out, err = proc.communicate(timeout=120)
    text = one_line(err)
    assert proc.returncode == 5, err
    assert "terminating connection due to administrator command" in text, text
    assert text.count("--resume") == 1, text
    assert "Traceback" not in err and "internal error" not in err
    assert not children_naming(workdir)
    journal = journal_of(workdir)
    assert journal is not None and not journal.done("db:cut:restore-data")
    resumed = pgshift("migrate", "--resume", str(workdir), "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert_same(expected, snapshot(target, "cut"))
