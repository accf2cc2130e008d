"""Each fault in each phase of migrate: pgshift's source backend or its target backend ended by
``pg_terminate_backend``, the target restarted, or pgshift itself sent SIGINT, SIGTERM or SIGKILL,
while the run is in globals, dump, restore data, post-data, analyze or verify; and the source stopped
while pg_dump reads a table.

The run is held in the phase by something real (a lock another session holds, a function that
sleeps per row inside a CHECK constraint or an index expression), the backend pgshift uses there is
found in pg_stat_activity, and the fault hits it. Then, for every cell: a prompt exit with a
documented code and a message naming the cause (never exit 3 'untouched' once the target changed),
no child left, a journal whose every step ended, one ``--resume`` hint, and ``--resume`` completing
to a target the tests' own comparison (tests/fixtures/compare.py) finds equal. Where pgshift holds no
session on the source in a phase, the test proves that there is none and the run completes. A signal
goes to the pgshift process itself while the phase is held (as ``kill PID`` does; a terminal's Ctrl-C
reaches the children too, which run in sessions of their own): SIGINT and SIGTERM exit 130/143 with the
journal saved; after SIGKILL no child outlives pgshift and ``--resume`` says which step was cut.

Two servers for the whole module; each cell its own database and work directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from pgshift.lab import LabServer
from pgshift.lab.server import start
from tests.fixtures.compare import assert_same, snapshot
from tests.fixtures.faults import restart, start_again, stop, terminate, wait_for_backend
from tests.fixtures.journal import journal_of, step_state
from tests.integration.test_faults import children_naming, one_line

PHASES = ("globals", "dump", "restore data", "post-data", "analyze", "verify")
SIGNALS = {"pgshift SIGINT": signal.SIGINT, "pgshift SIGTERM": signal.SIGTERM, "pgshift SIGKILL": signal.SIGKILL}
FAULTS = ("source backend terminated", "target backend terminated", "target restarted", *SIGNALS)
SOURCE_STOPPED = "source stopped"
CELLS = [(fault, phase) for fault in FAULTS for phase in PHASES] + [(SOURCE_STOPPED, "dump")]
# The step a phase runs in, as the journal names it: the one a SIGKILL leaves "running".
CUT_STEP = {
    "globals": "globals:roles",
    "dump": "db:{db}:dump",
    "restore data": "db:{db}:restore-data",
    "post-data": "db:{db}:restore-data",
    "analyze": "db:{db}:analyze",
    "verify": "verify",
}
# Phases in which pgshift's only session on the source is the one holding the database's dump
# snapshot for verify (dump mode reads the source only while dumping, then again to verify).
SNAPSHOT_ONLY = ("restore data", "post-data", "analyze")
SNAPSHOT_LOST = "the session holding the snapshot of its dump ended before verify"
PG_DUMPALL = "pg_dumpall --globals-only"
CLIENTS = "('pgshift', 'pg_dump', 'pg_dumpall', 'pg_restore', 'psql')"


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[LabServer, LabServer]]:
    source, target = start(16), start(17)
    try:
        yield source, target
    finally:
        source.stop()
        target.stop()


def pgshift(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, timeout=timeout)


def _source_database(source: LabServer, dbname: str, role: str, phase: str) -> None:
    """Two tables; the functions their CHECK and index call sleep per row only where the phase needs it
    (replaced after the rows are in, so building the source is fast; pg_dump carries the slow body)."""
    source.execute(f"CREATE ROLE {role}")
    source.execute(f"CREATE DATABASE {dbname}")
    source.execute(
        "CREATE FUNCTION ok(int) RETURNS boolean IMMUTABLE LANGUAGE sql AS 'SELECT true';"
        "CREATE FUNCTION keyed(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1';"
        "CREATE TABLE slow (id int PRIMARY KEY CHECK (ok(id)), v text);"
        "INSERT INTO slow SELECT g, md5(g::text) FROM generate_series(1, 100) g;"
        "CREATE TABLE indexed AS SELECT g AS id, g % 7 AS k FROM generate_series(1, 100) g;"
        "CREATE INDEX indexed_keyed ON indexed (keyed(id));"
        f"CREATE TABLE filler AS SELECT g AS id FROM generate_series(1, 3000) g; GRANT SELECT ON filler TO {role};",
        dbname,
    )
    if phase == "restore data":
        source.execute(
            "CREATE OR REPLACE FUNCTION ok(int) RETURNS boolean IMMUTABLE LANGUAGE sql"
            " AS 'SELECT pg_sleep(0.03) IS NOT NULL'",
            dbname,
        )
    if phase in ("post-data", "analyze"):
        source.execute(
            "CREATE OR REPLACE FUNCTION keyed(int) RETURNS int IMMUTABLE LANGUAGE sql"
            " AS 'SELECT $1 + (pg_sleep(0.03) IS NULL)::int'",
            dbname,
        )


@contextlib.contextmanager
def holding(server: LabServer, dbname: str, sql: str) -> Iterator[None]:
    """``sql`` in an open transaction on ``server``: what it locks stays locked until the end (or until
    the server restarts, which ends the session)."""
    with server.connect(dbname, autocommit=False) as holder:
        holder.execute(sql.encode())
        try:
            yield
        finally:
            with contextlib.suppress(psycopg.Error):
                holder.rollback()


def _wait_step(workdir: Path, step: str, state: str, alive: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while step_state(workdir, step) != state:
        assert alive(), f"pgshift ended before {step} was {state}"
        assert time.monotonic() < deadline, f"{step} was not {state} within {timeout} s"
        time.sleep(0.01)


def _pgshift_backends(server: LabServer) -> list[tuple[str, str, str]]:
    with server.connect() as conn:
        rows = conn.execute(
            "SELECT application_name, coalesce(datname, ''), left(query, 60) FROM pg_stat_activity"
            f" WHERE application_name IN {CLIENTS} AND pid <> pg_backend_pid()".encode()
        ).fetchall()
    return [(str(a), str(d), str(q)) for a, d, q in rows]


def _local_ports(pid: int) -> set[int]:
    """The local TCP ports of the sockets process ``pid`` has open (from /proc: no tool needed)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    inodes.add(link[len("socket:[") : -1])
    ports = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _data_dump_backend(source: LabServer, workdir: Path, alive: Callable[[], bool], timeout: float = 60) -> int:
    """The backend of the pg_dump writing the dump into ``workdir`` (not the schema trial's pg_dump
    --schema-only, which waits for the same lock), matched by its client's TCP port."""
    deadline = time.monotonic() + timeout
    while True:
        ports: set[int] = set()
        for proc_dir in Path("/proc").iterdir():
            with contextlib.suppress(OSError):
                if (
                    proc_dir.name.isdigit()
                    and f"--file={workdir}/dumps/".encode() in (proc_dir / "cmdline").read_bytes()
                ):
                    ports |= _local_ports(int(proc_dir.name))
        with source.connect() as conn:
            waiting = conn.execute(
                "SELECT pid, client_port FROM pg_stat_activity"
                " WHERE application_name = 'pg_dump' AND wait_event_type = 'Lock'"
            ).fetchall()
        for pid, port in waiting:
            if port in ports:
                return int(pid)
        assert alive(), "pgshift ended before its pg_dump was seen waiting"
        assert time.monotonic() < deadline, "the dump's pg_dump was not seen waiting for the lock"
        time.sleep(0.05)


