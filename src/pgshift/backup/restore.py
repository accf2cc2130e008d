"""``pgshift restore SET TARGET``: migrate's plan with the dump steps replaced by the set's archives.

The set is checked against its manifest before anything else (a changed or missing file refuses
the restore, naming it). The preflight then asks the target what migrate's preflight asks it: a
primary, not older than the set's server (unless ``--allow-downgrade``), a pg_restore at least as
new as the pg_dump that wrote the set, the right to create roles and databases, the extensions the
databases use, free connections, and no database of the restore already there (unless empty, or
``--clean`` / ``--into-existing``). The plan's statements are made by migrate's planner from the
set's recorded facts (roles, memberships, tablespaces, each database's properties, settings and
grants): roles, then memberships and tablespaces, then each database created from template0 with
its properties and restored from its archive, in parallel, with role settings, ANALYZE and the
database's comment last. It runs through migrate's step wrapper and journal; ``--resume WORKDIR``
runs the plan minus what the journal records as done (a database cut short that this run created
is dropped and restored again).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import psycopg

from pgshift.archive import parse_listing, trigger_ids
from pgshift.archive import use_list as archive_use_list
from pgshift.backup import inventory, sets
from pgshift.backup import remedies as set_remedies
from pgshift.backup.runner import run_steps
from pgshift.catalog import cluster, ddl
from pgshift.catalog import remedies as remedy_catalog
from pgshift.catalog.cluster import DatabaseInfo, Membership, RoleInfo, ServerInfo, TablespaceInfo
from pgshift.catalog.ddl import Grant
from pgshift.catalog.session import query_failed, resolve, session
from pgshift.conninfo import Endpoint
from pgshift.errors import PreflightRefused, StepFailed, ToolchainError, UnknownDatabase, UsageError
from pgshift.events import EventSink, Level, Message, StepProgress, discard
from pgshift.migrate import steps
from pgshift.migrate.journal import Journal, killed_attempt
from pgshift.migrate.options import MigrateOptions
from pgshift.migrate.plan import (
    Action,
    AppliedRemedy,
    DatabaseAction,
    DatabasePlan,
    GlobalsPlan,
    ProgramCall,
    RolePlan,
    ServerSummary,
    Step,
)
from pgshift.migrate.planner import (
    command_display,
    data_use_list,
    database_actions,
    drop_actions,
    final_comment_action,
    globals_steps,
    maintenance_db,
    psql_script_args,
    remedied_script,
    remedy_use_list,
    restore_args,
    restore_object_flags,
    role_database_actions,
    schema_script,
    script_args,
    toc_listing,
    tolerate_transaction_timeout,
    triggers_use_list,
)
from pgshift.migrate.preflight import Facts
from pgshift.migrate.remedies import DatabaseRemedies
from pgshift.migrate.remedies import database_settings as remedy_database_settings
from pgshift.migrate.workdir import RunLog, WorkdirLock, check_new_workdir, default_workdir, make_private, new_run_id
from pgshift.process import REDACTED
from pgshift.toolchain.clients import run_client
from pgshift.toolchain.discover import discover
from pgshift.toolchain.select import ClientChoice, select_client
from pgshift.units import human_size
from pgshift.version import PgVersion, check_direction, major_label, major_order, restore_refusal

PLAN_KIND = "pgshift-restore-plan"
RESULT_KIND = "pgshift-restore-result"
LOG = "restore.log"


@dataclass(frozen=True)
class RestoreOptions:
    set_path: Path
    target: Endpoint
    databases: tuple[str, ...] = ()  # empty: every database of the set
    exclude_databases: tuple[str, ...] = ()
    renames: Mapping[str, str] = field(default_factory=dict)
    schemas: tuple[str, ...] = ()  # pg_restore -n
    tables: tuple[str, ...] = ()  # pg_restore -t
    use_list: Path | None = None  # pg_restore -L: an edited table of contents (one database)
    clean: bool = False  # pg_restore --clean: drop what is restored first, in a database that exists
    if_exists: bool = False  # with --clean: DROP … IF EXISTS
    into_existing: bool = False  # restore into a database that exists (one table dropped by mistake)
    jobs: int = 2
    globals: bool = True
    no_role_passwords: bool = False
    no_owner: bool = False
    no_privileges: bool = False
    no_tablespaces: bool = False
    tablespace_map: Mapping[str, str] = field(default_factory=dict)
    analyze: bool = True
    allow_downgrade: bool = False
    check: bool = True  # check's rules on the target, from the source inventory the set recorded
    accept: tuple[str, ...] = ()  # check rule ids whose blockers are overridden
    remedies: tuple[str, ...] = ()  # migrate's remedies, from the facts the set recorded (backup/remedies.py)
    pg_bins: tuple[Path, ...] = ()
    workdir: Path | None = None
    resume: bool = False
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise UsageError(f"--jobs must be at least 1, not {self.jobs}")
        if self.if_exists and not self.clean:
            raise UsageError("--if-exists goes with --clean", hint="pgshift restore SET TARGET --clean --if-exists")
        if self.resume and self.workdir is None:
            raise UsageError("--resume needs the work directory of the restore to continue")
        from pgshift.checks.rules import ALL_RULES
        from pgshift.migrate.remedies import check_remedy_names

        check_remedy_names(self.remedies)

        unknown = sorted(set(self.accept) - {r.id for r in ALL_RULES})
        if unknown:
            raise UsageError(
                f"--accept {unknown[0]}: no check rule has that id",
                hint="give the id a refusal names (the rules are listed in docs/check.md)",
            )

    @property
    def selective(self) -> bool:
        return bool(self.schemas or self.tables or self.use_list)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "target":
                value = self.target.display()
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = [str(v) for v in value]
            elif isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_record(cls, data: Mapping[str, Any], target: Endpoint | None, **changes: Any) -> RestoreOptions:
        """The options a journal recorded (``as_dict``), with the target given anew or from the record."""
        if target is None:
            target = Endpoint.parse(str(data["target"]), "target")
            if target.password == REDACTED:
                target = target.with_params(password=None)
        values: dict[str, Any] = {"target": target}
        for f in fields(cls):
            if f.name == "target" or f.name not in data:
                continue
            value = data[f.name]
            if f.name in ("set_path", "workdir", "use_list"):
                value = Path(value) if value else None
            elif f.name == "pg_bins":
                value = tuple(Path(v) for v in value)
            elif isinstance(value, list):
                value = tuple(value)
            values[f.name] = value
        values.update(changes)
        return cls(**values)


@dataclass(frozen=True)
class RestorePlan:
    options: RestoreOptions
    set_name: str
    set_version: str
    target: ServerSummary
    client: ClientChoice
    databases: tuple[DatabasePlan, ...]
    steps: tuple[Step, ...]
    workdir: Path
    parallel_databases: int
    jobs_per_database: int
    warnings: tuple[str, ...] = ()
    resumed: bool = False
    run_id: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "set": str(self.options.set_path),
            "set_name": self.set_name,
            "set_version": self.set_version,
            "target": self.target.as_dict(),
            "client": self.client.as_dict(),
            "databases": [d.as_dict() for d in self.databases],
            "steps": [s.as_dict() for s in self.steps],
            "workdir": str(self.workdir),
            "parallel_databases": self.parallel_databases,
            "jobs_per_database": self.jobs_per_database,
            "warnings": list(self.warnings),
            "resumed": self.resumed,
            "options": self.options.as_dict(),
        }


@dataclass(frozen=True)
class RestoreResult:
    ok: bool
    workdir: Path
    seconds: float
    databases: tuple[Mapping[str, Any], ...]
    roles_created: tuple[str, ...]
    warnings: tuple[str, ...]
    client: str
    target_version: str
    remedies: tuple[AppliedRemedy, ...] = ()  # what --remedy changed on the target, object by object

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "workdir": str(self.workdir),
            "seconds": round(self.seconds, 3),
            "databases": [dict(d) for d in self.databases],
            "roles_created": list(self.roles_created),
            "warnings": list(self.warnings),
            "client": self.client,
            "target_version": self.target_version,
            "remedies": [r.as_dict() for r in self.remedies],
        }


@dataclass
class _Prepared:
    plan: RestorePlan
    facts: Facts
    bset: sets.BackupSet
    journal: Journal | None
    created_by_run: dict[str, bool]  # per target database: whether the restore creates it


# --- the set's facts as the catalog layer's records ---------------------------------------------------


def _role(d: Mapping[str, Any]) -> RoleInfo:
    values = {f.name: d[f.name] for f in fields(RoleInfo) if f.name in d}
    values["settings"] = tuple((db, text) for db, text in d.get("settings", ()))
    return RoleInfo(**values)


def _database(d: Mapping[str, Any]) -> DatabaseInfo:
    values = {f.name: d[f.name] for f in fields(DatabaseInfo) if f.name in d}
    values["acl"] = tuple(d.get("acl", ()))
    values["settings"] = tuple(d.get("settings", ()))
    return DatabaseInfo(**values)


def _tablespace(d: Mapping[str, Any]) -> TablespaceInfo:
    return TablespaceInfo(
        d["name"], d["owner"], d["location"], tuple(d.get("options", ())), tuple(d.get("acl", ())), d.get("comment")
    )


def _grant(d: Mapping[str, Any]) -> Grant:
    return Grant(d["grantee"], d["privilege"], bool(d["grantable"]))


# --- the client --------------------------------------------------------------------------------------


def restore_client(bset: sets.BackupSet, target: PgVersion, pg_bins: tuple[Path, ...]) -> ClientChoice:
    """The target's client, unless the set's pg_dump was newer: then the oldest installed one that reads it."""
    source = PgVersion.from_num(bset.server_version_num)
    dumped_by = bset.client_major
    discovery = discover(pg_bins)
    need = ("pg_restore", "psql")
    with contextlib.suppress(ToolchainError):
        choice = select_client(discovery, source, target, need=need)
        if restore_refusal(choice.major, dumped_by) is None:
            return choice
    readers = [i for i in discovery.installations if i.has(*need) and major_order(i.major) >= major_order(dumped_by)]
    if not readers:
        raise ToolchainError(
            f"the set {bset.name} was written by pg_dump {major_label(dumped_by)}, and no installed pg_restore is "
            f"that new (an archive's format moves with pg_dump: older pg_restore rejects it)",
            hint=f"install PostgreSQL {major_label(dumped_by)} or newer client programs (pgshift toolchain install "
            f"{major_label(dumped_by)}) or point pgshift at them with --pg-bin DIR",
        )
    best = min(readers, key=lambda i: (major_order(i.major), -i.version.num))
    return ClientChoice(
        best.version,
        f"the set was written by pg_dump {major_label(dumped_by)}: the oldest installed pg_restore that reads it",
        installation=best,
    )


def list_archive(set_path: Path, database: str | None, pg_bins: tuple[Path, ...] = ()) -> str:
    """``pg_restore --list`` of one database's archive: the table of contents to edit for ``--use-list``."""
    bset = sets.open_set(set_path)
    entry = _one_database(bset, database, "--list")
    if bset.format == "plain":
        raise UsageError(
            f"the set {bset.name} is plain SQL: it has no table of contents",
            hint="read the file itself, or take sets with --format custom to restore selectively",
        )
    client = restore_client(bset, PgVersion.from_num(bset.server_version_num), pg_bins)
    from pgshift.process import base_env

    done = run_client(
        client, "pg_restore", ["--list", str(bset.archive(entry))], env=base_env(), mounts=[str(bset.path)]
    )
    return done.stdout


