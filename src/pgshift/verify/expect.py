"""Differences a caller declares in advance (``ExpectedDifference``): migrate's remedies.

A remedy changes what the target receives on purpose: a generated column restored as a plain
one, a rule under another name, a removed setting left out, an extension or an object (and what
depends on it) left out. The caller declares each change; a difference it explains is reported
under the remedy's name and does not make the servers unequal. A declaration only explains the
kinds of difference its remedy can make (``REMEDY_KINDS``): an object excluded on purpose is
*missing*, never *changed*; a remedy pgshift does not know explains any kind on its object.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pgshift.errors import UsageError
from pgshift.verify.compare import table_of
from pgshift.verify.model import DeclaredDifference, ExpectedDifference
from pgshift.verify.rules import Candidate

# remedy -> (difference kinds it explains, attributes it may change (None: any))
REMEDY_KINDS: Mapping[str, tuple[frozenset[str], frozenset[str] | None]] = {
    "generated-as-plain": (frozenset({"changed"}), None),
    "rename-rule": (frozenset({"missing", "extra"}), None),
    "drop-removed-settings": (frozenset({"changed"}), frozenset({"config", "settings"})),
    "leave-out-extension": (frozenset({"missing"}), None),
    "exclude-object": (frozenset({"missing"}), None),
}

_ANY = frozenset({"missing", "extra", "changed", "count", "content"})

# General words a caller may use for verify's finer kinds (migrate names what pg_dump names).
_KIND_WORDS: Mapping[str, tuple[str, ...]] = {
    "table": ("table", "partitioned table", "partition", "partition (partitioned)"),
    "function": ("function", "window function"),
    "domain": ("type (domain)",),
    "foreign-data wrapper": ("foreign data wrapper",),
    "server": ("foreign server",),
}

# Kinds of relation whose dependents (indexes, constraints, triggers, rules, policies, columns,
# rows, sequences) go with them.
_RELATION_KINDS = frozenset(
    {"table", "partitioned table", "partition", "partition (partitioned)", "view", "materialized view", "foreign table"}
)


_QUOTED = re.compile(r'"((?:[^"]|"")*)"')


def _spellings(name: str) -> set[str]:
    """``name`` as given and as verify prints it: migrate's remedies name objects as quote_ident
    spells them (``public.c."größe"``, ``public."Orders"``), verify by their bare names."""
    return {name, _QUOTED.sub(lambda m: m.group(1).replace('""', '"'), name)}


def _kinds(word: str) -> tuple[str, ...]:
    if word in _KIND_WORDS:
        return _KIND_WORDS[word]
    return (word,)


def _labels(kind: str, name: str) -> set[str]:
    return {f"{k} {spelt}" for k in _kinds(kind) for spelt in _spellings(name)}


def _renamed_labels(e: ExpectedDifference) -> set[str] | None:
    if not e.renamed_to:
        return None
    if "." in e.renamed_to or "." not in e.object:
        return {f"{e.kind} {spelt}" for spelt in _spellings(e.renamed_to)}
    return {f"{e.kind} {spelt}" for spelt in _spellings(f"{e.object.rsplit('.', 1)[0]}.{e.renamed_to}")}


def _belongs(cand: Candidate, e: ExpectedDifference) -> bool:
    """True when the difference is on an object that goes with ``e``'s (exclude-object)."""
    return any(_belongs_to(cand, e.kind, name) for name in _spellings(e.object))


def _belongs_to(cand: Candidate, kind: str, name: str) -> bool:
    d = cand.difference
    kinds = _kinds(kind)
    obj = cand.source or cand.target
    if kind == "schema":
        if obj is not None and obj.schema == name:
            return True
        return d.category in ("rows", "sequences", "checksums") and d.object.split(" ", 1)[-1].startswith(name + ".")
    relation_kind = any(k in _RELATION_KINDS or k == "sequence" for k in kinds)
    if not relation_kind:
        return False
    if d.category in ("rows", "sequences", "checksums"):
        return d.object in (f"table {name}", f"sequence {name}")
    if d.object.startswith(f"column {name}."):
        return True
    if obj is not None and obj.schema is not None:
        table = table_of(obj)
        return table is not None and f"{obj.schema}.{table}" == name and obj.kind not in _RELATION_KINDS
    return False


def matches(cand: Candidate, e: ExpectedDifference) -> bool:
    """Whether the declaration ``e`` explains the difference ``cand``."""
    d = cand.difference
    if d.database != e.database:
        return False
    allowed, attributes = REMEDY_KINDS.get(e.remedy, (_ANY, None))
    if d.kind not in allowed:
        return False
    if attributes is not None and d.kind == "changed" and cand.attribute not in attributes:
        return False
    renamed = _renamed_labels(e)
    if renamed is not None:
        # A rename: the old name is missing, the new one is extra.
        return (d.kind == "missing" and d.object in _labels(e.kind, e.object)) or (
            d.kind == "extra" and d.object in renamed
        )
    if d.object in _labels(e.kind, e.object):
        return True
    return d.kind == "missing" and _belongs(cand, e)


def declare(
    candidates: Sequence[Candidate], expectations: Sequence[ExpectedDifference]
) -> tuple[list[Candidate], list[DeclaredDifference], list[ExpectedDifference]]:
    """Split ``candidates`` into those no declaration explains, those one does, and the
    declarations that explained nothing."""
    rest: list[Candidate] = []
    declared: list[DeclaredDifference] = []
    used: set[int] = set()
    for cand in candidates:
        hit = next((i for i, e in enumerate(expectations) if matches(cand, e)), None)
        if hit is None:
            rest.append(cand)
        else:
            used.add(hit)
            declared.append(DeclaredDifference(expectations[hit], cand.difference))
    unmatched = [e for i, e in enumerate(expectations) if i not in used]
    return rest, declared, unmatched


_FIELDS = ("remedy", "database", "kind", "object", "note", "renamed_to")
_HINT = (
    'give a JSON list of {"remedy": …, "database": …, "kind": …, "object": …} '
    "(note and renamed_to optional; docs/verify.md, Declared differences)"
)


def parse_expected(text: str, source: str) -> list[ExpectedDifference]:
    """Declarations from JSON: a list of objects, or a document with such a list under "expected"."""
    try:
        doc: Any = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{source} is not JSON: {exc}", hint=_HINT) from None
    items = doc.get("expected") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise UsageError(f"{source} holds no list of expected differences", hint=_HINT)
    out: list[ExpectedDifference] = []
    for i, item in enumerate(items, 1):
        where = f"{source}, entry {i}"
        if not isinstance(item, dict):
            raise UsageError(f"{where} is not an object", hint=_HINT)
        unknown = sorted(set(item) - set(_FIELDS))
        if unknown:
            raise UsageError(f"{where} has unknown keys: {', '.join(unknown)}", hint=_HINT)
        for key in ("remedy", "kind", "object"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise UsageError(f"{where} needs {key!r} (a non-empty string)", hint=_HINT)
        for key in ("database", "renamed_to"):
            if item.get(key) is not None and not isinstance(item[key], str):
                raise UsageError(f"{where}: {key!r} must be a string or null", hint=_HINT)
        if not isinstance(item.get("note", ""), str):
            raise UsageError(f"{where}: 'note' must be a string", hint=_HINT)
        out.append(
            ExpectedDifference(
                item["remedy"],
                item.get("database"),
                item["kind"],
                item["object"],
                item.get("note", ""),
                item.get("renamed_to"),
            )
        )
    return out


__all__ = ["REMEDY_KINDS", "declare", "matches", "parse_expected"]
