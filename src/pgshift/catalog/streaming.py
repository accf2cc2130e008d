"""SQL of stream mode's copy (migrate/streaming.py): the snapshot, what to copy, the COPY statements,
sequences, large objects and the progress records the copy keeps in the target database.

Version notes: generated columns (``attgenerated``) exist from 12; TID range scans (``ctid >= … AND
ctid < …`` read only those blocks) from 14 — before, a range of blocks would read the table whole,
so older sources split a table by ranges of its integer primary key instead (read through its index).

Binary COPY (``BINARY_TYPES``): a table moves in binary format only when every column it carries has,
on both servers, the same type from that list (or an array of one, or a domain over one), and the
target's major is the source's or newer. Those types' send/receive formats are the same in 10–18,
and their values carry no OID of the server they came from; an array names its element type's OID,
which for a built-in type is the same everywhere (an array of an enum or a domain is not in the
list for that reason: its OID is the database's own). Everything else (reg* types, which send an
OID; composites, which send their columns' OIDs; extension types; ranges) goes as text, as do moves
to an older major, whose receive functions may accept values its text input would refuse (14's
numeric infinity, 17's infinite intervals).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from pgshift.catalog.session import Connection, fetch_all, fetch_one, server_version

# The copy's own records in the target database: dropped when the database is finished.
PROGRESS_SCHEMA = "pgshift_stream"


# Built-in types (pg_catalog) whose binary form is the same in 10–18 and holds no server's OID. Not
# money: its binary form is a count of the smallest unit of lc_monetary's currency, which a target of
# another lc_monetary would read as another amount, where its text form would be refused.
BINARY_TYPES = (
    "bool", "bytea", "char", "name", "int2", "int4", "int8", "oid", "float4", "float8", "numeric",
    "text", "varchar", "bpchar", "date", "time", "timetz", "timestamp", "timestamptz", "interval", "uuid",
    "inet", "cidr", "macaddr", "macaddr8", "json", "jsonb", "bit", "varbit",
)  # fmt: skip


@dataclass(frozen=True)
class CopyTable:
    oid: int
    schema: str
    name: str
    columns: tuple[str, ...]  # the columns COPY carries: not dropped, not generated
    size_bytes: int
    blocks: int
    # Each carried column's type (format_type), where every one has a binary form (BINARY_TYPES);
    # None: some column has none. ``binary`` says whether the copy uses it (the target agreed).
    binary_types: tuple[str, ...] | None = None
    binary: bool = False
    key: str | None = None  # its primary key's column when that is one int2, int4 or int8 column

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.name}"


def tables_to_copy(conn: Connection, oids: frozenset[int]) -> list[CopyTable]:
    """The tables among ``oids`` that hold rows of their own (not partitioned parents, views …)."""
    if not oids:
        return []
    generated = "a.attgenerated = ''" if server_version(conn).major >= 12 else "true"  # 12: generated columns
    rows = fetch_all(
        conn,
        _BINARY_TYPE_OIDS
        + """
        SELECT c.oid::int8 AS oid, n.nspname AS schema, c.relname AS name,
               pg_catalog.pg_relation_size(c.oid) AS size,
               pg_catalog.pg_relation_size(c.oid) / pg_catalog.current_setting('block_size')::int8 AS blocks,
               ARRAY(SELECT a.attname FROM pg_catalog.pg_attribute a
                      WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND """
        + generated
        + """
                      ORDER BY a.attnum)::text[] AS columns,
               ARRAY(SELECT CASE WHEN a.atttypid IN (SELECT oid FROM binary_types)
                                 THEN pg_catalog.format_type(a.atttypid, a.atttypmod) END
                       FROM pg_catalog.pg_attribute a
                      WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND """
        + generated
        + """
                      ORDER BY a.attnum)::text[] AS types,
               (SELECT a.attname FROM pg_catalog.pg_constraint k
                  JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
                 WHERE k.conrelid = c.oid AND k.contype = 'p' AND pg_catalog.array_length(k.conkey, 1) = 1
                   AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)) AS key
          FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE c.oid = ANY(%s::oid[]) AND c.relkind = 'r'
        """,
        [list(BINARY_TYPES), sorted(oids)],
    )
    return [
        CopyTable(
            int(r["oid"]),
            r["schema"],
            r["name"],
            tuple(r["columns"]),
            int(r["size"]),
            int(r["blocks"]),
            binary_types=None if None in r["types"] else tuple(r["types"]),
            key=r["key"],
        )
        for r in rows
    ]


# The OIDs of BINARY_TYPES, of their arrays and of domains over either (one level), in this server.
_BINARY_TYPE_OIDS = """
    WITH scalar AS (
        SELECT t.oid FROM pg_catalog.pg_type t
         WHERE t.typnamespace = 'pg_catalog'::regnamespace AND t.typname = ANY(%s::text[]) AND t.typtype = 'b'
    ), plain AS (
        SELECT oid FROM scalar
        UNION ALL
        SELECT t.oid FROM pg_catalog.pg_type t JOIN scalar s ON t.typelem = s.oid
         WHERE t.typcategory = 'A' AND t.typlen = -1 AND t.typnamespace = 'pg_catalog'::regnamespace
    ), binary_types AS (
        SELECT oid FROM plain
        UNION ALL
        SELECT t.oid FROM pg_catalog.pg_type t JOIN plain p ON t.typbasetype = p.oid WHERE t.typtype = 'd'
    )
