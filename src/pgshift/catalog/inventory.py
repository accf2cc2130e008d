"""The objects of one database, by kind and schema, with owners, ACLs and comments.

``verify`` compares two such inventories by name (never by OID). Every kind is read with one
query per database, so a database of 10,000 tables is inventoried in seconds. Objects that
belong to an extension are left out (the extension itself is compared), and so are the system
schemas. Each version gate names the PostgreSQL change it follows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, LiteralString

from pgshift.catalog.session import Connection, fetch_all, server_version
from pgshift.version import PgVersion

# Schemas that are PostgreSQL's own.
_USER_NSP: LiteralString = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_'"
)


def _not_extension_member(catalog: LiteralString, oid_expr: LiteralString) -> LiteralString:
    return (
        "NOT EXISTS (SELECT 1 FROM pg_depend dep WHERE dep.classid = '"
        + catalog
        + "'::regclass AND dep.objid = "
        + oid_expr
        + " AND dep.deptype = 'e')"
    )


@dataclass(frozen=True)
class DbObject:
    """One user object: compared by ``key`` across servers."""

    kind: str  # "table", "index", "constraint (check)", "function", "type (enum)" …
    schema: str | None
    name: str  # unique within (kind, schema): "table.constraint", "fn(integer, text)" …
    owner: str | None = None
    acl: tuple[str, ...] | None = None  # None: the default privileges (a NULL ACL)
    comment: str | None = None
    attrs: Mapping[str, str | None] = field(default_factory=dict)
    flags: frozenset[str] = frozenset()  # facts expected-difference rules look at

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.schema or "", self.name)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "schema": self.schema,
            "name": self.name,
            "owner": self.owner,
            "acl": None if self.acl is None else list(self.acl),
            "comment": self.comment,
            "attrs": dict(self.attrs),
            "flags": sorted(self.flags),
        }


@dataclass(frozen=True)
class Inventory:
    """Every user object of one database."""

    database: str
    version: PgVersion
    objects: tuple[DbObject, ...]
    # Keywords this server's quote_ident, format_type and pg_get_*def quote; they change between
    # majors (json from 17, system_user from 16 …), so verify compares text modulo the words
    # quoted on one side only.
    quoted_keywords: frozenset[str] = frozenset()

    def by_key(self) -> dict[tuple[str, str, str], DbObject]:
        return {o.key: o for o in self.objects}

    def counts(self) -> dict[str, int]:
        """Objects per kind."""
        out: dict[str, int] = {}
        for o in self.objects:
            out[o.kind] = out.get(o.kind, 0) + 1
        return dict(sorted(out.items()))


def _acl(value: Any, default: Any = None) -> tuple[str, ...] | None:
    """An ACL, None when it holds the defaults.

    An ACL spelled out but equal to the server's own defaults for the object's kind and owner
    (``acldefault``) means what a NULL ACL means; pg_dump restores such an ACL as NULL, and a 17+
    server's defaults include MAINTAIN, so both spellings are read as the defaults.
    """
    if value is None:
        return None
    if default is not None and sorted(value) == sorted(default):
        return None
    return tuple(value)


# attrs key of one column of a relation: "column " + its name as the catalog holds it.
COLUMN_PREFIX = "column "


def quote_names(names: Any) -> list[str]:
    """Names as SQL spells them, quoted where needed; keywords are left to ``Requote``."""
    return [n if _SIMPLE_NAME.fullmatch(n) else '"' + n.replace('"', '""') + '"' for n in names]


_SIMPLE_NAME = re.compile(r"[a-z_][a-z0-9_$]*")


def _join(values: Any) -> str | None:
    if values is None:
        return None
    return ", ".join(str(v) for v in values)


# --- schemas ------------------------------------------------------------------------------------


def _schemas(conn: Connection, version: PgVersion) -> list[DbObject]:
    query: LiteralString = (
        """
        SELECT n.nspname, pg_get_userbyid(n.nspowner) AS owner, n.nspacl::text[] AS acl,
               acldefault('n', n.nspowner)::text[] AS default_acl,
               obj_description(n.oid, 'pg_namespace') AS comment
        FROM pg_namespace n WHERE """
        + _USER_NSP
        + " AND "
        + _not_extension_member("pg_namespace", "n.oid")
    )
    return [
        DbObject("schema", None, r["nspname"], r["owner"], _acl(r["acl"], r["default_acl"]), r["comment"])
        for r in fetch_all(conn, query)
    ]


# --- relations: tables, partitions, views, materialized views, sequences, foreign tables -------

_RELKINDS = {
    "r": "table",
    "p": "partitioned table",
    "v": "view",
    "m": "materialized view",
    "S": "sequence",
    "f": "foreign table",
}


def _relations(conn: Connection, version: PgVersion) -> list[DbObject]:
    v = version.num
    # 10 added declarative partitioning (relkind 'p', relispartition) and pg_sequence.
    partition: LiteralString = (
        "c.relispartition, CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END AS bound,"
        " CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END AS partkey"
        if v >= 100000
        else "false AS relispartition, NULL::text AS bound, NULL::text AS partkey"
    )
    sequence: LiteralString = (
        "(SELECT format('%s increment %s min %s max %s start %s cache %s%s', format_type(s.seqtypid, NULL),"
        " s.seqincrement, s.seqmin, s.seqmax, s.seqstart, s.seqcache, CASE WHEN s.seqcycle THEN ' cycle' END)"
        " FROM pg_sequence s WHERE s.seqrelid = c.oid) AS sequence"
        if v >= 100000
        else "NULL::text AS sequence"
    )
    # 10 added identity columns (attidentity); 12 added generated columns (attgenerated).
    identity: LiteralString = (
        "CASE a.attidentity WHEN 'a' THEN ' GENERATED ALWAYS AS IDENTITY'"
        " WHEN 'd' THEN ' GENERATED BY DEFAULT AS IDENTITY' ELSE '' END"
        if v >= 100000
        else "''"
    )
    generated: LiteralString = "a.attgenerated <> ''" if v >= 120000 else "false"
    query: LiteralString = (
        """
        SELECT n.nspname, c.relname, c.relkind::text AS relkind, pg_get_userbyid(c.relowner) AS owner,
               c.relacl::text[] AS acl,
               acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner)::text[] AS default_acl,
               obj_description(c.oid, 'pg_class') AS comment,
               c.relpersistence::text AS persistence, c.relrowsecurity, c.relforcerowsecurity,
               c.relispopulated, """
        + partition
        + ", "
        + sequence
        + """,
               ARRAY(SELECT pn.nspname || '.' || p.relname FROM pg_inherits i
                     JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = p.relnamespace
                     WHERE i.inhrelid = c.oid ORDER BY i.inhseqno) AS parents,
               ARRAY(SELECT a.attname::text FROM pg_attribute a
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                     ORDER BY a.attnum) AS column_names,
               ARRAY(SELECT format_type(a.atttypid, a.atttypmod)
                            || CASE WHEN a.attcollation <> t.typcollation AND a.attcollation <> 0
                                    THEN ' COLLATE ' || (SELECT quote_ident(co.collname) FROM pg_collation co
                                                         WHERE co.oid = a.attcollation) ELSE '' END
                            || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
                            || CASE WHEN """
        + generated
        + """ THEN ' GENERATED ' || pg_get_expr(d.adbin, d.adrelid)
                                    WHEN d.adbin IS NOT NULL THEN ' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid)
                                    ELSE '' END
                            || """
        + identity
        + """
                     FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                     ORDER BY a.attnum) AS columns,
               ARRAY(SELECT quote_ident(a.attname) || '=' || a.attacl::text FROM pg_attribute a
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attacl IS NOT NULL
                     ORDER BY a.attnum) AS column_acl,
               ARRAY(SELECT quote_ident(a.attname) || ': ' || ds.description FROM pg_attribute a
                     JOIN pg_description ds ON ds.objoid = c.oid AND ds.classoid = 'pg_class'::regclass
                          AND ds.objsubid = a.attnum
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                     ORDER BY a.attnum) AS column_comments
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND """
        + _USER_NSP
        + " AND "
        + _not_extension_member("pg_class", "c.oid")
    )
    out = []
    for r in fetch_all(conn, query):
        relkind = r["relkind"]
        kind = _RELKINDS[relkind]
        if r["relispartition"]:
            kind = "partition" if relkind == "r" else "partition (partitioned)"
        # One attribute per column (a difference names the column), and the order of the names.
        attrs: dict[str, str | None] = {"columns": _join(quote_names(r["column_names"]))}
        if relkind != "S":
            attrs.update({f"{COLUMN_PREFIX}{n}": d for n, d in zip(r["column_names"], r["columns"], strict=True)})
        if relkind in ("r", "p"):
            attrs["persistence"] = {"p": "permanent", "u": "unlogged", "t": "temporary"}.get(r["persistence"])
            attrs["row_security"] = (
                "forced" if r["relforcerowsecurity"] else ("enabled" if r["relrowsecurity"] else "off")
            )
            attrs["inherits"] = _join(r["parents"]) if not r["relispartition"] else None
        if r["relispartition"]:
            attrs["partition_of"] = _join(r["parents"])
            attrs["bound"] = r["bound"]
        if relkind == "p":
            attrs["partition_key"] = r["partkey"]
        if relkind == "m":
            attrs["populated"] = "yes" if r["relispopulated"] else "no"
        if relkind == "S":
            attrs = {"definition": r["sequence"]}
        if r["column_acl"]:
            attrs["column_privileges"] = _join(r["column_acl"])
        if r["column_comments"]:
            attrs["column_comments"] = _join(r["column_comments"])
        out.append(
            DbObject(
                kind,
                r["nspname"],
                r["relname"],
                r["owner"],
                _acl(r["acl"], r["default_acl"]),
                r["comment"],
                {k: v for k, v in attrs.items() if v is not None},
                frozenset({"relation"}),
            )
        )
    return out


# --- indexes, constraints, triggers, rules, policies --------------------------------------------


def _indexes(conn: Connection, version: PgVersion) -> list[DbObject]:
    # 11 added partitioned indexes: an index of a partition attached to its parent's index has a
    # pg_inherits row (inhrelid = the index). Such an index is flagged "clone": verify matches it
    # by what it is when the two servers named it differently.
    query: LiteralString = (
        """
        SELECT i.indexrelid::int8 AS oid, n.nspname, ic.relname, tc.relname AS tablename,
               pg_get_indexdef(i.indexrelid) AS definition, i.indisvalid,
               obj_description(ic.oid, 'pg_class') AS comment,
               (SELECT inh.inhparent::int8 FROM pg_inherits inh WHERE inh.inhrelid = i.indexrelid) AS parent_oid
        FROM pg_index i
        JOIN pg_class ic ON ic.oid = i.indexrelid
        JOIN pg_class tc ON tc.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = ic.relnamespace
        WHERE """
        + _USER_NSP
        + " AND "
        + _not_extension_member("pg_class", "tc.oid")
    )
    rows = fetch_all(conn, query)
    by_oid = {r["oid"]: r for r in rows}
    out = []
    for r in rows:
        root = _root(r, by_oid)
        attrs = {
            "table": r["tablename"],
            # The index's own name is its key; the definition is compared without it.
            "definition": _INDEX_NAME.sub(r"\1", r["definition"], count=1),
            "valid": "yes" if r["indisvalid"] else "no",
        }
        if root is not None:
            attrs["attached_to"] = f"{root['nspname']}.{root['relname']}"
        out.append(
            DbObject(
                "index",
                r["nspname"],
                r["relname"],
                comment=r["comment"],
                attrs=attrs,
                flags=frozenset({"clone"} if root is not None else ()),
            )
        )
    return out


# "CREATE [UNIQUE] INDEX name ON " -> "CREATE [UNIQUE] INDEX ON "
_INDEX_NAME = re.compile(r'^(CREATE (?:UNIQUE )?INDEX )(?:"(?:[^"]|"")*"|\S+) (?=ON )')


def _root(row: Mapping[str, Any], by_oid: Mapping[int, Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The topmost parent of a cloned object (None when ``row`` has no parent)."""
    if row["parent_oid"] not in by_oid:
        return None
    seen = {row["oid"]}
    node = by_oid[row["parent_oid"]]
    while node["parent_oid"] in by_oid and node["oid"] not in seen:
        seen.add(node["oid"])
        node = by_oid[node["parent_oid"]]
    return node


