"""Read-only inventories of a source and a target server, as ``check`` reports them.

Nothing here reads table data: sizes come from the storage functions, counts from the catalogs.
Every version gate names the PostgreSQL change it follows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, LiteralString

from psycopg import sql

from pgshift.catalog.cluster import (
    AvailableExtension,
    DatabaseInfo,
    ExtensionInfo,
    Membership,
    RoleInfo,
    ServerInfo,
    TablespaceInfo,
    available_extensions,
    list_databases,
    list_extensions,
    list_memberships,
    list_roles,
    list_tablespaces,
    server_info,
)
from pgshift.catalog.session import Connection, fetch_all, fetch_one
from pgshift.errors import UsageError

USER_NAMESPACES: LiteralString = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'"


@dataclass(frozen=True)
class TableSize:
    name: str
    total_bytes: int
    rows_estimate: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class DatabaseInventory:
    """What one source database holds."""

    name: str
    extensions: tuple[ExtensionInfo, ...]
    object_counts: Mapping[str, int]
    largest_tables: tuple[TableSize, ...]
    table_data_bytes: int
    index_bytes: int
    large_objects: int
    large_object_bytes: int
    unlogged_tables: tuple[str, ...]
    foreign_servers: tuple[str, ...]
    user_mappings: tuple[str, ...]
    publications: tuple[str, ...]
    subscriptions: tuple[str, ...]
    event_triggers: tuple[str, ...]
    rls_tables: tuple[str, ...]
    relations_to_lock: int  # what pg_dump locks: tables, views, sequences, foreign tables, matviews

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "extensions": [e.as_dict() for e in self.extensions],
            "object_counts": dict(self.object_counts),
            "largest_tables": [t.as_dict() for t in self.largest_tables],
            "table_data_bytes": self.table_data_bytes,
            "index_bytes": self.index_bytes,
            "large_objects": self.large_objects,
            "large_object_bytes": self.large_object_bytes,
            "unlogged_tables": list(self.unlogged_tables),
            "foreign_servers": list(self.foreign_servers),
            "user_mappings": list(self.user_mappings),
            "publications": list(self.publications),
            "subscriptions": list(self.subscriptions),
            "event_triggers": list(self.event_triggers),
            "rls_tables": list(self.rls_tables),
            "relations_to_lock": self.relations_to_lock,
        }


@dataclass(frozen=True)
class Privileges:
    """What the connecting role may do on a server."""

    user: str
    superuser: bool
    createdb: bool
    createrole: bool
    bypassrls: bool
    replication: bool
    can_read_authid: bool
    member_of: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "member_of": list(self.member_of)}


@dataclass(frozen=True)
class SourceInventory:
    server: ServerInfo
    privileges: Privileges
    databases: tuple[DatabaseInfo, ...]  # every database, templates included
    checked: tuple[DatabaseInventory, ...]  # the databases the check connected to
    roles: tuple[RoleInfo, ...]
    memberships: tuple[Membership, ...]
    tablespaces: tuple[TablespaceInfo, ...]
    non_default_settings: Mapping[str, str]  # postgresql.conf / ALTER SYSTEM settings
    prepared_xacts: tuple[str, ...]
    replication_slots: tuple[str, ...]
    display: str = ""

    def database(self, name: str) -> DatabaseInventory | None:
        return next((d for d in self.checked if d.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "connection": self.display,
            "server": self.server.as_dict(),
            "privileges": self.privileges.as_dict(),
            "databases": [d.as_dict() for d in self.databases],
            "checked": [d.as_dict() for d in self.checked],
            "roles": [r.as_dict() for r in self.roles],
            "memberships": [m.as_dict() for m in self.memberships],
            "tablespaces": [t.as_dict() for t in self.tablespaces],
            "non_default_settings": dict(self.non_default_settings),
            "prepared_transactions": list(self.prepared_xacts),
            "replication_slots": list(self.replication_slots),
        }


@dataclass(frozen=True)
class TargetInventory:
    server: ServerInfo
    privileges: Privileges
    extensions: Mapping[str, AvailableExtension]
    collations: frozenset[str]  # collation names
    locales: frozenset[str]  # collcollate values of libc collations, plus C/POSIX
    roles: frozenset[str]
    databases: frozenset[str]
    tablespaces: frozenset[str]
    setting_names: frozenset[str]
    connections_in_use: int
    display: str = ""
    collation_versions: Mapping[str, str] = field(default_factory=dict)  # collation name -> library version
    locale_versions: Mapping[str, str] = field(default_factory=dict)  # libc locale -> library version

    def as_dict(self) -> dict[str, Any]:
        return {
            "connection": self.display,
            "server": self.server.as_dict(),
            "privileges": self.privileges.as_dict(),
            "available_extensions": {k: v.as_dict() for k, v in sorted(self.extensions.items())},
            "collations": len(self.collations),
            "locales": sorted(self.locales),
            "roles": sorted(self.roles),
            "databases": sorted(self.databases),
            "tablespaces": sorted(self.tablespaces),
            "connections_in_use": self.connections_in_use,
        }


def privileges(conn: Connection) -> Privileges:
    row = fetch_one(
        conn,
        """
        SELECT r.rolname, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolbypassrls, r.rolreplication,
               has_table_privilege('pg_catalog.pg_authid', 'SELECT') AS authid,
               ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                     WHERE m.member = r.oid ORDER BY 1) AS member_of
        FROM pg_roles r WHERE r.rolname = current_user
        """,
    )
    assert row is not None
    return Privileges(
        user=row["rolname"],
        superuser=row["rolsuper"],
        createdb=row["rolcreatedb"] or row["rolsuper"],
        createrole=row["rolcreaterole"] or row["rolsuper"],
        bypassrls=row["rolbypassrls"] or row["rolsuper"],
        replication=row["rolreplication"],
        can_read_authid=row["authid"],
        member_of=tuple(row["member_of"]),
    )


def non_default_settings(conn: Connection) -> dict[str, str]:
    rows = fetch_all(
        conn,
        """
        SELECT name, setting FROM pg_settings
        WHERE source IN ('configuration file', 'command line', 'environment variable') ORDER BY name
        """,
    )
    return {r["name"]: r["setting"] for r in rows}


def _names(conn: Connection, query: LiteralString) -> tuple[str, ...]:
    return tuple(str(r["name"]) for r in fetch_all(conn, query))


def cluster_inventory(conn: Connection, display: str = "") -> SourceInventory:
    """The cluster-wide part of a source inventory (``checked`` empty, filled in by the engine)."""
    info = server_info(conn)
    privs = privileges(conn)
    prepared = _names(conn, "SELECT gid AS name FROM pg_prepared_xacts ORDER BY 1")
    slots = _names(
        conn, "SELECT slot_name::text || ' (' || slot_type || ')' AS name FROM pg_replication_slots ORDER BY 1"
    )
    return SourceInventory(
        server=info,
        privileges=privs,
        databases=tuple(list_databases(conn, include_templates=True)),
        checked=(),
        roles=tuple(list_roles(conn)),
        memberships=tuple(list_memberships(conn)),
        tablespaces=tuple(list_tablespaces(conn)),
        non_default_settings=non_default_settings(conn),
        prepared_xacts=prepared,
        replication_slots=slots,
        display=display,
    )


_COUNTS: LiteralString = (
    """
    SELECT
      (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND """
    + USER_NAMESPACES
    + """) AS tables,
      (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('i', 'I') AND """
    + USER_NAMESPACES
    + """) AS indexes,
      (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'v' AND """
    + USER_NAMESPACES
    + """) AS views,
      (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'm' AND """
    + USER_NAMESPACES
    + """) AS materialized_views,
      (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'S' AND """
    + USER_NAMESPACES
    + """) AS sequences,
      (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'f' AND """
    + USER_NAMESPACES
    + """) AS foreign_tables,
      (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE """
    + USER_NAMESPACES
    + """) AS functions,
      (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE t.typtype IN ('c', 'd', 'e', 'r') AND (t.typrelid = 0 OR EXISTS
          (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind = 'c')) AND """
    + USER_NAMESPACES
    + """) AS types,
      (SELECT count(*) FROM pg_namespace n WHERE """
    + USER_NAMESPACES
    + """) AS schemas,
      (SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal) AS triggers,
      (SELECT count(*) FROM pg_policy) AS policies,
      (SELECT count(*) FROM pg_largeobject_metadata) AS large_objects,
      pg_table_size('pg_catalog.pg_largeobject') AS large_object_bytes,
      (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'm', 'f', 'S', 'v') AND """
    + USER_NAMESPACES
    + """) AS relations_to_lock,
      (SELECT COALESCE(sum(pg_table_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'm') AND """
    + USER_NAMESPACES
    + """) AS table_bytes,
      (SELECT COALESCE(sum(pg_relation_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'i' AND """
    + USER_NAMESPACES
    + """) AS index_bytes
    """
)


def database_inventory(conn: Connection, name: str, *, top: int = 10) -> DatabaseInventory:
    counts = fetch_one(conn, _COUNTS)
    assert counts is not None
    largest = fetch_all(
        conn,
        """
        SELECT c.oid::regclass::text AS name, pg_total_relation_size(c.oid) AS total,
               GREATEST(c.reltuples, 0)::bigint AS rows
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname !~ '^pg_toast'
        ORDER BY c.relpages DESC, 1 LIMIT %(top)s
        """,
        {"top": top},
    )
    # relpages orders cheaply; the exact sizes of the few picked are then read from storage.
    largest.sort(key=lambda r: (-int(r["total"]), r["name"]))
    unlogged = _names(
        conn,
        """
        SELECT c.oid::regclass::text AS name FROM pg_class c
        WHERE c.relpersistence = 'u' AND c.relkind IN ('r', 'p') ORDER BY 1
        """,
    )
    servers = _names(conn, "SELECT srvname AS name FROM pg_foreign_server ORDER BY 1")
    mappings = _names(conn, "SELECT usename || '@' || srvname AS name FROM pg_user_mappings ORDER BY 1")
    pubs = _names(conn, "SELECT pubname AS name FROM pg_publication ORDER BY 1")
    subs = _names(
        conn,
        """
        SELECT s.subname AS name FROM pg_subscription s
        JOIN pg_database d ON d.oid = s.subdbid AND d.datname = current_database() ORDER BY 1
        """,
    )
    evt = _names(conn, "SELECT evtname AS name FROM pg_event_trigger ORDER BY 1")
    rls = _names(conn, "SELECT oid::regclass::text AS name FROM pg_class WHERE relrowsecurity ORDER BY 1")
    keys = ("tables", "indexes", "views", "materialized_views", "sequences", "foreign_tables", "functions", "types")
    return DatabaseInventory(
        name=name,
        extensions=tuple(list_extensions(conn)),
        object_counts={k: int(counts[k]) for k in (*keys, "schemas", "triggers", "policies")},
        largest_tables=tuple(TableSize(r["name"], int(r["total"]), int(r["rows"])) for r in largest),
        table_data_bytes=int(counts["table_bytes"]),
        index_bytes=int(counts["index_bytes"]),
        large_objects=int(counts["large_objects"]),
        large_object_bytes=int(counts["large_object_bytes"]),
        unlogged_tables=unlogged,
        foreign_servers=servers,
        user_mappings=mappings,
        publications=pubs,
        subscriptions=subs,
        event_triggers=evt,
        rls_tables=rls,
        relations_to_lock=int(counts["relations_to_lock"]),
    )


def target_inventory(conn: Connection, display: str = "") -> TargetInventory:
    info = server_info(conn)
    coll = fetch_all(conn, "SELECT collname, collcollate, collprovider::text AS provider FROM pg_collation")
    locales = {"C", "POSIX"} | {r["collcollate"] for r in coll if r["provider"] == "c" and r["collcollate"]}
    # A locale some database of the target already runs with is one the server can use, even when
    # initdb imported no collation for it (an image without `locale -a`: glibc's built-in C.UTF-8).
    locales |= {
        r["name"]
        for r in fetch_all(conn, "SELECT datcollate AS name FROM pg_database UNION SELECT datctype FROM pg_database")
        if r["name"]
    }
    # pg_collation_actual_version reports libc versions from 13 on (NULL before).
    rows = fetch_all(
        conn,
        "SELECT collname, collcollate, collprovider::text AS provider, pg_collation_actual_version(oid) AS v "
        "FROM pg_collation WHERE collprovider <> 'd' AND collname !~ '^(C|POSIX|ucs_basic)$' AND collname !~ '^pg_'",
    )
    versions = {r["collname"]: r["v"] for r in rows if r["v"]}
    locale_versions = {r["collcollate"]: r["v"] for r in rows if r["v"] and r["provider"] == "c" and r["collcollate"]}
    in_use = fetch_one(conn, "SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'client backend'")
    return TargetInventory(
        server=info,
        privileges=privileges(conn),
        extensions=available_extensions(conn),
        collations=frozenset(r["collname"] for r in coll),
        locales=frozenset(locales),
        roles=frozenset(_names(conn, "SELECT rolname AS name FROM pg_roles")),
        databases=frozenset(_names(conn, "SELECT datname AS name FROM pg_database")),
        tablespaces=frozenset(_names(conn, "SELECT spcname AS name FROM pg_tablespace")),
        setting_names=frozenset(_names(conn, "SELECT name FROM pg_settings")),
        connections_in_use=int(in_use["n"]) if in_use else 0,
        display=display,
        collation_versions=versions,
        locale_versions=locale_versions,
    )


def count_matching(conn: Connection, schema: str, table: str, predicate: sql.Composable, limit: int = 1) -> int:
    """Rows of ``schema.table`` matching ``predicate``, stopping after ``limit``.

    Used only by the rules that must scan values (the "char" and tsvector rules); names are
    composed as identifiers, never spliced in as text.
    """
    query = sql.SQL("SELECT count(*) AS n FROM (SELECT 1 FROM {} WHERE {} LIMIT {}) s").format(
        sql.Identifier(schema, table), predicate, sql.Literal(limit)
    )
    with conn.cursor() as cur:
        cur.execute(query)
        row = cur.fetchone()
    return int(row["n"]) if row else 0


# --- what a filtered dump moves (pg_dump -n/-N/-t/-T) --------------------------------------------
# pg_dump's own selection, redone in one place so that check reports on the objects migrate moves:
# the same psql patterns turned into the same regular expressions, matched by the same catalog
# conditions (src/bin/pg_dump/pg_dump.c expand_*_name_patterns, selectDumpable*), on the same
# search_path (pg_dump matches unqualified table patterns against the visible tables after
# RESET search_path). Tried against pg_dump 14-18 on 14 and 16 servers (tests/unit/test_check_rules_unit.py
# and tests/integration/test_check_filters.py compare with pg_dump itself).

# The relkinds -t/-T match: tables, sequences, views, materialized views, foreign and partitioned tables.
_PATTERN_RELKINDS = ("r", "S", "v", "m", "f", "p")


@dataclass(frozen=True)
class ObjectFilters:
    """pg_dump's object filters as migrate passes them (psql patterns, each list repeatable)."""

    schemas: tuple[str, ...] = ()  # -n
    exclude_schemas: tuple[str, ...] = ()  # -N
    tables: tuple[str, ...] = ()  # -t
    exclude_tables: tuple[str, ...] = ()  # -T

    def __bool__(self) -> bool:
        return bool(self.schemas or self.exclude_schemas or self.tables or self.exclude_tables)

    def dump_args(self) -> tuple[str, ...]:
        """The pg_dump options of these filters, in migrate's order (migrate/planner.py dump_args)."""
        return (
            *(f"--schema={p}" for p in self.schemas),
            *(f"--exclude-schema={p}" for p in self.exclude_schemas),
            *(f"--table={p}" for p in self.tables),
            *(f"--exclude-table={p}" for p in self.exclude_tables),
        )

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class NamePattern:
    """A psql pattern as regular expressions over catalog names (``^(...)$``, as pg_dump builds them)."""

    name: str
    schema: str | None = None  # None: no schema given, so only objects visible on the search_path
    database: str | None = None  # the literal database part of db.schema.name, if given


def name_pattern(pattern: str, *, tables: bool) -> NamePattern:
    """psql's patternToSQLRegex (fe_utils/string_utils.c) as pg_dump calls it for -t (``tables``) or -n.

    Outside double quotes letters are lower-cased, ``*`` is ``.*``, ``?`` is ``.``; other characters
    pass through as regular expression syntax except ``$`` and ``[]``, which are literal. Inside
    double quotes everything is literal (``""`` is one quote). For -t a ``.`` outside quotes separates
    [database.]schema.table; more dots are pg_dump's "improper relation name". For -n pg_dump does not
    split at all: any ``.`` outside quotes stops it ("cross-database references are not implemented",
    tried with pg_dump 14-18), so both are usage errors here.
    """
    parts: list[str] = [""]
    first = ""  # the first part as typed (quotes removed, unquoted letters lower-cased): a database name
    inquotes = False
    dots = 0
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        add = ch
        if ch == '"':
            if inquotes and pattern[i + 1 : i + 2] == '"':
                parts[-1] += '"'
                i += 1
            else:
                inquotes = not inquotes
                add = ""
        elif not inquotes and "A" <= ch <= "Z":
            add = ch.lower()
            parts[-1] += add
        elif not inquotes and ch == "*":
            parts[-1] += ".*"
        elif not inquotes and ch == "?":
            parts[-1] += "."
        elif not inquotes and ch == ".":
            dots += 1
            add = ""
            if tables and len(parts) < 3:
                parts.append("")
            else:
                parts[-1] += ch
        elif ch == "$":
            parts[-1] += "\\$"
        else:
            if (inquotes and ch in "|*+?()[]{}.^$\\") or (ch == "[" and pattern[i + 1 : i + 2] == "]"):
                parts[-1] += "\\"
            parts[-1] += ch
        if dots == 0:
            first += add
        i += 1
    if tables and dots > 2:
        raise UsageError(
            f"improper relation name (too many dotted names): {pattern}",
            hint='--table takes [database.]schema.table; quote a name that holds a dot ("a.b")',
        )
    if not tables and dots:
        raise UsageError(
            f"--schema/--exclude-schema {pattern}: pg_dump refuses a dot in a schema pattern "
            "(cross-database references are not implemented)",
            hint='give the schema alone; quote a schema name that holds a dot ("a.b")',
        )
    regexes = [f"^({p})$" for p in parts]
    if len(regexes) == 1:
        return NamePattern(regexes[0])
    if len(regexes) == 2:
        return NamePattern(regexes[1], schema=regexes[0])
    return NamePattern(regexes[2], schema=regexes[1], database=first)


@dataclass(frozen=True)
class DumpSelection:
    """What pg_dump with the filters moves from one database (definitions and data alike)."""

    database: str
    filters: ObjectFilters
    relations: frozenset[int]  # pg_class oids of the tables, views, sequences … that are moved
    schemas: frozenset[str]  # schemas whose other objects (functions, types, operators …) are moved
    # pg_dump's "include everything", which -n and -t turn off (-N and -T do not): then it leaves out
    # large objects, event triggers, publications, subscriptions, casts and procedural languages.
    include_everything: bool
    errors: tuple[str, ...] = ()  # what makes pg_dump itself fail (a pattern matching nothing …)

    @property
    def large_objects(self) -> bool:
        """Whether large objects are moved (pg_dump -b is not among migrate's options)."""
        return self.include_everything

    def moves_relation(self, oid: int) -> bool:
        return oid in self.relations

    def moves_schema(self, name: str) -> bool:
        return name in self.schemas

    def creates_schema(self, name: str) -> bool:
        """Whether the schema exists on the target: dumped, or public (every new database has it)."""
        return name == "public" or (not self.filters.tables and name in self.schemas)

    def as_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "relations": len(self.relations),
            "schemas": sorted(self.schemas),
            "include_everything": self.include_everything,
            "large_objects": self.large_objects,
            "errors": list(self.errors),
        }


def within_selection(conn: Connection, inventory: DatabaseInventory, selection: DumpSelection) -> DatabaseInventory:
    """``inventory`` with its sizes and lock count those of what the filters move (-n/-N/-t/-T):
    the dump's size, the work directory it needs and pg_dump's locks are those of the move."""
    from dataclasses import replace

    rows = fetch_all(
        conn,
        """
        SELECT c.oid::int8 AS oid, c.relkind::text AS kind,
               CASE WHEN c.relkind IN ('r', 'm') THEN pg_table_size(c.oid) ELSE 0 END AS heap,
               (SELECT COALESCE(sum(pg_relation_size(i.indexrelid)), 0) FROM pg_index i
                 WHERE i.indrelid = c.oid) AS indexes
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'm', 'f', 'S', 'v') AND """
        + USER_NAMESPACES,
    )
    moved = [r for r in rows if selection.moves_relation(int(r["oid"]))]
    return replace(
        inventory,
        relations_to_lock=len(moved),
        table_data_bytes=sum(int(r["heap"]) for r in moved),
        index_bytes=sum(int(r["indexes"]) for r in moved),
        large_object_bytes=inventory.large_object_bytes if selection.large_objects else 0,
    )


# pg_dump never dumps these schemas (selectDumpableNamespace), whatever the filters say.
_SYSTEM_SCHEMAS: LiteralString = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_'"
)


def _matching(conn: Connection, pattern: NamePattern, *, tables: bool, collate: bool) -> set[int]:
    # Every name qualified: this session runs on the role's own search_path, as pg_dump's lookup does.
    # From 12 the regex is matched under the database's collation (pg_dump adds COLLATE pg_catalog.default).
    coll = sql.SQL(" COLLATE pg_catalog.default" if collate else "")
    if tables:
        cond: list[sql.Composable] = [
            sql.SQL("c.relname OPERATOR(pg_catalog.~) {}{}").format(sql.Literal(pattern.name), coll)
        ]
        if pattern.schema is not None:
            cond.append(sql.SQL("n.nspname OPERATOR(pg_catalog.~) {}{}").format(sql.Literal(pattern.schema), coll))
        else:
            cond.append(sql.SQL("pg_catalog.pg_table_is_visible(c.oid)"))
        query = sql.SQL(
            "SELECT c.oid FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n "
            "ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
            'WHERE c.relkind OPERATOR(pg_catalog.=) ANY ({kinds}::pg_catalog."char"[]) AND {cond}'
        ).format(kinds=sql.Literal(list(_PATTERN_RELKINDS)), cond=sql.SQL(" AND ").join(cond))
    else:
        query = sql.SQL(
            "SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.~) {}{}"
        ).format(sql.Literal(pattern.name), coll)
    with conn.cursor() as cur:
        cur.execute(query)
        return {int(r["oid"]) for r in cur.fetchall()}


def _database_part(pattern: NamePattern, database: str, text: str) -> str | None:
    if pattern.database is not None and pattern.database != database:
        return f"cross-database references are not implemented: {text}"
    return None


def dump_selection(conn: Connection, database: str, filters: ObjectFilters) -> DumpSelection:
    """What ``pg_dump`` with ``filters`` moves from the database of ``conn``.

    ``conn`` must be a session on the role's own search_path (not pgshift's pinned one): unqualified
    table patterns match the tables visible there, as in pg_dump.
    """
    collate = conn.info.server_version >= 120000
    errors: list[str] = []

    def expand(patterns: tuple[str, ...], *, tables: bool) -> set[int] | None:
        if not patterns:
            return None
        out: set[int] = set()
        for text in patterns:
            pattern = name_pattern(text, tables=tables)
            problem = _database_part(pattern, database, text)
            if problem:
                errors.append(problem)
                continue
            out |= _matching(conn, pattern, tables=tables, collate=collate)
        return out

    # In pg_dump's order; it stops at the first error, before dumping anything (without
    # --strict-names a list of patterns fails only when all of them match nothing).
    include_schemas = expand(filters.schemas, tables=False)
    if include_schemas is not None and not include_schemas:
        errors.append("no matching schemas were found")
    exclude_schemas = expand(filters.exclude_schemas, tables=False) or set()
    include_tables = expand(filters.tables, tables=True)
    if include_tables is not None and not include_tables:
        errors.append("no matching tables were found")
    exclude_tables = expand(filters.exclude_tables, tables=True) or set()

    rows = fetch_all(
        conn,
        "SELECT n.oid, n.nspname FROM pg_catalog.pg_namespace n WHERE " + _SYSTEM_SCHEMAS,
    )
    every = {int(r["oid"]): str(r["nspname"]) for r in rows}
    # selectDumpableNamespace: with -t no schema's contents are dumped (only the tables named);
    # otherwise -n names the schemas (all by default), and -N takes schemas away.
    if include_tables is not None:
        schema_oids: set[int] = set()
    elif include_schemas is not None:
        schema_oids = (include_schemas & set(every)) - exclude_schemas
    else:
        schema_oids = set(every) - exclude_schemas
    if include_tables is not None:
        # selectDumpableTable: -t decides alone (-n/-N do not apply to the tables it names).
        chosen = include_tables - exclude_tables
    else:
        found = fetch_all(
            conn,
            "SELECT c.oid FROM pg_catalog.pg_class c "
            "WHERE c.relnamespace OPERATOR(pg_catalog.=) ANY (%s::pg_catalog.oid[])",
            (sorted(schema_oids),),
        )
        chosen = {int(r["oid"]) for r in found} - exclude_tables
    # A sequence owned by a moved table is moved with it (pg_dump's getOwnedSeqs), even under -t.
    owned = fetch_all(
        conn,
        "SELECT d.objid AS oid, d.refobjid AS owner FROM pg_catalog.pg_depend d "
        "JOIN pg_catalog.pg_class s ON s.oid OPERATOR(pg_catalog.=) d.objid "
        "WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass "
        "AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass "
        "AND s.relkind OPERATOR(pg_catalog.=) 'S' AND d.deptype OPERATOR(pg_catalog.=) ANY ('{a,i}')",
    )
    chosen |= {int(r["oid"]) for r in owned if int(r["owner"]) in chosen}
    return DumpSelection(
        database=database,
        filters=filters,
        relations=frozenset(chosen),
        schemas=frozenset(every[o] for o in schema_oids if o in every),
        include_everything=not (filters.schemas or filters.tables),
        errors=tuple(errors[:1]),
    )
