"""Remedies: blocked objects carried to the target in a changed but declared form.

A remedy never touches the source. It changes what the target receives: an archive item left out,
or restored rewritten, and statements run after the data. Each one applied is said in the plan
and the report, and verify expects the difference it makes (named by the remedy).

The archive's items are found by their catalog address (class OID, object OID), which the dump's
table of contents carries for every object: a remedy acts on exactly the objects the source's
catalog named, whatever their names look like.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

# The archive's items and the script rewrites live in pgshift.archive (check's schema trial uses them
# too); migrate's steps reach them through this module.
from pgshift.archive import RewriteFailed as RewriteFailed
from pgshift.archive import TocItem as TocItem
from pgshift.archive import drop_generation as drop_generation
from pgshift.archive import drop_set_clauses as drop_set_clauses
from pgshift.archive import omitted_ids as omitted_ids
from pgshift.archive import parse_listing as parse_listing
from pgshift.archive import rewrite_script as rewrite_script
from pgshift.archive import rewrite_script_bytes as rewrite_script_bytes
from pgshift.archive import use_list as use_list
from pgshift.catalog import ddl
from pgshift.catalog import remedies as cat
from pgshift.catalog.session import Connection
from pgshift.errors import UsageError
from pgshift.migrate.plan import Action, AppliedRemedy, ItemChange

# name -> what it does (the help of --remedy, docs/migrate.md)
REMEDIES: Mapping[str, str] = {
    "generated-as-plain": "a generated column of an inheritance child or partition whose parent column is plain "
    "(refused from 16) is restored as a plain column holding the values of its expression",
    "rename-rule": "a rule named _RETURN that is not a view's own (CREATE RULE refuses the name on every major) is "
    "restored as _RETURN_<event>",
    "drop-removed-settings": "SET clauses of functions and procedures, and ALTER DATABASE/ROLE … SET, naming a "
    "parameter the target does not know are left out",
    "leave-out-extension": "an extension the target does not have, and that nothing outside it uses, is left out",
    "exclude-object": "the objects named by --exclude-object, and everything that depends on them, are left out",
}

_PG_CLASS = 1259
_PG_PROC = 1255
_PG_REWRITE = 2618
_PG_EXTENSION = 3079

# --exclude-object KIND: the object types of pg_get_object_address that a user names most.
OBJECT_KINDS = (
    "table",
    "view",
    "materialized view",
    "foreign table",
    "sequence",
    "index",
    "function",
    "procedure",
    "aggregate",
    "type",
    "domain",
    "schema",
    "extension",
    "collation",
    "text search configuration",
    "text search dictionary",
    "publication",
    "event trigger",
    "foreign-data wrapper",
    "server",
)


def check_remedy_names(names: Sequence[str]) -> None:
    """``--remedy NAME`` must name a remedy (``exclude-object`` is asked for by --exclude-object)."""
    unknown = [r for r in names if r not in REMEDIES or r == "exclude-object"]
    if unknown:
        raise UsageError(
            f"--remedy {unknown[0]}: no such remedy",
            hint="remedies: "
            + ", ".join(r for r in REMEDIES if r != "exclude-object")
            + "; to leave an object out use --exclude-object",
        )


def check_spec_databases(specs: Sequence[ObjectSpec], databases: Iterable[str]) -> None:
    """A ``DATABASE:`` prefix of --exclude-object must name a database the run moves."""
    moved = set(databases)
    unknown = sorted({s.database for s in specs if s.database and s.database not in moved})
    if unknown:
        raise UsageError(
            f"--exclude-object names database {unknown[0]!r}, which this run does not move",
            hint="name a database of the selection (or leave out the DATABASE: prefix)",
        )


def check_specs_found(specs: Sequence[ObjectSpec], planned: Iterable[DatabaseRemedies]) -> None:
    """Every --exclude-object must be found in some database: a misspelt name would otherwise leave
    nothing out, silently."""
    found = {text for rem in planned for text in rem.excluded}
    unmatched = [spec.text for spec in specs if spec.text not in found]
    if unmatched:
        raise UsageError(
            f"--exclude-object {unmatched[0]!r}: no database of this run has that object",
            hint="name it as the source's catalog does: KIND schema.name, a routine with its argument types "
            "(pgshift check's schema-trial findings give the exact spelling)",
        )


@dataclass(frozen=True)
class ObjectSpec:
    """``--exclude-object [DATABASE:]KIND NAME``: NAME is ``schema.name``, a routine's with its
    argument types (``public.f(integer, text)``), a schema's or an extension's alone."""

    text: str
    database: str | None
    kind: str
    names: tuple[str, ...]
    args: tuple[str, ...]


def parse_object_spec(text: str) -> ObjectSpec:
    database: str | None = None
    rest = text.strip()
    head, sep, tail = rest.partition(":")
    if sep and " " not in head and "." not in head and "(" not in head:
        database, rest = head, tail.strip()
    kind = next((k for k in sorted(OBJECT_KINDS, key=len, reverse=True) if rest.lower().startswith(k + " ")), None)
    if kind is None:
        raise UsageError(
            f"--exclude-object {text!r}: say which kind of object it is",
            hint="e.g. --exclude-object 'table public.child', 'shop:function public.f(integer)'; kinds: "
            + ", ".join(OBJECT_KINDS),
        )
    name = rest[len(kind) :].strip()
    args: tuple[str, ...] = ()
    if name.endswith(")") and "(" in name:
        name, _, arglist = name[:-1].partition("(")
        args = tuple(a.strip() for a in _split_top(arglist) if a.strip())
    names = tuple(_split_identifiers(name.strip()))
    if not names or any(not n for n in names):
        raise UsageError(f"--exclude-object {text!r}: no object name", hint="give it as KIND schema.name")
    return ObjectSpec(text, database, kind, names, args)


def _split_identifiers(text: str) -> list[str]:
    """``a."B c".d`` → ["a", "B c", "d"]: unquoted names fold to lower case, as the server does."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == '"':
            j = i + 1
            part = ""
            while j < len(text):
                if text[j] == '"':
                    if text[j + 1 : j + 2] == '"':
                        part += '"'
                        j += 2
                        continue
                    break
                part += text[j]
                j += 1
            out.append(part)
            i = j + 1
        else:
            j = text.find(".", i)
            j = len(text) if j < 0 else j
            out.append(text[i:j].strip().lower())
            i = j
        if i < len(text) and text[i] == ".":
            i += 1
    return out


