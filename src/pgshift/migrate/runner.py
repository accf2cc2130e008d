"""The runner: preflight, plan, then every step recorded in the journal; resume; Ctrl-C.

Work happens in worker threads while the main thread waits, so that Ctrl-C or SIGTERM reach the
main thread at once: it stops every child program's process group, cancels running queries,
marks the journal interrupted and raises ``Interrupted`` naming the resume command.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import re
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg

from pgshift import paths
from pgshift.catalog.session import query_failed
from pgshift.conninfo import Endpoint
from pgshift.errors import ConnectionFailed, Interrupted, PgshiftError, PreflightRefused, StepFailed, WorkdirFull
from pgshift.events import EventSink, Level, Message, StepFinished, StepProgress, StepStarted, discard
from pgshift.migrate import steps
from pgshift.migrate.journal import JOURNAL, DatabaseRecord, Journal, RunStatus, killed_attempt, now
from pgshift.migrate.options import MigrateOptions
from pgshift.migrate.plan import DatabasePlan, MigrationPlan, Step
from pgshift.migrate.planner import build_plan, streams
from pgshift.migrate.preflight import Facts, finish_check, preflight, server_identity
from pgshift.migrate.result import DatabaseResult, DatabaseStatus, GlobalsResult, MigrationResult
from pgshift.migrate.workdir import (
    LOG,
    RunLog,
    WorkdirLock,
    check_new_workdir,
    default_workdir,
    make_private,
    new_run_id,
)
from pgshift.process import REDACTED, stopping_children
from pgshift.verify import ExpectedDifference, VerifyOptions, VerifyReport, verify_servers

# --- plan ----------------------------------------------------------------------------------------


def plan_migration(options: MigrateOptions, *, sink: EventSink = discard) -> MigrationPlan:
    """Preflight and plan: connects to both servers, reads, decides; touches nothing."""
    journal = Journal.load(options.workdir) if options.resume and options.workdir is not None else None
    if not options.resume and options.workdir is not None:
        check_new_workdir(options.workdir)
    facts = preflight(options, sink, journal)
    workdir = options.workdir or default_workdir()
    return build_plan(facts, workdir, journal, journal.run_id if journal else new_run_id())


# --- resume --------------------------------------------------------------------------------------


def _endpoint_from_record(text: str, role: str) -> Endpoint:
    endpoint = Endpoint.parse(text, role)
    if endpoint.password == REDACTED:
        endpoint = endpoint.with_params(password=None)
    return endpoint


def load_resume_options(
    workdir: Path,
    *,
    source: Endpoint | None = None,
    target: Endpoint | None = None,
    changes: Mapping[str, Any] | None = None,
) -> MigrateOptions:
    """The options of the run recorded in ``workdir``, ready for ``run_migration`` (resume=True).

    The journal keeps the connection strings without passwords: those come again from the
    usual libpq places (PGPASSWORD, ~/.pgpass, a service file), or from SOURCE/TARGET given anew.
    """
    header = Journal.read_header(workdir)
    src = source or _endpoint_from_record(header["source"], "source")
    tgt = target or _endpoint_from_record(header["target"], "target")
    return MigrateOptions.from_dict(
        header["options"], source=src, target=tgt, **{"workdir": workdir, "resume": True, **(changes or {})}
    )


# --- run -----------------------------------------------------------------------------------------


class _Signalled(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM becomes an exception in the main thread while the run lasts (then the old handler)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _handler(signum: int, _frame: FrameType | None) -> None:
        raise _Signalled(signum)

    previous = signal.signal(signal.SIGTERM, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _status_of(record: DatabaseRecord | None) -> DatabaseStatus:
    if record is None:
        return "pending"
    if record.finished:
        return "done"
    if record.error:
        return "failed"
    if record.state == "pending":
        return "pending"
    return "interrupted"


def _verify(run: steps.Run, pairs: list[tuple[str, str]]) -> tuple[VerifyReport, str]:
    options = run.facts.options
    vopts = VerifyOptions(
        jobs=options.jobs,
        checksums=options.checksums,
        compare_globals=options.globals,
        compare_owners=not options.no_owner,
        compare_privileges=not options.no_privileges,
        compare_rows=not options.schema_only,
        schemas=options.schemas,
        exclude_schemas=options.exclude_schemas,
        tables=options.tables,
        exclude_tables=options.exclude_tables,
        roles_left_alone=tuple(sorted(_left_alone(run.facts))),
    )
    held = run.held_snapshots()
    for database, snap in list(held.items()):
        if not snap.alive():
            # Its session ended (terminated, a server restart, a pooler's timeout): verify cannot
            # join it, and compares with the source as it is now.
            run.release_snapshot(database)
            del held[database]
            run.lost_snapshots.add(database)
            run.warn(
                f"{database}: the session holding the snapshot of its dump ended before verify; verify compares "
                "with the source as it is now, so rows written since that dump show as differences"
            )
    if run.facts.verify_in_snapshots:
        later = [s for s, _t in pairs if s not in held and s not in run.lost_snapshots]
        if later:
            # Dumped by an earlier attempt: its snapshot ended with that attempt's sessions.
            run.warn(
                f"{', '.join(later)}: dumped by an earlier attempt, whose snapshot ended with it; verify compares "
                "with the source as it is now, so rows written since that dump show as differences"
            )
    report = verify_servers(
        run.facts.source,
        run.facts.target,
        databases=pairs,
        options=vopts,
        sink=run.sink,
        expected=declared_differences(run.facts),
        snapshots={s: held[s].id for s, _t in pairs if s in held},
        cancel=run.cancel,
    )
    return report, report_summary(report)


def _what_to_copy_again(run: steps.Run, report: VerifyReport, targets: dict[str, str]) -> dict[str, Any]:
    """Per database, what a resume copies again to answer this verification (journaled with it)."""
    from pgshift.migrate import recopy

    token = now()
    out: dict[str, Any] = {}
    for database in sorted({d.database for d in report.differences if d.database and d.relation}):
        diffs = [d for d in report.differences if d.database == database]
        try:
            out[database] = recopy.what_to_copy(run.facts.target, targets[database], diffs, token)
        except psycopg.Error as exc:  # the resume then only verifies again, as before
            run.log.write("warning", f"{database}: what to copy again is unknown: {exc}")
    if out:
        tables = sum(len(spec["tables"]) for spec in out.values())
        run.sink(
            Message(
                f"a resume copies again the {tables} table(s) verify found different (and those referencing them), "
                "if nothing writes to them on the target until then, then verifies again",
                level=Level.INFO,
            )
        )
    return out


def declared_differences(facts: Facts) -> list[ExpectedDifference]:
    """What the applied remedies change on purpose, declared to verify (each named by its remedy)."""
    applied = [*facts.global_remedies, *(r for rem in facts.remedies.values() for r in rem.applied)]
    out = []
    for a in applied:
        out.append(ExpectedDifference(a.remedy, a.database, a.kind, a.name, note=a.change, renamed_to=a.renamed_to))
        for dependent in a.also:
            kind = next((k for k in _DECLARABLE if dependent.startswith(k + " ")), None)
            if kind is not None:
                out.append(ExpectedDifference(a.remedy, a.database, kind, dependent[len(kind) + 1 :], note=a.change))
    return out


# Dependents of an excluded object declared one by one (pg_describe_object's words); their own
# parts (indexes, constraints, rows …) verify covers with them.
_DECLARABLE = ("materialized view", "foreign table", "view", "table", "sequence", "function", "procedure", "type")


def _left_alone(facts: Facts) -> set[str]:
    """Roles migrate leaves as the target has them, by design: protected, pre-existing, reduced."""
    roles = set(facts.protected_roles)
    if facts.globals_plan is not None:
        roles |= {r.name for r in facts.globals_plan.roles if r.action != "create" or r.dropped_attributes}
    return roles


def report_summary(report: VerifyReport) -> str:
    declared = f"{len(report.declared)} declared by remedies" if report.declared else ""
    if report.equal:
        if report.expected and declared:
            return (
                f"source and target are equal ({len(report.expected)} expected difference(s), each named; {declared})"
            )
        if report.expected:
            return f"source and target are equal ({len(report.expected)} expected difference(s), each named)"
        if declared:
            return f"source and target are equal ({declared})"
        return "source and target are equal"
    return f"{len(report.differences)} difference(s) between source and target" + (f" ({declared})" if declared else "")


def verified(report: VerifyReport | None) -> bool:
    return report is None or report.equal


_RESUME_HINT = "see the log in the work directory and fix the cause"


def resume_command(options: MigrateOptions, workdir: Path) -> str:
    """The command that continues this run, as the user can type it."""
    if options.source.password is not None or options.target.password is not None:
        # The journal keeps no password: it must come again from where it came from.
        return (
            f"pgshift migrate --resume {workdir} SOURCE TARGET (the journal keeps no passwords: give both "
            "connection strings again, or set PGPASSWORD or use ~/.pgpass)"
        )
    return f"pgshift migrate --resume {workdir}"


# A hint written for a command run on its own ("… then run verify again"): within a migration the
# resume is how it is run again, so the two are not both said.
_RUN_AGAIN = re.compile(r",? then run (?:verify )?again\.?$")


def with_resume_hint(hint: str | None, options: MigrateOptions, workdir: Path) -> str:
    """The hint of a failure, then how to continue; a hint that names --resume already is whole."""
    if hint and "--resume" in hint:
        return hint
    if hint:
        hint = _RUN_AGAIN.sub("", hint)
    return (hint.rstrip(".") + "; then " if hint else "fix the cause, then ") + (
        f"continue with: {resume_command(options, workdir)}"
    )


def _trial_beside_dumps(run: steps.Run, plan: MigrationPlan) -> dict[str, PgshiftError]:
    """check's schema trial (left by the preflight) while the databases' dumps, which only read the
    source, start: a refusal stops them, and nothing has changed the target. Returns the dumps that
    failed, by database; the dumps done here are in ``run.done_ahead``."""
    facts = run.facts
    dumps = [s for d in plan.databases if d.moves for s in plan.steps_of(d.source) if s.kind == "dump"]
    verdict: list[BaseException] = []
    # Stream mode dumps the schema alone, as the trial would: the trial reads that archive instead of
    # dumping each database a second time (a client in Docker sees only its own directory).
    dumped: dict[str, threading.Event] = {}
    if streams(facts) and facts.client.docker_image is None:
        dumped = {s.database: threading.Event() for s in dumps if s.database is not None}

    def schema_archive(database: str) -> Path | None:
        ended = dumped.get(database)
        if ended is None:
            return None
        while not ended.wait(0.1):
            if run.cancel.is_set():
                return None
        step = next(s for s in dumps if s.database == database)
        done = step.id in run.done_ahead
        return Path(_file_arg(step)) if done else None

    def judge() -> None:
        try:
            finish_check(facts, run.sink, run.warnings, run.cancel, schema_archive=schema_archive)
        except BaseException as exc:  # handed to the runner's thread below
            verdict.append(exc)

    trial = threading.Thread(target=judge, name="trial", daemon=True)
    trial.start()
    failed: dict[str, PgshiftError] = {}
    lock = threading.Lock()
    queue = list(dumps)

    def ahead() -> None:
        # New dumps start only while the trial runs: after it, the databases go on in their order.
        while trial.is_alive() and not run.cancel.is_set():
            with lock:
                if not queue:
                    return
                step = queue.pop(0)
            assert step.database is not None
            try:
                steps.execute(run, step)
                run.done_ahead.add(step.id)
            except PgshiftError as exc:
                failed[step.database] = exc
            except psycopg.Error as exc:
                failed[step.database] = query_failed(f"database {step.database!r}", exc, hint=_RESUME_HINT)
            except Exception as exc:
                failed[step.database] = StepFailed(
                    f"database {step.database!r}: internal error {type(exc).__name__}: {exc}"
                )
            finally:
                if step.database in dumped:
                    dumped[step.database].set()

    workers = [
        threading.Thread(target=ahead, name=f"dump-ahead-{i}", daemon=True)
        for i in range(min(plan.parallel_databases, len(dumps)))
    ]
    for w in workers:
        w.start()
    trial.join()
    for ended in dumped.values():
        ended.set()  # the dumps not started: nobody waits for them any more
    if verdict:
        # Refused (or the trial could not run): stop the dumps under way; the target is untouched.
        run.cancel.set()
        with stopping_children():
            for w in workers:
                w.join()
        for d in plan.databases:
            run.release_snapshot(d.source)
        raise verdict[0]
    for w in workers:
        w.join()
    return failed


def _file_arg(step: Step) -> str:
    assert step.program is not None
    return next(a.removeprefix("--file=") for a in step.program.args if a.startswith("--file="))


def _body(run: steps.Run, plan: MigrationPlan) -> dict[str, Any]:
    facts, journal, sink = run.facts, run.journal, run.sink
    phases: dict[str, float] = {}
    outcome: dict[str, Any] = {"globals": None, "errors": {}, "phases": phases}
    failed_ahead = _trial_beside_dumps(run, plan) if facts.pending_trial is not None else {}
    # --- globals ---
    gsteps = [s for s in plan.steps_of(None) if s.kind != "verify"]
    if facts.globals_plan is not None:
        t0 = time.monotonic()
        if not gsteps:
            sink(Message("globals were applied in an earlier attempt", level=Level.INFO))
        for step in gsteps:
            try:
                steps.execute(run, step)
            except psycopg.Error as exc:
                if run.cancel.is_set():
                    raise Interrupted("interrupted") from None
                raise query_failed("the globals", exc, hint=_RESUME_HINT) from None
        made_ts = [a.about.removeprefix("tablespace ") for s in gsteps for a in s.sql if a.statement.no_transaction]
        existing = [r.name for r in facts.globals_plan.roles if r.action == "exists"] + run.existing_roles
        memberships = sum(len(s.sql) for s in gsteps if s.kind == "grant-memberships")
        outcome["globals"] = GlobalsResult(
            tuple(sorted(r for r in run.created_roles if r in set(facts.globals_plan.created))),
            tuple(existing),
            memberships,
            tuple(made_ts),
        )
        phases["globals"] = round(time.monotonic() - t0, 3)
    else:
        outcome["globals"] = GlobalsResult(skipped=True)
    # --- databases ---
    moving = [d for d in plan.databases if d.moves]
    total = float(max(plan.total_bytes, 1))
    sink(StepStarted(f"migrating {len(moving)} database(s)", step="migrate", total=total, unit="bytes"))
    done_bytes = [0.0]
    lock = threading.Lock()

    def one(dbp: DatabasePlan) -> None:
        if dbp.source in failed_ahead:
            raise failed_ahead[dbp.source]
        finished = False
        chain = plan.steps_of(dbp.source)
        last_reader = next((s.id for s in reversed(chain) if s.kind in steps.DUMP_READERS), None)
        try:
            for step in chain:
                if step.id not in run.done_ahead:
                    steps.execute(run, step)
                if step.id == last_reader and not facts.options.keep_dumps:
                    run.discard_dump(plan.dump_dirs[dbp.source])
            finished = True
        except psycopg.Error as exc:
            if run.cancel.is_set():
                raise Interrupted("interrupted") from None
            raise query_failed(f"database {dbp.source!r}", exc, hint=_RESUME_HINT) from None
        finally:
            if not (finished and facts.verify_in_snapshots):
                # A failed step left the dump's snapshot held (nothing will verify in it), or nothing needs it now.
                run.release_snapshot(dbp.source)
        with lock:
            done_bytes[0] += float(dbp.size_bytes or 0)
            sink(StepProgress("migrate", step="migrate", completed=done_bytes[0], total=total))

    t0 = time.monotonic()
    errors: dict[str, PgshiftError] = outcome["errors"]
    with concurrent.futures.ThreadPoolExecutor(max_workers=plan.parallel_databases, thread_name_prefix="db") as pool:
        futures = {pool.submit(one, d): d for d in moving}
        for fut in concurrent.futures.as_completed(futures):
            dbp = futures[fut]
            failure = fut.exception()
            if isinstance(failure, PgshiftError):
                errors[dbp.source] = failure
            elif failure is not None:
                errors[dbp.source] = StepFailed(
                    f"database {dbp.source!r}: internal error {type(failure).__name__}: {failure}"
                )
    phases["databases"] = round(time.monotonic() - t0, 3)
    if run.cancel.is_set():
        return outcome
    sink(StepFinished("databases", step="migrate", ok=not errors, seconds=phases["databases"]))
    if errors:
        return outcome
    # --- what a failed verification found different, copied again (a resume) ---
    for step in plan.steps:
        if step.kind == "recopy":
            try:
                steps.execute(run, step)
            except psycopg.Error as exc:
                if run.cancel.is_set():
                    raise Interrupted("interrupted") from None
                raise query_failed(f"database {step.database!r}", exc, hint=_RESUME_HINT) from None
    # --- verify ---
    outcome["verify"] = None
    outcome["verify_note"] = "skipped (--no-verify)" if not facts.options.verify else "nothing to verify"
    verify_step = next((s for s in plan.steps if s.kind == "verify"), None)
    pairs = [(d.source, d.target) for d in plan.databases if _finished(journal, d.source)]
    if verify_step is not None and pairs:
        t0 = time.monotonic()
        with run.step(verify_step) as artifacts:
            outcome["verify"], outcome["verify_note"] = _verify(run, pairs)
            artifacts["equal"] = verified(outcome["verify"])
            artifacts["note"] = outcome["verify_note"]
            if not artifacts["equal"]:
                artifacts["recopy"] = _what_to_copy_again(run, outcome["verify"], dict(pairs))
        phases["verify"] = round(time.monotonic() - t0, 3)
    return outcome


def _record_end(journal: Journal, log: RunLog, status: RunStatus, text: str) -> None:
    """The run's end in the journal and the log; on a full disk the error itself says it instead."""
    with contextlib.suppress(WorkdirFull):
        journal.set_status(status)
    with contextlib.suppress(WorkdirFull):
        log.write("error", text)


