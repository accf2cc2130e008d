"""Rules about the move itself: client programs, direction, privileges, connections and disk."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pgshift.checks import Severity
from pgshift.checks.rule import Context, Hit, Query, Rule, Scope


def _gib(n: int) -> str:
    return f"{n / 1024**3:.1f} GiB" if n >= 1024**3 else f"{n / 1024**2:.1f} MiB"


def _no_client(ctx: Context) -> Iterator[Hit]:
    if ctx.client.error:
        yield Hit("pg_dump", ctx.client.error)


CLIENT_DUMP_NEWER_SERVER = Rule(
    id="client-dump-newer-server",
    title="No installed pg_dump can dump the source for this target",
    severity=Severity.BLOCKER,
    changed_in="pg_dump behaviour (refuses newer servers; 15+ dumps servers from 9.2 on)",
    scope=Scope.CLUSTER,
    what_happens="pg_dump refuses a server of a newer major ('aborting because of server version mismatch'); "
    "the target's (or a newer) pg_dump must be used.",
    remediation="Install the target major's client programs (pgshift toolchain install N), pass --pg-bin DIR, or "
    "run the clients in Docker (--docker).",
    detect=_no_client,
    verified="yes (pg_dump 14 against 15/17/18 servers)",
)


def _newer_client(ctx: Context) -> Iterator[Hit]:
    if ctx.client.program_major is not None and int(ctx.client.program_major) > ctx.target_major:
        for warning in ctx.client.warnings:
            yield Hit(f"pg_restore {ctx.client.program_major}", warning)


CLIENT_NEWER_RESTORE_OLDER_TARGET = Rule(
    id="client-newer-restore-older-target",
    title="The only client available is newer than the target",
    severity=Severity.WARNING,
    changed_in="pg_dump/pg_restore behaviour (17: transaction_timeout; 18: statistics)",
    scope=Scope.CLUSTER,
    what_happens="A newer pg_restore sends settings the target does not know (transaction_timeout on ≤16, "
    "skipped with an error); a newer pg_dump's output is not guaranteed to load into an older server.",
    remediation="Install the target major's client programs (pgshift toolchain install N); otherwise pgshift adds "
    "the flags that keep the output loadable (--no-statistics) and ignores the expected error.",
    detect=_newer_client,
    verified="every 18-client restore into 11–16",
)


@dataclass(frozen=True)
class ClientSetting:
    """A parameter pg_restore sets in its session that an older server does not know."""

    name: str
    client_since: int  # the pg_restore major that sets it
    server_since: int  # the server major that knows it
    source_since: int  # sources of this major on give the archive a reason to set it
    tolerated: bool  # migrate expects the error and goes on (said by client-newer-restore-older-target)
    advice: str
    # The pg_restore major from which pgshift's restores leave the setting out (a flag of the client's).
    left_out_since: int | None = None


CLIENT_SETTINGS = (
    # 17: pg_restore sets transaction_timeout = 0 on every connection.
    ClientSetting("transaction_timeout", 17, 17, 10, True, ""),
    # 12: table access methods; pg_restore 12+ sets default_table_access_method before each table of an
    # archive that records one (pg_dump 12+ of a 12+ server). Every client that can dump a 12+ server does.
    ClientSetting(
        "default_table_access_method",
        12,
        12,
        12,
        False,
        "pg_restore --exit-on-error stops at the first table ('could not set default_table_access_method'); "
        "pg_restore 15+ leaves it out with --no-table-access-method, which pgshift passes (it then prefers a "
        "15+ client for such a move), but this pg_restore is older",
        left_out_since=15,
    ),
)


def _client_settings(ctx: Context) -> Iterator[Hit]:
    client = ctx.client.program_major
    client_major = int(client) if client is not None else ctx.source_major
    for s in CLIENT_SETTINGS:
        if s.tolerated or not (
            client_major >= s.client_since and ctx.source_major >= s.source_since and ctx.target_major < s.server_since
        ):
            continue
        if s.left_out_since is not None and client_major >= s.left_out_since:
            continue
        yield Hit(
            s.name,
            f"pg_restore {client_major} sets {s.name}, which {ctx.target_major} does not know (added in "
            f"{s.server_since}): {s.advice}",
        )


CLIENT_SETTINGS_OLDER_TARGET = Rule(
    id="client-settings-older-target",
    title="pg_restore sets parameters the older target does not know",
    severity=Severity.BLOCKER,
    changed_in="pg_restore behaviour (12: default_table_access_method; 17: transaction_timeout)",
    scope=Scope.CLUSTER,
    target_max=max(s.server_since for s in CLIENT_SETTINGS if not s.tolerated) - 1,
    what_happens="pg_restore sets session parameters of its own major; a target older than the parameter "
    "rejects the SET ('unrecognized configuration parameter'). transaction_timeout (17) is expected and "
    "ignored by migrate (client-newer-restore-older-target); default_table_access_method (12) is left out by "
    "pg_restore 15+ with --no-table-access-method, which pgshift passes for a target before 12 (and it prefers "
    "a 15+ client for a 12+ source moving there); with an older pg_restore a move of a 12+ source into 11 or "
    "older stops at its first table.",
    remediation="Install a PostgreSQL 15 or newer client (pgshift toolchain install 18) so that pgshift uses it; "
    "or move to a target of 12 or newer; or restore by hand without those lines: pg_restore -f - DUMP "
    "| grep -v -e '^SET default_table_access_method = ' -e '^SET transaction_timeout = ' "
    "| psql -v ON_ERROR_STOP=1 -d TARGETDB (the tables are created with the target's only access method, heap).",
    detect=_client_settings,
    verified="12->11: pg_restore 14 stops ('could not set default_table_access_method'); migrate with pg_restore "
    "18 and --no-table-access-method moves it",
)


def _direction(ctx: Context) -> Iterator[Hit]:
    if ctx.target_major < ctx.source_major:
        yield Hit(
            f"{ctx.source_major} -> {ctx.target_major}",
            f"the target ({ctx.target_major}) is an older major than the source ({ctx.source_major}): objects and "
            "syntax of the newer major may not load",
        )


TARGET_OLDER_THAN_SOURCE = Rule(
    id="target-older-than-source",
    title="Moving to an older major",
    severity=Severity.BLOCKER,
    changed_in="-",
    scope=Scope.CLUSTER,
    what_happens="Dumps are not guaranteed to load into an older major; pgshift migrate refuses without "
    "--allow-downgrade.",
    remediation="Choose a target of the same or a newer major, or test-restore and pass --allow-downgrade.",
    detect=_direction,
)


def _same_server(ctx: Context) -> Iterator[Hit]:
    assert ctx.target is not None
    if ctx.source.server.same_server_as(ctx.target.server):
        yield Hit("target", "the source and the target are the same running server")


SOURCE_IS_TARGET = Rule(
    id="source-is-target",
    title="Source and target are the same server",
    severity=Severity.BLOCKER,
    changed_in="-",
    scope=Scope.CLUSTER,
    needs_target=True,
    what_happens="Two connection strings name one running server (same system identifier and start time): "
    "replacing a target database would drop the source. pgshift migrate refuses it.",
    remediation="Name another server as the target; to copy a database within one server use "
    "CREATE DATABASE new TEMPLATE old.",
    detect=_same_server,
)


def _existing_databases(ctx: Context) -> Iterator[Hit]:
    assert ctx.target is not None
    for db in ctx.source.checked:
        name = ctx.target_name(db.name)  # --rename: the name the move creates
        if name in ctx.target.databases and name != "postgres":
            renamed = f" (the new name of {db.name})" if name != db.name else ""
            yield Hit(name, f"database {name}{renamed} already exists on the target", db.name)


TARGET_DATABASE_EXISTS = Rule(
    id="target-database-exists",
    title="Databases that already exist on the target",
    severity=Severity.BLOCKER,
    changed_in="-",
    scope=Scope.CLUSTER,
    needs_target=True,
    what_happens="pg_restore --create fails on an existing database; restoring into it mixes old and new objects. "
    "(postgres exists everywhere: its objects are restored into the target's.)",
    remediation="Drop or rename the database on the target, give it another name (--rename OLD=NEW), or leave it "
    "out of the move (--exclude-database).",
    detect=_existing_databases,
)


def _target_privileges(ctx: Context) -> Iterator[Hit]:
    assert ctx.target is not None
    t = ctx.target
    if t.server.in_recovery:
        yield Hit("target", "the target server is in recovery (a standby): it is read-only")
    if not t.privileges.createdb:
        yield Hit(t.privileges.user, f"the target role {t.privileges.user} cannot create databases (no CREATEDB)")
    missing = sorted(r.name for r in ctx.source.roles if r.name not in t.roles)
    if missing and not t.privileges.createrole:
        yield Hit(
            t.privileges.user,
            f"the target role {t.privileges.user} cannot create roles (no CREATEROLE) and {len(missing)} source "
            f"role(s) are missing there: {', '.join(missing[:10])}" + (" …" if len(missing) > 10 else ""),
        )


TARGET_PRIVILEGES = Rule(
    id="target-privileges",
    title="The target role cannot create what the move needs",
    severity=Severity.BLOCKER,
    changed_in="-",
    scope=Scope.CLUSTER,
    needs_target=True,
    what_happens="Without CREATEDB the databases cannot be created; without CREATEROLE the owners and grantees "
    "are missing and every ALTER … OWNER / GRANT fails ('role does not exist').",
    remediation="Connect to the target as a superuser (or a role with CREATEDB and CREATEROLE), or create the "
    "roles first.",
    detect=_target_privileges,
)


def _connections(ctx: Context) -> Iterator[Hit]:
    est = ctx.estimates
    if est is None:
        return
    if (
        est.source_connections_available is not None
        and est.source_connections_available < est.source_connections_needed
    ):
        yield Hit(
            "source",
            f"--jobs {est.jobs} needs {est.source_connections_needed} connections to the source; max_connections "
            f"leaves {est.source_connections_available} for ordinary roles",
        )
    if (
        est.target_connections_available is not None
        and est.target_connections_available < est.target_connections_needed
    ):
        yield Hit(
            "target",
            f"--jobs {est.jobs} needs {est.target_connections_needed} connections to the target; only "
            f"{est.target_connections_available} are free",
        )


CONNECTIONS_FOR_JOBS = Rule(
    id="connections-for-jobs",
    title="Not enough connection slots for --jobs",
    severity=Severity.BLOCKER,
    changed_in="-",
    scope=Scope.CLUSTER,
    what_happens="pg_dump -j N opens N+1 connections and pg_restore -j N opens N; beyond max_connections they "
    "fail with 'too many clients'.",
    remediation="Lower --jobs, or raise max_connections (restart needed) / free connections.",
    detect=_connections,
)


def _work_dir(ctx: Context) -> Iterator[Hit]:
    est = ctx.estimates
    if est is None or est.work_dir_fits is not False:
        return
    yield Hit(
        est.work_dir,
        f"the dump needs up to {_gib(est.dump_bytes_estimate)} in {est.work_dir}, which has "
        f"{_gib(est.work_dir_free_bytes or 0)} free",
    )


WORK_DIR_SPACE = Rule(
    id="work-dir-space",
    title="Not enough space in the work directory for the dump",
    severity=Severity.WARNING,
    changed_in="-",
    scope=Scope.CLUSTER,
    what_happens="A dump holds the table data (compressed, so usually less); when the disk fills pg_dump fails.",
    remediation="Point the work directory (--workdir) at a disk with room, or stream the move without a dump file.",
    detect=_work_dir,
)

SOURCE_READ_PRIVILEGES = Rule(
    id="source-read-privileges",
    title="Tables and sequences the source role cannot read",
    severity=Severity.BLOCKER,
    changed_in="-",
    what_happens="pg_dump stops at the first 'permission denied for table'.",
    remediation="Connect to the source as a superuser or a member of pg_read_all_data (14+), or GRANT SELECT.",
    queries=(
        Query(
            """
            SELECT c.oid::regclass::text AS object, c.oid AS relid,
                   CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'm' THEN 'materialized view' ELSE 'table' END AS kind
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p', 'S', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND n.nspname !~ '^pg_toast'
              AND (NOT has_table_privilege(c.oid, 'SELECT') OR NOT has_schema_privilege(n.oid, 'USAGE'))
            ORDER BY 1
            """
        ),
    ),
    message="the source role cannot read {kind} {object}",
)


def _filter_errors(ctx: Context) -> Iterator[Hit]:
    if ctx.selection is None:
        return
    for error in ctx.selection.errors:
        yield Hit(
            ctx.database,
            f"pg_dump with {' '.join(ctx.selection.filters.dump_args())} stops on database {ctx.database}: {error}",
            ctx.database,
        )


OBJECT_FILTERS_FAIL = Rule(
    id="object-filters-fail",
    title="Object filters that make pg_dump stop",
    severity=Severity.BLOCKER,
    changed_in="pg_dump behaviour (all versions)",
    what_happens="pg_dump refuses to start when a --schema or --table pattern matches nothing in the database "
    "('no matching schemas were found', 'no matching tables were found') or names another database: that "
    "database is not moved at all.",
    remediation='Fix the pattern (psql rules: unquoted names are lower-cased, quote mixed case "Name"; * and ?), '
    "or leave the database out of the move (--exclude-database).",
    detect=_filter_errors,
    verified="pg_dump 14-18 (tests/integration/test_check_filters.py)",
)

RULES = (
    OBJECT_FILTERS_FAIL,
    CLIENT_DUMP_NEWER_SERVER,
    CLIENT_NEWER_RESTORE_OLDER_TARGET,
    CLIENT_SETTINGS_OLDER_TARGET,
    TARGET_OLDER_THAN_SOURCE,
    SOURCE_IS_TARGET,
    TARGET_DATABASE_EXISTS,
    TARGET_PRIVILEGES,
    CONNECTIONS_FOR_JOBS,
    WORK_DIR_SPACE,
    SOURCE_READ_PRIVILEGES,
)
