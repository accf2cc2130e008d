"""migrate's remedies in ``pgshift restore --remedy``, from what the set recorded of its source.

A remedy acts on archive items by their catalog address on the source (migrate/remedies.py). A set
has no source to ask, so a backup records, per database and in the dump's own snapshot (the same
catalog state pg_dump saw), the facts the remedies read there: generated child columns, rules named
``_RETURN``, routines' SET clauses and which extensions something uses (``remedy_facts`` in the
manifest). Restore plans on them with migrate's own planner (``plan_from_facts``: the same item
changes and after-data statements) and runs migrate's own steps (schema as a rewritten script, data,
remedies after the data).

A set taken before pgshift recorded these facts, a plain SQL set (no table of contents to edit) and a
selective restore (the user's own list) cannot take a remedy: ``refusal`` says which and why.
``--exclude-object`` is not offered: an edited ``--use-list`` does that for a set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from pgshift.catalog import remedies as cat
from pgshift.catalog.session import Connection
from pgshift.migrate.remedies import DatabaseRemedies, RemedyFacts, plan_from_facts, read_facts, unknown

FACTS = "remedy_facts"  # the key of a database's entry in the manifest
# The remedies whose facts a set records (exclude-object is refused: see ``refusal``).
RECORDED = ("generated-as-plain", "rename-rule", "drop-removed-settings", "leave-out-extension")

# The recorded rule a remedy carries, when the set's facts show its objects (check's rule ids).
BLOCKED_BY = {
    "generated-as-plain": "generated-inheritance-mismatch",
    "rename-rule": "reserved-rule-name",
    "drop-removed-settings": "removed-guc-settings",
}


def record(conn: Connection) -> dict[str, Any]:
    """What the remedies need of one database, read in the session given (the dump's snapshot)."""
    return as_manifest(read_facts(conn, RECORDED))


def as_manifest(facts: RemedyFacts) -> dict[str, Any]:
    """``facts`` as a database's entry of the manifest holds them (``recorded`` reads them back)."""
    return {
        "generated_child_columns": [asdict(c) for c in facts.generated_child_columns],
        "reserved_name_rules": [{**asdict(r), "siblings": list(r.siblings)} for r in facts.reserved_name_rules],
        "routine_settings": [{**asdict(r), "settings": list(r.settings)} for r in facts.routine_settings],
        "extension_uses": [asdict(e) for e in facts.extension_uses],
    }


def recorded(entry: Mapping[str, Any]) -> RemedyFacts:
    """The facts ``record`` wrote into a database's entry of the manifest (none for an older set)."""
    facts = entry.get(FACTS) or {}
    return RemedyFacts(
        generated_child_columns=tuple(cat.GeneratedChildColumn(**c) for c in facts.get("generated_child_columns", ())),
        reserved_name_rules=tuple(
            cat.ReservedNameRule(**{**r, "siblings": tuple(r["siblings"])})
            for r in facts.get("reserved_name_rules", ())
        ),
        routine_settings=tuple(
            cat.RoutineSettings(r["oid"], r["signature"], tuple(r["settings"]), r["kind"])
            for r in facts.get("routine_settings", ())
        ),
        extension_uses=tuple(cat.ExtensionUse(**e) for e in facts.get("extension_uses", ())),
    )


def refusal(remedy: str, *, set_name: str, fmt: str, entries: Mapping[str, Any], selective: bool) -> str | None:
    """Why ``remedy`` cannot apply to this restore of the set (None: it can)."""
    if remedy == "exclude-object":
        return "a set's objects are left out with an edited table of contents (pgshift restore SET --list, --use-list)"
    if fmt == "plain":
        return f"the set {set_name} is plain SQL: a remedy edits an archive's table of contents and schema"
    if selective:
        return "--schema, --table and --use-list restore a chosen part of the archive; a remedy rewrites the whole"
    old = sorted(name for name, entry in entries.items() if entry.get(FACTS) is None)
    if old:
        return (
            f"the set {set_name} was taken before pgshift recorded what the remedies need of each database "
            f"(database {old[0]!r} has no {FACTS}); take a new backup with this pgshift"
        )
    return None


def blocked(entry: Mapping[str, Any], target_major: int, target_settings: frozenset[str]) -> dict[str, list[str]]:
    """{remedy: the objects the set holds that the target refuses without it}, from the recorded facts."""
    facts = recorded(entry)
    out: dict[str, list[str]] = {}
    # SET clauses and ALTER DATABASE … SET of parameters the target does not know fail there.
    settings = [
        f"{r.kind} {r.signature} (SET {name})"
        for r in facts.routine_settings
        for name in (s.split("=", 1)[0] for s in r.settings)
        if unknown(name, target_settings)
    ]
    settings += [
        f"database {entry['name']} (ALTER DATABASE … SET {name})"
        for name in (s.split("=", 1)[0] for s in entry.get("properties", {}).get("settings", ()))
        if FACTS in entry and unknown(name, target_settings)
    ]
    if settings:
        out["drop-removed-settings"] = settings
    # 16 refuses a generated child column under a plain parent column (accepted up to 15).
    if target_major >= 16 and facts.generated_child_columns:
        out["generated-as-plain"] = [f"column {c.label}" for c in facts.generated_child_columns]
    # CREATE RULE "_RETURN" for anything but a view's ON SELECT rule is refused by every major.
    if facts.reserved_name_rules:
        out["rename-rule"] = [f"rule _RETURN on {r.label}" for r in facts.reserved_name_rules]
    return out


def unused_extensions(entry: Mapping[str, Any]) -> set[str]:
    """The extensions of the database nothing outside them uses: leave-out-extension may leave them out."""
    return {e.name for e in recorded(entry).extension_uses if not e.outside_uses}


def plan_database(
    entry: Mapping[str, Any],
    database: str,
    *,
    remedies: Sequence[str],
    target_major: int,
    target_settings: frozenset[str],
    target_extensions: frozenset[str],
    superuser: bool,
) -> DatabaseRemedies:
    """The remedies asked for, on the objects the set recorded of ``database``: migrate's own
    planning (``plan_from_facts``) on the recorded facts instead of the source's catalog."""
    return plan_from_facts(
        recorded(entry),
        database,
        remedies=remedies,
        target_major=target_major,
        target_settings=target_settings,
        target_extensions=target_extensions,
        superuser=superuser,
    )