def _split_top(text: str) -> list[str]:
    depth, part, out = 0, "", []
    for ch in text:
        if ch == "," and depth == 0:
            out.append(part)
            part = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        part += ch
    out.append(part)
    return out


@dataclass
class DatabaseRemedies:
    """What the remedies do to one database: archive items, statements after the data, the record."""

    items: list[ItemChange] = field(default_factory=list)
    after_data: list[Action] = field(default_factory=list)
    applied: list[AppliedRemedy] = field(default_factory=list)
    left_out_extensions: set[str] = field(default_factory=set)
    excluded: set[str] = field(default_factory=set)  # the --exclude-object specs found in this database

    @property
    def rewrites_schema(self) -> bool:
        return any(i.plain_columns or i.drop_settings for i in self.items)

    @property
    def omits(self) -> bool:
        return any(i.omit for i in self.items)


@dataclass(frozen=True)
class ExcludedObject:
    """An object ``--exclude-object`` names, found in one database: it and what cannot exist without it."""

    spec: ObjectSpec
    root: cat.CatalogObject
    found: tuple[cat.CatalogObject, ...]  # what DROP … CASCADE would remove, root first (cat.dependents)


@dataclass(frozen=True)
class RemedyFacts:
    """What the remedies read of one database's catalog: from a session on the source
    (``read_facts``), or as a backup recorded them in the dump's snapshot (backup/remedies.py)."""

    generated_child_columns: tuple[cat.GeneratedChildColumn, ...] = ()
    reserved_name_rules: tuple[cat.ReservedNameRule, ...] = ()
    routine_settings: tuple[cat.RoutineSettings, ...] = ()
    extension_uses: tuple[cat.ExtensionUse, ...] = ()
    excluded: tuple[ExcludedObject, ...] = ()


