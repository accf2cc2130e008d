"""``pgshift migrate SOURCE TARGET``: a whole-cluster cross-version migration, resumable."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from pgshift.cli.common import (
    ExcludeSchemaOption,
    ExcludeTableOption,
    JsonOption,
    OutputFormat,
    PgBinOption,
    QuietOption,
    RenameOption,
    RunFormatOption,
    SchemaOption,
    TableOption,
    VerboseOption,
    at_least_one,
    conninfo_help,
    finish,
    parse_pairs,
    pick_format,
    print_json,
    progress_sink,
    stderr_console,
    stdout_console,
    write_output,
)
from pgshift.cli.help import usage
from pgshift.conninfo import Endpoint
from pgshift.errors import ExitCode, PgshiftError, UsageError
from pgshift.migrate import MigrateOptions, load_resume_options, plan_migration, run_migration
from pgshift.migrate.options import IF_EXISTS_CHOICES
from pgshift.report.migrate import PLAN_KIND, RESULT_KIND, render_markdown, render_plan, render_result

_HELP = (
    "Move every database (or those named) from SOURCE to TARGET: globals, databases with their properties, "
    "data, ANALYZE, then verify. Resumable with --resume WORKDIR. "
    "Exit 0: done and verified; 2: refused by the preflight; 3: cannot connect; 4: no suitable client; "
    "5: a step failed or verification found differences; 64: usage; 130/143: interrupted (resumable)."
)


def register(app: typer.Typer) -> None:
    app.command(
        "migrate",
        cls=usage("[OPTION]... SOURCE TARGET", "[OPTION]... --resume WORKDIR [SOURCE TARGET]"),
        help=_HELP,
    )(migrate)


def _confirm(yes: bool, interactive: bool) -> Any:
    def ask(question: str) -> bool:
        if yes:
            return True
        if not interactive:
            return False
        return bool(typer.confirm(question, default=False, err=True))

    return ask


def migrate(
    source: Annotated[
        str | None,
        typer.Argument(metavar="SOURCE", help=conninfo_help("source", "Optional with --resume (the journal has it).")),
    ] = None,
    target: Annotated[
        str | None,
        typer.Argument(metavar="TARGET", help=conninfo_help("target", "Optional with --resume (the journal has it).")),
    ] = None,
    database: Annotated[
        list[str] | None,
        typer.Option(
            "--database",
            "-d",
            metavar="NAME",
            help="Move this database (repeatable). Default: all but postgres and templates.",
        ),
    ] = None,
    exclude_database: Annotated[
        list[str] | None,
        typer.Option("--exclude-database", "-D", metavar="NAME", help="Do not move this database (repeatable)."),
    ] = None,
    rename: RenameOption = None,
    if_exists: Annotated[
        str,
        typer.Option(
            "--if-exists",
            metavar="error|drop|skip",
            help="A target database that already exists: refuse (error), drop and replace it, or skip it.",
        ),
    ] = "error",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before dropping target databases.")] = False,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            "-j",
            metavar="N",
            parser=at_least_one,
            help="Parallel work: databases at once × pg_dump/pg_restore -j.",
        ),
    ] = 2,
    workdir: Annotated[
        Path | None, typer.Option("--workdir", metavar="DIR", help="Work directory (journal, log, dumps).")
    ] = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", metavar="WORKDIR", help="Continue the run recorded in WORKDIR.")
    ] = None,
    keep_dumps: Annotated[
        bool, typer.Option("--keep-dumps", help="Keep the dump archives after verification.")
    ] = False,
    redump: Annotated[
        bool, typer.Option("--redump", help="With --resume: dump again even when the source has not changed.")
    ] = False,
    reuse_dump: Annotated[
        bool,
        typer.Option(
            "--reuse-dump", help="With --resume: reuse a finished dump even when the source changed since."
        ),
    ] = False,
    analyze: Annotated[
        bool, typer.Option("--analyze/--no-analyze", help="ANALYZE each database after restore.")
    ] = True,
    accept: Annotated[
        list[str] | None,
        typer.Option("--accept", metavar="RULE_ID", help="Override a blocker of pgshift check (repeatable)."),
    ] = None,
    no_check: Annotated[bool, typer.Option("--no-check", help="Do not run pgshift check's rules first.")] = False,
    allow_downgrade: Annotated[
        bool, typer.Option("--allow-downgrade", help="Allow a target older than the source.")
    ] = False,
    no_globals: Annotated[
        bool, typer.Option("--no-globals", help="Do not create roles, memberships and tablespaces.")
    ] = False,
    no_role_passwords: Annotated[
        bool, typer.Option("--no-role-passwords", help="Create roles without their passwords.")
    ] = False,
    tablespace_map: Annotated[
        list[str] | None,
        typer.Option("--tablespace-map", metavar="OLD=NEW", help="Create tablespace OLD (name or path) at path NEW."),
    ] = None,
    no_tablespaces: Annotated[
        bool, typer.Option("--no-tablespaces", help="Ignore tablespaces: everything goes to the default.")
    ] = False,
    schema: SchemaOption = None,
    exclude_schema: ExcludeSchemaOption = None,
    table: TableOption = None,
    exclude_table: ExcludeTableOption = None,
    no_owner: Annotated[
        bool, typer.Option("--no-owner", "-O", help="Objects belong to the target's connecting role.")
    ] = False,
    no_privileges: Annotated[
        bool, typer.Option("--no-privileges", "--no-acl", "-x", help="Do not restore grants.")
    ] = False,
    data_only: Annotated[
        bool, typer.Option("--data-only", "-a", help="Only data, into databases that exist on the target.")
    ] = False,
    schema_only: Annotated[bool, typer.Option("--schema-only", "-s", help="Only the schema, no data.")] = False,
    pg_bin: PgBinOption = None,
    docker: Annotated[bool, typer.Option("--docker", help="Run the client programs in Docker.")] = False,
    docker_image: Annotated[
        str | None, typer.Option("--docker-image", metavar="IMAGE", help="The image for --docker.")
    ] = None,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Compare source and target at the end.")] = True,
    checksums: Annotated[
        bool, typer.Option("--checksums", help="Verify the data itself with checksums (reads everything).")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and every command in order; change nothing.")
    ] = False,
    fmt: RunFormatOption = OutputFormat.console,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    fmt = pick_format(fmt, as_json)
    if fmt is OutputFormat.html:
        raise UsageError("migrate reports as console, json or markdown", hint="use --format json or markdown")
    if if_exists not in IF_EXISTS_CHOICES:
        raise UsageError(f"--if-exists must be error, drop or skip, not {if_exists!r}")
    if resume is not None:
        if workdir is not None:
            raise UsageError("--resume WORKDIR and --workdir cannot be used together")
        src = Endpoint.parse(source, "source") if source else None
        tgt = Endpoint.parse(target, "target") if target else None
        if (src is None) != (tgt is None):
            raise UsageError("with --resume give both SOURCE and TARGET, or neither (the journal has them)")
        changes: dict[str, Any] = {"dry_run": dry_run}
        if redump and reuse_dump:
            raise UsageError("--redump and --reuse-dump cannot be used together")
        if redump or reuse_dump:
            changes["dump_reuse"] = "never" if redump else "always"
        if yes or if_exists != "error":
            changes["if_exists"] = if_exists
        if jobs != 2:
            changes["jobs"] = jobs
        # Options given again with --resume apply to what is left (e.g. the fix a failure asked for).
        given: dict[str, Any] = {
            "keep_dumps": keep_dumps or None,
            "tablespace_map": parse_pairs(tablespace_map or (), "--tablespace-map") or None,
            "no_tablespaces": no_tablespaces or None,
            "no_owner": no_owner or None,
            "no_privileges": no_privileges or None,
            "no_role_passwords": no_role_passwords or None,
            "globals": False if no_globals else None,
            "accept": tuple(accept) if accept else None,
            "check": False if no_check else None,
            "analyze": False if not analyze else None,
            "verify": False if not verify else None,
            "checksums": checksums or None,
            "pg_bins": tuple(pg_bin) if pg_bin else None,
            "docker": docker or None,
            "docker_image": docker_image,
        }
        changes.update({k: v for k, v in given.items() if v is not None})
        options = load_resume_options(resume, source=src, target=tgt, changes=changes)
    else:
        if redump or reuse_dump:
            raise UsageError(
                f"{'--redump' if redump else '--reuse-dump'} applies to a resumed run",
                hint="pgshift migrate --resume WORKDIR " + ("--redump" if redump else "--reuse-dump"),
            )
        if not source or not target:
            raise UsageError(
                "give SOURCE and TARGET connection strings (or --resume WORKDIR)",
                hint="pgshift migrate postgresql://postgres@old-host/postgres postgresql://postgres@new-host/postgres",
            )
        options = MigrateOptions(
            source=Endpoint.parse(source, "source"),
            target=Endpoint.parse(target, "target"),
            databases=tuple(database or ()),
            exclude_databases=tuple(exclude_database or ()),
            renames=parse_pairs(rename or (), "--rename"),
            if_exists=if_exists,
            jobs=jobs,
            workdir=workdir,
            keep_dumps=keep_dumps,
            analyze=analyze,
            accept=tuple(accept or ()),
            allow_downgrade=allow_downgrade,
            globals=not no_globals,
            no_role_passwords=no_role_passwords,
            tablespace_map=parse_pairs(tablespace_map or (), "--tablespace-map"),
            no_tablespaces=no_tablespaces,
            schemas=tuple(schema or ()),
            exclude_schemas=tuple(exclude_schema or ()),
            tables=tuple(table or ()),
            exclude_tables=tuple(exclude_table or ()),
            no_owner=no_owner,
            no_privileges=no_privileges,
            data_only=data_only,
            schema_only=schema_only,
            pg_bins=tuple(pg_bin or ()),
            docker=docker,
            docker_image=docker_image,
            verify=verify,
            checksums=checksums,
            check=not no_check,
            dry_run=dry_run,
        )
    interactive = sys.stdin.isatty() and fmt is OutputFormat.console
    try:
        with progress_sink(quiet=quiet or fmt is not OutputFormat.console, verbose=verbose) as sink:
            if dry_run:
                plan = plan_migration(options, sink=sink)
            else:
                result = run_migration(options, sink=sink, confirm=_confirm(yes, interactive))
    except PgshiftError as exc:
        if fmt is OutputFormat.json:
            print_json(
                {
                    "ok": False,
                    "error": {"message": exc.message, "hint": exc.hint, "exit_code": int(exc.exit_code)},
                },
                kind=RESULT_KIND,
            )
        raise
    if dry_run:
        if fmt is OutputFormat.json:
            print_json(plan.as_dict(), kind=PLAN_KIND)
        else:
            render_plan(plan, stdout_console())
        finish(ExitCode.OK)
        return
    if fmt is OutputFormat.json:
        print_json(result.as_dict(), kind=RESULT_KIND)
    elif fmt is OutputFormat.markdown:
        write_output(render_markdown(result), None)
    elif quiet:
        console = stderr_console() if not result.ok else stdout_console()
        console.print(
            f"{'done' if result.ok else 'FAILED verification'}: {len(result.moved)} database(s); log {result.log_path}"
        )
    else:
        render_result(result, stdout_console())
    finish(ExitCode.OK if result.ok else ExitCode.FAILED)
