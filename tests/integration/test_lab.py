"""Lab servers of every major start, answer, dump with a selected client, and leave nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest

from pgshift.catalog.session import resolve, server_version
from pgshift.catalog.session import session as catalog_session
from pgshift.lab import lab_server
from pgshift.process import Command, run
from pgshift.toolchain.discover import discover
from pgshift.toolchain.select import select_client
from tests.conftest import ALL_MAJORS, ServerPool


@pytest.mark.parametrize("major", ALL_MAJORS)
def test_every_major_starts_and_is_dumped_by_the_selected_client(
    servers: ServerPool, major: int, tmp_path: Path
) -> None:
    server = servers.get(major)
    db = f"lab_dump_{major}"
    server.execute(f"DROP DATABASE IF EXISTS {db}")
    server.execute(f"CREATE DATABASE {db}")
    server.execute(
        "CREATE TABLE t (id int primary key, v text); INSERT INTO t SELECT g, 'x' FROM generate_series(1, 50) g",
        dbname=db,
    )
    endpoint = resolve(server.endpoint("source", db))
    with catalog_session(endpoint) as conn:
        version = server_version(conn)
    assert version.major == major
    choice = select_client(discover(), version, version)
    assert choice.major >= major
    out = tmp_path / "dump.sql"
    run(
        Command(
            (choice.program("pg_dump"), "--dbname", endpoint.child_conninfo(), "-f", str(out)), env=endpoint.child_env()
        )
    )
    text = out.read_text()
    assert "CREATE TABLE public.t" in text
    assert f"Dumped from database version {major}." in text


def test_server_with_password_and_tls_requires_both(fresh_server: object) -> None:
    server = fresh_server(17, tls=True, password="pw-for-test")  # type: ignore[operator]
    with psycopg.connect(server.conninfo()) as conn:
        row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    assert row == (True,)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(server.conninfo(password="wrong"))


def test_encoding_and_locale_are_applied(fresh_server: object) -> None:
    server = fresh_server(16, encoding="LATIN1")  # type: ignore[operator]
    with server.connect() as conn:
        row = conn.execute(
            "SELECT pg_encoding_to_char(encoding), datcollate FROM pg_database WHERE datname = 'postgres'"
        ).fetchone()
    assert row == ("LATIN1", "C")


def test_context_manager_stops_and_deletes_the_server() -> None:
    with lab_server(18) as server:
        root, pid = server.root, server.process.pid  # type: ignore[union-attr]
        assert root.is_dir()
    assert not root.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_killed_owner_leaves_no_server_running(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import os, sys
        from pgshift.lab import start
        s = start(15)
        print(s.process.pid, s.root, flush=True)
        os.kill(os.getpid(), 9)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    pid_text, root = proc.stdout.split()
    pid = int(pid_text)
    import time

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the postmaster outlived the process that started it")
    # The next start removes what the dead run left.
    with lab_server(15):
        pass
    assert not Path(root).exists()
