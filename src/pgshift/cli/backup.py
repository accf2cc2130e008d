"""``pgshift backup``, ``pgshift backup list``, ``pgshift restore`` and ``pgshift verify-backup``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from pgshift.backup.proof import RESULT_KIND as PROOF_KIND
from pgshift.backup.proof import VerifyBackupOptions, verify_backup
from pgshift.backup.restore import PLAN_KIND as RESTORE_PLAN_KIND
from pgshift.backup.restore import RESULT_KIND as RESTORE_KIND
from pgshift.backup.restore import RestoreOptions, list_archive, load_resume_options, plan_restore, run_restore
from pgshift.backup.sets import list_sets
from pgshift.backup.take import PLAN_KIND, RESULT_KIND, BackupOptions, plan_backup, run_backup
from pgshift.cli.common import (
    ExcludeSchemaOption,
    ExcludeTableOption,
    PgBinOption,
    QuietOption,
    RenameOption,
    SchemaOption,
    TableOption,
    VerboseOption,
    at_least_one,
    conninfo_help,
    finish,
    parse_pairs,
    print_json,
    progress_sink,
    stdout_console,
)
from pgshift.cli.help import usage
from pgshift.conninfo import Endpoint
from pgshift.errors import ExitCode, PgshiftError, UsageError
from pgshift.flags import REMEDY
from pgshift.report.backup import (
    render_backup_plan,
    render_backup_result,
    render_proof,
    render_restore_plan,
    render_restore_result,
    render_sets,
)

_BACKUP_HELP = (
    "Back up SOURCE into a new set in DIR: the globals and one archive per database, with a manifest of "
    "versions, properties, exact row counts (taken in each dump's own snapshot) and every file's SHA-256. "
    "'pgshift backup list DIR' shows the sets. "
    "Exit 0: a complete set; 2: refused; 3: cannot connect; 4: no suitable client; 5: a step failed (the "
    "set stays NAME.partial, never restored); 64: usage; 130/143: interrupted."
)
_RESTORE_HELP = (
    "Restore the backup set SET into TARGET: the manifest is checked first, then globals, then each database "
    "created from template0 with its properties, in parallel. --list prints an archive's table of contents; "
    "--use-list FILE restores an edited one. Resumable with --resume WORKDIR. "
    "check's rules that need of the source only what the set recorded run against the target first "
    "(--accept RULE_ID overrides a blocker). "
    "Exit 0: restored; 2: refused (damaged set, check's blockers, databases that exist); 3: cannot connect; "
    "4: no pg_restore new enough; 5: a step failed; 64: usage; 130/143: interrupted (resumable)."
)
_VERIFY_HELP = (
    "Prove the backup set SET: restore it into a throwaway lab server of its major (or --target-version N, "
    "or --target CONNINFO) and compare every table's rows and the objects with the manifest. The result is "
    "appended to history.jsonl beside the sets. "
    "Exit 0: proven; 1: not proven (a damaged file, or differences); 2: not a complete set; 4: no lab server "
    "binaries; 5: the restore failed; 64: usage."
)

# Not JsonOption ("Same as --format json"): backup's --format is the archive's, and restore and
# verify-backup have none.
ResultJson = Annotated[bool, typer.Option("--json", help="Print the result (or plan) as one JSON document.")]

FormatChoice = Annotated[
    str,
    typer.Option("--format", "-F", metavar="custom|directory|plain", help="Archive format (pg_dump -F)."),
]


def register(app: typer.Typer) -> None:
    app.command("backup", cls=usage("[OPTION]... SOURCE --to DIR", "list DIR"), help=_BACKUP_HELP)(backup)
    app.command(
        "restore",
        cls=usage("[OPTION]... SET TARGET", "SET --list [-d NAME]", "--resume WORKDIR [TARGET]"),
        help=_RESTORE_HELP,
    )(restore)
    app.command("verify-backup", cls=usage("[OPTION]... SET"), help=_VERIFY_HELP)(verify_backup_command)


def backup(
    source: Annotated[
        str, typer.Argument(metavar="SOURCE", help=conninfo_help("source", "Or 'list' followed by DIR."))
    ],
    listed: Annotated[Path | None, typer.Argument(metavar="DIR", help="With 'list': the directory of sets.")] = None,
    to: Annotated[Path | None, typer.Option("--to", metavar="DIR", help="The directory of sets to write into.")] = None,
    archive_format: FormatChoice = "custom",
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            "-j",
            metavar="N",
            parser=at_least_one,
            help="Databases dumped at once; with --format directory, pg_dump -j for the rest.",
        ),
    ] = 2,
    compress: Annotated[
        str,
        typer.Option(
            "--compress",
            "-Z",
            metavar="METHOD",
            help="auto, none, gzip, lz4 or zstd with an optional :LEVEL (auto: lz4 with a pg_dump 16+ built with it).",
        ),
    ] = "auto",
    keep: Annotated[
        int | None,
        typer.Option("--keep", metavar="N", parser=at_least_one, help="Keep the newest N complete sets, remove older."),
    ] = None,
    database: Annotated[
        list[str] | None,
        typer.Option("--database", "-d", metavar="NAME", help="Back up this database (repeatable). Default: all."),
    ] = None,
    exclude_database: Annotated[
        list[str] | None, typer.Option("--exclude-database", "-D", metavar="NAME", help="Not this database.")
    ] = None,
    schema: SchemaOption = None,
    exclude_schema: ExcludeSchemaOption = None,
    table: TableOption = None,
    exclude_table: ExcludeTableOption = None,
    no_globals: Annotated[bool, typer.Option("--no-globals", help="Leave roles and tablespaces out.")] = False,
    no_role_passwords: Annotated[
        bool, typer.Option("--no-role-passwords", help="Leave role password hashes out of the set.")
    ] = False,
    pg_bin: PgBinOption = None,
    docker: Annotated[bool, typer.Option("--docker", help="Run pg_dump in Docker.")] = False,
    docker_image: Annotated[str | None, typer.Option("--docker-image", metavar="IMAGE")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and every command; write nothing.")
    ] = False,
    as_json: ResultJson = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    if source == "list":
        if listed is None:
            raise UsageError("give the directory of sets: pgshift backup list DIR")
        entries = list_sets(listed)
        if as_json:
            print_json({"directory": str(listed), "sets": [e.as_dict() for e in entries]}, kind="pgshift-backup-list")
        else:
            render_sets(entries, stdout_console())
        finish(ExitCode.OK)
        return
    if listed is not None:
        raise UsageError(f"unexpected argument {str(listed)!r}", hint="pgshift backup SOURCE --to DIR")
    if to is None:
        raise UsageError(
            "give the directory the set goes into with --to DIR", hint="pgshift backup SOURCE --to /backups/pg"
        )
    options = BackupOptions(
        source=Endpoint.parse(source, "source"),
        to=to,
        format=archive_format,  # type: ignore[arg-type]  # checked by BackupOptions
        jobs=jobs,
        compress=compress,
        keep=keep,
        databases=tuple(database or ()),
        exclude_databases=tuple(exclude_database or ()),
        schemas=tuple(schema or ()),
        exclude_schemas=tuple(exclude_schema or ()),
        tables=tuple(table or ()),
        exclude_tables=tuple(exclude_table or ()),
        globals=not no_globals,
        no_role_passwords=no_role_passwords,
        pg_bins=tuple(pg_bin or ()),
        docker=docker,
        docker_image=docker_image,
        dry_run=dry_run,
    )
    try:
        with progress_sink(quiet=quiet or as_json, verbose=verbose) as sink:
            if dry_run:
                plan = plan_backup(options, sink=sink)
            else:
                result = run_backup(options, sink=sink)
    except PgshiftError as exc:
        if as_json:
            print_json({"ok": False, "error": _error(exc)}, kind=RESULT_KIND)
        raise
    if dry_run:
        if as_json:
            print_json(plan.as_dict(), kind=PLAN_KIND)
        else:
            render_backup_plan(plan, stdout_console())
    elif as_json:
        print_json(result.as_dict(), kind=RESULT_KIND)
    elif quiet:
        stdout_console().print(str(result.path))
    else:
        render_backup_result(result, stdout_console())
    finish(ExitCode.OK)


def _error(exc: PgshiftError) -> dict[str, object]:
    return {"message": exc.message, "hint": exc.hint, "exit_code": int(exc.exit_code)}


def restore(
    set_path: Annotated[
        Path | None, typer.Argument(metavar="SET", help="A set directory (pgshift backup list DIR).")
    ] = None,
    target: Annotated[str | None, typer.Argument(metavar="TARGET", help=conninfo_help("target"))] = None,
    database: Annotated[
        list[str] | None,
        typer.Option("--database", "-d", metavar="NAME", help="Restore this database of the set (repeatable)."),
    ] = None,
    exclude_database: Annotated[
        list[str] | None, typer.Option("--exclude-database", "-D", metavar="NAME", help="Not this database.")
    ] = None,
    rename: RenameOption = None,
    schema: Annotated[
        list[str] | None, typer.Option("--schema", "-n", metavar="NAME", help="Only this schema (pg_restore -n).")
    ] = None,
    table: Annotated[
        list[str] | None, typer.Option("--table", "-t", metavar="NAME", help="Only this table (pg_restore -t).")
    ] = None,
    list_toc: Annotated[
        bool, typer.Option("--list", "-l", help="Print the archive's table of contents (pg_restore -l) and exit.")
    ] = False,
    use_list: Annotated[
        Path | None,
        typer.Option("--use-list", "-L", metavar="FILE", help="Restore only the items of this edited list."),
    ] = None,
    clean: Annotated[
        bool,
        typer.Option("--clean", "-c", help="Drop what is restored first, in existing databases (pg_restore -c)."),
    ] = False,
    if_exists: Annotated[bool, typer.Option("--if-exists", help="With --clean: DROP … IF EXISTS.")] = False,
    into_existing: Annotated[
        bool, typer.Option("--into-existing", help="Restore into databases that exist (e.g. one table dropped).")
    ] = False,
    jobs: Annotated[
        int,
        typer.Option("--jobs", "-j", metavar="N", parser=at_least_one, help="Databases at once × pg_restore -j."),
    ] = 2,
    no_globals: Annotated[bool, typer.Option("--no-globals", help="Do not create roles and tablespaces.")] = False,
    no_role_passwords: Annotated[bool, typer.Option("--no-role-passwords", help="Roles without passwords.")] = False,
    no_owner: Annotated[bool, typer.Option("--no-owner", "-O", help="Objects belong to the target's role.")] = False,
    no_privileges: Annotated[bool, typer.Option("--no-privileges", "--no-acl", "-x", help="No grants.")] = False,
    no_tablespaces: Annotated[
        bool, typer.Option("--no-tablespaces", help="Everything in the default tablespace.")
    ] = False,
    tablespace_map: Annotated[
        list[str] | None, typer.Option("--tablespace-map", metavar="OLD=NEW", help="Create tablespace OLD at NEW.")
    ] = None,
    no_analyze: Annotated[bool, typer.Option("--no-analyze", help="No ANALYZE after the restore.")] = False,
    allow_downgrade: Annotated[bool, typer.Option("--allow-downgrade", help="Allow an older target.")] = False,
    no_check: Annotated[
        bool, typer.Option("--no-check", help="Do not run check's rules against the target first.")
    ] = False,
    accept: Annotated[
        list[str] | None,
        typer.Option("--accept", metavar="RULE_ID", help="Override a blocker of check's rules (repeatable)."),
    ] = None,
    remedy: Annotated[
        list[str] | None, typer.Option("--remedy", metavar="NAME", help=REMEDY.help + " As migrate's, from the set.")
    ] = None,
    pg_bin: PgBinOption = None,
    workdir: Annotated[
        Path | None, typer.Option("--workdir", metavar="DIR", help="Work directory (journal, log).")
    ] = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", metavar="WORKDIR", help="Continue the restore recorded in WORKDIR.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and every command; change nothing.")
    ] = False,
    as_json: ResultJson = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    if list_toc:
        if set_path is None:
            raise UsageError("give the set: pgshift restore SET --list [-d NAME]")
        if len(database or ()) > 1:
            raise UsageError("--list prints one database's table of contents", hint="name one with --database")
        sys.stdout.write(list_archive(set_path, database[0] if database else None, tuple(pg_bin or ())))
        finish(ExitCode.OK)
        return
    if resume is not None:
        if workdir is not None:
            raise UsageError("--resume WORKDIR and --workdir cannot be used together")
        given = Endpoint.parse(target or str(set_path), "target") if (target or set_path) else None
        options = load_resume_options(resume, target=given, dry_run=dry_run)
    else:
        if set_path is None or target is None:
            raise UsageError(
                "give the set and the TARGET connection string", hint="pgshift restore /backups/pg/NAME postgresql://…"
            )
        options = RestoreOptions(
            set_path=set_path,
            target=Endpoint.parse(target, "target"),
            databases=tuple(database or ()),
            exclude_databases=tuple(exclude_database or ()),
            renames=parse_pairs(rename or (), "--rename"),
            schemas=tuple(schema or ()),
            tables=tuple(table or ()),
            use_list=use_list,
            clean=clean,
            if_exists=if_exists,
            into_existing=into_existing,
            jobs=jobs,
            globals=not no_globals,
            no_role_passwords=no_role_passwords,
            no_owner=no_owner,
            no_privileges=no_privileges,
            no_tablespaces=no_tablespaces,
            tablespace_map=parse_pairs(tablespace_map or (), "--tablespace-map"),
            analyze=not no_analyze,
            allow_downgrade=allow_downgrade,
            check=not no_check,
            accept=tuple(accept or ()),
            remedies=tuple(remedy or ()),
            pg_bins=tuple(pg_bin or ()),
            workdir=workdir,
            dry_run=dry_run,
        )
    try:
        with progress_sink(quiet=quiet or as_json, verbose=verbose) as sink:
            if dry_run:
                plan = plan_restore(options, sink=sink)
            else:
                result = run_restore(options, sink=sink)
    except PgshiftError as exc:
        if as_json:
            print_json({"ok": False, "error": _error(exc)}, kind=RESTORE_KIND)
        raise
    if dry_run:
        if as_json:
            print_json(plan.as_dict(), kind=RESTORE_PLAN_KIND)
        else:
            render_restore_plan(plan, stdout_console())
    elif as_json:
        print_json(result.as_dict(), kind=RESTORE_KIND)
    elif not quiet:
        render_restore_result(result, stdout_console())
    finish(ExitCode.OK)


def verify_backup_command(
    set_path: Annotated[Path, typer.Argument(metavar="SET", help="A set directory (pgshift backup list DIR).")],
    target_version: Annotated[
        int | None,
        typer.Option(
            "--target-version",
            metavar="N",
            parser=at_least_one,
            help="A lab server of this major (default: the set's).",
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option("--target", metavar="CONNINFO", help="Restore into this server instead of a lab server."),
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", metavar="N", parser=at_least_one, help="pg_restore -j.")] = 2,
    remedy: Annotated[
        list[str] | None, typer.Option("--remedy", metavar="NAME", help="Restore with this remedy (as restore's).")
    ] = None,
    pg_bin: PgBinOption = None,
    as_json: ResultJson = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    options = VerifyBackupOptions(
        set_path,
        target_version=target_version,
        target=Endpoint.parse(target, "target") if target else None,
        jobs=jobs,
        pg_bins=tuple(pg_bin or ()),
        remedies=tuple(remedy or ()),
    )
    with progress_sink(quiet=quiet or as_json, verbose=verbose) as sink:
        report = verify_backup(options, sink=sink)
    if as_json:
        print_json(report.as_dict(), kind=PROOF_KIND)
    else:
        render_proof(report, stdout_console())
    finish(report.exit_code)
