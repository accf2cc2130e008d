"""SQL a migration reads from the source and applies to the target.

Reading: password hashes, database and tablespace grants, what the connecting role may not read,
connection usage. Writing: roles, memberships, role and database settings, tablespaces, CREATE
DATABASE from template0 with the source's encoding and locale, grants, comments, DROP DATABASE.

Every statement is composed with ``psycopg.sql`` (identifiers quoted by ``sql.Identifier``,
values by ``sql.Literal``), so names with spaces, quotes, semicolons or non-ASCII letters are safe.
A ``Statement`` carries its display form with secrets (password hashes) redacted, for the log.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, LiteralString

from psycopg import sql

from pgshift.catalog.cluster import DatabaseInfo, Membership, RoleInfo, TablespaceInfo
from pgshift.catalog.session import Connection, fetch_all, fetch_one, printable, server_version
from pgshift.process import REDACTED
from pgshift.version import PgVersion


@dataclass(frozen=True)
class Statement:
    """One SQL statement for the target, and what the log may show of it."""

    query: sql.Composed | sql.SQL
    secrets: tuple[str, ...] = field(default=(), repr=False)
    # CREATE/DROP DATABASE and CREATE TABLESPACE cannot run inside a transaction block.
    no_transaction: bool = False

    def display(self) -> str:
        try:
            text = self.query.as_string(None)
        except UnicodeError:  # encoding a lone surrogate, or decoding as UTF-8 the bytes it became
            # A name held undecoded (bytes not valid in its database's encoding, see session.py):
            # composed by hand for the log, each such byte shown as \xNN.
            text = printable(_compose_for_display(self.query))
        for secret in self.secrets:
            text = text.replace(sql.Literal(secret).as_string(None), f"'{REDACTED}'")
        return text


def _compose_for_display(part: sql.Composable) -> str:
    # psycopg keeps each part's value in ``_obj`` (no public accessor for a Composed's parts).
    if isinstance(part, sql.Composed):
        return "".join(_compose_for_display(p) for p in part._obj)
    if isinstance(part, sql.SQL):
        return part.as_string(None)
    if isinstance(part, sql.Identifier):
        return ".".join('"' + name.replace('"', '""') + '"' for name in part._obj)
    if isinstance(part, sql.Literal) and isinstance(part._obj, str):
        return "'" + part._obj.replace("'", "''") + "'"
    return part.as_string(None)


def execute(conn: Connection, statement: Statement) -> None:
    with conn.cursor() as cur:
        cur.execute(statement.query)


# --- reading -------------------------------------------------------------------------------------


def bootstrap_superuser(conn: Connection) -> str:
    """The role created by initdb (OID 10): never recreated or altered by a migration."""
    row = fetch_one(conn, "SELECT rolname FROM pg_roles WHERE oid = 10")
    assert row is not None
    return str(row["rolname"])


def role_passwords(conn: Connection) -> dict[str, str]:
    """Password hashes by role (needs SELECT on pg_authid: superuser)."""
    rows = fetch_all(
        conn, "SELECT rolname, rolpassword FROM pg_authid WHERE rolpassword IS NOT NULL AND rolname !~ '^pg_'"
    )
    return {r["rolname"]: r["rolpassword"] for r in rows}


def role_names(conn: Connection) -> set[str]:
    return {r["rolname"] for r in fetch_all(conn, "SELECT rolname FROM pg_roles")}


def role_can_bypass_rls(conn: Connection) -> bool:
    row = fetch_one(conn, "SELECT rolsuper OR rolbypassrls AS ok FROM pg_roles WHERE rolname = current_user")
    return bool(row and row["ok"])


@dataclass(frozen=True)
class Grant:
    """One privilege of an ACL, from ``aclexplode``. ``grantee`` None means PUBLIC."""

    grantee: str | None
    privilege: str
    grantable: bool

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


_DATABASE_ACL: LiteralString = """
    SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END AS grantee,
           a.privilege_type, a.is_grantable
    FROM pg_database d, aclexplode(d.datacl) a
    WHERE d.datname = %s AND d.datacl IS NOT NULL
    ORDER BY 1 NULLS FIRST, 2
