"""SQL that fills a database with generated tables (scenarios' ``generate`` setup, tests of scale)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

# md5() gives 32 hex characters; a row's text is that many repeated up to the width asked for.
_MD5_WIDTH = 32
# Tables made per transaction (each takes locks until its transaction ends).
_BATCH = 5


def create_generated_tables(
    conn: psycopg.Connection[Any],
    *,
    schema: str,
    prefix: str,
    tables: int,
    rows: int,
    row_bytes: int,
) -> None:
    """Tables ``schema.prefix1 …`` (``id bigint PRIMARY KEY, payload text``), each with ``rows`` rows.

    One transaction per batch of tables: a server whose lock table is small on purpose (a scenario
    of max_locks_per_transaction) must still be able to make more tables than it can lock at once.
    The payload differs per row (md5 of the id), so dumps cannot compress a table to nothing.
    """
    repeats = max(1, -(-row_bytes // _MD5_WIDTH))
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    for first in range(1, tables + 1, _BATCH):
        with conn.transaction():
            numbers = range(first, min(first + _BATCH, tables + 1))
            _create_batch(conn, schema, prefix, numbers, rows, row_bytes, repeats)


def _create_batch(
    conn: psycopg.Connection[Any], schema: str, prefix: str, numbers: range, rows: int, row_bytes: int, repeats: int
) -> None:
    for number in numbers:
        table = sql.Identifier(schema, f"{prefix}{number}")
        conn.execute(sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, payload text)").format(table))
        if rows:
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} SELECT g, substr(repeat(md5(g::text), {}), 1, {}) FROM generate_series(1, {}) AS g"
                ).format(table, sql.Literal(repeats), sql.Literal(row_bytes), sql.Literal(rows))
            )
