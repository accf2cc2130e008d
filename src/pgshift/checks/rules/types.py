"""Rules about column types and stored values."""

from __future__ import annotations

from collections.abc import Iterator
from typing import LiteralString

from psycopg import sql

from pgshift.catalog.inventory_check import count_matching
from pgshift.catalog.session import fetch_all
from pgshift.checks import Severity
from pgshift.checks.rule import Context, Detector, Hit, Query, Rule, Scope

WITH_OIDS = Rule(
    id="with-oids",
    title="Tables WITH OIDS",
    severity=Severity.BLOCKER,
    changed_in="PostgreSQL 12",
    source_max=11,
    target_min=12,
    what_happens="pg_dump 12+ warns 'WITH OIDS is not supported anymore' and dumps the table without its oid "
    "column: the restore succeeds but every OID value is gone.",
    remediation="ALTER TABLE t ADD COLUMN legacy_oid oid; UPDATE t SET legacy_oid = oid; "
    "ALTER TABLE t SET WITHOUT OIDS; (on the source, before the move)",
    # pg_class.relhasoids exists up to 11 only (removed in 12).
    queries=(
        Query(
            """
            SELECT c.oid::regclass::text AS object, c.oid AS relid
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relhasoids AND c.relkind IN ('r', 'p', 'm')
              AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1
            """,
            until=11,
        ),
    ),
    message="table {object} has OIDs; a dump for 12+ drops them",
    fix="On the source: ALTER TABLE {object} ADD COLUMN legacy_oid oid; UPDATE {object} SET legacy_oid = oid; "
    "ALTER TABLE {object} SET WITHOUT OIDS;",
    verified="11->12, 11->18",
)

REMOVED_DATETIME_TYPES = Rule(
    id="removed-datetime-types",
    title="Columns of the removed types abstime, reltime, tinterval",
    severity=Severity.BLOCKER,
    changed_in="PostgreSQL 12",
    source_max=11,
    target_min=12,
    what_happens='ERROR: type "abstime" does not exist: the table and its data are not restored.',
    remediation="ALTER TABLE t ALTER c TYPE timestamptz (abstime) / interval (reltime) / tstzrange (tinterval) "
    "on the source.",
    queries=(
        Query(
            """
            SELECT c.oid::regclass::text || '.' || quote_ident(a.attname) AS object,
                   format_type(a.atttypid, a.atttypmod) AS type, c.oid AS relid
            FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE NOT a.attisdropped AND a.attnum > 0
              AND n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND (a.atttypid IN (SELECT oid FROM pg_type WHERE typnamespace = 'pg_catalog'::regnamespace
                                  AND typname IN ('abstime', 'reltime', 'tinterval',
                                                  '_abstime', '_reltime', '_tinterval'))
                   OR a.atttypid IN (SELECT oid FROM pg_type WHERE typtype = 'd' AND typbasetype IN
                        (SELECT oid FROM pg_type WHERE typnamespace = 'pg_catalog'::regnamespace
                         AND typname IN ('abstime', 'reltime', 'tinterval'))))
            ORDER BY 1
            """,
            until=11,
        ),
    ),
    message="column {object} is of type {type}, which PostgreSQL 12 removed",
    verified="11->18",
)


def _system_composites(ctx: Context) -> Iterator[Hit]:
    rows = fetch_all(
        ctx.conn,
        """
        SELECT c.oid::regclass::text || '.' || quote_ident(a.attname) AS object, c.oid AS relid,
               t.oid::regtype::text AS type,
               (SELECT string_agg(x.attname || ' ' || format_type(x.atttypid, x.atttypmod), ', ' ORDER BY x.attnum)
                FROM pg_attribute x WHERE x.attrelid = t.typrelid AND x.attnum > 0 AND NOT x.attisdropped) AS layout
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_type t ON t.oid = a.atttypid JOIN pg_namespace tn ON tn.oid = t.typnamespace
        WHERE c.oid >= 16384 AND c.relkind IN ('r', 'p', 'm') AND a.attnum > 0 AND NOT a.attisdropped
          AND t.typtype = 'c' AND (t.oid < 16384 OR tn.nspname = 'information_schema')
          AND c.relnamespace <> 'information_schema'::regnamespace
        ORDER BY 1
        """,
    )
    for r in rows:
        if ctx.target_conn is not None:
            tgt = fetch_all(
                ctx.target_conn,
                """
                SELECT (SELECT string_agg(x.attname || ' ' || format_type(x.atttypid, x.atttypmod), ', '
                                          ORDER BY x.attnum)
                        FROM pg_attribute x WHERE x.attrelid = t.typrelid AND x.attnum > 0 AND NOT x.attisdropped)
                       AS layout
                FROM pg_type t WHERE t.oid = to_regtype(%s)
                """,
                (r["type"],),
            )
            if tgt and tgt[0]["layout"] == r["layout"]:
                continue
            what = "has a different layout on the target" if tgt else "does not exist on the target"
            yield Hit(
                r["object"],
                f"column {r['object']} is of the system row type {r['type']}, which {what}",
                ctx.database,
                relation=r["relid"],
            )
        elif ctx.source_major != ctx.target_major:
            yield Hit(
                r["object"],
                f"column {r['object']} is of the system row type {r['type']}; its columns may differ in "
                f"{ctx.target_major} (not compared: no target server)",
                ctx.database,
                Severity.WARNING,
                relation=r["relid"],
            )