"""


def database_grants(conn: Connection, dbname: str) -> list[Grant]:
    """The explicit ACL of a database (empty when it has the default privileges)."""
    return [
        Grant(r["grantee"], r["privilege_type"], r["is_grantable"]) for r in fetch_all(conn, _DATABASE_ACL, (dbname,))
    ]


def parameter_grants(conn: Connection) -> list[tuple[str, Grant]]:
    """GRANT SET / ALTER SYSTEM ON PARAMETER (pg_parameter_acl, new in 15): (parameter, grant)."""
    if server_version(conn).major < 15:
        return []
    rows = fetch_all(
        conn,
        """
        SELECT p.parname, CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END AS grantee,
               a.privilege_type, a.is_grantable
        FROM pg_parameter_acl p, aclexplode(p.paracl) a
        WHERE p.paracl IS NOT NULL
        ORDER BY 1, 2 NULLS FIRST, 3
        """,
    )
    return [(r["parname"], Grant(r["grantee"], r["privilege_type"], r["is_grantable"])) for r in rows]


def grant_on_parameter(name: str, grant: Grant) -> Statement:
    grantee: sql.Composable = sql.SQL("PUBLIC") if grant.grantee is None else sql.Identifier(grant.grantee)
    query = sql.SQL("GRANT {} ON PARAMETER {} TO {}").format(
        sql.SQL(_PARAMETER_PRIVILEGES[grant.privilege]), sql.Identifier(*name.split(".")), grantee
    )
    if grant.grantable:
        query += sql.SQL(" WITH GRANT OPTION")
    return Statement(query)


_PARAMETER_PRIVILEGES = {"SET": "SET", "ALTER SYSTEM": "ALTER SYSTEM"}


def tablespace_grants(conn: Connection, name: str) -> list[Grant]:
    rows = fetch_all(
        conn,
        """
        SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END AS grantee,
               a.privilege_type, a.is_grantable
        FROM pg_tablespace t, aclexplode(t.spcacl) a
        WHERE t.spcname = %s AND t.spcacl IS NOT NULL
        ORDER BY 1 NULLS FIRST, 2
        """,
        (name,),
    )
    return [Grant(r["grantee"], r["privilege_type"], r["is_grantable"]) for r in rows]


@dataclass(frozen=True)
class DatabaseContent:
    """What the preflight needs to know of one source database, read while connected to it."""

    tables: int  # ordinary, partitioned tables and materialized views
    large_objects: int
    unreadable: tuple[str, ...]  # relations or schemas the connecting role may not read
    rls_tables: tuple[str, ...]  # tables with row-level security (a problem without BYPASSRLS)


def database_content(conn: Connection) -> DatabaseContent:
    counts = fetch_one(
        conn,
        """
        SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                  AND n.nspname !~ '^pg_toast') AS tables,
               (SELECT count(*) FROM pg_largeobject_metadata) AS large_objects
        """,
    )
    assert counts is not None
    unreadable = fetch_all(
        conn,
        """
        SELECT format('schema %I', n.nspname) AS what FROM pg_namespace n
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'
          AND NOT has_schema_privilege(n.oid, 'USAGE')
        UNION ALL
        SELECT format('%s %I.%I', CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'm' THEN 'materialized view'
                                                 ELSE 'table' END, n.nspname, c.relname)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'm', 'S') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname !~ '^pg_(toast|temp)' AND NOT has_table_privilege(c.oid, 'SELECT')
        ORDER BY 1 LIMIT 50
        """,
    )
    rls = fetch_all(
        conn,
        """
        SELECT format('%I.%I', n.nspname, c.relname) AS what
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relrowsecurity AND c.relkind IN ('r', 'p') ORDER BY 1 LIMIT 50
        """,
    )
    return DatabaseContent(
        tables=int(counts["tables"]),
        large_objects=int(counts["large_objects"]),
        unreadable=tuple(r["what"] for r in unreadable),
        rls_tables=tuple(r["what"] for r in rls),
    )


@dataclass(frozen=True)
class ConnectionUsage:
    max_connections: int
    reserved: int  # superuser_reserved_connections (+ reserved_connections on 16+)
    in_use: int

    def available(self, superuser: bool) -> int:
        limit = self.max_connections - (0 if superuser else self.reserved)
        return limit - self.in_use


def connection_usage(conn: Connection) -> ConnectionUsage:
    version = server_version(conn)
    # 16 added reserved_connections (for roles with pg_use_reserved_connections).
    reserved: LiteralString = (
        "current_setting('superuser_reserved_connections')::int + current_setting('reserved_connections')::int"
        if version.major >= 16
        else "current_setting('superuser_reserved_connections')::int"
    )
    query: LiteralString = (
        "SELECT current_setting('max_connections')::int AS max, "
        + reserved
        + """ AS reserved,
               (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS in_use"""
    )
    row = fetch_one(conn, query)
    assert row is not None
    return ConnectionUsage(int(row["max"]), int(row["reserved"]), int(row["in_use"]))


def database_names(conn: Connection) -> set[str]:
    return {r["datname"] for r in fetch_all(conn, "SELECT datname FROM pg_database")}


# A database pgshift is still filling carries this comment until its last step replaces it with the
# source's own comment, so that any later run, on any machine, can tell it from a user's database,
# and which command continues it (a migration or a restore from a backup set).
IN_PROGRESS_MARK = "pgshift: {operation} in progress, not complete (run {run_id}, work directory {workdir})"
_MARK_RUN = re.compile(
    r"^pgshift: (?P<operation>migration|restore) in progress, not complete "
    r"\(run (?P<run>[0-9a-f]+), work directory (?P<dir>.*)\)$"
)
_RESUMED_BY = {"migration": "migrate", "restore": "restore"}


@dataclass(frozen=True)
class InProgressMark:
    """The mark of a half-done database on the target: which run left it, and where its journal is."""

    run_id: str
    workdir: str
    operation: str = "migration"

    @property
    def resume_command(self) -> str:
        return f"pgshift {_RESUMED_BY[self.operation]} --resume {self.workdir}"


def in_progress_marks(conn: Connection) -> dict[str, InProgressMark]:
    """Databases on this server that a pgshift migration created and has not finished."""
    rows = fetch_all(
        conn,
        "SELECT datname, shobj_description(oid, 'pg_database') AS comment FROM pg_database "
        "WHERE shobj_description(oid, 'pg_database') LIKE 'pgshift: %'",
    )
    out = {}
    for r in rows:
        m = _MARK_RUN.match(r["comment"] or "")
        if m:
            out[r["datname"]] = InProgressMark(m["run"], m["dir"], m["operation"])
    return out


def database_comment(conn: Connection, name: str) -> str | None:
    row = fetch_one(
        conn, "SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = %s", (name,)
    )
    return row["comment"] if row else None


def mark_in_progress(name: str, run_id: str, workdir: str, operation: str = "migration") -> Statement:
    assert operation in _RESUMED_BY
    text = IN_PROGRESS_MARK.format(operation=operation, run_id=run_id, workdir=workdir)
    return Statement(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(text)))


def clear_comment_on_database(name: str) -> Statement:
    return Statement(sql.SQL("COMMENT ON DATABASE {} IS NULL").format(sql.Identifier(name)))


def dump_evidence(conn: Connection) -> str:
    """A digest of what a dump of this database depends on, to tell whether an old dump is still true.

    The catalog part changes with any DDL, owner, grant or comment change; the statistics part with
    any row inserted, updated or deleted in a user table (per-table counters, flushed within about a
    second of each commit; the catalogs' own counters move with autovacuum's ANALYZE, so they are left
    out). Read-only sessions (check, verify) change neither.
    """
    row = fetch_one(
        conn,
        """
        SELECT md5(concat_ws('|',
            (SELECT string_agg(concat_ws(':', c.oid, c.relname, c.relnamespace, c.relkind, c.relowner,
                                         c.relnatts, c.relfilenode, c.relacl::text), ',' ORDER BY c.oid)
               FROM pg_class c),
            (SELECT string_agg(concat_ws(':', a.attrelid, a.attnum, a.attname, a.atttypid, a.atttypmod,
                                         a.attnotnull, a.attisdropped, a.attacl::text), ','
                               ORDER BY a.attrelid, a.attnum)
               FROM pg_attribute a WHERE a.attnum > 0),
            (SELECT string_agg(concat_ws(':', p.oid, p.proname, p.proowner, md5(p.prosrc), p.proacl::text,
                                         p.proconfig::text), ',' ORDER BY p.oid) FROM pg_proc p),
            (SELECT string_agg(concat_ws(':', t.oid, t.typname, t.typowner), ',' ORDER BY t.oid) FROM pg_type t),
            (SELECT string_agg(concat_ws(':', n.oid, n.nspname, n.nspowner, n.nspacl::text), ',' ORDER BY n.oid)
               FROM pg_namespace n),
            (SELECT string_agg(concat_ws(':', o.oid, o.conname, o.contype, o.convalidated), ',' ORDER BY o.oid)
               FROM pg_constraint o),
            (SELECT string_agg(concat_ws(':', g.oid, g.tgname, g.tgenabled), ',' ORDER BY g.oid) FROM pg_trigger g),
            (SELECT string_agg(concat_ws(':', r.oid, r.rulename, r.ev_enabled), ',' ORDER BY r.oid) FROM pg_rewrite r),
            (SELECT string_agg(concat_ws(':', e.oid, e.extname, e.extversion), ',' ORDER BY e.oid) FROM pg_extension e),
            (SELECT string_agg(concat_ws(':', d.objoid, d.classoid, d.objsubid, md5(d.description)), ','
                               ORDER BY d.objoid, d.classoid, d.objsubid) FROM pg_description d),
            (SELECT count(*) FROM pg_largeobject_metadata),
            (SELECT sum(n_tup_ins + n_tup_upd + n_tup_del) FROM pg_stat_user_tables)
        )) AS evidence
        """,
    )
    assert row is not None
    return str(row["evidence"])


def database_is_empty(conn: Connection) -> bool:
    """No user relation, function, type or extension beyond plpgsql: what a fresh ``postgres`` holds."""
    row = fetch_one(
        conn,
        """
        SELECT NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                           WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_')
           AND NOT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                           WHERE n.nspname NOT IN ('pg_catalog', 'information_schema'))
           AND NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname <> 'plpgsql') AS empty
        """,
    )
    return bool(row and row["empty"])


# --- settings ------------------------------------------------------------------------------------

# Parameters whose value is a list; pg_dumpall quotes each element (GUC_LIST_QUOTE).
LIST_SETTINGS = frozenset(
    {
        "search_path",
        "temp_tablespaces",
        "session_preload_libraries",
        "shared_preload_libraries",
        "local_preload_libraries",
        "unix_socket_directories",
    }
)


def split_list_setting(value: str) -> list[str]:
    """Split a stored list value (``a, "b c"``) into its elements, as the server's SplitGUCList does."""
    items: list[str] = []
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i] in " \t\n":
            i += 1
        if i >= n:
            break
        if value[i] == '"':
            i += 1
            buf = []
            while i < n:
                if value[i] == '"':
                    if i + 1 < n and value[i + 1] == '"':
                        buf.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                buf.append(value[i])
                i += 1
            items.append("".join(buf))
        else:
            start = i
            while i < n and value[i] != ",":
                i += 1
            items.append(value[start:i].strip())
        while i < n and value[i] in " \t\n":
            i += 1
        if i < n and value[i] == ",":
            i += 1
    return items


