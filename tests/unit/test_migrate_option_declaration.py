"""``pgshift migrate``'s options are declared once, beside the MigrateOptions field each sets: the
CLI, the options record and resume all follow that one declaration."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from pgshift.cli.declared import GivenOptions, declared_command
from pgshift.cli.help import PgCommand
from pgshift.cli.main import main
from pgshift.migrate.options import CLI_OPTIONS, NOT_ON_THE_COMMAND_LINE, MigrateOptions

DECLARED = {o.field: o for o in CLI_OPTIONS}


@pytest.fixture(scope="module")
def migrate_help() -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["migrate", "--help"])
    return out.getvalue()


def test_every_field_is_an_option_or_deliberately_not_one() -> None:
    names = [f.name for f in fields(MigrateOptions)]
    assert set(DECLARED) | set(NOT_ON_THE_COMMAND_LINE) == set(names)
    assert not set(DECLARED) & set(NOT_ON_THE_COMMAND_LINE)
    assert all(NOT_ON_THE_COMMAND_LINE.values()), "say why a field is no option"


def test_every_declared_flag_is_in_help_in_the_declared_order(migrate_help: str) -> None:
    terms = [line.split("  ")[1] for line in migrate_help.splitlines() if line.startswith("  -")]
    shown = {name: i for i, term in enumerate(terms) for name in re.findall(r"-[-\w]+", term.partition("=")[0])}
    positions = []
    for option in CLI_OPTIONS:
        for declared in option.flag.names:
            for name in declared.split("/"):
                assert name in shown, f"{name} ({option.field}) is not in pgshift migrate --help"
        positions.append(shown[option.flag.name])
    assert positions == sorted(positions), "help lists the options in the order of the fields"
    for option in CLI_OPTIONS:
        if option.flag.metavar:
            assert f"{option.flag.name}={option.flag.metavar}" in migrate_help


def test_only_how_the_rest_is_done_may_change_on_resume() -> None:
    resumable = {o.field for o in CLI_OPTIONS if o.flag.resumable}
    assert resumable == {
        "keep_dumps", "tablespace_map", "no_tablespaces", "no_owner", "no_privileges", "no_role_passwords",
        "globals", "accept", "check", "analyze", "verify", "checksums", "pg_bins", "docker", "docker_image",
        "if_exists", "jobs", "dry_run", "compress",
    }  # fmt: skip
    # What the run moves is fixed by its journal: a changed selection is a new run.
    for fixed in ("databases", "exclude_databases", "renames", "schemas", "exclude_schemas", "tables",
                  "exclude_tables", "data_only", "schema_only", "allow_downgrade", "workdir", "mode"):  # fmt: skip
        assert not DECLARED[fixed].flag.resumable, fixed


def test_how_each_kind_of_option_becomes_its_field() -> None:
    kinds = {o.field: o.kind for o in CLI_OPTIONS}
    assert kinds["globals"] == kinds["check"] == "negation"  # --no-globals sets globals=False
    assert kinds["analyze"] == kinds["verify"] == "toggle"
    assert kinds["keep_dumps"] == "switch"
    assert kinds["renames"] == kinds["tablespace_map"] == "pairs"
    assert kinds["databases"] == kinds["pg_bins"] == "list"
    assert kinds["if_exists"] == "choice" and DECLARED["if_exists"].choices == ("error", "drop", "skip")
    assert kinds["jobs"] == "value" and DECLARED["jobs"].flag.minimum == 1
    assert DECLARED["pg_bins"].element is Path


def _parse(*args: str) -> GivenOptions:
    """What migrate's declared options give for ``args``, parsed by typer as pgshift does."""
    seen: list[GivenOptions] = []

    def handler(*, declared: GivenOptions) -> None:
        seen.append(declared)

    app = typer.Typer()
    app.command(cls=PgCommand)(declared_command(handler, CLI_OPTIONS))
    done = CliRunner().invoke(app, list(args))
    assert done.exit_code == 0, done.output
    return seen[0]


def test_given_options_come_from_the_parser_not_from_a_comparison_with_defaults() -> None:
    given = _parse("--jobs", "2", "--if-exists", "error", "--analyze", "-x", "-d", "a", "-d", "b")
    assert given.changes() == {
        "jobs": 2,  # the default, but given: it applies
        "if_exists": "error",
        "analyze": True,
        "no_privileges": True,
        "databases": ("a", "b"),
    }
    assert _parse().changes() == {}


def test_values_map_the_command_line_to_the_fields() -> None:
    values: dict[str, Any] = _parse(
        "--no-globals", "--no-check", "--no-analyze", "--rename", "a=b", "--tablespace-map", "fast=/srv/ts",
        "--pg-bin", "/opt/pg/bin", "--accept", "rule-x",
    ).values()  # fmt: skip
    assert values["globals"] is False and values["check"] is False and values["analyze"] is False
    assert values["renames"] == {"a": "b"} and values["tablespace_map"] == {"fast": "/srv/ts"}
    assert values["pg_bins"] == (Path("/opt/pg/bin"),) and values["accept"] == ("rule-x",)
    assert values["verify"] is True and values["jobs"] == 2 and values["schemas"] == ()
    # Every default on the command line is the field's default.
    defaults = _parse().values()
    for f in fields(MigrateOptions):
        if f.name in defaults:
            default = f.default_factory() if callable(f.default_factory) else f.default
            assert defaults[f.name] == default, f.name


def test_the_spelling_named_in_messages_is_the_long_one_given() -> None:
    given = _parse("--no-analyze", "-d", "x")
    assert given.spelled(DECLARED["analyze"]) == "--no-analyze"
    assert given.spelled(DECLARED["databases"]) == "--database"