def _changed_target(exc: PgshiftError, run: steps.Run) -> StepFailed | None:
    """A lost connection after the target was changed: exit 5, not exit 3 ("the target is untouched").

    The connection failure itself is the same; what the code tells the user is whether a fresh
    start is safe, and after roles or databases were made it is not: the run is resumed.
    """
    if not isinstance(exc, ConnectionFailed):
        return None
    made = sorted(run.created_roles)
    records = (run.journal.database(name) for name in run.journal.databases)
    touched = sorted(r.source for r in records if r is not None and r.touched_target)
    if not made and not touched:
        return None
    changes = [f"{len(made)} role(s) created"] if made else []
    if touched:
        changes.append("database(s) " + ", ".join(touched) + " begun")
    return StepFailed(
        f"{exc.message} (the target was already changed: {'; '.join(changes)})", hint=exc.hint, detail=exc.detail
    )


def _workdir_full(
    errors: Mapping[str, PgshiftError], plan: MigrationPlan, journal: Journal, workdir: Path
) -> WorkdirFull | None:
    """The work directory's full (or failing) file system, when that is what some step died of.

    Raised by pgshift's own writers, or told by pg_dump/pg_dumpall, which write their output there.
    The dumps cut short are removed (a failed dump is taken again on resume), so the space they
    held is free again, for the journal's last words and the user's count; what is still needed is
    the size of the databases not dumped yet (an upper bound: the dumps are compressed).
    """
    full = next((e for e in errors.values() if isinstance(e, WorkdirFull)), None)
    if full is None:
        for err in errors.values():
            if isinstance(err, StepFailed) and err.program in ("pg_dump", "pg_dumpall"):
                full = paths.refused_in_output(f"{err.message}\n{err.detail or ''}", workdir)
                if full is not None:
                    break
    if full is None:
        return None
    needed = 0
    for dbp in plan.databases:
        record = journal.database(dbp.source)
        if dbp.moves and not (record is not None and (record.finished or record.dump_complete)):
            shutil.rmtree(plan.dump_dirs[dbp.source], ignore_errors=True)
            needed += dbp.size_bytes or 0
    return full.with_needed(needed or None, paths.free_bytes(workdir))