def setting_clause(setting: str) -> sql.Composed:
    """``name TO 'value'`` for a stored ``name=value``; list parameters get one literal per element."""
    name, _, value = setting.partition("=")
    ident = sql.SQL(".").join(sql.Identifier(part) for part in name.split("."))
    if name.lower() in LIST_SETTINGS:
        elements = split_list_setting(value)
        values = sql.SQL(", ").join(sql.Literal(e) for e in elements) if elements else sql.Literal("")
        return sql.SQL("{} TO {}").format(ident, values)
    return sql.SQL("{} TO {}").format(ident, sql.Literal(value))


# --- roles ---------------------------------------------------------------------------------------

# Attributes a non-superuser cannot grant (managed services: RDS, Cloud SQL, Azure).
SUPERUSER_ONLY_ATTRIBUTES = ("SUPERUSER", "REPLICATION", "BYPASSRLS")


def role_attributes(role: RoleInfo) -> list[str]:
    attrs = [
        "SUPERUSER" if role.superuser else "NOSUPERUSER",
        "INHERIT" if role.inherit else "NOINHERIT",
        "CREATEROLE" if role.createrole else "NOCREATEROLE",
        "CREATEDB" if role.createdb else "NOCREATEDB",
        "LOGIN" if role.login else "NOLOGIN",
        "REPLICATION" if role.replication else "NOREPLICATION",
        "BYPASSRLS" if role.bypassrls else "NOBYPASSRLS",
    ]
    return attrs


