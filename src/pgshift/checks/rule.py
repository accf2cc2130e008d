"""What a rule is: data (id, versions, severity, texts) plus a detector.

A rule either carries version-gated detection SQL and a message template (the common case: each
row returned is one affected object), or a ``detect`` function for rules that compare the source
with the target, look at the inventory or scan values. Rules are the one place where SQL lives
beside its metadata; they run it through ``pgshift.catalog.session``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, LiteralString

from pgshift.catalog.session import Connection, fetch_all
from pgshift.checks import ClientAdvice, Estimates, Severity

if TYPE_CHECKING:
    from pgshift.catalog.inventory_check import DatabaseInventory, DumpSelection, SourceInventory, TargetInventory

ANY_MAJOR = 99


class Scope(StrEnum):
    DATABASE = "database"  # runs in every checked database
    CLUSTER = "cluster"  # runs once (shared catalogs, inventories, the client choice)


@dataclass(frozen=True)
class Query:
    """Detection SQL for the source majors ``since``..``until`` (inclusive)."""

    sql: LiteralString
    since: int = 10
    until: int = ANY_MAJOR


@dataclass(frozen=True)
class Hit:
    """One affected object, as a detector reports it."""

    object: str | None
    message: str
    database: str | None = None
    severity: Severity | None = None  # overrides the rule's severity for this hit
    remediation: str | None = None  # the fix for this object, when it can be spelled out exactly
    remedy: str | None = None  # overrides the rule's remedy for this hit
    # Where the object lives, for the move's object filters (-n/-N/-t/-T): a hit is reported only when
    # the move carries it. ``relation``: the pg_class oid of the table (view, sequence …) it belongs to;
    # ``schema``: the schema of an object that is no table (function, type, operator …). Neither: the
    # hit is about the database or the cluster and always reported.
    relation: int | None = None
    schema: str | None = None


_PG_CLASS = 1259
_PG_NAMESPACE = 2615


@dataclass(frozen=True)
class LeftOut:
    """What --exclude-object leaves out of one database (migrate's item changes): the hazards of
    those objects are none of the move's. (The other remedies carry their objects: their findings
    stay, marked carried.)"""

    relations: frozenset[int] = frozenset()  # pg_class oids
    schemas: frozenset[str] = frozenset()
    objects: frozenset[str] = frozenset()  # pg_describe_object: "table public.t", "function public.f(integer)"

    @classmethod
    def of(cls, changes: Iterable[Any]) -> LeftOut:
        omitted = [c for c in changes if c.omit and c.remedy == "exclude-object"]
        return cls(
            frozenset(c.objid for c in omitted if c.classid == _PG_CLASS),
            frozenset(c.about.removeprefix("schema ") for c in omitted if c.classid == _PG_NAMESPACE),
            frozenset(c.about for c in omitted),
        )

    def covers(self, hit: Hit) -> bool:
        if hit.relation is not None and hit.relation in self.relations:
            return True
        if hit.schema is not None and hit.schema in self.schemas:
            return True
        # A hit names its object without the kind pg_describe_object puts first ("public.f(integer)").
        return hit.object is not None and any(o.endswith(" " + hit.object) for o in self.objects)


@dataclass
class Context:
    """What a detector may look at. ``conn`` is a read-only session on ``database`` (database
    scope) or on the source's maintenance database (cluster scope)."""

    source: SourceInventory
    target: TargetInventory | None
    target_major: int
    conn: Connection
    database: str | None
    client: ClientAdvice
    jobs: int
    estimates: Estimates | None = None  # cluster scope only (sizes are known once every database is seen)
    db_inventory: DatabaseInventory | None = None
    target_conn: Connection | None = None  # a session on the target's maintenance database
    first_database: bool = False  # database-scope rules report cluster-wide facts only once
    moving: frozenset[str] = frozenset()  # the source databases the move carries (all of the check's)
    # Databases the move would take but leaves out, as they refuse connections: name -> why (checks.databases).
    unconnectable: Mapping[str, str] = field(default_factory=dict)
    # Rows written in each source database as the check began (``cluster.row_writes``), and when.
    writes_at_start: Mapping[str, int] | None = None
    xid_at_start: int = 0
    started_at: float = 0.0
    cache: dict[str, Any] = field(default_factory=dict)
    # What the move carries from this database under -n/-N/-t/-T; None: everything (no filters).
    selection: DumpSelection | None = None
    renames: Mapping[str, str] = field(default_factory=dict)  # source database -> its name on the target (--rename)
    tablespace_map: Mapping[str, str] = field(default_factory=dict)  # migrate's --tablespace-map: name or path -> path
    left_out: LeftOut | None = None  # what --exclude-object and leave-out-extension leave out of this database
    # The move's pg_restore options that leave objects' parts out (--no-owner, --no-privileges).
    restore_args: tuple[str, ...] = ()

    def target_name(self, database: str) -> str:
        """The name the move gives a source database on the target."""
        return self.renames.get(database, database)

    def moves(self, hit: Hit) -> bool:
        """Whether the move carries the object of ``hit`` (always, without object filters)."""
        if self.left_out is not None and self.left_out.covers(hit):
            return False
        if self.selection is None:
            return True
        if hit.relation is not None and not self.selection.moves_relation(hit.relation):
            return False
        return hit.schema is None or self.selection.moves_schema(hit.schema)

    @property
    def source_major(self) -> int:
        return self.source.server.version.major


