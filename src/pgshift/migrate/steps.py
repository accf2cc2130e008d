"""Running the plan's steps: one executor per kind of step, and the one step wrapper around them.

An executor runs what its step carries — the statements, the program with its arguments — and
journals what it produced; it decides nothing the plan did not say (see ``planner``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from pgshift.archive import trigger_ids
from pgshift.catalog import ddl
from pgshift.catalog.ddl import Statement
from pgshift.catalog.session import Connection, connect, query_failed
from pgshift.errors import Interrupted, PgshiftError, StepFailed
from pgshift.events import EventSink, Level, Message, StepFinished, StepProgress, StepStarted
from pgshift.migrate import remedies
from pgshift.migrate.journal import Journal, StepState
from pgshift.migrate.plan import Action, ProgramCall, Step
from pgshift.migrate.planner import (
    SNAPSHOT_ARG,
    data_use_list,
    remaining_items,
    remedied_script,
    remedy_use_list,
    toc_listing,
    tolerate_transaction_timeout,
    triggers_use_list,
    write_use_list,
)
from pgshift.migrate.preflight import Facts
from pgshift.migrate.workdir import RunLog, dir_size
from pgshift.process import Completed, how_it_ended
from pgshift.toolchain.clients import run_client

if TYPE_CHECKING:
    from pgshift.migrate import streaming

# --- restore errors ------------------------------------------------------------------------------

_ERROR = re.compile(r"^pg_restore: error: (?:could not execute query: )?(?P<msg>.*)$")
_TIMEOUT = 'unrecognized configuration parameter "transaction_timeout"'


_TOC_ENTRY = re.compile(r"^pg_restore: from TOC entry \d+; \d+ \d+ (?P<entry>.+)$")


def toc_object(entry: str) -> str:
    """'TABLE u gone' (kind, name, owner) -> 'TABLE u (owner gone)'."""
    parts = entry.rsplit(" ", 1)
    if len(parts) == 2 and parts[1] != "-":
        return f"{parts[0]} (owner {parts[1]})"
    return parts[0]


class RestoreWatcher:
    """Follows pg_restore's stderr: progress items and error blocks with the object they concern."""

    def __init__(self, on_item: Callable[[], None], log: Callable[[str], None]) -> None:
        self.errors: list[tuple[str, str]] = []  # (message, statement)
        self.objects: list[str] = []  # the TOC entry each error concerned ("" when unknown)
        self._pending: str | None = None
        self._toc = ""
        self._on_item = on_item
        self._log = log

    def __call__(self, line: str) -> None:
        self._log(line)
        if line.startswith(("pg_restore: processing item", "pg_restore: finished item")):
            self._on_item()
            return
        toc = _TOC_ENTRY.match(line)
        if toc:
            self._toc = toc_object(toc["entry"])
            return
        m = _ERROR.match(line)
        if m:
            self._flush()
            self._pending = m["msg"].replace("ERROR:  ", "")
            return
        if self._pending is not None and line.startswith("Command was:"):
            self._add(line.removeprefix("Command was:").strip())

    def _add(self, command: str) -> None:
        assert self._pending is not None
        self.errors.append((self._pending, command))
        self.objects.append(self._toc)
        self._pending = None
        self._toc = ""

    def _flush(self) -> None:
        if self._pending is not None:
            self._add("")

    def done(self) -> list[tuple[str, str]]:
        self._flush()
        return self.errors

    def object_of(self, error: tuple[str, str]) -> str:
        for (msg, cmd), obj in zip(self.errors, self.objects, strict=True):
            if (msg, cmd) == error:
                return obj
        return ""


# Errors any command running pg_restore, psql or pg_dump meets, each with its cause and fix; the
# first whose words are all in the (lowercased) message says it. Checked before the older rules.
_CLIENT_ERRORS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("connection refused",),
        "the server refused the connection: check that it runs and listens on that host and port "
        "(listen_addresses, the firewall)",
    ),
    (
        ("password authentication failed",),
        "the password was refused: give the right one (PGPASSWORD, ~/.pgpass or a service file), never on the "
        "command line",
    ),
    (("no pg_hba.conf entry",), "the server's pg_hba.conf has no line for this host, user and database: add one"),
    (
        ("unsupported version", "file header"),
        "the archive was written by a newer pg_dump than this pg_restore: use a pg_restore of that major or newer "
        "(pgshift toolchain install N, or --pg-bin)",
    ),
    (
        ("could not open input file",),
        "the archive is missing or unreadable: check the path, or restore another set (pgshift backup list DIR)",
    ),
    (
        ("input file does not appear to be a valid archive",),
        "the file is not a pg_dump archive (a plain SQL dump goes to psql), or it is damaged",
    ),
    (
        ("server version mismatch",),
        "pg_dump is older than the server: use a pg_dump of the server's major or newer (pgshift toolchain install N)",
    ),
    (
        ("no space left on device",),
        "the disk is full: free space (or choose a larger file system), then run the command again",
    ),
    (
        ("could not write to output file",),
        "the output could not be written (a full disk, a quota, a read-only file system): free space, then again",
    ),
)