def create_role(role: RoleInfo, *, password: str | None, drop: Sequence[str] = ()) -> Statement:
    """CREATE ROLE with the source's attributes, minus the ``drop`` ones (turned into their NO form)."""
    parts: list[sql.Composable] = [sql.SQL("CREATE ROLE {} WITH").format(sql.Identifier(role.name))]
    for attr in role_attributes(role):
        if attr in drop:
            continue
        parts.append(sql.SQL(attr))
    if role.connlimit != -1:
        parts.append(sql.SQL("CONNECTION LIMIT {}").format(sql.Literal(role.connlimit)))
    if role.valid_until is not None:
        parts.append(sql.SQL("VALID UNTIL {}").format(sql.Literal(role.valid_until)))
    secrets: tuple[str, ...] = ()
    if password is not None:
        parts.append(sql.SQL("PASSWORD {}").format(sql.Literal(password)))
        secrets = (password,)
    return Statement(sql.SQL(" ").join(parts), secrets=secrets)


def comment_on_role(name: str, comment: str) -> Statement:
    return Statement(sql.SQL("COMMENT ON ROLE {} IS {}").format(sql.Identifier(name), sql.Literal(comment)))


def alter_role_set(name: str, setting: str, database: str | None = None) -> Statement:
    if database is None:
        query = sql.SQL("ALTER ROLE {} SET {}").format(sql.Identifier(name), setting_clause(setting))
    else:
        query = sql.SQL("ALTER ROLE {} IN DATABASE {} SET {}").format(
            sql.Identifier(name), sql.Identifier(database), setting_clause(setting)
        )
    return Statement(query)


