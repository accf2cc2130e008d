"""psql-style name patterns, as pg_dump's -n/-N/-t/-T read them.

``*`` matches any text, ``?`` one character; unquoted letters are folded to lower case and
double-quoted parts are taken literally; a dot outside quotes separates schema and name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pgshift.errors import UsageError


def _part_regex(text: str) -> str:
    out: list[str] = []
    quoted = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            if quoted and i + 1 < len(text) and text[i + 1] == '"':
                out.append(re.escape('"'))
                i += 2
                continue
            quoted = not quoted
        elif quoted:
            out.append(re.escape(ch))
        elif ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        else:
            out.append(re.escape(ch.lower()))
        i += 1
    if quoted:
        raise UsageError(f"unterminated quote in the pattern {text!r}", hint='close the double quote: "MyTable"')
    return "".join(out)


def _split(pattern: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in pattern:
        if ch == '"':
            quoted = not quoted
        if ch == "." and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


@dataclass(frozen=True)
class Pattern:
    text: str
    schema: re.Pattern[str] | None
    name: re.Pattern[str]

    def matches(self, schema: str | None, name: str) -> bool:
        if self.schema is not None and (schema is None or not self.schema.fullmatch(schema)):
            return False
        return bool(self.name.fullmatch(name))


def compile_schema(pattern: str) -> Pattern:
    return Pattern(pattern, None, re.compile(_part_regex(pattern)))


def compile_table(pattern: str) -> Pattern:
    parts = _split(pattern)
    if len(parts) == 1:
        return Pattern(pattern, None, re.compile(_part_regex(parts[0])))
    if len(parts) == 2:
        return Pattern(pattern, re.compile(_part_regex(parts[0])), re.compile(_part_regex(parts[1])))
    raise UsageError(f"too many dots in the table pattern {pattern!r}", hint="use schema.table")


@dataclass(frozen=True)
class Filter:
    """Which schemas and tables a verification looks at."""

    schemas: tuple[Pattern, ...] = ()
    exclude_schemas: tuple[Pattern, ...] = ()
    tables: tuple[Pattern, ...] = ()
    exclude_tables: tuple[Pattern, ...] = ()

    @classmethod
    def build(
        cls,
        schemas: Sequence[str] = (),
        exclude_schemas: Sequence[str] = (),
        tables: Sequence[str] = (),
        exclude_tables: Sequence[str] = (),
    ) -> Filter:
        return cls(
            tuple(compile_schema(p) for p in schemas),
            tuple(compile_schema(p) for p in exclude_schemas),
            tuple(compile_table(p) for p in tables),
            tuple(compile_table(p) for p in exclude_tables),
        )

    def schema_ok(self, schema: str) -> bool:
        if self.schemas and not any(p.name.fullmatch(schema) for p in self.schemas):
            return False
        return not any(p.name.fullmatch(schema) for p in self.exclude_schemas)

    def table_ok(self, schema: str, table: str) -> bool:
        if not self.schema_ok(schema):
            return False
        if self.tables and not any(p.matches(schema, table) for p in self.tables):
            return False
        return not any(p.matches(schema, table) for p in self.exclude_tables)

    @property
    def active(self) -> bool:
        return bool(self.schemas or self.exclude_schemas or self.tables or self.exclude_tables)
