"""The data verify returns: options, differences, expected differences and the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pgshift.errors import ExitCode


@dataclass(frozen=True)
class VerifyOptions:
    """What to compare. Patterns are psql-style, as pg_dump's -n/-N/-t/-T."""

    checksums: bool = False
    jobs: int = 2  # connections per side for counts and checksums; both sides work at once
    compare_globals: bool = True
    compare_owners: bool = True
    compare_privileges: bool = True
    compare_rows: bool = True
    compare_schema: bool = True
    schemas: tuple[str, ...] = ()
    exclude_schemas: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    exclude_tables: tuple[str, ...] = ()
    checksum_chunk_rows: int = 100_000  # rows per digested key range
    # Roles whose target-side state is the target's own (migrate passes the roles that existed
    # before it ran, or whose attributes it had to reduce); the target's bootstrap superuser and
    # connecting role are always such roles.
    roles_left_alone: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "checksums": self.checksums,
            "jobs": self.jobs,
            "compare_globals": self.compare_globals,
            "compare_owners": self.compare_owners,
            "compare_privileges": self.compare_privileges,
            "compare_rows": self.compare_rows,
            "compare_schema": self.compare_schema,
            "schemas": list(self.schemas),
            "exclude_schemas": list(self.exclude_schemas),
            "tables": list(self.tables),
            "exclude_tables": list(self.exclude_tables),
            "checksum_chunk_rows": self.checksum_chunk_rows,
        }


# Categories of differences, in report order.
CATEGORIES: tuple[str, ...] = (
    "globals",
    "database",
    "schema",
    "privileges",
    "rows",
    "sequences",
    "large objects",
    "checksums",
)


@dataclass(frozen=True)
class Difference:
    """One thing that is not the same on both sides."""

    category: str  # one of CATEGORIES
    database: str | None  # the source database name; None for globals
    object: str  # "table public.film", "role alice", "membership alice in staff" …
    kind: str  # "missing" (on the target), "extra" (only on the target), "changed", "count", "content"
    source: str | None
    target: str | None
    message: str
    # The source table or sequence (schema, name) whose rows or value differ: what copying it again
    # would make equal (``pgshift migrate --resume`` after a verification that failed).
    relation: tuple[str, str] | None = field(default=None, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "database": self.database,
            "object": self.object,
            "kind": self.kind,
            "source": self.source,
            "target": self.target,
            "message": self.message,
        }


@dataclass(frozen=True)
class ExplainedDifference:
    """A difference explained by a named rule (docs/verify.md): reported, not a failure."""

    rule: str
    reason: str
    difference: Difference

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "reason": self.reason, **self.difference.as_dict()}


@dataclass(frozen=True)
class ExpectedDifference:
    """A difference the caller declares before verifying: what a migrate remedy did on purpose.

    It names an object as verify names it in ``Difference.object``, "KIND NAME": ``kind`` is the
    first part ("column", "rule", "function", "table", "extension", "database", "role" …; a few
    general words cover verify's finer kinds: "table" also means a partition or partitioned
    table, "type" any type, "domain" a domain type, "constraint" any constraint, "server" a
    foreign server) and ``object`` the rest, as verify prints it: ``public.child.b`` (a column),
    ``public.t._RETURN`` (a rule, table then rule), ``public.f(integer, text)`` (a routine with
    its argument types as format_type spells them), ``hstore`` (an extension), ``shop`` (a
    database), ``alice`` (a role). ``database`` is the source database, None for a role.

    A difference on that object (of a kind the remedy can cause, see ``verify.expect``), or on
    one that belongs to it (the indexes, constraints, triggers, columns, rows of an excluded
    table; the objects of an excluded schema), is reported as declared, named by ``remedy``,
    and does not make the servers unequal. ``renamed_to`` (rename-rule) is the object's name on
    the target: its last part alone (``_RETURN_insert``) or the whole name.
    """

    remedy: str
    database: str | None
    kind: str
    object: str
    note: str = ""
    renamed_to: str | None = None

    @property
    def label(self) -> str:
        return f"{self.kind} {self.object}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "remedy": self.remedy,
            "database": self.database,
            "kind": self.kind,
            "object": self.object,
            "note": self.note,
            "renamed_to": self.renamed_to,
        }


