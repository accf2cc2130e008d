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

from pgshift.catalog import cluster
from pgshift.catalog.session import query_failed, session
from pgshift.conninfo import Endpoint
from pgshift.errors import Interrupted, PgshiftError, PreflightRefused, StepFailed
from pgshift.events import EventSink, Level, Message, StepFinished, StepProgress, StepStarted, discard
from pgshift.migrate import steps
from pgshift.migrate.options import MigrateOptions
from pgshift.migrate.plan import DatabasePlan, MigrationPlan, PlannedStep
from pgshift.migrate.preflight import Facts, preflight, server_identity
from pgshift.migrate.result import DatabaseResult, DatabaseStatus, GlobalsResult, MigrationResult
from pgshift.migrate.workdir import (
    FINISHED,
    LOG,
    Journal,
    RunLog,
    WorkdirLock,
    check_new_workdir,
    default_workdir,
    dump_dir_name,
    make_private,
    new_run_id,
)
from pgshift.process import REDACTED, terminate_all
from pgshift.verify import VerifyOptions, VerifyReport, verify_servers

# --- plan ----------------------------------------------------------------------------------------


def _target_tablespaces(facts: Facts) -> set[str]:
    with session(facts.target) as conn:
        return cluster.tablespace_names(conn)


def _build_steps(facts: Facts, workdir: Path, dump_dirs: Mapping[str, Path], run_id: str) -> list[PlannedStep]:
    out: list[PlannedStep] = []
    ts_names = _target_tablespaces(facts)
    if facts.globals_plan is not None:
        args = steps.globals_args(facts, workdir / "globals.sql")
        out.append(
            PlannedStep(
                "globals", "record the source's globals", "program", steps.command_display(facts, "pg_dumpall", args)
            )
        )
        created = set(facts.globals_plan.created)
        actions = steps.role_actions(facts)
        actions += steps.membership_actions(facts, created)[0]
        actions += steps.tablespace_actions(facts, ts_names)
        out += [PlannedStep("globals", a.about, "sql", a.statement.display()) for a in actions]
        ts_names |= {n for n, _loc in facts.globals_plan.tablespaces}
    created = set(facts.globals_plan.created) if facts.globals_plan else set()
    for dbp in facts.databases:
        if not dbp.moves:
            continue
        sid = f"db:{dbp.source}"
        reuse = dbp.action == "migrate" and dbp.target in facts.target_db_names
        if dbp.action == "finish":
            if facts.options.analyze and not facts.options.schema_only:
                out.append(PlannedStep(f"{sid}:analyze", f"analyze {dbp.target}", "sql", "ANALYZE"))
            final = steps.final_comment_action(facts, dbp, created=True)
            if final is not None:
                out.append(PlannedStep(f"{sid}:finish", final.about, "sql", final.statement.display()))
            continue
        if dbp.action in ("drop-and-migrate", "redo"):
            out += [
                PlannedStep(f"{sid}:create", f"drop {dbp.target}", "sql", a.statement.display())
                for a in steps.drop_actions(facts, dbp)
            ]
        if not facts.options.data_only:
            grants = [] if facts.options.no_privileges else steps.source_database_grants(facts, dbp.source)
            actions, _w = steps.database_actions(
                facts,
                dbp,
                grants,
                create=not reuse,
                target_tablespaces=ts_names,
                run_id=run_id,
                workdir=str(workdir),
            )
            out += [PlannedStep(f"{sid}:create", a.about, "sql", a.statement.display()) for a in actions]
        dump_dir = dump_dirs[dbp.source]
        if dbp.reuse_dump:
            out.append(PlannedStep(f"{sid}:dump", f"reuse the dump of {dbp.source}", "internal", dbp.dump_note))
        else:
            out.append(
                PlannedStep(
                    f"{sid}:dump",
                    f"dump {dbp.source}",
                    "program",
                    steps.command_display(facts, "pg_dump", steps.dump_args(facts, dbp, dump_dir)),
                )
            )
        out.append(
            PlannedStep(
                f"{sid}:restore",
                f"restore into {dbp.target}",
                "program",
                steps.command_display(facts, "pg_restore", steps.restore_args(facts, dbp, dump_dir)),
            )
        )
        out += [
            PlannedStep(f"{sid}:restore", a.about, "sql", a.statement.display())
            for a in [*steps.extension_actions(facts, dbp), *steps.role_database_actions(facts, dbp, created)]
        ]
        if facts.options.analyze and not facts.options.schema_only:
            out.append(PlannedStep(f"{sid}:analyze", f"analyze {dbp.target}", "sql", "ANALYZE"))
        if not facts.options.data_only:
            final = steps.final_comment_action(facts, dbp, created=not reuse)
            if final is not None:
                out.append(PlannedStep(f"{sid}:finish", final.about, "sql", final.statement.display()))
    if facts.options.verify:
        pairs = ", ".join(f"{d.source}→{d.target}" for d in facts.databases if d.moves or d.action == "done")
        out.append(PlannedStep("verify", "verify", "internal", f"compare objects and row counts: {pairs}"))
    return out