_CONTYPES = {
    "p": "primary key",
    "u": "unique",
    "f": "foreign key",
    "c": "check",
    "x": "exclusion",
    "t": "constraint trigger",
    "n": "not null",
}


def _constraints(conn: Connection, version: PgVersion) -> list[DbObject]:
    # Constraints of tables and of domains. 17 catalogs domain NOT NULL constraints and 18 table
    # NOT NULL constraints in pg_constraint (contype 'n'); the rules of verify know about both.
    # The server names what it clones itself: a foreign key referencing a partitioned table gets
    # one constraint per partition (fk_a_fkey1 before 18, fk_a_fkey_1 from 18), a partition gets
    # its parent's keys, and in 18 an inherited NOT NULL constraint gets a name of its own. pg_dump
    # dumps none of these; they are flagged "clone" (11 added conparentid; an inherited constraint
    # is not local) and verify matches them by what they are, not by name.
    parent: LiteralString = "NULLIF(c.conparentid, 0)::int8" if version.num >= 110000 else "NULL::int8"
    query: LiteralString = (
        """
        SELECT c.oid::int8 AS oid, """
        + parent
        + """ AS parent_oid, c.conislocal, n.nspname, COALESCE(rel.relname, typ.typname) AS parent,
               CASE WHEN rel.oid IS NOT NULL THEN 'table' ELSE 'domain' END AS parent_kind,
               c.conname, c.contype::text AS contype, pg_get_constraintdef(c.oid) AS definition,
               c.condeferrable, c.condeferred, c.convalidated, obj_description(c.oid, 'pg_constraint') AS comment
        FROM pg_constraint c
        JOIN pg_namespace n ON n.oid = c.connamespace
        LEFT JOIN pg_class rel ON rel.oid = c.conrelid AND c.conrelid <> 0
        LEFT JOIN pg_type typ ON typ.oid = c.contypid AND c.contypid <> 0
        WHERE (rel.oid IS NOT NULL OR typ.oid IS NOT NULL) AND """
        + _USER_NSP
        + " AND "
        + _not_extension_member("pg_class", "COALESCE(rel.oid, 0)")
        + " AND "
        + _not_extension_member("pg_type", "COALESCE(typ.oid, 0)")
    )
    rows = fetch_all(conn, query)
    by_oid = {r["oid"]: r for r in rows}
    out = []
    for r in rows:
        contype = r["contype"]
        flags = {f"contype:{contype}", f"on:{r['parent_kind']}"}
        root = _root(r, by_oid)
        if root is not None or not r["conislocal"]:
            flags.add("clone")
        attrs = {
            "on": f"{r['parent_kind']} {r['parent']}",
            "definition": r["definition"],
            "deferrable": ("deferred" if r["condeferred"] else "immediate") if r["condeferrable"] else "no",
            "validated": "yes" if r["convalidated"] else "no",
        }
        if root is not None:
            attrs["cloned_from"] = f"{root['parent']}.{root['conname']}"
        out.append(
            DbObject(
                f"constraint ({_CONTYPES.get(contype, contype)})",
                r["nspname"],
                f"{r['parent']}.{r['conname']}",
                comment=r["comment"],
                attrs=attrs,
                flags=frozenset(flags),
            )
        )
    return out


