"""Shared-catalog text the target would refuse: names, comments and settings of roles, databases
and tablespaces whose bytes are not valid in the encoding the target receives them in.

PostgreSQL keeps these in catalogs shared by every database of a cluster (pg_authid, pg_database,
pg_tablespace, pg_shdescription, pg_db_role_setting) and stores the bytes of whichever session
wrote them, unconverted: a role named "Jürgen" from a LATIN1 database holds 0xfc, which a UTF8
database cannot hold. migrate replays them as statements on the target (roles, comments, settings
on its maintenance database, role settings of one database on that database), and the target's
server refuses bytes that are not valid in its encoding: half-way through the globals. So such
text is a blocker, found before anything runs, with the name escaped (\\xNN), how it reads in
the source's other encodings, and the statement that fixes it on the source.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pgshift.catalog.cluster import bootstrap_superuser
from pgshift.catalog.session import accepts, decoded_in, encoded, encoded_in, printable
from pgshift.checks import Severity
from pgshift.checks.rule import Context, Hit, Rule, Scope


@dataclass(frozen=True)
class _Text:
    kind: str  # "role", "database", "tablespace"
    name: str  # the object's name as the source's session read it
    part: str  # "name", "comment", "setting"
    text: str
    where: str | None = None  # the source database whose copy the statement runs on (None: the maintenance database)
    renamed: bool = False  # the text is the new name --rename gives the database on the target, not the source's


def _target_encoding(ctx: Context) -> str:
    if ctx.target is not None:
        return ctx.target.server.settings.get("server_encoding", "UTF8")
    return "UTF8"  # offline: initdb's choice with a UTF-8 locale, the usual case


def _shared_texts(ctx: Context) -> Iterator[_Text]:
    existing = ctx.target.roles if ctx.target is not None else frozenset()
    bootstrap = bootstrap_superuser(ctx.conn)
    for role in ctx.source.roles:
        # migrate creates neither the source's bootstrap superuser nor a role the target has.
        if role.name != bootstrap and role.name not in existing:
            yield _Text("role", role.name, "name", role.name)
        if role.comment:
            yield _Text("role", role.name, "comment", role.comment)
        for database, setting in role.settings:
            yield _Text("role", role.name, "setting", setting, database)
    moving = {d.name for d in ctx.source.checked}
    for db in ctx.source.databases:
        if db.name not in moving:
            continue
        # The target gets the name the run gives it (--rename), not the source's.
        new = ctx.target_name(db.name)
        yield _Text("database", db.name, "name", new, renamed=new != db.name)
        if db.comment:
            yield _Text("database", db.name, "comment", db.comment)
        for setting in db.settings:
            yield _Text("database", db.name, "setting", setting)
    for ts in ctx.source.tablespaces:
        yield _Text("tablespace", ts.name, "name", ts.name)


def _readings(ctx: Context, data: bytes, skip: str | None) -> list[tuple[str, str, str]]:
    """How ``data`` reads in the source's other database encodings: (text, encoding, database).

    Multibyte encodings first: valid there is evidence; a single-byte encoding reads anything.
    """
    by_encoding: dict[str, str] = {}
    for db in ctx.source.databases:
        if db.allow_connections and db.name != skip:
            by_encoding.setdefault(db.encoding, db.name)
    found = []
    for encoding, database in by_encoding.items():
        if encoding == "SQL_ASCII":
            continue
        text = decoded_in(encoding, data)
        if text is not None and accepts(encoding, data):
            found.append((text, encoding, database))
    found.sort(key=lambda r: (r[1] not in ("UTF8", "EUC_JP", "EUC_CN", "EUC_KR", "EUC_TW", "EUC_JIS_2004"), r[1]))
    return found


def _ident(name: str) -> str:
    # Quoted by hand: psycopg cannot quote without a connection text that is not valid UTF-8.
    return printable('"' + name.replace('"', '""') + '"')


def _literal(text: str) -> str:
    return printable("'" + text.replace("'", "''") + "'")


def _fix(item: _Text, readings: list[tuple[str, str, str]], home: str, encoding: str) -> str:
    if item.part == "name":
        statement = {"role": "ALTER ROLE", "database": "ALTER DATABASE", "tablespace": "ALTER TABLESPACE"}[item.kind]
        if readings:
            text, enc, database = readings[0]
            return (
                f"rename it on the source while connected to database {database} ({enc}), where it reads "
                f"\"{text}\": psql -d {database} -c '{statement} {_ident(text)} RENAME TO new_name' "
                f"(a name in ASCII is safe in every encoding)"
            )
        return (
            f"rename it on the source ({statement} … RENAME TO …) while connected to a database of the "
            "encoding it was written in"
        )
    named = item.name if accepts(encoding, encoded_in(encoding, item.name)) else None
    subject = f"{item.kind.upper()} {_ident(named) if named else '… (renamed first, see its name)'}"
    if item.part == "comment":
        new = readings[0][0] if readings else "new text"
        return f"comment it again on the source from {home}: COMMENT ON {subject} IS {_literal(new)}"
    name = item.text.partition("=")[0]
    new = readings[0][0].partition("=")[2] if readings else "new value"
    scope = f" IN DATABASE {_ident(item.where)}" if item.where else ""
    return (
        f"set it again on the source from {home}: ALTER {subject}{scope} SET {name} = {_literal(new)} (or RESET {name})"
    )


def _home(ctx: Context, encoding: str) -> str:
    """Where on the source text valid in ``encoding`` can be written: a database in that encoding."""
    for db in ctx.source.databases:
        if db.encoding == encoding and db.allow_connections and db.name.isascii():
            return f"database {db.name} ({encoding})"
    return f"a database in {encoding}"


def _undecodable_shared_text(ctx: Context) -> Iterator[Hit]:
    target_encoding = _target_encoding(ctx)
    encodings = {d.name: d.encoding for d in ctx.source.databases}
    for item in _shared_texts(ctx):
        if item.text.isascii():
            continue
        # A role setting of one database runs on that database of the target (same encoding);
        # everything else on the target's maintenance database.
        encoding = encodings.get(item.where, target_encoding) if item.where else target_encoding
        if item.renamed:
            # A name given on the command line is text, converted to the target's encoding on the way:
            # refused when that encoding has no such characters (it reads back as something else).
            if decoded_in(encoding, encoded_in(encoding, item.text)) in (item.text, None):
                continue
            yield Hit(
                f"database {printable(item.name)}",
                f"database {printable(item.name)} is created on the target as {printable(item.text)} (--rename), "
                f"a name that is not valid {encoding} text: the target would refuse it",
                remediation=f"give --rename {printable(item.name)}=NEW a name the target's {encoding} can hold "
                "(a name in ASCII is safe in every encoding)",
            )
            continue
        if accepts(encoding, encoded_in(encoding, item.text)):
            continue
        source_bytes = encoded(ctx.conn, item.text)
        # A database is renamed from another one: it cannot rename the database it is connected to.
        readings = _readings(ctx, source_bytes, item.name if item.kind == "database" and item.part == "name" else None)
        grouped: dict[str, list[str]] = {}
        for text, enc, database in readings:
            grouped.setdefault(text, []).append(f"{enc} (database {database})")
        seen = "; ".join(f'"{text}" in {" or ".join(where)}' for text, where in list(grouped.items())[:3])
        label = f"{item.kind} {printable(item.name)}"
        what = "name" if item.part == "name" else f'{item.part} "{printable(item.text)}"'
        where = f"database {ctx.target_name(item.where)}" if item.where else "the target"
        yield Hit(
            label,
            f"{label}: its {what} is not valid {encoding} text, so {where} would refuse it"
            + (f"; it reads as {seen}" if seen else "")
            + (f" (role setting in database {item.where})" if item.where else ""),
            remediation=_fix(item, readings, _home(ctx, encoding), encoding),
        )


ENCODING_SHARED_TEXT = Rule(
    id="encoding-shared-text",
    title="Role, database and tablespace text the target's encoding refuses",
    severity=Severity.BLOCKER,
    changed_in="PostgreSQL behaviour (all versions): shared catalogs are not converted between encodings",
    scope=Scope.CLUSTER,
    what_happens="Names, comments and settings of roles, databases and tablespaces are stored with the bytes of "
    "the session that wrote them; written from a LATIN1 or EUC_JP database they are not valid UTF8, and the "
    "target refuses the statements that recreate them (invalid byte sequence for encoding), half-way through "
    "the globals.",
    remediation="On the source, rename the object to a name in ASCII (connected to a database where the name reads "
    "correctly), or set the comment or setting again from a database in the target's encoding; each finding "
    "gives the statement.",
    detect=_undecodable_shared_text,
    verified="16 -> 18 and 12 -> 17: role names and comments written from LATIN1 and EUC_JP databases, UTF8 targets "
    "(tests/integration/test_encodings_shared.py)",
    tags=("encoding",),
)

RULES = (ENCODING_SHARED_TEXT,)
