"""Rules about extensions, languages and superuser-only objects."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.catalog.cluster import ExtensionInfo
from pgshift.catalog.remedies import extension_uses
from pgshift.catalog.session import fetch_all
from pgshift.checks import Severity
from pgshift.checks.rule import Context, Hit, Rule, Scope

# Extensions that left the PostgreSQL distribution, as name -> first major without them.
REMOVED_EXTENSIONS: dict[str, int] = {
    "tsearch2": 10,
    "chkpass": 11,  # RN 11
    "timetravel": 12,  # RN 12
    "plpythonu": 15,  # RN 15: Python 2 support removed
    "plpython2u": 15,
    "hstore_plpythonu": 15,
    "hstore_plpython2u": 15,
    "jsonb_plpythonu": 15,
    "jsonb_plpython2u": 15,
    "ltree_plpythonu": 15,
    "ltree_plpython2u": 15,
    "adminpack": 17,  # RN 17
    "old_snapshot": 17,  # RN 17
}


def removed_on(ctx: Context, name: str) -> bool:
    gone = REMOVED_EXTENSIONS.get(name)
    return gone is not None and ctx.source_major < gone <= ctx.target_major


def _moved(ctx: Context, ext: ExtensionInfo) -> bool:
    """Whether the move creates the extension: with object filters migrate creates every extension whose
    schema exists on the target (planner extension_actions), and leaves the others out."""
    return ctx.selection is None or ctx.selection.creates_schema(ext.schema)


def _unused(ctx: Context) -> set[str]:
    """Extensions nothing outside them depends on (pg_depend): migrate's leave-out-extension remedy can
    leave those out, with nothing else missing on the target."""
    if "unused_extensions" not in ctx.cache:
        ctx.cache["unused_extensions"] = {u.name for u in extension_uses(ctx.conn) if u.outside_uses == 0}
    unused: set[str] = ctx.cache["unused_extensions"]
    return unused


def _removed_extensions(ctx: Context) -> Iterator[Hit]:
    assert ctx.db_inventory is not None
    for ext in ctx.db_inventory.extensions:
        if removed_on(ctx, ext.name) and _moved(ctx, ext):
            yield Hit(
                ext.name,
                f"extension {ext.name} {ext.version} in database {ctx.database} no longer exists in PostgreSQL "
                f"{REMOVED_EXTENSIONS[ext.name]}"
                + ("; nothing outside it uses its objects" if ext.name in _unused(ctx) else ""),
                ctx.database,
                remedy="leave-out-extension" if ext.name in _unused(ctx) else None,
            )


REMOVED_EXTENSION = Rule(
    id="removed-extension",
    title="Extensions removed from PostgreSQL",
    severity=Severity.BLOCKER,
    changed_in="PostgreSQL 11 (chkpass), 12 (timetravel), 15 (plpython2u), 17 (adminpack, old_snapshot)",
    what_happens="CREATE EXTENSION fails ('could not open extension control file', 'extension is not "
    "available') and everything depending on the extension fails after it.",
    remediation="Drop the extension and its users on the source, or port them (plpython3u, pg_read_file …).",
    detect=_removed_extensions,
    verified="chkpass 10->11, timetravel 11->12, adminpack 16->17",
)


def _availability(ctx: Context) -> Iterator[Hit]:
    assert ctx.db_inventory is not None and ctx.target is not None
    for ext in ctx.db_inventory.extensions:
        if removed_on(ctx, ext.name) or not _moved(ctx, ext):
            continue  # removed-extension names it; or the move leaves it out
        avail = ctx.target.extensions.get(ext.name)
        if avail is None:
            unused = ext.name in _unused(ctx)
            yield Hit(
                ext.name,
                f"extension {ext.name} {ext.version} (database {ctx.database}) is not installed on the target host"
                + ("; nothing outside it uses its objects" if unused else ""),
                ctx.database,
                remedy="leave-out-extension" if unused else None,
            )
        elif ext.version not in avail.versions and ext.name != "plpgsql":
            yield Hit(
                ext.name,
                f"extension {ext.name} is {ext.version} on the source; the target will create "
                f"{avail.default_version} (available: {', '.join(avail.versions)})",
                ctx.database,
                Severity.INFO,
            )


EXTENSION_AVAILABILITY = Rule(
    id="extension-availability",
    title="Extensions missing on the target, or at another version",
    severity=Severity.BLOCKER,
    changed_in="pg_dump behaviour (all versions)",
    needs_target=True,
    what_happens="An extension not installed on the target host fails at CREATE EXTENSION; the restore creates "
    "the target's default version, not the source's.",
    remediation="Install the extension's packages on the target host; follow its own upgrade notes.",
    detect=_availability,
    verified="13->14, 11->18",
)

# Extensions whose objects changed, as (name, changed in major, what).
_EXTENSION_CHANGES: tuple[tuple[str, int, str], ...] = (
    ("adminpack", 11, "pg_file_read, pg_file_length and pg_logfile_rotate were removed"),
    ("ltree", 13, "lquery matching semantics changed"),
    ("hstore", 14, "the @ and ~ operators were removed (use @> and <@)"),
    ("cube", 14, "the @ and ~ operators were removed (use @> and <@)"),
    ("intarray", 14, "@ and ~ were removed; <@ and @> no longer use the GiST index"),
    ("seg", 14, "the @ and ~ operators were removed (use @> and <@)"),
    ("xml2", 15, "xml_is_well_formed was removed"),
    ("pg_walinspect", 16, "the *_till_end_of_wal functions were removed"),
    ("pgrowlocks", 17, "lock mode labels changed"),
    ("pg_stat_statements", 17, "columns were renamed (blk_read_time -> shared_blk_read_time …)"),
)


def _extension_changes(ctx: Context) -> Iterator[Hit]:
    assert ctx.db_inventory is not None
    installed = {e.name for e in ctx.db_inventory.extensions if _moved(ctx, e)}
    for name, major, what in _EXTENSION_CHANGES:
        if name in installed and ctx.source_major < major <= ctx.target_major:
            yield Hit(name, f"extension {name}: in {major} {what}", ctx.database)


EXTENSION_OBJECT_CHANGES = Rule(
    id="extension-object-changes",
    title="Extensions whose functions or operators changed",
    severity=Severity.INFO,
    changed_in="PostgreSQL 11–17",
    what_happens="Extension updates change objects that user code uses; the restore works, the application may not.",
    remediation="Test the application against the target; removed-builtin-operators names stored uses of @ and ~.",
    detect=_extension_changes,
    verified="docs only",
)


def _superuser_only(ctx: Context) -> Iterator[Hit]:
    assert ctx.target is not None and ctx.db_inventory is not None
    if ctx.target.privileges.superuser:
        return
    for r in fetch_all(
        ctx.conn,
        """
        SELECT p.oid::regprocedure::text AS object, l.lanname, n.nspname AS schema
        FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE NOT l.lanpltrusted AND p.oid >= 16384
          AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = 'pg_proc'::regclass
                          AND x.objid = p.oid AND x.deptype = 'e')
        ORDER BY 1
        """,
    ):
        yield Hit(
            r["object"],
            f"function {r['object']} is in the untrusted language {r['lanname']}",
            ctx.database,
            schema=r["schema"],
        )
    # pg_dump -n/-t dump no event triggers and no subscriptions.
    everything = ctx.selection is None or ctx.selection.include_everything
    for name in ctx.db_inventory.event_triggers if everything else ():
        yield Hit(name, f"event trigger {name} needs a superuser to create", ctx.database)
    for name in ctx.db_inventory.subscriptions if everything else ():
        yield Hit(name, f"subscription {name} needs a superuser to dump and create", ctx.database)
    for ext in ctx.db_inventory.extensions:
        avail = ctx.target.extensions.get(ext.name)
        if avail is not None and ext.name != "plpgsql" and not avail.trusted and _moved(ctx, ext):
            yield Hit(ext.name, f"extension {ext.name} is not trusted: only a superuser can create it", ctx.database)


SUPERUSER_ONLY_OBJECTS = Rule(
    id="superuser-only-objects",
    title="Objects only a superuser can restore (the target role is not one)",
    severity=Severity.BLOCKER,
    changed_in="pg_dump behaviour (all versions)",
    needs_target=True,
    what_happens="As a non-superuser, functions in untrusted languages (C, plpython3u …), event triggers, "
    "subscriptions and untrusted extensions fail ('permission denied for language'), and so does what "
    "depends on them (tables whose CHECK uses such a function lose their data).",
    remediation="Restore as a superuser, or replace those objects on the source beforehand.",
    detect=_superuser_only,
    verified="17->18",
)


def _plpython2(ctx: Context) -> Iterator[Hit]:
    if ctx.selection is not None and not ctx.selection.include_everything:
        return  # pg_dump -n/-t dump no procedural languages
    for r in fetch_all(
        ctx.conn,
        """
        SELECT l.lanname AS object FROM pg_language l WHERE l.lanname IN ('plpythonu', 'plpython2u')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_language'::regclass
                          AND d.objid = l.oid AND d.deptype = 'e')
        """,
    ):
        yield Hit(r["object"], f"language {r['object']} (Python 2) is gone from PostgreSQL 15", ctx.database)


PLPYTHON2_AVAILABILITY = Rule(
    id="plpython2-availability",
    title="Python 2 procedural language created outside an extension",
    severity=Severity.BLOCKER,
    changed_in="PostgreSQL 15",
    source_max=14,
    target_min=15,
    scope=Scope.DATABASE,
    what_happens="plpythonu/plpython2u were removed in 15 (extension installs are named by removed-extension).",
    remediation="Port the functions to plpython3u (CREATE EXTENSION plpython3u; change LANGUAGE).",
    detect=_plpython2,
    verified="packaging only",
)

RULES = (
    REMOVED_EXTENSION,
    EXTENSION_AVAILABILITY,
    EXTENSION_OBJECT_CHANGES,
    SUPERUSER_ONLY_OBJECTS,
    PLPYTHON2_AVAILABILITY,
)
