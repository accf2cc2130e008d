"""The steps of a migration: the statements and commands each one runs, and running them.

The same generators feed ``--dry-run`` (display forms) and the runner, so the plan shows exactly
what runs.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from pgshift.catalog import cluster, ddl
from pgshift.catalog.ddl import Grant, Statement
from pgshift.catalog.session import Connection, connect, query_failed
from pgshift.conninfo import ResolvedEndpoint
from pgshift.errors import Interrupted, PgshiftError, StepFailed
from pgshift.events import EventSink, Level, Message, StepFinished, StepProgress, StepStarted
from pgshift.migrate.plan import DatabasePlan
from pgshift.migrate.preflight import Facts
from pgshift.migrate.workdir import Journal, RunLog, dir_size
from pgshift.process import Completed, how_it_ended
from pgshift.toolchain.clients import run_client

# --- statements ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """One statement of a step, with what it is about (for messages)."""

    about: str
    statement: Statement
    role_created: str | None = None  # a CREATE ROLE: recorded in the journal once it succeeded
    # A setting (ALTER DATABASE/ROLE … SET): when the target no longer knows the parameter (an
    # accepted removed-guc-settings blocker), it is skipped with a warning instead of failing.
    setting: bool = False


def role_actions(facts: Facts) -> list[Action]:
    plan = facts.globals_plan
    if plan is None:
        return []
    by_name = {r.name: r for r in facts.roles}
    out: list[Action] = []
    for rp in plan.roles:
        if rp.action != "create":
            continue
        role = by_name[rp.name]
        password = facts.passwords.get(role.name) if plan.passwords else None
        out.append(
            Action(
                f"role {role.name}",
                ddl.create_role(role, password=password, drop=rp.dropped_attributes),
                role_created=role.name,
            )
        )
        if role.comment:
            out.append(Action(f"role {role.name}", ddl.comment_on_role(role.name, role.comment)))
        for database, setting in role.settings:
            if database is None:
                out.append(Action(f"role {role.name}", ddl.alter_role_set(role.name, setting), setting=True))
    return out


def membership_actions(facts: Facts, created: set[str]) -> tuple[list[Action], list[str]]:
    """GRANTs of memberships whose member was created by this run; the others are reported."""
    plan = facts.globals_plan
    if plan is None:
        return [], []
    present = facts.target_roles | created
    out, skipped = [], []
    for m in facts.memberships:
        if m.member not in created:
            if m.member not in facts.protected_roles:
                skipped.append(f"{m.member} in {m.role} (member already existed on the target)")
            continue
        if m.role not in present:
            skipped.append(f"{m.member} in {m.role} (role {m.role} does not exist on the target)")
            continue
        out.append(Action(f"membership of {m.member} in {m.role}", ddl.grant_membership(m, facts.target_version)))
    return out, skipped


def tablespace_actions(facts: Facts, existing: set[str]) -> list[Action]:
    plan = facts.globals_plan
    if plan is None or facts.options.no_tablespaces:
        return []
    locations = dict(plan.tablespaces)
    present = facts.target_roles | set(plan.created)
    out = []
    for ts in facts.tablespaces:
        if ts.name in existing:
            continue
        owner = ts.owner if ts.owner in present and not facts.options.no_owner else None
        out.append(Action(f"tablespace {ts.name}", ddl.create_tablespace(ts, locations[ts.name], owner)))
        options = ddl.alter_tablespace_options(ts.name, ts.options)
        if options is not None:
            out.append(Action(f"tablespace {ts.name}", options))
        if not facts.options.no_privileges:
            with contextlib.closing(connect(facts.source)) as sconn:
                grants = ddl.tablespace_grants(sconn, ts.name)
            out += [
                Action(f"tablespace {ts.name}", ddl.grant_on("tablespace", ts.name, grant))
                for grant in grants
                if grant.grantee is None or grant.grantee in present
            ]
    return out


def extension_actions(facts: Facts, dbp: DatabasePlan) -> list[Action]:
    """Extensions a filtered dump (--schema/--table …) leaves out still belong to the database.

    Run tolerating a missing schema: an extension whose schema the filter left out stays out.
    """
    if not facts.options.has_object_filters:
        return []
    return [
        Action(f"extension {ext.name}", ddl.create_extension(ext.name, ext.schema))
        for ext in dbp.extensions
        if ext.target_version is not None and ext.name != "plpgsql"
    ]


def database_actions(
    facts: Facts,
    dbp: DatabasePlan,
    grants: list[Grant],
    *,
    create: bool,
    target_tablespaces: set[str],
    run_id: str,
    workdir: str,
) -> tuple[list[Action], list[str]]:
    """CREATE DATABASE and its properties: owner, tablespace, connlimit, comment, settings, grants."""
    options = facts.options
    db = facts.source_dbs[dbp.source]
    warnings: list[str] = []
    present = facts.target_roles | set(facts.globals_plan.created if facts.globals_plan else ())
    owner: str | None = None
    if not options.no_owner:
        if db.owner in present:
            owner = db.owner
        else:
            warnings.append(
                f"database {dbp.target!r}: owner {db.owner!r} does not exist on the target; "
                f"{facts.target.user!r} owns it"
            )
    tablespace: str | None = None
    if not options.no_tablespaces and db.tablespace != "pg_default":
        if db.tablespace in target_tablespaces:
            tablespace = db.tablespace
        else:
            warnings.append(
                f"database {dbp.target!r}: tablespace {db.tablespace!r} is not on the target; pg_default used"
            )
    out: list[Action] = []
    about = f"database {dbp.target}"
    if create:
        made = ddl.create_database(db, dbp.target, facts.target_version, owner=owner, tablespace=tablespace)
        warnings.extend(made.warnings)
        out.append(Action(about, made.statement))
    if create:
        # Until its last step the new database says whose half-done work it is (final_comment_action).
        out.append(Action(about, ddl.mark_in_progress(dbp.target, run_id, workdir)))
    for setting in db.settings:
        out.append(Action(about, ddl.alter_database_set(dbp.target, setting), setting=True))
    if not options.no_privileges and not db.acl_is_default:
        target_owner = owner or facts.target.user
        out.append(Action(about, ddl.revoke_all_on("database", dbp.target, None)))
        out.append(Action(about, ddl.revoke_all_on("database", dbp.target, target_owner)))
        for grant in grants:
            grantee = grant.grantee
            if grantee == db.owner:
                grantee = target_owner
            if grantee is not None and grantee not in present and grantee != target_owner:
                warnings.append(f"database {dbp.target!r}: grant to {grantee!r} skipped (no such role on the target)")
                continue
            out.append(
                Action(about, ddl.grant_on("database", dbp.target, Grant(grantee, grant.privilege, grant.grantable)))
            )
    return out, warnings


def drop_actions(facts: Facts, dbp: DatabasePlan) -> list[Action]:
    about = f"database {dbp.target}"
    out = []
    if facts.target_version.major < 13:
        # Before 13 DROP DATABASE has no WITH (FORCE): end the database's sessions first.
        out.append(Action(about, ddl.terminate_sessions(dbp.target)))
    out.append(Action(about, ddl.drop_database(dbp.target, facts.target_version)))
    return out


def final_comment_action(facts: Facts, dbp: DatabasePlan, *, created: bool) -> Action | None:
    """The source's comment on the database; on a database this run created it replaces the in-progress mark."""
    comment = facts.source_dbs[dbp.source].comment
    about = f"database {dbp.target}"
    if comment:
        return Action(about, ddl.comment_on_database(dbp.target, comment))
    if created:
        return Action(about, ddl.clear_comment_on_database(dbp.target))
    return None


