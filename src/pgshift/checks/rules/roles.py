"""Rules about settings, roles, privileges and security."""

from __future__ import annotations

from collections.abc import Iterator
from typing import LiteralString

from pgshift.catalog.inventory import acl_name
from pgshift.catalog.session import fetch_all, fetch_one
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
    target = ctx.target
    if target is not None and (
        target.privileges.superuser or {"pg_read_all_settings", "pg_monitor"} & set(target.privileges.member_of)
    ):
        return name not in target.setting_names
    # Without a target, or one whose role pg_settings hides superuser-only settings from (a managed
    # service's), what a major removed is known from the table above.
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
    # Per-database and per-role settings are cluster-wide: reported once, from the inventory, for
    # the databases the move carries (a role's setting IN DATABASE goes with that database).
    for db in ctx.source.databases:
        if db.name not in ctx.moving:
            continue
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
            if dbname and dbname not in ctx.moving:
                continue
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


def _owners_out_of_reach(ctx: Context) -> Iterator[Hit]:
    # Owning an object as another role (CREATE DATABASE … OWNER, ALTER … OWNER TO) needs membership in
    # it before 16, SET on it from 16. 16 made CREATEROLE grant ADMIN, not SET, on the roles a
    # non-superuser creates (unless its createrole_self_grant says 'set'); before 16 migrate grants
    # itself each role it creates, so only roles that exist already can be out of reach.
    target = ctx.target
    if target is None or target.privileges.superuser or ctx.target_conn is None:
        return
    since_16 = target.server.version.major >= 16
    self_grant = {"set"}
    if since_16:
        row = fetch_one(ctx.target_conn, "SELECT current_setting('createrole_self_grant') AS v")
        self_grant = {p.strip().lower() for p in str(row["v"] if row else "").split(",")}
    owners = sorted({d.owner for d in ctx.source.databases if d.name in ctx.moving and d.owner})
    existing = [o for o in owners if o in target.roles]
    query: LiteralString = (
        "SELECT rolname AS name FROM pg_roles WHERE rolname = ANY(%s) AND pg_has_role(rolname, 'SET')"
        if since_16
        else "SELECT rolname AS name FROM pg_roles WHERE rolname = ANY(%s) AND pg_has_role(rolname, 'MEMBER')"
    )
    reachable = {r["name"] for r in fetch_all(ctx.target_conn, query, (existing,))}
    user = target.privileges.user
    for owner in owners:
        if owner == user or owner in reachable:
            continue
        if owner in target.roles:
            why = (
                f"the target role {user} may not SET ROLE to {owner}, which exists there"
                if since_16
                else f"the target role {user} is not a member of {owner}, which exists there"
            )
        elif "set" in self_grant:
            continue
        else:
            why = (
                f"{user} will create {owner}, but on PostgreSQL {target.server.version.major} a non-superuser "
                "gets only ADMIN on the roles it creates (createrole_self_grant is not 'set')"
            )
        yield Hit(
            owner,
            f"role {owner} owns a database of the move and {why}: CREATE DATABASE … OWNER {owner} and "
            "pg_restore's ALTER … OWNER TO fail with "
            + ("'must be able to SET ROLE'" if since_16 else "'must be member of role'"),
        )


