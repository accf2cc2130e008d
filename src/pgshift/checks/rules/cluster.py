"""Rules about databases, locales, tablespaces, replication, large objects and capacity."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping

from pgshift.catalog.cluster import next_xid, other_sessions, row_writes
from pgshift.catalog.session import fetch_all
from pgshift.checks import Severity
from pgshift.checks.rule import Context, Hit, Rule, Scope


def normalize_locale(name: str) -> str:
    """en_US.UTF-8 and en_US.utf8 are the same locale to libc."""
    return re.sub(r"[-_.]", "", name.lower()).replace("utf8", "utf8")


def missing_locales(wanted: Mapping[str, str], available: set[str]) -> list[tuple[str, str]]:
    """(object, locale) pairs whose locale the target lacks (compared case- and punctuation-blind)."""
    have = {normalize_locale(x) for x in available}
    return [(obj, loc) for obj, loc in wanted.items() if loc and normalize_locale(loc) not in have]


def _locales(ctx: Context) -> Iterator[Hit]:
    assert ctx.target is not None
    checked = {d.name for d in ctx.source.checked}
    target_has_icu = any(c.endswith("-x-icu") for c in ctx.target.collations)
    wanted: dict[str, str] = {}
    for db in ctx.source.databases:
        if db.name not in checked:
            continue
        # The database the run creates on the target: under its new name with --rename.
        new = ctx.target_name(db.name)
        label = f"database {db.name}" + (f" (created as {new})" if new != db.name else "")
        if db.locale_provider == "icu" and not target_has_icu:
            yield Hit(db.name, f"{label} uses the ICU locale {db.icu_locale}; the target has no ICU", db.name)
        if db.locale_provider == "builtin" and ctx.target.server.version.major < 17:
            yield Hit(db.name, f"{label} uses the builtin locale provider, which needs 17+", db.name)
        wanted[f"{label} (LC_COLLATE)"] = db.collate
        wanted[f"{label} (LC_CTYPE)"] = db.ctype
    for obj, loc in missing_locales(wanted, set(ctx.target.locales)):
        yield Hit(obj, f"{obj} uses the locale {loc}, which the target server does not have")


def _user_collations(ctx: Context) -> Iterator[Hit]:
    assert ctx.target is not None
    rows = fetch_all(
        ctx.conn,
        """
        SELECT c.oid::regcollation::text AS object, c.collcollate, c.collprovider::text AS provider,
               (SELECT n.nspname FROM pg_namespace n WHERE n.oid = c.collnamespace) AS schema
        FROM pg_collation c WHERE c.oid >= 16384
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_collation'::regclass
                        AND d.objid = c.oid AND d.deptype = 'e')
        ORDER BY 1
        """
        if ctx.source_major >= 13  # regcollation appeared in 13
        else """
        SELECT n.nspname || '.' || c.collname AS object, c.collcollate, c.collprovider::text AS provider,
               n.nspname AS schema
        FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace WHERE c.oid >= 16384
        ORDER BY 1
        """,
    )
    target_has_icu = any(c.endswith("-x-icu") for c in ctx.target.collations)
    libc = {f"collation {r['object']}": r["collcollate"] for r in rows if r["provider"] == "c"}
    schema = {f"collation {r['object']}": r["schema"] for r in rows}
    for obj, loc in missing_locales(libc, set(ctx.target.locales)):
        yield Hit(
            obj, f"{obj} uses the locale {loc}, which the target server does not have", ctx.database, schema=schema[obj]
        )
    for r in rows:
        if r["provider"] == "i" and not target_has_icu:
            yield Hit(
                r["object"],
                f"collation {r['object']} is an ICU collation; the target has no ICU",
                ctx.database,
                schema=r["schema"],
            )


LOCALE_AVAILABILITY = Rule(
    id="locale-availability",
    title="Locales and collation providers missing on the target",
    severity=Severity.BLOCKER,
    changed_in="PostgreSQL 11 (pg_dumpall always writes locales), 15 (ICU default), 17 (builtin provider)",
    needs_target=True,
    scope=Scope.CLUSTER,
    what_happens="CREATE DATABASE / CREATE COLLATION name the source's locales; when the target host lacks them "
    "the database or collation (and what uses it) fails.",
    remediation="Install the locales (or ICU) on the target host, or create the databases by hand with a locale "
    "it has.",
    detect=_locales,
    verified="check ran 13->14, 11->18; failure: docs only",
)

USER_COLLATION_LOCALES = Rule(
    id="collation-locale-availability",
    title="User collations whose locale the target lacks",
    severity=Severity.BLOCKER,
    changed_in="pg_dump behaviour (all versions)",
    needs_target=True,
    what_happens="CREATE COLLATION fails on the target, and so do the columns and indexes that use the collation.",
    remediation="Install the locale on the target host, or change the collation's users on the source.",
    detect=_user_collations,
    verified="derived from locale-availability",
)


def _collation_drift(ctx: Context) -> Iterator[Hit]:
    assert ctx.target is not None
    # Only the collations this database uses: its default (by locale) and those of user columns
    # and indexes. pg_collation_actual_version reports libc versions from 13 on (NULL before).
    rows = fetch_all(
        ctx.conn,
        """
        SELECT 'collation ' || c.collname AS object, c.collname AS key, false AS by_locale,
               pg_collation_actual_version(c.oid) AS v
        FROM pg_collation c
        WHERE c.collprovider <> 'd' AND c.collname !~ '^(C|POSIX|ucs_basic)$'
          AND (c.oid IN (SELECT a.attcollation FROM pg_attribute a WHERE a.attrelid >= 16384 AND a.attnum > 0)
               OR c.oid IN (SELECT unnest(i.indcollation::oid[]) FROM pg_index i WHERE i.indexrelid >= 16384))
        UNION ALL
        SELECT 'database ' || d.datname || ' (' || d.datcollate || ')', d.datcollate, true,
               (SELECT pg_collation_actual_version(c.oid) FROM pg_collation c
                WHERE c.collprovider = 'c' AND c.collcollate = d.datcollate LIMIT 1)
        FROM pg_database d WHERE d.datname = current_database()
        """,
    )
    for by_locale, target_versions in ((False, ctx.target.collation_versions), (True, ctx.target.locale_versions)):
        mine = {r["key"]: r for r in rows if r["by_locale"] is by_locale and r["v"]}
        for key, tv, sv in drifted({k: r["v"] for k, r in mine.items()}, target_versions):
            obj = mine[key]["object"]
            yield Hit(
                obj, f"{obj}: the collation library is version {sv} on the source and {tv} on the target", ctx.database
            )


def drifted(source: Mapping[str, str], target: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(collation, target version, source version) for the collations whose library version differs."""
    return [(n, target[n], v) for n, v in sorted(source.items()) if n in target and target[n] != v]


