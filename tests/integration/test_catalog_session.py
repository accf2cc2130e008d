"""How a failed catalog query is explained: the hint a user acts on, from the server's own error."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from pgshift.catalog.session import failure_hint, query_failed, session


def test_a_full_lock_table_is_explained_by_max_locks_per_transaction(fresh_server: Any) -> None:
    # One transaction locking more tables than the lock table holds (10 slots a connection, and the
    # spare shared memory it grows into), as pg_dump and the counts in its snapshot do: 53200.
    server = fresh_server(16, settings={"max_locks_per_transaction": "10", "max_connections": "20"})
    server.execute("CREATE DATABASE cs_locks")
    with server.connect("cs_locks") as conn:
        conn.autocommit = True
        for i in range(2000):  # one transaction each: creating them at once would fill the lock table too
            conn.execute(f"CREATE TABLE t{i} (id int)".encode())
    with (
        session(server.endpoint(), "cs_locks") as conn,
        pytest.raises(psycopg.errors.OutOfMemory) as caught,
        conn.transaction(),
    ):
        for i in range(2000):
            conn.execute(f"LOCK TABLE public.t{i} IN ACCESS SHARE MODE".encode())
    assert "out of shared memory" in str(caught.value)
    hint = failure_hint(caught.value)
    assert hint.startswith("raise max_locks_per_transaction on that server (restart needed)"), hint
    failed = query_failed("counting the rows", caught.value)
    assert failed.hint == hint and failed.exit_code == 5
    assert failed.message.startswith("counting the rows: a query failed: ")


def test_a_lock_timeout_is_not_taken_for_a_full_lock_table(servers: Any) -> None:
    # The near miss: another session's lock is waited for, not a lack of lock slots.
    server = servers.get(16)
    server.execute("DROP DATABASE IF EXISTS cs_wait")
    server.execute("CREATE DATABASE cs_wait")
    with server.connect("cs_wait") as holder:
        holder.autocommit = True
        holder.execute("CREATE TABLE t (id int)")
        holder.autocommit = False
        holder.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        with session(server.endpoint(), "cs_wait") as conn, pytest.raises(psycopg.errors.LockNotAvailable) as caught:
            conn.execute("SET lock_timeout = '100ms'")
            conn.execute("SELECT count(*) FROM public.t")
        holder.rollback()
    assert "max_locks_per_transaction" not in failure_hint(caught.value)