def _inject(
    fault: str,
    phase: str,
    source: LabServer,
    target: LabServer,
    dbname: str,
    role: str,
    workdir: Path,
    proc: subprocess.Popen[str],
    hit_at: list[float],
) -> str:
    """Hold the run in ``phase``, hit the backend (or pgshift) with ``fault``; what was hit, in words.
    ``hit_at`` gets the moment of the hit; a signal's cell waits for pgshift's end while still held."""
    on_source = fault.startswith("source")
    server = source if on_source else target

    def alive() -> bool:
        return proc.poll() is None

    def hit(pid: int | None) -> None:
        hit_at.append(time.monotonic())
        if fault == "target restarted":
            restart(target)
        elif fault == SOURCE_STOPPED:
            stop(source)
        elif fault in SIGNALS:
            proc.send_signal(SIGNALS[fault])
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                raise AssertionError(
                    f"pgshift still runs 60 s after {fault} in {phase} (the phase still held)"
                ) from None
        elif pid is not None:
            terminate(server, pid)

    if phase == "globals":
        if on_source:
            # pg_dumpall reads the shared security labels, which nothing else of the run reads.
            _wait_step(workdir, f"db:{dbname}:dump", "done", alive)
            with holding(source, "postgres", "LOCK TABLE pg_catalog.pg_shseclabel IN ACCESS EXCLUSIVE MODE"):
                pid = wait_for_backend(source, "wait_event_type = 'Lock'", alive=alive, application="pg_dumpall")
                hit(pid)
            return PG_DUMPALL
        # Another transaction creating the same role: pgshift's CREATE ROLE waits for it.
        with holding(target, "postgres", f"CREATE ROLE {role}"):
            pid = wait_for_backend(target, "wait_event_type = 'Lock'", alive=alive)
            hit(pid)
        return "pgshift" if fault in SIGNALS else f"CREATE ROLE {role}"
    if phase == "dump":
        # The preflight reads the table too (and gives up after its lock_timeout): the lock is taken
        # once the dump step started, before pg_dump, which connects first, asks for its own.
        _wait_step(workdir, f"db:{dbname}:dump", "running", alive)
        with holding(source, dbname, "LOCK TABLE slow IN ACCESS EXCLUSIVE MODE"):
            if on_source or fault in SIGNALS:
                hit(_data_dump_backend(source, workdir, alive))
                return "pgshift" if fault in SIGNALS else "pg_dump"
            wait_for_backend(source, "wait_event_type = 'Lock'", alive=alive, application="pg_dump")
            # The schema trial, which runs on the target beside the dumps, is over (or waits for its
            # own pg_dump of the schema): pgshift holds no session on the target now.
            assert _pgshift_backends(target) == [], "pgshift has a target session while pg_dump waits"
            if fault == "target restarted":
                hit(None)
                return "nothing (pgshift holds no target session; the target is back before the restore)"
        return "nothing (pgshift holds no target session)"
    if phase == "verify":
        _wait_step(workdir, f"db:{dbname}:analyze", "done", alive)
        # verify's count of slow plans with its primary key, which REINDEX holds; nothing before verify does.
        # SIGTERM's cell holds verify earlier, in its catalog session (not its counting pool): its read of
        # the large objects, which nothing else of the run reads on the target.
        hold = "REINDEX INDEX slow_pkey"
        if fault == "pgshift SIGTERM":
            hold = "LOCK TABLE pg_catalog.pg_largeobject_metadata IN ACCESS EXCLUSIVE MODE"
        with holding(server, dbname, hold):
            pid = wait_for_backend(server, f"datname = '{dbname}' AND wait_event_type = 'Lock'", alive=alive)
            hit(pid)
        return "pgshift" if fault in SIGNALS else "verify's count"
    where, application = {
        "restore data": ("query ILIKE 'COPY%slow%'", "pg_restore"),
        "post-data": ("query ILIKE 'CREATE INDEX indexed_keyed%'", "pg_restore"),
        "analyze": ("query ILIKE 'ANALYZE%'", "pgshift"),
    }[phase]
    pid = wait_for_backend(target, f"datname = '{dbname}' AND {where}", alive=alive, application=application)
    if on_source:
        # Its one session there is the dump's snapshot, held idle for verify to read the source in.
        assert [(a, d) for a, d, _q in _pgshift_backends(source)] == [("pgshift", dbname)], _pgshift_backends(source)
        hit(wait_for_backend(source, f"datname = '{dbname}' AND state = 'idle in transaction'", alive=alive))
        return "the snapshot held for verify"
    hit(pid)
    return "pgshift" if fault in SIGNALS else application