"""


def target_column_types(conn: Connection, tables: list[CopyTable]) -> dict[tuple[str, str], dict[str, str]]:
    """The type (format_type) of each column of these tables, by (schema, name), in this database."""
    if not tables:
        return {}
    rows = fetch_all(
        conn,
        """
        SELECT n.nspname AS schema, c.relname AS name, a.attname AS column,
               pg_catalog.format_type(a.atttypid, a.atttypmod) AS type
          FROM unnest(%s::text[], %s::text[]) AS x(schema, name)
          JOIN pg_catalog.pg_namespace n ON n.nspname = x.schema
          JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = x.name
          JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        """,
        [[t.schema for t in tables], [t.name for t in tables]],
    )
    out: dict[tuple[str, str], dict[str, str]] = {}
    for r in rows:
        out.setdefault((r["schema"], r["name"]), {})[r["column"]] = r["type"]
    return out


def partition_leaves(conn: Connection, oids: frozenset[int]) -> dict[int, list[int]]:
    """Each partitioned table among ``oids`` with the partitions under it, at any depth.

    Such a table has no rows of its own; what is created on it (a trigger, an index) reaches its
    partitions, so it counts as loaded only once every partition is.
    """
    if not oids:
        return {}
    rows = fetch_all(
        conn,
        """
        WITH RECURSIVE tree(root, rel) AS (
            SELECT c.oid, c.oid FROM pg_catalog.pg_class c WHERE c.oid = ANY(%s::oid[]) AND c.relkind = 'p'
            UNION ALL
            SELECT t.root, i.inhrelid FROM tree t JOIN pg_catalog.pg_inherits i ON i.inhparent = t.rel
        )
        SELECT root::int8 AS root, array_agg(rel::int8) AS rels FROM tree WHERE rel <> root GROUP BY root
        """,
        [sorted(oids)],
    )
    return {int(r["root"]): [int(x) for x in r["rels"]] for r in rows}


def splits_by_block(conn: Connection) -> bool:
    return server_version(conn).major >= 14  # 14: TID range scans


def _columns(table: CopyTable) -> sql.Composable:
    if not table.columns:
        return sql.SQL("")
    return sql.SQL(" ({})").format(sql.SQL(", ").join(sql.Identifier(c) for c in table.columns))


# A range of keys is read through the key's index only when the rows lie in about the key's order;
# otherwise the planner would read the whole table for each range.
KEY_CORRELATION = 0.9


def key_bounds(conn: Connection, table: CopyTable) -> tuple[int, int] | None:
    """The lowest and highest value of the table's integer key (``CopyTable.key``), by its index; None
    when the statistics do not show the rows stored in about the key's order (or there are none)."""
    assert table.key is not None
    row = fetch_one(
        conn,
        "SELECT correlation FROM pg_catalog.pg_stats WHERE schemaname = %s AND tablename = %s AND attname = %s"
        " AND NOT inherited",
        [table.schema, table.name, table.key],
    )
    if row is None or row["correlation"] is None or abs(float(row["correlation"])) < KEY_CORRELATION:
        return None
    key, ident = sql.Identifier(table.key), sql.Identifier(table.schema, table.name)
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT min({k}) AS lo, max({k}) AS hi FROM ONLY {t}").format(k=key, t=ident))
        bounds = cur.fetchone()
    if bounds is None or bounds["lo"] is None:
        return None
    return int(bounds["lo"]), int(bounds["hi"])


