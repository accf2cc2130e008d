"""SQL of a rehearsal's sample (``pgshift rehearse --sample-rows N``) and of its measurements.

The tables to fill are read on the target, after the schema was restored there: every table that
holds rows of its own (partitions, not their partitioned parents), minus those an extension made
(its script fills them itself). The source is read with ``COPY (SELECT … LIMIT n)`` of the same
columns; the target's columns decide which (a generated column is not copied: the target computes
it, or, under the generated-as-plain remedy, it is a plain column there and is copied).

Version notes: generated columns (``attgenerated``) exist from 12; ``reltuples`` is -1 for a table
never vacuumed or analyzed from 14 (0 before), so an unknown count is "not above zero".
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from pgshift.catalog.session import Connection, fetch_all, fetch_one, server_version


@dataclass(frozen=True)
class SampleTable:
    schema: str
    name: str
    columns: tuple[str, ...]  # the columns COPY carries on the target: not dropped, not generated

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class TableSize:
    estimated_rows: float  # reltuples: 0 or less when the table was never analyzed
    table_bytes: int  # the heap and its TOAST table
    total_bytes: int  # with its indexes


def tables_to_sample(conn: Connection) -> list[SampleTable]:
    """The target database's tables that hold rows of their own, not made by an extension."""
    generated = "a.attgenerated = ''" if server_version(conn).major >= 12 else "true"  # 12: generated columns
    rows = fetch_all(
        conn,
        """
        SELECT n.nspname AS schema, c.relname AS name,
               ARRAY(SELECT a.attname FROM pg_catalog.pg_attribute a
                      WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND """
        + generated
        + """
                      ORDER BY a.attnum)::text[] AS columns
          FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'r' AND c.relpersistence <> 't'
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                            WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
                              AND d.deptype = 'e')
         ORDER BY n.nspname, c.relname
        """,
    )
    return [SampleTable(r["schema"], r["name"], tuple(r["columns"])) for r in rows]


def _column_list(table: SampleTable) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(c) for c in table.columns)


def copy_sample_out(table: SampleTable, limit: int) -> sql.Composed:
    """COPY … TO STDOUT of at most ``limit`` of the table's own rows (never its children's)."""
    return sql.SQL("COPY (SELECT {} FROM ONLY {} LIMIT {}) TO STDOUT").format(
        _column_list(table) if table.columns else sql.SQL("*"),
        sql.Identifier(table.schema, table.name),
        sql.Literal(limit),
    )


def copy_sample_in(table: SampleTable) -> sql.Composed:
    if not table.columns:
        return sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(table.schema, table.name))
    return sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table.schema, table.name), _column_list(table))


def without_triggers(conn: Connection) -> None:
    """Triggers off for this session, the foreign keys' among them: a sample of a child table names
    parents the sample of the parent may lack (superuser only; a lab server's role is one)."""
    conn.execute("SET session_replication_role = replica")


def same_client_encoding(source: Connection, target: Connection) -> None:
    """Both sessions speak the source database's encoding, so COPY's bytes pass unchanged."""
    row = fetch_one(source, "SELECT pg_catalog.current_setting('server_encoding') AS enc")
    assert row is not None
    for conn in (source, target):
        conn.execute(sql.SQL("SET client_encoding = {}").format(sql.Literal(str(row["enc"]))))


def table_size(conn: Connection, table: SampleTable) -> TableSize | None:
    """The table's size and estimated row count; None when it is not there."""
    row = fetch_one(
        conn,
        """
        SELECT c.reltuples::float8 AS rows, pg_catalog.pg_table_size(c.oid) AS table_bytes,
               pg_catalog.pg_total_relation_size(c.oid) AS total_bytes
          FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = %s AND c.relname = %s
        """,
        [table.schema, table.name],
    )
    if row is None:
        return None
    return TableSize(float(row["rows"]), int(row["table_bytes"]), int(row["total_bytes"]))


def database_sizes(conn: Connection, names: list[str]) -> dict[str, int]:
    """pg_database_size of each database among ``names`` (what it takes on disk now)."""
    rows = fetch_all(
        conn,
        "SELECT datname AS name, pg_catalog.pg_database_size(oid) AS size "
        "FROM pg_catalog.pg_database WHERE datname = ANY(%s)",
        [names],
    )
    return {str(r["name"]): int(r["size"]) for r in rows}