_TG_ENABLED = {"O": "enabled", "D": "disabled", "R": "enabled replica", "A": "enabled always"}


def _triggers(conn: Connection, version: PgVersion) -> list[DbObject]:
    # 13 added tgparentid: triggers cloned onto partitions are left out (their parent is compared);
    # before 13 such clones were internal triggers, which are always left out.
    clones: LiteralString = "AND t.tgparentid = 0" if version.num >= 130000 else ""
    query: LiteralString = (
        """
        SELECT n.nspname, c.relname, t.tgname, t.tgenabled::text AS enabled, pg_get_triggerdef(t.oid) AS definition,
               obj_description(t.oid, 'pg_trigger') AS comment
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE NOT t.tgisinternal """
        + clones
        + " AND "
        + _USER_NSP
        + " AND "
        + _not_extension_member("pg_class", "c.oid")
    )
    return [
        DbObject(
            "trigger",
            r["nspname"],
            f"{r['relname']}.{r['tgname']}",
            comment=r["comment"],
            attrs={
                "table": r["relname"],
                "enabled": _TG_ENABLED.get(r["enabled"], r["enabled"]),
                "definition": r["definition"],
            },
        )
        for r in fetch_all(conn, query)
    ]


def _rules(conn: Connection, version: PgVersion) -> list[DbObject]:
    # A view's own ON SELECT rule (always named _RETURN) is the view itself. Any other rule named
    # _RETURN (before 16, ALTER RULE … RENAME TO "_RETURN" was allowed on a table) is compared.
    query: LiteralString = (
        """
        SELECT n.nspname, c.relname, r.rulename, pg_get_ruledef(r.oid) AS definition, r.ev_enabled::text AS enabled,
               obj_description(r.oid, 'pg_rewrite') AS comment
        FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE NOT (r.rulename = '_RETURN' AND r.ev_type = '1' AND c.relkind IN ('v', 'm')) AND """
        + _USER_NSP
        + " AND "
        + _not_extension_member("pg_class", "c.oid")
    )
    return [
        DbObject(
            "rule",
            r["nspname"],
            f"{r['relname']}.{r['rulename']}",
            comment=r["comment"],
            attrs={"definition": r["definition"], "enabled": _TG_ENABLED.get(r["enabled"], r["enabled"])},
        )
        for r in fetch_all(conn, query)
    ]