def copy_out(table: CopyTable, lo: int | None, hi: int | None, *, key: str | None = None) -> sql.Composed:
    """COPY … TO STDOUT of the table's own rows (never its children's), or of a range [lo, hi) of
    its blocks or, with ``key``, of that column's values (None: no bound on that side)."""
    ident = sql.Identifier(table.schema, table.name)
    fmt = sql.SQL(" (FORMAT binary)") if table.binary else sql.SQL("")
    if lo is None and hi is None:
        return sql.SQL("COPY {}{} TO STDOUT{}").format(ident, _columns(table), fmt)
    if key is not None:
        where = [sql.SQL("{} >= {}").format(sql.Identifier(key), sql.Literal(lo))] if lo is not None else []
        if hi is not None:
            where.append(sql.SQL("{} < {}").format(sql.Identifier(key), sql.Literal(hi)))
    else:
        where = [sql.SQL("ctid >= {}::tid").format(sql.Literal(f"({lo or 0},0)"))]
        if hi is not None:
            where.append(sql.SQL("ctid < {}::tid").format(sql.Literal(f"({hi},0)")))
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in table.columns) if table.columns else sql.SQL("")
    return sql.SQL("COPY (SELECT {} FROM ONLY {} WHERE {}) TO STDOUT{}").format(
        cols, ident, sql.SQL(" AND ").join(where), fmt
    )


def copy_in(table: CopyTable, *, freeze: bool) -> sql.Composed:
    options = (["FORMAT binary"] if table.binary else []) + (["FREEZE"] if freeze else [])
    return sql.SQL("COPY {}{} FROM STDIN{}").format(
        sql.Identifier(table.schema, table.name),
        _columns(table),
        sql.SQL(" ({})".format(", ".join(options))) if options else sql.SQL(""),
    )


def analyze(table: CopyTable) -> sql.Composed:
    return sql.SQL("ANALYZE {}").format(sql.Identifier(table.schema, table.name))


def analyze_tables(tables: list[CopyTable], done_ids: list[str], snapshot: str) -> sql.Composed:
    """One round trip: ANALYZE of each table (a transaction may hold ANALYZE, unlike VACUUM), committed
    with its progress records."""
    parts = [sql.SQL("BEGIN"), *(analyze(t) for t in tables), mark_done(done_ids, snapshot), sql.SQL("COMMIT")]
    return sql.SQL(";").join(parts)


def truncate_only(table: CopyTable) -> sql.Composed:
    return sql.SQL("TRUNCATE ONLY {}").format(sql.Identifier(table.schema, table.name))


# --- progress records (target) ----------------------------------------------------------------------


def create_progress(conn: Connection) -> None:
    conn.execute(
        sql.SQL(
            "CREATE SCHEMA IF NOT EXISTS {s};"
            "CREATE TABLE IF NOT EXISTS {s}.unit (id text PRIMARY KEY, spec jsonb NOT NULL);"
            "CREATE TABLE IF NOT EXISTS {s}.done (id text PRIMARY KEY, snapshot text, at timestamptz DEFAULT now())"
        ).format(s=sql.Identifier(PROGRESS_SCHEMA))
    )


