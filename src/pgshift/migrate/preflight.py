"""Preflight: connect to both servers, read what is needed, decide, refuse early. Touches nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from pgshift.catalog import cluster, ddl
from pgshift.catalog import remedies as remedy_catalog
from pgshift.catalog.cluster import DatabaseInfo, Membership, RoleInfo, ServerInfo, TablespaceInfo
from pgshift.catalog.session import Connection, query_failed, resolve, session
from pgshift.checks.databases import choose_databases
from pgshift.conninfo import ResolvedEndpoint
from pgshift.errors import PreflightRefused
from pgshift.events import EventSink, Level, Message, discard
from pgshift.migrate.journal import DatabaseRecord, Journal
from pgshift.migrate.options import MigrateOptions
from pgshift.migrate.plan import (
    AppliedRemedy,
    CheckSummary,
    DatabaseAction,
    DatabasePlan,
    ExtensionPlan,
    GlobalsPlan,
    RolePlan,
    ServerSummary,
)
from pgshift.migrate.remedies import (
    DatabaseRemedies,
    check_spec_databases,
    check_specs_found,
    database_settings,
    drops_setting,
    parse_object_spec,
    plan_database,
)
from pgshift.toolchain.clients import dump_compression_supported
from pgshift.toolchain.discover import discover
from pgshift.toolchain.select import ClientChoice, select_client
from pgshift.version import DUMP_COMPRESSIONS, PgVersion, check_direction

# Rules of pgshift check that migrate's own preflight decides, with its own options (--if-exists,
# --allow-downgrade, --jobs, the toolchain choice, databases that refuse connections): their
# findings are reported, never a reason to stop.
HANDLED_BY_MIGRATE = frozenset(
    {
        "target-database-exists",
        "target-older-than-source",
        "connections-for-jobs",
        "client-dump-newer-server",
        "datallowconn-false",
        "source-read-privileges",
    }
)

# Extensions every database has; never a reason to refuse.
_BUILTIN_EXTENSIONS = frozenset({"plpgsql"})


@dataclass
class Facts:
    """Everything the preflight learnt, handed to the plan and the runner."""

    options: MigrateOptions
    source: ResolvedEndpoint
    target: ResolvedEndpoint
    source_info: ServerInfo
    target_info: ServerInfo
    client: ClientChoice
    databases: list[DatabasePlan]
    source_dbs: dict[str, DatabaseInfo]
    target_db_names: set[str]
    roles: list[RoleInfo] = field(default_factory=list)
    memberships: list[Membership] = field(default_factory=list)
    tablespaces: list[TablespaceInfo] = field(default_factory=list)
    parameter_grants: list[tuple[str, ddl.Grant]] = field(default_factory=list)  # 15+: GRANT … ON PARAMETER
    passwords: dict[str, str] = field(default_factory=dict, repr=False)
    target_roles: set[str] = field(default_factory=set)
    protected_roles: set[str] = field(default_factory=set)
    globals_plan: GlobalsPlan | None = None
    warnings: list[str] = field(default_factory=list)
    check: CheckSummary = field(default_factory=lambda: CheckSummary(ran=False))
    parallel_databases: int = 1
    jobs_per_database: int = 1
    # Remedies asked for (--remedy, --exclude-object), per source database: what they do there.
    remedies: dict[str, DatabaseRemedies] = field(default_factory=dict)
    global_remedies: list[AppliedRemedy] = field(default_factory=list)
    target_settings: frozenset[str] = frozenset()
    # pg_dump's --compress for the archives in the work directory (see ``dump_compression``).
    dump_compress: str = "0"
    # check's report without its schema trial, which the runner finishes (``finish_check``) beside
    # the dumps, before anything changes the target; None: no trial is left to run.
    pending_trial: Any = None
    # Each database's dump (or stream copy) runs in a snapshot pgshift exports and holds until verify
    # has read the source in it: the target is proven equal to the source as of that moment even
    # while the source takes writes. False without verify, or when the held sessions would not fit.
    verify_in_snapshots: bool = False

    @property
    def source_version(self) -> PgVersion:
        return self.source_info.version

    @property
    def target_version(self) -> PgVersion:
        return self.target_info.version

    def summary(self, role: str) -> ServerSummary:
        ep, info = (self.source, self.source_info) if role == "source" else (self.target, self.target_info)
        return ServerSummary(
            role, ep.display(), str(info.version), info.version.num, info.current_user, info.is_superuser
        )


def _warn(sink: EventSink, facts_warnings: list[str], text: str) -> None:
    facts_warnings.append(text)
    sink(Message(text, level=Level.WARNING))


def _choose_client(options: MigrateOptions, source: PgVersion, target: PgVersion) -> ClientChoice:
    """Local clients first; Docker when asked (--docker/--docker-image) or as the fallback."""
    from pgshift.toolchain.docker import client_options

    return select_client(
        discover(options.pg_bins),
        source,
        target,
        **client_options(docker=options.docker, docker_image=options.docker_image),
    )


def _select_databases(
    options: MigrateOptions, found: list[DatabaseInfo], warnings: list[str], sink: EventSink
) -> list[DatabaseInfo]:
    # The same choice as pgshift check's (checks.databases): what one refuses, the other refuses.
    out, left_out = choose_databases(found, options.databases, options.exclude_databases)
    for name, why in left_out.items():
        _warn(sink, warnings, f"database {name!r} {why} and cannot be dumped; it is left out")
    unknown = [r for r in options.renames if r not in {d.name for d in out}]
    if unknown:
        raise PreflightRefused(
            f"--rename names {', '.join(repr(u) for u in unknown)}, which is not among the databases to move"
        )
    return out


def _check_findings(facts: Facts, names: list[str], sink: EventSink, *, defer_trial: bool) -> None:
    """Blockers of ``pgshift check`` stop the run unless each rule id is accepted.

    With ``defer_trial`` the rules run now and the schema trial is left to ``finish_check``, which
    the runner calls beside the steps that only read the source (the dumps), before any step
    changes the target: on thousands of tables the trial takes seconds the dumps would wait for.
    """
    options = facts.options
    if not options.check:
        facts.check = CheckSummary(ran=False, note="skipped (--no-check)")
        return
    from pgshift.catalog.inventory_check import ObjectFilters
    from pgshift.checks import run_check
    from pgshift.migrate.planner import restore_object_flags

    try:
        report = run_check(
            facts.source,
            facts.target,
            databases=names,
            jobs=options.jobs,
            pg_bins=options.pg_bins,
            sink=sink,
            client=facts.client,
            # The schema tried on the target before anything is made there, as this run will
            # restore it: with the remedies' items left out or rewritten.
            trial=not defer_trial,
            remedies={name: rem.items for name, rem in facts.remedies.items()},
            remedy_names=options.remedies,
            renames=dict(options.renames),
            filters=ObjectFilters(options.schemas, options.exclude_schemas, options.tables, options.exclude_tables),
            # The trial leaves tablespaces out itself (a rule's concern): the rest as the restore does.
            restore_args=tuple(f for f in restore_object_flags(options) if f != "--no-tablespaces"),
        )
    except psycopg.Error as exc:
        raise query_failed(
            "the preflight could not run pgshift check's inventory",
            exc,
            hint="let the session holding the lock finish, then run again; --no-check skips check's inventory"
            if isinstance(exc, psycopg.errors.LockNotAvailable)
            else None,
        ) from None
    if defer_trial:
        try:
            _judge_check(facts, report, discard, [])
        except PreflightRefused:
            # Refused by the rules already: the trial's refusals belong in the same answer.
            facts.pending_trial = report
            finish_check(facts, sink, facts.warnings, rules_said=False)
            return
        facts.pending_trial = report
    _judge_check(facts, report, sink, facts.warnings)


def finish_check(
    facts: Facts,
    sink: EventSink,
    warnings: list[str],
    cancel: threading.Event | None = None,
    *,
    rules_said: bool = True,
    schema_archive: Callable[[str], Path | None] | None = None,
) -> None:
    """The schema trial ``_check_findings`` deferred, judged as the preflight judges the rules: a
    refusal raises PreflightRefused (nothing has changed the target yet); what it adds is said once
    (the rules' own findings were said by the preflight, unless ``rules_said`` is false)."""
    report = facts.pending_trial
    if report is None:
        return
    facts.pending_trial = None
    from pgshift.catalog.inventory_check import ObjectFilters
    from pgshift.checks import with_trial
    from pgshift.migrate.planner import restore_object_flags

    options = facts.options
    try:
        full = with_trial(
            report,
            facts.source,
            facts.target,
            sink=sink,
            filters=ObjectFilters(options.schemas, options.exclude_schemas, options.tables, options.exclude_tables),
            remedies={name: rem.items for name, rem in facts.remedies.items()},
            restore_args=tuple(f for f in restore_object_flags(options) if f != "--no-tablespaces"),
            remedy_names=options.remedies,
            cancel=cancel,
            schema_archive=schema_archive,
        )
    except psycopg.Error as exc:
        raise query_failed("the preflight's schema trial could not finish", exc) from None
    _judge_check(facts, full, sink, warnings, said=frozenset(report.findings) if rules_said else frozenset())


def _judge_check(
    facts: Facts, report: Any, sink: EventSink, warnings: list[str], said: frozenset[Any] = frozenset()
) -> None:
    """Refuse the run on unaccepted blockers; say the accepted, carried and warned findings (those
    not in ``said``, already said by an earlier judgement of the same check)."""
    from pgshift.checks import Severity

    options = facts.options
    refused: list[tuple[Any, str]] = []
    accepted: list[tuple[Any, str]] = []
    carried: list[tuple[Any, str]] = []
    warned: list[tuple[Any, str]] = []
    for finding in report.findings:
        where = f" [{finding.database}{': ' + finding.object if finding.object else ''}]" if finding.database else ""
        text = f"{finding.rule_id}{where}: {finding.message}"
        if finding.rule_id == "owner-needs-set-role" and options.no_owner:
            continue  # --no-owner: the target role owns what it restores
        if finding.rule_id in HANDLED_BY_MIGRATE:
            if finding not in said:
                sink(Message(f"check: {text} (decided by migrate's preflight)", level=Level.DEBUG))
        elif finding.carried_by is not None:
            carried.append((finding, f"{text} (carried by --remedy {finding.carried_by})"))
        elif finding.severity is Severity.BLOCKER and _extension_left_out(facts, finding.database, finding.object):
            carried.append((finding, f"{text} (left out by --remedy leave-out-extension)"))
        elif finding.severity is Severity.BLOCKER:
            (accepted if finding.rule_id in options.accept else refused).append((finding, text))
        elif finding.severity is Severity.WARNING:
            warned.append((finding, text))
    for finding, text in accepted:
        if finding in said:
            continue
        if finding.remedy:
            consequence = (
                f"; migrate can carry it with --remedy {finding.remedy}, not given, so the restore stops there"
                if finding.remedy != "exclude-object"
                else "; the restore stops there unless it is fixed on the source or left out with --exclude-object"
            )
        else:
            consequence = "; no remedy carries it: expect the restore to fail at this object unless it is fixed first"
        _warn(sink, warnings, f"accepted blocker {text}{consequence}")
    for finding, text in carried:
        if finding not in said:
            sink(Message(f"check: {text}", level=Level.INFO))
    for finding, text in warned:
        if finding in said:
            continue
        if finding.rule_id == "source-taking-writes":
            _warn(sink, warnings, f"check: {text}")  # the report says as of when each database was copied
        else:
            sink(Message(f"check: {text}", level=Level.WARNING))
    facts.check = CheckSummary(
        ran=True,
        blockers=tuple(t for _f, t in accepted) + tuple(t for _f, t in carried),
        warnings=tuple(t for _f, t in warned),
        note=f"{len(refused)} refused",
    )
    if refused:
        lines = []
        for finding, text in refused:
            lines.append(text + (f"\n    fix: {finding.fix}" if finding.remediation else ""))
        ids = sorted({f.rule_id for f, _t in refused})
        carriers = sorted({f.remedy for f, _t in refused if f.remedy and f.remedy != "exclude-object"})
        raise PreflightRefused(
            f"pgshift check found {len(refused)} blocker(s): {', '.join(ids)}",
            detail="\n".join(lines),
            hint="fix them on the source"
            + (f", let migrate carry them with {' '.join(f'--remedy {r}' for r in carriers)}" if carriers else "")
            + ", or override each one knowingly with "
            + " ".join(f"--accept {i}" for i in ids),
        )


def _extension_left_out(facts: Facts, database: str | None, obj: str | None) -> bool:
    """A finding about an extension the leave-out-extension remedy leaves out of that database."""
    remedies = facts.remedies.get(database or "")
    return remedies is not None and obj is not None and obj in remedies.left_out_extensions


def _database_plans(
    facts: Facts,
    chosen: list[DatabaseInfo],
    tconn: Connection,
    journal: Journal | None,
    sink: EventSink,
) -> list[DatabasePlan]:
    options = facts.options
    available = cluster.available_extensions(tconn)
    specs = [parse_object_spec(text) for text in options.exclude_objects]
    check_spec_databases(specs, (d.name for d in chosen))
    plans: list[DatabasePlan] = []
    refusals: list[str] = []
    missing_ext: dict[str, list[str]] = {}
    unreadable: dict[str, tuple[str, ...]] = {}
    rls_blocked: dict[str, tuple[str, ...]] = {}
    can_bypass = facts.source_info.is_superuser
    existing: list[str] = []
    foreign: list[str] = []
    half_done: list[tuple[str, ddl.InProgressMark]] = []
    marks = ddl.in_progress_marks(tconn)
    for db in chosen:
        target_name = options.target_name(db.name)
        entry = journal.database(db.name) if journal is not None else None
        reuse_dump, dump_note = False, ""
        with session(facts.source, db.name) as sconn:
            content = ddl.database_content(sconn)
            extensions = cluster.list_extensions(sconn)
            if not can_bypass:
                can_bypass = ddl.role_can_bypass_rls(sconn)
            if entry is not None and entry.dump_complete and not entry.finished:
                reuse_dump, dump_note = _dump_decision(
                    options, entry, ddl.dump_evidence(sconn), journal.workdir if journal is not None else None
                )
            remedies = DatabaseRemedies()
            if options.remedies or specs:
                remedies = plan_database(
                    sconn,
                    db.name,
                    remedies=options.remedies,
                    specs=specs,
                    target_major=facts.target_info.version.major,
                    target_settings=facts.target_settings,
                    target_extensions=frozenset(available),
                    superuser=facts.target_info.is_superuser,
                )
            remedies.applied += database_settings(options.remedies, facts.target_settings, db.name, db.settings)
            facts.remedies[db.name] = remedies
        ext_plans = []
        for ext in extensions:
            if ext.name in remedies.left_out_extensions:
                continue
            avail = available.get(ext.name)
            ext_plans.append(ExtensionPlan(ext.name, ext.version, ext.schema, avail.default_version if avail else None))
            if avail is None and ext.name not in _BUILTIN_EXTENSIONS:
                missing_ext.setdefault(db.name, []).append(ext.name)
        if content.unreadable:
            unreadable[db.name] = content.unreadable
        if content.rls_tables and not can_bypass:
            rls_blocked[db.name] = content.rls_tables
        action: DatabaseAction
        reason: str
        mark = marks.get(target_name)
        if entry is not None and entry.finished:
            action, reason = "done", "finished in an earlier attempt of this run"
        elif entry is not None and entry.touched_target and (entry.created_by_run or options.data_only):
            assert journal is not None
            ours = mark is not None and mark.run_id == journal.run_id
            if options.data_only:
                # One transaction: a data step cut short left nothing; one that ended was recorded.
                action, reason = "continue", f"left at {entry.state} by this run; continued"
            elif target_name not in facts.target_db_names:
                action, reason = "migrate", f"left at {entry.state} and gone from the target; created again"
            elif ours and entry.step("create-database").done and not entry.step("restore-schema").begun:
                # Created and marked, nothing restored yet: the database stays, the steps left run.
                action, reason = "continue", f"left at {entry.state} by this run; continued where it stopped"
            elif ours and entry.restored(schema_only=options.schema_only):
                # Restored: the steps left run SQL only; the dump is not needed (nor kept).
                action, reason = "continue", f"left at {entry.state} by this run; continued where it stopped"
            elif ours and entry.step("restore-schema").done and reuse_dump:
                # The smallest unit left is redone, not the whole database.
                action, reason = "continue", f"left at {entry.state} by this run; continued where it stopped"
            elif (
                mark is None
                and entry.step("finish").begun
                and ddl.database_comment(tconn, target_name) == (db.comment or None)
            ):
                # Killed after its last statement put the source's comment in place of the mark.
                action, reason = "continue", "finished by this run just before it stopped; its last step is checked"
            elif ours:
                why = "" if reuse_dump or not entry.step("restore-schema").done else " (the dump is taken again)"
                action, reason = "redo", f"left at {entry.state} by this run{why}; dropped and done again"
            elif not entry.step("create-database").done and mark is None and _target_db_empty(facts, target_name):
                # Killed between CREATE DATABASE and its mark: empty, so nothing can be lost.
                action, reason = "redo", "created by this run just before it stopped (empty); dropped and done again"
            else:
                foreign.append(
                    f"database {target_name!r} on the target is not the one this run left half-done (it carries "
                    + (f"the mark of another run, {mark.run_id} in {mark.workdir}" if mark else "no mark of this run")
                    + ")"
                )
                action, reason = "skip", "not this run's database"
        elif mark is not None and not options.data_only:
            if options.if_exists == "drop":
                action, reason = (
                    "drop-and-migrate",
                    (f"left half-done by pgshift run {mark.run_id}; dropped first (--if-exists drop)"),
                )
            else:
                half_done.append((target_name, mark))
                action, reason = "skip", "left half-done by another pgshift run"
        elif options.data_only:
            if target_name not in facts.target_db_names:
                refusals.append(f"--data-only needs the database {target_name!r} to exist on the target")
            action, reason = "migrate", "data only, into the existing database"
        elif target_name in facts.target_db_names:
            if target_name == "postgres" and _target_db_empty(facts, "postgres"):
                action, reason = "migrate", "into the target's empty postgres database"
            elif options.if_exists == "drop":
                action, reason = "drop-and-migrate", "exists on the target; dropped first (--if-exists drop)"
            elif options.if_exists == "skip":
                action, reason = "skip", "exists on the target (--if-exists skip)"
            else:
                action, reason = "migrate", "exists on the target"
                existing.append(target_name)
        else:
            action, reason = "migrate", "new on the target"
        plans.append(
            DatabasePlan(
                source=db.name,
                target=target_name,
                action=action,
                reason=reason,
                size_bytes=db.size_bytes,
                owner=db.owner,
                encoding=db.encoding,
                collate=db.collate,
                ctype=db.ctype,
                locale_provider=db.locale_provider,
                icu_locale=db.icu_locale,
                tables=content.tables,
                extensions=tuple(ext_plans),
                large_objects=content.large_objects,
                reuse_dump=reuse_dump,
                dump_note=dump_note,
                remedies=tuple(remedies.applied),
            )
        )
        if content.large_objects and (options.schemas or options.tables):
            # pg_dump -n/-t leave large objects out; -N/-T do not (pg_dump's --large-objects).
            _warn(
                sink,
                facts.warnings,
                f"database {db.name!r} has {content.large_objects} large objects, which pg_dump leaves out when "
                "--schema/--table filters are given",
            )
    check_specs_found(specs, facts.remedies.values())
    if foreign:
        raise PreflightRefused(
            foreign[0] + ": pgshift drops only databases it created in this run",
            detail="\n".join(foreign[1:]) or None,
            hint="drop or rename that database yourself if it may go, or start a new run (without --resume) "
            "with --rename OLD=NEW",
        )
    if half_done:
        name, mark = half_done[0]
        raise PreflightRefused(
            f"database {name!r} on the target was left half-done by pgshift {mark.operation} run {mark.run_id}; it "
            "is not a copy "
            "to keep or skip",
            detail="\n".join(f"{n}: run {m.run_id} in {m.workdir}" for n, m in half_done[1:]) or None,
            hint=f"continue that run with: {mark.resume_command}, or replace the database with --if-exists drop",
        )
    if existing:
        raise PreflightRefused(
            f"the target already has database {', '.join(repr(e) for e in existing)}",
            hint="drop them, choose other names with --rename OLD=NEW, or pass --if-exists drop (replace them) "
            "or --if-exists skip (leave them)",
        )
    if refusals:
        raise PreflightRefused(refusals[0], detail="\n".join(refusals[1:]) or None)
    moving = {p.source for p in plans if p.moves}
    missing_ext = {k: v for k, v in missing_ext.items() if k in moving}
    if missing_ext:
        names = sorted({e for v in missing_ext.values() for e in v})
        unused = set()
        for db_name, exts in missing_ext.items():
            with session(facts.source, db_name) as sconn:
                unused |= {
                    u.name for u in remedy_catalog.extension_uses(sconn) if u.name in exts and not u.outside_uses
                }
        raise PreflightRefused(
            f"extension {', '.join(names)} is installed on the source but not available on the target",
            detail="\n".join(f"{db}: {', '.join(v)}" for db, v in missing_ext.items()),
            hint=f"install the package that provides {', '.join(names)} on the target server "
            "(e.g. postgresql-contrib or the extension's own package), or drop the extension on the source"
            + (
                f"; nothing uses {', '.join(sorted(unused))}: --remedy leave-out-extension leaves it out"
                if unused
                else ""
            ),
        )
    unreadable = {k: v for k, v in unreadable.items() if k in moving}
    if unreadable:
        first = next(iter(unreadable.items()))
        raise PreflightRefused(
            f"the source role {facts.source.user!r} may not read everything in database {first[0]!r} "
            f"({', '.join(first[1][:5])}{' …' if len(first[1]) > 5 else ''})",
            detail="\n".join(f"{db}: {', '.join(v)}" for db, v in unreadable.items()),
            hint="connect to the source as a superuser, or GRANT the role pg_read_all_data (14+) or SELECT/USAGE "
            "on those objects",
        )
    rls_blocked = {k: v for k, v in rls_blocked.items() if k in moving}
    if rls_blocked:
        first = next(iter(rls_blocked.items()))
        raise PreflightRefused(
            f"database {first[0]!r} has tables with row-level security ({', '.join(first[1][:5])}) and the source "
            f"role {facts.source.user!r} is neither superuser nor BYPASSRLS: pg_dump would fail or lose rows",
            hint="connect to the source as a superuser or a role with BYPASSRLS",
        )
    return plans


def dump_compression(asked: str, client: ClientChoice) -> str:
    """pg_dump's ``--compress`` value for ``--compress asked`` with this client.

    ``auto`` chooses for speed: lz4 costs about what no compression costs and writes a third of
    the bytes; gzip (pg_dump's own default) takes three to four times as long on a busy machine.
    """
    method, _, level = asked.partition(":")
    if method == "auto":
        return "lz4" if dump_compression_supported(client, "lz4") else ("none" if client.major >= 16 else "0")
    if not dump_compression_supported(client, method):
        since = DUMP_COMPRESSIONS[method]
        raise PreflightRefused(
            f"--compress {asked}: pg_dump {client.version.major_label} "
            + (f"writes {method} from {since} on" if client.major < since else f"was built without {method}"),
            hint="give another --compress (none, gzip"
            + (", lz4, zstd" if client.major >= 16 else "")
            + ") or a pg_dump that has it (--pg-bin)",
        )
    if client.major < 16:  # before 16, -Z takes a gzip level only
        return "0" if method == "none" else (level or "6")
    return asked


def _dump_decision(
    options: MigrateOptions, entry: DatabaseRecord, evidence: str, journal_workdir: Path | None
) -> tuple[bool, str]:
    """Reuse an earlier attempt's finished dump only while it is still the source as it is now."""
    if options.dump_reuse == "never":
        return False, "dumped again (--redump)"
    if journal_workdir is not None and not (journal_workdir / "dumps" / entry.dump_dir / "toc.dat").is_file():
        # Removed once restored (its last reading step done): a later attempt has nothing to reuse.
        return False, "dumped again: the earlier dump was removed once the database was restored"
    if options.dump_reuse == "always":
        return True, "the dump of an earlier attempt is reused as asked (--reuse-dump), changed or not"
    if entry.dump_evidence is None:
        return False, "dumped again: the earlier dump carries no evidence of the source's state"
    if entry.dump_evidence != evidence:
        return False, "dumped again: the source database changed since the earlier dump was taken"
    return True, "the dump of an earlier attempt is reused: the source database has not changed since"


def _target_db_empty(facts: Facts, name: str) -> bool:
    with session(facts.target, name) as conn:
        return ddl.database_is_empty(conn)


def _globals_plan(facts: Facts, sconn: Connection, tconn: Connection, journal: Journal | None, sink: EventSink) -> None:
    options = facts.options
    facts.roles = cluster.list_roles(sconn)
    facts.memberships = cluster.list_memberships(sconn)
    if not options.no_privileges and facts.target_info.version.major >= 15:
        facts.parameter_grants = ddl.parameter_grants(sconn)
    facts.tablespaces = [] if options.no_tablespaces else cluster.list_tablespaces(sconn)
    passwords = not options.no_role_passwords
    if passwords and not cluster.can_read_authid(sconn):
        _warn(
            sink,
            facts.warnings,
            f"the source role {facts.source.user!r} may not read pg_authid: role passwords are not copied "
            "(set them again on the target, or connect to the source as a superuser)",
        )
        passwords = False
    if passwords:
        facts.passwords = ddl.role_passwords(sconn)
    created_earlier = journal.roles_of_run(facts.target_roles) if journal is not None else set()
    target_super = facts.target_info.is_superuser
    if (
        not target_super
        and not facts.target_info.can_create_role
        and any(r.name not in facts.target_roles for r in facts.roles)
    ):
        raise PreflightRefused(
            f"the target role {facts.target.user!r} may not create roles, and the source has roles the target lacks",
            hint="connect to the target as a superuser or a role with CREATEROLE, create the roles yourself, "
            "or pass --no-globals together with --no-owner --no-privileges",
        )
    roles = []
    for role in facts.roles:
        if role.name in facts.protected_roles:
            roles.append(RolePlan(role.name, "protected"))
            continue
        if role.name in facts.target_roles and role.name not in created_earlier:
            roles.append(RolePlan(role.name, "exists"))
            continue
        dropped: tuple[str, ...] = ()
        if not target_super:
            dropped = tuple(
                a
                for a, on in (
                    ("SUPERUSER", role.superuser),
                    ("REPLICATION", role.replication),
                    ("BYPASSRLS", role.bypassrls),
                )
                if on
            )
        roles.append(RolePlan(role.name, "create", dropped))
    existing = [r.name for r in roles if r.action == "exists"]
    if existing:
        sink(
            Message(
                f"{len(existing)} role(s) already exist on the target and are left alone: {', '.join(existing[:10])}"
                + (" …" if len(existing) > 10 else ""),
                level=Level.INFO,
            )
        )
    for plan in roles:
        if plan.dropped_attributes:
            _warn(
                sink,
                facts.warnings,
                f"role {plan.name!r}: {', '.join(plan.dropped_attributes)} dropped (the target role "
                f"{facts.target.user!r} is not a superuser and may not grant it)",
            )
    spaces = []
    for ts in facts.tablespaces:
        location = options.tablespace_map.get(ts.name, options.tablespace_map.get(ts.location, ts.location))
        spaces.append((ts.name, location))
    facts.globals_plan = GlobalsPlan(tuple(roles), len(facts.memberships), tuple(spaces), passwords)


def preflight(
    options: MigrateOptions, sink: EventSink, journal: Journal | None = None, *, defer_trial: bool = False
) -> Facts:
    """Connect, read and decide. Raises PreflightRefused/ConnectionFailed/ToolchainError; touches nothing.

    ``defer_trial``: check's schema trial is left for the runner (``finish_check``)."""
    try:
        return _preflight(options, sink, journal, defer_trial)
    except psycopg.Error as exc:
        raise query_failed(
            "the preflight could not read the servers",
            exc,
            hint="let the session holding the lock finish, then run again; --no-check skips check's inventory"
            if isinstance(exc, psycopg.errors.LockNotAvailable)
            else None,
        ) from None


def _preflight(options: MigrateOptions, sink: EventSink, journal: Journal | None, defer_trial: bool) -> Facts:
    sink(Message("connecting to the source and the target", level=Level.DEBUG))
    source = resolve(options.source)
    target = resolve(options.target)
    with session(source) as sconn, session(target) as tconn:
        source_info = cluster.server_info(sconn)
        target_info = cluster.server_info(tconn)
        warnings: list[str] = []
        if source_info.same_server_as(target_info):
            # Not only pointless: with --if-exists drop the target's DROP DATABASE would destroy
            # the source before it is dumped.
            raise PreflightRefused(
                f"the source and the target are the same server ({source.display()} and {target.display()})",
                hint="name another server as TARGET; to copy a database within one server use "
                "CREATE DATABASE new TEMPLATE old",
            )
        if journal is not None:
            _same_servers_as_recorded(journal, source, source_info, target, target_info)
        direction = check_direction(source_info.version, target_info.version, allow_downgrade=options.allow_downgrade)
        if not direction.allowed:
            raise PreflightRefused(
                direction.reason or "the target is older than the source",
                hint="migrate to a target of the same or a newer major, or pass --allow-downgrade knowingly",
            )
        if direction.warning:
            _warn(sink, warnings, direction.warning)
        if target_info.in_recovery:
            raise PreflightRefused(
                "the target server is a standby (in recovery) and cannot be written",
                hint="point TARGET at the primary server",
            )
        client = _choose_client(options, source_info.version, target_info.version)
        for w in client.warnings:
            _warn(sink, warnings, w)
        for program in ("pg_dump", "pg_restore"):
            source.require_client_support(client.major, program)
            target.require_client_support(client.major, program)
        dump_compress = dump_compression(options.compress, client)
        if not source_info.is_superuser:
            _warn(
                sink,
                warnings,
                f"the source role {source.user!r} is not a superuser: subscriptions, event triggers and some "
                "ownerships may not be dumped",
            )
        if not (target_info.is_superuser or target_info.can_create_db) and not options.data_only:
            raise PreflightRefused(
                f"the target role {target.user!r} may not create databases",
                hint="connect to the target as a superuser or a role with CREATEDB",
            )
        found = cluster.list_databases(sconn)
        facts = Facts(
            options=options,
            source=source,
            target=target,
            source_info=source_info,
            target_info=target_info,
            client=client,
            databases=[],
            source_dbs={d.name: d for d in found},
            target_db_names=ddl.database_names(tconn),
            warnings=warnings,
        )
        facts.dump_compress = dump_compress
        facts.target_roles = ddl.role_names(tconn)
        facts.target_settings = remedy_catalog.known_settings(tconn)
        facts.protected_roles = {target_info.current_user, ddl.bootstrap_superuser(tconn)}
        chosen = _select_databases(options, found, warnings, sink)
        if not chosen:
            raise PreflightRefused(
                "there is no database to move",
                hint="the source holds only postgres and templates; name databases with --database "
                "(--database postgres moves the contents of postgres)",
            )
        facts.databases = _database_plans(facts, chosen, tconn, journal, sink)
        moving = [p for p in facts.databases if p.moves]
        facts.parallel_databases = max(1, min(options.jobs, len(moving)))
        facts.jobs_per_database = max(1, options.jobs // facts.parallel_databases)
        _check_connections(facts, sconn, tconn, sink)
        if options.globals:
            _globals_plan(facts, sconn, tconn, journal, sink)
            created = set(facts.globals_plan.created) if facts.globals_plan else set()
            moved = {p.source for p in moving}
            for role in facts.roles:
                for database, setting in role.settings:
                    if database and database not in moved:
                        continue  # set IN DATABASE of a database this run leaves alone
                    if role.name in created and drops_setting(options.remedies, facts.target_settings, setting):
                        scope = f" IN DATABASE {database}" if database else ""
                        facts.global_remedies.append(
                            AppliedRemedy(
                                "drop-removed-settings",
                                None,
                                "role",
                                role.name,
                                f"ALTER ROLE …{scope} SET {setting.split('=', 1)[0]} left out",
                            )
                        )
    if moving:
        _check_findings(facts, [p.source for p in moving], sink, defer_trial=defer_trial)
    return facts


def server_identity(endpoint: ResolvedEndpoint, info: ServerInfo) -> dict[str, Any]:
    """What the journal records of a server, to recognise it on resume whatever name reaches it."""
    return {
        "system_identifier": info.system_identifier,
        "version": str(info.version),
        "address": endpoint.display(),
    }


def _same_servers_as_recorded(
    journal: Journal,
    source: ResolvedEndpoint,
    source_info: ServerInfo,
    target: ResolvedEndpoint,
    target_info: ServerInfo,
) -> None:
    """A resume runs on the servers the run started on; another server makes a new run."""
    for role, endpoint, info in (("source", source, source_info), ("target", target, target_info)):
        recorded = journal.header.get(f"{role}_identity")
        if not recorded:
            continue
        now = server_identity(endpoint, info)
        then_id, now_id = recorded.get("system_identifier"), now["system_identifier"]
        if then_id is not None and now_id is not None:
            same = then_id == now_id
        else:  # pg_control_system() not granted: the address is all there is
            same = recorded.get("address") == now["address"]
        if not same:
            raise PreflightRefused(
                f"the {role} is not the server this run started on: the journal names {recorded.get('address')} "
                f"(PostgreSQL {recorded.get('version')}, system identifier {then_id}), but {now['address']} is "
                f"PostgreSQL {now['version']}, system identifier {now_id}",
                hint=f"resume against the run's own {role} (give it again after --resume), or start a new run "
                "without --resume to move the databases to this server",
            )


def _check_connections(facts: Facts, sconn: Connection, tconn: Connection, sink: EventSink) -> None:
    """Enough free connections on both servers for --jobs (pg_dump -j N opens N+1)."""
    from pgshift.catalog.connections import connection_shortage

    need = facts.parallel_databases * (facts.jobs_per_database + 1) + 1
    for role, conn, info in (("source", sconn, facts.source_info), ("target", tconn, facts.target_info)):
        short = connection_shortage(
            conn,
            role,
            jobs=facts.options.jobs,
            need=need,
            jobs_within=lambda free: (free - 2) // 2 if free > 3 else 1,
            superuser=info.is_superuser,
        )
        if short is not None:
            raise PreflightRefused(short.message, hint=short.hint)
    if not facts.options.verify:
        return
    # One more source session per database for the snapshot it is verified in, held from its dump
    # to the end of verify.
    held = sum(1 for p in facts.databases if p.moves)
    short = connection_shortage(
        sconn,
        "source",
        jobs=facts.options.jobs,
        need=need + held,
        jobs_within=lambda free: free,
        superuser=facts.source_info.is_superuser,
    )
    if short is None:
        facts.verify_in_snapshots = True
        return
    sink(
        Message(
            f"verify will compare with the source as it is then, not as of each database's dump: holding {held} "
            f"snapshot session(s) beside --jobs {facts.options.jobs} needs {need + held} free connection(s) on the "
            f"source, which has {short.free}",
            level=Level.INFO,
        )
    )
