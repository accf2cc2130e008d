"""Row-level facts of one database: exact counts, sequence values, large objects, content digests.

Every statement here is safe to run on a production server: read-only, one table at a time,
``FROM ONLY`` so that an inheritance or partition parent does not count its children's rows.

Content digests are computed on the server. A row's digest is the md5 of its text, built from
each column's output with the differences between majors taken out:

* float4/float8 (and arrays and ranges of them) are digested from their binary send form,
  because the text form changed in 12 (shortest exact output) and depends on
  ``extra_float_digits``;
* floats nested in composite or geometric values are printed with ``extra_float_digits=0``:
  every major prints that as ``%.15g`` (12+ keeps the old output for values <= 0), so both
  sides agree to 15 significant digits;
* the session fixes every other setting that changes the text of a value: ``TimeZone=UTC``,
  ``DateStyle=ISO, YMD``, ``IntervalStyle=postgres``, ``bytea_output=hex`` and
  ``lc_monetary=C``;
* the text is converted to UTF8 before hashing, so a LATIN1 source and a UTF8 target agree.

A range's digest is the count of its rows plus two sums of 64-bit slices of the row digests.
Sums do not depend on the order of the rows, so no sort is needed, and collation differences
between the servers cannot change the result.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, LiteralString

import psycopg
from psycopg import sql

from pgshift.catalog.session import Connection, fetch_all, fetch_one

# Text output settings that are the same on every major once set (see the module docstring).
CHECKSUM_SETTINGS: tuple[tuple[LiteralString, LiteralString], ...] = (
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, YMD"),
    ("IntervalStyle", "postgres"),
    ("bytea_output", "hex"),
    ("extra_float_digits", "0"),
    ("lc_monetary", "C"),
)

# Primary key types whose order does not depend on a collation and whose text form round-trips:
# tables keyed by these are digested in key ranges. The casts are fixed strings.
RANGE_KEY_CASTS: dict[str, LiteralString] = {
    "smallint": "int2",
    "integer": "int4",
    "bigint": "int8",
    "numeric": "numeric",
    "date": "date",
    "timestamp without time zone": "timestamp",
    "timestamp with time zone": "timestamptz",
    "uuid": "uuid",
    "oid": "oid",
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # format_type of the column's base type (domains resolved)
    element: str | None  # the element type of an array column
    range_subtype: str | None = None  # the subtype of a range column


@dataclass(frozen=True)
class TableRef:
    """A table whose rows are counted (and digested)."""

    schema: str
    name: str
    relkind: str  # "r" table or partition, "m" materialized view
    populated: bool
    pages: int  # size in 8 kB pages (pg_relation_size), to start with the largest tables
    columns: tuple[Column, ...]
    key: tuple[Column, ...]  # primary key columns, in key order; empty without one

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def rangeable(self) -> bool:
        return bool(self.key) and all(c.type in RANGE_KEY_CASTS for c in self.key)


_USER_NSP: LiteralString = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_'"
)


def list_tables(conn: Connection) -> list[TableRef]:
    """Tables, partitions and materialized views that hold rows (largest first)."""
    query: LiteralString = (
        """
        SELECT n.nspname, c.relname, c.relkind::text AS relkind, c.relispopulated,
               pg_relation_size(c.oid) / 8192 AS pages,
               ARRAY(SELECT a.attname || E'\\x1f'
                            || format_type(CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END, NULL)
                            || E'\\x1f'
                            || COALESCE(CASE WHEN bt.typlen = -1 THEN format_type(NULLIF(bt.typelem, 0), NULL) END, '')
                            || E'\\x1f' || COALESCE((SELECT format_type(r.rngsubtype, NULL) FROM pg_range r
                                                     WHERE r.rngtypid = bt.oid), '')
                     FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                     JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                     ORDER BY a.attnum) AS columns,
               ARRAY(SELECT a.attname FROM pg_constraint k, unnest(k.conkey) WITH ORDINALITY AS u(attnum, ord)
                     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = u.attnum
                     WHERE k.conrelid = c.oid AND k.contype = 'p' ORDER BY u.ord) AS key
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'm') AND """
        + _USER_NSP
        + """
          AND NOT EXISTS (SELECT 1 FROM pg_depend dep WHERE dep.classid = 'pg_class'::regclass
                          AND dep.objid = c.oid AND dep.deptype = 'e')
        ORDER BY pages DESC, n.nspname, c.relname
        """
    )
    out = []
    for r in fetch_all(conn, query):
        columns = []
        for item in r["columns"]:
            name, typ, element, subtype = item.split("\x1f")
            columns.append(Column(name, typ, element or None, subtype or None))
        by_name = {c.name: c for c in columns}
        out.append(
            TableRef(
                schema=r["nspname"],
                name=r["relname"],
                relkind=r["relkind"],
                populated=bool(r["relispopulated"]),
                pages=int(r["pages"] or 0),
                columns=tuple(columns),
                key=tuple(by_name[k] for k in r["key"]),
            )
        )
    return out


def _execute(
    conn: Connection, query: sql.SQL | sql.Composed, params: Sequence[Any] | None = None
) -> list[dict[str, Any]]:
    with conn.cursor() as cur:
        cur.execute(query, params)
        return list(cur.fetchall())


def _table(table: TableRef) -> sql.Composable:
    return sql.SQL("ONLY {}.{}").format(sql.Identifier(table.schema), sql.Identifier(table.name))


def count_rows(conn: Connection, table: TableRef) -> int:
    rows = _execute(conn, sql.SQL("SELECT count(*) AS n FROM {}").format(_table(table)))
    return int(rows[0]["n"])


def count_rows_many(conn: Connection, tables: Sequence[TableRef]) -> list[int]:
    """Exact counts of several (small) tables in one round trip, in the order given."""
    if len(tables) == 1:
        return [count_rows(conn, tables[0])]
    parts = [
        sql.SQL("SELECT {i} AS i, count(*) AS n FROM {t}").format(i=sql.Literal(i), t=_table(t))
        for i, t in enumerate(tables)
    ]
    rows = _execute(conn, sql.SQL(" UNION ALL ").join(parts))
    by_index = {int(r["i"]): int(r["n"]) for r in rows}
    return [by_index[i] for i in range(len(tables))]


def prepare_checksum_session(conn: Connection) -> None:
    """Fix every setting that changes the text output of a value."""
    for name, value in CHECKSUM_SETTINGS:
        fetch_all(conn, "SELECT set_config(%s, %s, false) AS v", (name, value))


def _column_text(column: Column) -> sql.Composable:
    ident = sql.Identifier(column.name)
    # float output changed in 12: digest the binary form instead of the text.
    if column.type == "real":
        return sql.SQL("encode(float4send({}), 'hex')").format(ident)
    if column.type == "double precision":
        return sql.SQL("encode(float8send({}), 'hex')").format(ident)
    if column.element == "real":
        return sql.SQL("(SELECT array_agg(encode(float4send(u), 'hex')) FROM unnest({}) u)::text").format(ident)
    if column.element == "double precision":
        return sql.SQL("(SELECT array_agg(encode(float8send(u), 'hex')) FROM unnest({}) u)::text").format(ident)
    if column.range_subtype in ("real", "double precision"):
        send = "float4send" if column.range_subtype == "real" else "float8send"
        return sql.SQL(
            "CASE WHEN isempty({c}) THEN 'empty' ELSE concat_ws(',', lower_inc({c}), upper_inc({c}),"
            " encode({send}(lower({c})), 'hex'), encode({send}(upper({c})), 'hex')) END"
        ).format(c=ident, send=sql.SQL(send))
    return sql.SQL("{}::text").format(ident)


def _row_digest_query(table: TableRef, where: sql.Composable) -> sql.Composed:
    texts = sql.SQL(", ").join(_column_text(c) for c in table.columns) if table.columns else sql.SQL("''")
    return sql.SQL(
        "SELECT count(*) AS n,"
        " COALESCE(sum(('x' || substr(h, 1, 16))::bit(64)::bigint::numeric), 0)::text AS s1,"
        " COALESCE(sum(('x' || substr(h, 17, 16))::bit(64)::bigint::numeric), 0)::text AS s2"
        " FROM (SELECT md5(convert_to(ROW({texts}, NULL::text)::text, 'UTF8')) AS h FROM {table} {where}) q"
    ).format(texts=texts, table=_table(table), where=where)


def _key_row(table: TableRef) -> sql.Composable:
    return sql.SQL("({})").format(sql.SQL(", ").join(sql.Identifier(c.name) for c in table.key))


def _key_values(table: TableRef) -> sql.Composable:
    return sql.SQL("({})").format(sql.SQL(", ").join(sql.SQL("%s::" + RANGE_KEY_CASTS[c.type]) for c in table.key))


KeyValue = tuple[str, ...]


def _range_where(table: TableRef, lower: KeyValue | None, upper: KeyValue | None) -> tuple[sql.Composable, list[str]]:
    conds: list[sql.Composable] = []
    params: list[str] = []
    if lower is not None:
        conds.append(sql.SQL("{} >= {}").format(_key_row(table), _key_values(table)))
        params.extend(lower)
    if upper is not None:
        conds.append(sql.SQL("{} < {}").format(_key_row(table), _key_values(table)))
        params.extend(upper)
    where = sql.SQL("WHERE ") + sql.SQL(" AND ").join(conds) if conds else sql.SQL("")
    return where, params


def range_boundaries(
    conn: Connection,
    table: TableRef,
    chunk_rows: int,
    lower: KeyValue | None = None,
    upper: KeyValue | None = None,
) -> list[KeyValue]:
    """Keys that start each chunk of ``chunk_rows`` rows in [lower, upper), in key order."""
    texts = sql.SQL(", ").join(
        sql.SQL("{}::text AS {}").format(sql.Identifier(c.name), sql.Identifier(f"k{i}"))
        for i, c in enumerate(table.key)
    )
    keys = sql.SQL(", ").join(sql.Identifier(c.name) for c in table.key)
    where, params = _range_where(table, lower, upper)
    query = sql.SQL(
        "SELECT {texts} FROM (SELECT {keys}, row_number() OVER (ORDER BY {keys}) AS rn FROM {table} {where}) s"
        " WHERE mod(rn - 1, {chunk}) = 0 ORDER BY rn"
    ).format(texts=texts, keys=keys, table=_table(table), where=where, chunk=sql.Literal(chunk_rows))
    return [tuple(r[f"k{i}"] for i in range(len(table.key))) for r in _execute(conn, query, params)]


@dataclass(frozen=True)
class Digest:
    rows: int
    value: str  # a short hex digest of the range

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "digest": self.value}


def _digest(row: dict[str, Any]) -> Digest:
    text = f"{row['n']}:{row['s1']}:{row['s2']}"
    return Digest(int(row["n"]), hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()[:16])


def digest_range(conn: Connection, table: TableRef, lower: KeyValue | None, upper: KeyValue | None) -> Digest:
    """Digest of the rows whose key is in [lower, upper) (an open end when None)."""
    where, params = _range_where(table, lower, upper)
    return _digest(_execute(conn, _row_digest_query(table, where), params)[0])


def digest_table(conn: Connection, table: TableRef) -> Digest:
    return _digest(_execute(conn, _row_digest_query(table, sql.SQL("")))[0])


@dataclass(frozen=True)
class SequenceValue:
    schema: str
    name: str
    last_value: int
    is_called: bool

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


def sequence_values(conn: Connection) -> list[SequenceValue]:
    """last_value and is_called of every user sequence (read from the sequence itself)."""
    query: LiteralString = (
        """
        SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'S' AND """
        + _USER_NSP
        + """
          AND NOT EXISTS (SELECT 1 FROM pg_depend dep WHERE dep.classid = 'pg_class'::regclass
                          AND dep.objid = c.oid AND dep.deptype = 'e')
        ORDER BY 1, 2
        """
    )
    names = [(r["nspname"], r["relname"]) for r in fetch_all(conn, query)]
    out: list[SequenceValue] = []
    # One statement per 500 sequences keeps a database of thousands of serial columns fast.
    for start in range(0, len(names), 500):
        batch = names[start : start + 500]
        parts = [
            sql.SQL("SELECT {s} AS nspname, {n} AS relname, last_value, is_called FROM {schema}.{seq}").format(
                s=sql.Literal(schema), n=sql.Literal(name), schema=sql.Identifier(schema), seq=sql.Identifier(name)
            )
            for schema, name in batch
        ]
        for r in _execute(conn, sql.SQL(" UNION ALL ").join(parts)):
            out.append(SequenceValue(r["nspname"], r["relname"], int(r["last_value"]), bool(r["is_called"])))
    return out


@dataclass(frozen=True)
class LargeObjects:
    count: int
    total_bytes: int | None  # None when the role may not read them
    digest: str | None = None  # with checksums: over every object's oid and content
    owners_digest: str = ""  # over every object's oid and owner
    acl_digest: str = ""  # over every object's oid and ACL

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "total_bytes": self.total_bytes,
            "digest": self.digest,
            "owners_digest": self.owners_digest,
            "acl_digest": self.acl_digest,
        }


def large_objects(conn: Connection, *, with_digest: bool = False) -> LargeObjects:
    """Count and total size of the large objects (and a digest of their contents on request)."""
    row = fetch_one(
        conn,
        "SELECT count(*) AS n,"
        " COALESCE(md5(string_agg(oid::text || ' ' || pg_get_userbyid(lomowner), ',' ORDER BY oid)), '') AS owners,"
        " COALESCE(md5(string_agg(oid::text || ' ' || COALESCE(lomacl::text, '-'), ',' ORDER BY oid)), '') AS acl"
        " FROM pg_largeobject_metadata",
    )
    count = int(row["n"]) if row else 0
    owners = row["owners"] if row else ""
    acl = row["acl"] if row else ""
    if count == 0:
        return LargeObjects(0, 0, "" if with_digest else None)
    readable = fetch_one(conn, "SELECT has_table_privilege('pg_catalog.pg_largeobject', 'SELECT') AS ok")
    total: int | None
    if readable and readable["ok"]:
        size = fetch_one(conn, "SELECT COALESCE(sum(octet_length(data)), 0) AS b FROM pg_largeobject")
        total = int(size["b"]) if size else None
    else:
        try:
            # A savepoint when verify reads in a snapshot's transaction: the refusal must not end it.
            with conn.transaction():
                size = fetch_one(
                    conn, "SELECT COALESCE(sum(octet_length(lo_get(oid))), 0) AS b FROM pg_largeobject_metadata"
                )
            total = int(size["b"]) if size else None
        except psycopg.errors.InsufficientPrivilege:  # some object is not readable: size unknown
            total = None
    digest: str | None = None
    if with_digest:
        drow = fetch_one(
            conn,
            "SELECT md5(string_agg(oid::text || ':' || md5(lo_get(oid)), ',' ORDER BY oid)) AS d"
            " FROM pg_largeobject_metadata",
        )
        digest = drow["d"] if drow else None
    return LargeObjects(count, total, digest, owners, acl)