def _policies(conn: Connection, version: PgVersion) -> list[DbObject]:
    # 10 added permissive/restrictive policies (polpermissive).
    permissive: LiteralString = "p.polpermissive" if version.num >= 100000 else "true AS polpermissive"
    query: LiteralString = (
        """
        SELECT n.nspname, c.relname, p.polname, p.polcmd::text AS cmd, """
        + permissive
        + """,
               ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r) END
                     FROM unnest(p.polroles) r ORDER BY 1) AS roles,
               pg_get_expr(p.polqual, p.polrelid) AS qual, pg_get_expr(p.polwithcheck, p.polrelid) AS with_check,
               obj_description(p.oid, 'pg_policy') AS comment
        FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE """
        + _USER_NSP
    )
    return [
        DbObject(
            "policy",
            r["nspname"],
            f"{r['relname']}.{r['polname']}",
            comment=r["comment"],
            attrs={
                "command": {"*": "all", "r": "select", "a": "insert", "w": "update", "d": "delete"}.get(
                    r["cmd"], r["cmd"]
                ),
                "permissive": "yes" if r["polpermissive"] else "restrictive",
                "roles": _join(r["roles"]),
                "using": r["qual"],
                "with_check": r["with_check"],
            },
        )
        for r in fetch_all(conn, query)
    ]