def _dump_dirs(facts: Facts, workdir: Path, journal: Journal | None) -> dict[str, Path]:
    out: dict[str, Path] = {}
    known = journal.data["databases"] if journal is not None else {}
    index = len(known)
    for dbp in facts.databases:
        entry = known.get(dbp.source)
        if entry is not None:
            name = entry["dump_dir"]
            if entry.get("dump_started") and not dbp.reuse_dump and dbp.moves:
                # A pg_dump of an earlier attempt may still be writing there (pgshift was SIGKILLed and
                # its child lives on): this attempt dumps into a directory of its own.
                attempt = int(journal.data.get("attempts", 1)) + 1 if journal is not None else 1
                name = f"{re.sub(r'-attempt[0-9]+$', '', name)}-attempt{attempt}"
            out[dbp.source] = workdir / "dumps" / name
        else:
            index += 1
            out[dbp.source] = workdir / "dumps" / dump_dir_name(index, dbp.source)
    return out


def _plan(
    facts: Facts, workdir: Path, journal: Journal | None, run_id: str
) -> tuple[MigrationPlan, dict[str, Path]]:
    dump_dirs = _dump_dirs(facts, workdir, journal)
    changes = _changes_since_recorded(facts, journal) if journal is not None else []
    plan = MigrationPlan(
        options=facts.options,
        source=facts.summary("source"),
        target=facts.summary("target"),
        client=facts.client,
        databases=tuple(facts.databases),
        globals=facts.globals_plan,
        steps=tuple(_build_steps(facts, workdir, dump_dirs, run_id)),
        workdir=workdir,
        parallel_databases=facts.parallel_databases,
        jobs_per_database=facts.jobs_per_database,
        warnings=(*changes, *facts.warnings),
        changes=tuple(changes),
        check=facts.check,
        resumed=journal is not None,
    )
    return plan, dump_dirs


def _changes_since_recorded(facts: Facts, journal: Journal) -> list[str]:
    """How the re-derived plan differs from the run the journal recorded, said before anything runs."""
    out = []
    recorded = journal.data["databases"]
    for dbp in facts.databases:
        if dbp.moves and dbp.source not in recorded:
            out.append(f"the plan changed since the last attempt: database {dbp.source!r} is new to this run")
        elif dbp.source in recorded and recorded[dbp.source]["target"] != dbp.target:
            out.append(
                f"the plan changed since the last attempt: database {dbp.source!r} now goes to {dbp.target!r}, "
                f"not {recorded[dbp.source]['target']!r}"
            )
    planned = {d.source for d in facts.databases}
    for name, entry in recorded.items():
        if name not in planned and entry.get("state") not in FINISHED:
            out.append(
                f"the plan changed since the last attempt: database {name!r} is no longer moved "
                f"(it was {entry.get('state')}); its half-done copy {entry['target']!r} stays on the target"
            )
    before = journal.data.get("options", {})
    now = {**facts.options.as_dict(), "workdir": before.get("workdir")}
    for key in sorted(k for k in now if k in before and now[k] != before[k] and k not in ("source", "target")):
        out.append(f"the plan changed since the last attempt: option {key} is now {now[key]!r} (was {before[key]!r})")
    return out


