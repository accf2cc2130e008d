"""The ``pgshift`` command: the app, its global options and the one error funnel."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import psycopg
import typer
from rich.markup import escape as _escape

import pgshift.catalog.session  # noqa: F401  (registers the output error handler)
from pgshift import __version__
from pgshift.catalog.session import query_failed
from pgshift.cli import backup, check, demo, migrate, rehearse, scenario, toolchain, verify
from pgshift.cli.common import Finished, render_error, stderr_console
from pgshift.cli.help import NoCommandGiven, ParserError, PgGroup, usage_error
from pgshift.errors import ExitCode, PgshiftError

app = typer.Typer(
    name="pgshift",
    cls=PgGroup,
    help="Move PostgreSQL databases across major versions and between hosts — safely, with proof.",
    no_args_is_help=True,
    # Locals can hold passwords: never show them.
    pretty_exceptions_show_locals=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["--help"]},  # -h is never help (pg_dump's host flag)
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pgshift {__version__}")
        raise Finished(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of internal errors.")] = False,
) -> None:
    """pgshift: check, migrate and verify PostgreSQL databases across major versions."""


for _module in (check, migrate, verify, backup, rehearse, demo, toolchain, scenario):
    _module.register(app)


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("PGSHIFT_DEBUG", "") not in ("", "0")


def _print_traceback(debug: bool) -> None:
    """The traceback of the exception being handled, under --debug; the exit code stays the documented one
    (re-raising would end every failure with Python's 1)."""
    if debug:
        import traceback

        sys.stderr.flush()
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the app and maps every outcome to a documented exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(args)
    # --debug is accepted anywhere on the line, not only before the command.
    args = [a for a in args if a != "--debug"]
    for stream in (sys.stdout, sys.stderr):
        # Bytes of a SQL_ASCII database that are not UTF-8 print as \xNN (see catalog.session).
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="pgshift-undecoded")
    code: int
    try:
        # Not standalone: what the parser refuses comes here, to be said in pgshift's words.
        returned = app(args=args, prog_name="pgshift", standalone_mode=False)
        # --help and typer.Exit end with their exit code as the result; commands end with finish().
        code = returned if isinstance(returned, int) else 0
    except Finished as done:
        code = done.code
    except NoCommandGiven as exc:
        # "pgshift" or "pgshift toolchain" alone: the help, and the status of a missing command.
        sys.stdout.write(exc.ctx.get_help() + "\n" if exc.ctx is not None else "")
        code = ExitCode.USAGE
    except ParserError as exc:
        # Unknown option, missing argument, bad value…: one error line and a hint, exit 64 (click's
        # own status 2 would read as "blockers").
        render_error(usage_error(exc))
        code = ExitCode.USAGE
    except typer.Abort:  # a confirmation prompt ended by Ctrl-C or end of input
        stderr_console().print("[red]interrupted[/]")
        code = ExitCode.INTERRUPTED
    except SystemExit as exc:
        raw = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        code = ExitCode.USAGE if raw == 2 else raw
    except PgshiftError as exc:
        _print_traceback(debug)
        render_error(exc, verbose=debug)
        code = exc.exit_code
    except psycopg.Error as exc:  # a query no room turned into a PgshiftError: still no traceback
        _print_traceback(debug)
        render_error(query_failed("pgshift could not finish", exc), verbose=debug)
        code = ExitCode.FAILED
    except KeyboardInterrupt:
        stderr_console().print("[red]interrupted[/]")
        code = ExitCode.INTERRUPTED
    except Exception as exc:  # an internal error: say so plainly, traceback only with --debug
        _print_traceback(debug)
        stderr_console().print(
            f"[bold red]internal error:[/] {_escape(f'{type(exc).__name__}: {exc}')}\n"
            + (
                "[bold]hint:[/] report it with the traceback above"
                if debug
                else "[bold]hint:[/] run again with --debug for the traceback, and report it"
            )
        )
        code = ExitCode.FAILED
    sys.exit(int(code))