SYSTEM_COMPOSITE_COLUMN = Rule(
    id="system-composite-column",
    title="Columns typed as a system catalog or view row type",
    severity=Severity.BLOCKER,
    changed_in="any major that changes the catalog or view",
    what_happens="The values are dumped in the source layout; the target's type has other columns, so COPY fails "
    "(16->17: pg_stat_bgwriter lost columns).",
    remediation="Copy the needed fields into a user-defined composite type or jsonb before the move.",
    detect=_system_composites,
    verified="16->17",
)

_REG_TYPE_COLUMNS: LiteralString = """
SELECT c.oid::regclass::text || '.' || quote_ident(a.attname) AS object, a.atttypid::regtype::text AS type,
       c.oid AS relid
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
WHERE c.oid >= 16384 AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
  AND c.relnamespace <> 'information_schema'::regnamespace {generated}
  AND a.atttypid IN (SELECT oid FROM pg_type WHERE typnamespace = 'pg_catalog'::regnamespace AND
      typname IN ('regclass', 'regcollation', 'regconfig', 'regdictionary', 'regnamespace', 'regoper',
                  'regoperator', 'regproc', 'regprocedure', 'regrole', 'regtype'))
ORDER BY 1
"""

REG_TYPES = Rule(
    id="reg-types",
    title="Columns of reg* types (regclass, regproc, regtype …)",
    severity=Severity.WARNING,
    changed_in="pg_dump behaviour (all versions)",
    what_happens="reg* values are dumped as names and looked up again while the data loads: a regclass naming an "
    "index fails (indexes are created after the data), as do names missing on the target.",
    remediation="Store such references as text, or restore these tables' data after the post-data section.",
    # Only columns whose values COPY carries: a generated column (12+: attgenerated 's' stored, 18: 'v'
    # virtual) is computed again on the target, so it is not in the data at all; nor is a matview's
    # (refreshed after the indexes exist).
    queries=(
        Query(_REG_TYPE_COLUMNS.replace("{generated}", "AND a.attgenerated = ''"), since=12),
        Query(_REG_TYPE_COLUMNS.replace("{generated}", ""), until=11),
    ),
    message="column {object} is of type {type}: its values are re-resolved by name while the data loads",
    verified="17->18",
)

SQL_IDENTIFIER_COLUMNS = Rule(
    id="sql-identifier-columns",
    title="Columns of type information_schema.sql_identifier",
    severity=Severity.WARNING,
    changed_in="PostgreSQL 12",
    source_max=11,
    target_min=12,
    what_happens="sql_identifier became a domain over name in 12: values longer than 63 bytes are cut without "
    "an error when the dump loads.",
    remediation="ALTER TABLE t ALTER c TYPE text on the source.",
    queries=(
        Query(
            """
            SELECT a.attrelid::regclass::text || '.' || quote_ident(a.attname) AS object, a.attrelid AS relid
            FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
            WHERE a.atttypid = 'information_schema.sql_identifier'::regtype AND a.attrelid >= 16384
              AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'm')
              AND c.relnamespace <> 'information_schema'::regnamespace
            ORDER BY 1
            """
        ),
    ),
    message="column {object} is an information_schema.sql_identifier: values over 63 bytes are truncated on 12+",
    verified="11->18",
)


def _value_scan(type_name: str, predicate: LiteralString, what: str, fix: str) -> Detector:
    def detect(ctx: Context) -> Iterator[Hit]:
        cols = fetch_all(
            ctx.conn,
            """
            SELECT n.nspname, c.relname, a.attname, c.oid::regclass::text AS tbl, quote_ident(a.attname) AS col, c.oid,
                   c.oid::regclass::text || '.' || quote_ident(a.attname) AS object
            FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE a.atttypid = to_regtype(%s) AND c.relkind IN ('r', 'm') AND NOT a.attisdropped AND a.attnum > 0
              AND n.nspname NOT IN ('pg_catalog', 'information_schema')
            ORDER BY 4
            """,
            (type_name,),
        )
        for col in cols:
            if not ctx.moves(Hit(None, "", relation=col["oid"])):
                continue  # not moved: no need to read its values
            pred = sql.SQL(predicate).format(col=sql.Identifier(col["attname"]))
            if count_matching(ctx.conn, col["nspname"], col["relname"], pred):
                yield Hit(
                    col["object"],
                    f"column {col['object']} holds {what}",
                    ctx.database,
                    remediation=fix.format(tbl=col["tbl"], col=col["col"]),
                    relation=col["oid"],
                )

    return detect