def read_facts(
    conn: Connection, remedies: Iterable[str], *, database: str = "", specs: Sequence[ObjectSpec] = ()
) -> RemedyFacts:
    """What ``remedies`` (and the --exclude-object ``specs``) need of ``database``, a session on it."""
    wanted = set(remedies)
    generated = tuple(cat.generated_child_columns(conn)) if "generated-as-plain" in wanted else ()
    rules = tuple(cat.reserved_name_rules(conn)) if "rename-rule" in wanted else ()
    routines = tuple(cat.routine_settings(conn)) if "drop-removed-settings" in wanted else ()
    extensions = tuple(cat.extension_uses(conn)) if "leave-out-extension" in wanted else ()
    excluded: list[ExcludedObject] = []
    for spec in specs:
        if spec.database not in (None, database):
            continue
        root = cat.resolve_object(conn, spec.kind, list(spec.names), list(spec.args))
        if root is None:
            if spec.database is None:
                continue  # named for every database: those without it are fine
            raise UsageError(
                f"--exclude-object {spec.text!r}: database {database!r} of the source has no such {spec.kind}",
                hint="name it as the source's catalog does (schema.name; a routine with its argument types)",
            )
        excluded.append(ExcludedObject(spec, root, tuple(cat.dependents(conn, root))))
    return RemedyFacts(generated, rules, routines, extensions, tuple(excluded))


def plan_database(
    conn: Connection,
    database: str,
    *,
    remedies: Sequence[str],
    specs: Sequence[ObjectSpec],
    target_major: int,
    target_settings: frozenset[str],
    target_extensions: frozenset[str],
    superuser: bool,
) -> DatabaseRemedies:
    """The remedies asked for, on the objects of ``database`` (a session on it, on the source)."""
    return plan_from_facts(
        read_facts(conn, remedies, database=database, specs=specs),
        database,
        remedies=remedies,
        target_major=target_major,
        target_settings=target_settings,
        target_extensions=target_extensions,
        superuser=superuser,
    )


def plan_from_facts(
    facts: RemedyFacts,
    database: str,
    *,
    remedies: Sequence[str],
    target_major: int,
    target_settings: frozenset[str],
    target_extensions: frozenset[str],
    superuser: bool,
) -> DatabaseRemedies:
    """The remedies asked for, on the objects ``facts`` names of ``database``: the item changes,
    statements after the data and record each makes (no server asked)."""
    out = DatabaseRemedies()
    wanted = set(remedies)
    # 16 refuses a generated child column under a plain parent column (accepted up to 15).
    if "generated-as-plain" in wanted and target_major >= 16:
        _generated_as_plain(facts.generated_child_columns, database, out, superuser)
    # CREATE RULE "_RETURN" for anything but a view's ON SELECT rule is refused by every major
    # (only ALTER RULE … RENAME up to 14 could make one), so the rule is renamed whatever the target.
    if "rename-rule" in wanted:
        _rename_rules(facts.reserved_name_rules, database, out)
    if "drop-removed-settings" in wanted:
        for routine in facts.routine_settings:
            names = tuple(n for n in (s.split("=", 1)[0] for s in routine.settings) if unknown(n, target_settings))
            if names:
                out.items.append(
                    ItemChange(
                        "drop-removed-settings",
                        _PG_PROC,
                        routine.oid,
                        f"{routine.kind} {routine.signature}",
                        drop_settings=names,
                    )
                )
                out.applied.append(
                    AppliedRemedy(
                        "drop-removed-settings",
                        database,
                        routine.kind,
                        routine.signature,
                        f"created without SET {', '.join(names)}",
                    )
                )
    if "leave-out-extension" in wanted:
        for ext in facts.extension_uses:
            if ext.name not in target_extensions and ext.outside_uses == 0:
                out.items.append(
                    ItemChange("leave-out-extension", _PG_EXTENSION, ext.oid, f"extension {ext.name}", True)
                )
                out.left_out_extensions.add(ext.name)
                out.applied.append(
                    AppliedRemedy(
                        "leave-out-extension",
                        database,
                        "extension",
                        ext.name,
                        "left out: the target does not have it and nothing uses it",
                    )
                )
    for excluded in facts.excluded:
        spec, root = excluded.spec, excluded.root
        out.excluded.add(spec.text)
        # Listed: what the user would miss; the parts of those (indexes, row types, a view's rule) go with them.
        dependent = [o.description for o in excluded.found[1:] if not o.part]
        for obj in excluded.found:
            out.items.append(ItemChange("exclude-object", obj.classid, obj.objid, obj.description, True))
        out.applied.append(
            AppliedRemedy(
                "exclude-object",
                database,
                spec.kind,
                root.description.removeprefix(spec.kind + " "),
                "left out" + (f", with what depends on it: {', '.join(dependent)}" if dependent else ""),
                also=tuple(dependent),
            )
        )
    return out