def _statistics(conn: Connection, version: PgVersion) -> list[DbObject]:
    if version.num < 100000:  # 10 added extended statistics (CREATE STATISTICS)
        return []
    query: LiteralString = (
        """
        SELECT n.nspname, s.stxname, c.relname, pg_get_userbyid(s.stxowner) AS owner,
               pg_get_statisticsobjdef(s.oid) AS definition, obj_description(s.oid, 'pg_statistic_ext') AS comment
        FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace JOIN pg_class c ON c.oid = s.stxrelid
        WHERE """
        + _USER_NSP
        + " AND "
        + _not_extension_member("pg_statistic_ext", "s.oid")
    )
    return [
        DbObject(
            "statistics object",
            r["nspname"],
            r["stxname"],
            r["owner"],
            None,
            r["comment"],
            {"table": r["relname"], "definition": r["definition"]},
        )
        for r in fetch_all(conn, query)
    ]


# --- routines, types, collations, text search -----------------------------------------------


def _routines(conn: Connection, version: PgVersion) -> list[DbObject]:
    v = version.num
    # 11 replaced proisagg/proiswindow by prokind and added procedures.
    kind: LiteralString = (
        "p.prokind::text AS prokind"
        if v >= 110000
        else "CASE WHEN p.proisagg THEN 'a' WHEN p.proiswindow THEN 'w' ELSE 'f' END AS prokind"
    )
    # 14 creates a multirange type and its constructor functions for every range type.
    multirange: LiteralString = (
        "EXISTS (SELECT 1 FROM pg_type mt WHERE mt.oid = p.prorettype AND mt.typtype = 'm')"
        " AND EXISTS (SELECT 1 FROM pg_depend dp WHERE dp.classid = 'pg_proc'::regclass AND dp.objid = p.oid"
        " AND dp.deptype = 'i')"
        if v >= 140000
        else "false"
    )
    query: LiteralString = (
        """
        SELECT n.nspname, p.proname || '(' || oidvectortypes(p.proargtypes) || ')' AS signature, """
        + kind
        + """,
               pg_get_userbyid(p.proowner) AS owner, p.proacl::text[] AS acl,
               acldefault('f', p.proowner)::text[] AS default_acl,
               obj_description(p.oid, 'pg_proc') AS comment,
               pg_get_function_identity_arguments(p.oid) AS arguments,
               CASE WHEN """
        + ("p.prokind <> 'a'" if v >= 110000 else "NOT p.proisagg")
        + """ THEN pg_get_function_result(p.oid) END AS result,
               l.lanname, p.provolatile::text AS volatility, p.prosecdef, p.proisstrict,
               array_to_string(p.proconfig, ', ') AS config, md5(p.prosrc) AS body_md5, """
        + multirange
        + """ AS multirange_constructor
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
        WHERE """
        + _USER_NSP
        + " AND "
        + _not_extension_member("pg_proc", "p.oid")
    )
    kinds = {"f": "function", "p": "procedure", "a": "aggregate", "w": "window function"}
    out = []
    for r in fetch_all(conn, query):
        flags = {"multirange-constructor"} if r["multirange_constructor"] else set()
        out.append(
            DbObject(
                kinds.get(r["prokind"], "function"),
                r["nspname"],
                r["signature"],
                r["owner"],
                _acl(r["acl"], r["default_acl"]),
                r["comment"],
                {
                    k: v
                    for k, v in {
                        "arguments": r["arguments"],
                        "result": r["result"],
                        "language": r["lanname"],
                        "volatility": {"i": "immutable", "s": "stable", "v": "volatile"}.get(r["volatility"]),
                        "security": "definer" if r["prosecdef"] else "invoker",
                        "strict": "yes" if r["proisstrict"] else "no",
                        "config": r["config"],
                        "body_md5": r["body_md5"],
                    }.items()
                    if v is not None
                },
                frozenset(flags),
            )
        )
    return out


