"""``pgshift migrate SOURCE TARGET``: a whole-cluster cross-version migration, resumable."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from pgshift.cli.common import (
    JsonOption,
    OutputFormat,
    QuietOption,
    RunFormatOption,
    VerboseOption,
    conninfo_help,
    finish,
    pick_format,
    print_json,
    progress_sink,
    stderr_console,
    stdout_console,
    write_output,
)
from pgshift.cli.declared import GivenOptions, declared_command
from pgshift.cli.help import usage
from pgshift.conninfo import Endpoint
from pgshift.errors import ExitCode, PgshiftError, UsageError
from pgshift.migrate import MigrateOptions, load_resume_options, plan_migration, run_migration
from pgshift.migrate.options import CLI_OPTIONS
from pgshift.report.migrate import (
    PLAN_KIND,
    RESULT_KIND,
    render_markdown,
    render_plan,
    render_plan_markdown,
    render_result,
)

_HELP = (
    "Move every database (or those named) from SOURCE to TARGET: globals, databases with their properties, "
    "data, ANALYZE, then verify. Resumable with --resume WORKDIR. "
    "Exit 0: done and verified; 2: refused by the preflight; 3: cannot connect; 4: no suitable client; "
    "5: a step failed or verification found differences; 64: usage; 130/143: interrupted (resumable)."
)


def register(app: typer.Typer) -> None:
    command = declared_command(
        migrate,
        CLI_OPTIONS,
        # The options that are no field, where help has always listed them.
        place={"yes": "if_exists", "resume": "workdir", "redump": "keep_dumps", "reuse_dump": "keep_dumps"},
    )
    app.command(
        "migrate",
        cls=usage("[OPTION]... SOURCE TARGET", "[OPTION]... --resume WORKDIR [SOURCE TARGET]"),
        help=_HELP,
    )(command)


def _confirm(yes: bool, interactive: bool) -> Any:
    def ask(question: str) -> bool:
        if yes:
            return True
        if not interactive:
            return False
        return bool(typer.confirm(question, default=False, err=True))

    return ask


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" and {items[-1]}"


def migrate(
    source: Annotated[
        str | None,
        typer.Argument(metavar="SOURCE", help=conninfo_help("source", "Optional with --resume (the journal has it).")),
    ] = None,
    target: Annotated[
        str | None,
        typer.Argument(metavar="TARGET", help=conninfo_help("target", "Optional with --resume (the journal has it).")),
    ] = None,
    *,
    # Every option that is a field of MigrateOptions, declared there (see declared_command).
    declared: GivenOptions,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before dropping target databases.")] = False,
    resume: Annotated[
        Path | None, typer.Option("--resume", metavar="WORKDIR", help="Continue the run recorded in WORKDIR.")
    ] = None,
    redump: Annotated[
        bool, typer.Option("--redump", help="With --resume: dump again even when the source has not changed.")
    ] = False,
    reuse_dump: Annotated[
        bool,
        typer.Option("--reuse-dump", help="With --resume: reuse a finished dump even when the source changed since."),
    ] = False,
    fmt: RunFormatOption = OutputFormat.console,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    fmt = pick_format(fmt, as_json)
    if fmt is OutputFormat.html:
        raise UsageError("migrate reports as console, json or markdown", hint="use --format json or markdown")
    values = declared.values()  # refuses a bad --if-exists, --rename or --tablespace-map
    if resume is not None:
        if "workdir" in declared.given:
            raise UsageError("--resume WORKDIR and --workdir cannot be used together")
        fixed = [declared.spelled(o) for o in declared.given_options() if not o.flag.resumable]
        if fixed:
            raise UsageError(
                f"{_and(fixed)} cannot be given with --resume: {'it defines' if len(fixed) == 1 else 'they define'}"
                " what the run moves, and a changed selection is a new run",
                hint=f"resume without {' '.join(fixed)} (the journal has the run's selection), "
                "or start a new run with its own --workdir",
            )
        src = Endpoint.parse(source, "source") if source else None
        tgt = Endpoint.parse(target, "target") if target else None
        if (src is None) != (tgt is None):
            raise UsageError("with --resume give both SOURCE and TARGET, or neither (the journal has them)")
        # Options given again with --resume apply to what is left (e.g. the fix a failure asked for).
        changes = declared.changes()
        if redump and reuse_dump:
            raise UsageError("--redump and --reuse-dump cannot be used together")
        if redump or reuse_dump:
            changes["dump_reuse"] = "never" if redump else "always"
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
            source=Endpoint.parse(source, "source"), target=Endpoint.parse(target, "target"), **values
        )
    dry_run = options.dry_run
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
        elif fmt is OutputFormat.markdown:
            write_output(render_plan_markdown(plan), None)
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
