"""``pgshift rehearse SOURCE --target-version N``: the real migration into a throwaway server."""

from __future__ import annotations

from typing import Annotated

import typer

from pgshift.cli.common import (
    JsonOption,
    OutputFormat,
    QuietOption,
    RunFormatOption,
    VerboseOption,
    at_least_one,
    conninfo_help,
    finish,
    pick_format,
    print_json,
    progress_sink,
    stdout_console,
    write_output,
)
from pgshift.cli.declared import GivenOptions, declared_command
from pgshift.cli.help import usage
from pgshift.conninfo import Endpoint
from pgshift.errors import ExitCode, PgshiftError, UsageError
from pgshift.migrate.options import CLI_OPTIONS
from pgshift.rehearse import PLAN_KIND, RESULT_KIND, SCHEMA_VERSION, RehearseOptions, plan_rehearsal, run_rehearsal
from pgshift.rehearse.model import NOT_REHEARSED
from pgshift.report.rehearse import render_markdown, render_plan, render_plan_markdown, render_result
from pgshift.version import parse_major

# migrate's options, meaning what they mean there; those a lab server makes moot are not offered.
REHEARSE_OPTIONS = tuple(o for o in CLI_OPTIONS if o.field not in NOT_REHEARSED)

_HELP = (
    "Rehearse the migration of SOURCE to PostgreSQL N: start a throwaway lab server of that major "
    "(--docker: in a container), run pgshift check with the schema trial and then the real migration plan into "
    "it (migrate's options: --mode, --remedy, --exclude-object, filters …), verify, and report whether everything "
    "loads, what fails with its advice, the time per phase and database, and the disk the target needs. "
    "The source is only read; the lab server is always removed (--keep leaves it running). "
    "Exit 0: ready; 1: ready with warnings; 2: not ready (blockers, a load that fails, differences); "
    "3: cannot connect; 4: no lab binaries or client; 5: the rehearsal itself failed; 64: usage; 130/143: interrupted."
)


def register(app: typer.Typer) -> None:
    app.command("rehearse", cls=usage("[OPTION]... SOURCE --target-version N"), help=_HELP)(
        declared_command(rehearse, REHEARSE_OPTIONS)
    )


def rehearse(
    source: Annotated[str | None, typer.Argument(metavar="SOURCE", help=conninfo_help("source"))] = None,
    *,
    target_version: Annotated[
        str | None,
        typer.Option("--target-version", metavar="N", help="The major to rehearse the move to (10 to 18)."),
    ] = None,
    keep: Annotated[
        bool,
        typer.Option("--keep", help="Leave the lab server running at the end and print how to connect to it."),
    ] = False,
    sample_rows: Annotated[
        int | None,
        typer.Option(
            "--sample-rows",
            metavar="N",
            parser=at_least_one,
            help="Quick rehearsal of a huge database: the whole schema, and at most N rows per table; the data "
            "figures are then scaled to the full size (foreign keys are not enforced on the sample).",
        ),
    ] = None,
    # migrate's own options (REHEARSE_OPTIONS).
    declared: GivenOptions,
    fmt: RunFormatOption = OutputFormat.console,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    fmt = pick_format(fmt, as_json)
    if fmt is OutputFormat.html:
        raise UsageError("rehearse reports as console, json or markdown", hint="use --format json or markdown")
    if not source:
        raise UsageError(
            "give the SOURCE connection string",
            hint="pgshift rehearse postgresql://postgres@old-host/postgres --target-version 18",
        )
    if target_version is None:
        raise UsageError(
            "give the major to rehearse the move to with --target-version N",
            hint="pgshift rehearse SOURCE --target-version 18",
        )
    options = RehearseOptions(
        source=Endpoint.parse(source, "source"),
        target_major=parse_major(target_version),
        migrate=declared.changes(),
        keep=keep,
        sample_rows=sample_rows,
    )
    try:
        with progress_sink(quiet=quiet or fmt is not OutputFormat.console, verbose=verbose) as sink:
            if options.dry_run:
                plan = plan_rehearsal(options, sink=sink)
            else:
                result = run_rehearsal(options, sink=sink)
    except PgshiftError as exc:
        if fmt is OutputFormat.json:
            error = {"message": exc.message, "hint": exc.hint, "exit_code": int(exc.exit_code)}
            print_json({"ok": False, "error": error}, kind=RESULT_KIND, schema_version=SCHEMA_VERSION)
        raise
    if options.dry_run:
        if fmt is OutputFormat.json:
            print_json(plan.as_dict(), kind=PLAN_KIND, schema_version=SCHEMA_VERSION)
        elif fmt is OutputFormat.markdown:
            write_output(render_plan_markdown(plan), None)
        else:
            render_plan(plan, stdout_console())
        finish(ExitCode.OK)
        return
    if fmt is OutputFormat.json:
        print_json(
            {"ok": result.verdict != "not-ready", **result.as_dict()}, kind=RESULT_KIND, schema_version=SCHEMA_VERSION
        )
    elif fmt is OutputFormat.markdown:
        write_output(render_markdown(result), None)
    elif quiet:
        stdout_console().print(result.headline)
    else:
        render_result(result, stdout_console(), verbose=verbose)
    finish(result.exit_code)
