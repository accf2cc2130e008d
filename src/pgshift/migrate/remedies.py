"""Remedies: blocked objects carried to the target in a changed but declared form.

A remedy never touches the source. It changes what the target receives: an archive item left out,
or restored rewritten, and statements run after the data. Each one applied is said in the plan
and the report, and verify expects the difference it makes (named by the remedy).

The archive's items are found by their catalog address (class OID, object OID), which the dump's
table of contents carries for every object: a remedy acts on exactly the objects the source's
catalog named, whatever their names look like.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from psycopg import sql

from pgshift.catalog import ddl
from pgshift.catalog import remedies as cat
from pgshift.catalog.session import Connection, encoded_in
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
    out = DatabaseRemedies()
    wanted = set(remedies)
    # 16 refuses a generated child column under a plain parent column (accepted up to 15).
    if "generated-as-plain" in wanted and target_major >= 16:
        _generated_as_plain(conn, database, out, superuser)
    # CREATE RULE "_RETURN" for anything but a view's ON SELECT rule is refused by every major
    # (only ALTER RULE … RENAME up to 14 could make one), so the rule is renamed whatever the target.
    if "rename-rule" in wanted:
        _rename_rules(conn, database, out)
    if "drop-removed-settings" in wanted:
        for routine in cat.routine_settings(conn):
            names = tuple(n for n in (s.split("=", 1)[0] for s in routine.settings) if unknown(n, target_settings))
            if names:
                out.items.append(
                    ItemChange(
                        "drop-removed-settings",
                        _PG_PROC,
                        routine.oid,
                        f"{routine.kind} {routine.signature}",
                        False,
                        (),
                        names,
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
        for ext in cat.extension_uses(conn):
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
        out.excluded.add(spec.text)
        found = cat.dependents(conn, root)
        # Listed: what the user would miss; the parts of those (indexes, row types, a view's rule) go with them.
        dependent = [o.description for o in found[1:] if not o.part]
        for obj in found:
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


def _generated_as_plain(conn: Connection, database: str, out: DatabaseRemedies, superuser: bool) -> None:
    by_table: dict[int, list[cat.GeneratedChildColumn]] = {}
    for col in cat.generated_child_columns(conn):
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


def _rename_rules(conn: Connection, database: str, out: DatabaseRemedies) -> None:
    for rule in cat.reserved_name_rules(conn):
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


# --- the archive's items ---------------------------------------------------------------------------

_TOC_LINE = re.compile(r"^(?P<id>\d+); (?P<classid>\d+) (?P<objid>\d+) (?P<rest>.*)$")
# Items that exist only for another item (its data, its comment, grants …): left out with it.
_WITH_OBJECT = ("TABLE DATA", "SEQUENCE SET", "SEQUENCE OWNED BY", "MATERIALIZED VIEW DATA")
_ABOUT_OBJECT = ("COMMENT", "ACL", "SECURITY LABEL")
# pg_dump's item types, longest first (the listing separates type, schema and name by spaces).
_DESCS = tuple(
    sorted(
        (
            "ACCESS METHOD",
            "ACL",
            "AGGREGATE",
            "BLOB",
            "BLOB METADATA",
            "BLOBS",
            "CAST",
            "CHECK CONSTRAINT",
            "COLLATION",
            "COMMENT",
            "CONSTRAINT",
            "CONVERSION",
            "DATABASE",
            "DATABASE PROPERTIES",
            "DEFAULT",
            "DEFAULT ACL",
            "DOMAIN",
            "ENCODING",
            "EVENT TRIGGER",
            "EXTENSION",
            "FK CONSTRAINT",
            "FOREIGN DATA WRAPPER",
            "FOREIGN TABLE",
            "FUNCTION",
            "INDEX",
            "INDEX ATTACH",
            "LARGE OBJECT",
            "MATERIALIZED VIEW",
            "MATERIALIZED VIEW DATA",
            "OPERATOR",
            "OPERATOR CLASS",
            "OPERATOR FAMILY",
            "POLICY",
            "PROCEDURE",
            "PROCEDURAL LANGUAGE",
            "PUBLICATION",
            "PUBLICATION TABLE",
            "PUBLICATION TABLES IN SCHEMA",
            "ROW SECURITY",
            "RULE",
            "SCHEMA",
            "SECURITY LABEL",
            "SEQUENCE",
            "SEQUENCE OWNED BY",
            "SEQUENCE SET",
            "SERVER",
            "SHELL TYPE",
            "STATISTICS",
            "STATISTICS DATA",
            "STDSTRINGS",
            "SEARCHPATH",
            "SUBSCRIPTION",
            "SUBSCRIPTION TABLE",
            "TABLE",
            "TABLE ATTACH",
            "TABLE DATA",
            "TEXT SEARCH CONFIGURATION",
            "TEXT SEARCH DICTIONARY",
            "TEXT SEARCH PARSER",
            "TEXT SEARCH TEMPLATE",
            "TRANSFORM",
            "TRIGGER",
            "TYPE",
            "USER MAPPING",
            "VIEW",
        ),
        key=len,
        reverse=True,
    )
)


@dataclass(frozen=True)
class TocItem:
    dump_id: int
    classid: int
    objid: int
    desc: str
    rest: str  # "schema name owner" as the listing prints them

    @property
    def key(self) -> tuple[int, int]:
        return (self.classid, self.objid)


def parse_listing(lines: Iterable[str]) -> list[TocItem]:
    out = []
    for line in lines:
        m = _TOC_LINE.match(line)
        if not m:
            continue
        text = m["rest"]
        desc = next((d for d in _DESCS if text == d or text.startswith(d + " ")), text.split(" ", 1)[0])
        out.append(TocItem(int(m["id"]), int(m["classid"]), int(m["objid"]), desc, text[len(desc) :].strip()))
    return out


def omitted_ids(items: Sequence[TocItem], changes: Iterable[ItemChange]) -> set[int]:
    """The dump ids a restore leaves out: the items the remedies omit, with their data, comments, grants."""
    keys = {(c.classid, c.objid) for c in changes if c.omit}
    if not keys:
        return set()
    primary = [i for i in items if i.key in keys and i.classid]
    out = {i.dump_id for i in primary}
    tables = {i.objid for i in primary if i.classid == _PG_CLASS}
    about: set[str] = set()
    same: set[str] = set()
    columns: list[tuple[str, str]] = []
    for i in primary:
        schema, _, tag_owner = i.rest.partition(" ")
        same.add(i.rest)
        about.add(f"{schema} {i.desc} {tag_owner}".rstrip())
        if i.desc in ("TABLE", "VIEW", "MATERIALIZED VIEW", "FOREIGN TABLE"):
            tag = tag_owner.rsplit(" ", 1)[0] if " " in tag_owner else tag_owner
            columns.append((f"{schema} COLUMN {tag}.", tag_owner[len(tag) :]))

    def goes_with(i: TocItem) -> bool:
        if i.desc == "TABLE DATA" and i.objid in tables:
            return True
        if i.desc in _WITH_OBJECT:
            return i.rest in same
        if i.desc in _ABOUT_OBJECT:
            return i.rest.rstrip() in about or any(i.rest.startswith(p) and i.rest.endswith(o) for p, o in columns)
        return False

    out |= {i.dump_id for i in items if goes_with(i)}
    return out


def use_list(listing: Sequence[str], skip: set[int]) -> list[str]:
    """The lines of a ``pg_restore --use-list`` file: the listing with the skipped items commented out."""
    out = []
    for line in listing:
        m = _TOC_LINE.match(line)
        out.append(f";{line}" if m and int(m["id"]) in skip else line)
    return out


# --- rewriting the schema script ---------------------------------------------------------------------

_ENTRY = re.compile(r"^-- TOC entry (?P<id>\d+) \(class (?P<classid>\d+) OID (?P<objid>\d+)\)$", re.MULTILINE)


class RewriteFailed(Exception):
    pass


def rewrite_script_bytes(data: bytes, changes: Sequence[ItemChange], encoding: str) -> tuple[bytes, list[str]]:
    """``rewrite_script`` on the script's own bytes: pg_restore writes it in the dump's encoding, the
    source database's ``encoding`` (LATIN1, EUC_JP, SQL_ASCII …), so the names the catalog session
    read (text, with undecodable bytes kept as surrogates) are matched as the bytes they are there."""
    # One character per byte: every byte of every encoding passes through unchanged.
    text, done = rewrite_script(data.decode("latin-1"), changes, name_in_script=_bytewise(encoding))
    return text.encode("latin-1"), done


def _bytewise(encoding: str) -> Callable[[str], str]:
    def in_script(name: str) -> str:
        return encoded_in(encoding, name).decode("latin-1")

    return in_script


def rewrite_script(
    text: str, changes: Sequence[ItemChange], *, name_in_script: Callable[[str], str] | None = None
) -> tuple[str, list[str]]:
    """The pre-data script of ``pg_restore --verbose --file`` with the remedies' rewrites applied.

    Each item starts at its ``-- TOC entry N (class C OID O)`` header; only the items a change names
    are edited. Returns the new text and what was changed; a rewrite that finds nothing to change
    raises (the dump does not look as the remedy expects: better stop than restore it unchanged).
    ``name_in_script`` spells a catalog name as the script's text holds it (``rewrite_script_bytes``);
    by default the script is text decoded as the names are.
    """
    spell = name_in_script or (lambda name: name)
    wanted = {(c.classid, c.objid): c for c in changes if c.plain_columns or c.drop_settings}
    if not wanted:
        return text, []
    heads = list(_ENTRY.finditer(text))
    pieces: list[str] = []
    done: list[str] = []
    pos = 0
    for n, head in enumerate(heads):
        end = heads[n + 1].start() if n + 1 < len(heads) else len(text)
        change = wanted.pop((int(head["classid"]), int(head["objid"])), None)
        if change is None:
            continue
        pieces.append(text[pos : head.start()])
        chunk = text[head.start() : end]
        for column in change.plain_columns:
            chunk = drop_generation(chunk, spell(column), shown=column)
            done.append(f"{change.about}: column {column} restored as a plain column")
        if change.drop_settings:
            chunk = drop_set_clauses(chunk, [spell(n) for n in change.drop_settings])
            done.append(f"{change.about}: SET {', '.join(change.drop_settings)} left out")
        pieces.append(chunk)
        pos = end
    pieces.append(text[pos:])
    if wanted:
        missing = ", ".join(c.about for c in wanted.values())
        raise RewriteFailed(f"the schema script has no item for {missing}")
    return "".join(pieces), done


def drop_generation(chunk: str, column: str, *, shown: str | None = None) -> str:
    """Remove ``GENERATED ALWAYS AS (…) STORED`` from ``column``'s line of a CREATE TABLE (``shown``:
    the column's name for messages, when ``column`` is spelled as the script's bytes)."""
    ident = sql.Identifier(column).as_string(None)
    names = {ident, column} if ident == f'"{column}"' and _plain_ident(column) else {ident}
    for name in names:
        m = re.search(rf"^    {re.escape(name)} .*?( GENERATED ALWAYS AS \()", chunk, re.MULTILINE)
        if m is None:
            continue
        start = m.start(1)
        close = _matching_paren(chunk, m.end(1) - 1)
        tail = chunk[close + 1 :]
        if not tail.startswith(" STORED"):
            break
        return chunk[:start] + tail[len(" STORED") :]
    raise RewriteFailed(f"column {shown or column}: no GENERATED ALWAYS AS (…) STORED clause found in its CREATE TABLE")


def _plain_ident(name: str) -> bool:
    return re.fullmatch(r"[a-z_][a-z0-9_$]*", name) is not None


def _matching_paren(text: str, open_at: int) -> int:
    """The index of the ``)`` closing the ``(`` at ``open_at``, skipping quoted literals and names."""
    depth = 0
    i = open_at
    while i < len(text):
        ch = text[i]
        if ch in ("'", '"'):
            j = i + 1
            while j < len(text):
                if text[j] == ch:
                    if text[j + 1 : j + 2] == ch:
                        j += 2
                        continue
                    break
                j += 1
            i = j + 1
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise RewriteFailed("unbalanced parentheses in a generation expression")


def drop_set_clauses(chunk: str, names: Sequence[str]) -> str:
    """Remove the ``    SET name TO …`` lines of a CREATE FUNCTION/PROCEDURE for each name."""
    out = chunk
    for name in names:
        ident = sql.Identifier(name).as_string(None) if not _plain_ident(name) else name
        out, n = re.subn(rf"^    SET {re.escape(ident)} TO .*\n", "", out, count=1, flags=re.MULTILINE | re.IGNORECASE)
        if n == 0:
            raise RewriteFailed(f"no SET {name} clause found")
    return out