def _client_error_advice(low: str) -> str | None:
    return next((advice for words, advice in _CLIENT_ERRORS if all(w in low for w in words)), None)


# What a server says when it ends a session (pg_terminate_backend, a fast or immediate shutdown, a
# crash of another backend): the fix is the server, not the statement or the connection settings.
_SESSION_ENDED = (
    "terminating connection due to administrator command",
    "server closed the connection unexpectedly",
    "the database system is shutting down",
    "terminating connection because of crash of another server process",
)


def _session_ended_advice(low: str, side: str) -> str | None:
    if not any(words in low for words in _SESSION_ENDED):
        return None
    return (
        f"the {side} server ended the session (restarted, shut down, or the session was terminated by "
        "pg_terminate_backend): check that it is up"
    )


def restore_advice(message: str) -> str:
    low = message.lower()
    known = _session_ended_advice(low, "target") or _client_error_advice(low)
    if known is not None:
        return known
    if "role" in low and "does not exist" in low:
        return (
            "the role is missing on the target: migrate the globals first (drop --no-globals), "
            "or restore without ownership and grants (--no-owner --no-privileges)"
        )
    if ("extension" in low and ("not available" in low or "control file" in low)) or "could not open extension" in low:
        return "the extension is not installed on the target server: install its package there"
    if "tablespace" in low and "does not exist" in low:
        return "create the tablespace on the target, map it with --tablespace-map OLD=NEW, or use --no-tablespaces"
    if "permission denied" in low or "must be owner" in low or "must be superuser" in low:
        return (
            "the target role lacks a privilege: connect to the target as a superuser, or use --no-owner --no-privileges"
        )
    if "out of shared memory" in low:
        return "raise max_locks_per_transaction on the target (restart needed), or lower --jobs"
    if "unrecognized configuration parameter" in low:
        return "the client is newer than the target: install the target's major (pgshift toolchain install N)"
    if "already exists" in low:
        return (
            "the target database was not empty: drop it, replace it (migrate --if-exists drop), or restore under "
            "another name (restore --rename) or over it (restore --clean --if-exists)"
        )
    if "does not exist" in low and ("function" in low or "type" in low or "operator" in low):
        return "an object uses something the target's PostgreSQL lacks: run pgshift check and fix it on the source"
    return "see the log in the work directory and fix the cause"


def explain_restore(
    dbname: str, errors: list[tuple[str, str]], fallback: str, obj: str = "", returncode: int | None = None
) -> StepFailed:
    if returncode is not None and returncode < 0:
        # Killed (the OOM killer, kill -9): its last line is progress, not the cause.
        return StepFailed(
            f"pg_restore {how_it_ended(returncode)} while restoring database {dbname!r}",
            detail=fallback,
            hint="find out what killed it (the OOM killer: dmesg; an operator); the database is redone on resume",
            program="pg_restore",
            returncode=returncode,
        )
    if not errors:
        return StepFailed(
            f"pg_restore failed for database {dbname!r}",
            detail=fallback,
            hint="see the log in the work directory and fix the cause",
            program="pg_restore",
        )
    message, command = errors[0]
    detail = "\n".join(f"{m}\n  while running: {c}" if c else m for m, c in errors[1:6]) or None
    return StepFailed(
        f"restoring database {dbname!r} failed"
        + (f" on {obj}" if obj else "")
        + f": {message}"
        + (f" (while running: {command[:200]})" if command else ""),
        detail=detail,
        hint=restore_advice(message),
        program="pg_restore",
    )


def explain_dump(dbname: str, exc: StepFailed) -> StepFailed:
    lines = (exc.detail or "").splitlines()
    errors = [line.removeprefix("pg_dump: error: ") for line in lines if line.startswith("pg_dump: error:")]
    if exc.returncode is not None and exc.returncode < 0:
        # Killed by a signal: its last line is progress ("dumping contents of table …"), not the cause.
        return StepFailed(
            f"dumping database {dbname!r} on the source failed: pg_dump {how_it_ended(exc.returncode)}",
            detail=exc.detail,
            hint="find out what killed it (the OOM killer: dmesg; an operator); the dump is taken again on resume",
            program="pg_dump",
            returncode=exc.returncode,
        )
    reason = errors[-1] if errors else (lines[-1] if lines else exc.message)
    return StepFailed(
        f"dumping database {dbname!r} on the source failed: {reason}",
        detail=exc.detail,
        hint=dump_advice(reason),
        program="pg_dump",
        returncode=exc.returncode,
    )


