"""The check engine: inventory both servers, choose the client, run every rule that applies."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pgshift import paths
from pgshift.catalog import cluster
from pgshift.catalog import inventory_check as inv
from pgshift.catalog.cluster import ServerInfo
from pgshift.catalog.session import SAFE_OPTIONS, Connection, resolve, session
from pgshift.checks import CheckReport, ClientAdvice, Estimates, Finding, Selection, Skipped
from pgshift.checks.databases import choose_databases
from pgshift.checks.rule import Context, Hit, LeftOut, Rule, Scope
from pgshift.conninfo import Endpoint, ResolvedEndpoint
from pgshift.errors import PgshiftError, UsageError
from pgshift.events import EventSink, Level, Message, StepFinished, StepProgress, StepStarted, discard
from pgshift.toolchain.discover import discover
from pgshift.toolchain.select import ClientChoice, select_client
from pgshift.version import (
    NEWEST_KNOWN_MAJOR,
    OLDEST_SUPPORTED_SOURCE,
    Major,
    PgVersion,
    major_label,
    major_order,
)

if TYPE_CHECKING:
    from pgshift.migrate.plan import ItemChange
    from pgshift.migrate.remedies import ObjectSpec

# Every check session is read-only: a rule that tried to write would fail, not write. Text arrives
# in the database's own encoding, decoded by the catalog session (SQL_ASCII included, see session.py):
# forcing UTF8 made a SQL_ASCII server validate its bytes and refuse any that were not UTF-8.
_OPTIONS = SAFE_OPTIONS + " -c default_transaction_read_only=on"
# The session that finds what -t/-T patterns match runs on the role's own search_path, as pg_dump's
# lookup does (it resets search_path for it): unqualified patterns match the tables visible there.
_SELECTION_OPTIONS = "-c statement_timeout=0 -c lock_timeout=10000 -c default_transaction_read_only=on"


def _client_advice(
    src: ResolvedEndpoint,
    tgt: ResolvedEndpoint | None,
    source_version: PgVersion,
    target_version: PgVersion,
    databases: Sequence[str],
    jobs: int,
    pg_bins: Sequence[Path],
    superuser: bool,
    work_dir: Path,
    chosen: ClientChoice | None = None,
    filters: inv.ObjectFilters | None = None,
    renames: Mapping[str, str] | None = None,
) -> ClientAdvice:
    if chosen is not None:  # the caller (migrate's preflight) chose already, Docker included
        choice = chosen
    else:
        # A wrong --pg-bin is the user's error (exit 4); no client fitting is a finding (a blocker).
        discovery = discover(pg_bins)
        try:
            choice = select_client(discovery, source_version, target_version)
        except PgshiftError as exc:
            return ClientAdvice(
                None, None, None, reason=exc.message, error=exc.message + (f" ({exc.hint})" if exc.hint else "")
            )
    return ClientAdvice(
        program_major=choice.version.major_label,
        version=str(choice.version),
        where=choice.where,
        reason=choice.reason,
        warnings=choice.warnings,
        dump_flags=choice.dump_flags,
        commands=manual_commands(
            choice, src, tgt, databases, jobs, superuser, work_dir, filters=filters, renames=renames
        ),
        choice=choice,
    )


def manual_commands(
    choice: ClientChoice,
    src: ResolvedEndpoint,
    tgt: ResolvedEndpoint | None,
    databases: Sequence[str],
    jobs: int,
    superuser: bool,
    work_dir: Path,
    *,
    filters: inv.ObjectFilters | None = None,
    renames: Mapping[str, str] | None = None,
) -> tuple[str, ...]:
    """The commands a DBA would type for the same move (passwords come from PGPASSWORD/.pgpass)."""
    import shlex

    def q(text: str) -> str:
        return shlex.quote(text)

    target_db = tgt.child_conninfo("postgres") if tgt is not None else "host=TARGET dbname=postgres"
    tgt_postgres = target_db
    flags = " ".join([*choice.dump_flags, *(q(a) for a in (filters.dump_args() if filters else ()))])
    rflags = "".join(f" {f}" for f in choice.restore_flags)
    renames = renames or {}
    lines = [
        f"# clients: PostgreSQL {choice.version} ({choice.where}); set PGPASSWORD or use ~/.pgpass",
        f"mkdir -p {q(str(work_dir))}",
        f"{q(choice.program('pg_dumpall'))} --globals-only"
        + ("" if superuser else " --no-role-passwords")
        + f" --dbname={q(src.child_conninfo('postgres'))} --file={q(str(work_dir / 'globals.sql'))}",
        f"{q(choice.program('psql'))} -X -v ON_ERROR_STOP=0 --dbname={q(target_db)}"
        f" --file={q(str(work_dir / 'globals.sql'))}",
    ]
    for db in databases:
        archive = work_dir / f"{db}.dump"
        lines.append(
            f"{q(choice.program('pg_dump'))} --format=directory --jobs={jobs}"
            + (f" {flags}" if flags else "")
            + f" --dbname={q(src.child_conninfo(db))} --file={q(str(archive))}"
        )
        if db == "postgres" and db not in renames:
            # postgres exists on every server: restore into it rather than creating it.
            lines.append(
                f"{q(choice.program('pg_restore'))}{rflags} --jobs={jobs} --dbname={q(tgt_postgres)} {q(str(archive))}"
            )
        elif db in renames:
            # --create would name the database as on the source: create the new name, restore into it.
            new = renames[db]
            new_db = tgt.child_conninfo(new) if tgt is not None else f"host=TARGET dbname={new}"
            create = f"CREATE DATABASE {_ident(new)} TEMPLATE template0"
            lines.append(f"{q(choice.program('psql'))} -X --dbname={q(target_db)} -c {q(create)}")
            restore = q(choice.program("pg_restore"))
            lines.append(f"{restore}{rflags} --exit-on-error --jobs={jobs} --dbname={q(new_db)} {q(str(archive))}")
        else:
            lines.append(
                f"{q(choice.program('pg_restore'))}{rflags} --create --exit-on-error --jobs={jobs}"
                f" --dbname={q(target_db)} {q(str(archive))}"
            )
    vacuumdb = str(Path(choice.program("psql")).with_name("vacuumdb")) if choice.installation else "vacuumdb"
    lines.append(f"{q(vacuumdb)} --all --analyze-in-stages --dbname={q(target_db)}")
    return tuple(lines)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _estimates(
    source: inv.SourceInventory,
    target: inv.TargetInventory | None,
    jobs: int,
    work_dir: Path,
) -> Estimates:
    checked = {d.name for d in source.checked}
    db_bytes = sum(d.size_bytes or 0 for d in source.databases if d.name in checked)
    table_bytes = sum(d.table_data_bytes + d.large_object_bytes for d in source.checked)
    index_bytes = sum(d.index_bytes for d in source.checked)

    def available(server: ServerInfo, in_use: int | None) -> int | None:
        try:
            total = int(server.settings["max_connections"]) - int(
                server.settings.get("superuser_reserved_connections", 3)
            )
        except (KeyError, ValueError):
            return None
        return total - (in_use or 0)

    probe = work_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free: int | None = shutil.disk_usage(probe).free
    except OSError:
        free = None
    # A directory-format dump holds table data (compressed, so this is an upper bound) plus the
    # large objects and a small schema; indexes are rebuilt, not copied.
    dump_estimate = table_bytes + 1024 * 1024 * max(1, len(source.checked))
    return Estimates(
        databases_bytes=db_bytes,
        table_data_bytes=table_bytes,
        index_bytes=index_bytes,
        jobs=jobs,
        # pg_dump -j N opens N worker connections plus its leader; pgshift keeps one session.
        source_connections_needed=jobs + 2,
        source_connections_available=available(source.server, None),
        # pg_restore -j N opens N connections; pgshift keeps one session.
        target_connections_needed=jobs + 1,
        target_connections_available=available(target.server, target.connections_in_use) if target else None,
        work_dir=str(work_dir),
        work_dir_free_bytes=free,
        dump_bytes_estimate=dump_estimate,
        work_dir_fits=None if free is None else free > dump_estimate,
    )


def _to_findings(rule: Rule, hits: list[Hit]) -> list[Finding]:
    return [
        Finding(
            rule_id=rule.id,
            severity=hit.severity or rule.severity,
            title=rule.title,
            message=hit.message,
            remediation=hit.remediation or rule.remediation,
            database=hit.database,
            object=hit.object,
            changed_in=rule.changed_in,
            remedy=hit.remedy or rule.remedy,
        )
        for hit in hits
    ]


def run(
    source: Endpoint | ResolvedEndpoint,
    target: Endpoint | ResolvedEndpoint | None,
    *,
    target_version: int | None = None,
    databases: Sequence[str] | None = None,
    jobs: int = 2,
    pg_bins: Sequence[Path] = (),
    sink: EventSink = discard,
    work_dir: Path | None = None,
    chosen_client: ClientChoice | None = None,
    exclude_databases: Sequence[str] = (),
    renames: Mapping[str, str] | None = None,
    filters: inv.ObjectFilters | None = None,
    remedies: Mapping[str, Sequence[ItemChange]] | None = None,
    remedy_names: Sequence[str] = (),
    exclude_objects: Sequence[ObjectSpec] = (),
    tablespace_map: Mapping[str, str] | None = None,
    restore_args: tuple[str, ...] = (),
) -> CheckReport:
    """The rules' findings (see ``run_check``). ``remedies``: the item changes migrate's preflight
    planned, per database; else, with ``remedy_names``/``exclude_objects``, they are planned here
    as migrate's preflight plans them, on the databases checked."""
    from pgshift.checks.rules import ALL_RULES
    from pgshift.migrate import remedies as remedy_plan

    renames = dict(renames or {})
    filters = filters if filters else None  # no filter given: nothing to select
    if filters is not None:
        # Patterns pg_dump refuses whatever the database (too many dots …) are usage errors, before connecting.
        for text in (*filters.schemas, *filters.exclude_schemas):
            inv.name_pattern(text, tables=False)
        for text in (*filters.tables, *filters.exclude_tables):
            inv.name_pattern(text, tables=True)

    started = time.monotonic()
    if jobs < 1:
        raise UsageError("--jobs must be at least 1")
    if target_version is not None and major_order(target_version) < major_order(OLDEST_SUPPORTED_SOURCE):
        raise UsageError(
            f"--target-version {major_label(target_version)} is older than any major pgshift supports",
            hint=f"give a major of {OLDEST_SUPPORTED_SOURCE} or newer",
        )
    work_dir = work_dir or (paths.state_dir() / "work")
    sink(StepStarted("connecting to the source", step="check:connect"))
    # migrate's preflight hands over the endpoints it resolved: each server is resolved once per run.
    src = source if isinstance(source, ResolvedEndpoint) else resolve(source)
    tgt = target if isinstance(target, ResolvedEndpoint) or target is None else resolve(target)
    sink(StepFinished("connected", step="check:connect"))

    with session(src, options=_OPTIONS) as main:
        writes_at_start, xid_at_start, started_at = cluster.row_writes(main), cluster.next_xid(main), time.monotonic()
        source_inv = inv.cluster_inventory(main, src.display())
        source_major = source_inv.server.version.major
        if source_major < OLDEST_SUPPORTED_SOURCE:
            raise UsageError(
                f"the source is PostgreSQL {source_inv.server.version}; pgshift checks sources from "
                f"{OLDEST_SUPPORTED_SOURCE} on"
            )
        target_inv: inv.TargetInventory | None = None
        with contextlib.ExitStack() as stack:
            tconn: Connection | None = None
            if tgt is not None:
                tconn = stack.enter_context(session(tgt, options=_OPTIONS))
                target_inv = inv.target_inventory(tconn, tgt.display())
                tmajor = target_inv.server.version.major
                if major_order(tmajor) < major_order(OLDEST_SUPPORTED_SOURCE):
                    raise UsageError(
                        f"the target is PostgreSQL {target_inv.server.version}; pgshift moves databases to "
                        f"{OLDEST_SUPPORTED_SOURCE} or newer"
                    )
                if target_version is not None and target_version != tmajor:
                    sink(
                        Message(
                            f"--target-version {target_version} ignored: the target server is {tmajor}",
                            level=Level.WARNING,
                        )
                    )
            else:
                tmajor = Major(target_version if target_version is not None else NEWEST_KNOWN_MAJOR)

            wanted, unconnectable = _databases_to_check(source_inv, databases, exclude_databases)
            unknown = [r for r in renames if r not in wanted]
            if unknown:
                raise UsageError(
                    f"--rename names {', '.join(repr(u) for u in unknown)}, which is not among the databases to move",
                    hint="rename only databases the move includes (see --database / --exclude-database)",
                )
            targets = list(renames.values())
            dupes = sorted({t for t in targets if targets.count(t) > 1})
            if dupes:
                raise UsageError(f"--rename maps several databases to {', '.join(dupes)}")
            client = _client_advice(
                src,
                tgt,
                source_inv.server.version,
                target_inv.server.version if target_inv else PgVersion.from_major(tmajor),
                wanted,
                jobs,
                pg_bins,
                source_inv.privileges.superuser,
                work_dir,
                chosen=chosen_client,
                filters=filters,
                renames=renames,
            )

            applicable = [r for r in ALL_RULES if r.applies(source_major, tmajor)]
            runnable = [r for r in applicable if not (r.needs_target and target_inv is None)]
            skipped = [
                Skipped(r.id, r.title, f"needs the target server (offline check for {tmajor}); give TARGET to run it")
                for r in applicable
                if r.needs_target and target_inv is None
            ]

            sink(StepStarted(f"checking {len(wanted)} database(s)", step="check:databases", total=len(wanted)))
            db_rules = [r for r in runnable if r.scope is Scope.DATABASE]
            done = iter(range(1, len(wanted) + 1))
            plan_here = remedies is None and bool(remedy_names or exclude_objects)
            if plan_here:
                remedy_plan.check_spec_databases(exclude_objects, wanted)
                known, available = _target_names(main, source_inv, target_inv, tmajor)

            def check_database(
                item: tuple[int, str],
            ) -> tuple[inv.DatabaseInventory, inv.DumpSelection | None, list[Finding], remedy_plan.DatabaseRemedies]:
                i, db = item
                selection = None
                if filters is not None:
                    with session(src, db, options=_SELECTION_OPTIONS) as own_path:
                        selection = inv.dump_selection(own_path, db, filters)
                with session(src, db, options=_OPTIONS) as conn:
                    planned = remedy_plan.DatabaseRemedies(items=list((remedies or {}).get(db, ())))
                    if plan_here:
                        planned = remedy_plan.plan_database(
                            conn,
                            db,
                            remedies=remedy_names,
                            specs=exclude_objects,
                            target_major=tmajor,
                            target_settings=known,
                            target_extensions=available,
                            superuser=target_inv.privileges.superuser if target_inv is not None else True,
                        )
                        info = next(d for d in source_inv.databases if d.name == db)
                        planned.applied += remedy_plan.database_settings(remedy_names, known, db, info.settings)
                    dbi = inv.database_inventory(conn, db)
                    if selection is not None:
                        dbi = inv.within_selection(conn, dbi, selection)
                    ctx = Context(
                        source_inv,
                        target_inv,
                        tmajor,
                        conn,
                        db,
                        client,
                        jobs,
                        db_inventory=dbi,
                        target_conn=tconn,
                        first_database=i == 0,
                        moving=frozenset(wanted),
                        selection=selection,
                        renames=renames,
                        left_out=LeftOut.of(planned.items),
                        restore_args=restore_args,
                    )
                    found = _run_rules(db_rules, ctx, sink, skipped)
                sink(StepProgress(f"checked {db}", step="check:databases", completed=next(done), total=len(wanted)))
                return dbi, selection, found, planned

            # Databases are checked in parallel, up to --jobs sessions (the move would use as many).
            workers = max(1, min(jobs, 4, len(wanted)))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pgshift-check") as pool:
                results = list(pool.map(check_database, enumerate(wanted)))
            checked = [dbi for dbi, _, _, _ in results]
            selections = tuple(sel for _, sel, _, _ in results if sel is not None)
            findings: list[Finding] = [f for _, _, found, _ in results for f in found]
            planned_by_db = {db: planned for db, (_, _, _, planned) in zip(wanted, results, strict=True)}
            if plan_here:
                remedy_plan.check_specs_found(exclude_objects, planned_by_db.values())
            sink(StepFinished("databases checked", step="check:databases"))
            source_inv = replace(source_inv, checked=tuple(checked))
            estimates = _estimates(source_inv, target_inv, jobs, work_dir)
            ctx = Context(
                source_inv,
                target_inv,
                tmajor,
                main,
                None,
                client,
                jobs,
                estimates=estimates,
                target_conn=tconn,
                moving=frozenset(wanted),
                unconnectable=unconnectable,
                renames=renames,
                tablespace_map=dict(tablespace_map or {}),
                writes_at_start=writes_at_start,
                xid_at_start=xid_at_start,
                started_at=started_at,
            )
            findings = _run_rules([r for r in runnable if r.scope is Scope.CLUSTER], ctx, sink, skipped) + findings

    order = {r.id: i for i, r in enumerate(ALL_RULES)}
    findings.sort(key=lambda f: (-f.severity.rank, order.get(f.rule_id, 0), f.database or "", f.object or ""))
    return CheckReport(
        source=source_inv,
        target=target_inv,
        target_version=tmajor,
        offline=target_inv is None,
        findings=tuple(findings),
        skipped=tuple(skipped),
        client=client,
        estimates=estimates,
        rules_run=tuple(r.id for r in runnable),
        seconds=time.monotonic() - started,
        selection=Selection(
            databases=tuple(wanted),
            exclude_databases=tuple(exclude_databases),
            renames=renames,
            filters=filters or inv.ObjectFilters(),
            per_database=selections,
        ),
        remedies=tuple(a for planned in planned_by_db.values() for a in planned.applied),
        item_changes={db: tuple(planned.items) for db, planned in planned_by_db.items() if planned.items},
    )