CHAR_TYPE_NONASCII = Rule(
    id="char-type-nonascii",
    title='"char" values with the high bit set',
    severity=Severity.BLOCKER,
    changed_in="PostgreSQL 15",
    source_max=14,
    target_min=15,
    what_happens='"char" values of 128-255 change their text form in 15; the old server writes the raw byte, and in a '
    "UTF8 database COPY fails with 'invalid byte sequence'.",
    remediation="Fix the values on the source (UPDATE t SET c = 'x' WHERE ascii(c::text) > 127), or keep the bytes as "
    "numbers: ALTER TABLE t ALTER c TYPE smallint USING c::integer. Do not cast to text on <= 14: that stores the "
    "raw byte, which is itself invalid UTF-8.",
    detect=_value_scan(
        '"char"',
        "ascii({col}::text) > 127 OR octet_length({col}::text) > 1",
        'non-ASCII "char" values',
        "On the source: ALTER TABLE {tbl} ALTER {col} TYPE smallint USING {col}::integer;",
    ),
    scans_data=True,
    verified="14->18",
)

TSVECTOR_EMPTY_LEXEME = Rule(
    id="tsvector-empty-lexeme",
    title="tsvector values holding an empty lexeme",
    severity=Severity.BLOCKER,
    changed_in="PostgreSQL 15",
    source_max=14,
    target_min=15,
    what_happens="Empty lexemes (possible through array_to_tsvector before 15) cannot be loaded: "
    "COPY fails with 'syntax error in tsvector'.",
    remediation="UPDATE t SET v = ts_delete(v, '') WHERE '' = ANY (tsvector_to_array(v)); on the source.",
    detect=_value_scan(
        "tsvector",
        "{col} IS NOT NULL AND '' = ANY (tsvector_to_array({col}))",
        "tsvectors with an empty lexeme",
        "On the source: UPDATE {tbl} SET {col} = ts_delete({col}, '') WHERE '' = ANY (tsvector_to_array({col}));",
    ),
    scans_data=True,
    verified="14->18",
)


def _target_encoding(ctx: Context) -> str:
    if ctx.target is not None:
        return ctx.target.server.settings.get("server_encoding", "UTF8")
    return "UTF8"


def _sql_ascii(ctx: Context) -> Iterator[Hit]:
    checked = {d.name for d in ctx.source.checked}
    for db in ctx.source.databases:
        if db.name in checked and db.encoding == "SQL_ASCII" and _target_encoding(ctx) != "SQL_ASCII":
            yield Hit(
                db.name,
                f"database {db.name} is SQL_ASCII: its bytes are not checked, and loading them into a "
                f"{_target_encoding(ctx)} database can store invalid text without an error",
                database=db.name,
            )


ENCODING_SQL_ASCII = Rule(
    id="encoding-sql-ascii",
    title="SQL_ASCII databases",
    severity=Severity.WARNING,
    changed_in="pg_dump behaviour (all versions)",
    scope=Scope.CLUSTER,
    what_happens="A SQL_ASCII dump restored into UTF8 loads invalid bytes without error; later conversions fail.",
    remediation="Find and convert non-UTF-8 data before the dump (dump with -E LATIN1 if the bytes are Latin-1), "
    "or keep the target database in SQL_ASCII (pg_restore --create keeps the encoding).",
    detect=_sql_ascii,
    verified="14 (SQL_ASCII) -> 18 (UTF8)",
)


def _encoding_mismatch(ctx: Context) -> Iterator[Hit]:
    checked = {d.name for d in ctx.source.checked}
    tenc = _target_encoding(ctx)
    for db in ctx.source.databases:
        if db.name in checked and db.encoding not in ("SQL_ASCII", tenc):
            yield Hit(
                db.name,
                f"database {db.name} is {db.encoding}, the target's default is {tenc}: create it with ENCODING "
                f"{db.encoding} (pg_restore --create does) or every value must convert",
                database=db.name,
            )


ENCODING_MISMATCH = Rule(
    id="encoding-mismatch",
    title="Database encoding differs from the target's default",
    severity=Severity.WARNING,
    changed_in="pg_dump behaviour (all versions)",
    scope=Scope.CLUSTER,
    needs_target=True,
    what_happens="A LATIN1 (or other) database restored into a UTF8 database is converted on load, which fails "
    "on bytes without a mapping; the target's locales must support the encoding.",
    remediation="Restore with pg_restore --create (keeps ENCODING/LC_COLLATE) on a target whose locales support it, "
    "or clean and convert the data first.",
    detect=_encoding_mismatch,
    verified="partly (SQL_ASCII case)",
)

RULES = (
    WITH_OIDS,
    REMOVED_DATETIME_TYPES,
    SYSTEM_COMPOSITE_COLUMN,
    REG_TYPES,
    SQL_IDENTIFIER_COLUMNS,
    CHAR_TYPE_NONASCII,
    TSVECTOR_EMPTY_LEXEME,
    ENCODING_SQL_ASCII,
    ENCODING_MISMATCH,
)
