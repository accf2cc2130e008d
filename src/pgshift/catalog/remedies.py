"""What migrate's remedies read from the source (and the target) to carry blocked objects.

Each query names objects by their catalog address (class OID, object OID): the dump's table of
contents carries the same pair for every object it creates, so a remedy finds its archive items
exactly, whatever their names look like.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from pgshift.catalog.session import Connection, fetch_all, fetch_one, server_version


@dataclass(frozen=True)
class GeneratedChildColumn:
    """A generated column of an inheritance child (or partition) whose parent column is plain."""

    relid: int
    schema: str
    table: str
    column: str
    expression: str  # pg_get_expr of the generation expression, as the source prints it
    label: str  # schema.table.column, quoted where needed (quote_ident)


def generated_child_columns(conn: Connection) -> list[GeneratedChildColumn]:
    # Generated columns exist from 12; 16 refuses a generated child column under a plain parent one.
    if server_version(conn).major < 12:
        return []
    rows = fetch_all(
        conn,
        """
        SELECT c.oid AS relid, n.nspname AS schema, c.relname AS table, a.attname AS column,
               pg_get_expr(d.adbin, d.adrelid) AS expression,
               quote_ident(n.nspname) || '.' || quote_ident(c.relname) || '.' || quote_ident(a.attname) AS label
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attgenerated = 's' AND a.attnum > 0 AND NOT a.attisdropped
          AND EXISTS (
              SELECT 1 FROM pg_inherits i
              JOIN pg_attribute p ON p.attrelid = i.inhparent AND p.attname = a.attname AND NOT p.attisdropped
              WHERE i.inhrelid = a.attrelid AND p.attgenerated = '')
        ORDER BY 2, 3, 4
        """,
    )
    return [GeneratedChildColumn(**r) for r in rows]


@dataclass(frozen=True)
class ReservedNameRule:
    """A rule named ``_RETURN`` that is not a view's own ON SELECT rule."""

    oid: int
    schema: str
    table: str
    event: str  # insert, update, delete, select
    definition: str  # pg_get_ruledef: the CREATE RULE statement pg_dump would print
    siblings: tuple[str, ...]  # the other rule names of the table
    label: str  # schema.table, quoted where needed


def reserved_name_rules(conn: Connection) -> list[ReservedNameRule]:
    rows = fetch_all(
        conn,
        """
        SELECT r.oid, n.nspname AS schema, c.relname AS table,
               CASE r.ev_type WHEN '1' THEN 'select' WHEN '2' THEN 'update' WHEN '3' THEN 'insert'
                              ELSE 'delete' END AS event,
               pg_get_ruledef(r.oid) AS definition,
               ARRAY(SELECT o.rulename::text FROM pg_rewrite o WHERE o.ev_class = r.ev_class AND o.oid <> r.oid)
                   AS siblings,
               quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS label
        FROM pg_rewrite r
        JOIN pg_class c ON c.oid = r.ev_class
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE r.rulename = '_RETURN' AND NOT (r.ev_type = '1' AND c.relkind IN ('v', 'm'))
        ORDER BY 2, 3
        """,
    )
    return [ReservedNameRule(**{**r, "siblings": tuple(r["siblings"])}) for r in rows]


@dataclass(frozen=True)
class RoutineSettings:
    """A function or procedure with SET clauses (``proconfig``: ``name=value`` items)."""

    oid: int
    signature: str  # schema.name(argument types), quoted where needed
    settings: tuple[str, ...]
    kind: str  # function or procedure


def routine_settings(conn: Connection) -> list[RoutineSettings]:
    rows = fetch_all(
        conn,
        """
        SELECT p.oid, quote_ident(n.nspname) || '.' || quote_ident(p.proname)
                      || '(' || oidvectortypes(p.proargtypes) || ')' AS signature,
               p.proconfig AS settings,
               CASE WHEN p.prorettype = 0 THEN 'procedure' ELSE 'function' END AS kind
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE p.proconfig IS NOT NULL AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        ORDER BY 2
        """,
    )
    return [RoutineSettings(r["oid"], r["signature"], tuple(r["settings"]), r["kind"]) for r in rows]


def known_settings(conn: Connection) -> frozenset[str]:
    """The parameters a server knows (lower case); custom ``prefix.name`` ones are always accepted."""
    return frozenset(r["name"] for r in fetch_all(conn, "SELECT lower(name) AS name FROM pg_settings"))


@dataclass(frozen=True)
class ExtensionUse:
    name: str
    oid: int
    schema: str
    outside_uses: int  # objects outside the extension that depend on it or on one of its members


