"""``pgshift backup SOURCE --to DIR``: globals plus one archive per database, as a plan of steps.

The plan (``plan_backup``; ``--dry-run`` prints it) is migrate's kind of plan: the globals recorded
(``pg_dumpall --globals-only``, and the role and database facts restore applies itself), then for
each database its rows counted in an exported snapshot (a REPEATABLE READ READ ONLY transaction held
open, ``pg_export_snapshot()``) and ``pg_dump --snapshot=`` of that very snapshot, then the seal: every
file made private and checksummed, the manifest written last and the set renamed from
``NAME.partial`` to ``NAME``; then ``--keep N`` rotation. The steps run through migrate's step
wrapper and journal (backup/runner.py), the journal and log inside the set.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import psycopg

from pgshift import __version__, paths
from pgshift.backup import inventory, sets
from pgshift.backup import remedies as set_remedies
from pgshift.backup.runner import run_steps
from pgshift.catalog import backup as backup_sql
from pgshift.catalog import cluster, ddl, inventory_check
from pgshift.catalog.session import query_failed, resolve, session
from pgshift.checks.databases import choose_databases, refuses_connections
from pgshift.conninfo import Endpoint
from pgshift.errors import PreflightRefused, StepFailed, UnknownDatabase, UsageError, WorkdirFull
from pgshift.events import EventSink, Level, Message, discard
from pgshift.migrate import steps
from pgshift.migrate.journal import Journal
from pgshift.migrate.options import MigrateOptions
from pgshift.migrate.plan import DatabasePlan, ProgramCall, ServerSummary, Step
from pgshift.migrate.planner import SNAPSHOT_ARG, command_display
from pgshift.migrate.preflight import Facts, dump_compression
from pgshift.migrate.workdir import RunLog, WorkdirLock, dump_dir_name
from pgshift.toolchain.discover import discover
from pgshift.toolchain.select import ClientChoice, select_client
from pgshift.units import human_size
from pgshift.verify.compare import object_selected
from pgshift.verify.patterns import Filter
from pgshift.version import DUMP_COMPRESSIONS

ArchiveFormat = Literal["custom", "directory", "plain"]
FORMATS: tuple[ArchiveFormat, ...] = ("custom", "directory", "plain")
_SUFFIX = {"custom": ".dump", "directory": "", "plain": ".sql"}
PLAN_KIND = "pgshift-backup-plan"
RESULT_KIND = "pgshift-backup-result"


@dataclass(frozen=True)
class BackupOptions:
    source: Endpoint
    to: Path
    format: ArchiveFormat = "custom"
    jobs: int = 2
    compress: str = "auto"
    keep: int | None = None
    databases: tuple[str, ...] = ()  # empty: every database that accepts connections, postgres included
    exclude_databases: tuple[str, ...] = ()
    schemas: tuple[str, ...] = ()
    exclude_schemas: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    exclude_tables: tuple[str, ...] = ()
    globals: bool = True
    no_role_passwords: bool = False
    pg_bins: tuple[Path, ...] = ()
    docker: bool = False
    docker_image: str | None = None
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise UsageError(f"--format must be custom, directory or plain, not {self.format!r}")
        if self.jobs < 1:
            raise UsageError(f"--jobs must be at least 1, not {self.jobs}")
        if self.keep is not None and self.keep < 1:
            raise UsageError(f"--keep must be at least 1, not {self.keep}", hint="--keep 7 keeps the newest 7 sets")
        method, colon, level = self.compress.partition(":")
        if method not in ("auto", *DUMP_COMPRESSIONS) or (colon and not (level.isdigit() and method != "auto")):
            raise UsageError(
                f"--compress {self.compress}: not a compression",
                hint="give auto, none, gzip, lz4 or zstd, optionally with a level (gzip:6, zstd:3)",
            )
        if self.format == "plain" and method not in ("auto", "none"):
            raise UsageError(
                f"--format plain is SQL to read and to feed to psql: it is written uncompressed, not {self.compress}",
                hint="use --format custom (compressed, and restorable selectively) or drop --compress",
            )

    @property
    def filters(self) -> Filter:
        return Filter.build(self.schemas, self.exclude_schemas, self.tables, self.exclude_tables)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source.display(),
            "to": str(self.to),
            "format": self.format,
            "jobs": self.jobs,
            "compress": self.compress,
            "keep": self.keep,
            "databases": list(self.databases),
            "exclude_databases": list(self.exclude_databases),
            "schemas": list(self.schemas),
            "exclude_schemas": list(self.exclude_schemas),
            "tables": list(self.tables),
            "exclude_tables": list(self.exclude_tables),
            "globals": self.globals,
            "no_role_passwords": self.no_role_passwords,
        }


@dataclass(frozen=True)
class BackupPlan:
    options: BackupOptions
    source: ServerSummary
    client: ClientChoice
    name: str
    partial: Path  # where the set is written
    path: Path  # what it is called once complete
    databases: tuple[DatabasePlan, ...]
    steps: tuple[Step, ...]
    compress: str  # pg_dump's --compress
    parallel_databases: int
    jobs_per_database: int
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "partial": str(self.partial),
            "source": self.source.as_dict(),
            "client": self.client.as_dict(),
            "databases": [d.source for d in self.databases],
            "steps": [s.as_dict() for s in self.steps],
            "compress": self.compress,
            "parallel_databases": self.parallel_databases,
            "jobs_per_database": self.jobs_per_database,
            "warnings": list(self.warnings),
            "options": self.options.as_dict(),
        }


@dataclass(frozen=True)
class BackupResult:
    ok: bool
    name: str
    path: Path
    seconds: float
    size_bytes: int
    databases: tuple[Mapping[str, Any], ...]
    removed: tuple[str, ...] = ()
    removed_partial: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    client: str = ""
    server_version: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "name": self.name,
            "path": str(self.path),
            "seconds": round(self.seconds, 3),
            "size_bytes": self.size_bytes,
            "server_version": self.server_version,
            "client": self.client,
            "databases": [dict(d) for d in self.databases],
            "removed": list(self.removed),
            "removed_partial": list(self.removed_partial),
            "warnings": list(self.warnings),
        }


@dataclass
class _Prepared:
    plan: BackupPlan
    facts: Facts
    globals_doc: dict[str, Any] = field(repr=False)
    db_facts: dict[str, dict[str, Any]]
    check_doc: dict[str, Any] = field(repr=False)


# --- preflight and plan ------------------------------------------------------------------------------


def backup_client(pg_bins: tuple[Path, ...], docker: bool, docker_image: str | None, version: Any) -> ClientChoice:
    """The client for dumping ``version``: its own major when installed, else the closest newer one."""
    from pgshift.toolchain.docker import client_options

    choice = select_client(
        discover(pg_bins),
        version,
        version,
        need=("pg_dump", "pg_dumpall", "pg_restore"),
        **client_options(docker=docker, docker_image=docker_image),
    )
    # A newer pg_dump than the server is the rule for a backup (pg_dump 14 dumps 11), not a hazard:
    # the set's restore picks a pg_restore at least as new.
    reason = (
        "same major as the source"
        if choice.major == version.major
        else f"no client of {version.major_label} is installed; the closest newer one dumps it"
    )
    return ClientChoice(
        choice.version,
        reason if choice.docker_image is None else choice.reason,
        installation=choice.installation,
        docker_image=choice.docker_image,
        dump_flags=choice.dump_flags,
    )


def _prepare(options: BackupOptions, sink: EventSink) -> _Prepared:
    paths.work_directory(options.to, "--to")
    source = resolve(options.source)
    warnings: list[str] = []
    try:
        with session(source) as conn:
            info = cluster.server_info(conn)
            client = backup_client(options.pg_bins, options.docker, options.docker_image, info.version)
            for program in ("pg_dump", "pg_dumpall"):
                source.require_client_support(client.major, program)
            if options.format == "plain":
                compress = "none" if client.major >= 16 else "0"
            else:
                compress = dump_compression(options.compress, client)
            found = cluster.list_databases(conn)
            chosen = _select(options, found, warnings, sink)
            globals_doc = _globals_facts(options, conn, warnings, sink) if options.globals else {}
            usage = ddl.connection_usage(conn)
            cluster_inventory = inventory_check.cluster_inventory(conn, source.display())
        db_facts: dict[str, dict[str, Any]] = {}
        checked = []
        for db in chosen:
            with session(source, db.name) as dconn:
                db_facts[db.name] = {
                    "properties": db.as_dict(),
                    "grants": [g.as_dict() for g in ddl.database_grants(dconn, db.name)],
                    "extensions": [e.as_dict() for e in cluster.list_extensions(dconn)],
                }
                checked.append(inventory_check.database_inventory(dconn, db.name))
        # What check's rules need of the source, for restore to judge a target by (backup/inventory.py).
        check_doc = inventory.record(cluster_inventory, checked)
    except psycopg.Error as exc:
        raise query_failed("the backup could not read the source", exc) from None
    parallel = max(1, min(options.jobs, len(chosen)))
    per_db = max(1, options.jobs // parallel) if options.format == "directory" else 1
    # Each database holds its snapshot session and pg_dump's (plus its workers with -j).
    need = parallel * (per_db + 2) + 1
    free = usage.available(info.is_superuser)
    if free < need:
        raise PreflightRefused(
            f"the source has {free} free connection(s) (max_connections {usage.max_connections}) but --jobs "
            f"{options.jobs} needs {need}",
            hint="lower --jobs or free connections on the source",
        )
    if not info.is_superuser:
        text = (
            f"the source role {source.user!r} is not a superuser: role passwords, subscriptions and some "
            "ownerships may not be backed up"
        )
        warnings.append(text)
        sink(Message(text, level=Level.WARNING))
    name = sets.new_set_name(options.to)
    partial = options.to / (name + sets.PARTIAL)
    plans = tuple(
        DatabasePlan(
            source=db.name,
            target=db.name,
            action="migrate",
            reason="backed up",
            size_bytes=db.size_bytes,
            owner=db.owner,
            encoding=db.encoding,
            collate=db.collate,
            ctype=db.ctype,
            locale_provider=db.locale_provider,
            icu_locale=db.icu_locale,
            tables=0,
        )
        for db in chosen
    )
    # migrate's runner state wants a source and a target: a backup has only the source, and none of
    # its steps runs anything on a target (every program runs against the source).
    facts = Facts(
        options=MigrateOptions(source=options.source, target=options.source, jobs=options.jobs, verify=False),
        source=source,
        target=source,
        source_info=info,
        target_info=info,
        client=client,
        databases=list(plans),
        source_dbs={d.name: d for d in chosen},
        target_db_names=set(),
        warnings=warnings,
        parallel_databases=parallel,
        jobs_per_database=per_db,
    )
    facts.dump_compress = compress
    summary = ServerSummary(
        "source", source.display(), str(info.version), info.version.num, info.current_user, info.is_superuser
    )
    plan = BackupPlan(
        options=options,
        source=summary,
        client=client,
        name=name,
        partial=partial,
        path=options.to / name,
        databases=plans,
        steps=tuple(_steps(options, facts, partial, name)),
        compress=compress,
        parallel_databases=parallel,
        jobs_per_database=per_db,
        warnings=tuple(warnings),
    )
    return _Prepared(plan, facts, globals_doc, db_facts, check_doc)


def _select(
    options: BackupOptions, found: list[cluster.DatabaseInfo], warnings: list[str], sink: EventSink
) -> list[cluster.DatabaseInfo]:
    """The databases of the set, chosen as check and migrate choose them (checks.databases): one that
    refuses connections is left out with a warning when only the default selection takes it, and
    refuses the backup (exit 2) when named. Unlike a move, a backup keeps postgres by default (as
    pg_dumpall does: DBAs keep things there)."""
    by_name = {d.name: d for d in found}
    unknown = [n for n in options.exclude_databases if n not in by_name]
    if unknown:
        raise UnknownDatabase(unknown, (d.name for d in found if not d.is_template))
    chosen, left_out = choose_databases(found, options.databases or None, options.exclude_databases)
    postgres = by_name.get("postgres")
    if not options.databases and postgres is not None and postgres.name not in options.exclude_databases:
        why = refuses_connections(postgres)
        if why is None:
            chosen = [d for d in found if d in chosen or d.name == "postgres"]
        else:
            left_out = {"postgres": why, **left_out}
    for name, why in left_out.items():
        warnings.append(f"database {name!r} {why} and cannot be dumped; it is left out")
        sink(Message(warnings[-1], level=Level.WARNING))
    if not chosen:
        raise PreflightRefused("there is no database to back up", hint="name databases with --database")
    return chosen


def _globals_facts(options: BackupOptions, conn: Any, warnings: list[str], sink: EventSink) -> dict[str, Any]:
    """Roles, memberships, tablespaces and their grants: what restore applies itself (globals.json)."""
    version = cluster.server_info(conn).version
    passwords: dict[str, str] = {}
    if not options.no_role_passwords:
        if cluster.can_read_authid(conn):
            passwords = ddl.role_passwords(conn)
        else:
            text = "the source role may not read pg_authid: role passwords are not in the set"
            warnings.append(text)
            sink(Message(text, level=Level.WARNING))
    spaces = []
    for ts in cluster.list_tablespaces(conn):
        spaces.append({**ts.as_dict(), "grants": [g.as_dict() for g in ddl.tablespace_grants(conn, ts.name)]})
    return {
        "kind": "pgshift-backup-globals",
        "server_version": str(version),
        "bootstrap_superuser": ddl.bootstrap_superuser(conn),
        "roles": [r.as_dict() for r in cluster.list_roles(conn)],
        "memberships": [m.as_dict() for m in cluster.list_memberships(conn)],
        "tablespaces": spaces,
        "parameter_grants": [[name, g.as_dict()] for name, g in ddl.parameter_grants(conn)],
        # Password hashes, as pg_dumpall's globals.sql beside it has them: the set's files are 0600.
        "passwords": passwords,
    }


def archive_name(index: int, database: str, fmt: ArchiveFormat) -> str:
    return dump_dir_name(index, database) + _SUFFIX[fmt]


def _program(facts: Facts, program: str, args: list[str]) -> ProgramCall:
    return ProgramCall(program, tuple(args), "source", command_display(facts, program, args))


def _steps(options: BackupOptions, facts: Facts, partial: Path, name: str) -> list[Step]:
    out: list[Step] = []
    if options.globals:
        args = ["--globals-only", f"--file={partial / sets.GLOBALS_SQL}", "--no-password"]
        if options.no_role_passwords:
            args.append("--no-role-passwords")
        args.append(f"--dbname={facts.source.child_conninfo()}")
        out.append(
            Step(
                "globals:record",
                "record-globals",
                "globals: pg_dumpall --globals-only",
                program=_program(facts, "pg_dumpall", args),
            )
        )
        out.append(
            Step(
                "globals:facts",
                "record-facts",
                f"globals: roles, memberships and tablespaces as facts ({sets.GLOBALS_FACTS})",
                after=("globals:record",),
            )
        )
    before = tuple(s.id for s in out)
    for index, dbp in enumerate(facts.databases, start=1):
        archive = partial / "dumps" / archive_name(index, dbp.source, options.format)
        args = [
            f"--format={options.format}",
            *([f"--jobs={facts.jobs_per_database}"] if options.format == "directory" else []),
            f"--file={archive}",
            "--no-password",
            "--verbose",
            SNAPSHOT_ARG,
            f"--compress={facts.dump_compress}",
            *(f"--schema={p}" for p in options.schemas),
            *(f"--exclude-schema={p}" for p in options.exclude_schemas),
            *(f"--table={p}" for p in options.tables),
            *(f"--exclude-table={p}" for p in options.exclude_tables),
            *facts.client.dump_flags,
            f"--dbname={facts.source.child_conninfo(dbp.source)}",
        ]
        out.append(
            Step(
                f"db:{dbp.source}:snapshot-counts",
                "snapshot-counts",
                f"{dbp.source}: export a snapshot, count every table's rows in it",
                database=dbp.source,
                after=before,
            )
        )
        out.append(
            Step(
                f"db:{dbp.source}:dump",
                "dump",
                f"{dbp.source}: pg_dump --format={options.format} ({human_size(dbp.size_bytes)}) in that snapshot",
                database=dbp.source,
                program=_program(facts, "pg_dump", args),
                after=(f"db:{dbp.source}:snapshot-counts",),
            )
        )
    out.append(
        Step(
            "seal",
            "seal-set",
            f"seal: files 0600, SHA-256 of each, {sets.MANIFEST} written last, {partial.name} renamed to {name}",
            after=tuple(f"db:{d.source}:dump" for d in facts.databases),
        )
    )
    if options.keep is not None:
        out.append(
            Step(
                "rotate",
                "rotate-sets",
                f"rotate: keep the newest {options.keep} complete set(s) in {options.to}, remove older ones and "
                "partial sets no run holds",
                after=("seal",),
            )
        )
    return out


def plan_backup(options: BackupOptions, *, sink: EventSink = discard) -> BackupPlan:
    """Read the source, decide, plan: nothing is written."""
    return _prepare(options, sink).plan


# --- executors ---------------------------------------------------------------------------------------


def _snapshot_counts(run: steps.Run, step: Step, filters: Filter) -> None:
    """Rows of every table the dump holds, counted in the snapshot pg_dump then reads.

    The tables are listed by a query in the snapshot's own transaction, so a table created after it
    is not listed (pg_dump does not see it either); the counts' locks stay until the dump is done.
    """
    assert step.database is not None
    with run.step(step) as artifacts:
        snap = run.snapshot(step.database)
        assert snap is not None
        # The counts lock every table of the database in one transaction, as pg_dump does: a full
        # lock table is "out of shared memory", which run.step explains (catalog.session.failure_hint).
        counted = backup_sql.counted_rows(snap.conn, filters.table_ok, between=run.check_cancel)
        objects = backup_sql.object_counts(snap.conn, step.database, lambda obj: object_selected(obj, filters))
        remedy_facts = set_remedies.record(snap.conn)
        artifacts.update(
            snapshot=snap.id,
            snapshot_at=snap.taken_at,
            rows=dict(sorted(counted.items())),
            objects=dict(sorted(objects.items())),
            # What restore --remedy needs of the source, in the catalog state the dump sees.
            remedy_facts=remedy_facts,
        )
        run.log.write("info", f"{step.database}: {len(counted)} table(s), {sum(counted.values())} row(s) in {snap.id}")


def _record_facts(run: steps.Run, step: Step, doc: Mapping[str, Any]) -> None:
    with run.step(step) as artifacts:
        sets.write_json_atomically(run.workdir / sets.GLOBALS_FACTS, doc)
        artifacts["roles"] = len(doc.get("roles", ()))


def _seal(run: steps.Run, step: Step, prepared: _Prepared, started: str) -> None:
    plan = prepared.plan
    root = plan.partial
    with run.step(step) as artifacts:
        databases = []
        for index, dbp in enumerate(plan.databases, start=1):
            record = run.journal.database(dbp.source)
            assert record is not None
            counts = record.step("snapshot-counts")
            dump = record.step("dump")
            databases.append(
                {
                    "name": dbp.source,
                    "archive": f"dumps/{archive_name(index, dbp.source, plan.options.format)}",
                    **prepared.db_facts[dbp.source],
                    "snapshot": counts.artifacts.get("snapshot"),
                    "snapshot_at": counts.artifacts.get("snapshot_at"),
                    "rows": counts.artifacts.get("rows", {}),
                    "objects": counts.artifacts.get("objects", {}),
                    set_remedies.FACTS: counts.artifacts.get(set_remedies.FACTS),
                    "seconds": round(counts.seconds + dump.seconds, 3),
                }
            )
        sets.make_private(root)
        files = sets.describe_files(root)
        for db in databases:
            archive = db["archive"]
            db["archive_bytes"] = sum(f.size for f in files if f.path == archive or f.path.startswith(archive + "/"))
        client = plan.client
        manifest = {
            "kind": sets.MANIFEST_KIND,
            "schema_version": sets.SCHEMA_VERSION,
            "name": plan.name,
            "pgshift_version": __version__,
            "started": started,
            "ended": sets.now(),
            "server": {
                "version": plan.source.version,
                "version_num": plan.source.version_num,
                "major": prepared.facts.source_info.version.major_label,
                "address": plan.source.display,
                "user": plan.source.user,
                "system_identifier": prepared.facts.source_info.system_identifier,
            },
            "client": {
                "version": str(client.version),
                "major": client.version.major_label,
                "major_num": client.major,
                "where": client.where,
                "reason": client.reason,
            },
            "options": {**plan.options.as_dict(), "compress": plan.compress},
            "globals": (
                {
                    "sql": sets.GLOBALS_SQL,
                    "facts": sets.GLOBALS_FACTS,
                    "roles": len(prepared.globals_doc.get("roles", ())),
                    "memberships": len(prepared.globals_doc.get("memberships", ())),
                    "tablespaces": len(prepared.globals_doc.get("tablespaces", ())),
                }
                if plan.options.globals
                else None
            ),
            "databases": databases,
            "check": prepared.check_doc,
            "files": [f.as_dict() for f in files],
        }
        sets.write_json_atomically(root / sets.MANIFEST, manifest)
        # The rename is what makes the set complete: before it, whatever else exists, it is partial.
        os.replace(root, plan.path)
        sets.fsync_dir(plan.path.parent)
        run.workdir = plan.path
        artifacts["files"] = len(files)
        artifacts["bytes"] = sum(f.size for f in files)


def _rotate(run: steps.Run, step: Step, plan: BackupPlan, outcome: dict[str, list[str]]) -> None:
    assert plan.options.keep is not None
    with run.step(step) as artifacts:
        removed, stale = sets.rotate(plan.options.to, plan.options.keep, just_written=plan.name)
        for name in removed:
            run.sink(Message(f"removed the older set {name} (--keep {plan.options.keep})", level=Level.INFO))
        for name in stale:
            run.sink(Message(f"removed the incomplete set {name}", level=Level.INFO))
        outcome["removed"], outcome["stale"] = removed, stale
        artifacts.update(removed=removed, stale=stale)


def _disk_full(exc: StepFailed | WorkdirFull, plan: BackupPlan, journal: Journal) -> WorkdirFull | None:
    """The backup directory's file system full (or failing), when that is what the backup died of.

    Told by pgshift's own writers, or by pg_dump/pg_dumpall, which write the set. The archives cut
    short are removed (the set stays partial and is never restored), so the space they held is free
    again for the user's count; what is still needed is the size of the databases not dumped (an upper
    bound: the archives are compressed).
    """
    full = exc if isinstance(exc, WorkdirFull) else None
    if not isinstance(exc, WorkdirFull) and exc.program in ("pg_dump", "pg_dumpall"):
        full = paths.refused_in_output(f"{exc.message}\n{exc.detail or ''}", plan.options.to)
    if full is None:
        return None
    needed = 0
    for index, dbp in enumerate(plan.databases, start=1):
        if journal.done(f"db:{dbp.source}:dump"):
            continue
        archive = plan.partial / "dumps" / archive_name(index, dbp.source, plan.options.format)
        if archive.is_dir():
            shutil.rmtree(archive, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                archive.unlink()
        needed += dbp.size_bytes or 0
    out = WorkdirFull(str(plan.options.to), reason=full.reason, free=None)
    out.with_needed(needed or None, paths.free_bytes(plan.options.to))
    out.message = out.message.replace("the work directory", "the backup directory", 1)
    out.hint = (
        f"the incomplete set {plan.partial.name} is never restored (the next backup with --keep removes it); free "
        "space on that file system (keep fewer sets: --keep N) or back up to a larger one"
    )
    return out


# --- run ---------------------------------------------------------------------------------------------


def run_backup(options: BackupOptions, *, sink: EventSink = discard) -> BackupResult:
    """Preflight, plan, run; the set is complete only if this returns (see the module docs)."""
    t0 = time.monotonic()
    prepared = _prepare(options, sink)
    plan = prepared.plan
    started = sets.now()
    if not options.to.exists():
        paths.private_dir(options.to)
    paths.private_dir(plan.partial)
    lock = WorkdirLock(plan.partial)
    lock.acquire()
    journal = Journal.create(
        plan.partial,
        {
            "run_id": plan.name,
            "command": "backup",
            "source": options.source.display(),
            "target": "",
            "source_version": plan.source.version,
            "options": options.as_dict(),
            "client": plan.client.as_dict(),
            "plan": [s.id for s in plan.steps],
        },
    )
    log = RunLog(plan.partial / sets.LOG)
    try:
        for index, dbp in enumerate(plan.databases, start=1):
            journal.add_database(dbp.source, dbp.source, archive_name(index, dbp.source, options.format))
        log.write("info", f"pgshift backup: {plan.source.display} -> {plan.path}")
        log.write("info", f"client: {plan.client.describe()}")
        run = steps.Run(prepared.facts, plan.partial, journal, log, log.sink(sink))
        outcome: dict[str, list[str]] = {"removed": [], "stale": []}
        filters = options.filters
        own = {
            "snapshot-counts": lambda r, s: _snapshot_counts(r, s, filters),
            "record-facts": lambda r, s: _record_facts(r, s, prepared.globals_doc),
            "seal-set": lambda r, s: _seal(r, s, prepared, started),
            "rotate-sets": lambda r, s: _rotate(r, s, plan, outcome),
        }
        try:
            run_steps(
                run,
                plan.steps,
                own=own,
                parallel=plan.parallel_databases,
                resume_hint=f"the incomplete set {plan.partial} is never restored; run the backup again",
            )
        except (StepFailed, WorkdirFull) as exc:
            full = _disk_full(exc, plan, journal)
            if full is None:
                raise
            raise full from None
        manifest = sets.read_manifest(plan.path)
        return BackupResult(
            ok=True,
            name=plan.name,
            path=plan.path,
            seconds=time.monotonic() - t0,
            size_bytes=sum(int(f["size"]) for f in manifest["files"]),
            databases=tuple(
                {
                    "name": d["name"],
                    "archive": d["archive"],
                    "tables": len(d["rows"]),
                    "rows": sum(d["rows"].values()),
                    "archive_bytes": d["archive_bytes"],
                    "seconds": d["seconds"],
                }
                for d in manifest["databases"]
            ),
            removed=tuple(outcome["removed"]),
            removed_partial=tuple(outcome["stale"]),
            warnings=tuple(dict.fromkeys([*plan.warnings, *run.warnings])),
            client=plan.client.describe(),
            server_version=plan.source.version,
        )
    finally:
        journal.close()
        log.close()
        lock.release()
        with contextlib.suppress(OSError):
            (plan.path / ".lock").unlink()