def _finished(journal: Journal, source: str) -> bool:
    record = journal.database(source)
    return record is not None and record.finished


def _wait(future: concurrent.futures.Future[dict[str, Any]]) -> dict[str, Any]:
    while True:
        try:
            return future.result(timeout=0.25)
        except concurrent.futures.TimeoutError:
            continue


def run_migration(
    options: MigrateOptions,
    *,
    sink: EventSink = discard,
    confirm: Callable[[str], bool] = lambda question: False,
) -> MigrationResult:
    """Preflight, plan, then run every step, journaled; returns what moved (see the package docs)."""
    started = time.monotonic()
    lock: WorkdirLock | None = None
    journal: Journal | None = None
    if options.resume:
        assert options.workdir is not None
        journal = Journal.load(options.workdir)
        if journal.status == "done":
            raise PreflightRefused(
                f"the run in {options.workdir} finished already; there is nothing to resume",
                hint="start a new migration (without --resume)",
            )
        lock = WorkdirLock(options.workdir)
        previous_pid = lock.previous_holder()
        lock.acquire()
        if journal.status == "running":
            # The lock was free, so no pgshift holds it: the last attempt died without a word.
            sink(Message(killed_attempt(journal, previous_pid), level=Level.WARNING))
    if not options.resume and options.workdir is not None:
        check_new_workdir(options.workdir)  # before the servers are read: a run there is resumed, not redone
    try:
        # The schema trial runs beside the first steps, which only read the source (see _trial_beside_dumps).
        facts = preflight(options, sink, journal, defer_trial=not options.dry_run)
        workdir = options.workdir or default_workdir()
        run_id = journal.run_id if journal is not None else new_run_id()
        plan = build_plan(facts, workdir, journal, run_id)
        for change in plan.changes:
            sink(Message(change, level=Level.WARNING))
        if options.dry_run:
            return _result(plan, facts, workdir, None, {}, started, ok=True)
        drops = [d.target for d in plan.databases if d.action == "drop-and-migrate"]
        if drops and not confirm(f"Drop and replace {len(drops)} database(s) on the target ({', '.join(drops)})?"):
            raise PreflightRefused(
                f"not confirmed: dropping {', '.join(repr(d) for d in drops)} on the target",
                hint="answer yes, or pass --yes to replace them without asking",
            )
        # Options given again with --resume stay for later attempts too; the plan is kept as it was run.
        attempt_header = {
            "options": {**options.as_dict(), "workdir": str(workdir)},
            "client": plan.client.as_dict(),
            "plan": [s.id for s in plan.steps],
        }
        if journal is None:
            make_private(workdir)
            lock = WorkdirLock(workdir)
            lock.acquire()
            journal = Journal.create(
                workdir,
                {
                    "run_id": run_id,
                    "source_identity": server_identity(facts.source, facts.source_info),
                    "target_identity": server_identity(facts.target, facts.target_info),
                    "source": options.source.display(),
                    "target": options.target.display(),
                    "source_version": plan.source.version,
                    "target_version": plan.target.version,
                    **attempt_header,
                },
            )
        else:
            journal.begin_attempt(attempt_header)
        for dbp in plan.databases:
            if dbp.moves or dbp.action == "done":
                journal.add_database(dbp.source, dbp.target, plan.dump_dirs[dbp.source].name)
        return _execute(plan, facts, workdir, journal, sink, started)
    finally:
        if journal is not None:
            journal.close()
        if lock is not None:
            lock.release()


