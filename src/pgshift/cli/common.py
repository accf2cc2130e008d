"""What every command shares: consoles, output formats, the progress renderer, exiting."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from pgshift import paths
from pgshift.catalog.session import printable
from pgshift.cli.help import one_of, whole_number
from pgshift.conninfo import CONNINFO_EXAMPLES
from pgshift.errors import ExitCode, PgshiftError, UsageError
from pgshift.events import Event, EventSink, Level, Message, StepFinished, StepProgress, StepStarted
from pgshift.flags import EXCLUDE_SCHEMA, EXCLUDE_TABLE, PG_BIN, RENAME, SCHEMA, TABLE, Flag


class Finished(Exception):
    """Raised by a command to end with an exit code; ``main`` turns it into the process status.

    typer's own exit status 2 means a usage error and is remapped to 64; a command that must end
    with 2 (blockers) raises this instead so the two cannot be confused.
    """

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def finish(code: int | ExitCode) -> None:
    raise Finished(int(code))


class OutputFormat(StrEnum):
    console = "console"
    json = "json"
    markdown = "markdown"
    html = "html"


# One description of a connection string, for every argument that names a server.
CONNINFO_HELP = f"a connection string: {CONNINFO_EXAMPLES}"


def conninfo_help(role: str, more: str = "") -> str:
    """The help of a SOURCE or TARGET argument: which server, and the one description of the forms."""
    return f"The {role} server, as {CONNINFO_HELP}." + (f" {more}" if more else "")


# Parsers of option values, so that a refusal is in pgshift's words (cli/help.py reports it).
at_least_one = whole_number(1)

FormatOption = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        metavar="FORMAT",
        parser=one_of(OutputFormat),
        help="Report format: console, json, markdown or html.",
    ),
]
# migrate reports a run, not a page: no html.
RunFormatOption = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        metavar="FORMAT",
        parser=one_of(OutputFormat, (OutputFormat.console, OutputFormat.json, OutputFormat.markdown)),
        help="Report format: console, json or markdown.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Same as --format json.")]


def checked_output(value: Path | None) -> Path | None:
    """-o/--output FILE, refused at parse time (before any server is read) when it cannot be written."""
    return None if value is None else paths.output_file(value, "--output")


def checked_work_dir(value: Path | None) -> Path | None:
    """A work directory option, refused at parse time when it is a file, under one, or not writable."""
    return None if value is None else paths.work_directory(value, "--workdir")


OutputOption = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        metavar="FILE",
        callback=checked_output,
        help="Write the report to FILE instead of stdout.",
    ),
]


def typer_option(flag: Flag) -> Any:
    """The typer option of a flag the core declares (``pgshift.flags``): names, metavar, help, parser."""
    return typer.Option(
        *flag.names,
        metavar=flag.metavar,
        help=flag.help,
        parser=whole_number(flag.minimum) if flag.minimum is not None else None,
    )


PgBinOption = Annotated[list[Path] | None, typer_option(PG_BIN)]
# pg_dump's object filters, shared by every command that selects objects.
SchemaOption = Annotated[list[str] | None, typer_option(SCHEMA)]
ExcludeSchemaOption = Annotated[list[str] | None, typer_option(EXCLUDE_SCHEMA)]
TableOption = Annotated[list[str] | None, typer_option(TABLE)]
ExcludeTableOption = Annotated[list[str] | None, typer_option(EXCLUDE_TABLE)]
RenameOption = Annotated[list[str] | None, typer_option(RENAME)]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print errors and the result only.")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Print every step and child program line.")]


def parse_pairs(items: Iterable[str], option: str) -> dict[str, str]:
    """``OLD=NEW`` arguments (``--rename``, ``--tablespace-map``) as a mapping."""
    out: dict[str, str] = {}
    for item in items:
        old, sep, new = item.partition("=")
        if not sep or not old or not new:
            raise UsageError(f"{option} expects OLD=NEW, not {item!r}", hint=f"e.g. {option} sales=sales_2026")
        if old in out:
            raise UsageError(f"{option} names {old!r} twice")
        out[old] = new
    return out


def stdout_console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


def pick_format(fmt: OutputFormat, as_json: bool) -> OutputFormat:
    return OutputFormat.json if as_json else fmt


def json_text(doc: Any) -> str:
    """JSON as pgshift writes it: UTF-8, and bytes that are not (SQL_ASCII) as the characters \\xNN."""
    return printable(json.dumps(doc, indent=2, default=str, ensure_ascii=False), escape="\\\\")


def print_json(payload: dict[str, Any], kind: str, schema_version: int = 1) -> None:
    """JSON alone on stdout, with the kind and schema version first."""
    doc = {"kind": kind, "schema_version": schema_version, **payload}
    sys.stdout.write(json_text(doc) + "\n")


def write_output(text: str, output: Path | None) -> None:
    if output is None:
        text = printable(text)
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        try:
            output.write_text(printable(text), encoding="utf-8")
        except OSError as exc:  # judged writable at the start (checked_output): the disk filled since
            raise PgshiftError(
                f"the report could not be written to {output} ({exc.strerror})",
                hint="free space there or give another --output FILE, then run the command again",
            ) from None


def render_error(exc: PgshiftError, *, verbose: bool = False) -> None:
    err = stderr_console()
    # soft_wrap: no hard line breaks inside paths and commands; the terminal wraps long lines.
    err.print(f"[bold red]error:[/] {_esc(exc.message)}", soft_wrap=True)
    if exc.detail and (verbose or len(exc.detail) < 2000):
        lines = exc.detail.strip().splitlines()[-12:]
        for line in lines:
            err.print(f"  [dim]{_esc(line)}[/]", soft_wrap=True)
    if exc.hint:
        err.print(f"[bold]hint:[/] {_esc(exc.hint)}", soft_wrap=True)


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)


class ProgressRenderer:
    """Turns core events into a rich progress display (interactive stderr) or log lines."""

    def __init__(self, *, quiet: bool = False, verbose: bool = False) -> None:
        self.quiet = quiet
        self.verbose = verbose
        self.console = stderr_console()
        interactive = self.console.is_terminal and not os.environ.get("CI")
        self.progress: Progress | None = None
        if interactive and not quiet:
            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> ProgressRenderer:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, event: Event) -> None:
        if isinstance(event, StepStarted):
            if self.progress is not None:
                self.tasks[event.step] = self.progress.add_task(event.title, total=event.total)
            elif self.verbose:
                self.console.print(f"[dim]…[/] {_esc(event.title)}")
        elif isinstance(event, StepProgress):
            if self.progress is not None and event.step in self.tasks:
                self.progress.update(self.tasks[event.step], completed=event.completed, total=event.total)
        elif isinstance(event, StepFinished):
            if self.progress is not None and event.step in self.tasks:
                self.progress.remove_task(self.tasks.pop(event.step))
            if not self.quiet and (self.verbose or not event.ok):
                mark = "[green]✓[/]" if event.ok else "[red]✗[/]"
                self.console.print(
                    f"{mark} {_esc(event.title)}" + (f" [dim]({event.seconds:.1f}s)[/]" if event.seconds else "")
                )
        elif isinstance(event, Message):
            self._message(event)

    def _message(self, event: Message) -> None:
        if event.level == Level.DEBUG and not self.verbose:
            return
        if event.level == Level.INFO and self.quiet:
            return
        style = {Level.WARNING: "[yellow]warning:[/] ", Level.ERROR: "[red]error:[/] "}.get(event.level, "")
        text = f"{style}{_esc(event.title)}"
        if self.progress is not None:
            self.progress.console.print(text)
        else:
            # Piped or logged: one line per message, whole (a terminal still wraps it for the eye).
            self.console.print(text, soft_wrap=not self.console.is_terminal)


@contextmanager
def progress_sink(*, quiet: bool = False, verbose: bool = False) -> Iterator[EventSink]:
    with ProgressRenderer(quiet=quiet, verbose=verbose) as renderer:
        yield renderer