def database_settings(
    remedies: Sequence[str], known: frozenset[str], database: str, settings: Iterable[str]
) -> list[AppliedRemedy]:
    """``ALTER DATABASE … SET`` of ``database`` that drop-removed-settings leaves out (``settings``:
    ``name=value`` items, as pg_db_role_setting holds them)."""
    return [
        AppliedRemedy(
            "drop-removed-settings",
            database,
            "database",
            database,
            f"ALTER DATABASE … SET {setting.split('=', 1)[0]} left out",
        )
        for setting in settings
        if drops_setting(remedies, known, setting)
    ]


def drops_setting(remedies: Sequence[str], known: frozenset[str], setting: str) -> bool:
    """Whether ``ALTER DATABASE/ROLE … SET`` of ``setting`` (``name=value``) is left out by a remedy."""
    return "drop-removed-settings" in remedies and unknown(setting.split("=", 1)[0], known)


def unknown(name: str, known: frozenset[str]) -> bool:
    # Custom parameters (prefix.name) are placeholders every server accepts.
    return "." not in name and name.lower() not in known


def _generated_as_plain(
    columns: Iterable[cat.GeneratedChildColumn], database: str, out: DatabaseRemedies, superuser: bool
) -> None:
    by_table: dict[int, list[cat.GeneratedChildColumn]] = {}
    for col in columns:
        by_table.setdefault(col.relid, []).append(col)
    for relid, cols in by_table.items():
        first = cols[0]
        label = first.label.rsplit(".", 1)[0]
        out.items.append(
            ItemChange("generated-as-plain", _PG_CLASS, relid, f"table {label}", False, tuple(c.column for c in cols))
        )
        # pg_dump leaves generated columns out of the data: their values are computed again.
        query = ddl.fill_generated_as_plain(
            first.schema, first.table, [(c.column, c.expression) for c in cols], superuser=superuser
        )
        out.after_data.append(Action(f"table {label} (generated-as-plain)", query))
        for c in cols:
            out.applied.append(
                AppliedRemedy(
                    "generated-as-plain",
                    database,
                    "column",
                    c.label,
                    f"a plain column holding the values of {c.expression}",
                )
            )


def _rename_rules(rules: Iterable[cat.ReservedNameRule], database: str, out: DatabaseRemedies) -> None:
    for rule in rules:
        new = f"_RETURN_{rule.event}"
        n = 1
        while new in rule.siblings:
            n += 1
            new = f"_RETURN_{rule.event}_{n}"
        try:
            statement = ddl.create_rule_as(rule.definition, new)
        except ValueError as exc:
            raise UsageError(f"rule _RETURN on {rule.label}: {exc}") from None
        out.items.append(ItemChange("rename-rule", _PG_REWRITE, rule.oid, f"rule _RETURN on {rule.label}", True))
        out.after_data.append(
            Action(
                f"rule {new} on {rule.label} (rename-rule)",
                statement,
                # A resume after the statement committed finds the rule made.
                tolerates=("duplicate_object",),
            )
        )
        out.applied.append(
            AppliedRemedy(
                "rename-rule",
                database,
                "rule",
                f"{rule.label}._RETURN",
                f"restored as rule {new}",
                renamed_to=new,
            )
        )