def _execute(
    plan: MigrationPlan,
    facts: Facts,
    workdir: Path,
    journal: Journal,
    sink: EventSink,
    started: float,
) -> MigrationResult:
    log = RunLog(workdir / LOG)
    lsink = log.sink(sink)
    log.write(
        "info", f"pgshift migrate{' (resumed)' if plan.resumed else ''}: {plan.source.display} -> {plan.target.display}"
    )
    log.write("info", f"source {plan.source.version}, target {plan.target.version}")
    log.write("info", f"client: {facts.client.describe()}")
    for warning in plan.warnings:
        log.write("warning", warning)
    for dbp in plan.databases:
        log.write("info", f"database {dbp.source} -> {dbp.target}: {dbp.action} ({dbp.reason})")
    run = steps.Run(facts, workdir, journal, log, lsink)
    run.warnings.extend(plan.warnings)
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="migrate")
    try:
        with _sigterm_raises():
            future = executor.submit(_body, run, plan)
            try:
                outcome = _wait(future)
            except PgshiftError as exc:
                # The globals failed (databases report their failures in the outcome).
                exc = _workdir_full({"": exc}, plan, journal, workdir) or _changed_target(exc, run) or exc
                _record_end(journal, log, "failed", exc.message + (f"\n{exc.detail}" if exc.detail else ""))
                exc.hint = with_resume_hint(exc.hint, facts.options, workdir)
                raise exc from None
            except (KeyboardInterrupt, _Signalled) as exc:
                signum = exc.signum if isinstance(exc, _Signalled) else signal.SIGINT
                run.cancel.set()
                with stopping_children():
                    run.cancel_queries()
                    with contextlib.suppress(BaseException):
                        future.result(timeout=120)
                _record_end(journal, log, "interrupted", f"interrupted by signal {int(signum)}; journal saved")
                raise Interrupted(
                    f"interrupted ({'Ctrl-C' if signum == signal.SIGINT else 'SIGTERM'}); the journal is saved in "
                    f"{workdir}",
                    hint=f"continue with: {resume_command(facts.options, workdir)}",
                    signum=int(signum),
                ) from None
        errors: dict[str, PgshiftError] = outcome["errors"]
        if errors:
            full = _workdir_full(errors, plan, journal, workdir)
            if full is not None:  # every database failed for it, or will: it is the one cause to name
                _record_end(journal, log, "failed", full.message)
                full.hint = with_resume_hint(full.hint, facts.options, workdir)
                raise full
            first_db, first = next(iter(errors.items()))
            first = _changed_target(first, run) or first
            _record_end(
                journal,
                log,
                "failed",
                "\n".join(
                    f"database {db}: {e.message}" + (f"\n{e.detail}" if e.detail else "") for db, e in errors.items()
                ),
            )
            others = [d for d in errors if d != first_db]
            if others:
                first.message += f" (and {len(others)} other database(s) failed: {', '.join(others)})"
            first.hint = with_resume_hint(first.hint, facts.options, workdir)
            raise first
        verify = outcome.get("verify")
        equal = verified(verify)
        run.wait_discards()
        if equal:
            if not facts.options.keep_dumps:
                for entry in journal.databases.values():  # those of earlier attempts too
                    steps.remove_dump(workdir / "dumps" / entry.dump_dir)
            journal.set_status("done", verify_note=outcome.get("verify_note", ""))
        else:
            journal.set_status("verify-failed", verify_note=outcome.get("verify_note", ""))
            run.warn(
                "verification found differences"
                + (": the dumps are kept in the work directory" if facts.options.keep_dumps else "")
            )
        result = _result(
            plan,
            facts,
            workdir,
            journal,
            outcome["phases"],
            started,
            ok=equal,
            globals_result=outcome["globals"],
            verify=verify,
            verify_note=outcome.get("verify_note", ""),
            warnings=run.warnings,
        )
        log.write("info", f"finished: ok={result.ok} in {result.seconds:.1f}s")
        return result
    finally:
        run.release_snapshots()
        run.wait_discards()
        executor.shutdown(wait=False)
        log.close()


