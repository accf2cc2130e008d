"""One answer per kind of error, on real servers: a --database the source does not have."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import ServerPool

MISSING = "pgshift_no_such_db"


def pgshift(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def pair(servers: ServerPool) -> tuple[Any, Any]:
    # Shared servers: nothing here changes them.
    return servers.get(16), servers.get(17)


def _assert_unknown_database(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 64, done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == f"error: the source has no database '{MISSING}'", done.stderr
    # The hint lists what exists and says how to fix it.
    assert lines[1].startswith("hint: name a database the source has with --database (") and "postgres" in lines[1]
    assert "Traceback" not in done.stderr


def test_check_of_a_database_the_source_lacks_is_a_usage_error(pair: tuple[Any, Any]) -> None:
    source, _target = pair
    _assert_unknown_database(pgshift("check", source.conninfo(), "--target-version", "18", "-d", MISSING))


def test_verify_of_a_database_the_source_lacks_is_a_usage_error(pair: tuple[Any, Any]) -> None:
    source, target = pair
    _assert_unknown_database(pgshift("verify", source.conninfo(), target.conninfo(), "-d", MISSING))


def test_migrate_of_a_database_the_source_lacks_is_a_usage_error(pair: tuple[Any, Any]) -> None:
    source, target = pair
    _assert_unknown_database(pgshift("migrate", source.conninfo(), target.conninfo(), "-d", MISSING, "--dry-run"))