@pytest.mark.parametrize(("fault", "phase"), CELLS, ids=[f"{f}-{p}".replace(" ", "_") for f, p in CELLS])
def test_a_fault_in_each_phase_exits_promptly_naming_it_and_resume_completes_equal(
    pair: tuple[LabServer, LabServer], tmp_path: Path, fault: str, phase: str
) -> None:
    source, target = pair
    tag = uuid.uuid4().hex[:6]
    dbname, role = f"fm_{tag}", f"fm_role_{tag}"
    workdir = tmp_path / "run"
    try:
        _source_database(source, dbname, role, phase)
        expected = snapshot(source, dbname)
        argv = [sys.executable, "-m", "pgshift", "migrate", source.conninfo(), target.conninfo(), "-d", dbname]
        # No preexec_fn, no new session: pgshift gets the signals the test sends it as a user's kill
        # does (tests/conftest.py makes sure SIGINT is not inherited ignored).
        proc = subprocess.Popen(
            [*argv, "--workdir", str(workdir), "--jobs", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        hit_at: list[float] = []
        try:
            hit = _inject(fault, phase, source, target, dbname, role, workdir, proc, hit_at)
            hit_at.append(time.monotonic())  # (nothing hit: from now)
            _out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
            if source.process is not None and source.process.poll() is not None:
                start_again(source)  # the source stopped: back before --resume (and before the next cell)
        took = time.monotonic() - hit_at[0]
        text = one_line(err)
        print(f"outcome of {fault} in {phase} ({hit}): exit {proc.returncode} after {took:.1f} s: {text}")
        assert "Traceback" not in err and "internal error" not in err, err
        journal = journal_of(workdir)
        assert journal is not None, "the journal is not readable"
        if fault not in SIGNALS:  # (a SIGKILL leaves its step running, and its children a moment to die)
            assert not children_naming(workdir)
            assert not [s for s, r in journal.steps.items() if r.state == "running"], "a step left running"
        if fault in SIGNALS:
            _assert_signal_outcome(fault, phase, proc.returncode, took, text, workdir, dbname)
        elif hit.startswith("nothing"):
            assert proc.returncode == 0, err
            assert journal.status == "done"
        elif hit == "the snapshot held for verify":
            # verify cannot read the source as of the dump any more: it says so and compares with the
            # source as it is now (which nothing wrote to: equal).
            assert proc.returncode == 0, err
            assert SNAPSHOT_LOST in text, text
            assert journal.status == "done"
        elif hit == PG_DUMPALL:
            # Its file is a record for the DBA: the roles are applied from the catalog, so the run
            # goes on, and says why the record is incomplete.
            assert proc.returncode == 0, err
            assert "warning: pg_dumpall --globals-only failed, so the record globals.sql is incomplete" in text, text
            assert "terminating connection due to administrator command" in text, text
            assert journal.status == "done"
        else:
            assert took < 60, f"{took:.0f} s to exit after the fault"
            assert proc.returncode == 5, f"exit {proc.returncode} after {fault} in {phase} ({hit}):\n{err}"
            if fault == SOURCE_STOPPED:
                print(f"  the target has the role {role} (the globals were applied): {_has_role(target, role)}")
            if fault != SOURCE_STOPPED or _has_role(target, role):
                # Once the roles are applied the target has changed: never 'untouched' (exit 3's claim).
                assert "untouched" not in text, text
            cause = (
                "terminating connection due to administrator command",
                "server closed the connection unexpectedly",
                "the connection to the",
            )
            assert any(c in text for c in cause), text
            assert text.count("--resume") == 1 and "run verify again" not in text, text
            # The hint sends the user to the server that ended the session, not to its settings.
            assert f"hint: the {'source' if fault.startswith('source') else 'target'} server ended the session" in text
            assert journal.status == "failed"
            resumed = pgshift("migrate", "--resume", str(workdir), "--json", "--yes")
            assert resumed.returncode == 0, resumed.stderr
        assert_same(expected, snapshot(target, dbname))
    finally:
        for server in (source, target):
            with contextlib.suppress(psycopg.Error):
                server.execute(f"DROP DATABASE IF EXISTS {dbname}")
                server.execute(f"DROP ROLE IF EXISTS {role}")


def _has_role(server: LabServer, role: str) -> bool:
    with server.connect() as conn:
        return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def _assert_signal_outcome(
    fault: str, phase: str, code: int | None, took: float, text: str, workdir: Path, dbname: str
) -> None:
    """SIGINT/SIGTERM: 130/143 at once, the journal saved and resumable; SIGKILL: no child outlives
    pgshift, and ``--resume`` says which step the killed attempt left running. Then ``--resume``."""
    signum = SIGNALS[fault]
    journal = journal_of(workdir)
    assert journal is not None
    if signum == signal.SIGKILL:
        assert code == -signal.SIGKILL, text
        # The children die with pgshift (PR_SET_PDEATHSIG), within a few seconds.
        killed = time.monotonic()
        while children_naming(workdir) and time.monotonic() < killed + 10:
            time.sleep(0.05)
        assert not children_naming(workdir), children_naming(workdir)
        print(f"  no child left {time.monotonic() - killed:.2f} s after the kill")
        cut = CUT_STEP[phase].format(db=dbname)
        assert journal.step(cut).state == "running", {s: r.state for s, r in journal.steps.items()}
        resumed = pgshift("migrate", "--resume", str(workdir), "--json", "--yes")
        said = one_line(resumed.stderr)
        print(f"  --resume: exit {resumed.returncode}: {said}")
        assert resumed.returncode == 0, resumed.stderr
        assert "the previous attempt was killed" in said and f"while {cut} was running" in said, said
        return
    # Below the sessions' lock_timeout (10 s): the exit waits for no timeout to end a statement.
    assert took < 8, f"{took:.1f} s to exit after {fault}"
    assert code == 128 + signum, f"exit {code} after {fault} in {phase}: {text}"
    how = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
    assert f"interrupted ({how}); the journal is saved in {workdir}" in text, text
    assert f"continue with: pgshift migrate --resume {workdir}" in text and text.count("--resume") == 1, text
    assert not children_naming(workdir), children_naming(workdir)
    assert journal.status == "interrupted"
    assert not [s for s, r in journal.steps.items() if r.state == "running"], "a step left running"
    resumed = pgshift("migrate", "--resume", str(workdir), "--json", "--yes")
    print(f"  --resume: exit {resumed.returncode}: {one_line(resumed.stderr)[-300:]}")
    assert resumed.returncode == 0, resumed.stderr