def _types(conn: Connection, version: PgVersion) -> list[DbObject]:
    # 14 added multirange types (typtype 'm'), created alongside every range type; until 17,
    # ALTER TYPE … OWNER on the range type left its multirange with the old owner.
    range_owner: LiteralString = (
        "(SELECT pg_get_userbyid(rt.typowner) FROM pg_range r JOIN pg_type rt ON rt.oid = r.rngtypid"
        " WHERE r.rngmultitypid = t.oid) AS range_owner"
        if version.num >= 140000
        else "NULL::name AS range_owner"
    )
    query: LiteralString = (
        """
        SELECT n.nspname, t.typname, t.typtype::text AS typtype, pg_get_userbyid(t.typowner) AS owner,
               t.typacl::text[] AS acl, acldefault('T', t.typowner)::text[] AS default_acl,
               obj_description(t.oid, 'pg_type') AS comment,
               CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END AS base,
               t.typnotnull, t.typdefault,
               ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid
                     ORDER BY e.enumsortorder) AS labels,
               ARRAY(SELECT quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
                     WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
                     ORDER BY a.attnum) AS attributes,
               (SELECT format_type(r.rngsubtype, NULL) FROM pg_range r WHERE r.rngtypid = t.oid) AS subtype,
               """
        + range_owner
        + """
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        LEFT JOIN pg_class rc ON rc.oid = t.typrelid
        WHERE (t.typtype IN ('b', 'd', 'e', 'r', 'm') OR (t.typtype = 'c' AND rc.relkind = 'c'))
          AND NOT EXISTS (SELECT 1 FROM pg_type el WHERE el.typarray = t.oid)
          AND """
        + _USER_NSP
        + " AND "
        + _not_extension_member("pg_type", "t.oid")
    )
    names = {"b": "base", "d": "domain", "e": "enum", "r": "range", "m": "multirange", "c": "composite"}
    out = []
    for r in fetch_all(conn, query):
        typtype = r["typtype"]
        attrs: dict[str, str | None] = {}
        if typtype == "d":
            attrs = {"base": r["base"], "not_null": "yes" if r["typnotnull"] else "no", "default": r["typdefault"]}
        elif typtype == "e":
            attrs = {"labels": _join(r["labels"])}
        elif typtype == "c":
            attrs = {"attributes": _join(r["attributes"])}
        elif typtype == "r":
            attrs = {"subtype": r["subtype"]}
        out.append(
            DbObject(
                f"type ({names.get(typtype, typtype)})",
                r["nspname"],
                r["typname"],
                r["owner"],
                _acl(r["acl"], r["default_acl"]),
                r["comment"],
                {k: v for k, v in attrs.items() if v is not None},
                frozenset({"multirange", f"range-owner:{r['range_owner']}"} if typtype == "m" else ()),
            )
        )
    return out


def _collations(conn: Connection, version: PgVersion) -> list[DbObject]:
    v = version.num
    # 10 added collprovider; 12 collisdeterministic; 15 colliculocale, renamed colllocale in 17.
    provider: LiteralString = "c.collprovider::text" if v >= 100000 else "'c'"
    deterministic: LiteralString = "c.collisdeterministic" if v >= 120000 else "true"
    if v >= 170000:
        locale: LiteralString = "c.colllocale"
    elif v >= 150000:
        locale = "c.colliculocale"
    else:
        locale = "NULL::text"
    query: LiteralString = (
        """
        SELECT n.nspname, c.collname, pg_get_userbyid(c.collowner) AS owner, """
        + provider
        + " AS provider, c.collcollate, c.collctype, "
        + locale
        + " AS locale, "
        + deterministic
        + """ AS deterministic, obj_description(c.oid, 'pg_collation') AS comment
        FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace
        WHERE """
        + _USER_NSP
        + " AND "
        + _not_extension_member("pg_collation", "c.oid")
    )
    return [
        DbObject(
            "collation",
            r["nspname"],
            r["collname"],
            r["owner"],
            None,
            r["comment"],
            {
                k: v
                for k, v in {
                    "provider": {"c": "libc", "i": "icu", "b": "builtin", "d": "default"}.get(r["provider"]),
                    "collate": r["collcollate"],
                    "ctype": r["collctype"],
                    "locale": r["locale"],
                    "deterministic": "yes" if r["deterministic"] else "no",
                }.items()
                if v is not None
            },
        )
        for r in fetch_all(conn, query)
    ]


def _text_search(conn: Connection, version: PgVersion) -> list[DbObject]:
    query: LiteralString = (
        """
        SELECT n.nspname, c.cfgname, pg_get_userbyid(c.cfgowner) AS owner, p.prsname AS parser,
               obj_description(c.oid, 'pg_ts_config') AS comment,
               ARRAY(SELECT DISTINCT m.maptokentype || ':' || dn.nspname || '.' || d.dictname || '#' || m.mapseqno
                     FROM pg_ts_config_map m JOIN pg_ts_dict d ON d.oid = m.mapdict
                     JOIN pg_namespace dn ON dn.oid = d.dictnamespace
                     WHERE m.mapcfg = c.oid ORDER BY 1) AS mapping
        FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace JOIN pg_ts_parser p ON p.oid = c.cfgparser
        WHERE """
        + _USER_NSP
        + " AND "
        + _not_extension_member("pg_ts_config", "c.oid")
    )
    return [
        DbObject(
            "text search configuration",
            r["nspname"],
            r["cfgname"],
            r["owner"],
            None,
            r["comment"],
            {"parser": r["parser"], "mapping": _join(r["mapping"])},
        )
        for r in fetch_all(conn, query)
    ]