def role_database_actions(facts: Facts, dbp: DatabasePlan, created: set[str]) -> list[Action]:
    """ALTER ROLE … IN DATABASE … SET for roles this run created."""
    out = []
    for role in facts.roles:
        if role.name not in created:
            continue
        for database, setting in role.settings:
            if database == dbp.source:
                out.append(
                    Action(f"role {role.name}", ddl.alter_role_set(role.name, setting, dbp.target), setting=True)
                )
    return out


# --- commands ------------------------------------------------------------------------------------


def dump_args(facts: Facts, dbp: DatabasePlan, dump_dir: Path) -> list[str]:
    options = facts.options
    args = [
        "--format=directory",
        f"--jobs={facts.jobs_per_database}",
        f"--file={dump_dir}",
        "--no-password",
        "--verbose",
    ]
    args += [f"--schema={p}" for p in options.schemas]
    args += [f"--exclude-schema={p}" for p in options.exclude_schemas]
    args += [f"--table={p}" for p in options.tables]
    args += [f"--exclude-table={p}" for p in options.exclude_tables]
    if options.schema_only:
        args.append("--schema-only")
    if options.data_only:
        args.append("--data-only")
    args += list(facts.client.dump_flags)
    args.append(f"--dbname={facts.source.child_conninfo(dbp.source)}")
    return args