@dataclass(frozen=True)
class DeclaredDifference:
    """A difference matched by an ``ExpectedDifference``: reported under its remedy, not a failure."""

    expectation: ExpectedDifference
    difference: Difference

    @property
    def remedy(self) -> str:
        return self.expectation.remedy

    def as_dict(self) -> dict[str, Any]:
        return {
            "remedy": self.expectation.remedy,
            "note": self.expectation.note,
            "declared": self.expectation.label,
            **self.difference.as_dict(),
        }


@dataclass(frozen=True)
class DatabaseTotals:
    """What was compared in one database pair."""

    source: str
    target: str
    objects_source: int = 0
    objects_target: int = 0
    tables: int = 0  # tables whose rows were counted on both sides
    rows_source: int = 0
    rows_target: int = 0
    sequences: int = 0
    large_objects_source: int = 0
    large_objects_target: int = 0
    checksummed_tables: int = 0
    checksummed_ranges: int = 0
    seconds: float = 0.0
    # The source was read in an exported snapshot (a migration's dump's): as of that moment.
    source_in_snapshot: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class VerifyReport:
    equal: bool
    differences: tuple[Difference, ...]
    expected: tuple[ExplainedDifference, ...]
    databases: tuple[DatabaseTotals, ...]
    source: str = ""  # redacted connection strings
    target: str = ""
    source_version: str = ""
    target_version: str = ""
    options: VerifyOptions = field(default_factory=VerifyOptions)
    roles_compared: int = 0
    seconds: float = 0.0
    # Differences a caller declared (ExpectedDifference, e.g. migrate's remedies), and the
    # declarations that matched nothing (the remedy's change was not seen: said, not a failure).
    declared: tuple[DeclaredDifference, ...] = ()
    unmatched: tuple[ExpectedDifference, ...] = ()

    @property
    def exit_code(self) -> int:
        return int(ExitCode.OK if self.equal else ExitCode.DIFFERENCES)

    @property
    def rows_source(self) -> int:
        return sum(d.rows_source for d in self.databases)

    @property
    def rows_target(self) -> int:
        return sum(d.rows_target for d in self.databases)

    @property
    def objects_compared(self) -> int:
        return sum(max(d.objects_source, d.objects_target) for d in self.databases)

    @property
    def tables_compared(self) -> int:
        return sum(d.tables for d in self.databases)

    def summary(self) -> str:
        parts = [
            f"{len(self.databases)} database{'s' if len(self.databases) != 1 else ''}",
            f"{self.objects_compared:,} objects",
            f"{self.tables_compared:,} tables ({self.rows_source:,} rows)",
        ]
        if self.options.checksums:
            parts.append(f"{sum(d.checksummed_tables for d in self.databases):,} checksummed")
        if self.options.compare_globals:
            parts.append(f"{self.roles_compared} roles")
        in_snapshot = sum(1 for d in self.databases if d.source_in_snapshot)
        if in_snapshot:
            every = in_snapshot == len(self.databases)
            parts.append(f"the source of {'each' if every else f'{in_snapshot}'} database as of its dump")
        head = "EQUAL" if self.equal else f"DIFFERENT: {len(self.differences)} difference(s)"
        tail = f"; {len(self.expected)} expected difference(s) explained by rules" if self.expected else ""
        if self.declared:
            tail += f"; {len(self.declared)} declared by remedies"
        return f"{head} — compared {', '.join(parts)}{tail}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "equal": self.equal,
            "exit_code": self.exit_code,
            "summary": self.summary(),
            "source": self.source,
            "target": self.target,
            "source_version": self.source_version,
            "target_version": self.target_version,
            "options": self.options.as_dict(),
            "roles_compared": self.roles_compared,
            "rows_source": self.rows_source,
            "rows_target": self.rows_target,
            "objects_compared": self.objects_compared,
            "tables_compared": self.tables_compared,
            "seconds": round(self.seconds, 3),
            "databases": [d.as_dict() for d in self.databases],
            "differences": [d.as_dict() for d in self.differences],
            "expected": [e.as_dict() for e in self.expected],
            "declared": [d.as_dict() for d in self.declared],
            "declared_unmatched": [e.as_dict() for e in self.unmatched],
        }
