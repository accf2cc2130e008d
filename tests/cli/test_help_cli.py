"""Help pages and usage errors as a user sees them: every command, PostgreSQL's manner, pgshift's words.

The help tests walk the command tree of the app, so a command added later is covered without
being listed here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from typer.main import get_command

from pgshift.cli.common import CONNINFO_HELP
from pgshift.cli.help import PgCommand, PgGroup, option_names
from pgshift.cli.main import app, main

UNREACHABLE = "host=127.0.0.1 port=1 connect_timeout=2"


def pgshift(*args: str) -> subprocess.CompletedProcess[str]:
    """A real process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """The same entry point in this process (main() is what the console script calls): faster."""

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        with pytest.raises(SystemExit) as done:
            main(list(args))
        out = capsys.readouterr()
        code = done.value.code if isinstance(done.value.code, int) else 1
        return subprocess.CompletedProcess(["pgshift", *args], code, out.out, out.err)

    return call


def _walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _walk(sub, (*path, name))


TREE = list(_walk(get_command(app)))
COMMANDS = [(path, cmd) for path, cmd in TREE if not hasattr(cmd, "commands")]


def _ids(items: list[tuple[tuple[str, ...], Any]]) -> list[str]:
    return [" ".join(("pgshift", *path)) for path, _cmd in items]