def tolerate_transaction_timeout(facts: Facts) -> bool:
    """pg_restore 17+ sets transaction_timeout, which targets before 17 reject (knowledge §1)."""
    return facts.client.major >= 17 > facts.target_version.major


def restore_args(facts: Facts, dbp: DatabasePlan, dump_dir: Path) -> list[str]:
    options = facts.options
    args = [f"--dbname={facts.target.child_conninfo(dbp.target)}", "--no-password", "--verbose"]
    if options.data_only:
        # One transaction: a failed or killed data-only restore leaves nothing half-loaded.
        args.append("--single-transaction")
        if facts.target_info.is_superuser:
            args.append("--disable-triggers")
    else:
        args.append(f"--jobs={facts.jobs_per_database}")
    if not tolerate_transaction_timeout(facts):
        args.append("--exit-on-error")
    if options.no_owner:
        args.append("--no-owner")
    if options.no_privileges:
        args.append("--no-privileges")
    if options.no_tablespaces:
        args.append("--no-tablespaces")
    args.append(str(dump_dir))
    return args


def globals_args(facts: Facts, out: Path) -> list[str]:
    args = ["--globals-only", f"--file={out}", "--no-password"]
    if facts.globals_plan is not None and not facts.globals_plan.passwords:
        args.append("--no-role-passwords")
    if facts.options.no_tablespaces:
        args.append("--no-tablespaces")
    args.append(f"--dbname={facts.source.child_conninfo()}")
    return args


def command_display(facts: Facts, program: str, args: list[str]) -> str:
    import shlex

    if facts.client.docker_image is not None:
        return f"docker run --network host {facts.client.docker_image} " + shlex.join([program, *args])
    return shlex.join([facts.client.program(program), *args])


# --- restore errors ------------------------------------------------------------------------------

_ERROR = re.compile(r"^pg_restore: error: (?:could not execute query: )?(?P<msg>.*)$")
_TIMEOUT = 'unrecognized configuration parameter "transaction_timeout"'


@dataclass
class RestoreErrors:
    """Errors pg_restore printed: each with the statement it ran."""

    errors: list[tuple[str, str]]  # (message, "Command was: …")

    def relevant(self, tolerate_timeout: bool) -> list[tuple[str, str]]:
        if not tolerate_timeout:
            return self.errors
        return [e for e in self.errors if _TIMEOUT not in e[0]]


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


def restore_advice(message: str) -> str:
    low = message.lower()
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
        return "the target database was not empty: drop it, or replace it with --if-exists drop"
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


