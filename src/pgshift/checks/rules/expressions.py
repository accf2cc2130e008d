"""Rules about functions, operators and stored expressions."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, LiteralString

from pgshift.catalog.session import fetch_all
from pgshift.checks import Severity
from pgshift.checks.rule import Context, Hit, Query, Rule

# Built-in functions, operators and types used by stored user expressions (views/rules, defaults and
# generated columns, CHECK constraints, index expressions, policies, trigger WHEN clauses,
# SQL-standard bodies) and by user columns. pg_depend has no rows for pinned built-ins, so the
# expression trees are scanned. prosqlbody exists from 14 (to_jsonb keeps the query version-free).
_CATALOG_REFS: LiteralString = """
WITH exprs AS (
  SELECT 'view/rule ' || ev_class::regclass::text AS obj, ev_class AS relid, NULL::text AS nsp, ev_action::text AS t
            FROM pg_rewrite WHERE oid >= 16384
  UNION ALL SELECT 'default ' || adrelid::regclass::text || '.' || (SELECT quote_ident(attname) FROM pg_attribute
                   WHERE attrelid = adrelid AND attnum = adnum), adrelid, NULL, adbin::text
            FROM pg_attrdef WHERE adrelid >= 16384
  UNION ALL SELECT 'constraint ' || c.conname || COALESCE(' on ' || NULLIF(c.conrelid, 0)::regclass::text, ''),
                   NULLIF(c.conrelid, 0), CASE WHEN c.conrelid = 0 THEN n.nspname END, c.conbin::text
            FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
            WHERE c.conbin IS NOT NULL AND c.oid >= 16384
  UNION ALL SELECT 'index ' || indexrelid::regclass::text, indrelid, NULL,
                   coalesce(indexprs::text, '') || coalesce(indpred::text, '')
            FROM pg_index WHERE indexrelid >= 16384 AND (indexprs IS NOT NULL OR indpred IS NOT NULL)
  UNION ALL SELECT 'policy ' || polname || ' on ' || polrelid::regclass::text, polrelid, NULL,
                   coalesce(polqual::text, '') || coalesce(polwithcheck::text, '') FROM pg_policy
  UNION ALL SELECT 'trigger ' || tgname || ' on ' || tgrelid::regclass::text, tgrelid, NULL, tgqual::text
            FROM pg_trigger WHERE tgqual IS NOT NULL
  UNION ALL SELECT 'function ' || p.oid::regprocedure::text, NULL, n.nspname, to_jsonb(p) ->> 'prosqlbody'
            FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE p.oid >= 16384 AND to_jsonb(p) ->> 'prosqlbody' IS NOT NULL
), refs AS (
  SELECT obj, relid, nsp, 'operator' AS kind, m[1]::oid AS ref FROM exprs, regexp_matches(t, ':opno (\\d+)', 'g') m
  UNION ALL SELECT obj, relid, nsp, 'function', m[1]::oid
            FROM exprs, regexp_matches(t, ':(?:funcid|aggfnoid|winfnoid) (\\d+)', 'g') m
  UNION ALL SELECT obj, relid, nsp, 'type', m[1]::oid
            FROM exprs, regexp_matches(t, ':(?:consttype|vartype|resulttype|funcresulttype) (\\d+)', 'g') m
  UNION ALL SELECT 'column ' || a.attrelid::regclass::text || '.' || quote_ident(a.attname), a.attrelid, NULL, 'type',
                   a.atttypid
            FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
            WHERE c.oid >= 16384 AND c.relkind IN ('r', 'p', 'm', 'c', 'f') AND a.attnum > 0 AND NOT a.attisdropped
              AND c.relnamespace <> 'information_schema'::regnamespace
)
SELECT DISTINCT kind,
       CASE kind WHEN 'operator' THEN ref::regoperator::text
                 WHEN 'function' THEN ref::regprocedure::text
                 ELSE ref::regtype::text END AS signature,
       obj, relid, nsp
