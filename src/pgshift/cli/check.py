"""``pgshift check SOURCE [TARGET]``: the dry-run compatibility report."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pgshift.catalog.inventory_check import ObjectFilters
from pgshift.checks import run_check
from pgshift.checks.rules import ALL_RULES
from pgshift.cli.common import (
    FormatOption,
    JsonOption,
    OutputFormat,
    OutputOption,
    PgBinOption,
    QuietOption,
    VerboseOption,
    at_least_one,
    checked_work_dir,
    conninfo_help,
    finish,
    json_text,
    pick_format,
    progress_sink,
    stdout_console,
    write_output,
)
from pgshift.cli.declared import GivenOptions, declared_command
from pgshift.cli.help import usage
from pgshift.conninfo import Endpoint
from pgshift.errors import UsageError
from pgshift.migrate.options import CLI_OPTIONS
from pgshift.report.check import json_document, render_console, render_html, render_markdown
from pgshift.version import NEWEST_KNOWN_MAJOR, parse_major

# What the move carries, spelled and documented as migrate's own options (migrate/options.py): check
# reports the hazards of the move the same options would run, with the same remedies.
_SELECTION_FIELDS = (
    "databases",
    "exclude_databases",
    "renames",
    "remedies",
    "exclude_objects",
    "tablespace_map",
    "schemas",
    "exclude_schemas",
    "tables",
    "exclude_tables",
)
SELECTION_OPTIONS = tuple(o for o in CLI_OPTIONS if o.field in _SELECTION_FIELDS)


def register(app: typer.Typer) -> None:
    app.command(
        "check",
        cls=usage("[OPTION]... SOURCE [TARGET]", "--list-rules [--json | --format markdown] [--output FILE]"),
        help="Report every hazard of moving SOURCE to TARGET (or to --target-version N) without changing either; "
        "the databases and objects are those pgshift migrate moves with the same -d/-D/--rename/-n/-N/-t/-T, "
        "--remedy, --exclude-object and --tablespace-map. "
        "Exit 0: nothing above info; 1: warnings; 2: blockers; 3: cannot connect; 4: toolchain; 64: usage.",
    )(declared_command(check, SELECTION_OPTIONS))


def check(
    source: Annotated[
        str | None,
        typer.Argument(metavar="SOURCE", help=conninfo_help("source", "Required, except with --list-rules.")),
    ] = None,
    target: Annotated[
        str | None,
        typer.Argument(
            metavar="TARGET", help=conninfo_help("target", "Optional: without it, check against --target-version.")
        ),
    ] = None,
    *,
    target_version: Annotated[
        str | None,
        typer.Option(
            "--target-version",
            metavar="N",
            help="Planned target major when no TARGET server exists yet "
            f"(default without TARGET: {NEWEST_KNOWN_MAJOR}, the newest pgshift knows).",
        ),
    ] = None,
    # The move's selection: migrate's -d/-D/--rename/-n/-N/-t/-T (SELECTION_OPTIONS).
    declared: GivenOptions,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", metavar="N", parser=at_least_one, help="Parallel jobs the move would use.")
    ] = 2,
    work_dir: Annotated[
        Path | None,
        typer.Option(
            "--workdir",
            "--work-dir",  # the former spelling, still accepted (not shown)
            metavar="DIR",
            callback=checked_work_dir,
            help="Where the dump would be written (for the space estimate).",
        ),
    ] = None,
    trial: Annotated[
        bool | None,
        typer.Option(
            "--trial/--no-trial",
            help="Restore the source's schema into a scratch database on TARGET (or, without TARGET, on a lab "
            "server of the planned major) and report every statement it refuses; the scratch database is always "
            "dropped. Default: on with TARGET, off without.",
        ),
    ] = None,
    list_rules: Annotated[bool, typer.Option("--list-rules", help="Print every rule and exit.")] = False,
    fmt: FormatOption = OutputFormat.console,
    as_json: JsonOption = False,
    output: OutputOption = None,
    pg_bin: PgBinOption = None,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    fmt = pick_format(fmt, as_json)
    if list_rules:
        _list_rules(fmt, output)
        finish(0)
    if source is None:
        raise UsageError("missing SOURCE", hint="usage: pgshift check [OPTION]... SOURCE [TARGET] (or --list-rules)")
    major = parse_major(target_version) if target_version is not None else None
    chosen = declared.values()  # refuses a malformed --rename
    src = Endpoint.parse(source, "source")
    tgt = Endpoint.parse(target, "target") if target is not None else None
    with progress_sink(quiet=quiet or fmt is not OutputFormat.console, verbose=verbose) as sink:
        report = run_check(
            src,
            tgt,
            target_version=major,
            databases=chosen["databases"] or None,
            exclude_databases=chosen["exclude_databases"],
            renames=chosen["renames"],
            filters=ObjectFilters(
                chosen["schemas"], chosen["exclude_schemas"], chosen["tables"], chosen["exclude_tables"]
            ),
            jobs=jobs,
            pg_bins=pg_bin or [],
            sink=sink,
            work_dir=work_dir,
            trial=trial if trial is not None else tgt is not None,
            remedy_names=chosen["remedies"],
            exclude_objects=chosen["exclude_objects"],
            tablespace_map=chosen["tablespace_map"],
        )
    if fmt is OutputFormat.json:
        write_output(json_text(json_document(report)), output)
    elif fmt is OutputFormat.markdown:
        write_output(render_markdown(report), output)
    elif fmt is OutputFormat.html:
        write_output(render_html(report), output)
    elif output is not None:
        buf = io.StringIO()
        render_console(report, Console(file=buf, width=140, no_color=True, highlight=False), verbose=True)
        write_output(buf.getvalue(), output)
    else:
        render_console(report, stdout_console(), verbose=verbose)
    finish(report.exit_code)


def _list_rules(fmt: OutputFormat, output: Path | None) -> None:
    if fmt is OutputFormat.json:
        doc = {"kind": "check-rules", "schema_version": 1, "rules": [r.as_dict() for r in ALL_RULES]}
        write_output(json_text(doc), output)
        return
    if fmt is OutputFormat.markdown:
        from pgshift.checks.docs import rules_markdown

        write_output(rules_markdown(), output)
        return
    table = Table(title=f"{len(ALL_RULES)} rules", title_justify="left")
    table.add_column("id", no_wrap=True)
    table.add_column("severity", no_wrap=True)
    table.add_column("source", no_wrap=True)
    table.add_column("target", no_wrap=True)
    table.add_column("title")
    for r in ALL_RULES:
        table.add_row(
            r.id,
            r.severity.value,
            r.source_range,
            r.target_range,
            escape(r.title)
            + (" [dim](needs target)[/]" if r.needs_target else "")
            + (" [dim](reads values)[/]" if r.scans_data else ""),
        )
    if output is not None:
        buf = io.StringIO()
        Console(file=buf, width=160, no_color=True).print(table)
        write_output(buf.getvalue(), output)
    else:
        stdout_console().print(table)