_UNKNOWN_SETTING = (
    psycopg.errors.UndefinedObject,  # unrecognized configuration parameter
    psycopg.errors.InvalidParameterValue,
    psycopg.errors.CantChangeRuntimeParam,
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
        self._connections: set[Connection] = set()
        self._lock = threading.Lock()
        self._applied = 0
        self.warnings: list[str] = []

    @contextlib.contextmanager
    def step(
        self, step_id: str, title: str, *, database: str | None = None, total: float | None = None
    ) -> Iterator[str]:
        """The one step wrapper: start/finish events, timing, the journal's record, failures as errors.

        A failure is recorded with the step and re-raised as a ``StepFailed`` naming the step (a query
        error becomes one too); an interruption is recorded as such. With ``database``, the step's
        seconds add up per phase in that database's journal entry.
        """
        self.check_cancel()
        self.sink(StepStarted(title, step=step_id, total=total))
        self.journal.record(step_id, "running")
        started = time.monotonic()

        def end(state: str, ok: bool, **extra: object) -> float:
            took = time.monotonic() - started
            self.journal.record(step_id, state, seconds=round(took, 3), **extra)
            self.sink(StepFinished(title, step=step_id, ok=ok, seconds=took))
            return took

        try:
            yield step_id
        except Interrupted:
            end("interrupted", False)
            raise
        except PgshiftError as exc:
            if self.cancel.is_set():
                end("interrupted", False)
                raise Interrupted("interrupted") from None
            end("failed", False, error=exc.message)
            raise
        except psycopg.Error as exc:
            if self.cancel.is_set():
                end("interrupted", False)
                raise Interrupted("interrupted") from None
            failure = query_failed(f"{title} (step {step_id})", exc)
            end("failed", False, error=failure.message)
            raise failure from None
        took = end("done", True)
        if database is not None:
            phase = step_id.rsplit(":", 1)[-1]
            entry = self.journal.database(database) or {}
            self.journal.db_seconds(database, phase, float(entry.get("seconds", {}).get(phase, 0.0)) + took)

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

    def maintenance_db(self, avoid: str) -> str:
        name = self.facts.target.dbname or "postgres"
        if name != avoid:
            return name
        return "postgres" if avoid != "postgres" else "template1"

    def apply(self, conn: Connection, action: Action, *, tolerate: tuple[type[psycopg.Error], ...] = ()) -> bool:
        """Run one statement on the target, logged; False when a tolerated error happened."""
        self.check_cancel()
        self.log.write("sql", action.statement.display())
        try:
            ddl.execute(conn, action.statement)
        except tolerate as exc:
            self.log.write("info", f"tolerated: {str(exc).strip()}")
            return False
        except psycopg.Error as exc:
            if self.cancel.is_set():
                raise Interrupted("interrupted") from None
            if action.setting and isinstance(exc, _UNKNOWN_SETTING):
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                self.warn(f"{action.about}: setting not applied on the target ({first}): {action.statement.display()}")
                return False
            raise explain_statement(action.about, action.statement, exc) from None
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
        self,
        program: str,
        args: list[str],
        endpoint: ResolvedEndpoint,
        *,
        on_line: Callable[[str], None] | None = None,
        check: bool = True,
    ) -> Completed:
        self.check_cancel()
        self.log.write("command", command_display(self.facts, program, args))

        def _line(line: str) -> None:
            if on_line is not None:
                on_line(line)
            else:
                self.log.write(program, line)

        try:
            return run_client(
                self.facts.client,
                program,
                args,
                env=endpoint.child_env(),
                secrets=endpoint.secrets,
                mounts=[str(self.workdir)],
                on_stderr=_line,
                check=check,
            )
        except StepFailed:
            if self.cancel.is_set():
                raise Interrupted(f"interrupted while {program} was running") from None
            raise


def make_private_tree(path: Path) -> None:
    """Directories 0700, files 0600 (children write with the umask)."""
    for root, dirs, files in os.walk(path):
        os.chmod(root, 0o700)
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o700)
        for f in files:
            os.chmod(os.path.join(root, f), 0o600)


