"""``pgshift verify SOURCE TARGET``: prove that the target holds what the source holds."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pgshift.cli.common import (
    ExcludeSchemaOption,
    ExcludeTableOption,
    FormatOption,
    JsonOption,
    OutputFormat,
    OutputOption,
    QuietOption,
    RenameOption,
    SchemaOption,
    TableOption,
    VerboseOption,
    at_least_one,
    conninfo_help,
    finish,
    json_text,
    parse_pairs,
    pick_format,
    progress_sink,
    stdout_console,
    write_output,
)
from pgshift.cli.help import PgCommand
from pgshift.conninfo import Endpoint
from pgshift.errors import UsageError
from pgshift.report.verify import json_document, render_console, render_html, render_markdown
from pgshift.verify import VerifyOptions, verify_servers
from pgshift.verify.expect import parse_expected


def register(app: typer.Typer) -> None:
    app.command(
        "verify",
        cls=PgCommand,
        help="Compare SOURCE and TARGET: roles, database properties, objects and privileges, exact row counts, "
        "sequences, large objects and (with --checksums) the data itself. "
        "Exit 0: equal; 1: differences; 3: cannot connect; 5: a query failed; 64: usage.",
    )(verify)


def verify(
    source: Annotated[str, typer.Argument(metavar="SOURCE", help=conninfo_help("source"))],
    target: Annotated[str, typer.Argument(metavar="TARGET", help=conninfo_help("target"))],
    database: Annotated[
        list[str] | None,
        typer.Option(
            "--database", "-d", metavar="NAME", help="Verify only this source database (repeatable). Default: all."
        ),
    ] = None,
    rename: RenameOption = None,
    checksums: Annotated[
        bool, typer.Option("--checksums", help="Also compare a digest of every table's content (reads all data).")
    ] = False,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs", "-j", metavar="N", parser=at_least_one, help="Connections per server for counts and checksums."
        ),
    ] = 2,
    schema: SchemaOption = None,
    exclude_schema: ExcludeSchemaOption = None,
    table: TableOption = None,
    exclude_table: ExcludeTableOption = None,
    no_globals: Annotated[bool, typer.Option("--no-globals", help="Do not compare roles and memberships.")] = False,
    no_owners: Annotated[bool, typer.Option("--no-owner", "-O", help="Do not compare owners.")] = False,
    no_privileges: Annotated[
        bool, typer.Option("--no-privileges", "--no-acl", "-x", help="Do not compare privileges (ACLs).")
    ] = False,
    no_rows: Annotated[bool, typer.Option("--no-rows", help="Do not count rows (catalogs only).")] = False,
    no_schema: Annotated[
        bool, typer.Option("--no-schema", help="Do not compare objects (rows, sequences, large objects only).")
    ] = False,
    chunk_rows: Annotated[
        int,
        typer.Option("--chunk-rows", metavar="N", parser=at_least_one, help="Rows per checksummed key range."),
    ] = VerifyOptions.checksum_chunk_rows,
    expected_file: Annotated[
        Path | None,
        typer.Option(
            "--expected",
            metavar="FILE",
            help="Differences made on purpose (migrate's remedies), as JSON: reported under their remedy, "
            "not counted (docs/verify.md).",
        ),
    ] = None,
    fmt: FormatOption = OutputFormat.console,
    as_json: JsonOption = False,
    output: OutputOption = None,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    fmt = pick_format(fmt, as_json)
    if jobs < 1:
        raise UsageError("--jobs must be at least 1", hint="give -j 1 or more")
    if no_rows and no_schema:
        raise UsageError("--no-rows and --no-schema leave nothing to compare in the databases", hint="drop one")
    renames = parse_pairs(rename or [], "--rename")
    expected = []
    if expected_file is not None:
        try:
            text = expected_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(
                f"cannot read --expected {expected_file}: {exc}", hint="give a readable JSON file"
            ) from None
        expected = parse_expected(text, f"--expected {expected_file}")
    pairs = [(d, renames.get(d, d)) for d in database] if database else None
    options = VerifyOptions(
        checksums=checksums,
        jobs=jobs,
        compare_globals=not no_globals,
        compare_owners=not no_owners,
        compare_privileges=not no_privileges,
        compare_rows=not no_rows,
        compare_schema=not no_schema,
        schemas=tuple(schema or ()),
        exclude_schemas=tuple(exclude_schema or ()),
        tables=tuple(table or ()),
        exclude_tables=tuple(exclude_table or ()),
        checksum_chunk_rows=chunk_rows,
    )
    src = Endpoint.parse(source, "source")
    tgt = Endpoint.parse(target, "target")
    with progress_sink(quiet=quiet or fmt is not OutputFormat.console, verbose=verbose) as sink:
        report = verify_servers(
            src, tgt, databases=pairs, options=options, sink=sink, renames=renames, expected=expected
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
