"""``pgshift scenario``: list and run the scenario catalogue (pgshift itself, on lab servers of each pair)."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pgshift.cli.common import (
    FormatOption,
    JsonOption,
    OutputFormat,
    OutputOption,
    QuietOption,
    VerboseOption,
    at_least_one,
    finish,
    json_text,
    pick_format,
    progress_sink,
    stdout_console,
    write_output,
)
from pgshift.cli.help import PgCommand, PgGroup, one_of, usage
from pgshift.errors import ExitCode, UsageError
from pgshift.report import scenario as report
from pgshift.scenario import load
from pgshift.scenario.model import Case, Scenario
from pgshift.scenario.runner import RunOptions, run_cases


class BackendChoice(StrEnum):
    lab = "lab"
    docker = "docker"


scenario_app = typer.Typer(
    cls=PgGroup,
    help="List and run the scenario catalogue: pgshift check/migrate/verify on throwaway servers of each "
    "source → target pair, compared with what each scenario expects.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["--help"]},
)

DirOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--dir",
        metavar="DIR",
        help="Also read the scenario files (*.toml) of DIR (repeatable), after the packaged catalogue.",
    ),
]
TagOption = Annotated[
    list[str] | None,
    typer.Option("--tag", metavar="TAG", help="Only scenarios with this tag (repeatable: any of them)."),
]
ListFormatOption = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        metavar="FORMAT",
        parser=one_of(OutputFormat, (OutputFormat.console, OutputFormat.json, OutputFormat.markdown)),
        help="Report format: console, json or markdown.",
    ),
]


def register(app: typer.Typer) -> None:
    app.add_typer(scenario_app, name="scenario")


def _tagged(scenarios: list[Scenario], tags: list[str] | None) -> list[Scenario]:
    if not tags:
        return scenarios
    known = sorted({t for s in scenarios for t in s.tags})
    unknown = [t for t in tags if t not in known]
    if unknown:
        raise UsageError(f"no scenario has the tag {unknown[0]!r}", hint=f"tags in the catalogue: {', '.join(known)}")
    return [s for s in scenarios if set(tags) & set(s.tags)]


def _wide_console() -> Console:
    console = stdout_console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Piped or redirected: wide enough that the matrix and descriptions do not fold.
        console.width = max(console.width, 160)
    return console


@scenario_app.command("list", cls=PgCommand)
def list_cmd(
    dirs: DirOption = None,
    tags: TagOption = None,
    fmt: ListFormatOption = OutputFormat.console,
    as_json: JsonOption = False,
) -> None:
    """Every scenario of the catalogue: its pairs, the commands it runs and what it shows."""
    scenarios = _tagged(load.catalogue(dirs or []), tags)
    fmt = pick_format(fmt, as_json)
    if fmt is OutputFormat.json:
        write_output(
            json_text({"kind": report.LIST_KIND, "schema_version": 1, **report.list_document(scenarios)}), None
        )
    elif fmt is OutputFormat.markdown:
        write_output(report.render_list_markdown(scenarios), None)
    else:
        report.render_list_console(scenarios, _wide_console())


@scenario_app.command(
    "run",
    cls=usage("[OPTION]... NAME...", "[OPTION]... --all"),
    help="Run scenarios by name (NAME, NAME@SOURCE-TARGET for one pair, or a path to a .toml file) or --all, "
    "and print a matrix of the results. Exit 0: every case passed; 1: a case's outcome differed from "
    "its expectations; 5: a case could not run (a server or a setup statement failed); 64: a bad scenario file "
    "or name.",
)
def run_cmd(
    names: Annotated[list[str] | None, typer.Argument(metavar="NAME", show_default=False)] = None,
    run_all: Annotated[bool, typer.Option("--all", help="Every scenario of the catalogue (and of --dir).")] = False,
    skip_slow: Annotated[
        bool, typer.Option("--skip-slow", help="Leave out the scenarios marked slow (CI's default set).")
    ] = False,
    tags: TagOption = None,
    dirs: DirOption = None,
    backend: Annotated[
        BackendChoice,
        typer.Option(
            "--backend",
            metavar="BACKEND",
            parser=one_of(BackendChoice),
            help="Where the servers run: lab (local throwaway servers) or docker (containers of locally built images).",
        ),
    ] = BackendChoice.lab,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", metavar="N", parser=at_least_one, help="Cases run at once (default 1).")
    ] = 1,
    fmt: FormatOption = OutputFormat.console,
    as_json: JsonOption = False,
    output: OutputOption = None,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    fmt = pick_format(fmt, as_json)
    if fmt is OutputFormat.html:
        raise UsageError("scenario run reports as console, json or markdown", hint="use --format json or markdown")
    if run_all and names:
        raise UsageError("give scenario names or --all, not both", hint="drop the names, or drop --all")
    if not run_all and not names:
        raise UsageError("name the scenarios to run, or give --all", hint="see them with 'pgshift scenario list'")
    scenarios = load.catalogue(dirs or [])
    chosen: list[tuple[Scenario, tuple[int, int] | None]] = (
        [(s, None) for s in _tagged(scenarios, tags)] if run_all else load.choose(scenarios, names or [])
    )
    if skip_slow:
        chosen = [(s, pair) for s, pair in chosen if not s.slow]
    cases: list[Case] = []
    for scenario, pair in chosen:
        cases += [c for c in scenario.cases() if pair is None or (c.source, c.target) == pair]
    if not cases:
        raise UsageError("no scenario left to run", hint="drop --skip-slow or --tag, or name another scenario")
    with progress_sink(quiet=quiet or fmt is not OutputFormat.console, verbose=verbose) as sink:
        result = run_cases(cases, RunOptions(backend=backend.value, jobs=jobs), sink)
    if fmt is OutputFormat.json:
        doc = {"kind": report.RUN_KIND, "schema_version": 1, **report.json_document(result)}
        write_output(json_text(doc), output)
    elif fmt is OutputFormat.markdown:
        write_output(report.render_markdown(result), output)
    elif output is not None:
        with output.open("w", encoding="utf-8") as handle:
            report.render_console(result, Console(file=handle, width=160, no_color=True), verbose=verbose)
    else:
        report.render_console(result, _wide_console(), verbose=verbose)
    finish(ExitCode(result.exit_code))
