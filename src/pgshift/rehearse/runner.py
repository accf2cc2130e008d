"""The rehearsal: a throwaway server of the planned major, the real migration into it, the figures.

Steps, in order (``--dry-run`` prints them with the migration's own): start the lab server (local
binaries, or a container with ``--docker``); pgshift check with the schema trial on it (every
statement the target refuses, with its object and advice); the migration plan exactly as
``pgshift migrate`` builds and runs it (dump or stream mode, remedies, filters, verify); with
``--sample-rows`` the sample's rows; the databases' size on the lab server; stop the server.

The migration is run even when the check found blockers migrate would refuse (the server is
throwaway): what does not load is then said by the load itself, beside the blockers. The source is
only read. The lab server and the work directory are removed at the end — after success, failure,
Ctrl-C and SIGTERM alike; ``--keep`` leaves the server running (not after an interruption).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from pgshift import paths
from pgshift.errors import ExitCode, Interrupted, StepFailed
from pgshift.events import EventSink, Level, Message, StepFinished, StepStarted, discard
from pgshift.lab.server import LabServer, random_password
from pgshift.migrate import MigrateOptions, MigrationPlan, MigrationResult, plan_migration, run_migration
from pgshift.migrate.journal import JOURNAL, Journal
from pgshift.migrate.workdir import check_new_workdir
from pgshift.rehearse.model import (
    DatabaseFigures,
    LabSummary,
    Refusal,
    RehearsalPlan,
    RehearsalResult,
    RehearsalStep,
    RehearseOptions,
    SampledTable,
)
from pgshift.version import major_label

_NOTHING_LEFT = "nothing is left behind: the lab server and the rehearsal's work files were removed"


class _Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interruption of the main thread while the rehearsal lasts."""


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _handler(_signum: int, _frame: FrameType | None) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait while the lab server is removed (they arrive after)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class _Steps:
    """Times each rehearsal step and turns it into StepStarted/StepFinished events."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, step: RehearsalStep) -> Iterator[None]:
        sid = f"rehearse:{step.id}"
        self.sink(StepStarted(step.title, step=sid))
        started = time.monotonic()
        ok = False
        try:
            yield
            ok = True
        finally:
            self.seconds[step.id] = round(time.monotonic() - started, 3)
            self.sink(StepFinished(step.title, step=sid, ok=ok, seconds=self.seconds[step.id]))


# --- the lab server --------------------------------------------------------------------------------


def _lab_where(options: RehearseOptions) -> str:
    if options.docker:
        from pgshift.toolchain.docker import default_tag

        return f"docker image {default_tag(options.target_major)}"
    return "local binaries"


def _start_lab(options: RehearseOptions, sink: EventSink) -> LabServer:
    password = random_password()  # TCP wants it; the socket of a local server stays trust
    if options.docker:
        from pgshift.lab import docker

        return docker.start(options.target_major, password=password)
    from pgshift.lab.server import start

    return start(options.target_major, password=password, sink=sink)


def _lab_summary(options: RehearseOptions, lab: LabServer | None, *, kept: bool = False) -> LabSummary:
    backend: Literal["local", "docker"] = "docker" if options.docker else "local"
    if lab is None:
        return LabSummary(backend, major_label(options.target_major), _lab_where(options))
    image = getattr(lab, "image", "")
    where = f"docker image {image}" if image else str(lab.bin_dir)
    socket = "" if image else f"host={lab.socket_dir} port={lab.port} user={lab.superuser} dbname=postgres"
    stop = ""
    if kept:
        if image:
            stop = f"docker rm -f {getattr(lab, 'container_id', '')[:12]}"
        elif lab.process is not None:
            stop = f"kill -INT {lab.process.pid}; rm -rf {lab.root}"
    return LabSummary(backend, str(lab.version), where, lab.conninfo(with_password=False), socket, stop)


def _plan_steps(options: RehearseOptions, migration: MigrationPlan | None) -> tuple[RehearsalStep, ...]:
    label = major_label(options.target_major)
    out = [RehearsalStep("lab", "lab-start", f"start a PostgreSQL {label} lab server ({_lab_where(options)})")]
    if options.check:
        out.append(
            RehearsalStep(
                "check",
                "check",
                "pgshift check on the lab server, with the schema trial",
                note="every statement of the schema the lab server refuses, with its object and advice",
            )
        )
    mode = "schema only" if options.migrate.get("schema_only") or options.sample_rows else options.migrate.get("mode")
    count = f"{len(migration.steps)} step(s), listed below" if migration is not None else "its steps"
    out.append(
        RehearsalStep(
            "migrate",
            "migrate",
            f"pgshift migrate into the lab server ({mode or 'dump'}): {count}",
            note="run even when check found blockers: what does not load is said by the load itself",
        )
    )
    if options.sample_rows is not None:
        out.append(
            RehearsalStep(
                "sample",
                "sample-data",
                f"load at most {options.sample_rows:,} row(s) per table from the source",
                note="COPY (SELECT … LIMIT n) per table; triggers and foreign keys not enforced on the sample "
                "(session_replication_role = replica)",
            )
        )
    out.append(RehearsalStep("measure", "measure", "measure the databases on the lab server (pg_database_size)"))
    out.append(
        RehearsalStep(
            "stop",
            "lab-stop",
            "leave the lab server running (--keep)" if options.keep else "stop the lab server and remove its files",
        )
    )
    return tuple(out)


# --- plan ------------------------------------------------------------------------------------------


def plan_rehearsal(options: RehearseOptions, *, sink: EventSink = discard) -> RehearsalPlan:
    """The rehearsal's steps with the migration plan built against a lab server started for it
    (and removed again): what ``run_rehearsal`` would run. The source is only read."""
    if options.workdir is not None:
        check_new_workdir(options.workdir)
    workroot = Path(tempfile.mkdtemp(prefix="rehearse-plan-", dir=_work_parent()))
    lab: LabServer | None = None
    try:
        with _sigterm_interrupts():
            lab = _start_lab(options, sink)
            summary = _lab_summary(options, lab)
            migration = plan_migration(
                options.migrate_options(lab.endpoint("target"), _migrate_workdir(options, workroot)), sink=sink
            )
    except KeyboardInterrupt as exc:
        raise Interrupted("the rehearsal's plan was interrupted", hint=_NOTHING_LEFT, signum=_signum(exc)) from None
    finally:
        with _signals_held():
            if lab is not None:
                lab.stop()
            shutil.rmtree(workroot, ignore_errors=True)
    summary = LabSummary(summary.backend, summary.version, summary.where)  # the server is gone again
    return RehearsalPlan(options, summary, _plan_steps(options, migration), migration)


def _work_parent() -> Path:
    parent = paths.state_dir() / "work"
    parent.mkdir(parents=True, exist_ok=True)
    return parent


def _migrate_workdir(options: RehearseOptions, workroot: Path) -> Path:
    return (options.workdir or workroot) / "migrate"


def _signum(exc: BaseException) -> int:
    if isinstance(exc, _Terminated):
        return int(signal.SIGTERM)
    if isinstance(exc, Interrupted) and exc.exit_code == ExitCode.TERMINATED:
        return int(signal.SIGTERM)
    if isinstance(exc, SystemExit) and exc.code == 128 + signal.SIGTERM:
        return int(signal.SIGTERM)
    return int(signal.SIGINT)


# --- run -------------------------------------------------------------------------------------------


def run_rehearsal(options: RehearseOptions, *, sink: EventSink = discard) -> RehearsalResult:
    """Start, check, migrate, sample, measure, stop; see the module docs.

    Raises ``pgshift.errors`` for what stops the rehearsal itself (cannot connect to the source,
    no lab binaries, a refused option) and ``Interrupted`` on Ctrl-C/SIGTERM — each after the
    cleanup. A move that does not load is no error: it is the result's verdict.
    """
    started = time.monotonic()
    if options.workdir is not None:
        check_new_workdir(options.workdir)
        options.workdir.mkdir(parents=True, exist_ok=True)
        workroot = options.workdir
    else:
        workroot = Path(tempfile.mkdtemp(prefix="rehearse-", dir=_work_parent()))
    workroot.chmod(0o700)
    steps = _Steps(sink)
    plan = {s.kind: s for s in _plan_steps(options, None)}
    lab: LabServer | None = None
    interrupted = False
    kept = False
    left: list[str] = []
    notes: list[str] = ["tablespaces are not rehearsed: everything goes to the lab server's default tablespace"]
    try:
        with _sigterm_interrupts():
            with steps(plan["lab-start"]):
                lab = _start_lab(options, sink)
            sink(Message(f"lab server: PostgreSQL {lab.version} at {lab.conninfo(with_password=False)}"))
            mopts = options.migrate_options(lab.endpoint("target"), _migrate_workdir(options, workroot))
            report = None
            refusals: tuple[Refusal, ...] = ()
            if options.check:
                with steps(plan["check"]):
                    report = _check(mopts, workroot, sink)
                refusals = _refusals(report, mopts)
                if refusals:
                    sink(
                        Message(
                            f"check: {len(refusals)} blocker(s) pgshift migrate would refuse the move for; "
                            "rehearsing the load anyway",
                            level=Level.WARNING,
                        )
                    )
            migration: MigrationResult | None = None
            load_error: StepFailed | None = None
            with steps(plan["migrate"]):
                try:
                    migration = run_migration(mopts, sink=sink)
                except StepFailed as exc:
                    load_error = exc
                    sink(Message(f"the load failed: {exc.message}", level=Level.WARNING))
            figures = _figures(migration, mopts)
            sampled: list[SampledTable] = []
            if options.sample_rows is not None and "sample-data" in plan:
                with steps(plan["sample-data"]):
                    from pgshift.rehearse.sample import load_sample

                    loaded = [d for d in figures if d.status == "done"]
                    sample = load_sample(mopts, [(d.source, d.target) for d in loaded], options.sample_rows, sink)
                    sampled = list(sample.tables)
                    notes.extend(sample.notes)
                    if sample.failures:
                        load_error = load_error or StepFailed(
                            f"{len(sample.failures)} table(s) of the sample did not load",
                            detail="\n".join(sample.failures),
                        )
                notes.append(
                    "with --sample-rows the data figures are estimates: each table's copy time scaled by its "
                    "rows on the source (reltuples, else its size on disk) over the sample's (rough, it errs long), "
                    "its disk the source's size of it with indexes; indexes were built on empty tables and then "
                    "kept up during the sample's copy"
                )
            with steps(plan["measure"]):
                figures = _measured(lab, figures, sampled)
            source_version = migration.source_version if migration is not None else _source_version(mopts)
    except KeyboardInterrupt as exc:
        interrupted = True
        raise Interrupted(
            f"the rehearsal was {'terminated' if _signum(exc) == signal.SIGTERM else 'interrupted'}",
            hint=_NOTHING_LEFT,
            signum=_signum(exc),
        ) from None
    except Interrupted as exc:  # migrate's runner or check's trial stopped their work first
        interrupted = True
        raise Interrupted(
            f"the rehearsal was {'terminated' if _signum(exc) == signal.SIGTERM else 'interrupted'} ({exc.message})",
            hint=_NOTHING_LEFT,
            signum=_signum(exc),
        ) from None
    except SystemExit as exc:
        interrupted = True
        if _signum(exc) == signal.SIGTERM:
            raise Interrupted("the rehearsal was terminated", hint=_NOTHING_LEFT, signum=signal.SIGTERM) from None
        raise
    finally:
        with _signals_held():
            kept = _end(options, lab, workroot, keep=options.keep and not interrupted, left=left, sink=sink)
    # After the end: a kept server runs as a new postmaster (see LabServer.detach).
    result_lab = _lab_summary(options, lab, kept=kept)
    return RehearsalResult(
        options=options,
        lab=result_lab if kept else LabSummary(result_lab.backend, result_lab.version, result_lab.where),
        source_version=source_version,
        steps=dict(steps.seconds),
        check=report,
        refusals=refusals,
        migration=migration,
        load_error=load_error.message if load_error is not None else None,
        load_error_detail=load_error.detail if load_error is not None else None,
        databases=tuple(figures),
        sampled=tuple(sampled),
        notes=tuple(notes),
        kept=kept,
        left_behind=tuple(left),
        seconds=time.monotonic() - started,
    )


def _end(
    options: RehearseOptions, lab: LabServer | None, workroot: Path, *, keep: bool, left: list[str], sink: EventSink
) -> bool:
    """Stop (or, with --keep, detach) the lab server and remove the work files; whether it was kept."""
    kept = False
    if lab is not None:
        if keep:
            try:
                lab.detach()
                kept = True
            except Exception as exc:  # keeping is a courtesy: the cleanup must still happen
                sink(Message(f"could not keep the lab server running: {exc}", level=Level.WARNING))
        if not kept:
            try:
                lab.stop()
            except Exception as exc:
                sink(Message(f"could not stop the lab server: {exc}", level=Level.WARNING))
            if not getattr(lab, "image", "") and lab.root.exists():
                left.append(str(lab.root))
    if options.workdir is None:
        shutil.rmtree(workroot, ignore_errors=True)
        if workroot.exists():
            left.append(str(workroot))
    elif not options.migrate.get("keep_dumps"):
        shutil.rmtree(workroot / "migrate" / "dumps", ignore_errors=True)
    for path in left:
        sink(Message(f"left behind: {path}", level=Level.WARNING))
    return kept


def _source_version(mopts: MigrateOptions) -> str:
    from pgshift.catalog import cluster
    from pgshift.catalog.session import session

    with session(mopts.source) as conn:
        return str(cluster.server_info(conn).version)


# --- check -----------------------------------------------------------------------------------------


def _check(mopts: MigrateOptions, workroot: Path, sink: EventSink) -> Any:
    """pgshift check of the move, its schema trial on the lab server (migrate's preflight's call)."""
    from pgshift.catalog.inventory_check import ObjectFilters
    from pgshift.checks import run_check
    from pgshift.migrate.planner import restore_object_flags

    return run_check(
        mopts.source,
        mopts.target,
        databases=list(mopts.databases) or None,
        exclude_databases=mopts.exclude_databases,
        renames=dict(mopts.renames),
        filters=ObjectFilters(mopts.schemas, mopts.exclude_schemas, mopts.tables, mopts.exclude_tables),
        jobs=mopts.jobs,
        pg_bins=mopts.pg_bins,
        sink=sink,
        work_dir=workroot,
        trial=True,
        remedy_names=mopts.remedies,
        exclude_objects=mopts.exclude_objects,
        restore_args=tuple(f for f in restore_object_flags(mopts) if f != "--no-tablespaces"),
    )


def _refusals(report: Any, mopts: MigrateOptions) -> tuple[Refusal, ...]:
    """The blockers migrate's preflight would refuse the move for (not accepted, not its own call)."""
    from pgshift.migrate.preflight import HANDLED_BY_MIGRATE

    return tuple(
        Refusal(f.rule_id, f.database, f.object, f.message, f.fix, f.refused_by_trial)
        for f in report.blockers
        if f.rule_id not in HANDLED_BY_MIGRATE and f.rule_id not in mopts.accept
    )