def extension_uses(conn: Connection) -> list[ExtensionUse]:
    rows = fetch_all(
        conn,
        """
        SELECT e.extname AS name, e.oid, n.nspname AS schema,
               (SELECT count(*) FROM pg_depend d
                WHERE d.deptype IN ('n', 'a')
                  AND ((d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid)
                       OR EXISTS (SELECT 1 FROM pg_depend m
                                  WHERE m.classid = d.refclassid AND m.objid = d.refobjid AND m.deptype = 'e'
                                    AND m.refclassid = 'pg_extension'::regclass AND m.refobjid = e.oid))
                  AND NOT EXISTS (SELECT 1 FROM pg_depend x
                                  WHERE x.classid = d.classid AND x.objid = d.objid AND x.deptype = 'e'
                                    AND x.refclassid = 'pg_extension'::regclass AND x.refobjid = e.oid)
                  AND NOT (d.classid = 'pg_extension'::regclass AND d.objid = e.oid)
               ) AS outside_uses
        FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        ORDER BY 1
        """,
    )
    return [ExtensionUse(**r) for r in rows]


def available_extensions(conn: Connection) -> frozenset[str]:
    return frozenset(r["name"] for r in fetch_all(conn, "SELECT name FROM pg_available_extensions"))


@dataclass(frozen=True)
class CatalogObject:
    classid: int
    objid: int
    description: str  # pg_describe_object: "table public.child", "view public.v"
    part: bool = False  # an internal or automatic part of another object of the set (its index, row type …)


def resolve_object(conn: Connection, kind: str, names: list[str], args: list[str]) -> CatalogObject | None:
    """The object ``kind`` (an object type of pg_get_object_address: table, view, function …) named
    ``names`` (schema, name) with ``args`` (argument types of a routine); None when there is none."""
    try:
        with conn.transaction():
            row = fetch_one(
                conn,
                "SELECT classid::int, objid::int, pg_describe_object(classid, objid, 0) AS description "
                "FROM pg_get_object_address(%s, %s::text[], %s::text[])",
                (kind, names, args),
            )
    except psycopg.Error:  # the server's own "does not exist", an unknown type or kind
        return None
    return CatalogObject(**row) if row else None


def dependents(conn: Connection, root: CatalogObject) -> list[CatalogObject]:
    """Every object that cannot exist without ``root`` (what DROP … CASCADE would remove), root first.

    A dependent that is an internal part of another object (a view's rewrite rule, an identity
    sequence …) brings that object with it: the view goes, not only its rule.
    """
    rows = fetch_all(
        conn,
        """
            WITH RECURSIVE dep(classid, objid, depth) AS (
                SELECT %(classid)s::oid, %(objid)s::oid, 0
                UNION
                SELECT n.classid, n.objid, dep.depth + 1
                FROM dep, LATERAL (
                    SELECT d.classid, d.objid FROM pg_depend d
                    WHERE d.refclassid = dep.classid AND d.refobjid = dep.objid AND d.deptype IN ('n', 'a', 'i')
                    UNION ALL
                    SELECT d.refclassid, d.refobjid FROM pg_depend d
                    WHERE dep.depth > 0 AND d.classid = dep.classid AND d.objid = dep.objid AND d.deptype = 'i'
                ) n
                WHERE dep.depth < 40
            )
            SELECT classid::int, objid::int, pg_describe_object(classid, objid, 0) AS description, min(depth) AS depth
            FROM dep
            WHERE pg_describe_object(classid, objid, 0) IS NOT NULL
            GROUP BY classid, objid
            ORDER BY min(depth), 3
        """,
        {"classid": root.classid, "objid": root.objid},
    )
    found = [CatalogObject(r["classid"], r["objid"], r["description"]) for r in rows]
    parts = fetch_all(
        conn,
        """
        WITH s(classid, objid) AS (SELECT * FROM unnest(%(classids)s::oid[], %(objids)s::oid[]))
        SELECT DISTINCT d.classid::int, d.objid::int FROM pg_depend d
        JOIN s own ON own.classid = d.classid AND own.objid = d.objid
        JOIN s whole ON whole.classid = d.refclassid AND whole.objid = d.refobjid
        WHERE d.deptype IN ('i', 'a') AND NOT (d.classid = d.refclassid AND d.objid = d.refobjid)
        """,
        {"classids": [o.classid for o in found], "objids": [o.objid for o in found]},
    )
    part_of = {(r["classid"], r["objid"]) for r in parts}
    return [
        CatalogObject(o.classid, o.objid, o.description, (o.classid, o.objid) in part_of) if i else o
        for i, o in enumerate(found)
    ]
