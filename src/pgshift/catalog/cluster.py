"""Cluster-wide facts: the server, its databases, roles, memberships, tablespaces, extensions.

Shared by check (inventory), migrate (preflight, globals, createdb) and verify (globals and
database properties). Every version gate names the PostgreSQL change it follows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, LiteralString

from pgshift.catalog.session import Connection, fetch_all, fetch_one, server_version
from pgshift.version import PgVersion

# Settings worth knowing on both sides of a move.
INTERESTING_SETTINGS: tuple[str, ...] = (
    "server_encoding",
    "max_connections",
    "superuser_reserved_connections",
    "max_locks_per_transaction",
    "max_worker_processes",
    "max_parallel_workers",
    "password_encryption",
    "shared_preload_libraries",
    "default_tablespace",
    "TimeZone",
    "DateStyle",
    "standard_conforming_strings",
    "data_checksums",
    "wal_level",
)


@dataclass(frozen=True)
class ServerInfo:
    version: PgVersion
    version_text: str
    current_user: str
    is_superuser: bool
    can_create_db: bool
    can_create_role: bool
    in_recovery: bool
    settings: dict[str, str]
    # Managed services (RDS, Cloud SQL, Azure) grant their admin role membership in such a role.
    member_of: tuple[str, ...] = ()
    # Together these tell one running server from another, whatever host names point at it:
    # initdb's system identifier (None when pg_control_system() is not granted) and the start time.
    system_identifier: str | None = None
    started_at: str = ""

    def same_server_as(self, other: ServerInfo) -> bool:
        if self.system_identifier is None or other.system_identifier is None:
            return False
        return (self.system_identifier, self.started_at) == (other.system_identifier, other.started_at)

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": str(self.version),
            "version_num": self.version.num,
            "version_text": self.version_text,
            "current_user": self.current_user,
            "is_superuser": self.is_superuser,
            "can_create_db": self.can_create_db,
            "can_create_role": self.can_create_role,
            "in_recovery": self.in_recovery,
            "settings": self.settings,
            "member_of": list(self.member_of),
            "system_identifier": self.system_identifier,
            "started_at": self.started_at,
        }


def server_info(conn: Connection) -> ServerInfo:
    version = server_version(conn)
    row = fetch_one(
        conn,
        """
        SELECT version() AS version_text, current_user AS current_user, r.rolsuper, r.rolcreatedb,
               r.rolcreaterole, pg_is_in_recovery() AS in_recovery,
               ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                     WHERE m.member = r.oid ORDER BY 1) AS member_of,
               -- pg_control_system() exists since 9.6; some managed services revoke it.
               CASE WHEN has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE')
                    THEN (SELECT system_identifier::text FROM pg_control_system()) END AS system_identifier,
               pg_postmaster_start_time()::text AS started_at
        FROM pg_roles r WHERE r.rolname = current_user
        """,
    )
    assert row is not None
    settings = {
        r["name"]: r["setting"]
        for r in fetch_all(
            conn,
            "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
            (list(INTERESTING_SETTINGS),),
        )
    }
    return ServerInfo(
        version=version,
        version_text=row["version_text"],
        current_user=row["current_user"],
        is_superuser=bool(row["rolsuper"]),
        can_create_db=bool(row["rolcreatedb"] or row["rolsuper"]),
        can_create_role=bool(row["rolcreaterole"] or row["rolsuper"]),
        in_recovery=bool(row["in_recovery"]),
        settings=settings,
        member_of=tuple(row["member_of"]),
        system_identifier=row["system_identifier"],
        started_at=row["started_at"],
    )


@dataclass(frozen=True)
class DatabaseInfo:
    name: str
    owner: str
    encoding: str
    collate: str
    ctype: str
    locale_provider: str  # "libc", "icu" or "builtin"
    icu_locale: str | None  # ICU locale, or the builtin provider's locale (17+)
    icu_rules: str | None
    connlimit: int
    tablespace: str
    allow_connections: bool
    is_template: bool
    size_bytes: int | None  # None when the connecting role may not see it
    comment: str | None
    acl: tuple[str, ...]  # aclitem texts; empty tuple means the default privileges
    acl_is_default: bool
    settings: tuple[str, ...] = field(default=())  # ALTER DATABASE … SET, as "name=value"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "owner": self.owner,
            "encoding": self.encoding,
            "collate": self.collate,
            "ctype": self.ctype,
            "locale_provider": self.locale_provider,
            "icu_locale": self.icu_locale,
            "icu_rules": self.icu_rules,
            "connlimit": self.connlimit,
            "tablespace": self.tablespace,
            "allow_connections": self.allow_connections,
            "is_template": self.is_template,
            "size_bytes": self.size_bytes,
            "comment": self.comment,
            "acl": list(self.acl),
            "acl_is_default": self.acl_is_default,
            "settings": list(self.settings),
        }


_PROVIDERS = {"c": "libc", "i": "icu", "b": "builtin", "d": "libc"}


def _database_locale_columns(version: PgVersion) -> LiteralString:
    # 15 added datlocprovider and daticulocale; 16 added daticurules; 17 renamed daticulocale to
    # datlocale (shared with the new builtin provider).
    if version.major >= 17:
        return "d.datlocprovider::text AS provider, d.datlocale AS icu_locale, d.daticurules AS icu_rules"
    if version.major >= 16:
        return "d.datlocprovider::text AS provider, d.daticulocale AS icu_locale, d.daticurules AS icu_rules"
    if version.major >= 15:
        return "d.datlocprovider::text AS provider, d.daticulocale AS icu_locale, NULL::text AS icu_rules"
    return "'c'::text AS provider, NULL::text AS icu_locale, NULL::text AS icu_rules"


def list_databases(conn: Connection, *, include_templates: bool = False) -> list[DatabaseInfo]:
    """Databases with their properties; sizes only where the role may connect (else None)."""
    version = server_version(conn)
    locale_cols = _database_locale_columns(version)
    query: LiteralString = (
        """
        SELECT d.datname, pg_get_userbyid(d.datdba) AS owner, pg_encoding_to_char(d.encoding) AS encoding,
               d.datcollate, d.datctype, """
        + locale_cols
        + """,
               d.datconnlimit, t.spcname AS tablespace, d.datallowconn, d.datistemplate,
               CASE WHEN has_database_privilege(d.oid, 'CONNECT') THEN pg_database_size(d.oid) END AS size,
               shobj_description(d.oid, 'pg_database') AS comment,
               d.datacl IS NULL AS acl_is_default,
               COALESCE(d.datacl::text[], '{}') AS acl,
               ARRAY(SELECT unnest(s.setconfig) FROM pg_db_role_setting s
                     WHERE s.setdatabase = d.oid AND s.setrole = 0) AS settings
        FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace
        WHERE %(templates)s OR NOT d.datistemplate
        ORDER BY d.datname
        """
    )
    rows = fetch_all(conn, query, {"templates": include_templates})
    return [
        DatabaseInfo(
            name=r["datname"],
            owner=r["owner"],
            encoding=r["encoding"],
            collate=r["datcollate"],
            ctype=r["datctype"],
            locale_provider=_PROVIDERS.get(r["provider"], r["provider"]),
            icu_locale=r["icu_locale"],
            icu_rules=r["icu_rules"],
            connlimit=r["datconnlimit"],
            tablespace=r["tablespace"],
            allow_connections=r["datallowconn"],
            is_template=r["datistemplate"],
            size_bytes=r["size"],
            comment=r["comment"],
            acl=tuple(r["acl"]),
            acl_is_default=r["acl_is_default"],
            settings=tuple(r["settings"] or ()),
        )
        for r in rows
    ]


@dataclass(frozen=True)
class RoleInfo:
    name: str
    superuser: bool
    inherit: bool
    createrole: bool
    createdb: bool
    login: bool
    replication: bool
    bypassrls: bool
    connlimit: int
    valid_until: str | None
    password_type: str | None  # "scram-sha-256", "md5", "plain", None (no password) or "unknown"
    comment: str | None
    settings: tuple[tuple[str | None, str], ...] = ()  # (database or None, "name=value")

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "superuser": self.superuser,
            "inherit": self.inherit,
            "createrole": self.createrole,
            "createdb": self.createdb,
            "login": self.login,
            "replication": self.replication,
            "bypassrls": self.bypassrls,
            "connlimit": self.connlimit,
            "valid_until": self.valid_until,
            "password_type": self.password_type,
            "comment": self.comment,
            "settings": [list(s) for s in self.settings],
        }


def bootstrap_superuser(conn: Connection) -> str:
    """The role initdb created (OID 10): it belongs to the server, not to what moves."""
    row = fetch_one(conn, "SELECT rolname FROM pg_roles WHERE oid = 10")
    assert row is not None
    return str(row["rolname"])


def can_read_authid(conn: Connection) -> bool:
    row = fetch_one(conn, "SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT') AS ok")
    return bool(row and row["ok"])


def list_roles(conn: Connection) -> list[RoleInfo]:
    """User roles (not the predefined pg_* roles), with password types when pg_authid is readable."""
    if can_read_authid(conn):
        pw: LiteralString = """
            CASE WHEN a.rolpassword IS NULL THEN NULL
                 WHEN a.rolpassword LIKE 'SCRAM-SHA-256$%%' THEN 'scram-sha-256'
                 WHEN a.rolpassword ~ '^md5[0-9a-f]{32}$' THEN 'md5'
                 ELSE 'plain' END"""
        source: LiteralString = "pg_authid a"
    else:
        pw = "CASE WHEN a.rolpassword IS NULL THEN NULL ELSE 'unknown' END"
        source = "pg_roles a"
    query: LiteralString = (
        """
        SELECT a.rolname, a.rolsuper, a.rolinherit, a.rolcreaterole, a.rolcreatedb, a.rolcanlogin,
               a.rolreplication, a.rolbypassrls, a.rolconnlimit, a.rolvaliduntil::text AS valid_until,
               """
        + pw
        + """ AS password_type,
               shobj_description(a.oid, 'pg_authid') AS comment,
               ARRAY(SELECT COALESCE(d.datname, '') || E'\\x1f' || c
                     FROM pg_db_role_setting s LEFT JOIN pg_database d ON d.oid = s.setdatabase,
                          unnest(s.setconfig) c
                     WHERE s.setrole = a.oid ORDER BY 1) AS settings
        FROM """
        + source
        + """
        WHERE a.rolname !~ '^pg_'
        ORDER BY a.rolname
        """
    )
    roles = []
    for r in fetch_all(conn, query):
        settings = []
        for item in r["settings"] or ():
            db, _, setting = item.partition("\x1f")
            settings.append((db or None, setting))
        roles.append(
            RoleInfo(
                name=r["rolname"],
                superuser=r["rolsuper"],
                inherit=r["rolinherit"],
                createrole=r["rolcreaterole"],
                createdb=r["rolcreatedb"],
                login=r["rolcanlogin"],
                replication=r["rolreplication"],
                bypassrls=r["rolbypassrls"],
                connlimit=r["rolconnlimit"],
                valid_until=r["valid_until"],
                password_type=r["password_type"],
                comment=r["comment"],
                settings=tuple(settings),
            )
        )
    return roles


@dataclass(frozen=True)
class Membership:
    role: str  # the group
    member: str
    grantor: str | None
    admin_option: bool
    inherit_option: bool | None  # 16+: per-membership INHERIT
    set_option: bool | None  # 16+: per-membership SET

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def list_memberships(conn: Connection) -> list[Membership]:
    version = server_version(conn)
    # 16 made INHERIT and SET per-membership options (pg_auth_members.inherit_option/set_option).
    extra: LiteralString = (
        "m.inherit_option, m.set_option"
        if version.major >= 16
        else "NULL::bool AS inherit_option, NULL::bool AS set_option"
    )
    query: LiteralString = (
        """
        SELECT g.rolname AS role, u.rolname AS member, gr.rolname AS grantor, m.admin_option, """
        + extra
        + """
        FROM pg_auth_members m
        JOIN pg_roles g ON g.oid = m.roleid
        JOIN pg_roles u ON u.oid = m.member
        LEFT JOIN pg_roles gr ON gr.oid = m.grantor
        WHERE u.rolname !~ '^pg_'
        ORDER BY 1, 2, 3
        """
    )
    return [Membership(**r) for r in fetch_all(conn, query)]


@dataclass(frozen=True)
class TablespaceInfo:
    name: str
    owner: str
    location: str
    options: tuple[str, ...]
    acl: tuple[str, ...]
    comment: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "owner": self.owner,
            "comment": self.comment,
            "location": self.location,
            "options": list(self.options),
            "acl": list(self.acl),
        }


def list_tablespaces(conn: Connection) -> list[TablespaceInfo]:
    """User tablespaces (pg_default and pg_global are left out)."""
    rows = fetch_all(
        conn,
        """
        SELECT spcname, pg_get_userbyid(spcowner) AS owner, pg_tablespace_location(oid) AS location,
               COALESCE(spcoptions, '{}') AS options, COALESCE(spcacl::text[], '{}') AS acl,
               shobj_description(oid, 'pg_tablespace') AS comment
        FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY spcname
        """,
    )
    return [
        TablespaceInfo(r["spcname"], r["owner"], r["location"], tuple(r["options"]), tuple(r["acl"]), r["comment"])
        for r in rows
    ]


def tablespace_names(conn: Connection) -> set[str]:
    """Every tablespace name, pg_default and pg_global included."""
    return {r["spcname"] for r in fetch_all(conn, "SELECT spcname FROM pg_tablespace")}


@dataclass(frozen=True)
class ExtensionInfo:
    name: str
    version: str
    schema: str
    relocatable: bool

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def list_extensions(conn: Connection) -> list[ExtensionInfo]:
    """Extensions installed in the connected database (plpgsql included)."""
    rows = fetch_all(
        conn,
        """
        SELECT e.extname, e.extversion, n.nspname, e.extrelocatable
        FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY e.extname
        """,
    )
    return [ExtensionInfo(r["extname"], r["extversion"], r["nspname"], r["extrelocatable"]) for r in rows]


@dataclass(frozen=True)
class AvailableExtension:
    name: str
    default_version: str | None
    versions: tuple[str, ...]
    superuser_required: bool | None
    trusted: bool | None  # 13+

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "default_version": self.default_version,
            "versions": list(self.versions),
            "superuser_required": self.superuser_required,
            "trusted": self.trusted,
        }


def available_extensions(conn: Connection) -> dict[str, AvailableExtension]:
    """Extensions whose files are installed on the server, by name."""
    version = server_version(conn)
    # 13 added trusted extensions (pg_available_extension_versions.trusted).
    trusted: LiteralString = "bool_or(v.trusted)" if version.major >= 13 else "NULL::bool"
    query: LiteralString = (
        """
        SELECT a.name, a.default_version, array_agg(v.version ORDER BY v.version) AS versions,
               bool_and(v.superuser) AS superuser, """
        + trusted
        + """ AS trusted
        FROM pg_available_extensions a
        JOIN pg_available_extension_versions v ON v.name = a.name
        GROUP BY a.name, a.default_version ORDER BY a.name
        """
    )
    return {
        r["name"]: AvailableExtension(
            r["name"], r["default_version"], tuple(r["versions"]), r["superuser"], r["trusted"]
        )
        for r in fetch_all(conn, query)
    }


def collations_available(conn: Connection) -> set[str]:
    """Collation names the server knows (libc and ICU), for locale checks."""
    return {r["collname"] for r in fetch_all(conn, "SELECT collname FROM pg_collation")}


def row_writes(conn: Connection) -> dict[str, int]:
    """Rows inserted, updated and deleted in each database since the statistics were reset, as the
    cumulative statistics know them (reported at each transaction's end, 500 ms late before 15):
    two readings some seconds apart tell whether a database is taking writes."""
    rows = fetch_all(
        conn,
        """
        SELECT datname AS name, (tup_inserted + tup_updated + tup_deleted)::int8 AS writes
        FROM pg_catalog.pg_stat_database WHERE datname IS NOT NULL
        """,
    )
    return {r["name"]: int(r["writes"]) for r in rows}


def other_sessions(conn: Connection) -> dict[str, int]:
    """Client sessions connected to each database that are neither pgshift's nor its children's."""
    rows = fetch_all(
        conn,
        """
        SELECT datname AS name, count(*)::int AS n FROM pg_catalog.pg_stat_activity
        WHERE datname IS NOT NULL AND pid <> pg_catalog.pg_backend_pid()
          AND coalesce(backend_type, 'client backend') = 'client backend'
          AND application_name !~ '^(pgshift|pg_dump|pg_dumpall|pg_restore|psql)'
        GROUP BY datname
        """,
    )
    return {r["name"]: int(r["n"]) for r in rows}


def next_xid(conn: Connection) -> int:
    """The next transaction id the server will assign: every writing transaction takes one, and the
    counter moves at once (the statistics lag by up to a second)."""
    row = fetch_one(conn, "SELECT txid_snapshot_xmax(txid_current_snapshot())::int8 AS xid")
    return int(row["xid"]) if row else 0