FROM refs WHERE ref < 16384 AND ref <> 0
ORDER BY 1, 2, 3
"""

# User objects that use operators of hstore/cube/intarray/seg named @ or ~ (removed in 14).
_EXTENSION_CONTAINMENT_REFS: LiteralString = """
WITH exprs AS (
  SELECT 'view/rule ' || ev_class::regclass::text AS obj, ev_class AS relid, ev_action::text AS t
            FROM pg_rewrite WHERE oid >= 16384
  UNION ALL SELECT 'index ' || indexrelid::regclass::text, indrelid,
                   coalesce(indexprs::text, '') || coalesce(indpred::text, '')
            FROM pg_index WHERE indexrelid >= 16384 AND (indexprs IS NOT NULL OR indpred IS NOT NULL)
  UNION ALL SELECT 'constraint ' || conname, NULLIF(conrelid, 0), conbin::text FROM pg_constraint
            WHERE conbin IS NOT NULL
  UNION ALL SELECT 'default ' || adrelid::regclass::text, adrelid, adbin::text FROM pg_attrdef
), refs AS (
  SELECT obj, relid, m[1]::oid AS ref FROM exprs, regexp_matches(t, ':opno (\\d+)', 'g') m
)
SELECT DISTINCT r.obj, r.relid, o.oid::regoperator::text AS signature, e.extname
FROM refs r JOIN pg_operator o ON o.oid = r.ref
JOIN pg_depend d ON d.classid = 'pg_operator'::regclass AND d.objid = o.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid
WHERE o.oprname IN ('@', '~') AND e.extname IN ('hstore', 'cube', 'intarray', 'seg')
ORDER BY 1, 2
"""

_GEOMETRIC = "(point|lseg|path|box|polygon|line|circle)"
# Built-ins removed in 14: factorial operators, numeric_fac(), geometric @ and ~.
_REMOVED_IN_14 = re.compile(
    rf"^(numeric_fac\(bigint\)|!\(bigint,NONE\)|!!\(NONE,bigint\)|[@~]\({_GEOMETRIC},{_GEOMETRIC}\))$"
)
_REMOVED_TYPES_12 = re.compile(r"^(abstime|reltime|tinterval)(\[\])?$")


@dataclass(frozen=True)
class _User:
    """A user object of a built-in, and where it lives (for the move's object filters)."""

    name: str
    relation: int | None
    schema: str | None


def catalog_refs(ctx: Context) -> list[dict[str, Any]]:
    """The scan, once per database (several rules read it): one row per built-in (kind, signature)
    with ``objects``, the user objects that use it."""
    if "catalog_refs" not in ctx.cache:
        grouped: dict[tuple[str, str], list[_User]] = {}
        for r in fetch_all(ctx.conn, _CATALOG_REFS):
            grouped.setdefault((r["kind"], r["signature"]), []).append(
                _User(r["obj"], int(r["relid"]) if r["relid"] is not None else None, r["nsp"])
            )
        ctx.cache["catalog_refs"] = [
            {"kind": kind, "signature": signature, "objects": users} for (kind, signature), users in grouped.items()
        ]
    rows: list[dict[str, Any]] = ctx.cache["catalog_refs"]
    return rows


def _handled_elsewhere(signature: str, ctx: Context) -> bool:
    if ctx.source_major <= 13 <= ctx.target_major - 1 and _REMOVED_IN_14.match(signature):
        return True
    return ctx.source_major <= 11 and ctx.target_major >= 12 and bool(_REMOVED_TYPES_12.match(signature))


def _name_and_arity(signature: str) -> tuple[str, int]:
    name, _, args = signature.partition("(")
    args = args.rstrip(")")
    return name, 0 if not args else len([a for a in args.split(",") if a != "NONE"])


def _missing_on_target(ctx: Context) -> Iterator[Hit]:
    assert ctx.target_conn is not None
    refs = [r for r in catalog_refs(ctx) if not _handled_elsewhere(r["signature"], ctx)]
    if not refs:
        return
    missing = fetch_all(
        ctx.target_conn,
        """
        SELECT r.kind, r.signature FROM unnest(%s::text[], %s::text[]) AS r(kind, signature)
        WHERE CASE r.kind WHEN 'operator' THEN to_regoperator(r.signature) IS NULL
                          WHEN 'function' THEN to_regprocedure(r.signature) IS NULL
                          ELSE to_regtype(r.signature) IS NULL END
        """,
        ([r["kind"] for r in refs], [r["signature"] for r in refs]),
    )
    if not missing:
        return
    # Signatures with polymorphic arguments that became anycompatible* (14) still resolve: keep only
    # those whose name and arity are gone from the target.
    poly = [m for m in missing if m["kind"] != "type" and "any" in m["signature"]]
    still_there: set[str] = set()
    if poly:
        names = fetch_all(
            ctx.target_conn,
            """
            SELECT p.proname || '/' || p.pronargs AS key FROM pg_proc p WHERE p.proname = ANY(%(n)s)
            UNION SELECT o.oprname || '/' || ((o.oprleft <> 0)::int + (o.oprright <> 0)::int) FROM pg_operator o
            WHERE o.oprname = ANY(%(n)s)
            """,
            {"n": sorted({_name_and_arity(m["signature"])[0] for m in poly})},
        )
        present = {r["key"] for r in names}
        still_there = {m["signature"] for m in poly if "{}/{}".format(*_name_and_arity(m["signature"])) in present}
    by_sig = {(r["kind"], r["signature"]): r["objects"] for r in refs}
    for m in missing:
        if m["signature"] in still_there:
            continue
        for user in by_sig[(m["kind"], m["signature"])]:
            yield Hit(
                user.name,
                f"{user.name} uses the built-in {m['kind']} {m['signature']}, which PostgreSQL {ctx.target_major} "
                "does not have",
                ctx.database,
                relation=user.relation,
                schema=user.schema,
            )


CATALOG_REFS = Rule(
    id="catalog-refs",
    title="Built-in functions, operators or types missing on the target",
    severity=Severity.BLOCKER,
    changed_in="any major that removes a built-in",
    needs_target=True,
    what_happens="Views, defaults, generated columns, constraints, index expressions, policies, trigger conditions, "
    "BEGIN ATOMIC bodies and columns that use a built-in the target lacks fail to restore, with everything "
    "that depends on them.",
    remediation="Rewrite the objects on the source to use the replacements the target has.",
    detect=_missing_on_target,
    verified="13->14, 11->18",
)


def _removed_builtin_ops(ctx: Context) -> Iterator[Hit]:
    for r in catalog_refs(ctx):
        if _REMOVED_IN_14.match(r["signature"]):
            for user in r["objects"]:
                yield Hit(
                    user.name,
                    f"{user.name} uses {r['kind']} {r['signature']}, removed in PostgreSQL 14",
                    ctx.database,
                    relation=user.relation,
                    schema=user.schema,
                )
    for r in fetch_all(ctx.conn, _EXTENSION_CONTAINMENT_REFS):
        yield Hit(
            r["obj"],
            f"{r['obj']} uses the {r['extname']} operator {r['signature']}, removed in PostgreSQL 14",
            ctx.database,
            relation=int(r["relid"]) if r["relid"] is not None else None,
        )


REMOVED_BUILTIN_OPERATORS = Rule(
    id="removed-builtin-operators",
    title="Factorial and geometric/extension containment operators removed in 14",
    severity=Severity.BLOCKER,
    changed_in="PostgreSQL 14",
    source_max=13,
    target_min=14,
    what_happens="The ! and !! factorial operators, numeric_fac() and the deprecated @ and ~ containment operators "
    "(geometric types, hstore, cube, intarray, seg) are gone: objects using them fail to restore.",
    remediation="Use factorial(n) instead of n! / !!n, and <@ / @> instead of @ / ~.",
    detect=_removed_builtin_ops,
    verified="13->14",
)

POSTFIX_OPERATORS = Rule(
    id="postfix-operators",
    title="User-defined postfix operators",
    severity=Severity.BLOCKER,
    changed_in="PostgreSQL 14",
    source_max=13,
    target_min=14,
    what_happens="pg_dump warns 'postfix operators are not supported anymore'; the restore fails and so do the "
    "views that use the operator.",
    remediation="Replace the postfix operator with a prefix operator or a function call, and update its users.",
    # oprright = 0 marks a postfix (right-unary) operator up to 13; 14 removed them.
    queries=(
        Query(
            "SELECT o.oid::regoperator::text AS object, n.nspname AS schema_name FROM pg_operator o "
            "JOIN pg_namespace n ON n.oid = o.oprnamespace WHERE o.oprright = 0 AND o.oid >= 16384 ORDER BY 1",
            until=13,
        ),
    ),
    message="operator {object} is postfix; PostgreSQL 14 cannot create it",
    verified="13->18",
)

POLYMORPHIC_ANYARRAY = Rule(
    id="polymorphic-anyarray",
    title="Aggregates/operators bound to array functions whose signatures changed in 14",
    severity=Severity.BLOCKER,
    changed_in="PostgreSQL 14",
    source_max=13,
    target_min=14,
    what_happens="array_append, array_cat, array_prepend, array_remove, array_replace, array_position(s) and "
    "width_bucket take anycompatible* arguments from 14: 'function array_append(anyarray, anyelement) does "
    "not exist'.",
    remediation="Drop these aggregates/operators before the move and re-create them with anycompatiblearray / "
    "anycompatible on the target.",
    queries=(
        Query(
            """
            WITH oldpoly AS (
              SELECT to_regprocedure(x) AS f FROM unnest(ARRAY[
               'array_append(anyarray,anyelement)', 'array_cat(anyarray,anyarray)',
               'array_prepend(anyelement,anyarray)', 'array_remove(anyarray,anyelement)',
               'array_replace(anyarray,anyelement,anyelement)', 'array_position(anyarray,anyelement)',
               'array_position(anyarray,anyelement,integer)', 'array_positions(anyarray,anyelement)',
               'width_bucket(anyelement,anyarray)']) x)
            SELECT 'aggregate' AS kind, a.aggfnoid::regprocedure::text AS object,
                   (SELECT n.nspname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                    WHERE p.oid = a.aggfnoid) AS schema_name
            FROM pg_aggregate a
            WHERE a.aggfnoid >= 16384
              AND (a.aggtransfn IN (SELECT f FROM oldpoly) OR a.aggfinalfn IN (SELECT f FROM oldpoly))
              AND a.aggtranstype IN ('anyarray'::regtype, 'anyelement'::regtype)
            UNION ALL
            SELECT 'operator', o.oid::regoperator::text,
                   (SELECT n.nspname FROM pg_namespace n WHERE n.oid = o.oprnamespace)
            FROM pg_operator o
            WHERE o.oid >= 16384 AND o.oprcode IN (SELECT f FROM oldpoly)
              AND o.oprleft IN ('anyarray'::regtype, 'anyelement'::regtype)
            ORDER BY 2
            """,
            until=13,
        ),
    ),
    message="{kind} {object} is bound to an array function whose signature changed in 14",
    verified="13->18",
)

ENCODING_CONVERSIONS = Rule(
    id="encoding-conversions",
    title="User encoding conversions implemented in C",
    severity=Severity.BLOCKER,
    changed_in="PostgreSQL 14",
    source_max=13,
    target_min=14,
    what_happens="Conversion functions take an extra argument and return int4 from 14: a user C conversion "
    "function cannot be re-created.",
    remediation="Rewrite the C function for the 14 signature, or drop the conversion (built-in functions are fine).",
    queries=(
        Query(
            """
            SELECT c.oid, n.nspname || '.' || c.conname AS object, c.conproc::regprocedure::text AS function,
                   n.nspname AS schema_name
            FROM pg_conversion c JOIN pg_namespace n ON n.oid = c.connamespace
            JOIN pg_proc p ON p.oid = c.conproc JOIN pg_language l ON l.oid = p.prolang
            WHERE c.oid >= 16384 AND p.oid >= 16384 AND l.lanname = 'c'
            ORDER BY 2
            """,
            until=13,
        ),
    ),
    message="conversion {object} uses the C function {function}, whose signature must change for 14",
    verified="detection on 13; failure: docs only",
)

INTERVAL_TEXT_INDEX = Rule(
    id="interval-text-index",
    title="Indexes or generated columns casting interval to text",
    severity=Severity.BLOCKER,
    changed_in="PostgreSQL 15",
    source_max=14,
    target_min=15,
    what_happens="interval_out became STABLE in 15: 'functions in index expression must be marked IMMUTABLE'.",
    remediation="Index to_char(iv, …) or extract(epoch FROM iv) instead of iv::text.",
    queries=(
        Query(
            """
            SELECT 'index' AS kind, i.indexrelid::regclass::text AS object, i.indrelid AS relid
            FROM pg_index i
            WHERE i.indexrelid >= 16384 AND (i.indexprs::text ~ 'COERCEVIAIO :arg \\{VAR [^{}]*:vartype 1186 '
               OR i.indpred::text ~ 'COERCEVIAIO :arg \\{VAR [^{}]*:vartype 1186 ')
            UNION ALL
            SELECT 'generated column', d.adrelid::regclass::text || '.' || quote_ident(a.attname), d.adrelid
            FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
            WHERE d.adbin::text ~ 'COERCEVIAIO :arg \\{VAR [^{}]*:vartype 1186 '
            ORDER BY 2
            """,
            until=14,
        ),
    ),
    message="{kind} {object} casts an interval to text, which is no longer immutable in 15",
    verified="14->18",
)

# Functions without SET search_path that indexes, matviews, constraints and defaults use, and the
# table those belong to. Only a body that names a user object without its schema can fail under
# pg_dump's empty search_path: built-ins (pg_catalog) are always found, so a body made only of
# operators, built-in calls, parameters and qualified names is safe. Words of the body are matched
# against the names of user tables, views, sequences, functions and types (a word right after a dot
# is qualified). BEGIN ATOMIC bodies (prosqlbody, 14+) are stored resolved: never affected.
_SEARCH_PATH_FUNCTIONS: LiteralString = """
WITH users AS (
  SELECT DISTINCT p.oid AS fn, d.classid, d.objid, d.objsubid,
         COALESCE(x.indrelid, rc.oid, NULLIF(k.conrelid, 0), a.adrelid) AS relid,
         CASE WHEN d.classid = 'pg_constraint'::regclass AND k.conrelid = 0
              THEN (SELECT n.nspname FROM pg_namespace n WHERE n.oid = k.connamespace) END AS domain_schema
  FROM pg_depend d
  JOIN pg_proc p ON d.refclassid = 'pg_proc'::regclass AND p.oid = d.refobjid
  LEFT JOIN pg_index x ON d.classid = 'pg_class'::regclass AND x.indexrelid = d.objid
  LEFT JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
  LEFT JOIN pg_class rc ON rc.oid = r.ev_class AND rc.relkind = 'm'
  LEFT JOIN pg_constraint k ON d.classid = 'pg_constraint'::regclass AND k.oid = d.objid
  LEFT JOIN pg_attrdef a ON d.classid = 'pg_attrdef'::regclass AND a.oid = d.objid
  WHERE p.oid >= 16384 AND (x.indexrelid IS NOT NULL OR rc.oid IS NOT NULL OR k.oid IS NOT NULL OR a.oid IS NOT NULL)
), user_names AS (
  SELECT lower(c.relname::text) AS word FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname !~ '^pg_'
  UNION SELECT lower(p.proname::text) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'
  UNION SELECT lower(t.typname::text) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'
)
SELECT p.oid::regprocedure::text AS object, pg_describe_object(u.classid, u.objid, u.objsubid) AS used_by,
       l.lanname, u.relid, COALESCE(u.domain_schema, n.nspname) AS schema_name
FROM users u
JOIN pg_proc p ON p.oid = u.fn
JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_language l ON l.oid = p.prolang
WHERE l.lanname NOT IN ('c', 'internal')
  AND (to_jsonb(p) ->> 'prosqlbody') IS NULL
  AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) s WHERE s LIKE 'search_path=%')
  AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = 'pg_proc'::regclass
                  AND x.objid = p.oid AND x.deptype = 'e')
  AND EXISTS (SELECT 1 FROM regexp_matches(p.prosrc, '(^|[^.[:alnum:]_$"])([[:alpha:]_][[:alnum:]_$]*)', 'g') w
              WHERE lower(w[2]) IN (SELECT word FROM user_names))
ORDER BY 1, 2
"""

SEARCH_PATH_FUNCTIONS = Rule(
    id="search-path-functions",
    title="Functions without a pinned search_path used by indexes, matviews, constraints or defaults",
    severity=Severity.WARNING,
    changed_in="pg_dump behaviour; PostgreSQL 17 (maintenance runs with a safe search_path)",
    what_happens="pg_dump restores with search_path = '', so such a function whose body names unqualified objects "
    "fails during the restore (index missing, matview unpopulated); from 17 CREATE INDEX / REFRESH / REINDEX "
    "always use a safe search_path. Bodies that name no user object (only built-ins, parameters, qualified "
    "names) and BEGIN ATOMIC bodies are not affected.",
    remediation="ALTER FUNCTION f SET search_path = app, pg_catalog; or schema-qualify the names in its body.",
    queries=(Query(_SEARCH_PATH_FUNCTIONS),),
    message="function {object} ({lanname}) is used by {used_by}, has no SET search_path and names user objects "
    "without their schema",
    verified="16->16, 16->17; bodies naming no user object restore fine (tests/integration/test_check_silent.py)",
)

LC_COLLATE_GUC = Rule(
    id="lc-collate-guc",
    title="Code reading the removed lc_collate / lc_ctype settings",
    severity=Severity.WARNING,
    changed_in="PostgreSQL 16",
    source_max=15,
    target_min=16,
    what_happens="The lc_collate and lc_ctype parameters were removed in 16: views and functions reading them "
    "restore but fail when used ('unrecognized configuration parameter').",
    remediation="Read pg_database.datcollate / datctype for current_database() instead.",
    queries=(
        Query(
            """
            SELECT 'function' AS kind, p.oid::regprocedure::text AS object, NULL::oid AS relid,
                   (SELECT n.nspname FROM pg_namespace n WHERE n.oid = p.pronamespace) AS schema_name
            FROM pg_proc p
            WHERE p.oid >= 16384 AND p.prosrc ~* '\\mlc_(collate|ctype)\\M'
            UNION ALL
            SELECT 'view', c.oid::regclass::text, c.oid, NULL FROM pg_class c
            WHERE c.relkind IN ('v', 'm') AND c.oid >= 16384 AND pg_get_viewdef(c.oid) ~* '\\mlc_(collate|ctype)\\M'
            ORDER BY 2
            """,
            until=15,
        ),
    ),
    message="{kind} {object} reads lc_collate/lc_ctype, which PostgreSQL 16 removed",
    verified="15->16",
)

NUMERIC_LITERAL_JUNK = Rule(
    id="numeric-literal-junk",
    title="Function bodies with a number glued to a word (123abc)",
    severity=Severity.INFO,
    changed_in="PostgreSQL 15",
    source_max=14,
    target_min=15,
    what_happens="'123abc' no longer lexes as '123 abc' in 15; views are re-printed and safe, but SQL/PL function "
    "bodies fail at run time (heuristic match: review each hit).",
    remediation="Add the missing whitespace or AS in the function body.",
    queries=(
        Query(
            """
            SELECT p.oid::regprocedure::text AS object, n.nspname AS schema_name
            FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE p.oid >= 16384 AND l.lanname NOT IN ('c', 'internal')
              AND regexp_replace(p.prosrc, '''[^'']*''', '', 'g')
                  ~ '(^|[^[:alnum:]_$.])\\d+(?![eE][-+]?\\d)[a-zA-Z_]'
              AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = 'pg_proc'::regclass
                              AND x.objid = p.oid AND x.deptype = 'e')
            ORDER BY 1
            """,
            until=14,
        ),
    ),
    message="function {object} has a number followed directly by a letter in its body",
    # An exponent (1e5, 2E-3) is a number on every major: not junk.
    verified="SELECT 123abc: 14 returns 123, 15 fails; 1e5 is a number on both",
)

# Built-in functions removed, as (removed in major, regex of names).
_REMOVED_FUNCTIONS: tuple[tuple[int, str], ...] = (
    (11, r"pg_file_read|pg_file_length|pg_logfile_rotate"),  # adminpack, RN 11
    (15, r"pg_start_backup|pg_stop_backup|pg_backup_start_time|pg_is_in_backup|xml_is_well_formed"),  # RN 15
    (16, r"pg_get_wal_records_info_till_end_of_wal|pg_get_wal_stats_till_end_of_wal"),  # pg_walinspect, RN 16
)


def _removed_functions(ctx: Context) -> Iterator[Hit]:
    names = [rx for major, rx in _REMOVED_FUNCTIONS if ctx.source_major < major <= ctx.target_major]
    if not names:
        return
    pattern = r"\m(" + "|".join(names) + r")\M"
    # prosqlbody (BEGIN ATOMIC) exists from 14; to_jsonb keeps the query version-free. prokind
    # replaced proisagg in 11.
    not_agg: LiteralString = "p.prokind <> 'a'" if ctx.source_major >= 11 else "NOT p.proisagg"
    query = (
        """
        SELECT p.oid::regprocedure::text AS object, (to_jsonb(p) ->> 'prosqlbody') IS NOT NULL AS atomic,
               n.nspname AS schema_name
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE p.oid >= 16384
          AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = 'pg_proc'::regclass
                          AND x.objid = p.oid AND x.deptype = 'e')
          AND (p.prosrc ~ %(re)s OR ((to_jsonb(p) ->> 'prosqlbody') IS NOT NULL AND """
        + not_agg
        + """ AND pg_get_functiondef(p.oid) ~ %(re)s))
        ORDER BY 1
        """
    )
    for r in fetch_all(ctx.conn, query, {"re": pattern}):
        if r["atomic"]:
            yield Hit(
                r["object"],
                f"function {r['object']} has a BEGIN ATOMIC body calling a function removed before "
                f"{ctx.target_major}: it fails to restore",
                ctx.database,
                Severity.BLOCKER,
                schema=r["schema_name"],
            )
        else:
            yield Hit(
                r["object"],
                f"function {r['object']} calls a function removed before {ctx.target_major}: it restores but "
                "fails when called",
                ctx.database,
                schema=r["schema_name"],
            )


REMOVED_FUNCTIONS_IN_BODIES = Rule(
    id="removed-functions-in-bodies",
    title="Function bodies calling removed built-in functions",
    severity=Severity.WARNING,
    changed_in="PostgreSQL 11 (adminpack), 15 (backup functions, xml2), 16 (pg_walinspect)",
    what_happens="String bodies are not checked during the restore, so calls to removed functions fail at run time; "
    "BEGIN ATOMIC bodies are parsed at CREATE time and fail to restore (blocker).",
    remediation="Update the code: pg_backup_start/pg_backup_stop on 15+, pg_read_file etc. instead of adminpack.",
    detect=_removed_functions,
    verified="14->18",
)

RULES = (
    CATALOG_REFS,
    REMOVED_BUILTIN_OPERATORS,
    POSTFIX_OPERATORS,
    POLYMORPHIC_ANYARRAY,
    ENCODING_CONVERSIONS,
    INTERVAL_TEXT_INDEX,
    SEARCH_PATH_FUNCTIONS,
    LC_COLLATE_GUC,
    NUMERIC_LITERAL_JUNK,
    REMOVED_FUNCTIONS_IN_BODIES,
)