def _one_database(bset: sets.BackupSet, database: str | None, option: str) -> str:
    names = [d["name"] for d in bset.databases]
    if database is None:
        if len(names) == 1:
            return str(names[0])
        raise UsageError(
            f"{option} works on one database, and the set {bset.name} has {len(names)}",
            hint=f"name it with --database ({', '.join(names)})",
        )
    if database not in names:
        raise UnknownDatabase([database], names, role="backup set")
    return database


# --- preflight and plan ------------------------------------------------------------------------------


def _prepare(options: RestoreOptions, sink: EventSink) -> _Prepared:
    journal = Journal.load(options.workdir) if options.resume and options.workdir is not None else None
    if not options.resume and options.workdir is not None:
        check_new_workdir(options.workdir)
    if options.use_list is not None and not options.use_list.is_file():
        raise UsageError(
            f"--use-list {options.use_list}: no such file", hint="write one with: pgshift restore SET --list"
        )
    bset = sets.open_set(options.set_path)  # every file against the manifest, before anything else
    names = [d["name"] for d in bset.databases]
    missing = [n for n in (*options.databases, *options.exclude_databases) if n not in names]
    if missing:
        raise UnknownDatabase(missing, names, role="backup set")
    chosen = [n for n in (options.databases or names) if n not in set(options.exclude_databases)]
    chosen = list(dict.fromkeys(chosen))
    if not chosen:
        raise UsageError("no database of the set is left to restore", hint="check --database and --exclude-database")
    if options.use_list is not None and len(chosen) != 1:
        raise UsageError(
            "--use-list is the table of contents of one database's archive", hint="name it with --database NAME"
        )
    if bset.format == "plain" and options.selective:
        raise UsageError(
            f"the set {bset.name} is plain SQL: --schema, --table and --use-list need an archive",
            hint="restore it whole, or take sets with --format custom (the default)",
        )
    for remedy in options.remedies:
        why = set_remedies.refusal(
            remedy,
            set_name=bset.name,
            fmt=bset.format,
            entries={n: bset.database(n) or {} for n in chosen},
            selective=options.selective,
        )
        if why is None and (options.clean or options.into_existing):
            why = "--clean and --into-existing restore into a database that exists; a remedy's restore creates it"
        if why is not None:
            raise UsageError(f"--remedy {remedy} cannot apply to this restore: {why}")
    unknown = [r for r in options.renames if r not in chosen]
    if unknown:
        raise UsageError(f"--rename names {', '.join(map(repr, unknown))}, which is not among the databases restored")
    if options.globals and not (bset.path / sets.GLOBALS_FACTS).exists():
        raise PreflightRefused(
            f"the set {bset.name} has no globals ({sets.GLOBALS_FACTS}): it was taken without them",
            hint="restore with --no-globals (the roles must exist on the target, or add --no-owner --no-privileges)",
        )
    warnings: list[str] = []

    def warn(text: str) -> None:
        warnings.append(text)
        sink(Message(text, level=Level.WARNING))

    target = resolve(options.target)
    set_version = PgVersion.from_num(bset.server_version_num)
    try:
        with session(target) as tconn:
            info = cluster.server_info(tconn)
            if info.in_recovery:
                raise PreflightRefused(
                    "the target server is a standby (in recovery) and cannot be written",
                    hint="point TARGET at the primary server",
                )
            if journal is not None:
                recorded = journal.header.get("target_identity", {}).get("system_identifier")
                if recorded and info.system_identifier and recorded != info.system_identifier:
                    raise PreflightRefused(
                        f"the target is not the server this restore started on (system identifier {recorded})",
                        hint="resume against the restore's own target, or start a new restore without --resume",
                    )
            direction = check_direction(set_version, info.version, allow_downgrade=options.allow_downgrade)
            if not direction.allowed:
                raise PreflightRefused(
                    (direction.reason or "the target is older than the set's server").replace("source", "set's server"),
                    hint="restore into a server of the same or a newer major, or pass --allow-downgrade knowingly",
                )
            if direction.warning:
                warn(direction.warning)
            client = restore_client(bset, info.version, options.pg_bins)
            for w in client.warnings:
                warn(w)
            if options.remedies and client.docker_image is not None:
                raise UsageError(
                    f"--remedy {options.remedies[0]} cannot apply to this restore: its pg_restore runs in Docker "
                    f"({client.docker_image}), which sees the work directory but not the set",
                    hint="install a local pg_restore (pgshift toolchain install) or name one with --pg-bin",
                )
            target.require_client_support(client.major, "pg_restore")
            if not (info.is_superuser or info.can_create_db):
                raise PreflightRefused(
                    f"the target role {target.user!r} may not create databases",
                    hint="connect to the target as a superuser or a role with CREATEDB",
                )
            target_dbs = ddl.database_names(tconn)
            target_roles = ddl.role_names(tconn)
            protected = {info.current_user, ddl.bootstrap_superuser(tconn)}
            available = cluster.available_extensions(tconn)
            existing_ts = cluster.tablespace_names(tconn)
            known_settings = remedy_catalog.known_settings(tconn)
            usage = ddl.connection_usage(tconn)
            marks = ddl.in_progress_marks(tconn)
            empty = {}
            for name in chosen:
                tname = options.renames.get(name, name)
                if tname in target_dbs and (journal is None or journal.database(name) is None):
                    with session(target, tname) as dconn:
                        empty[tname] = ddl.database_is_empty(dconn)
    except psycopg.Error as exc:
        raise query_failed("the restore could not read the target", exc) from None
    # The remedies asked for, on what the set recorded of each database (backup/remedies.py); the
    # objects the target refuses without a remedy refuse the restore as check's blockers do.
    planned: dict[str, DatabaseRemedies] = {}
    blockers: list[tuple[str, str, str]] = []  # (rule id, text, remedy)
    for name in chosen:
        recorded_entry: Mapping[str, Any] = bset.database(name) or {}
        rem = DatabaseRemedies()
        if options.remedies:
            rem = set_remedies.plan_database(
                recorded_entry,
                name,
                remedies=options.remedies,
                target_major=info.version.major,
                target_settings=known_settings,
                target_extensions=frozenset(available),
                superuser=info.is_superuser,
            )
        rem.applied += remedy_database_settings(
            options.remedies, known_settings, name, tuple(recorded_entry.get("properties", {}).get("settings", ()))
        )
        planned[name] = rem
        for remedy, objects in set_remedies.blocked(recorded_entry, info.version.major, known_settings).items():
            rule = set_remedies.BLOCKED_BY[remedy]
            if remedy in options.remedies or not options.check:
                continue  # carried, or --no-check: the restore stops at the object
            for obj in objects:
                text = f"{rule} [{name}: {obj}]: the target refuses it"
                if rule in options.accept:
                    warn(f"accepted blocker {text}; --remedy {remedy} carries it, not given: the restore stops there")
                else:
                    blockers.append((rule, text, remedy))
    recorded = inventory.source_inventory(bset.manifest) if options.check else None
    if recorded is not None or blockers:
        left_out = {n: r.left_out_extensions for n, r in planned.items() if r.left_out_extensions}
        unused = {n: set_remedies.unused_extensions(bset.database(n) or {}) for n in chosen}
        _check_target(options, recorded, target, chosen, client, warn, sink, blockers, left_out, unused)
    elif options.check:
        warn(f"the set {bset.name} was taken before pgshift recorded what check needs: check's rules were not run")
    # The extensions each database uses, on the target (what check's extension rules ask, for sets
    # that recorded no inventory or with --no-check).
    lacking = {}
    for name in chosen:
        entry = bset.database(name)
        assert entry is not None
        gone = [e["name"] for e in entry.get("extensions", ()) if e["name"] != "plpgsql" and e["name"] not in available]
        if gone:
            lacking[name] = gone
    if lacking and recorded is None:
        first, exts = next(iter(lacking.items()))
        raise PreflightRefused(
            f"the target lacks extension(s) {', '.join(exts)} that database {first!r} of the set uses"
            + (f" (and {len(lacking) - 1} more database(s))" if len(lacking) > 1 else ""),
            detail="\n".join(f"{db}: {', '.join(e)}" for db, e in lacking.items()),
            hint="install the extensions' packages on the target server, then restore again",
        )
    globals_doc = bset.globals_facts() if options.globals else {}
    roles = [_role(r) for r in globals_doc.get("roles", ())]
    if (
        options.globals
        and not (info.is_superuser or info.can_create_role)
        and any(r.name not in target_roles for r in roles)
    ):
        raise PreflightRefused(
            f"the target role {target.user!r} may not create roles, and the set has roles the target lacks",
            hint="connect as a superuser or a role with CREATEROLE, or restore with --no-globals --no-owner "
            "--no-privileges",
        )
    earlier_roles = journal.roles_of_run(target_roles) if journal is not None else set()
    role_plans = []
    for role in roles:
        if role.name in protected:
            role_plans.append(RolePlan(role.name, "protected"))
        elif role.name in target_roles and role.name not in earlier_roles:
            role_plans.append(RolePlan(role.name, "exists"))
        else:
            dropped: tuple[str, ...] = ()
            if not info.is_superuser:
                dropped = tuple(
                    a
                    for a, on in (
                        ("SUPERUSER", role.superuser),
                        ("REPLICATION", role.replication),
                        ("BYPASSRLS", role.bypassrls),
                    )
                    if on
                )
            role_plans.append(RolePlan(role.name, "create", dropped))
    tablespaces = [] if options.no_tablespaces else [_tablespace(t) for t in globals_doc.get("tablespaces", ())]
    spaces = tuple(
        (ts.name, options.tablespace_map.get(ts.name, options.tablespace_map.get(ts.location, ts.location)))
        for ts in tablespaces
    )
    passwords = dict(globals_doc.get("passwords", {})) if not options.no_role_passwords else {}
    gplan = (
        GlobalsPlan(tuple(role_plans), len(globals_doc.get("memberships", ())), spaces, bool(passwords))
        if options.globals
        else None
    )
    # Each database: restore it anew, continue or redo it (resume), or into one that exists.
    refused: list[str] = []
    plans: list[DatabasePlan] = []
    created_by_run: dict[str, bool] = {}
    source_dbs: dict[str, DatabaseInfo] = {}
    for name in chosen:
        entry = bset.database(name)
        assert entry is not None
        db = _database(entry["properties"])
        source_dbs[name] = db
        tname = options.renames.get(name, name)
        record = journal.database(name) if journal is not None else None
        action: DatabaseAction = "migrate"
        reason = "restored from the set"
        creates = tname not in target_dbs
        if record is not None and record.finished:
            action, reason = "done", "restored by an earlier attempt"
            creates = record.created_by_run
        elif record is not None and record.touched_target:
            mark = marks.get(tname)
            ours = mark is not None and journal is not None and mark.run_id == journal.run_id
            if tname not in target_dbs:
                action, reason, creates = "migrate", f"left at {record.state} and gone from the target; restored", True
            elif record.created_by_run and ours:
                action, reason, creates = (
                    "redo",
                    f"left at {record.state} by this restore; dropped and restored again",
                    True,
                )
            elif not record.created_by_run:
                action, reason, creates = "migrate", "continued in the database that existed", False
            else:
                refused.append(f"{tname} (left by this restore, but its in-progress mark is gone)")
                continue
        elif (
            tname in target_dbs
            and (mark := marks.get(tname)) is not None
            and (journal is None or mark.run_id != journal.run_id)
        ):
            # Another run (a migration or a restore) is filling it: --clean would destroy that
            # run's work, and restoring into it would mix two copies.
            raise PreflightRefused(
                f"database {tname!r} on the target was left half-done by pgshift {mark.operation} run "
                f"{mark.run_id}; it is not a database to restore into",
                hint=f"continue that run with: {mark.resume_command}; or drop the database first, or restore "
                "under another name (--rename OLD=NEW)",
            )
        elif tname in target_dbs:
            if options.clean or options.into_existing:
                reason = "restored into the database that exists" + (" (--clean)" if options.clean else "")
            elif empty.get(tname):
                reason = "restored into the empty database the target has"
            else:
                refused.append(tname)
                continue
        created_by_run[tname] = creates
        plans.append(
            DatabasePlan(
                source=name,
                target=tname,
                action=action,
                reason=reason,
                size_bytes=int(entry.get("archive_bytes") or 0),
                owner=db.owner,
                encoding=db.encoding,
                collate=db.collate,
                ctype=db.ctype,
                locale_provider=db.locale_provider,
                icu_locale=db.icu_locale,
                tables=len(entry.get("rows", {})),
                remedies=tuple(planned[name].applied),
            )
        )
    if refused:
        raise PreflightRefused(
            f"the target already has database(s) {', '.join(refused)}, with objects in them",
            hint="restore under another name (--rename OLD=NEW), leave them out (--exclude-database), drop them first, "
            "or restore into them knowingly (--clean --if-exists, or --into-existing for a selective restore)",
        )
    moving = [p for p in plans if p.moves]
    parallel = max(1, min(options.jobs, len(moving) or 1))
    per_db = max(1, options.jobs // parallel)
    need = parallel * (per_db + 1) + 2
    if usage.available(info.is_superuser) < need:
        raise PreflightRefused(
            f"the target has {usage.available(info.is_superuser)} free connection(s) but --jobs {options.jobs} needs "
            f"{need}",
            hint="lower --jobs or free connections on the target",
        )
    workdir = options.workdir or default_workdir()
    run_id = journal.run_id if journal is not None else new_run_id()
    # migrate's planner wants a source: a set has none. Its recorded facts stand in for the source's
    # catalog, and no step of a restore runs anything on a source (every program runs on the target).
    facts = Facts(
        options=MigrateOptions(
            source=options.target,
            target=options.target,
            jobs=options.jobs,
            renames=dict(options.renames),
            globals=options.globals,
            no_role_passwords=options.no_role_passwords,
            no_owner=options.no_owner,
            no_privileges=options.no_privileges,
            no_tablespaces=options.no_tablespaces,
            tablespace_map=dict(options.tablespace_map),
            analyze=options.analyze,
            remedies=options.remedies,
            check=False,
            verify=False,
            keep_dumps=True,
            allow_downgrade=True,
        ),
        source=target,
        target=target,
        source_info=ServerInfo(
            version=set_version,
            version_text=f"PostgreSQL {bset.server_version} (the set {bset.name})",
            current_user=str(bset.manifest["server"].get("user", "")),
            is_superuser=True,
            can_create_db=True,
            can_create_role=True,
            in_recovery=False,
            settings={},
            system_identifier=bset.manifest["server"].get("system_identifier"),
        ),
        target_info=info,
        client=client,
        databases=plans,
        source_dbs=source_dbs,
        target_db_names=target_dbs,
        roles=roles,
        memberships=[Membership(**m) for m in globals_doc.get("memberships", ())],
        tablespaces=tablespaces,
        parameter_grants=[(n, _grant(g)) for n, g in globals_doc.get("parameter_grants", ())]
        if info.version.major >= 15 and not options.no_privileges
        else [],
        passwords=passwords,
        target_roles=target_roles,
        protected_roles=protected,
        globals_plan=gplan,
        warnings=warnings,
        parallel_databases=parallel,
        jobs_per_database=per_db,
        target_settings=known_settings,
        remedies={p.source: planned[p.source] for p in plans},
    )
    plan_steps = _steps(facts, bset, options, journal, run_id, workdir, existing_ts, created_by_run)
    summary = ServerSummary(
        "target", target.display(), str(info.version), info.version.num, info.current_user, info.is_superuser
    )
    plan = RestorePlan(
        options=options,
        set_name=bset.name,
        set_version=bset.server_version,
        target=summary,
        client=client,
        databases=tuple(plans),
        steps=tuple(plan_steps),
        workdir=workdir,
        parallel_databases=parallel,
        jobs_per_database=per_db,
        warnings=tuple(warnings),
        resumed=journal is not None,
        run_id=run_id,
    )
    return _Prepared(plan, facts, bset, journal, created_by_run)


def _check_target(
    options: RestoreOptions,
    recorded: Any,
    target: Any,
    chosen: list[str],
    client: ClientChoice,
    warn: Callable[[str], None],
    sink: EventSink,
    blockers: list[tuple[str, str, str]],
    left_out: Mapping[str, set[str]],
    unused: Mapping[str, set[str]],
) -> None:
    """check's rules that need of the source only what the set recorded, against the target, judged as
    migrate judges them: unaccepted blockers refuse the restore (nothing has changed the target yet).
    ``blockers``: (rule id, text, remedy) of what the set's remedy facts show the target refuses;
    ``left_out``: the extensions --remedy leave-out-extension leaves out, per database (carried);
    ``unused``: those it could leave out (nothing uses them), named in a refusal's hint."""
    from pgshift.checks import Severity
    from pgshift.checks.recorded import run_recorded

    findings: list[Any] = []
    skipped: list[Any] = []
    if recorded is not None:
        try:
            findings, skipped = run_recorded(
                recorded,
                target,
                databases=chosen,
                client=client,
                jobs=options.jobs,
                renames=options.renames,
                tablespace_map=options.tablespace_map,
                sink=sink,
            )
        except psycopg.Error as exc:
            raise query_failed("check's rules could not read the target", exc) from None
    refused: list[tuple[Any, str]] = []
    carriers = {remedy for _rule, _text, remedy in blockers}
    for finding in findings:
        where = f" [{finding.database}{': ' + finding.object if finding.object else ''}]" if finding.database else ""
        text = f"{finding.rule_id}{where}: {finding.message}"
        if finding.severity is Severity.BLOCKER and finding.object in left_out.get(finding.database or "", ()):
            sink(Message(f"check: {text} (left out by --remedy leave-out-extension)", level=Level.INFO))
        elif finding.severity is Severity.BLOCKER and finding.rule_id not in options.accept:
            refused.append((finding, text))
        elif finding.severity is Severity.BLOCKER:
            warn(f"accepted blocker {text}; expect the restore to fail at this object unless it is fixed first")
        elif finding.severity is Severity.WARNING:
            warn(f"check: {text}")
        else:
            sink(Message(f"check: {text}", level=Level.INFO))
    for skip in skipped:
        warn(f"check: rule {skip.rule_id} not run: {skip.reason}")
    if refused or blockers:
        ids = sorted({f.rule_id for f, _t in refused} | {rule for rule, _text, _r in blockers})
        detail = []
        for f, text in refused:
            fixes = [f.remediation] if f.remediation else []
            if f.object in unused.get(f.database or "", ()) and f.rule_id in _EXTENSION_RULES:
                carriers.add("leave-out-extension")
                fixes.append("nothing uses it: restore with --remedy leave-out-extension")
            detail.append(text + "".join(f"\n    fix: {fix}" for fix in fixes))
        detail += [f"{text}\n    fix: restore with --remedy {remedy}" for _rule, text, remedy in blockers]
        raise PreflightRefused(
            f"pgshift check found {len(refused) + len(blockers)} blocker(s) on the target: {', '.join(ids)}",
            detail="\n".join(detail),
            hint="nothing was restored; "
            + (f"carry them with {' '.join(f'--remedy {r}' for r in sorted(carriers))}, " if carriers else "")
            + "fix them on the target (or restore into another server), or override each one knowingly with "
            + " ".join(f"--accept {i}" for i in ids),
        )


# check's rules about an extension the target lacks: leave-out-extension carries an unused one.
_EXTENSION_RULES = ("removed-extension", "extension-availability")


def _tablespace_actions(facts: Facts, existing: set[str], globals_doc: Mapping[str, Any]) -> list[Action]:
    plan = facts.globals_plan
    if plan is None or facts.options.no_tablespaces:
        return []
    locations = dict(plan.tablespaces)
    present = facts.target_roles | set(plan.created)
    grants = {t["name"]: [_grant(g) for g in t.get("grants", ())] for t in globals_doc.get("tablespaces", ())}
    out = []
    for ts in facts.tablespaces:
        if ts.name in existing:
            continue
        owner = ts.owner if ts.owner in present and not facts.options.no_owner else None
        out.append(Action(f"tablespace {ts.name}", ddl.create_tablespace(ts, locations[ts.name], owner)))
        options = ddl.alter_tablespace_options(ts.name, ts.options)
        if options is not None:
            out.append(Action(f"tablespace {ts.name}", options))
        if ts.comment:
            out.append(Action(f"tablespace {ts.name}", ddl.comment_on_tablespace(ts.name, ts.comment)))
        if not facts.options.no_privileges:
            out += [
                Action(f"tablespace {ts.name}", ddl.grant_on("tablespace", ts.name, g))
                for g in grants.get(ts.name, ())
                if g.grantee is None or g.grantee in present
            ]
    return out


def schema_list(workdir: Path, dbp: DatabasePlan) -> Path:
    return workdir / f"{dbp.source}.schemas.list"


def write_schema_list(facts: Facts, archive: Path, schemas: tuple[str, ...], out: Path) -> int:
    """The archive's table of contents with all but the schemas' items and the schemas themselves commented out."""
    whole = toc_listing(facts, archive)
    done = run_client(
        facts.client,
        "pg_restore",
        ["--list", *(f"--schema={s}" for s in schemas), str(archive)],
        env=facts.target.child_env(),
        mounts=[str(archive.parent)],
    )
    keep = {line for line in done.stdout.splitlines() if line and not line.startswith(";")}
    keep |= {line for line in whole for s in schemas if f" SCHEMA - {s} " in line}
    lines = [line if line in keep else ";" + line for line in whole]
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return len(keep)


def restore_archive_args(
    facts: Facts, options: RestoreOptions, dbp: DatabasePlan, archive: Path, workdir: Path
) -> list[str]:
    args = [f"--dbname={facts.target.child_conninfo(dbp.target)}", "--no-password", "--verbose"]
    if not tolerate_transaction_timeout(facts):
        args.append("--exit-on-error")
    if facts.jobs_per_database > 1:
        args.append(f"--jobs={facts.jobs_per_database}")
    if options.use_list is not None:
        args.append(f"--use-list={options.use_list}")
    elif defers_triggers(facts, options):
        args.append(f"--use-list={data_use_list(archive_link(workdir, dbp))}")
    elif options.schemas and not options.tables:
        # pg_restore -n leaves the schema's own CREATE SCHEMA out: the list written when the step runs
        # holds the schema's items and the schema itself.
        args.append(f"--use-list={schema_list(workdir, dbp)}")
    else:
        args += [f"--schema={s}" for s in options.schemas]
    args += [f"--table={t}" for t in options.tables]
    if options.clean:
        args.append("--clean")
    if options.if_exists:
        args.append("--if-exists")
    args += [*restore_object_flags(facts.options), *facts.client.restore_flags]
    args.append(str(archive))
    return args


def restore_script_args(facts: Facts, dbp: DatabasePlan, script: Path) -> list[str]:
    """psql of a plain set's SQL: one transaction, stopping at the first error."""
    return [
        "--no-psqlrc",
        "--quiet",
        "--no-password",
        "--set=ON_ERROR_STOP=1",
        "--single-transaction",
        f"--dbname={facts.target.child_conninfo(dbp.target)}",
        f"--file={script}",
    ]


def _steps(
    facts: Facts,
    bset: sets.BackupSet,
    options: RestoreOptions,
    journal: Journal | None,
    run_id: str,
    workdir: Path,
    existing_ts: set[str],
    created_by_run: Mapping[str, bool],
) -> list[Step]:
    out: list[Step] = []
    done = journal.done if journal is not None else (lambda _step: False)
    gplan = facts.globals_plan
    created: set[str] = set()
    maintenance = maintenance_db(facts, "")
    if gplan is not None:
        created = set(gplan.created)
        out += globals_steps(facts, journal, created, maintenance)
        spaces = _tablespace_actions(facts, existing_ts, bset.globals_facts())
        if spaces and not done("globals:tablespaces"):
            out.append(
                Step(
                    "globals:tablespaces",
                    "create-tablespaces",
                    "globals: tablespaces",
                    connect_to=maintenance,
                    sql=tuple(spaces),
                )
            )
        existing_ts = existing_ts | {n for n, _loc in gplan.tablespaces}
    before = tuple(s.id for s in out)
    for dbp in facts.databases:
        if dbp.moves:
            out += _database_chain(
                facts, bset, options, dbp, before, created, (run_id, workdir), existing_ts, created_by_run
            )
    return out


def _database_chain(
    facts: Facts,
    bset: sets.BackupSet,
    options: RestoreOptions,
    dbp: DatabasePlan,
    before: tuple[str, ...],
    created: set[str],
    run: tuple[str, Path],
    existing_ts: set[str],
    created_by_run: Mapping[str, bool],
) -> list[Step]:
    """One database's steps: (drop, when redone) create, restore, role settings, ANALYZE, finish."""
    run_id, workdir = run
    chain: list[Step] = []

    def add(kind: Any, title: str, **more: Any) -> None:
        after = (chain[-1].id,) if chain else before
        step_id = f"db:{dbp.source}:{kind}"
        chain.append(Step(step_id, kind, f"{dbp.target}: {title}", database=dbp.source, after=after, **more))

    maintenance = maintenance_db(facts, dbp.target)
    creates = created_by_run[dbp.target]
    in_place = dbp.target in facts.target_db_names and not creates
    set_up = in_place and not (options.clean or options.into_existing)  # an empty database, set up as migrate does
    if dbp.action == "redo":
        drop = tuple(drop_actions(facts, dbp))
        add("drop-database", f"drop {dbp.target} (left half-restored)", connect_to=maintenance, sql=drop)
    if creates or set_up:
        recorded: list[Grant] = [_grant(g) for g in (bset.database(dbp.source) or {}).get("grants", ())]
        actions, warnings = database_actions(
            facts,
            dbp,
            [] if options.no_privileges else recorded,
            create=creates,
            target_tablespaces=existing_ts,
            run_id=run_id,
            workdir=str(workdir),
            operation="restore",
        )
        add(
            "create-database",
            f"create {dbp.target} from template0 with its properties" if creates else f"set up {dbp.target}",
            connect_to=maintenance,
            sql=tuple(actions),
            warnings=tuple(warnings),
            intent={"created_by_run": creates},
        )
    archive = bset.archive(dbp.source)
    intent: dict[str, Any] = {"schemas": list(options.schemas)}
    title_note = ""
    remedies = facts.remedies.get(dbp.source)
    if remedies is not None and (remedies.items or remedies.after_data):
        _remedy_steps(facts, dbp, remedies, archive_link(workdir, dbp), add)
    elif bset.format == "plain":
        script = archive
        title = f"psql of the set's SQL ({human_size(dbp.size_bytes)}), in one transaction"
        if script_sets_transaction_timeout(bset, facts):
            # The set's file stays as its checksum says: psql reads a copy streamed through a pipe.
            script = script_feed(workdir, dbp)
            intent["script"] = str(archive)
            title += f", without the SET transaction_timeout that {facts.target_version.major_label} does not know"
        call = _program(facts, "psql", restore_script_args(facts, dbp, script))
    else:
        call = _program(facts, "pg_restore", restore_archive_args(facts, options, dbp, archive, workdir))
        if defers_triggers(facts, options):
            title_note = ", the triggers after all the data"
        what = "everything"
        if options.use_list is not None:
            what = f"the list {options.use_list.name}"
        elif options.selective:
            what = "the objects asked for"
        title = f"pg_restore of {what} from {archive.name} ({human_size(dbp.size_bytes)}){title_note}"
    if remedies is None or not (remedies.items or remedies.after_data):
        add("restore-archive", title, program=call, connect_to=dbp.target, intent=intent)
        if bset.format != "plain" and defers_triggers(facts, options):
            _triggers_step(facts, dbp, archive_link(workdir, dbp), add, ())
    settings = role_database_actions(facts, dbp, created)
    if settings:
        add("database-settings", "role settings in the database", connect_to=dbp.target, sql=tuple(settings))
    if options.analyze:
        add("analyze", "analyze", connect_to=dbp.target, sql=(Action(f"database {dbp.target}", ddl.analyze()),))
    final = final_comment_action(facts, dbp, created=creates) if (creates or set_up) else None
    add("finish", "finish", connect_to=maintenance, sql=(final,) if final else ())
    return chain


def archive_link(workdir: Path, dbp: DatabasePlan) -> Path:
    """The set's archive as the work directory shows it (a symbolic link): migrate's steps write their
    scripts and lists beside the archive they read, and the set itself is never written."""
    return workdir / f"{dbp.source}.archive"


def link_archives(plan: RestorePlan, bset: sets.BackupSet) -> None:
    for dbp in plan.databases:
        if any(s.database == dbp.source and s.kind in ("restore-schema", "restore-triggers") for s in plan.steps):
            link = archive_link(plan.workdir, dbp)
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
            link.symlink_to(bset.archive(dbp.source).resolve())


def _remedy_steps(
    facts: Facts, dbp: DatabasePlan, remedies: DatabaseRemedies, link: Path, add: Callable[..., None]
) -> None:
    """migrate's steps for a database the remedies change: the schema (as a rewritten script when a
    remedy rewrites it), the data with indexes and constraints, then the remedies' statements."""
    items = tuple(remedies.items)
    omit = remedy_use_list(link) if remedies.omits else None
    if remedies.rewrites_schema:
        add(
            "script-schema",
            "write the schema as SQL, with the remedies' changes",
            program=_program(facts, "pg_restore", script_args(facts, link, schema_script(link), use_list=omit)),
            items=items,
        )
        add(
            "restore-schema",
            "restore the schema (the rewritten script)",
            program=_program(facts, "psql", psql_script_args(facts, dbp, remedied_script(link))),
        )
    else:
        add(
            "restore-schema",
            "restore the schema",
            program=_program(facts, "pg_restore", restore_args(facts, dbp, link, "schema", use_list=omit)),
            items=items,
        )
    add(
        "restore-data",
        "restore the data, indexes and constraints",
        program=_program(
            facts, "pg_restore", restore_args(facts, dbp, link, "data", use_list=omit or data_use_list(link))
        ),
        items=items,
    )
    if remedies.after_data:
        add(
            "remedy",
            "remedies after the data",
            connect_to=dbp.target,
            sql=tuple(remedies.after_data),
            note="; ".join(f"{r.remedy}: {r.object}: {r.change}" for r in remedies.applied),
        )
    _triggers_step(facts, dbp, link, add, items)


def defers_triggers(facts: Facts, options: RestoreOptions) -> bool:
    """Whether the archive's triggers wait for a step after all its data (as migrate's do): a
    parallel pg_restore could make a partitioned table's trigger while its partitions still load.
    Not with a list or a selection of the user's, which say themselves what is restored."""
    return facts.jobs_per_database > 1 and options.use_list is None and not options.schemas and not options.tables


def _triggers_step(
    facts: Facts, dbp: DatabasePlan, link: Path, add: Callable[..., None], items: tuple[Any, ...]
) -> None:
    add(
        "restore-triggers",
        "restore the triggers, after all the data",
        program=_program(
            facts, "pg_restore", restore_args(facts, dbp, link, "triggers", use_list=triggers_use_list(link))
        ),
        connect_to=dbp.target,
        items=items,
        note="those the target has already (an attempt cut short after it made them) are left out",
    )


def _program(facts: Facts, program: str, args: list[str]) -> ProgramCall:
    return ProgramCall(program, tuple(args), "target", command_display(facts, program, args))


def plan_restore(options: RestoreOptions, *, sink: EventSink = discard) -> RestorePlan:
    """Check the set, read the target, decide, plan: nothing is changed."""
    return _prepare(options, sink).plan


# --- the executor --------------------------------------------------------------------------------


def script_sets_transaction_timeout(bset: sets.BackupSet, facts: Facts) -> bool:
    """A plain set's script from pg_dump 17+ sets transaction_timeout, which targets before 17 reject
    (knowledge §1): pg_restore's errors can be tolerated, a script run in one transaction cannot."""
    return bset.client_major >= 17 > facts.target_version.major


def script_feed(workdir: Path, dbp: DatabasePlan) -> Path:
    return workdir / f"{dbp.source}.sql.pipe"


_TIMEOUT_LINE = b"\nSET transaction_timeout = 0;\n"
_PSQL_ERROR = re.compile(r"^psql:(?P<file>.*?):(?P<line>\d+): (?:ERROR|FATAL):  (?P<msg>.*)$")


def _feed_script(script: Path, pipe: Path, stop: threading.Event, failure: list[OSError]) -> None:
    """Write ``script`` into the named pipe psql reads, without the SET transaction_timeout of its header.

    The header comes first, so only the first occurrence goes (a row of data holding that text stays).
    Opened without blocking until psql opens its end: a psql that never does (it could not connect)
    must not leave this thread waiting.
    """
    while True:
        try:
            fd = os.open(pipe, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                failure.append(exc)
                return
            if stop.wait(0.05):
                return
    os.set_blocking(fd, True)
    try:
        with open(script, "rb") as source:
            chunk = source.read(1 << 16).replace(_TIMEOUT_LINE, b"\n", 1)
            while chunk:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
                chunk = source.read(1 << 20)
    except BrokenPipeError:
        pass  # psql stopped reading: its own error says why
    except OSError as exc:
        failure.append(exc)
    finally:
        os.close(fd)


def _restore_script(run: steps.Run, step: Step) -> None:
    """psql of a plain set's SQL in one transaction, stopping at the first error (named with its line)."""
    assert step.program is not None and step.database is not None
    dbname = next(d.target for d in run.facts.databases if d.source == step.database)
    original = step.intent.get("script")
    pipe = Path(next(a for a in step.program.args if a.startswith("--file=")).removeprefix("--file="))
    with run.step(step):
        errors: list[str] = []

        def line(text: str) -> None:
            run.log.write("psql", text)
            m = _PSQL_ERROR.match(text)
            if m:
                errors.append(f"{m['msg']} (line {m['line']} of {Path(str(original or m['file'])).name})")

        stop = threading.Event()
        failure: list[OSError] = []
        feeder = None
        if original:
            with contextlib.suppress(FileNotFoundError):
                pipe.unlink()  # left by an interrupted attempt
            os.mkfifo(pipe, 0o600)
            feeder = threading.Thread(
                target=_feed_script, args=(Path(original), pipe, stop, failure), daemon=True, name="pgshift-feed"
            )
            feeder.start()
            run.log.write("info", f"psql reads {Path(original).name} without its SET transaction_timeout")
        try:
            done = run.program(step.program, on_line=line, check=False)
        finally:
            stop.set()
            if feeder is not None:
                feeder.join()
                with contextlib.suppress(FileNotFoundError):
                    pipe.unlink()
        if not done.ok or failure:
            run.check_cancel()
            message = errors[0] if errors else (str(failure[0]) if failure else "\n".join(done.stderr_tail[-3:]))
            raise StepFailed(
                f"restoring database {dbname!r} from the set's SQL failed: {message}",
                detail="\n".join(done.stderr_tail) or None,
                hint=steps.restore_advice(message),
                program="psql",
            )


def _restore_archive(run: steps.Run, step: Step) -> None:
    """pg_restore (or psql for a plain set) of one archive, its errors explained."""
    assert step.program is not None and step.database is not None
    facts = run.facts
    if step.program.program == "psql":
        _restore_script(run, step)
        return
    dbp = next(d for d in facts.databases if d.source == step.database)
    use_list = next((a.removeprefix("--use-list=") for a in step.program.args if a.startswith("--use-list=")), "")
    if use_list.endswith(".schemas.list"):
        schemas = tuple(step.intent.get("schemas", ()))
        items = write_schema_list(facts, Path(step.program.args[-1]), schemas, Path(use_list))
    elif use_list.endswith(".data.list"):
        # Everything but the triggers, which restore-triggers makes once all the data is in.
        listing = toc_listing(facts, Path(step.program.args[-1]))
        skip = trigger_ids(parse_listing(listing))
        fd = os.open(use_list, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("\n".join(archive_use_list(listing, skip)) + "\n")
        items = len(listing) - len(skip)
    elif use_list:
        items = sum(1 for line in Path(use_list).read_text(errors="replace").splitlines() if line and line[0] != ";")
    else:
        items = len(toc_listing(facts, Path(step.program.args[-1])))
    total = float(max(items, 1))
    with run.step(step, total=total):
        progress = [0]

        def on_item() -> None:
            progress[0] += 1
            run.sink(StepProgress("restore", step=step.id, completed=float(min(progress[0], items)), total=total))

        watcher = steps.RestoreWatcher(on_item, lambda line: run.log.write("pg_restore", line))
        tolerant = tolerate_transaction_timeout(facts)
        done = run.program(step.program, on_line=watcher, check=False)
        errors = watcher.done()
        relevant = [
            e for e in errors if not (tolerant and 'unrecognized configuration parameter "transaction_timeout"' in e[0])
        ]
        if not done.ok and (not tolerant or relevant or not errors):
            run.check_cancel()
            raise steps.explain_restore(
                dbp.target,
                relevant,
                "\n".join(done.stderr_tail),
                watcher.object_of(relevant[0]) if relevant else "",
                returncode=done.returncode,
            )
        if tolerant and relevant:
            raise steps.explain_restore(
                dbp.target, relevant, "\n".join(done.stderr_tail), watcher.object_of(relevant[0])
            )


# --- run ---------------------------------------------------------------------------------------------


def resume_command(options: RestoreOptions, workdir: Path) -> str:
    if options.target.password is not None:
        return f"pgshift restore --resume {workdir} TARGET (the journal keeps no password: give TARGET again)"
    return f"pgshift restore --resume {workdir}"


def load_resume_options(workdir: Path, *, target: Endpoint | None = None, **changes: Any) -> RestoreOptions:
    header = Journal.read_header(workdir)
    if header.get("command") != "restore":
        raise UsageError(f"{workdir} holds no restore's journal", hint="give the work directory a restore printed")
    return RestoreOptions.from_record(header["options"], target, workdir=workdir, resume=True, **changes)


def run_restore(options: RestoreOptions, *, sink: EventSink = discard) -> RestoreResult:
    """Check the set, preflight, plan, run every step journaled; raises on failure (see the module docs)."""
    t0 = time.monotonic()
    lock: WorkdirLock | None = None
    if options.resume:
        assert options.workdir is not None
        journal = Journal.load(options.workdir)
        if journal.status == "done":
            raise PreflightRefused(
                f"the restore in {options.workdir} finished already; there is nothing to resume",
                hint="start a new restore (without --resume)",
            )
        lock = WorkdirLock(options.workdir)
        previous_pid = lock.previous_holder()
        lock.acquire()
        if journal.status == "running":
            # The lock was free, so no pgshift holds it: the last attempt died without a word.
            sink(Message(killed_attempt(journal, previous_pid), level=Level.WARNING))
    prepared: _Prepared | None = None
    journal_opened: Journal | None = None
    log: RunLog | None = None
    try:
        prepared = _prepare(options, sink)
        plan, facts = prepared.plan, prepared.facts
        workdir = plan.workdir
        header = {"options": {**options.as_dict(), "workdir": str(workdir)}, "client": plan.client.as_dict()}
        if prepared.journal is None:
            make_private(workdir)
            lock = WorkdirLock(workdir)
            lock.acquire()
            journal_opened = Journal.create(
                workdir,
                {
                    "run_id": plan.run_id,
                    "command": "restore",
                    "set": str(prepared.bset.path),
                    "source": f"backup set {prepared.bset.path}",
                    "target": options.target.display(),
                    "target_identity": {"system_identifier": facts.target_info.system_identifier},
                    "source_version": prepared.bset.server_version,
                    "target_version": plan.target.version,
                    "plan": [s.id for s in plan.steps],
                    **header,
                },
            )
        else:
            journal_opened = prepared.journal
            journal_opened.begin_attempt(header)
        journal = journal_opened
        for dbp in plan.databases:
            journal.add_database(dbp.source, dbp.target, str(prepared.bset.database(dbp.source)["archive"]))  # type: ignore[index]
        log = RunLog(workdir / LOG)
        log.write("info", f"pgshift restore: {prepared.bset.path} -> {plan.target.display}")
        log.write("info", f"client: {facts.client.describe('pg_restore')}")
        for dbp in plan.databases:
            log.write("info", f"database {dbp.source} -> {dbp.target}: {dbp.action} ({dbp.reason})")
        link_archives(plan, prepared.bset)
        run = steps.Run(facts, workdir, journal, log, log.sink(sink))
        run.warnings.extend(plan.warnings)
        run_steps(
            run,
            plan.steps,
            own={"restore-archive": _restore_archive},
            parallel=plan.parallel_databases,
            resume_hint=f"continue with: {resume_command(options, workdir)}",
        )
        return RestoreResult(
            ok=True,
            workdir=workdir,
            seconds=time.monotonic() - t0,
            databases=tuple(
                {
                    "source": d.source,
                    "target": d.target,
                    "action": d.action,
                    "reason": d.reason,
                    "created": prepared.created_by_run.get(d.target, False),
                }
                for d in plan.databases
            ),
            roles_created=tuple(sorted(run.created_roles)),
            warnings=tuple(dict.fromkeys(run.warnings)),
            client=facts.client.describe("pg_restore"),
            target_version=plan.target.version,
            remedies=tuple(r for d in plan.databases for r in d.remedies),
        )
    finally:
        if journal_opened is not None:
            journal_opened.close()
        if log is not None:
            log.close()
        if lock is not None:
            lock.release()