# --- figures ---------------------------------------------------------------------------------------


def _figures(migration: MigrationResult | None, mopts: MigrateOptions) -> list[DatabaseFigures]:
    """Per database: status and phase times, from the result, or from the journal after a failure."""
    if migration is not None:
        return [
            DatabaseFigures(d.source, d.target, d.status, dict(d.seconds), None, d.size_bytes, d.error)
            for d in migration.databases
            if d.status != "skipped"
        ]
    workdir = mopts.workdir
    if workdir is None or not (workdir / JOURNAL).exists():
        return []  # it failed before anything was made (the globals, the plan)
    journal = Journal.load(workdir)
    out = []
    for name in journal.databases:
        record = journal.database(name)
        if record is None:
            continue
        status = "done" if record.finished else ("failed" if record.error else "pending")
        out.append(DatabaseFigures(record.source, record.target, status, record.seconds(), None, None, record.error))
    return out


def _measured(lab: LabServer, figures: list[DatabaseFigures], sampled: list[SampledTable]) -> list[DatabaseFigures]:
    from dataclasses import replace

    from pgshift.catalog.sampling import database_sizes
    from pgshift.catalog.session import session

    with session(lab.endpoint("target")) as conn:
        sizes = database_sizes(conn, [d.target for d in figures])
    out = []
    for d in figures:
        size = sizes.get(d.target)
        tables = [t for t in sampled if t.database == d.source]
        if not tables:
            out.append(replace(d, size_bytes=size))
            continue
        measured = sum(t.total_bytes for t in tables)
        scaled = sum(t.estimated_bytes for t in tables)
        out.append(
            replace(
                d,
                size_bytes=size,
                sample_seconds=round(sum(t.seconds for t in tables), 3),
                estimated_data_seconds=round(sum(t.seconds * t.scale for t in tables), 3),
                estimated_bytes=(size - measured + scaled) if size is not None else None,
            )
        )
    return out
