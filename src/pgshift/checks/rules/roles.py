"""Rules about settings, roles, privileges and security."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.catalog.session import fetch_all
from pgshift.checks import Severity
from pgshift.checks.rule import Context, Hit, Query, Rule, Scope

# Parameters removed from PostgreSQL, as name -> first major without them (release notes 11–17).
REMOVED_SETTINGS: dict[str, int] = {
    "replacement_sort_tuples": 11,
    "default_with_oids": 12,
    "wal_keep_segments": 13,
    "operator_precedence_warning": 14,
    "vacuum_cleanup_index_scale_factor": 14,
    "stats_temp_directory": 15,
    "force_parallel_mode": 16,
    "vacuum_defer_cleanup_age": 16,
    "promote_trigger_file": 16,
    "lc_collate": 16,
    "lc_ctype": 16,
    "old_snapshot_threshold": 17,
    "db_user_namespace": 17,
    "trace_recovery_messages": 17,
}


def unknown_on_target(ctx: Context, name: str) -> bool:
    if "." in name:
        return False  # custom (extension) settings are placeholders anywhere
    if ctx.target is not None:
        return name not in ctx.target.setting_names
    gone = REMOVED_SETTINGS.get(name)
    return gone is not None and ctx.source_major < gone <= ctx.target_major


def _removed_gucs(ctx: Context) -> Iterator[Hit]:
    for r in fetch_all(
        ctx.conn,
        """
        SELECT DISTINCT p.oid::regprocedure::text AS object, split_part(s, '=', 1) AS name, n.nspname AS schema
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace, unnest(p.proconfig) s
        WHERE p.oid >= 16384 ORDER BY 1, 2
        """,
    ):
        if unknown_on_target(ctx, r["name"]):
            yield Hit(
                r["object"],
                f"function {r['object']} has SET {r['name']}, a parameter PostgreSQL {ctx.target_major} does not "
                "know: the function is not created",
                ctx.database,
                schema=r["schema"],
            )
    if not ctx.first_database:
        return
    # Per-database and per-role settings are cluster-wide: reported once, from the inventory.
    for db in ctx.source.databases:
        for setting in db.settings:
            name = setting.split("=", 1)[0]
            if unknown_on_target(ctx, name):
                yield Hit(
                    db.name,
                    f"ALTER DATABASE {db.name} SET {name}: PostgreSQL {ctx.target_major} does not know it, the "
                    "setting is dropped with an error",
                    db.name,
                )
    for role in ctx.source.roles:
        for dbname, setting in role.settings:
            name = setting.split("=", 1)[0]
            if unknown_on_target(ctx, name):
                scope = f" IN DATABASE {dbname}" if dbname else ""
                yield Hit(
                    role.name,
                    f"ALTER ROLE {role.name}{scope} SET {name}: PostgreSQL {ctx.target_major} does not know it, the "
                    "setting is dropped with an error",
                )


REMOVED_GUC_SETTINGS = Rule(
    id="removed-guc-settings",
    title="Removed parameters in function SET clauses or ALTER DATABASE/ROLE SET",
    severity=Severity.BLOCKER,
    changed_in="PostgreSQL 11–17 (see the list in the rule)",
    what_happens="'unrecognized configuration parameter': a function with such a SET clause is not created; "
    "ALTER DATABASE/ROLE … SET fails and the setting is silently gone.",
    remediation="Remove or rename the setting on the source (ALTER FUNCTION … RESET name; ALTER ROLE … RESET name).",
    detect=_removed_gucs,
    verified="13->14, 15->16, 15->18",
    remedy="drop-removed-settings",
)


def _server_settings(ctx: Context) -> Iterator[Hit]:
    for name, value in sorted(ctx.source.non_default_settings.items()):
        if unknown_on_target(ctx, name):
            yield Hit(
                name,
                f"{name} = {value} is set in the source's configuration; PostgreSQL {ctx.target_major} does not "
                "know it (a copied postgresql.conf stops the server from starting)",
            )


VACUUM_DEFER_CLEANUP_AGE_ETC = Rule(
    id="vacuum-defer-cleanup-age-etc",
    title="Server settings the target major no longer has",
    severity=Severity.INFO,
    changed_in="PostgreSQL 13, 15, 16, 17",
    scope=Scope.CLUSTER,
    what_happens="Removed parameters live only in postgresql.conf / postgresql.auto.conf: never in a dump, but an "
    "old configuration copied over stops the new server from starting.",
    remediation="Build the target's postgresql.conf from its own defaults; do not copy the old one.",
    detect=_server_settings,
    verified="partly",
)

PUBLIC_SCHEMA_ACL = Rule(
    id="public-schema-acl",
    title="public schema writable by everyone (pre-15 default) is carried over",
    severity=Severity.WARNING,
    changed_in="PostgreSQL 15",
    source_max=14,
    target_min=15,
    what_happens="15 creates public without CREATE for PUBLIC, but a restored dump keeps the source's permissive "
    "ACL: everyone can still create objects in public on the target.",
    remediation="After the restore: REVOKE CREATE ON SCHEMA public FROM PUBLIC; (and optionally ALTER SCHEMA public "
    "OWNER TO pg_database_owner;) — or revoke it on the source first.",
    queries=(
        Query(
            """
            SELECT 'public' AS object, 'public' AS schema_name FROM pg_namespace n
            WHERE n.nspname = 'public' AND has_schema_privilege('public', n.oid, 'CREATE')
            """,
            until=14,
        ),
    ),
    message="schema public in database {database} grants CREATE to PUBLIC; the restored target keeps that",
    fix="On the target after the restore (or on the source now): REVOKE CREATE ON SCHEMA public FROM PUBLIC;",
    verified="14->18",
)


def _md5(ctx: Context) -> Iterator[Hit]:
    for role in ctx.source.roles:
        if role.password_type == "md5":
            yield Hit(role.name, f"role {role.name} has an MD5 password hash; 18 deprecates MD5 passwords")


MD5_PASSWORDS = Rule(
    id="md5-passwords",
    title="Roles with MD5 password hashes",
    severity=Severity.WARNING,
    changed_in="PostgreSQL 18 (MD5 deprecated; SCRAM default since 14)",
    target_min=18,
    scope=Scope.CLUSTER,
    what_happens="pg_dumpall carries MD5 hashes over; 18 warns on every one, and MD5 support is to be removed.",
    remediation="Have each user set a new password under password_encryption = scram-sha-256, then switch "
    "pg_hba.conf to scram-sha-256.",
    detect=_md5,
    verified="13->18",
)


def _password_encryption(ctx: Context) -> Iterator[Hit]:
    value = ctx.source.server.settings.get("password_encryption", "")
    if value in ("md5", "on"):
        yield Hit(
            "password_encryption",
            f"the source hashes new passwords with md5 (password_encryption = {value}); "
            f"{ctx.target_major} defaults to scram-sha-256",
        )


PASSWORD_ENCRYPTION_DEFAULT = Rule(
    id="password-encryption-default",
    title="password_encryption default changes to scram-sha-256",
    severity=Severity.INFO,
    changed_in="PostgreSQL 14",
    source_max=13,
    target_min=14,
    scope=Scope.CLUSTER,
    what_happens="Dumped hashes keep their format; passwords set after the move use SCRAM. Clients older than "
    "libpq 10 cannot do SCRAM.",
    remediation="Switch pg_hba.conf to scram-sha-256 once every user has a SCRAM password.",
    detect=_password_encryption,
    verified="13 vs 15",
)


def _roles_globals(ctx: Context) -> Iterator[Hit]:
    privs = ctx.source.privileges
    if not privs.can_read_authid:
        yield Hit(
            privs.user,
            f"the source role {privs.user} cannot read pg_authid: pg_dumpall --globals-only fails without "
            "--no-role-passwords, and the roles arrive without passwords",
        )


ROLES_GLOBALS = Rule(
    id="roles-globals",
    title="Roles and passwords cannot be read from the source",
    severity=Severity.WARNING,
    changed_in="pg_dumpall behaviour (all versions)",
    scope=Scope.CLUSTER,
    what_happens="pg_dump does not dump roles; pg_dumpall -g as a non-superuser fails ('permission denied for "
    "table pg_authid'), with --no-role-passwords it works but the passwords stay behind.",
    remediation="Connect to the source as a superuser, or reset the passwords on the target after the move.",
    detect=_roles_globals,
    verified="16->17, 15",
)


def _createrole(ctx: Context) -> Iterator[Hit]:
    supers = {r.name for r in ctx.source.roles if r.superuser}
    if ctx.source_major <= 15:
        for m in ctx.source.memberships:
            if m.grantor and m.grantor not in supers:
                yield Hit(
                    f"{m.member} in {m.role}",
                    f"membership of {m.member} in {m.role} was granted by {m.grantor}; restored from "
                    f"{ctx.source_major}, its grantor becomes the restoring role",
                )
    if ctx.target is not None and not ctx.target.privileges.superuser and ctx.target.privileges.createrole:
        yield Hit(
            ctx.target.privileges.user,
            f"the target role {ctx.target.privileges.user} has CREATEROLE but is not a superuser: it cannot replay "
            "role attributes (ALTER ROLE … NOSUPERUSER …) and manages only roles it holds ADMIN OPTION on",
        )


CREATEROLE_INHERITANCE = Rule(
    id="createrole-inheritance",
    title="Role memberships: grantors and CREATEROLE changes in 16",
    severity=Severity.WARNING,
    changed_in="PostgreSQL 16 (CREATEROLE, per-grant INHERIT/SET), 15",
    target_min=16,
    scope=Scope.CLUSTER,
    what_happens="Grantors are not carried from a ≤15 source (they control who may REVOKE); a CREATEROLE "
    "non-superuser cannot replay pg_dumpall -g output on 16+.",
    remediation="Restore globals as a superuser; re-issue grants WITH … GRANTED BY where grantors matter.",
    detect=_createrole,
    verified="15->18",
)


def _rls(ctx: Context) -> Iterator[Hit]:
    if ctx.source.privileges.bypassrls:
        return
    for r in fetch_all(
        ctx.conn,
        """
        SELECT c.oid::regclass::text AS object, c.oid AS relid FROM pg_class c
        WHERE c.relrowsecurity AND (c.relforcerowsecurity OR NOT pg_has_role(c.relowner, 'USAGE'))
        ORDER BY 1
        """,
    ):
        yield Hit(
            r["object"],
            f"table {r['object']} has row-level security and the source role {ctx.source.privileges.user} is "
            "neither superuser nor BYPASSRLS: pg_dump fails (or, with --enable-row-security, silently dumps "
            "only the visible rows)",
            ctx.database,
            relation=r["relid"],
        )


RLS_DUMP = Rule(
    id="rls-dump",
    title="Row-level security would hide rows from the dumping role",
    severity=Severity.BLOCKER,
    changed_in="pg_dump behaviour (all versions)",
    what_happens="pg_dump sets row_security off: 'query would be affected by row-level security policy'.",
    remediation="Dump as a superuser or a BYPASSRLS role; never migrate with --enable-row-security.",
    detect=_rls,
    verified="17",
)


AFTER_TRIGGER_ROLE = Rule(
    id="after-trigger-role",
    title="AFTER triggers that look at the current role",
    severity=Severity.INFO,
    changed_in="PostgreSQL 18",
    source_max=17,
    target_min=18,
    what_happens="From 18, AFTER triggers run as the role that was current when the event was queued.",
    remediation="Review these triggers' functions.",
    queries=(
        Query(
            """
            SELECT t.tgname || ' on ' || t.tgrelid::regclass::text AS object, t.tgfoid::regprocedure::text AS func,
                   t.tgrelid AS relid
            FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
            WHERE NOT t.tgisinternal AND (t.tgtype & 2) = 0
              AND p.prosrc ~* '\\m(current_user|current_role|session_user)\\M'
            ORDER BY 1
            """,
            until=17,
        ),
    ),
    message="AFTER trigger {object} runs {func}, which reads the current role",
    verified="docs only",
)

RULES = (
    REMOVED_GUC_SETTINGS,
    VACUUM_DEFER_CLEANUP_AGE_ETC,
    PUBLIC_SCHEMA_ACL,
    MD5_PASSWORDS,
    PASSWORD_ENCRYPTION_DEFAULT,
    ROLES_GLOBALS,
    CREATEROLE_INHERITANCE,
    RLS_DUMP,
    AFTER_TRIGGER_ROLE,
)
