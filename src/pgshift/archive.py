"""A dump's archive as pure data: its table of contents (``pg_restore --list``), the use-list that
leaves items out, and rewrites of the schema script ``pg_restore --file`` writes.

No server and no child program here: the callers (migrate's restore steps, check's schema trial)
run pg_restore and hand over its output. The items are found by their catalog address (class OID,
object OID), which the dump's table of contents carries for every object.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from psycopg import sql

from pgshift.catalog.session import encoded_in

if TYPE_CHECKING:
    from pgshift.migrate.plan import ItemChange

_PG_CLASS = 1259

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


def trigger_ids(items: Sequence[TocItem]) -> set[int]:
    """The dump ids of the triggers and of what is said about them (comments, security labels): the
    data restore leaves them to a step after it. A parallel pg_restore creates a trigger once its
    table's data is in, but a partitioned table has no data of its own: its trigger, which reaches
    every partition, could be created while partitions still load, and fire on their rows."""
    # A comment's line is "SCHEMA TRIGGER name ON table OWNER", the schema unquoted (it may hold
    # spaces): any such line naming TRIGGER goes too — one about another object that only looks so
    # is merely made a step later, while a trigger's comment left in would fail without its trigger.
    about = ("COMMENT", "SECURITY LABEL")
    return {i.dump_id for i in items if i.desc == "TRIGGER" or (i.desc in about and " TRIGGER " in f" {i.rest}")}


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