def _target_names(
    conn: Connection, source: inv.SourceInventory, target: inv.TargetInventory | None, target_major: int
) -> tuple[frozenset[str], frozenset[str]]:
    """The parameters and extensions the target has, for the remedies: the target's own; without a
    target server, the source's less what the planned major removed (the rules' tables)."""
    from pgshift.catalog import remedies as remedy_catalog
    from pgshift.checks.rules.extensions import REMOVED_EXTENSIONS
    from pgshift.checks.rules.roles import REMOVED_SETTINGS

    if target is not None:
        return frozenset(n.lower() for n in target.setting_names), frozenset(target.extensions)
    source_major = source.server.version.major

    def gone(since: int) -> bool:
        return source_major < since <= target_major

    settings = remedy_catalog.known_settings(conn) - {n for n, since in REMOVED_SETTINGS.items() if gone(since)}
    extensions = remedy_catalog.available_extensions(conn) - {
        n for n, since in REMOVED_EXTENSIONS.items() if gone(since)
    }
    return settings, extensions


def _run_rules(rules: list[Rule], ctx: Context, sink: EventSink, skipped: list[Skipped]) -> list[Finding]:
    import psycopg

    out: list[Finding] = []
    for rule in rules:
        try:
            # Only what the move carries: objects the object filters leave out are no hazard of it.
            out += _to_findings(rule, [hit for hit in rule.run(ctx) if ctx.moves(hit)])
        except psycopg.Error as exc:
            # One rule's query failing (a privilege, an unexpected catalog) must not hide the others.
            where = f" in database {ctx.database}" if ctx.database else ""
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if isinstance(exc, psycopg.errors.InsufficientPrivilege):
                reason = f"permission denied{where}: {first}"
            else:
                reason = f"rule failed{where}: {first}"
            if not any(s.rule_id == rule.id and s.reason == reason for s in skipped):
                skipped.append(Skipped(rule.id, rule.title, reason))
            sink(Message(f"rule {rule.id} skipped: {reason}", level=Level.WARNING))
    return out


def _databases_to_check(
    source: inv.SourceInventory, databases: Sequence[str] | None, exclude: Sequence[str] = ()
) -> tuple[list[str], dict[str, str]]:
    """migrate's choice, from the one rule both commands share (``checks.databases``): the databases
    to check, and those left out as they refuse connections (rule datallowconn-false says which)."""
    chosen, left_out = choose_databases(source.databases, databases, exclude)
    return [d.name for d in chosen], left_out