def dump_advice(message: str) -> str:
    low = message.lower()
    known = _session_ended_advice(low, "source") or _client_error_advice(low)
    if known is not None:
        return known
    if "role" in low and "does not exist" in low:
        return "the connecting role does not exist on the source: connect as a role that does"
    if "permission denied" in low:
        return "connect to the source as a superuser, or grant the role pg_read_all_data (14+)"
    if "out of shared memory" in low or "max_locks_per_transaction" in low:
        return "raise max_locks_per_transaction on the source (restart needed), or move fewer tables at once"
    if "lock" in low and ("timeout" in low or "could not obtain" in low):
        return "a session holds a conflicting lock on the source: end it, or wait for it"
    if "connection" in low or "could not connect" in low:
        return "check that the source accepts this many connections and is reachable"
    return "see the log in the work directory and fix the cause"


def explain_statement(about: str, statement: Statement, exc: psycopg.Error) -> StepFailed:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StepFailed(
        f"applying {about} on the target failed: {text}",
        detail=statement.display(),
        hint=restore_advice(text),
    )


# --- running -------------------------------------------------------------------------------------


class Run:
    """One execution: facts, journal, log, events, cancellation."""

    def __init__(self, facts: Facts, workdir: Path, journal: Journal, log: RunLog, sink: EventSink) -> None:
        self.facts = facts
        self.workdir = workdir
        self.journal = journal
        self.log = log
        self.sink = sink
        self.cancel = threading.Event()
        self.done_ahead: set[str] = set()  # steps the runner ran before their turn (dumps beside the trial)
        self._connections: set[Connection] = set()
        self._lock = threading.Lock()
        self._applied = 0
        self.warnings: list[str] = []
        # Roles this run created, in any attempt (the intent written before CREATE ROLE, and the
        # role's presence on the target, say so after a crash).
        self.created_roles: set[str] = journal.roles_of_run(facts.target_roles)
        self.existing_roles: list[str] = []
        # Per source database, the snapshot its dump ran in (stream mode: and its copy), exported by a
        # leader connection held from the dump step to the end of the copy, or of verify when
        # ``facts.verify_in_snapshots``.
        self._snapshots: dict[str, streaming.Snapshot] = {}
        self.lost_snapshots: set[str] = set()  # held for verify, but their sessions ended
        self._discards: list[threading.Thread] = []

    def snapshot(self, database: str, *, open_new: bool = True) -> streaming.Snapshot | None:
        """The database's exported snapshot: opened now when ``open_new`` and none is held."""
        with self._lock:
            held = self._snapshots.get(database)
        if held is not None or not open_new:
            return held
        self.check_cancel()
        from pgshift.migrate import streaming  # the copy engine's module; dump mode needs only its Snapshot

        snap = streaming.Snapshot.open(self.facts.source, database)
        with self._lock:
            self._snapshots[database] = snap
        self.log.write("info", f"{database}: snapshot {snap.id} exported at {snap.taken_at}")
        return snap

    def release_snapshot(self, database: str) -> None:
        with self._lock:
            snap = self._snapshots.pop(database, None)
        if snap is not None:
            snap.close()

    def discard_dump(self, dump_dir: Path) -> None:
        """Remove a dump no step of the run reads any more, beside the steps still to run: unlinking
        thousands of files takes seconds on a file system that discards freed blocks."""
        thread = threading.Thread(target=remove_dump, args=(dump_dir,), name=f"discard-{dump_dir.name}", daemon=True)
        thread.start()
        self._discards.append(thread)

    def wait_discards(self) -> None:
        for thread in self._discards:
            thread.join()

    def held_snapshots(self) -> dict[str, streaming.Snapshot]:
        with self._lock:
            return dict(self._snapshots)

    def release_snapshots(self) -> None:
        for database in self.held_snapshots():
            self.release_snapshot(database)

    @contextlib.contextmanager
    def step(self, step: Step, *, total: float | None = None) -> Iterator[dict[str, Any]]:
        """The one step wrapper: start/finish events, timing, the journal's record, failures as errors.

        Yields the step's artifacts (filled by the executor, journaled with its end). A failure is
        recorded with the step and re-raised as a ``StepFailed`` naming the step (a query error
        becomes one too); an interruption is recorded as such.
        """
        self.check_cancel()
        self.sink(StepStarted(step.title, step=step.id, total=total))
        self.journal.step_started(step.id, **step.intent)
        started = time.monotonic()
        artifacts: dict[str, Any] = {}

        def end(state: StepState, ok: bool, error: str | None = None) -> None:
            took = time.monotonic() - started
            self.journal.step_ended(step.id, state, took, error=error, **artifacts)
            self.sink(StepFinished(step.title, step=step.id, ok=ok, seconds=took))

        try:
            yield artifacts
        except Interrupted:
            end("interrupted", False)
            raise
        except PgshiftError as exc:
            if self.cancel.is_set():
                end("interrupted", False)
                raise Interrupted("interrupted") from None
            end("failed", False, exc.message)
            raise
        except psycopg.Error as exc:
            if self.cancel.is_set():
                end("interrupted", False)
                raise Interrupted("interrupted") from None
            failure = query_failed(f"{step.title} (step {step.id})", exc)
            end("failed", False, failure.message)
            raise failure from None
        if os.environ.get("PGSHIFT_INJECT_CRASH_IN_STEP") in (step.kind, step.id):
            # Fault injection for the crash tests: the step's work is done, its end not yet journaled.
            os.kill(os.getpid(), signal.SIGKILL)
        end("done", True)

    def warn(self, text: str) -> None:
        self.warnings.append(text)
        self.sink(Message(text, level=Level.WARNING))

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Interrupted("interrupted")

    @contextlib.contextmanager
    def target_session(self, dbname: str) -> Iterator[Connection]:
        self.check_cancel()
        conn = connect(self.facts.target, dbname)
        with self._lock:
            self._connections.add(conn)
        try:
            # Again: a cancel that came during the connect did not see this session to cancel it.
            self.check_cancel()
            yield conn
        finally:
            with self._lock:
                self._connections.discard(conn)
            conn.close()

    def cancel_queries(self) -> None:
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.cancel_safe(timeout=5)

    def apply(self, conn: Connection, action: Action) -> bool:
        """Run one statement on the target, logged; False when an error it tolerates happened."""
        self.check_cancel()
        self.log.write("sql", action.statement.display())
        tolerated = tuple(psycopg.errors.lookup(name) for name in action.tolerates)
        try:
            ddl.execute(conn, action.statement)
        except psycopg.Error as exc:
            if self.cancel.is_set():
                raise Interrupted("interrupted") from None
            if not isinstance(exc, tolerated):
                raise explain_statement(action.about, action.statement, exc) from None
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if action.setting:
                self.warn(f"{action.about}: setting not applied on the target ({first}): {action.statement.display()}")
            else:
                self.log.write("info", f"tolerated: {first}")
            return False
        self._statement_committed(action.statement)
        return True

    def _statement_committed(self, statement: Statement) -> None:
        """Fault injection for the crash tests: SIGKILL pgshift right after a statement committed.

        ``PGSHIFT_INJECT_CRASH_AFTER_SQL=N`` (the Nth statement) or ``=TEXT`` (the first statement
        that starts with TEXT) reproduces, at an exact instant, what the OOM killer or ``kill -9``
        does at a random one: the target changed, the journal not yet told.
        """
        crash_after = os.environ.get("PGSHIFT_INJECT_CRASH_AFTER_SQL")
        if not crash_after:
            return
        with self._lock:
            self._applied += 1
            applied = self._applied
        hit = applied == int(crash_after) if crash_after.isdigit() else statement.display().startswith(crash_after)
        if hit:
            os.kill(os.getpid(), signal.SIGKILL)

    def program(
        self, call: ProgramCall, *, on_line: Callable[[str], None] | None = None, check: bool = True
    ) -> Completed:
        self.check_cancel()
        self.log.write("command", call.display)
        endpoint = self.facts.source if call.server == "source" else self.facts.target

        def _line(line: str) -> None:
            if on_line is not None:
                on_line(line)
            else:
                self.log.write(call.program, line)

        try:
            return run_client(
                self.facts.client,
                call.program,
                list(call.args),
                env=endpoint.child_env(),
                secrets=endpoint.secrets,
                mounts=[str(self.workdir)],
                on_stderr=_line,
                check=check,
            )
        except StepFailed:
            if self.cancel.is_set():
                raise Interrupted(f"interrupted while {call.program} was running") from None
            raise


