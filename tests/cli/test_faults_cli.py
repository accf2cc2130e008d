"""Faults seen from the command line: what a user gets when something breaks, with and without --debug.

docs/reliability.md lists these tests (tests/unit/test_reliability_doc.py keeps its table and this
file in step).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

# A command added to the real app for this run only: the one way to make the funnel meet an error
# that no room of pgshift raises on purpose (an internal error is a bug: none is known to test with).
# The psycopg error is a real one: a connection to a socket directory that does not exist.
_FAILING_COMMAND = """
import sys
import psycopg
from pgshift.cli import main as cli
from pgshift.errors import StepFailed

@cli.app.command("fail")
def fail(kind: str) -> None:
    if kind == "internal":
        raise RuntimeError("an [unexpected] state")
    if kind == "psycopg":
        psycopg.connect("host=/nonexistent/socket-dir dbname=postgres connect_timeout=2")
    raise StepFailed("pg_restore failed", hint="fix the cause")

cli.main(sys.argv[1:])
"""


def run_failing(kind: str, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _FAILING_COMMAND, "fail", kind, *extra],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("internal", "internal error: RuntimeError: an [unexpected] state"),
        ("psycopg", "error: pgshift could not finish: a query failed: connection is bad"),
        ("step", "error: pg_restore failed"),
    ],
)
def test_debug_prints_the_traceback_and_keeps_the_documented_exit_code(kind: str, message: str) -> None:
    plain = run_failing(kind)
    debugged = run_failing(kind, "--debug")
    assert plain.returncode == 5, plain.stderr
    assert "Traceback" not in plain.stderr
    assert message in " ".join(plain.stderr.split()), plain.stderr
    # --debug adds the traceback, and only that: the same message, the same code (it was Python's 1).
    assert debugged.returncode == 5, debugged.stderr
    assert "Traceback (most recent call last)" in debugged.stderr
    assert message in " ".join(debugged.stderr.split()), debugged.stderr
    # The message comes last, after the traceback, where a user reads first.
    assert debugged.stderr.rindex("Traceback") < debugged.stderr.rindex(message.split(":")[0])