COLLATION_VERSION_DRIFT = Rule(
    id="collation-version-drift",
    title="Collation library versions differ between the hosts",
    severity=Severity.WARNING,
    changed_in="glibc / ICU upgrades (PostgreSQL 15 records database collation versions)",
    needs_target=True,
    what_happens="Indexes are rebuilt on the target, so nothing is corrupted, but sort order and equality can "
    "change; unique indexes under nondeterministic collations can fail to build.",
    remediation="Test queries whose results depend on ordering; use --load-via-partition-root for hash partitions "
    "on text keys.",
    detect=_collation_drift,
    verified="partly",
)


def _datallowconn(ctx: Context) -> Iterator[Hit]:
    # The databases the move would take but leaves out (checks.databases, as migrate's preflight
    # chooses them): a named one refuses the run before any rule runs.
    for name, why in sorted(ctx.unconnectable.items()):
        yield Hit(
            name,
            f"database {name} {why}: pg_dump cannot connect to it, so the move leaves it out "
            "(pg_dumpall would skip it silently)",
            name,
        )


DATALLOWCONN_FALSE = Rule(
    id="datallowconn-false",
    title="Databases that do not accept connections",
    # A warning, not a blocker: migrate leaves such a database out and says so, moving the rest;
    # naming it with --database refuses check and migrate alike (exit 2).
    severity=Severity.WARNING,
    changed_in="pg_dumpall behaviour (all versions); invalid databases since 15.4/16",
    scope=Scope.CLUSTER,
    what_happens="pg_dump cannot connect to such a database: check and migrate leave it out of the move and say "
    "so (pg_dumpall leaves it out without a message). Named with --database, it refuses the run in both (exit 2).",
    remediation="ALTER DATABASE x ALLOW_CONNECTIONS true before the move, or drop it (DROP DATABASE for invalid ones).",
    detect=_datallowconn,
    verified="11 with pg_dumpall 18",
)


def _db_properties(ctx: Context) -> Iterator[Hit]:
    checked = {d.name for d in ctx.source.checked}
    for db in ctx.source.databases:
        if db.name not in checked:
            continue
        parts = []
        if db.settings:
            parts.append("settings " + ", ".join(db.settings))
        if not db.acl_is_default:
            parts.append("privileges " + ", ".join(db.acl))
        if db.comment and not (db.name == "postgres" and db.comment == "default administrative connection database"):
            parts.append("a comment")
        if parts:
            yield Hit(
                db.name,
                f"database {db.name} has {'; '.join(parts)}: only pg_restore --create (or pg_dump --create) "
                "carries them",
                db.name,
            )