# The steps that read a database's dump: once the last of them is done, the dump is not needed again
# (the later steps run SQL; a resume of a restored database runs only those; a verification that
# failed is completed by copying again from the source).
DUMP_READERS = frozenset({"script-schema", "restore-schema", "restore-data", "restore-triggers", "stream-data"})


def remove_dump(dump_dir: Path) -> None:
    """A dump directory and what steps wrote beside it (use-lists, schema scripts)."""
    shutil.rmtree(dump_dir, ignore_errors=True)
    for extra in dump_dir.parent.glob(f"{dump_dir.name}.*"):
        with contextlib.suppress(FileNotFoundError):
            extra.unlink()


def make_private_tree(path: Path) -> None:
    """Directories 0700, files 0600 (children write with the umask)."""
    for root, dirs, files in os.walk(path):
        os.chmod(root, 0o700)
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o700)
        for f in files:
            os.chmod(os.path.join(root, f), 0o600)


# --- executors -----------------------------------------------------------------------------------


def _say(run: Run, step: Step) -> None:
    for warning in step.warnings:
        run.warn(warning)
    if step.note and step.kind not in ("verify", "restore-data"):
        run.sink(Message(step.note, level=Level.INFO))


def run_sql_step(run: Run, step: Step) -> None:
    """Every statement of the step, in order, in the target database it names."""
    _say(run, step)
    assert step.connect_to is not None
    with run.step(step), run.target_session(step.connect_to) as conn:
        for action in step.sql:
            if action.requires_role and action.requires_role not in run.created_roles:
                run.log.write("info", f"skipped ({action.requires_role} is not this run's role): {action.about}")
                continue
            run.apply(conn, action)