def grant_membership(m: Membership, target: PgVersion) -> Statement:
    options: list[sql.Composable] = []
    if target.major >= 16:
        # 16: GRANT … WITH ADMIN/INHERIT/SET options. Before 16 only WITH ADMIN OPTION exists; a
        # membership's INHERIT then follows the member's role attribute, which was copied.
        options.append(sql.SQL("ADMIN {}").format(sql.SQL("TRUE" if m.admin_option else "FALSE")))
        if m.inherit_option is not None:
            options.append(sql.SQL("INHERIT {}").format(sql.SQL("TRUE" if m.inherit_option else "FALSE")))
        if m.set_option is not None:
            options.append(sql.SQL("SET {}").format(sql.SQL("TRUE" if m.set_option else "FALSE")))
        tail = sql.SQL(" WITH ") + sql.SQL(", ").join(options)
    else:
        tail = sql.Composed([sql.SQL(" WITH ADMIN OPTION" if m.admin_option else "")])
    return Statement(sql.SQL("GRANT {} TO {}").format(sql.Identifier(m.role), sql.Identifier(m.member)) + tail)


def grant_role_to(role: str, member: str) -> Statement:
    """Membership without options: before 16, what lets a CREATEROLE role make ``role`` an owner."""
    return Statement(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role), sql.Identifier(member)))


# --- tablespaces ---------------------------------------------------------------------------------


def create_tablespace(ts: TablespaceInfo, location: str, owner: str | None) -> Statement:
    query = sql.SQL("CREATE TABLESPACE {}").format(sql.Identifier(ts.name))
    if owner:
        query += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
    query += sql.SQL(" LOCATION {}").format(sql.Literal(location))
    return Statement(query, no_transaction=True)


def comment_on_tablespace(name: str, comment: str) -> Statement:
    return Statement(sql.SQL("COMMENT ON TABLESPACE {} IS {}").format(sql.Identifier(name), sql.Literal(comment)))