DATABASE_PROPERTIES_NEED_CREATE = Rule(
    id="database-properties-need-create",
    title="Database settings, privileges and comments travel only with --create",
    severity=Severity.INFO,
    changed_in="PostgreSQL 11 (pg_dump/pg_dumpall)",
    scope=Scope.CLUSTER,
    what_happens="ALTER DATABASE … SET, the database ACL and its comment are written only by pg_dump --create / "
    "pg_restore -C; restoring into a pre-created database loses them silently.",
    remediation="Restore with pg_restore --create (the commands below do), or re-apply the properties by script.",
    detect=_db_properties,
    verified="13->18",
)


def _tablespaces(ctx: Context) -> Iterator[Hit]:
    for ts in ctx.source.tablespaces:
        if ctx.target is not None and ts.name in ctx.target.tablespaces:
            continue
        # migrate's --tablespace-map (by name or by the source's path, as the globals step reads it).
        mapped = ctx.tablespace_map.get(ts.name, ctx.tablespace_map.get(ts.location))
        if mapped is not None:
            yield Hit(
                ts.name,
                f"tablespace {ts.name} (at {ts.location} on the source) is created at {mapped} (--tablespace-map): "
                "that directory must exist on the target's host, empty and owned by the server's user",
                severity=Severity.INFO,
                remediation=f"On the target's host: mkdir -p {mapped} and chown it to the server's user.",
            )
            continue
        yield Hit(
            ts.name,
            f"tablespace {ts.name} is at {ts.location} on the source"
            + (" and does not exist on the target" if ctx.target is not None else "")
            + ": pg_dumpall writes that path, and tables restored without it land in the default tablespace",
        )


TABLESPACES = Rule(
    id="tablespaces",
    title="User tablespaces",
    severity=Severity.WARNING,
    changed_in="pg_dumpall behaviour (all versions)",
    scope=Scope.CLUSTER,
    what_happens="CREATE TABLESPACE names the source's absolute path ('directory does not exist' on another host); "
    "tables in a missing tablespace are created in the default one.",
    remediation="Create the tablespace on the target first (directory owned by the server user), give its new "
    "place with --tablespace-map OLD=NEW, or move with --no-tablespaces.",
    detect=_tablespaces,
    verified="13->18",
)


def _everything(ctx: Context) -> bool:
    """Whether the move carries the database-wide objects pg_dump -n/-t leave out (event triggers,
    publications, subscriptions, large objects)."""
    return ctx.selection is None or ctx.selection.include_everything


def _subscriptions(ctx: Context) -> Iterator[Hit]:
    assert ctx.db_inventory is not None
    if not _everything(ctx):
        return
    for name in ctx.db_inventory.subscriptions:
        yield Hit(
            name,
            f"subscription {name} is restored disabled, without its slot or origin progress",
            ctx.database,
        )


SUBSCRIPTIONS = Rule(
    id="subscriptions",
    title="Logical replication subscriptions",
    severity=Severity.WARNING,
    changed_in="pg_dump behaviour (all versions)",
    what_happens="Subscriptions are dumped WITH (connect = false): disabled, no slot on the publisher, no origin "
    "progress; a non-superuser pg_dump skips them. Enabling the copy while the old one still uses the same "
    "slot makes two subscribers fight over it.",
    remediation="After the move: disable/drop the old subscription or set another slot_name, create the slot, "
    "then ALTER SUBSCRIPTION … ENABLE / REFRESH PUBLICATION (choose copy_data deliberately).",
    detect=_subscriptions,
    verified="16, 17->18",
)


def _large_objects(ctx: Context) -> Iterator[Hit]:
    assert ctx.db_inventory is not None
    n = ctx.db_inventory.large_objects
    if not n:
        return
    if ctx.selection is not None and not ctx.selection.large_objects:
        # pg_dump 10-18: large objects come only with "include everything" dumps, which -n/-t end
        # (-N and -T keep them; tried with pg_dump 14-18, tests/integration/test_check_filters.py).
        yield Hit(
            ctx.database,
            f"database {ctx.database} has {n} large object(s), which the move leaves out: pg_dump does not dump "
            "large objects when --schema or --table is given",
            ctx.database,
            Severity.WARNING,
            remediation="Select with --exclude-schema/--exclude-table instead of --schema/--table (large objects "
            "then come along), or move them separately.",
        )
        return
    yield Hit(
        ctx.database,
        f"database {ctx.database} has {n} large object(s): the move carries them"
        + ("; this many make pg_dump/pg_restore slow and memory-hungry" if n >= 100_000 else ""),
        ctx.database,
        Severity.WARNING if n >= 100_000 else None,
    )


LARGE_OBJECTS = Rule(
    id="large-objects",
    title="Large objects",
    severity=Severity.INFO,
    changed_in="pg_dump behaviour (17 batches large objects)",
    what_happens="Large objects are dumped with whole databases, and with -N/-T, but not when --schema or "
    "--table is given (pg_dump without -b), silently; millions of them make dump and restore slow and "
    "memory-hungry.",
    remediation="Keep whole-database dumps (pgshift does) or add --large-objects to selective ones; allow time.",
    detect=_large_objects,
    verified="pg_dump 14-18: left out with -n/-t, kept with -N/-T, -b/-B as documented",
)