def has_progress(conn: Connection) -> bool:
    row = fetch_one(conn, "SELECT pg_catalog.to_regclass(%s) IS NOT NULL AS yes", [f"{PROGRESS_SCHEMA}.unit"])
    return bool(row and row["yes"])


def recorded_units(conn: Connection) -> list[dict[str, Any]]:
    query = sql.SQL("SELECT id, spec FROM {}.unit ORDER BY id").format(sql.Identifier(PROGRESS_SCHEMA))
    with conn.cursor() as cur:
        cur.execute(query)
        return [{"id": r["id"], **r["spec"]} for r in cur.fetchall()]


def record_units(conn: Connection, units: list[tuple[str, str]]) -> None:
    """(id, spec as JSON) of every unit, before the first is copied: a resume uses the same ones."""
    query = sql.SQL("INSERT INTO {}.unit (id, spec) SELECT * FROM unnest(%s::text[], %s::jsonb[])").format(
        sql.Identifier(PROGRESS_SCHEMA)
    )
    with conn.cursor() as cur:
        cur.execute(query, [[u[0] for u in units], [u[1] for u in units]])


def done_ids(conn: Connection) -> set[str]:
    query = sql.SQL("SELECT id FROM {}.done").format(sql.Identifier(PROGRESS_SCHEMA))
    with conn.cursor() as cur:
        cur.execute(query)
        return {r["id"] for r in cur.fetchall()}


def mark_done(ids: list[str], snapshot: str) -> sql.Composed:
    """Sent in the transaction of the work it records: both commit, or neither."""
    return sql.SQL(
        "INSERT INTO {}.done (id, snapshot) SELECT unnest({}::text[]), {} ON CONFLICT (id) DO NOTHING"
    ).format(sql.Identifier(PROGRESS_SCHEMA), sql.Literal(ids), sql.Literal(snapshot))


def end_other_sessions(conn: Connection) -> None:
    """End every other session on this database, and wait until they are gone (at most a minute)."""
    conn.execute(
        "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity"
        " WHERE datname = pg_catalog.current_database() AND pid <> pg_catalog.pg_backend_pid()"
    )
    for _ in range(600):
        row = fetch_one(
            conn,
            "SELECT count(*) AS n FROM pg_catalog.pg_stat_activity"
            " WHERE datname = pg_catalog.current_database() AND pid <> pg_catalog.pg_backend_pid()",
        )
        if not row or not row["n"]:
            return
        time.sleep(0.1)


def drop_progress() -> sql.Composed:
    return sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(PROGRESS_SCHEMA))


# --- sequences and large objects -----------------------------------------------------------------


def sequence_values(conn: Connection, oids: frozenset[int]) -> list[tuple[str, str, int, bool]]:
    """(schema, name, last_value, is_called) of each sequence, read in the session's snapshot."""
    if not oids:
        return []
    rows = fetch_all(
        conn,
        """
        SELECT n.nspname AS schema, c.relname AS name
          FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE c.oid = ANY(%s::oid[]) AND c.relkind = 'S' ORDER BY 1, 2
        """,
        [sorted(oids)],
    )
    out = []
    for r in rows:
        query = sql.SQL("SELECT last_value, is_called FROM {}").format(sql.Identifier(r["schema"], r["name"]))
        with conn.cursor() as cur:
            cur.execute(query)
            got = cur.fetchone()
        assert got is not None
        out.append((r["schema"], r["name"], int(got["last_value"]), bool(got["is_called"])))
    return out


def set_sequences(values: list[tuple[str, str, int, bool]]) -> sql.Composed:
    parts = [
        sql.SQL("SELECT pg_catalog.setval({}, {}, {})").format(
            sql.Literal(sql.Identifier(schema, name).as_string(None)), sql.Literal(value), sql.Literal(called)
        )
        for schema, name, value, called in values
    ]
    return sql.SQL(";").join(parts)