def run_globals(run: Run) -> tuple[list[str], list[str], int, list[str]]:
    """Roles, memberships, role settings and tablespaces. Returns (created, existing, memberships, tablespaces)."""
    facts = run.facts
    plan = facts.globals_plan
    assert plan is not None
    journal = run.journal
    with run.step("globals", "globals: roles, memberships, tablespaces"):
        journal.globals_update(state="running")
        record = run.workdir / "globals.sql"
        fd = os.open(record, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        done = run.program("pg_dumpall", globals_args(facts, record), facts.source, check=False)
        if not done.ok:
            run.warn(
                "pg_dumpall --globals-only failed, so the record globals.sql is incomplete "
                f"({done.stderr_tail[-1] if done.stderr_tail else 'no message'}); roles are applied from the catalog"
            )
        with contextlib.suppress(OSError):
            os.chmod(record, 0o600)
        existing = [r.name for r in plan.roles if r.action == "exists"]
        with run.target_session(run.maintenance_db("")) as conn:
            # An earlier attempt may have died between a CREATE ROLE's commit and its record: the
            # intent written before the statement plus the role's presence now say it is this run's.
            created = journal.roles_of_run(ddl.role_names(conn))
            for action in role_actions(facts):
                if action.role_created and action.role_created in created:
                    continue  # created in an earlier attempt
                if action.role_created:
                    journal.role_intended(action.role_created)
                ok = run.apply(conn, action, tolerate=(psycopg.errors.DuplicateObject,) if action.role_created else ())
                if action.role_created:
                    if ok:
                        created.add(action.role_created)
                        journal.role_created(action.role_created)
                    else:
                        journal.role_not_ours(action.role_created)
                        existing.append(action.role_created)
                        run.warn(f"role {action.role_created!r} appeared on the target meanwhile; left alone")
            grants, skipped = membership_actions(facts, created)
            for action in grants:
                run.apply(conn, action)
            if skipped:
                text = f"{len(skipped)} membership(s) not granted: " + "; ".join(skipped[:5])
                run.sink(Message(text, level=Level.INFO))
            existing_ts = cluster.tablespace_names(conn)
            made_ts = []
            for action in tablespace_actions(facts, existing_ts):
                try:
                    run.apply(conn, action)
                except StepFailed as exc:
                    exc.hint = (
                        "create the directory on the target host (owned by the server's user), map it with "
                        "--tablespace-map NAME=/new/path, or use --no-tablespaces"
                    )
                    raise
                if action.statement.no_transaction:
                    made_ts.append(action.about.removeprefix("tablespace "))
        journal.globals_update(state="done", memberships=len(grants), tablespaces=made_ts)
    return sorted(created), existing, len(grants), made_ts



def source_database_grants(facts: Facts, dbname: str) -> list[Grant]:
    with contextlib.closing(connect(facts.source)) as sconn:
        return ddl.database_grants(sconn, dbname)


def migrate_database(run: Run, dbp: DatabasePlan, dump_dir: Path) -> None:
    """Every phase of one database, each a step (see ``Run.step``)."""
    facts, journal, options = run.facts, run.journal, run.facts.options
    src = dbp.source
    entry = journal.database(src)
    assert entry is not None
    step = f"db:{src}"
    created_roles = set(journal.globals.get("created_roles", []))

    if dbp.action == "finish":
        _finish_database(run, dbp)
        return
    exists_on_target = dbp.target in facts.target_db_names
    # --- create ---------------------------------------------------------------------------------
    if not options.data_only:
        with run.step(f"{step}:create", f"{src}: create {dbp.target}", database=src) as sid:
            maintenance = run.maintenance_db(dbp.target)
            reuse_existing = dbp.action == "migrate" and exists_on_target  # the target's empty postgres
            # Only a database this run creates may ever be dropped by a later attempt of it.
            journal.db_update(src, state="creating", created_by_run=not reuse_existing)
            with run.target_session(maintenance) as conn:
                if dbp.action in ("drop-and-migrate", "redo"):
                    for action in drop_actions(facts, dbp):
                        run.apply(conn, action)
                    reuse_existing = False
                ts_names = cluster.tablespace_names(conn)
                grants = [] if options.no_privileges else source_database_grants(facts, src)
                actions, warnings = database_actions(
                    facts,
                    dbp,
                    grants,
                    create=not reuse_existing,
                    target_tablespaces=ts_names,
                    run_id=journal.run_id,
                    workdir=str(run.workdir),
                )
                for w in warnings:
                    run.warn(w)
                for action in actions:
                    run.apply(conn, action)
            journal.db_update(src, state="created")
    # --- dump -----------------------------------------------------------------------------------
    if dbp.dump_note:
        run.sink(Message(f"{src}: {dbp.dump_note}", level=Level.INFO))
        run.log.write("info", f"{src}: {dbp.dump_note}")
    if not dbp.reuse_dump:
        tables = float(max(dbp.tables, 1))
        with run.step(f"{step}:dump", f"{src}: dump ({_size(dbp.size_bytes)})", database=src, total=tables) as sid:
            earlier = entry.get("dump_dir")
            if entry.get("dump_started") and earlier and earlier != dump_dir.name:
                shutil.rmtree(dump_dir.parent / earlier, ignore_errors=True)  # the plan chose a new directory
            # Taken before pg_dump starts: a change in between makes a later resume dump again (the safe side).
            with contextlib.closing(connect(facts.source, src)) as sconn:
                evidence = ddl.dump_evidence(sconn)
            journal.db_update(
                src,
                state="dumping",
                dump_started=True,
                dump_complete=False,
                dump_dir=dump_dir.name,
                dump_evidence=evidence,
            )
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
                    run.sink(StepProgress("dump", step=sid, completed=float(count[0] - 1), total=tables))

            try:
                run.program("pg_dump", dump_args(facts, dbp, dump_dir), facts.source, on_line=dump_line)
            except StepFailed as exc:
                raise explain_dump(dbp.source, exc) from None
            make_private_tree(dump_dir)
            journal.db_update(src, state="dumped", dump_complete=True, dump_bytes=dir_size(dump_dir))
    # --- restore ----------------------------------------------------------------------------------
    items = _toc_entries(run, dump_dir)
    with run.step(f"{step}:restore", f"{src}: restore", database=src, total=float(max(items, 1))) as sid:
        journal.db_update(src, state="restoring")
        progress = [0]

        def on_item() -> None:
            progress[0] += 1
            run.sink(
                StepProgress("restore", step=sid, completed=float(min(progress[0], items)), total=float(max(items, 1)))
            )

        watcher = RestoreWatcher(on_item, lambda line: run.log.write("pg_restore", line))
        tolerant = tolerate_transaction_timeout(facts)
        done = run.program("pg_restore", restore_args(facts, dbp, dump_dir), facts.target, on_line=watcher, check=False)
        errors = watcher.done()
        relevant = [e for e in errors if not (tolerant and _TIMEOUT in e[0])]
        if not done.ok and (not tolerant or relevant or not errors):
            run.check_cancel()
            raise explain_restore(
                dbp.target,
                relevant,
                "\n".join(done.stderr_tail),
                watcher.object_of(relevant[0]) if relevant else "",
                returncode=done.returncode,
            )
        if tolerant and errors:
            run.log.write("info", f"{len(errors)} expected transaction_timeout error(s) of a newer pg_restore ignored")
        # Extensions the dump did not carry (schema filters) still belong to the database.
        with run.target_session(dbp.target) as conn:
            for action in extension_actions(facts, dbp):
                run.apply(conn, action, tolerate=(psycopg.errors.InvalidSchemaName,))
            for action in role_database_actions(facts, dbp, created_roles):
                run.apply(conn, action)
        journal.db_update(src, state="restored")
    _finish_database(run, dbp)


def _finish_database(run: Run, dbp: DatabasePlan) -> None:
    """The last steps of a restored database: ANALYZE, then its own comment in place of the mark."""
    facts, journal, options, src = run.facts, run.journal, run.facts.options, dbp.source
    step = f"db:{src}"
    # --- analyze --------------------------------------------------------------------------------
    if options.analyze and not options.schema_only:
        with run.step(f"{step}:analyze", f"{src}: analyze", database=src), run.target_session(dbp.target) as conn:
            run.apply(conn, Action(f"database {dbp.target}", ddl.analyze()))
    if not options.data_only:
        final = final_comment_action(facts, dbp, created=bool((journal.database(src) or {}).get("created_by_run")))
        if final is not None:
            with (
                run.step(f"{step}:finish", f"{src}: finish", database=src),
                run.target_session(run.maintenance_db(dbp.target)) as conn,
            ):
                run.apply(conn, final)
    journal.db_update(src, state="analyzed", error=None)


def _toc_entries(run: Run, dump_dir: Path) -> int:
    toc = dump_dir / "toc.dat"
    if not toc.exists() or run.facts.client.docker_image is not None:
        return 1  # a container start per listing is not worth a progress bar
    done = run_client(
        run.facts.client,
        "pg_restore",
        ["--list", str(dump_dir)],
        env=run.facts.target.child_env(),
        mounts=[str(run.workdir)],
        check=False,
    )
    return sum(1 for line in done.stdout.splitlines() if line and not line.startswith(";"))


def _size(n: int | None) -> str:
    if n is None:
        return "size unknown"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


human_size = _size