def alter_tablespace_options(name: str, options: Iterable[str]) -> Statement | None:
    items = [o.partition("=") for o in options]
    if not items:
        return None
    pairs = sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(k), sql.Literal(v)) for k, _, v in items)
    return Statement(sql.SQL("ALTER TABLESPACE {} SET ({})").format(sql.Identifier(name), pairs))


def grant_on(kind: str, name: str, grant: Grant) -> Statement:
    """GRANT privilege ON DATABASE/TABLESPACE name TO grantee [WITH GRANT OPTION]."""
    grantee: sql.Composable = sql.SQL("PUBLIC") if grant.grantee is None else sql.Identifier(grant.grantee)
    query = sql.SQL("GRANT {} ON {} {} TO {}").format(
        sql.SQL(_PRIVILEGES[grant.privilege]), sql.SQL(_OBJECT_KINDS[kind]), sql.Identifier(name), grantee
    )
    if grant.grantable:
        query += sql.SQL(" WITH GRANT OPTION")
    return Statement(query)


def revoke_all_on(kind: str, name: str, grantee: str | None) -> Statement:
    who: sql.Composable = sql.SQL("PUBLIC") if grantee is None else sql.Identifier(grantee)
    return Statement(
        sql.SQL("REVOKE ALL ON {} {} FROM {}").format(sql.SQL(_OBJECT_KINDS[kind]), sql.Identifier(name), who)
    )


_OBJECT_KINDS = {"database": "DATABASE", "tablespace": "TABLESPACE"}
_PRIVILEGES = {"CREATE": "CREATE", "TEMPORARY": "TEMPORARY", "CONNECT": "CONNECT"}


# --- databases -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateDatabase:
    """CREATE DATABASE for the target, and what had to be left out of it (warnings)."""

    statement: Statement
    warnings: tuple[str, ...]


def create_database(
    db: DatabaseInfo,
    name: str,
    target: PgVersion,
    *,
    owner: str | None,
    tablespace: str | None,
) -> CreateDatabase:
    """CREATE DATABASE ``name`` from template0 with ``db``'s encoding, locale and provider."""
    warnings: list[str] = []
    parts: list[sql.Composable] = [
        sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING {}").format(
            sql.Identifier(name), sql.Literal(db.encoding)
        )
    ]
    provider = db.locale_provider
    if provider == "icu" and target.major < 15:
        # 15 added per-database ICU (LOCALE_PROVIDER icu); older targets only have libc.
        warnings.append(
            f"database {db.name!r} uses the ICU locale {db.icu_locale!r}; PostgreSQL {target.major_label} has "
            f"no per-database ICU, so {name!r} gets the libc locale {db.collate!r}"
        )
        provider = "libc"
    if provider == "builtin" and target.major < 17:
        # 17 added the builtin locale provider.
        warnings.append(
            f"database {db.name!r} uses the builtin locale provider, which PostgreSQL {target.major_label} "
            f"lacks; {name!r} gets the libc locale {db.collate!r}"
        )
        provider = "libc"
    if target.major >= 15:
        # 15 added LOCALE_PROVIDER (and ICU_LOCALE); 17 added the builtin provider (BUILTIN_LOCALE).
        parts.append(sql.SQL("LOCALE_PROVIDER {}").format(sql.SQL(provider)))
    parts.append(sql.SQL("LC_COLLATE {} LC_CTYPE {}").format(sql.Literal(db.collate), sql.Literal(db.ctype)))
    if provider == "icu" and db.icu_locale:
        parts.append(sql.SQL("ICU_LOCALE {}").format(sql.Literal(db.icu_locale)))
        if db.icu_rules and target.major >= 16:
            # 16 added ICU_RULES.
            parts.append(sql.SQL("ICU_RULES {}").format(sql.Literal(db.icu_rules)))
    if provider == "builtin" and db.icu_locale:
        parts.append(sql.SQL("BUILTIN_LOCALE {}").format(sql.Literal(db.icu_locale)))
    if owner:
        parts.append(sql.SQL("OWNER {}").format(sql.Identifier(owner)))
    if tablespace and tablespace != "pg_default":
        parts.append(sql.SQL("TABLESPACE {}").format(sql.Identifier(tablespace)))
    if db.connlimit not in (-1, -2):
        parts.append(sql.SQL("CONNECTION LIMIT {}").format(sql.Literal(db.connlimit)))
    return CreateDatabase(Statement(sql.SQL(" ").join(parts), no_transaction=True), tuple(warnings))


