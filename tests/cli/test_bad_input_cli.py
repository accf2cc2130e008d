"""Bad input as a user gives it: one ``error:`` line naming what is wrong, a ``hint:`` naming the fix,
the documented exit code, no traceback, and nothing touched.

The servers named here do not exist (``host=/nonexistent``): a path refused with 64 was refused
before pgshift tried to connect (which would have ended with 3). docs/reliability.md lists these
cases (tests/unit/test_reliability_doc.py keeps its table and this file in step).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

NOWHERE = "host=/nonexistent/socket-dir dbname=postgres user=postgres connect_timeout=2"
NOWHERE_TOO = "host=/nonexistent/other-dir dbname=postgres user=postgres connect_timeout=2"


def pgshift(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, timeout=120)


def one_line(text: str) -> str:
    return " ".join(text.split())


def assert_refused(done: subprocess.CompletedProcess[str], code: int, *needles: str, hint: bool = True) -> None:
    err = one_line(done.stderr)
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    assert err.startswith("error: "), err
    assert err.count("error:") == 1 and ("hint:" in err or not hint), err
    for needle in needles:
        assert needle in err, err


@contextlib.contextmanager
def read_only_dir(where: Path) -> Iterator[Path]:
    """A read-only file system at ``where`` holding one file, ``existing`` (root only)."""
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        (where / "existing").write_text("old\n")
        subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


# --- migrate --workdir ------------------------------------------------------------------------------


def test_migrate_workdir_that_is_a_file_is_a_usage_error(tmp_path: Path) -> None:
    file = tmp_path / "notes.txt"
    file.write_text("mine\n")
    done = pgshift("migrate", NOWHERE, NOWHERE_TOO, "--workdir", str(file))
    assert_refused(done, 64, f"--workdir {file} is a file, not a directory")
    assert file.read_text() == "mine\n"


def test_migrate_workdir_under_a_file_is_a_usage_error(tmp_path: Path) -> None:
    file = tmp_path / "notes.txt"
    file.write_text("mine\n")
    done = pgshift("migrate", NOWHERE, NOWHERE_TOO, "--workdir", str(file / "run"))
    assert_refused(done, 64, f"--workdir {file / 'run'} cannot be created: {file} is a file")


def test_migrate_workdir_on_proc_is_a_usage_error() -> None:
    done = pgshift("migrate", NOWHERE, NOWHERE_TOO, "--workdir", "/proc/pgshift-run")
    assert_refused(done, 64, "--workdir /proc/pgshift-run cannot be written: creating a file in /proc failed")
    assert not Path("/proc/pgshift-run").exists()


def test_migrate_workdir_on_a_read_only_file_system_is_a_usage_error(tmp_path: Path) -> None:
    with read_only_dir(tmp_path / "ro") as ro:
        done = pgshift("migrate", NOWHERE, NOWHERE_TOO, "--workdir", str(ro / "run"))
        assert_refused(done, 64, f"--workdir {ro / 'run'} cannot be written", "Read-only file system")


def test_migrate_workdir_with_missing_parents_is_accepted_and_created_only_once_the_run_starts(
    tmp_path: Path,
) -> None:
    workdir = tmp_path / "a" / "b" / "run"
    done = pgshift("migrate", NOWHERE, NOWHERE_TOO, "--workdir", str(workdir))
    # The path was fine: the server is not.
    assert_refused(done, 3, "cannot connect to the source")
    assert not (tmp_path / "a").exists()  # nothing made before the preflight passed


# --- servers that are not there ----------------------------------------------------------------------


@pytest.mark.parametrize("command", ["check", "verify", "migrate"])
def test_a_socket_directory_that_does_not_exist_is_named_with_the_fix(command: str) -> None:
    done = pgshift(command, NOWHERE, NOWHERE_TOO)
    assert_refused(
        done,
        3,
        "cannot connect to the source",
        'on socket "/nonexistent/socket-dir/.s.PGSQL.5432" failed: No such file or directory',
        "hint: the socket directory /nonexistent/socket-dir does not exist: give host= the server's "
        "unix_socket_directories",
    )


def test_a_socket_directory_without_a_server_names_the_port(tmp_path: Path) -> None:
    empty = f"host={tmp_path} port=5999 dbname=postgres user=postgres"
    done = pgshift("verify", empty, NOWHERE)
    assert_refused(done, 3, "cannot connect to the source", f"hint: no server listens on port 5999 in {tmp_path}")


def test_a_host_name_that_does_not_resolve_says_so() -> None:
    done = pgshift("verify", "host=no-such-host.invalid dbname=postgres connect_timeout=2", NOWHERE)
    assert_refused(done, 3, "cannot connect to the source", "no-such-host.invalid", "hint: check the host name")


# --- -o/--output --------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["check", "verify"])
def test_output_that_is_a_directory_is_a_usage_error(tmp_path: Path, command: str) -> None:
    done = pgshift(command, NOWHERE, NOWHERE_TOO, "-o", str(tmp_path))
    assert_refused(done, 64, f"--output {tmp_path} is a directory")


@pytest.mark.parametrize("command", ["check", "verify"])
def test_output_in_a_missing_directory_is_a_usage_error(tmp_path: Path, command: str) -> None:
    out = tmp_path / "nope" / "report.json"
    done = pgshift(command, NOWHERE, NOWHERE_TOO, "--output", str(out))
    assert_refused(done, 64, f"--output {out}: the directory {out.parent} does not exist")


def test_output_on_a_read_only_file_system_is_a_usage_error_and_the_file_is_left_alone(tmp_path: Path) -> None:
    with read_only_dir(tmp_path / "ro") as ro:
        for out in (ro / "existing", ro / "new.json"):
            done = pgshift("verify", NOWHERE, NOWHERE_TOO, "-o", str(out))
            assert_refused(done, 64, f"--output {out} cannot be written", "Read-only file system")
        assert (ro / "existing").read_text() == "old\n"


def test_list_rules_output_is_checked_too(tmp_path: Path) -> None:
    done = pgshift("check", "--list-rules", "-o", str(tmp_path))
    assert_refused(done, 64, f"--output {tmp_path} is a directory")


# --- check --work-dir ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["--workdir", "--work-dir"])
def test_check_work_dir_that_is_a_file_is_a_usage_error(tmp_path: Path, spelling: str) -> None:
    file = tmp_path / "notes.txt"
    file.write_text("mine\n")
    done = pgshift("check", NOWHERE, spelling, str(file))
    assert_refused(done, 64, f"--workdir {file} is a file, not a directory")


# --- one server given twice -----------------------------------------------------------------------------


def test_verify_of_one_server_with_itself_is_refused_under_any_spelling(servers: Any) -> None:
    server = servers.get(17)
    other_spelling = f"host={server.socket_dir} port={server.port} user=postgres dbname=postgres"
    done = pgshift("verify", server.uri(), other_spelling)
    assert_refused(done, 64, "SOURCE and TARGET are the same server", "compared with itself")


def test_verify_of_two_databases_of_one_server_is_still_a_comparison(servers: Any) -> None:
    server = servers.get(17)
    for name in ("bi_self_a", "bi_self_b"):
        server.execute(f"DROP DATABASE IF EXISTS {name}")
        server.execute(f"CREATE DATABASE {name}")
    server.execute("CREATE TABLE t AS SELECT 1 AS x", "bi_self_a")
    done = pgshift("verify", server.conninfo(), server.conninfo(), "-d", "bi_self_a", "--rename", "bi_self_a=bi_self_b")
    assert done.returncode == 1, done.stderr  # a real difference found: table t is missing
    assert "same server" not in done.stderr


# --- --jobs beyond the servers' connections ---------------------------------------------------------------


def test_verify_jobs_beyond_the_free_connections_is_refused_before_counting(servers: Any) -> None:
    source, target = servers.get(16), servers.get(17)
    with source.connect() as conn:
        max_connections = int(conn.execute("SHOW max_connections").fetchone()[0])
    jobs = max_connections + 5
    done = pgshift("verify", source.conninfo(), target.conninfo(), "-d", "postgres", "--jobs", str(jobs))
    assert_refused(
        done,
        64,
        "the source server has ",
        f"free connection(s) (max_connections {max_connections}, ",
        f"but --jobs {jobs} needs {jobs}",
        "hint: lower --jobs (e.g. --jobs ",
    )
    suggested = int(one_line(done.stderr).split("(e.g. --jobs ")[1].split(")")[0])
    assert 1 <= suggested < max_connections
    # A role without superuser cannot use the reserved slots: its figure leaves them out.
    source.execute("DROP ROLE IF EXISTS bi_jobs_plain; CREATE ROLE bi_jobs_plain LOGIN")
    try:
        plain = pgshift(
            "verify", source.conninfo(user="bi_jobs_plain"), target.conninfo(), "-d", "postgres", "--no-globals",
            "--jobs", str(max_connections),
        )  # fmt: skip
    finally:
        source.execute("DROP ROLE IF EXISTS bi_jobs_plain")
    assert_refused(plain, 64, "the source server has ", " reserved) but --jobs")
    assert int(one_line(plain.stderr).split("(e.g. --jobs ")[1].split(")")[0]) < suggested