def run_analyze(run: Run, step: Step) -> None:
    """ANALYZE of the restored database, table by table in ``jobs`` sessions (one ANALYZE is one
    table at a time: on thousands of tables, or a few large ones, the sessions share the work)."""
    jobs = run.facts.jobs_per_database
    assert step.connect_to is not None and step.database is not None
    # Stream mode analyzed each table it copied as soon as it was in: the rest is left.
    done = {tuple(t) for t in run.journal.step(f"db:{step.database}:stream-data").artifacts.get("analyzed") or ()}
    if jobs <= 1 and not done:
        run_sql_step(run, step)
        return
    _say(run, step)
    dbname = step.connect_to
    with run.step(step) as artifacts:
        with run.target_session(dbname) as conn:
            every = ddl.analyze_each(conn)
        queue = [Action(f"database {dbname}", st) for (schema, name), st in every if (schema, name) not in done]
        if done:
            artifacts["analyzed_by_the_copy"] = len(every) - len(queue)
        lock = threading.Lock()

        def worker() -> None:
            with run.target_session(dbname) as session:
                while True:
                    with lock:
                        if not queue:
                            return
                        action = queue.pop(0)
                    run.apply(session, action)

        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="analyze") as pool:
            for future in [pool.submit(worker) for _ in range(jobs)]:
                future.result()