def comment_on_database(name: str, comment: str) -> Statement:
    return Statement(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(comment)))


def alter_database_set(name: str, setting: str) -> Statement:
    return Statement(sql.SQL("ALTER DATABASE {} SET {}").format(sql.Identifier(name), setting_clause(setting)))


def drop_database(name: str, target: PgVersion) -> Statement:
    if target.major >= 13:
        # 13 added DROP DATABASE … WITH (FORCE), which ends the database's sessions first.
        query = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    else:
        query = sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))
    return Statement(query, no_transaction=True)


def terminate_sessions(dbname: str) -> Statement:
    """End other sessions on ``dbname`` (before DROP DATABASE on servers without WITH (FORCE))."""
    return Statement(
        sql.SQL(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {} AND pid <> pg_backend_pid()"
        ).format(sql.Literal(dbname))
    )


def trigger_labels(conn: Connection) -> set[str]:
    """ "SCHEMA TABLE TRIGGER" of each trigger made in this database (not a partition's clone of its
    parent's, nor a constraint's own): how pg_restore's listing names a TRIGGER entry, before its owner.

    Version notes: a partition's clone of its parent's trigger is internal before 13 and has
    ``tgparentid`` from 13."""
    clone = "t.tgparentid <> 0" if server_version(conn).major >= 13 else "false"
    rows = fetch_all(
        conn,
        "SELECT n.nspname || ' ' || c.relname || ' ' || t.tgname AS label FROM pg_catalog.pg_trigger t"
        " JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        f" WHERE NOT t.tgisinternal AND NOT ({clone})",
    )
    return {r["label"] for r in rows}


def other_sessions(conn: Connection, dbname: str) -> int:
    """Sessions on ``dbname`` other than this one (e.g. a killed pg_restore's backends, still at work)."""
    row = fetch_one(
        conn,
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
        (dbname,),
    )
    return int(row["n"]) if row else 0


def create_extension(name: str, schema: str) -> Statement:
    return Statement(
        sql.SQL("CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {}").format(sql.Identifier(name), sql.Identifier(schema))
    )


def schema_exists(conn: Connection, name: str) -> bool:
    return fetch_one(conn, "SELECT 1 AS x FROM pg_namespace WHERE nspname = %s", (name,)) is not None


def fill_generated_as_plain(
    schema: str, table: str, columns: Sequence[tuple[str, str]], *, superuser: bool
) -> Statement:
    """The values of columns restored plain in place of generated ones: ``(column, expression)`` as the
    source prints the expression. Triggers stay quiet, as ``pg_restore --disable-triggers`` keeps them."""
    target = sql.Identifier(schema, table)
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(column), sql.SQL("(" + expression + ")"))
        for column, expression in columns
    )
    update = sql.SQL("UPDATE ONLY {} SET {}").format(target, assignments)
    if superuser:
        return Statement(
            sql.SQL("SET session_replication_role = replica; {}; RESET session_replication_role").format(update)
        )
    return Statement(
        sql.SQL("ALTER TABLE ONLY {t} DISABLE TRIGGER USER; {u}; ALTER TABLE ONLY {t} ENABLE TRIGGER USER").format(
            t=target, u=update
        )
    )


def create_rule_as(definition: str, new_name: str) -> Statement:
    """``pg_get_ruledef``'s CREATE RULE of a rule named ``_RETURN``, under ``new_name``."""
    head = 'CREATE RULE "_RETURN" AS'
    if not definition.startswith(head):
        raise ValueError(f"not the definition of a rule named _RETURN: {definition[:60]!r}")
    body = definition[len(head) :].rstrip().rstrip(";")
    return Statement(sql.SQL("CREATE RULE {} AS").format(sql.Identifier(new_name)) + sql.SQL(body))


def analyze() -> Statement:
    return Statement(sql.SQL("ANALYZE"))