def plan_migration(options: MigrateOptions, *, sink: EventSink = discard) -> MigrationPlan:
    """Preflight and plan: connects to both servers, reads, decides; touches nothing."""
    journal = Journal.load(options.workdir) if options.resume and options.workdir is not None else None
    if not options.resume and options.workdir is not None:
        check_new_workdir(options.workdir)
    facts = preflight(options, sink, journal)
    workdir = options.workdir or default_workdir()
    return _plan(facts, workdir, journal, journal.run_id if journal else new_run_id())[0]


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
    journal = Journal.load(workdir)
    data = journal.data
    src = source or _endpoint_from_record(data["source"], "source")
    tgt = target or _endpoint_from_record(data["target"], "target")
    return MigrateOptions.from_dict(
        data["options"], source=src, target=tgt, **{"workdir": workdir, "resume": True, **(changes or {})}
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


def _status_of(entry: Mapping[str, Any] | None) -> DatabaseStatus:
    if entry is None:
        return "pending"
    state = entry.get("state")
    if state in FINISHED:
        return "done"
    if entry.get("error"):
        return "failed"
    if state == "pending":
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
    report = verify_servers(run.facts.source, run.facts.target, databases=pairs, options=vopts, sink=run.sink)
    return report, report_summary(report)


def _left_alone(facts: Facts) -> set[str]:
    """Roles migrate leaves as the target has them, by design: protected, pre-existing, reduced."""
    roles = set(facts.protected_roles)
    if facts.globals_plan is not None:
        roles |= {r.name for r in facts.globals_plan.roles if r.action != "create" or r.dropped_attributes}
    return roles


def report_summary(report: VerifyReport) -> str:
    if report.equal:
        if report.expected:
            return f"source and target are equal ({len(report.expected)} expected difference(s), each named)"
        return "source and target are equal"
    return f"{len(report.differences)} difference(s) between source and target"


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


def with_resume_hint(hint: str | None, options: MigrateOptions, workdir: Path) -> str:
    return (hint.rstrip(".") + "; then " if hint else "fix the cause, then ") + (
        f"continue with: {resume_command(options, workdir)}"
    )


def _body(run: steps.Run, plan: MigrationPlan, dump_dirs: Mapping[str, Path]) -> dict[str, Any]:
    facts, journal, sink = run.facts, run.journal, run.sink
    phases: dict[str, float] = {}
    outcome: dict[str, Any] = {"globals": None, "errors": {}, "phases": phases}
    # --- globals ---
    if facts.globals_plan is not None:
        t0 = time.monotonic()
        if journal.globals.get("state") == "done":
            sink(Message("globals were applied in an earlier attempt", level=Level.INFO))
            g = journal.globals
            outcome["globals"] = GlobalsResult(
                tuple(g.get("created_roles", [])),
                tuple(r.name for r in facts.globals_plan.roles if r.action == "exists"),
                int(g.get("memberships", 0)),
                tuple(g.get("tablespaces", [])),
            )
        else:
            try:
                created, existing, memberships, spaces = steps.run_globals(run)
            except psycopg.Error as exc:
                if run.cancel.is_set():
                    raise Interrupted("interrupted") from None
                raise query_failed("the globals", exc, hint=_RESUME_HINT) from None
            outcome["globals"] = GlobalsResult(tuple(created), tuple(existing), memberships, tuple(spaces))
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
        try:
            steps.migrate_database(run, dbp, dump_dirs[dbp.source])
        except Interrupted:
            journal.db_update(dbp.source, error=None)
            raise
        except PgshiftError as exc:
            journal.db_update(dbp.source, error=exc.message)
            raise
        except psycopg.Error as exc:
            if run.cancel.is_set():
                raise Interrupted("interrupted") from None
            failure = query_failed(f"database {dbp.source!r}", exc, hint=_RESUME_HINT)
            journal.db_update(dbp.source, error=failure.message)
            raise failure from None
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
    # --- verify ---
    pairs = [
        (src, entry["target"])
        for src, entry in journal.data["databases"].items()
        if entry.get("state") in FINISHED
    ]
    outcome["verify"] = None
    outcome["verify_note"] = "skipped (--no-verify)" if not facts.options.verify else "nothing to verify"
    if facts.options.verify and pairs:
        t0 = time.monotonic()
        sink(StepStarted(f"verify {len(pairs)} database(s)", step="verify"))
        outcome["verify"], outcome["verify_note"] = _verify(run, pairs)
        journal.record("verify", "equal" if verified(outcome["verify"]) else "differences", note=outcome["verify_note"])
        phases["verify"] = round(time.monotonic() - t0, 3)
        sink(
            StepFinished(
                "verify",
                step="verify",
                seconds=phases["verify"],
                ok=verified(outcome["verify"]),
            )
        )
    return outcome


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
            sink(
                Message(
                    "the previous attempt was killed"
                    + (f" (pid {previous_pid})" if previous_pid else "")
                    + " before it could record its end; what it had not finished is done again",
                    level=Level.WARNING,
                )
            )
    if not options.resume and options.workdir is not None:
        check_new_workdir(options.workdir)  # before the servers are read: a run there is resumed, not redone
    try:
        facts = preflight(options, sink, journal)
        workdir = options.workdir or default_workdir()
        run_id = journal.run_id if journal is not None else new_run_id()
        plan, dump_dirs = _plan(facts, workdir, journal, run_id)
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
                    "options": {**options.as_dict(), "workdir": str(workdir)},
                    "source": options.source.display(),
                    "target": options.target.display(),
                    "source_version": plan.source.version,
                    "target_version": plan.target.version,
                    "client": plan.client.as_dict(),
                },
            )
        else:
            # Options given again with --resume stay for later attempts too.
            journal.set_status(
                "running",
                attempts=int(journal.data.get("attempts", 1)) + 1,
                options={**options.as_dict(), "workdir": str(workdir)},
            )
        for dbp in plan.databases:
            if dbp.moves or dbp.action == "done":
                journal.add_database(dbp.source, dbp.target, dump_dirs[dbp.source].name)
        return _execute(plan, facts, workdir, journal, dump_dirs, sink, started)
    finally:
        if lock is not None:
            lock.release()