def _event_triggers(ctx: Context) -> Iterator[Hit]:
    if not _everything(ctx):
        return  # pg_dump -n/-t dump no event triggers
    for r in fetch_all(ctx.conn, "SELECT evtname AS object, evtevent FROM pg_event_trigger ORDER BY 1"):
        if r["evtevent"] == "login":
            yield Hit(
                r["object"],
                f"login event trigger {r['object']} fires on the first connection to the target after the restore",
                ctx.database,
                Severity.WARNING,
            )
        else:
            yield Hit(
                r["object"],
                f"event trigger {r['object']} ({r['evtevent']}) is restored last and active afterwards",
                ctx.database,
            )


EVENT_TRIGGERS = Rule(
    id="event-triggers",
    title="Event triggers",
    severity=Severity.INFO,
    changed_in="pg_dump behaviour; PostgreSQL 17 (login event triggers)",
    what_happens="Event triggers are restored at the very end and then fire; a login trigger (17+) fires on the "
    "first connection (a faulty one locks users out); a non-superuser cannot create them.",
    remediation="Restore as a superuser; review login triggers (event_triggers = off is the escape hatch on 17+).",
    detect=_event_triggers,
    verified="17->18",
)


def _prepared_and_slots(ctx: Context) -> Iterator[Hit]:
    for gid in ctx.source.prepared_xacts:
        yield Hit(
            gid,
            f"prepared transaction {gid} is open: it is not migrated, and its locks can block pg_dump",
            severity=Severity.WARNING,
        )
    for slot in ctx.source.replication_slots:
        yield Hit(slot, f"replication slot {slot} is not migrated")


PREPARED_XACTS_AND_SLOTS = Rule(
    id="prepared-xacts-and-slots",
    title="Prepared transactions and replication slots",
    severity=Severity.INFO,
    changed_in="pg_dump behaviour (all versions)",
    scope=Scope.CLUSTER,
    what_happens="Neither is migrated; prepared transactions holding strong locks block pg_dump.",
    remediation="COMMIT PREPARED / ROLLBACK PREPARED before the dump; re-create the slots consumers need.",
    detect=_prepared_and_slots,
    verified="docs only",
)


def _live_source(ctx: Context) -> Iterator[Hit]:
    if ctx.writes_at_start is None:
        return
    # Write transactions since the check began (each takes an xid; the count moves at once), then per
    # database: a session still connected, and its rows written where the statistics already say so
    # (they lag by up to a second, and count a session that has ended late: no live source then).
    transactions = next_xid(ctx.conn) - ctx.xid_at_start
    if transactions <= 0:
        return
    now = row_writes(ctx.conn)
    connected = other_sessions(ctx.conn)
    seconds = max(time.monotonic() - ctx.started_at, 0.1)
    for name in sorted(ctx.moving):
        sessions = connected.get(name, 0)
        if not sessions:
            continue
        written = now.get(name, 0) - ctx.writes_at_start.get(name, 0)
        rows = f", {written:,} row write(s) counted in database {name}" if written > 0 else ""
        yield Hit(
            name,
            f"database {name} has {sessions} other session(s) connected while the source took {transactions:,} "
            f"write transaction(s) in the {seconds:.1f} s check ran{rows}: the move copies it as of its dump's "
            "snapshot and leaves out what is written after; databases are dumped at different moments",
            name,
        )


LIVE_SOURCE = Rule(
    id="source-taking-writes",
    title="The source is taking writes",
    severity=Severity.WARNING,
    changed_in="pg_dump behaviour (all versions)",
    scope=Scope.CLUSTER,
    what_happens="Each database is copied as of one snapshot (its dump's, or stream mode's): rows written later "
    "are not on the target, and each database has a moment of its own; verify then finds the tables that moved "
    "on.",
    remediation="Stop the writers for the move (applications, cron jobs), or keep them out: "
    "ALTER DATABASE … ALLOW_CONNECTIONS false / REVOKE CONNECT, then end their sessions; or plan for the "
    "changes written during the move to be applied again.",
    detect=_live_source,
    verified="14->18 (a writer during check)",
)

RULES = (
    LOCALE_AVAILABILITY,
    USER_COLLATION_LOCALES,
    COLLATION_VERSION_DRIFT,
    DATALLOWCONN_FALSE,
    DATABASE_PROPERTIES_NEED_CREATE,
    TABLESPACES,
    SUBSCRIPTIONS,
    LARGE_OBJECTS,
    EVENT_TRIGGERS,
    PREPARED_XACTS_AND_SLOTS,
    LIVE_SOURCE,
)