def analyze_each(conn: Connection) -> list[tuple[tuple[str, str], Statement]]:
    """``ANALYZE`` of the database table by table, largest first, for several sessions to share (as
    ``vacuumdb --analyze-only -j N`` does): every table, materialized view and partitioned table a
    database-wide ANALYZE reaches, the catalogs included."""
    rows = fetch_all(
        conn,
        """
        SELECT n.nspname AS schema, c.relname AS name
        FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'm', 'p') AND c.relpersistence <> 't'
        ORDER BY c.relpages DESC, 1, 2
        """,
    )
    return [
        (
            (r["schema"], r["name"]),
            Statement(sql.SQL("ANALYZE {}.{}").format(sql.Identifier(r["schema"]), sql.Identifier(r["name"]))),
        )
        for r in rows
    ]


def truncate_only(schema: str, name: str) -> Statement:
    return Statement(sql.SQL("TRUNCATE ONLY {}.{}").format(sql.Identifier(schema), sql.Identifier(name)))


# --- evidence of a restore cut short -------------------------------------------------------------


@dataclass(frozen=True)
class ObjectAddress:
    """An object as ``pg_identify_object_as_address`` names it: the same on any server that has it."""

    type: str
    names: tuple[str, ...]
    args: tuple[str, ...]


def object_addresses(conn: Connection, objects: Sequence[tuple[int, int]]) -> dict[tuple[int, int], ObjectAddress]:
    """Addresses of (catalog oid, object oid) pairs of this server (the source a dump came from)."""
    if not objects:
        return {}
    rows = fetch_all(
        conn,
        "SELECT u.c::int AS c, u.o::bigint AS o, a.type, a.object_names, a.object_args"
        " FROM unnest(%s::oid[], %s::oid[]) AS u(c, o),"
        " LATERAL pg_identify_object_as_address(u.c, u.o, 0) AS a"
        " WHERE a.type IS NOT NULL",
        ([c for c, _ in objects], [o for _, o in objects]),
    )
    return {
        (r["c"], r["o"]): ObjectAddress(r["type"], tuple(r["object_names"] or ()), tuple(r["object_args"] or ()))
        for r in rows
    }


@dataclass(frozen=True)
class Presence:
    found: bool
    has_rows: bool = False  # tables only
    schema: str = ""
    name: str = ""


_PROBE_FUNCTION = """
CREATE OR REPLACE FUNCTION pg_temp.pgshift_probe(t text, n text[], a text[], want_rows boolean,
    OUT present boolean, OUT has_rows boolean, OUT nsp text, OUT rel text)
LANGUAGE plpgsql AS $probe$
DECLARE
    addr record;
BEGIN
    present := false; has_rows := false;
    BEGIN
        SELECT * INTO addr FROM pg_get_object_address(t, n, a);
    EXCEPTION WHEN others THEN
        RETURN;
    END;
    present := true;
    IF want_rows THEN
        SELECT c.relname, s.nspname INTO rel, nsp
          FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace WHERE c.oid = addr.objid;
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM ONLY %I.%I)', nsp, rel) INTO has_rows;
    END IF;
END
$probe$
"""


def probe_objects(conn: Connection, addresses: Mapping[int, tuple[ObjectAddress, bool]]) -> dict[int, Presence]:
    """Which of these objects this server has (and, for tables asked so, whether they hold rows).

    Keyed by the caller's ids. One round trip: a temporary function catches each lookup's error.
    """
    if not addresses:
        return {}
    with conn.cursor() as cur:
        cur.execute(_PROBE_FUNCTION)
    payload = {
        str(key): {"t": a.type, "n": list(a.names), "a": list(a.args), "r": rows}
        for key, (a, rows) in addresses.items()
    }
    rows = fetch_all(
        conn,
        "SELECT j.key::bigint AS k, p.present, p.has_rows, p.nsp, p.rel FROM jsonb_each(%s::jsonb) AS j,"
        " LATERAL pg_temp.pgshift_probe(j.value->>'t',"
        " ARRAY(SELECT jsonb_array_elements_text(j.value->'n')),"
        " ARRAY(SELECT jsonb_array_elements_text(j.value->'a')), (j.value->>'r')::boolean) AS p",
        (json.dumps(payload),),
    )
    return {
        int(r["k"]): Presence(bool(r["present"]), bool(r["has_rows"]), r["nsp"] or "", r["rel"] or "") for r in rows
    }