def _execute(
    plan: MigrationPlan,
    facts: Facts,
    workdir: Path,
    journal: Journal,
    dump_dirs: Mapping[str, Path],
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
            future = executor.submit(_body, run, plan, dump_dirs)
            try:
                outcome = _wait(future)
            except PgshiftError as exc:
                # The globals failed (databases report their failures in the outcome).
                journal.set_status("failed")
                log.write("error", exc.message + (f"\n{exc.detail}" if exc.detail else ""))
                exc.hint = with_resume_hint(exc.hint, facts.options, workdir)
                raise
            except (KeyboardInterrupt, _Signalled) as exc:
                signum = exc.signum if isinstance(exc, _Signalled) else signal.SIGINT
                run.cancel.set()
                terminate_all()
                run.cancel_queries()
                with contextlib.suppress(BaseException):
                    future.result(timeout=120)
                journal.set_status("interrupted")
                log.write("error", f"interrupted by signal {int(signum)}; journal saved")
                raise Interrupted(
                    f"interrupted ({'Ctrl-C' if signum == signal.SIGINT else 'SIGTERM'}); the journal is saved in "
                    f"{workdir}",
                    hint=f"continue with: {resume_command(facts.options, workdir)}",
                    signum=int(signum),
                ) from None
        errors: dict[str, PgshiftError] = outcome["errors"]
        if errors:
            journal.set_status("failed")
            first_db, first = next(iter(errors.items()))
            for db, err in errors.items():
                log.write("error", f"database {db}: {err.message}" + (f"\n{err.detail}" if err.detail else ""))
            others = [d for d in errors if d != first_db]
            if others:
                first.message += f" (and {len(others)} other database(s) failed: {', '.join(others)})"
            first.hint = with_resume_hint(first.hint, facts.options, workdir)
            raise first
        verify = outcome.get("verify")
        equal = verified(verify)
        if equal:
            for src, entry in journal.data["databases"].items():
                if entry.get("state") in FINISHED:
                    journal.db_update(src, state="done")
                    if not facts.options.keep_dumps:
                        shutil.rmtree(workdir / "dumps" / entry["dump_dir"], ignore_errors=True)
                        journal.db_update(src, dump_removed=True)
            journal.set_status("done")
        else:
            journal.set_status("verify-failed")
            run.warn("verification found differences: the dumps are kept in the work directory")
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
        entry = journal.database(dbp.source) if journal is not None else None
        status: DatabaseStatus = "skipped" if dbp.action == "skip" else _status_of(entry)
        databases.append(
            DatabaseResult(
                source=dbp.source,
                target=dbp.target,
                status=status,
                size_bytes=dbp.size_bytes,
                dump_bytes=entry.get("dump_bytes") if entry else None,
                seconds=dict(entry.get("seconds", {})) if entry else {},
                error=entry.get("error") if entry else None,
                resumed=dbp.action == "done",
            )
        )
    return MigrationResult(
        ok=ok,
        workdir=workdir,
        log_path=workdir / LOG,
        journal_path=workdir / "journal.json",
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
    )