def run_record_globals(run: Run, step: Step) -> None:
    assert step.program is not None
    with run.step(step) as artifacts:
        record = run.workdir / "globals.sql"
        os.close(os.open(record, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        done = run.program(step.program, check=False)
        if done.returncode < 0:
            # Killed (the OOM killer, an operator): the machine is in trouble, not the record.
            raise StepFailed(
                f"pg_dumpall {how_it_ended(done.returncode)}",
                detail="\n".join(done.stderr_tail) or None,
                program="pg_dumpall",
                returncode=done.returncode,
                hint="find out what killed it (the OOM killer: see dmesg or journalctl -k; an operator)",
            )
        if not done.ok:
            # The error line names the cause (a lost connection, a refused query); the last line is
            # often only the query it was running.
            tail = done.stderr_tail
            reason = next((line for line in tail if ": error: " in line), tail[-1] if tail else "no message")
            run.warn(
                f"pg_dumpall --globals-only failed, so the record globals.sql is incomplete ({reason}); "
                "roles are applied from the catalog"
            )
        with contextlib.suppress(OSError):
            os.chmod(record, 0o600)
        artifacts["record"] = record.name


def run_create_roles(run: Run, step: Step) -> None:
    """CREATE ROLE with its intent journaled first; a role found there already is someone else's."""
    journal = run.journal
    assert step.connect_to is not None
    with run.step(step) as artifacts, run.target_session(step.connect_to) as conn:
        for action in step.sql:
            name = action.role_created
            if name is None:
                if action.requires_role and action.requires_role not in run.created_roles:
                    continue  # the comment or setting of a role that is not this run's
                run.apply(conn, action)
                continue
            journal.role_intended(name)
            if run.apply(conn, action):
                run.created_roles.add(name)
                journal.role_created(name)
            else:
                journal.role_not_ours(name)
                run.existing_roles.append(name)
                run.warn(f"role {name!r} appeared on the target meanwhile; left alone")
        artifacts["created"] = len(run.created_roles)


def run_create_tablespaces(run: Run, step: Step) -> None:
    try:
        run_sql_step(run, step)
    except StepFailed as exc:
        exc.hint = (
            "create the directory on the target host (owned by the server's user), map it with "
            "--tablespace-map NAME=/new/path, or use --no-tablespaces"
        )
        raise


def run_dump(run: Run, step: Step) -> None:
    facts, journal = run.facts, run.journal
    assert step.program is not None and step.database is not None
    src = step.database
    dump_dir = run.workdir / "dumps" / Path(_arg(step.program, "--file=")).name
    dbp = next(d for d in facts.databases if d.source == src)
    if step.note:
        run.sink(Message(f"{src}: {step.note}", level=Level.INFO))
    tables = float(max(dbp.tables, 1))
    record = journal.database(src)
    with run.step(step, total=tables) as artifacts:
        earlier = record.step("dump").artifacts.get("dump_dir") if record is not None else None
        if earlier and earlier != dump_dir.name:
            shutil.rmtree(dump_dir.parent / earlier, ignore_errors=True)  # the plan chose a new directory
        # Taken before pg_dump starts: a change in between makes a later resume dump again (the safe side).
        with contextlib.closing(connect(facts.source, src)) as sconn:
            evidence = ddl.dump_evidence(sconn)
        journal.step_artifacts(step.id, evidence=evidence, dump_dir=dump_dir.name)
        shutil.rmtree(dump_dir, ignore_errors=True)
        dump_dir.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(dump_dir.parent, 0o700)
        count = [0]

        def dump_line(line: str) -> None:
            run.log.write("pg_dump", line)
            if line.startswith("pg_dump: dumping contents of table"):
                # A table counts as done once the next one starts: counting starts would show a
                # one-table database as finished (and its clock stopped) for the whole dump.
                count[0] += 1
                run.sink(StepProgress("dump", step=step.id, completed=float(count[0] - 1), total=tables))

        call = step.program
        if SNAPSHOT_ARG in call.args:
            # Stream mode: the schema as of the snapshot the copy shares (held until the copy ends).
            snap = run.snapshot(src)
            assert snap is not None
            call = replace(call, args=tuple(f"--snapshot={snap.id}" if a == SNAPSHOT_ARG else a for a in call.args))
            journal.step_artifacts(step.id, snapshot_at=snap.taken_at)
        try:
            run.program(call, on_line=dump_line)
        except StepFailed as exc:
            raise explain_dump(src, exc) from None
        make_private_tree(dump_dir)
        artifacts["dump_bytes"] = dir_size(dump_dir)


def run_reuse_dump(run: Run, step: Step) -> None:
    with run.step(step):
        run.sink(Message(f"{step.database}: {step.note}", level=Level.INFO))


_FINISHED_ITEM = re.compile(r"^pg_restore: finished item (?P<id>\d+) ")


def _write_remedy_list(run: Run, step: Step, dump_dir: Path, use_list: Path) -> int:
    """The use-list of a restore that remedies leave items out of: what the dump holds, minus those
    (and, for the data step, minus the triggers, which restore-triggers makes after it)."""
    listing = toc_listing(run.facts, dump_dir)
    parsed = remedies.parse_listing(listing)
    skip = remedies.omitted_ids(parsed, step.items)
    if skip:
        run.log.write("info", f"{len(skip)} item(s) of the dump left out by remedies: {sorted(skip)}")
    if step.kind == "restore-data":
        skip |= trigger_ids(parsed)
    _write_list(use_list, remedies.use_list(listing, skip))
    return len(listing) - len(skip)


def _write_list(use_list: Path, lines: list[str]) -> None:
    fd = os.open(use_list, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def _write_triggers_list(run: Run, step: Step, dump_dir: Path, use_list: Path) -> int:
    """The use-list of restore-triggers: the triggers the data step left out (and their comments),
    minus those the target has already — an attempt killed after pg_restore made them."""
    assert step.connect_to is not None
    listing = toc_listing(run.facts, dump_dir)
    parsed = remedies.parse_listing(listing)
    wanted = trigger_ids(parsed) - remedies.omitted_ids(parsed, step.items)
    # Found by name on the target alone (a restore of a backup set has no source to ask).
    with run.target_session(step.connect_to) as conn:
        made = ddl.trigger_labels(conn)
    present = {
        i.dump_id
        for i in parsed
        if i.dump_id in wanted and i.desc == "TRIGGER" and any(i.rest.startswith(f"{label} ") for label in made)
    }
    if present:
        run.log.write("info", f"{len(present)} trigger(s) of the dump are on the target already: {sorted(present)}")
    todo = wanted - present
    _write_list(use_list, remedies.use_list(listing, {i.dump_id for i in parsed} - todo))
    return len(todo)


def run_script_schema(run: Run, step: Step) -> None:
    """The pre-data as an SQL script (pg_restore --file), rewritten where remedies say so."""
    assert step.program is not None and step.database is not None
    dump_dir = Path(step.program.args[-1])
    script = Path(_arg(step.program, "--file="))
    use_list = _arg(step.program, "--use-list=")
    _say(run, step)
    with run.step(step) as artifacts:
        if use_list:
            _write_remedy_list(run, step, dump_dir, Path(use_list))
        os.close(os.open(script, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        run.program(step.program)
        data = script.read_bytes()
        if tolerate_transaction_timeout(run.facts):
            # pg_restore 17+ sets transaction_timeout, which targets before 17 do not know.
            data = data.replace(b"\nSET transaction_timeout = 0;\n", b"\n")
        try:
            # pg_restore writes the script in the source database's encoding: names are matched as its bytes.
            encoding = run.facts.source_dbs[step.database].encoding
            data, changes = remedies.rewrite_script_bytes(data, step.items, encoding)
        except remedies.RewriteFailed as exc:
            raise StepFailed(
                f"a remedy could not be applied to the schema of database {step.database!r}: {exc}",
                hint="the dump does not look as the remedy expects; leave the object out with --exclude-object, "
                "or fix it on the source",
            ) from None
        out = remedied_script(dump_dir)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        for change in changes:
            run.log.write("info", f"remedy: {change}")
        artifacts["changes"] = changes


_PSQL_ERROR = re.compile(r"^psql:(?P<file>.*?):(?P<line>\d+): (?:ERROR|FATAL):  (?P<msg>.*)$")


def _run_script(run: Run, step: Step) -> None:
    """psql of the rewritten schema script, stopping at the first error."""
    assert step.program is not None and step.database is not None
    dbname = next(d.target for d in run.facts.databases if d.source == step.database)
    with run.step(step):
        errors: list[str] = []

        def line(text: str) -> None:
            run.log.write("psql", text)
            m = _PSQL_ERROR.match(text)
            if m:
                errors.append(f"{m['msg']} (line {m['line']} of {Path(m['file']).name})")

        done = run.program(step.program, on_line=line, check=False)
        if not done.ok:
            run.check_cancel()
            message = errors[0] if errors else "\n".join(done.stderr_tail[-3:])
            raise StepFailed(
                f"restoring the schema of database {dbname!r} failed: {message}",
                detail="\n".join(done.stderr_tail) or None,
                hint=restore_advice(message),
                program="psql",
            )


def run_restore(run: Run, step: Step) -> None:
    """pg_restore of the schema or of the data; a resumed data step first empties what it reloads."""
    facts = run.facts
    assert step.program is not None and step.database is not None
    if step.program.program == "psql":
        _run_script(run, step)
        return
    dump_dir = Path(step.program.args[-1])
    dbname = next(d.target for d in facts.databases if d.source == step.database)
    use_list = _arg(step.program, "--use-list=")
    items = len(toc_listing(facts, dump_dir)) if facts.client.docker_image is None else 1
    total = float(max(items, 1))
    with run.step(step, total=total) as artifacts:
        if use_list and Path(use_list) == triggers_use_list(dump_dir):
            items = _write_triggers_list(run, step, dump_dir, Path(use_list))
            artifacts["triggers"] = items
            if not items:
                return
            total = float(max(items, 1))
        elif use_list and Path(use_list) in (remedy_use_list(dump_dir), data_use_list(dump_dir)):
            items = _write_remedy_list(run, step, dump_dir, Path(use_list))
            total = float(max(items, 1))
            if step.kind == "restore-data":
                artifacts["triggers_deferred"] = True
        elif use_list:
            items = _continue_restore(run, step, dump_dir, Path(use_list), dbname)
            artifacts["continued_items"] = items
            total = float(max(items, 1))
        progress = [0]

        def on_item() -> None:
            progress[0] += 1
            run.sink(StepProgress("restore", step=step.id, completed=float(min(progress[0], items)), total=total))

        def line(text: str) -> None:
            run.log.write("pg_restore", text)
            m = _FINISHED_ITEM.match(text)
            if m and step.kind == "restore-data":
                run.journal.items_finished(step.id, [int(m["id"])])

        watcher = RestoreWatcher(on_item, line)
        tolerant = tolerate_transaction_timeout(facts)
        done = run.program(step.program, on_line=watcher, check=False)
        errors = watcher.done()
        relevant = [e for e in errors if not (tolerant and _TIMEOUT in e[0])]
        if not done.ok and (not tolerant or relevant or not errors):
            run.check_cancel()
            raise explain_restore(
                dbname,
                relevant,
                "\n".join(done.stderr_tail),
                watcher.object_of(relevant[0]) if relevant else "",
                returncode=done.returncode,
            )
        if tolerant and errors:
            run.log.write("info", f"{len(errors)} expected transaction_timeout error(s) of a newer pg_restore ignored")


def _continue_restore(run: Run, step: Step, dump_dir: Path, use_list: Path, dbname: str) -> int:
    """Before a data step runs again: no backend of the last attempt still at work, then the evidence."""
    assert step.connect_to is not None and step.database is not None
    with run.target_session(step.connect_to) as conn:
        for action in step.sql:
            run.apply(conn, action)
        deadline = time.monotonic() + 60
        while ddl.other_sessions(conn, dbname) and time.monotonic() < deadline:
            run.check_cancel()
            time.sleep(0.1)
    dbp = next(d for d in run.facts.databases if d.source == step.database)
    record = run.journal.database(step.database)
    assert record is not None
    left = remaining_items(run.facts, dbp, dump_dir, record)
    run.sink(Message(f"{step.database}: {left.note}", level=Level.INFO))
    if left.truncate:
        with run.target_session(step.connect_to) as conn:
            for schema, name in left.truncate:
                run.apply(conn, Action(f"table {schema}.{name}", ddl.truncate_only(schema, name)))
    parsed = remedies.parse_listing(toc_listing(run.facts, dump_dir))
    omitted = remedies.omitted_ids(parsed, step.items)
    # The triggers are restore-triggers' (after the data), as in the attempt this one continues.
    return write_use_list(run.facts, dump_dir, use_list, set(left.skip) | omitted | trigger_ids(parsed))


def run_stream_data(run: Run, step: Step) -> None:
    """Stream mode: the post-data section as SQL, then the copy in the schema dump's snapshot.

    The engine (migrate/streaming.py) runs each table's post-data items as soon as its data is in; its
    progress records in the target database say what an earlier attempt finished, so a resume
    copies only what is left and never a row twice.
    """
    facts = run.facts
    assert step.program is not None and step.database is not None and step.connect_to is not None
    src = step.database
    dbp = next(d for d in facts.databases if d.source == src)
    dump_dir = Path(step.program.args[-1])
    script = Path(_arg(step.program, "--file="))
    use_list = _arg(step.program, "--use-list=")
    _say(run, step)
    try:
        with run.step(step, total=float(max(dbp.tables, 1))) as artifacts:
            listing = toc_listing(facts, dump_dir)
            left_out = remedies.omitted_ids(remedies.parse_listing(listing), step.items)
            if use_list:
                _write_remedy_list(run, step, dump_dir, Path(use_list))
            os.close(os.open(script, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
            run.program(step.program)
            items = remedies.parse_listing(listing)
            kept = [i for i in items if i.dump_id not in left_out and i.classid == _PG_CLASS]
            tables = {i.dump_id: i.objid for i in kept if i.desc == "TABLE"}
            snap = run.snapshot(src, open_new=False)
            if snap is None:
                run.warn(
                    f"{src}: the snapshot of the schema dump ended with the earlier attempt; what is left is copied "
                    "in a new one"
                )
            total = float(max(len(tables), 1))

            def progress(done: float) -> None:
                run.sink(StepProgress("copy", step=step.id, completed=done, total=total))

            from pgshift.migrate import streaming

            options = facts.options
            result = streaming.stream_database(
                facts.source,
                facts.target,
                src,
                dbp.target,
                tables=frozenset(tables.values()),
                table_ids=tables,
                sequences=frozenset(i.objid for i in kept if i.desc == "SEQUENCE"),
                matviews=[i.objid for i in kept if i.desc == "MATERIALIZED VIEW"],
                # pg_dump leaves large objects out of a dump filtered by schema or table (-n, -t).
                large_objects=not (options.schemas or options.tables),
                post_data=script.read_bytes(),
                snapshot=snap,
                jobs=facts.jobs_per_database,
                owner=not options.no_owner,
                privileges=not options.no_privileges,
                cancel=run.cancel,
                on_progress=progress,
                log=run.log.write,
                reader=_copy_reader(facts),
                analyze=bool(step.intent.get("analyze")),
            )
            artifacts.update(result.summary())
            for note in result.notes:
                run.sink(Message(f"{src}: {note}", level=Level.INFO))
    finally:
        if not facts.verify_in_snapshots:
            run.release_snapshot(src)  # else verify reads the source in it (the runner releases it on a failure)


_PG_CLASS = 1259


def run_recopy(run: Run, step: Step) -> None:
    """The tables a failed verification found different, copied again in a new snapshot of the
    source (held for the verify that follows)."""
    from pgshift.migrate import recopy

    assert step.database is not None and step.connect_to is not None
    src = step.database
    spec = (run.journal.step("verify").artifacts.get("recopy") or {}).get(src) or {}
    _say(run, step)
    done_before = run.journal.step(step.id).artifacts.get("after")
    with run.step(step) as artifacts:
        snap = run.snapshot(src)
        assert snap is not None
        with run.target_session(step.connect_to) as tconn:
            artifacts.update(
                recopy.copy_again(
                    run.facts.source,
                    src,
                    tconn,
                    spec,
                    snap.id,
                    done_before=done_before,
                    record_after=lambda after: run.journal.step_artifacts(step.id, after=after),
                    cancel=run.cancel,
                    log=run.log.write,
                )
            )
        artifacts["as_of"] = snap.taken_at
    if not run.facts.verify_in_snapshots:
        run.release_snapshot(src)


def _copy_reader(facts: Facts) -> Any:
    """The client's psql reads large units at C speed; clients in Docker read through psycopg."""
    from pgshift.migrate.streaming import CopyReader

    installation = facts.client.installation
    if facts.client.docker_image is not None or installation is None or not installation.has("psql"):
        return None
    return CopyReader(str(installation.program("psql")))


def _arg(call: ProgramCall, prefix: str) -> str:
    return next((a.removeprefix(prefix) for a in call.args if a.startswith(prefix)), "")


EXECUTORS: dict[str, Callable[[Run, Step], None]] = {
    "record-globals": run_record_globals,
    "create-roles": run_create_roles,
    "grant-memberships": run_sql_step,
    "create-tablespaces": run_create_tablespaces,
    "drop-database": run_sql_step,
    "create-database": run_sql_step,
    "dump": run_dump,
    "reuse-dump": run_reuse_dump,
    "script-schema": run_script_schema,
    "restore-schema": run_restore,
    "restore-data": run_restore,
    "restore-triggers": run_restore,
    "stream-data": run_stream_data,
    "stream-finish": run_sql_step,
    "remedy": run_sql_step,
    "database-settings": run_sql_step,
    "analyze": run_analyze,
    "finish": run_sql_step,
    "recopy": run_recopy,
}


def execute(run: Run, step: Step) -> None:
    """Run one step of the plan by its kind's executor (verify is the runner's own)."""
    EXECUTORS[step.kind](run, step)