OWNERS_OUT_OF_REACH = Rule(
    id="owner-needs-set-role",
    title="A non-superuser target role may not own objects as the source's owners",
    severity=Severity.BLOCKER,
    changed_in="PostgreSQL 16 (CREATEROLE grants ADMIN without SET; createrole_self_grant); before 16 ownership "
    "needs membership",
    scope=Scope.CLUSTER,
    what_happens="CREATE DATABASE … OWNER and ALTER … OWNER TO need SET ROLE on the owner (16+), membership in it "
    "before 16: the run stops at the first database after the roles were created. Before 16, migrate grants "
    "itself each role it creates (GRANT role TO <target role>, what createrole_self_grant = 'set, inherit' does "
    "on 16+), so only roles that exist on the target already can be out of reach.",
    remediation="Before the move: ALTER ROLE <target role> SET createrole_self_grant = 'set, inherit' (16+, for "
    "roles it creates), or GRANT <owner> TO <target role> (WITH SET TRUE on 16+, for roles that exist); or move "
    "as a superuser; or give migrate --no-owner.",
    detect=_owners_out_of_reach,
    verified="15->16, 15->18; 12->14, 11->13 (roles the move creates: granted by migrate)",
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

MAINTAIN_PRIVILEGE_OLDER_TARGET = Rule(
    id="maintain-privilege-older-target",
    title="MAINTAIN granted on its own, moved to a target before 17",
    severity=Severity.BLOCKER,
    changed_in="PostgreSQL 17 (MAINTAIN privilege)",
    source_min=17,
    target_max=16,
    what_happens="pg_dump writes GRANT ALL for a grantee holding every table privilege, which 16 reads as its "
    "own ALL; a grant naming MAINTAIN (alone, or with some other privileges) is refused by 16 ('unrecognized "
    "privilege type \"maintain\"'). The table's grants are one item of the dump, so all of its grants are "
    "lost, and pg_restore --exit-on-error stops there.",
    remediation="On the source, revoke MAINTAIN from the grantee (16 has no such privilege; VACUUM, ANALYZE, "
    "CLUSTER, REINDEX and REFRESH there need the owner), or grant it every privilege (GRANT ALL).",
    # 17 added the MAINTAIN privilege ('m' in aclitem, 'MAINTAIN' in aclexplode).
    queries=(
        Query(
            """
            WITH acl AS (
                SELECT c.oid::regclass::text AS object, c.oid AS relid, NULL::text AS schema_name,
                       (aclexplode(c.relacl)).*, 'ON TABLE ' || c.oid::regclass::text AS target, false AS defacl
                FROM pg_class c WHERE c.relacl IS NOT NULL
                UNION ALL
                -- named as pg_dump's item (the schema trial's refusal of it confirms this finding)
                SELECT coalesce(quote_ident(n.nspname) || '.', '') || 'DEFAULT PRIVILEGES FOR TABLES of role '
                       || quote_ident(pg_get_userbyid(d.defaclrole)) AS object, NULL::oid, n.nspname,
                       (aclexplode(d.defaclacl)).*,
                       'FOR ROLE ' || quote_ident(pg_get_userbyid(d.defaclrole))
                       || coalesce(' IN SCHEMA ' || quote_ident(n.nspname), '') AS target, true
                FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
                WHERE d.defaclobjtype = 'r'
            )
            SELECT object, relid, schema_name,
                   CASE WHEN grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(grantee)) END AS grantee,
                   string_agg(privilege_type, ', ' ORDER BY privilege_type) AS privileges,
                   CASE WHEN defacl
                        THEN 'ALTER DEFAULT PRIVILEGES ' || target || ' REVOKE MAINTAIN ON TABLES FROM '
                        ELSE 'REVOKE MAINTAIN ' || target || ' FROM ' END
                   || CASE WHEN grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(grantee)) END
                   || ';' AS revoke
            FROM acl
            GROUP BY object, relid, schema_name, target, defacl, grantee, grantor, is_grantable
            HAVING bool_or(privilege_type = 'MAINTAIN') AND count(DISTINCT privilege_type) < 8
            ORDER BY 1, 4
            """,
            since=17,
        ),
    ),
    message="{object} grants {privileges} to {grantee}: the target refuses MAINTAIN, and with it every grant "
    "of this item",
    fix="On the source: {revoke}",
    verified="17->16 (pg_restore 17: 'unrecognized privilege type \"maintain\"', every grant of the table lost)",
)


def _public_schema_older_target(ctx: Context) -> Iterator[Hit]:
    row = fetch_one(
        ctx.conn,
        """
        SELECT NOT has_schema_privilege('public', n.oid, 'CREATE') AS closed,
               pg_get_userbyid(n.nspowner) = 'pg_database_owner' AS owned_by_database_owner
        FROM pg_namespace n WHERE n.nspname = 'public'
        """,
    )
    if row is None or not row["closed"]:
        return
    database = ctx.target_name(ctx.database or "")
    fix = f"On the target after the move, in database {database}: REVOKE CREATE ON SCHEMA public FROM PUBLIC;"
    # 14 added the pg_database_owner role, which owns public from 15 on.
    if row["owned_by_database_owner"] and ctx.target_major >= 14:
        fix += " ALTER SCHEMA public OWNER TO pg_database_owner;"
    yield Hit(
        "public",
        f"schema public in database {ctx.database} is closed to PUBLIC (15's default), so its dump says nothing "
        f"about it; {ctx.target_major} creates the database with public writable by everyone"
        + (" and owned by the bootstrap superuser" if row["owned_by_database_owner"] else "")
        + ", and the move leaves it so",
        ctx.database,
        remediation=fix,
        schema="public",
    )


PUBLIC_SCHEMA_OLDER_TARGET = Rule(
    id="public-schema-older-target",
    title="public schema becomes writable by everyone on a target before 15",
    severity=Severity.WARNING,
    changed_in="PostgreSQL 15 (public schema: no CREATE for PUBLIC, owned by pg_database_owner)",
    source_min=15,
    target_max=14,
    what_happens="pg_dump writes the privileges of schema public only where they differ from the source "
    "major's default; a 15+ default (no CREATE for PUBLIC) is not written, so the older target keeps its own "
    "default: every role may create objects in public. verify reports the difference.",
    remediation="After the move, in each database on the target: REVOKE CREATE ON SCHEMA public FROM PUBLIC; "
    "(and, on 14, ALTER SCHEMA public OWNER TO pg_database_owner;).",
    detect=_public_schema_older_target,
    verified="15->14 (pg_dump 15 writes no ACL for a default public schema; the 14 target keeps =UC)",
)


def _public_schema_needs_owner(ctx: Context) -> Iterator[Hit]:
    # Before 15 the public schema of a database created from template0 belongs to the bootstrap
    # superuser: a target role that is not a superuser can neither change its owner (pg_restore's
    # ALTER SCHEMA public OWNER TO fails) nor its privileges (GRANT/REVOKE by a non-owner only warn,
    # and the schema stays writable by everyone). What pg_dump writes of public is what differs from
    # the source major's default: owner and ACL (15 made pg_database_owner the owner, =U for PUBLIC).
    target = ctx.target
    if target is None or target.privileges.superuser or target.server.version.major >= 15:
        return
    since_15 = ctx.source.server.version.major >= 15
    row = fetch_one(
        ctx.conn,
        """
        SELECT pg_get_userbyid(n.nspowner) AS owner, n.nspowner = 10 AS bootstrap_owner,
               pg_get_userbyid(n.nspowner) = 'pg_database_owner' AS database_owner_owns,
               ARRAY(SELECT a::text FROM unnest(COALESCE(n.nspacl, acldefault('n', n.nspowner))) a ORDER BY 1)
                 AS acl
        FROM pg_namespace n WHERE n.nspname = 'public'
        """,
    )
    if row is None:
        return
    owner = str(row["owner"])
    default_owner = row["database_owner_owns"] if since_15 else row["bootstrap_owner"]
    default_acl = sorted([f"{acl_name(owner)}=UC/{acl_name(owner)}", f"={'U' if since_15 else 'UC'}/{acl_name(owner)}"])
    changes = []
    if not default_owner and "--no-owner" not in ctx.restore_args:
        changes.append(f"its owner ({owner}: pg_restore's ALTER SCHEMA public OWNER TO fails)")
    if sorted(row["acl"]) != default_acl and "--no-privileges" not in ctx.restore_args:
        changes.append(f"its privileges ({', '.join(row['acl'])}: the GRANT/REVOKE only warn, and are lost)")
    if not changes:
        return
    database = ctx.target_name(ctx.database or "")
    yield Hit(
        "public",
        f"schema public in database {ctx.database} differs from its default in {' and '.join(changes)}; on "
        f"{target.server.version.major}, public in the new database {database} belongs to the bootstrap superuser, "
        f"and the target role {target.privileges.user} is not a superuser",
        ctx.database,
        schema="public",
    )


PUBLIC_SCHEMA_NEEDS_OWNER = Rule(
    id="public-schema-needs-owner",
    title="A non-superuser target before 15 cannot give schema public the source's owner or privileges",
    severity=Severity.BLOCKER,
    changed_in="PostgreSQL 15 (public owned by pg_database_owner); before, by the bootstrap superuser",
    target_max=14,
    what_happens="A database created from template0 on a target before 15 has a public schema owned by the "
    "bootstrap superuser. A target role that is not a superuser (a managed service) cannot run pg_restore's "
    "ALTER SCHEMA public OWNER TO (the restore stops after the target changed), and its GRANT/REVOKE on public "
    "only warn: a hardened public (REVOKE CREATE … FROM PUBLIC) arrives writable by everyone, and verify "
    "reports it.",
    remediation="Move as a superuser; or, where the provider lets an administrator act on public, apply the "
    "source's owner and privileges of public on the target after the move and --accept "
    "public-schema-needs-owner (verify then reports public until it is done); or give migrate --no-owner "
    "--no-privileges to leave ownership and privileges out entirely; or move to a target of 15 or newer, where "
    "the database owner owns public.",
    detect=_public_schema_needs_owner,
    verified="13->14 with a CREATEDB CREATEROLE target role (REVOKE CREATE: verify different; ALTER SCHEMA public "
    "OWNER: the restore fails)",
)


RULES = (
    REMOVED_GUC_SETTINGS,
    VACUUM_DEFER_CLEANUP_AGE_ETC,
    PUBLIC_SCHEMA_ACL,
    PUBLIC_SCHEMA_OLDER_TARGET,
    PUBLIC_SCHEMA_NEEDS_OWNER,
    MAINTAIN_PRIVILEGE_OLDER_TARGET,
    MD5_PASSWORDS,
    PASSWORD_ENCRYPTION_DEFAULT,
    ROLES_GLOBALS,
    CREATEROLE_INHERITANCE,
    OWNERS_OUT_OF_REACH,
    RLS_DUMP,
    AFTER_TRIGGER_ROLE,
)
