"""The plan of a migration: pure data, built by the preflight, printed by ``--dry-run``, run by the runner."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pgshift.migrate.options import MigrateOptions
from pgshift.toolchain.select import ClientChoice

# "finish": restored by an earlier attempt of the run; only its last steps (ANALYZE, comment) are left.
DatabaseAction = Literal["migrate", "drop-and-migrate", "skip", "done", "redo", "finish"]

# The phases of one database, in order. The journal records each; the result times each.
PHASES: tuple[str, ...] = ("create", "dump", "restore", "analyze", "verify")


@dataclass(frozen=True)
class ServerSummary:
    role: str  # "source" or "target"
    display: str  # redacted connection string
    version: str
    version_num: int
    user: str
    is_superuser: bool

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ExtensionPlan:
    name: str
    source_version: str
    schema: str
    target_version: str | None  # the target's default version; None when not available

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class DatabasePlan:
    source: str
    target: str
    action: DatabaseAction
    reason: str
    size_bytes: int | None
    owner: str
    encoding: str
    collate: str
    ctype: str
    locale_provider: str
    icu_locale: str | None
    tables: int
    extensions: tuple[ExtensionPlan, ...] = ()
    large_objects: int = 0
    # A dump finished by an earlier attempt, taken again unless the source database is unchanged.
    reuse_dump: bool = False
    dump_note: str = ""

    @property
    def moves(self) -> bool:
        return self.action in ("migrate", "drop-and-migrate", "redo", "finish")

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "action": self.action,
            "reason": self.reason,
            "size_bytes": self.size_bytes,
            "owner": self.owner,
            "encoding": self.encoding,
            "collate": self.collate,
            "ctype": self.ctype,
            "locale_provider": self.locale_provider,
            "icu_locale": self.icu_locale,
            "tables": self.tables,
            "extensions": [e.as_dict() for e in self.extensions],
            "large_objects": self.large_objects,
            "reuse_dump": self.reuse_dump,
            "dump_note": self.dump_note,
        }


@dataclass(frozen=True)
class RolePlan:
    name: str
    action: Literal["create", "exists", "protected"]
    dropped_attributes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "action": self.action, "dropped_attributes": list(self.dropped_attributes)}


@dataclass(frozen=True)
class GlobalsPlan:
    roles: tuple[RolePlan, ...]
    memberships: int
    tablespaces: tuple[tuple[str, str], ...]  # (name, location on the target)
    passwords: bool  # whether password hashes are copied

    @property
    def created(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.roles if r.action == "create")

    def as_dict(self) -> dict[str, Any]:
        return {
            "roles": [r.as_dict() for r in self.roles],
            "memberships": self.memberships,
            "tablespaces": [{"name": n, "location": loc} for n, loc in self.tablespaces],
            "passwords": self.passwords,
        }


@dataclass(frozen=True)
class PlannedStep:
    """One thing the runner does: a program it runs or SQL it applies, in display (redacted) form."""

    step: str  # stable id: "globals", "db:sales:dump" …
    title: str
    kind: Literal["program", "sql", "internal"]
    text: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class CheckSummary:
    ran: bool
    blockers: tuple[str, ...] = ()  # "rule_id: message" of blockers that were accepted
    warnings: tuple[str, ...] = ()
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"ran": self.ran, "blockers": list(self.blockers), "warnings": list(self.warnings), "note": self.note}


@dataclass(frozen=True)
class MigrationPlan:
    options: MigrateOptions
    source: ServerSummary
    target: ServerSummary
    client: ClientChoice
    databases: tuple[DatabasePlan, ...]
    globals: GlobalsPlan | None
    steps: tuple[PlannedStep, ...]
    workdir: Path
    parallel_databases: int
    jobs_per_database: int
    warnings: tuple[str, ...] = ()
    changes: tuple[str, ...] = ()  # how a resume's plan differs from the recorded run (also in warnings)
    check: CheckSummary = field(default_factory=lambda: CheckSummary(ran=False))
    resumed: bool = False

    @property
    def moving(self) -> tuple[DatabasePlan, ...]:
        return tuple(d for d in self.databases if d.moves)

    @property
    def total_bytes(self) -> int:
        return sum(d.size_bytes or 0 for d in self.moving)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source.as_dict(),
            "target": self.target.as_dict(),
            "client": self.client.as_dict(),
            "databases": [d.as_dict() for d in self.databases],
            "globals": self.globals.as_dict() if self.globals else None,
            "steps": [s.as_dict() for s in self.steps],
            "workdir": str(self.workdir),
            "parallel_databases": self.parallel_databases,
            "jobs_per_database": self.jobs_per_database,
            "warnings": list(self.warnings),
            "changes": list(self.changes),
            "check": self.check.as_dict(),
            "resumed": self.resumed,
            "total_bytes": self.total_bytes,
            "options": self.options.as_dict(),
        }