# --- database-wide objects: publications, event triggers, FDW, default privileges --------------


def _publications(conn: Connection, version: PgVersion) -> list[DbObject]:
    v = version.num
    if v < 100000:  # 10 added logical replication publications
        return []
    # 11 added pubtruncate.
    truncate: LiteralString = "p.pubtruncate" if v >= 110000 else "false AS pubtruncate"
    query: LiteralString = (
        """
        SELECT p.pubname, pg_get_userbyid(p.pubowner) AS owner, p.puballtables, p.pubinsert, p.pubupdate,
               p.pubdelete, """
        + truncate
        + """, obj_description(p.oid, 'pg_publication') AS comment,
               ARRAY(SELECT t.schemaname || '.' || t.tablename FROM pg_publication_tables t
                     WHERE t.pubname = p.pubname ORDER BY 1) AS tables
        FROM pg_publication p
        """
    )
    out = []
    for r in fetch_all(conn, query):
        ops = [op for op in ("insert", "update", "delete", "truncate") if r[f"pub{op}"]]
        out.append(
            DbObject(
                "publication",
                None,
                r["pubname"],
                r["owner"],
                None,
                r["comment"],
                {
                    "all_tables": "yes" if r["puballtables"] else "no",
                    "operations": ", ".join(ops),
                    "tables": _join(r["tables"]),
                },
            )
        )
    return out


def _event_triggers(conn: Connection, version: PgVersion) -> list[DbObject]:
    query: LiteralString = """
        SELECT e.evtname, e.evtevent, pg_get_userbyid(e.evtowner) AS owner, e.evtenabled::text AS enabled,
               e.evtfoid::regproc::text AS function, array_to_string(e.evttags, ', ') AS tags,
               obj_description(e.oid, 'pg_event_trigger') AS comment
        FROM pg_event_trigger e
        WHERE NOT EXISTS (SELECT 1 FROM pg_depend dep WHERE dep.classid = 'pg_event_trigger'::regclass
                          AND dep.objid = e.oid AND dep.deptype = 'e')
        """
    return [
        DbObject(
            "event trigger",
            None,
            r["evtname"],
            r["owner"],
            None,
            r["comment"],
            {
                k: v
                for k, v in {
                    "event": r["evtevent"],
                    "enabled": _TG_ENABLED.get(r["enabled"], r["enabled"]),
                    "function": r["function"],
                    "tags": r["tags"],
                }.items()
                if v is not None
            },
        )
        for r in fetch_all(conn, query)
    ]


def _foreign(conn: Connection, version: PgVersion) -> list[DbObject]:
    out = []
    wrappers: LiteralString = """
        SELECT w.fdwname, pg_get_userbyid(w.fdwowner) AS owner, w.fdwacl::text[] AS acl,
               acldefault('F', w.fdwowner)::text[] AS default_acl,
               obj_description(w.oid, 'pg_foreign_data_wrapper') AS comment,
               array_to_string(ARRAY(SELECT o FROM unnest(w.fdwoptions) o ORDER BY 1), ', ') AS options
        FROM pg_foreign_data_wrapper w
        WHERE NOT EXISTS (SELECT 1 FROM pg_depend dep WHERE dep.classid = 'pg_foreign_data_wrapper'::regclass
                          AND dep.objid = w.oid AND dep.deptype = 'e')
        """
    for r in fetch_all(conn, wrappers):
        out.append(
            DbObject(
                "foreign data wrapper",
                None,
                r["fdwname"],
                r["owner"],
                _acl(r["acl"], r["default_acl"]),
                r["comment"],
                {"options": r["options"]} if r["options"] else {},
            )
        )
    servers: LiteralString = """
        SELECT s.srvname, w.fdwname, pg_get_userbyid(s.srvowner) AS owner, s.srvacl::text[] AS acl,
               acldefault('S', s.srvowner)::text[] AS default_acl,
               obj_description(s.oid, 'pg_foreign_server') AS comment, s.srvtype, s.srvversion,
               array_to_string(ARRAY(SELECT o FROM unnest(s.srvoptions) o ORDER BY 1), ', ') AS options
        FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
        WHERE NOT EXISTS (SELECT 1 FROM pg_depend dep WHERE dep.classid = 'pg_foreign_server'::regclass
                          AND dep.objid = s.oid AND dep.deptype = 'e')
        """
    for r in fetch_all(conn, servers):
        attrs = {"wrapper": r["fdwname"], "type": r["srvtype"], "version": r["srvversion"], "options": r["options"]}
        out.append(
            DbObject(
                "foreign server",
                None,
                r["srvname"],
                r["owner"],
                _acl(r["acl"], r["default_acl"]),
                r["comment"],
                {k: v for k, v in attrs.items() if v is not None},
            )
        )
    # User mapping options can hold passwords: only their names are compared, and a digest of
    # the values computed on the server (the values themselves never reach pgshift).
    # pg_user_mappings (not pg_user_mapping) is readable by every role; it hides the options of
    # mappings the role may not see (NULL), equally on both sides.
    mappings: LiteralString = """
        SELECT m.srvname, m.usename,
               ARRAY(SELECT split_part(o, '=', 1) FROM unnest(m.umoptions) o ORDER BY 1) AS option_names,
               md5(COALESCE(array_to_string(ARRAY(SELECT o FROM unnest(m.umoptions) o ORDER BY 1), E'\\n'), ''))
                   AS options_md5
        FROM pg_user_mappings m
        """
    for r in fetch_all(conn, mappings):
        out.append(
            DbObject(
                "user mapping",
                None,
                f"{r['usename']}@{r['srvname']}",
                attrs={"options": _join(r["option_names"]), "options_md5": r["options_md5"]},
            )
        )
    return out