def populated_matviews(conn: Connection, oids: list[int]) -> list[tuple[str, str]]:
    """(schema, name) of the materialized views among ``oids`` that hold data, in ``oids``' order.

    A schema-only archive carries no ``MATERIALIZED VIEW DATA``: the copy refreshes them itself.
    """
    if not oids:
        return []
    rows = fetch_all(
        conn,
        """
        SELECT c.oid::int8 AS oid, n.nspname AS schema, c.relname AS name
          FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE c.oid = ANY(%s::oid[]) AND c.relkind = 'm' AND c.relispopulated
        """,
        [oids],
    )
    found = {int(r["oid"]): (r["schema"], r["name"]) for r in rows}
    return [found[o] for o in oids if o in found]


def refresh_matview(schema: str, name: str) -> sql.Composed:
    return sql.SQL("REFRESH MATERIALIZED VIEW {}").format(sql.Identifier(schema, name))


@dataclass(frozen=True)
class LargeObject:
    oid: int
    owner: str
    grants: tuple[tuple[str, str], ...]  # (grantee or "" for PUBLIC, privilege)
    comment: str | None


def large_objects(conn: Connection) -> list[LargeObject]:
    rows = fetch_all(
        conn,
        """
        SELECT m.oid::int8 AS oid, pg_catalog.pg_get_userbyid(m.lomowner) AS owner,
               pg_catalog.obj_description(m.oid, 'pg_largeobject') AS comment,
               ARRAY(SELECT ARRAY[CASE WHEN a.grantee = 0 THEN '' ELSE pg_catalog.pg_get_userbyid(a.grantee) END,
                                  a.privilege_type]
                       FROM pg_catalog.aclexplode(m.lomacl) a WHERE a.grantee <> m.lomowner)::text[] AS grants
          FROM pg_catalog.pg_largeobject_metadata m ORDER BY m.oid
        """,
    )
    return [
        LargeObject(int(r["oid"]), r["owner"], tuple((g[0], g[1]) for g in r["grants"] or ()), r["comment"])
        for r in rows
    ]


LO_CHUNK = 1 << 20


def read_large_objects(conn: Connection, oids: list[int], offset: int) -> dict[int, bytes]:
    """Up to LO_CHUNK bytes of each large object from ``offset`` (a shorter piece is its end)."""
    rows = fetch_all(
        conn,
        "SELECT o::int8 AS oid, pg_catalog.lo_get(o, %s, %s) AS data FROM unnest(%s::oid[]) AS o",
        [offset, LO_CHUNK, oids],
    )
    return {int(r["oid"]): bytes(r["data"]) for r in rows}


def create_large_objects(conn: Connection, pieces: dict[int, bytes]) -> None:
    conn.execute(
        "SELECT pg_catalog.lo_from_bytea(o, d) FROM unnest(%s::oid[], %s::bytea[]) AS x(o, d)",
        [list(pieces), list(pieces.values())],
    )


def append_large_object(conn: Connection, oid: int, offset: int, data: bytes) -> None:
    conn.execute("SELECT pg_catalog.lo_put(%s, %s, %s)", [oid, offset, data])


def large_object_properties(lo: LargeObject, *, owner: bool, privileges: bool) -> list[sql.Composed]:
    out = []
    if owner:
        out.append(sql.SQL("ALTER LARGE OBJECT {} OWNER TO {}").format(sql.Literal(lo.oid), sql.Identifier(lo.owner)))
    if privileges:
        for grantee, privilege in lo.grants:
            out.append(
                sql.SQL("GRANT {} ON LARGE OBJECT {} TO {}").format(
                    sql.SQL(privilege), sql.Literal(lo.oid), sql.Identifier(grantee) if grantee else sql.SQL("PUBLIC")
                )
            )
    if lo.comment is not None:
        out.append(sql.SQL("COMMENT ON LARGE OBJECT {} IS {}").format(sql.Literal(lo.oid), sql.Literal(lo.comment)))
    return out