def _help(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as done:
        main([*path, "--help"])
    out = capsys.readouterr()
    assert done.value.code == 0, out.err
    assert out.err == ""
    return out.out


def _options(command: Any) -> list[Any]:
    return [p for p in command.params if p.param_type_name == "option" and not p.hidden]


def _arguments(command: Any) -> list[Any]:
    return [p for p in command.params if p.param_type_name == "argument" and not p.hidden]


def test_the_tree_is_every_command_there_is() -> None:
    names = {" ".join(path) for path, _cmd in TREE}
    assert {"check", "migrate", "verify", "demo", "toolchain", "toolchain list", "toolchain select"} <= names
    for path, command in TREE:
        # The help and error wording below come from these classes: a command built without
        # them would show typer's own page.
        assert isinstance(command, PgCommand | PgGroup), f"pgshift {' '.join(path)} is a {type(command).__name__}"


@pytest.mark.parametrize(("path", "command"), TREE, ids=_ids(TREE))
def test_help_reads_like_postgresql_and_shows_no_python_type(
    path: tuple[str, ...], command: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    text = _help(path, capsys)
    assert re.search(r"<[^<>\n]*>", text) is None, f"a <placeholder> in:\n{text}"
    assert "--work-dir" not in text
    assert "[default:" not in text and "╭" not in text  # typer's own page
    assert "Usage:\n  pgshift" in text
    assert "  --help" in text and "-h," not in text  # -h is pg_dump's host flag, never help
    for param in _options(command):
        for name in option_names(param):
            if param.is_flag:
                assert f"{name}=" not in text, f"the flag {name} shows a value"
            elif name.startswith("--"):
                # A value option shows a word chosen for it: N, DIR, NAME … never a default.
                assert param.metavar, f"{name} has no metavar"
                assert re.fullmatch(r"[A-Z][A-Z_=|]*|[a-z]+(\|[a-z]+)+", param.metavar), param.metavar
                assert f"{name}={param.metavar}" in text


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=_ids(COMMANDS))
def test_required_arguments_are_shown_required(
    path: tuple[str, ...], command: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    text = _help(path, capsys)
    usage = text.split("Usage:\n", 1)[1].splitlines()[0].strip()
    for param in _arguments(command):
        assert param.metavar, f"argument {param.name} has no metavar"
        if param.required:
            assert re.search(rf"(?<![\[\w]){param.metavar}(?![\]\w])", usage), usage


@pytest.mark.parametrize(
    ("args", "usage"),
    [
        (("check",), "pgshift check [OPTION]... SOURCE [TARGET]"),
        (("migrate",), "pgshift migrate [OPTION]... SOURCE TARGET"),
        (("migrate",), "pgshift migrate [OPTION]... --resume WORKDIR [SOURCE TARGET]"),
        (("verify",), "pgshift verify [OPTION]... SOURCE TARGET"),
        (("toolchain", "select"), "pgshift toolchain select [OPTION]... SOURCE TARGET"),
    ],
)
def test_usage_lines_name_what_each_command_needs(
    args: tuple[str, ...], usage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert f"\n  {usage}\n" in _help(args, capsys)


def test_one_description_of_a_connection_string_everywhere() -> None:
    servers = [p for _path, cmd in COMMANDS for p in _arguments(cmd) if "server," in (p.help or "")]
    assert len(servers) >= 6  # check, migrate, verify: SOURCE and TARGET
    for param in servers:
        assert CONNINFO_HELP in param.help
    assert "postgresql://" in CONNINFO_HELP and "key=value" in CONNINFO_HELP and "service=NAME" in CONNINFO_HELP


def test_one_spelling_per_option_across_commands() -> None:
    spellings: dict[str, set[str]] = {}
    for _path, cmd in TREE:
        for param in _options(cmd):
            for name in option_names(param):
                if name.startswith("--"):
                    spellings.setdefault(name.replace("-", ""), set()).add(name)
    assert {k: v for k, v in spellings.items() if len(v) > 1} == {}
    assert "--workdir" in spellings["workdir"]


def test_json_says_same_as_format_only_where_there_is_a_format() -> None:
    for path, cmd in COMMANDS:
        names = {n for p in _options(cmd) for n in p.opts}
        for param in _options(cmd):
            if "--json" in param.opts and "--format" not in names:
                assert "--format" not in (param.help or ""), f"pgshift {' '.join(path)} --json"


def test_the_work_dir_spelling_still_works() -> None:
    done = pgshift("check", "--work-dir", "/tmp", "--no-such-thing")
    assert done.returncode == 64
    assert "has no option --no-such-thing" in done.stderr  # --work-dir itself was accepted


# --- usage errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "error", "hint"),
    [
        (("migrate", "a", "b", "--jobs", "abc"), "error: --jobs expects a whole number, not 'abc'", "--jobs 4"),
        (("verify", "a", "b", "-j", "0"), "error: --jobs must be at least 1, not 0", "1 or more"),
        (("verify", "a", "b", "--chunk-rows", "0"), "error: --chunk-rows must be at least 1, not 0", "1 or more"),
        (
            ("check", "a", "--format", "xml"),
            "error: --format must be console, json, markdown or html, not 'xml'",
            "--format console",
        ),
        (("migrate", "a", "b", "--format", "html"), "error: --format must be console, json or markdown", "--format"),
        (("migrate", "a", "b", "--jbos", "2"), "error: pgshift migrate has no option --jbos", "did you mean --jobs"),
        (("verify", "a"), "error: missing TARGET", "usage: pgshift verify [OPTION]... SOURCE TARGET"),
        (("verify",), "error: missing SOURCE", "usage: pgshift verify"),
        (("check",), "error: missing SOURCE", "pgshift check [OPTION]... SOURCE [TARGET]"),
        (("migrate", "a", "b", "--jobs"), "error: --jobs needs a value", "--jobs N"),
        (("migrate", "a", "b", "--yes=1"), "error: --yes takes no value", "--yes alone"),
        (("check", "host=db1", "port=5432", "dbname=x"), "error: pgshift check takes no argument 'dbname=x'", "quote"),
        (("nosuch",), "error: pgshift has no command 'nosuch'", "check, migrate, verify"),
        (("toolchain", "selct", "11", "17"), "error: pgshift toolchain has no command 'selct'", "did you mean select"),
        (("check", "-h"), "error: pgshift check has no option -h", "--help"),
        (("toolchain", "install", "seventeen"), "error: 'seventeen' is not a PostgreSQL major version", "17"),
    ],
)
def test_usage_errors_exit_64_in_pgshift_words(args: tuple[str, ...], error: str, hint: str, run: Any) -> None:
    done = run(*args)
    assert done.returncode == 64, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr  # one line naming what is wrong, one naming the fix
    assert lines[0].startswith(error), done.stderr
    assert lines[1].startswith("hint: ") and hint in lines[1], done.stderr
    assert done.stdout == ""
    for typer_words in ("Input should be", "Traceback", "Usage:", "Try '", "Invalid value", "╭"):
        assert typer_words not in done.stderr


NUMBER_OPTIONS = [
    (path, name)
    for path, cmd in COMMANDS
    for p in _options(cmd)
    if p.metavar == "N"
    for name in option_names(p)
    if name.startswith("--")
]


@pytest.mark.parametrize(("path", "option"), NUMBER_OPTIONS, ids=[f"{' '.join(p)} {o}" for p, o in NUMBER_OPTIONS])
def test_every_number_option_refuses_a_word_in_pgshift_words(path: tuple[str, ...], option: str, run: Any) -> None:
    done = run(*path, option, "abc")
    assert done.returncode == 64, done.stderr
    assert done.stderr.startswith("error: ") and "\nhint: " in done.stderr
    assert "Input should be" not in done.stderr and "Traceback" not in done.stderr


def test_no_command_prints_the_help_and_exits_64() -> None:
    for args in ((), ("toolchain",)):
        done = pgshift(*args)
        assert done.returncode == 64
        assert "Usage:\n  pgshift" in done.stdout and "Commands:" in done.stdout


# --- connection strings ------------------------------------------------------------------------

BAD_CONNINFO = {
    "uri-syntax": "postgresql://[::1/postgres",
    "uri-port": "postgresql://127.0.0.1:abc/postgres",
    "uri-sslmode": "postgresql://127.0.0.1/postgres?sslmode=bogus",
    "kv-syntax": "host=127.0.0.1 port",
    "kv-port": "host=127.0.0.1 port=abc",
    "kv-hosts-ports": "host=127.0.0.1,127.0.0.2 port=5432,5433,5434",
}


@pytest.mark.parametrize("command", ["check", "migrate", "verify"])
@pytest.mark.parametrize("conninfo", list(BAD_CONNINFO.values()), ids=list(BAD_CONNINFO))
def test_a_connection_string_libpq_refuses_is_a_usage_error(command: str, conninfo: str, run: Any) -> None:
    done = run(command, conninfo, UNREACHABLE)
    assert done.returncode == 64, done.stderr
    assert done.stderr.startswith("error: the source connection string ")
    assert "cannot connect" not in done.stderr and "connection is bad" not in done.stderr
    assert "postgresql://" in done.stderr and "key=value" in done.stderr  # the hint names the forms


@pytest.mark.parametrize("command", ["check", "migrate", "verify"])
def test_a_target_that_does_not_parse_is_a_usage_error_before_any_connection(command: str, run: Any) -> None:
    done = run(command, UNREACHABLE, "host=127.0.0.1 port")
    assert done.returncode == 64, done.stderr
    assert done.stderr.startswith("error: the target connection string cannot be parsed")


# --- versions as users write them, hints pgshift then follows ------------------------------------


def test_a_pre_10_major_is_shown_as_written(run: Any) -> None:
    done = run("demo", "--source-version", "9.6")
    assert done.returncode == 64
    assert "--source-version 9.6 " in done.stderr and "906" not in done.stderr


def test_a_bad_major_is_not_answered_with_an_unsupported_example(run: Any) -> None:
    done = run("check", "host=x", "--target-version", "seventeen")
    assert done.returncode == 64
    assert "9.6" not in done.stderr and "such as 17" in done.stderr


def test_select_refuses_a_downgrade_unless_allowed_like_migrate() -> None:
    refused = pgshift("toolchain", "select", "17", "9.6")
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.startswith("error: the target (9.6) is an older major than the source (17)")
    assert "--allow-downgrade" in refused.stderr


def test_an_allowed_downgrade_is_warned_and_hints_only_what_works() -> None:
    done = pgshift("toolchain", "select", "17", "12", "--allow-downgrade")
    assert done.returncode == 0, done.stderr
    assert "warning: the target (12) is an older major than the source (17)" in done.stdout
    # PyPI has no 12: pgshift toolchain install 12 would be refused.
    assert "toolchain install 12" not in done.stdout
    assert "12.0" not in done.stdout  # a major is shown as the major the user typed
