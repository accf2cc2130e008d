"""The planner: the facts of the preflight (and the journal, on resume) become the plan's steps.

Every statement and every command line a migration runs is made here, once: ``--dry-run``
prints these steps and the runner executes them (``steps.EXECUTORS``), nothing else.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pgshift.catalog import cluster, ddl
from pgshift.catalog import streaming as streaming_sql
from pgshift.catalog.ddl import Grant, Statement
from pgshift.catalog.session import connect, session
from pgshift.migrate.journal import DatabaseRecord, Journal
from pgshift.migrate.options import MigrateOptions
from pgshift.migrate.plan import Action, DatabasePlan, ItemChange, MigrationPlan, ProgramCall, Step, StepKind
from pgshift.migrate.preflight import Facts
from pgshift.migrate.remedies import drops_setting
from pgshift.migrate.workdir import GLOBALS, dump_dir_name
from pgshift.toolchain.clients import run_client
from pgshift.units import human_size

# Statements that leave a setting the target does not know undone (with a warning), not failed.
_UNKNOWN_SETTING = ("undefined_object", "invalid_parameter_value", "cant_change_runtime_param")

# --- statements ----------------------------------------------------------------------------------


def role_actions(facts: Facts) -> list[Action]:
    plan = facts.globals_plan
    if plan is None:
        return []
    by_name = {r.name: r for r in facts.roles}
    out: list[Action] = []
    self_grant = facts.target_version.major < 16 and not facts.target_info.is_superuser and not facts.options.no_owner
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
                tolerates=("duplicate_object",),
            )
        )
        if self_grant:
            # Before 16 a CREATEROLE role is no member of the roles it creates, and owning as another role
            # (CREATE DATABASE … OWNER, pg_restore's ALTER … OWNER TO) needs membership: granted to itself,
            # as 16's createrole_self_grant = 'set, inherit' does. verify expects it (target-own-role).
            out.append(
                Action(
                    f"role {role.name}",
                    ddl.grant_role_to(role.name, facts.target_info.current_user),
                    requires_role=role.name,
                )
            )
        if role.comment:
            out.append(
                Action(f"role {role.name}", ddl.comment_on_role(role.name, role.comment), requires_role=role.name)
            )
        for database, setting in role.settings:
            if database is None and not _setting_dropped(facts, setting):
                out.append(
                    Action(
                        f"role {role.name}",
                        ddl.alter_role_set(role.name, setting),
                        setting=True,
                        tolerates=_UNKNOWN_SETTING,
                        requires_role=role.name,
                    )
                )
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
        out.append(
            Action(
                f"membership of {m.member} in {m.role}",
                ddl.grant_membership(m, facts.target_version),
                requires_role=m.member,
            )
        )
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
        if ts.comment:
            out.append(Action(f"tablespace {ts.name}", ddl.comment_on_tablespace(ts.name, ts.comment)))
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
        Action(f"extension {ext.name}", ddl.create_extension(ext.name, ext.schema), tolerates=("invalid_schema_name",))
        for ext in dbp.extensions
        if ext.target_version is not None and ext.name != "plpgsql"
    ]


def _setting_dropped(facts: Facts, setting: str) -> bool:
    return drops_setting(facts.options.remedies, facts.target_settings, setting)


def database_actions(
    facts: Facts,
    dbp: DatabasePlan,
    grants: list[Grant],
    *,
    create: bool,
    target_tablespaces: set[str],
    run_id: str,
    workdir: str,
    operation: str = "migration",
) -> tuple[list[Action], list[str]]:
    """CREATE DATABASE and its properties: owner, tablespace, connlimit, comment, settings, grants.

    ``operation`` names, in the database's in-progress mark, what is filling it ("migration" or
    "restore"): another run that meets the database says which command continues it."""
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
        out.append(Action(about, ddl.mark_in_progress(dbp.target, run_id, workdir, operation)))
    for setting in db.settings:
        if _setting_dropped(facts, setting):
            continue
        out.append(Action(about, ddl.alter_database_set(dbp.target, setting), setting=True, tolerates=_UNKNOWN_SETTING))
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
            if database == dbp.source and not _setting_dropped(facts, setting):
                out.append(
                    Action(
                        f"role {role.name}",
                        ddl.alter_role_set(role.name, setting, dbp.target),
                        setting=True,
                        tolerates=_UNKNOWN_SETTING,
                    )
                )
    return out


# --- commands ------------------------------------------------------------------------------------


# The snapshot pgshift exports for a database's dump when the step runs: stream mode's copy shares
# it, and verify reads the source in it (``Facts.verify_in_snapshots``).
SNAPSHOT_ARG = "--snapshot=<exported when the step runs>"


def streams(facts: Facts) -> bool:
    """Stream mode moves data by COPY from the source to the target (schema-only runs dump it)."""
    return facts.options.mode == "stream" and not facts.options.schema_only


def dump_args(facts: Facts, dbp: DatabasePlan, dump_dir: Path) -> list[str]:
    options = facts.options
    stream = streams(facts)
    args = [
        "--format=directory",
        # Stream mode dumps the schema alone: nothing for several jobs to share.
        f"--jobs={1 if stream else facts.jobs_per_database}",
        f"--file={dump_dir}",
        "--no-password",
        "--verbose",
    ]
    if stream:
        args.append("--schema-only")
    else:
        args.append(f"--compress={facts.dump_compress}")
    if stream or facts.verify_in_snapshots:
        args.append(SNAPSHOT_ARG)
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


RestorePart = Literal["schema", "data", "triggers"]


def restore_args(
    facts: Facts, dbp: DatabasePlan, dump_dir: Path, part: RestorePart, *, use_list: Path | None = None
) -> list[str]:
    """pg_restore of one part: the schema (pre-data), or the data with indexes and constraints (post-data).

    Apart, the data part can be resumed item by item (see ``remaining_items``); within it, as in one
    pg_restore, indexes of a table are built while other tables still load.
    """
    options = facts.options
    args = [f"--dbname={facts.target.child_conninfo(dbp.target)}", "--no-password", "--verbose"]
    if options.data_only:
        # One transaction: a failed or killed data-only restore leaves nothing half-loaded.
        args.append("--single-transaction")
        if facts.target_info.is_superuser:
            args.append("--disable-triggers")
    elif part == "schema":
        args.append("--section=pre-data")
    elif part == "triggers":
        args.append("--section=post-data")
    else:
        args += ["--section=data", "--section=post-data", f"--jobs={facts.jobs_per_database}"]
    if use_list is not None:
        args.append(f"--use-list={use_list}")
    if not tolerate_transaction_timeout(facts):
        args.append("--exit-on-error")
    args += [*restore_object_flags(options), *facts.client.restore_flags]
    args.append(str(dump_dir))
    return args


def restore_object_flags(options: MigrateOptions) -> list[str]:
    """What of the objects' ownerships, grants and tablespaces a restore leaves out (the options')."""
    return [
        *(["--no-owner"] if options.no_owner else []),
        *(["--no-privileges"] if options.no_privileges else []),
        *(["--no-tablespaces"] if options.no_tablespaces else []),
    ]


def remedy_use_list(dump_dir: Path) -> Path:
    """The ``--use-list`` file of a restore the remedies leave items out of (written when it runs)."""
    return dump_dir.with_name(dump_dir.name + ".remedies.list")


def data_use_list(dump_dir: Path) -> Path:
    """The ``--use-list`` of the data step: the dump without its triggers (``archive.trigger_ids``),
    and without what remedies leave out (written when it runs)."""
    return dump_dir.with_name(dump_dir.name + ".data.list")


def triggers_use_list(dump_dir: Path) -> Path:
    """The ``--use-list`` of the restore-triggers step: the triggers the target lacks (written when it runs)."""
    return dump_dir.with_name(dump_dir.name + ".triggers.list")


def schema_script(dump_dir: Path) -> Path:
    return dump_dir.with_name(dump_dir.name + ".pre-data.sql")


def remedied_script(dump_dir: Path) -> Path:
    return dump_dir.with_name(dump_dir.name + ".pre-data.remedied.sql")


def script_args(facts: Facts, dump_dir: Path, script: Path, *, use_list: Path | None) -> list[str]:
    """pg_restore of the pre-data as SQL: with --verbose each item starts with its TOC entry header."""
    args = ["--section=pre-data", "--verbose", f"--file={script}"]
    if use_list is not None:
        args.append(f"--use-list={use_list}")
    return [*args, *restore_object_flags(facts.options), *facts.client.restore_flags, str(dump_dir)]


def psql_script_args(facts: Facts, dbp: DatabasePlan, script: Path) -> list[str]:
    return [
        "--no-psqlrc",
        "--quiet",
        "--no-password",
        "--set=ON_ERROR_STOP=1",
        f"--dbname={facts.target.child_conninfo(dbp.target)}",
        f"--file={script}",
    ]


def _change_text(item: ItemChange) -> str:
    parts = []
    if item.plain_columns:
        parts.append("plain column " + ", ".join(item.plain_columns))
    if item.drop_settings:
        parts.append("without SET " + ", ".join(item.drop_settings))
    return "; ".join(parts)


def globals_args(facts: Facts, out: Path) -> list[str]:
    args = ["--globals-only", f"--file={out}", "--no-password"]
    if facts.globals_plan is not None and not facts.globals_plan.passwords:
        args.append("--no-role-passwords")
    if facts.options.no_tablespaces:
        args.append("--no-tablespaces")
    args.append(f"--dbname={facts.source.child_conninfo()}")
    return args


def command_display(facts: Facts, program: str, args: list[str]) -> str:
    if facts.client.docker_image is not None:
        return f"docker run --network host {facts.client.docker_image} " + shlex.join([program, *args])
    return shlex.join([facts.client.program(program), *args])


def source_database_grants(facts: Facts, dbname: str) -> list[Grant]:
    with contextlib.closing(connect(facts.source)) as sconn:
        return ddl.database_grants(sconn, dbname)


def program_call(facts: Facts, program: str, args: list[str], server: str) -> ProgramCall:
    assert server in ("source", "target")
    return ProgramCall(program, tuple(args), server, command_display(facts, program, args))  # type: ignore[arg-type]


def maintenance_db(facts: Facts, avoid: str) -> str:
    """A database of the target to connect to for work on ``avoid`` (never ``avoid`` itself)."""
    name = facts.target.dbname or "postgres"
    if name != avoid:
        return name
    return "postgres" if avoid != "postgres" else "template1"


# --- the plan ------------------------------------------------------------------------------------


def build_plan(facts: Facts, workdir: Path, journal: Journal | None, run_id: str) -> MigrationPlan:
    """The plan of this attempt: on resume, the steps the journal does not record as done."""
    dump_dirs = dump_dirs_of(facts, workdir, journal)
    changes = changes_since_recorded(facts, journal) if journal is not None else []
    steps = _steps(facts, workdir, dump_dirs, journal, run_id)
    return MigrationPlan(
        options=facts.options,
        source=facts.summary("source"),
        target=facts.summary("target"),
        client=facts.client,
        databases=tuple(facts.databases),
        globals=facts.globals_plan,
        steps=tuple(steps),
        workdir=workdir,
        dump_dirs=dump_dirs,
        parallel_databases=facts.parallel_databases,
        jobs_per_database=facts.jobs_per_database,
        warnings=(*changes, *facts.warnings),
        changes=tuple(changes),
        check=facts.check,
        resumed=journal is not None,
        run_id=run_id,
        remedies=tuple(facts.global_remedies),
    )


def globals_steps(facts: Facts, journal: Journal | None, created: set[str], maintenance: str) -> list[Step]:
    """The roles and memberships (with privileges on parameters, 15+) steps of the globals, minus
    what the journal says is done: migrate's plan and restore's share them."""
    done = journal.done if journal is not None else (lambda _step: False)
    earlier = journal.roles_of_run(facts.target_roles) if journal is not None else set()
    out: list[Step] = []
    roles = [a for a in role_actions(facts) if a.role_created is None or a.role_created not in earlier]
    if roles and not done("globals:roles"):
        out.append(Step("globals:roles", "create-roles", "globals: roles", connect_to=maintenance, sql=tuple(roles)))
    grants, skipped = membership_actions(facts, created)
    # Privileges on parameters (15+) are global too: granted with the memberships, to roles this
    # run created (or PUBLIC).
    grants += [
        Action(f"parameter {name}", ddl.grant_on_parameter(name, grant), requires_role=grant.grantee)
        for name, grant in facts.parameter_grants
    ]
    if grants and not done("globals:memberships"):
        note = f"{len(skipped)} membership(s) not granted: " + "; ".join(skipped[:5]) if skipped else ""
        out.append(
            Step(
                "globals:memberships",
                "grant-memberships",
                "globals: memberships",
                connect_to=maintenance,
                sql=tuple(grants),
                note=note,
            )
        )
    return out


def _steps(
    facts: Facts, workdir: Path, dump_dirs: Mapping[str, Path], journal: Journal | None, run_id: str
) -> list[Step]:
    out: list[Step] = []
    done = journal.done if journal is not None else (lambda _step: False)
    with session(facts.target) as conn:
        ts_names = cluster.tablespace_names(conn)
    gplan = facts.globals_plan
    created: set[str] = set()
    if gplan is not None:
        maintenance = maintenance_db(facts, "")
        created = set(gplan.created)
        if not done("globals:record"):
            args = globals_args(facts, workdir / GLOBALS)
            out.append(
                Step(
                    "globals:record",
                    "record-globals",
                    "globals: record the source's (pg_dumpall --globals-only)",
                    program=program_call(facts, "pg_dumpall", args, "source"),
                )
            )
        out += globals_steps(facts, journal, created, maintenance)
        spaces = tablespace_actions(facts, ts_names)
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
        ts_names |= {n for n, _loc in gplan.tablespaces}
    before_databases = tuple(s.id for s in out)
    finals: list[str] = []
    for dbp in facts.databases:
        if dbp.moves:
            chain = _database_steps(facts, dbp, dump_dirs[dbp.source], journal, run_id, workdir, ts_names, created)
            if chain:
                # The first step that touches the target waits for the globals; the dump does not.
                first = next((i for i, s in enumerate(chain) if s.kind not in _SOURCE_ONLY), None)
                if first is not None:
                    chain[first] = _after(chain[first], tuple(dict.fromkeys(chain[first].after + before_databases)))
                out += chain
                finals.append(chain[-1].id)
    recopies = recopy_steps(facts, journal)
    out += recopies
    finals += [s.id for s in recopies]
    if facts.options.verify:
        pairs = ", ".join(f"{d.source}→{d.target}" for d in facts.databases if d.moves or d.action == "done")
        as_of = "; the source as of each database's dump snapshot (held till then)" if facts.verify_in_snapshots else ""
        out.append(
            Step(
                "verify",
                "verify",
                "verify",
                after=tuple(finals) or before_databases,
                note=f"compare objects and row counts: {pairs}{as_of}",
            )
        )
    return out


def recopy_steps(facts: Facts, journal: Journal | None) -> list[Step]:
    """A resume after a verification that failed: each finished database's tables that verify found
    different, copied again (what and the target's fingerprints were journaled by that verify)."""
    if journal is None or not facts.options.verify:
        return []
    # The last verification that ended found differences (an attempt killed since, in its copy or
    # its verify, left the status "running": the records of the steps say it).
    verified = journal.step("verify")
    if verified.artifacts.get("equal") is not False:
        return []
    wanted: Mapping[str, Any] = verified.artifacts.get("recopy") or {}
    out = []
    for dbp in facts.databases:
        spec = wanted.get(dbp.source)
        if dbp.action != "done" or not spec or not (spec.get("tables") or spec.get("sequences")):
            continue
        step_id = f"db:{dbp.source}:recopy"
        earlier = journal.step(step_id)
        if earlier.done and (earlier.artifacts.get("token") == spec.get("token")):
            continue  # copied again for that verification already; verify runs again
        tables = [f"{s}.{n}" for s, n, _fp in spec.get("tables", [])]
        extra = sorted(set(tables) - set(spec.get("differing", [])))
        note = f"{len(tables)} table(s) in one transaction, from a new snapshot of the source"
        if extra:
            note += f" ({', '.join(extra[:5])}{' …' if len(extra) > 5 else ''} reference(s) them by foreign key)"
        if spec.get("sequences"):
            note += f"; {len(spec['sequences'])} sequence(s) set again"
        out.append(
            Step(
                step_id,
                "recopy",
                f"{dbp.source}: copy again what verify found different: "
                f"{', '.join(tables[:5])}{' …' if len(tables) > 5 else ''}",
                database=dbp.source,
                connect_to=dbp.target,
                note=note,
                intent={"token": spec.get("token")},
            )
        )
    return out


# Steps that only read the source (or the work directory): a database's chain begins with them.
_SOURCE_ONLY = frozenset({"dump", "reuse-dump"})


def _after(step: Step, after: tuple[str, ...]) -> Step:
    return replace(step, after=after)


def _database_steps(
    facts: Facts,
    dbp: DatabasePlan,
    dump_dir: Path,
    journal: Journal | None,
    run_id: str,
    workdir: Path,
    ts_names: set[str],
    created_roles: set[str],
) -> list[Step]:
    options = facts.options
    record = journal.database(dbp.source) if journal is not None else None
    continuing = dbp.action == "continue" and record is not None
    out: list[Step] = []

    def skip(kind: str) -> bool:
        return continuing and record is not None and record.step(kind).done

    def add(kind: StepKind, title: str, **fields: object) -> None:
        after = (out[-1].id,) if out else ()
        out.append(
            Step(f"db:{dbp.source}:{kind}", kind, f"{dbp.source}: {title}", database=dbp.source, after=after, **fields)  # type: ignore[arg-type]
        )

    # The dump reads the source alone: it depends on nothing and comes first, so the runner may take
    # it ahead, beside the schema trial, and a dump that fails has changed nothing on the target
    # (not even dropped the database it was to replace).
    if continuing and record is not None and record.restored(schema_only=options.schema_only):
        pass  # what is left reads no dump
    elif dbp.reuse_dump:
        add("reuse-dump", f"reuse the dump of {dbp.source}", note=dbp.dump_note)
    else:
        add(
            "dump",
            f"dump ({human_size(dbp.size_bytes)})",
            program=program_call(facts, "pg_dump", dump_args(facts, dbp, dump_dir), "source"),
            note=dbp.dump_note,
        )
    maintenance = maintenance_db(facts, dbp.target)
    # The target's empty postgres is filled in place; every other database is created by this run.
    reuse_existing = dbp.action == "migrate" and dbp.target in facts.target_db_names
    if dbp.action in ("drop-and-migrate", "redo"):
        add("drop-database", f"drop {dbp.target}", connect_to=maintenance, sql=tuple(drop_actions(facts, dbp)))
    if not options.data_only and not skip("create-database"):
        grants = [] if options.no_privileges else source_database_grants(facts, dbp.source)
        actions, warnings = database_actions(
            facts,
            dbp,
            grants,
            create=not reuse_existing,
            target_tablespaces=ts_names,
            run_id=run_id,
            workdir=str(workdir),
        )
        title = f"create {dbp.target}" if not reuse_existing else f"set up {dbp.target}"
        add(
            "create-database",
            title,
            connect_to=maintenance,
            sql=tuple(actions),
            warnings=tuple(warnings),
            intent={"created_by_run": not reuse_existing},
        )
    remedies = facts.remedies.get(dbp.source)
    items = tuple(remedies.items) if remedies is not None else ()
    omit_list = remedy_use_list(dump_dir) if remedies is not None and remedies.omits else None
    if not options.data_only and not skip("restore-schema"):
        if remedies is not None and remedies.rewrites_schema:
            script = schema_script(dump_dir)
            add(
                "script-schema",
                "write the schema as SQL, with the remedies' changes",
                program=program_call(
                    facts, "pg_restore", script_args(facts, dump_dir, script, use_list=omit_list), "target"
                ),
                items=items,
                note="; ".join(i.about + ": " + _change_text(i) for i in items if i.plain_columns or i.drop_settings),
            )
            add(
                "restore-schema",
                "restore the schema (the rewritten script)",
                program=program_call(facts, "psql", psql_script_args(facts, dbp, remedied_script(dump_dir)), "target"),
            )
        else:
            add(
                "restore-schema",
                "restore the schema",
                program=program_call(
                    facts, "pg_restore", restore_args(facts, dbp, dump_dir, "schema", use_list=omit_list), "target"
                ),
                items=items,
            )
    if streams(facts):
        # Tables are analyzed as the copy finishes each, unless a remedy changes rows after the data.
        analyze = options.analyze and not (remedies is not None and remedies.after_data)
        _stream_steps(facts, dbp, dump_dir, items, omit_list, skip, add, analyze=analyze)
    elif not skip("restore-data"):
        if continuing and record is not None and record.step("restore-data").begun and not options.data_only:
            left = remaining_items(facts, dbp, dump_dir, record)
            use_list = dump_dir.with_name(dump_dir.name + ".resume.list")
            add(
                "restore-data",
                f"restore the rest of the data, indexes and constraints (about {left.left} of {left.total} "
                "item(s) left)",
                program=program_call(
                    facts, "pg_restore", restore_args(facts, dbp, dump_dir, "data", use_list=use_list), "target"
                ),
                connect_to=dbp.target,
                # The backends of a killed pg_restore may still be at work (a COPY commits after its
                # client died): they are ended first, and what is left is read again from the catalog.
                sql=(Action(f"database {dbp.target}", ddl.terminate_sessions(dbp.target)),),
                items=items,
                note=left.note
                + (
                    "; emptied and loaded again: " + ", ".join(f"{s}.{n}" for s, n in left.truncate)
                    if left.truncate
                    else ""
                )
                + " (read again when the step runs)",
            )
        else:
            data_list = omit_list if options.data_only else data_use_list(dump_dir)
            add(
                "restore-data",
                "restore the data" + ("" if options.data_only else ", indexes and constraints"),
                program=program_call(
                    facts,
                    "pg_restore",
                    restore_args(facts, dbp, dump_dir, "data", use_list=data_list),
                    "target",
                ),
                items=items,
                note="" if options.data_only else "the triggers are left to restore-triggers",
            )
    if remedies is not None and remedies.after_data and not options.schema_only and not skip("remedy"):
        add(
            "remedy",
            "remedies after the data",
            connect_to=dbp.target,
            sql=tuple(remedies.after_data),
            note="; ".join(f"{r.remedy}: {r.object}: {r.change}" for r in remedies.applied),
        )
    if not streams(facts) and not options.data_only and not options.schema_only and not skip("restore-triggers"):
        add(
            "restore-triggers",
            "restore the triggers, after all the data",
            program=program_call(
                facts,
                "pg_restore",
                restore_args(facts, dbp, dump_dir, "triggers", use_list=triggers_use_list(dump_dir)),
                "target",
            ),
            connect_to=dbp.target,
            items=items,
            note="those the target has already (an attempt cut short after it made them) are left out",
        )
    settings = [*extension_actions(facts, dbp), *role_database_actions(facts, dbp, created_roles)]
    if settings and not skip("database-settings"):
        add("database-settings", "extensions and role settings", connect_to=dbp.target, sql=tuple(settings))
    if options.analyze and not options.schema_only and not skip("analyze"):
        add(
            "analyze",
            "analyze",
            connect_to=dbp.target,
            sql=(Action(f"database {dbp.target}", ddl.analyze()),),
            note="the tables the copy analyzed are left out" if streams(facts) else "",
        )
    created = record.created_by_run if continuing and record is not None else not (reuse_existing or options.data_only)
    final = final_comment_action(facts, dbp, created=created) if not options.data_only else None
    add("finish", "finish", connect_to=maintenance, sql=(final,) if final else ())
    return out


def post_data_script(dump_dir: Path) -> Path:
    """Stream mode: the archive's post-data section as SQL, each item under its TOC entry header."""
    return dump_dir.with_name(dump_dir.name + ".post-data.sql")


def post_data_script_args(facts: Facts, dump_dir: Path, *, use_list: Path | None) -> list[str]:
    args = ["--section=post-data", "--verbose", f"--file={post_data_script(dump_dir)}"]
    if use_list is not None:
        args.append(f"--use-list={use_list}")
    return [*args, *restore_object_flags(facts.options), *facts.client.restore_flags, str(dump_dir)]


def _stream_steps(
    facts: Facts,
    dbp: DatabasePlan,
    dump_dir: Path,
    items: tuple[ItemChange, ...],
    omit_list: Path | None,
    skip: Callable[[str], bool],
    add: Callable[..., None],
    *,
    analyze: bool,
) -> None:
    """Stream mode after the schema: the copy with its post-data, then its progress records dropped."""
    if not skip("stream-data"):
        add(
            "stream-data",
            f"copy the data from the source ({human_size(dbp.size_bytes)}), indexes and constraints as each "
            "table is in",
            program=program_call(
                facts, "pg_restore", post_data_script_args(facts, dump_dir, use_list=omit_list), "target"
            ),
            connect_to=dbp.target,
            items=items,
            note=f"{facts.jobs_per_database} COPY worker(s) in the snapshot of the schema dump; "
            "each unit of data commits with its progress record in the target database"
            + ("; each table analyzed once it is in with its indexes" if analyze else ""),
            intent={"analyze": True} if analyze else {},
        )
    if not skip("stream-finish"):
        add(
            "stream-finish",
            "drop the copy's progress records",
            connect_to=dbp.target,
            sql=(Action(f"database {dbp.target}", Statement(streaming_sql.drop_progress())),),
        )


# --- resuming a restore ----------------------------------------------------------------------------


_TOC_LINE = re.compile(r"^(?P<id>\d+); (?P<classid>\d+) (?P<objid>\d+) (?P<desc>.+)$")
# Items whose statements can run twice with the same outcome: redone when not known to be finished.
_REPEATABLE = (
    "COMMENT",
    "ACL",
    "SECURITY LABEL",
    "SEQUENCE SET",
    "MATERIALIZED VIEW DATA",
    "BLOB",
    "LARGE OBJECT",
    "DEFAULT ACL",
    "INDEX ATTACH",
)
_PG_CLASS = 1259


@dataclass(frozen=True)
class RemainingItems:
    total: int
    skip: tuple[int, ...]  # dump ids done already: left out of the list pg_restore gets
    truncate: tuple[tuple[str, str], ...]  # tables whose data is loaded again, emptied first
    note: str

    @property
    def left(self) -> int:
        return self.total - len(self.skip)


def toc_listing(facts: Facts, dump_dir: Path, *sections: str) -> list[str]:
    done = run_client(
        facts.client,
        "pg_restore",
        ["--list", *(f"--section={s}" for s in sections), str(dump_dir)],
        env=facts.target.child_env(),
        mounts=[str(dump_dir.parent.parent)],
    )
    return [line for line in done.stdout.splitlines() if line and not line.startswith(";")]


def remaining_items(facts: Facts, dbp: DatabasePlan, dump_dir: Path, record: DatabaseRecord) -> RemainingItems:
    """What of a data step cut short is left, from evidence: the journal, and the target's catalog.

    A table's data is a single COPY, so it is all there or not at all: a table with rows was
    loaded (it is left alone); one without is emptied and loaded again. An index, a constraint, a
    trigger … that the target has was made (the dump's object looked up by its address); one it
    lacks is made now. Statements that can run twice (comments, grants, sequence values) run again
    unless pg_restore reported them finished.
    """
    items = []
    for line in toc_listing(facts, dump_dir, "data", "post-data"):
        m = _TOC_LINE.match(line)
        if m:
            items.append((int(m["id"]), int(m["classid"]), int(m["objid"]), m["desc"]))
    finished = record.items_done
    wanted: dict[int, tuple[int, int, bool]] = {}
    for dump_id, classid, objid, desc in items:
        if dump_id in finished:
            continue
        if desc.startswith("TABLE DATA"):
            wanted[dump_id] = (_PG_CLASS, objid, True)
        elif classid and objid and not desc.startswith(_REPEATABLE):
            wanted[dump_id] = (classid, objid, False)
    presence = probe_items(facts, dbp, wanted)
    skip = set(finished & {i for i, *_ in items})
    truncate = []
    for dump_id, (_c, _o, rows) in wanted.items():
        seen = presence.get(dump_id)
        if seen is None or not seen.found:
            continue
        if not rows or seen.has_rows:
            skip.add(dump_id)
        else:
            truncate.append((seen.schema, seen.name))
    note = (
        f"{len(skip)} of {len(items)} item(s) of the data step are on the target already "
        f"({len(finished)} reported finished, {len(skip) - len(finished & skip)} found in its catalog)"
    )
    return RemainingItems(len(items), tuple(sorted(skip)), tuple(truncate), note)


def probe_items(
    facts: Facts, dbp: DatabasePlan, wanted: Mapping[int, tuple[int, int, bool]]
) -> dict[int, ddl.Presence]:
    """Which of the dump's objects (dump id -> classid, objid, whether it is a table's data) the
    target database has: each looked up on the source by its address, then found on the target."""
    with session(facts.source, dbp.source) as sconn:
        addresses = ddl.object_addresses(sconn, [(c, o) for c, o, _rows in wanted.values()])
    probes = {dump_id: (addresses[(c, o)], rows) for dump_id, (c, o, rows) in wanted.items() if (c, o) in addresses}
    with session(facts.target, dbp.target) as tconn:
        return ddl.probe_objects(tconn, probes)


def write_use_list(facts: Facts, dump_dir: Path, use_list: Path, skip: frozenset[int] | set[int]) -> int:
    """The list file for ``pg_restore --use-list``: the dump's items with those done commented out."""
    lines = []
    for line in toc_listing(facts, dump_dir):
        m = _TOC_LINE.match(line)
        lines.append(f";{line}" if m and int(m["id"]) in skip else line)
    fd = os.open(use_list, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return sum(1 for line in lines if not line.startswith(";"))


# --- dump directories and changes of plan ------------------------------------------------------------


def dump_dirs_of(facts: Facts, workdir: Path, journal: Journal | None) -> dict[str, Path]:
    out: dict[str, Path] = {}
    known = journal.databases if journal is not None else {}
    index = len(known)
    for dbp in facts.databases:
        entry = known.get(dbp.source)
        record = journal.database(dbp.source) if journal is not None else None
        if entry is not None and record is not None:
            name = entry.dump_dir
            if record.dump_started and not dbp.reuse_dump and dbp.moves:
                # A pg_dump of an earlier attempt may still be writing there (pgshift was SIGKILLed and
                # its child lives on): this attempt dumps into a directory of its own.
                attempt = (journal.attempts if journal is not None else 0) + 1
                name = f"{re.sub(r'-attempt[0-9]+$', '', name)}-attempt{attempt}"
            out[dbp.source] = workdir / "dumps" / name
        else:
            index += 1
            out[dbp.source] = workdir / "dumps" / dump_dir_name(index, dbp.source)
    return out


def changes_since_recorded(facts: Facts, journal: Journal) -> list[str]:
    """How the re-derived plan differs from the run the journal recorded, said before anything runs."""
    out = []
    recorded = journal.databases
    for dbp in facts.databases:
        if dbp.moves and dbp.source not in recorded:
            out.append(f"the plan changed since the last attempt: database {dbp.source!r} is new to this run")
        elif dbp.source in recorded and recorded[dbp.source].target != dbp.target:
            out.append(
                f"the plan changed since the last attempt: database {dbp.source!r} now goes to {dbp.target!r}, "
                f"not {recorded[dbp.source].target!r}"
            )
    planned = {d.source for d in facts.databases}
    for name, entry in recorded.items():
        record = journal.database(name)
        if name not in planned and record is not None and not record.finished:
            out.append(
                f"the plan changed since the last attempt: database {name!r} is no longer moved "
                f"(it was at {record.state}); its half-done copy {entry.target!r} stays on the target"
            )
    before = journal.header.get("options", {})
    now = {**facts.options.as_dict(), "workdir": before.get("workdir")}
    for key in sorted(k for k in now if k in before and now[k] != before[k] and k not in ("source", "target")):
        out.append(f"the plan changed since the last attempt: option {key} is now {now[key]!r} (was {before[key]!r})")
    return out