def _result(
    plan: MigrationPlan,
    facts: Facts,
    workdir: Path,
    journal: Journal | None,
    phases: Mapping[str, float],
    started: float,
    *,
    ok: bool,
    globals_result: GlobalsResult | None = None,
    verify: Any | None = None,
    verify_note: str = "",
    warnings: list[str] | None = None,
) -> MigrationResult:
    databases = []
    for dbp in plan.databases:
        record = journal.database(dbp.source) if journal is not None else None
        status: DatabaseStatus = "skipped" if dbp.action == "skip" else _status_of(record)
        databases.append(
            DatabaseResult(
                source=dbp.source,
                target=dbp.target,
                status=status,
                size_bytes=dbp.size_bytes,
                dump_bytes=record.dump_bytes if record else None,
                seconds=record.seconds() if record else {},
                step_seconds=record.step_seconds() if record else {},
                as_of=record.step("dump").started if record and record.step("dump").done else None,
                error=record.error if record else None,
                resumed=dbp.action == "done",
            )
        )
    return MigrationResult(
        ok=ok,
        workdir=workdir,
        log_path=workdir / LOG,
        journal_path=workdir / JOURNAL,
        source_version=plan.source.version,
        target_version=plan.target.version,
        client=facts.client.describe(),
        databases=tuple(databases),
        globals=globals_result,
        phases=dict(phases),
        seconds=time.monotonic() - started,
        warnings=tuple(dict.fromkeys(warnings if warnings is not None else plan.warnings)),
        verify=verify,
        verify_note=verify_note,
        resumed=plan.resumed,
        remedies=plan.applied_remedies,
    )