Detector = Callable[[Context], Iterable[Hit]]


@dataclass(frozen=True)
class Rule:
    id: str  # stable; the knowledge-base id where one exists
    title: str
    severity: Severity
    changed_in: str  # the PostgreSQL release (or tool behaviour) where this changed
    what_happens: str
    remediation: str
    source_min: int = 10
    source_max: int = ANY_MAJOR
    target_min: int = 10
    target_max: int = ANY_MAJOR
    scope: Scope = Scope.DATABASE
    queries: tuple[Query, ...] = ()
    message: str = ""  # str.format template over the query's columns; {object} names the object
    fix: str = ""  # optional str.format template: the exact remediation for one object
    detect: Detector | None = None
    needs_target: bool = False  # compares with the target server: skipped with --target-version
    scans_data: bool = False  # reads column values (not only catalogs)
    verified: str = ""  # how the knowledge base reproduced it
    tags: tuple[str, ...] = field(default=())
    remedy: str | None = None  # the named remedy of migrate that carries this rule's objects (migrate/remedies.py)

    def applies(self, source_major: int, target_major: int) -> bool:
        return self.source_min <= source_major <= self.source_max and self.target_min <= target_major <= self.target_max

    def query_for(self, source_major: int) -> LiteralString | None:
        for q in self.queries:
            if q.since <= source_major <= q.until:
                return q.sql
        return None

    def run(self, ctx: Context) -> list[Hit]:
        if self.detect is not None:
            return list(self.detect(ctx))
        query = self.query_for(ctx.source_major)
        if query is None:
            return []
        hits = []
        for row in fetch_all(ctx.conn, query):
            values: dict[str, Any] = {k: ("" if v is None else v) for k, v in row.items()}
            values.setdefault("database", ctx.database or "")
            fix = self.fix.format(**values) if self.fix else None
            # A query names where its object lives with the columns relid (a pg_class oid) and
            # schema_name (the schema of an object that is no table), for the move's object filters.
            relid = row.get("relid")
            hits.append(
                Hit(
                    str(row["object"]),
                    self.message.format(**values),
                    ctx.database,
                    remediation=fix,
                    relation=int(relid) if relid is not None else None,
                    schema=row.get("schema_name"),
                )
            )
        return hits

    @property
    def source_range(self) -> str:
        return _range(self.source_min, self.source_max)

    @property
    def target_range(self) -> str:
        return _range(self.target_min, self.target_max)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "severity": self.severity.value,
            "source_versions": self.source_range,
            "target_versions": self.target_range,
            "changed_in": self.changed_in,
            "scope": self.scope.value,
            "needs_target": self.needs_target,
            "scans_data": self.scans_data,
            "what_happens": self.what_happens,
            "remediation": self.remediation,
            "remedy": self.remedy,
        }


def _range(lo: int, hi: int) -> str:
    if lo <= 10 and hi >= ANY_MAJOR:
        return "any"
    if hi >= ANY_MAJOR:
        return f">= {lo}"
    if lo <= 10:
        return f"<= {hi}"
    if lo == hi:
        return f"{lo}"
    return f"{lo}-{hi}"