_DEFACL_TYPES = {"r": "tables", "S": "sequences", "f": "functions", "T": "types", "n": "schemas", "L": "large objects"}


def _default_privileges(conn: Connection, version: PgVersion) -> list[DbObject]:
    query: LiteralString = """
        SELECT pg_get_userbyid(d.defaclrole) AS role, n.nspname, d.defaclobjtype::text AS objtype,
               d.defaclacl::text[] AS acl
        FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
        """
    return [
        DbObject(
            "default privileges",
            r["nspname"],
            f"{r['role']} on {_DEFACL_TYPES.get(r['objtype'], r['objtype'])}",
            acl=_acl(r["acl"]),
            flags=frozenset({f"defacl:{r['objtype']}", f"defacl-role:{r['role']}"}),
        )
        for r in fetch_all(conn, query)
    ]


def _extensions(conn: Connection, version: PgVersion) -> list[DbObject]:
    query: LiteralString = """
        SELECT e.extname, e.extversion, n.nspname, pg_get_userbyid(e.extowner) AS owner,
               obj_description(e.oid, 'pg_extension') AS comment
        FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        """
    # The owner of an extension is whoever created it: not compared (compare_owners covers objects).
    return [
        DbObject("extension", None, r["extname"], attrs={"version": r["extversion"], "schema": r["nspname"]})
        for r in fetch_all(conn, query)
    ]


READERS: tuple[tuple[str, Callable[[Connection, PgVersion], list[DbObject]]], ...] = (
    ("extensions", _extensions),
    ("schemas", _schemas),
    ("relations", _relations),
    ("indexes", _indexes),
    ("constraints", _constraints),
    ("triggers", _triggers),
    ("rules", _rules),
    ("policies", _policies),
    ("statistics", _statistics),
    ("routines", _routines),
    ("types", _types),
    ("collations", _collations),
    ("text search", _text_search),
    ("publications", _publications),
    ("event triggers", _event_triggers),
    ("foreign", _foreign),
    ("default privileges", _default_privileges),
)


def read_inventory(conn: Connection, database: str | None = None) -> Inventory:
    """Every user object of the connected database."""
    version = server_version(conn)
    objects: list[DbObject] = []
    for _name, reader in READERS:
        objects.extend(reader(conn, version))
    objects.sort(key=lambda o: o.key)
    return Inventory(database or conn.info.dbname, version, tuple(objects), quoted_keywords(conn))


def quoted_keywords(conn: Connection) -> frozenset[str]:
    """The keywords an identifier is quoted for: every category but unreserved (quote_ident's rule)."""
    return frozenset(r["word"] for r in fetch_all(conn, "SELECT word FROM pg_get_keywords() WHERE catcode <> 'U'"))


def role_password_digests(conn: Connection) -> dict[str, str | None] | None:
    """md5 of each role's password hash, computed on the server; None when pg_authid is unreadable.

    The hashes themselves never reach pgshift: only whether they are equal on both sides.
    """
    rows = fetch_all(conn, "SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT') AS ok")
    if not rows or not rows[0]["ok"]:
        return None
    return {
        r["rolname"]: r["digest"]
        for r in fetch_all(conn, "SELECT rolname, md5(rolpassword) AS digest FROM pg_authid WHERE rolname !~ '^pg_'")
    }


def acl_name(role: str) -> str:
    """A role name as aclitem text spells it (quoted unless letters, digits and underscores)."""
    return role if role and all(ch.isalnum() or ch == "_" for ch in role) else '"' + role.replace('"', '""') + '"'
