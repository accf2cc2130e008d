"""What a rehearsal is asked (``RehearseOptions``), what it will do (``RehearsalPlan``) and what it
found (``RehearsalResult``): plain data, rendered by ``report/rehearse.py``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pgshift.conninfo import Endpoint
from pgshift.errors import ExitCode, UsageError
from pgshift.migrate import MigrateOptions, MigrationPlan, MigrationResult
from pgshift.version import major_label

# Version of the JSON document ``pgshift rehearse --json`` writes (docs/rehearse.md).
SCHEMA_VERSION = 1
RESULT_KIND = "rehearse-result"
PLAN_KIND = "rehearse-plan"

# The lab servers there are binaries for (pgshift.lab.binaries).
LAB_MAJORS = tuple(range(10, 19))

# The migrate options a rehearsal does not take, and why (the others mean what they mean to migrate).
NOT_REHEARSED: Mapping[str, str] = {
    "if_exists": "the lab server is new and empty: no database exists there",
    "data_only": "the lab server is empty: there is no schema to load data into",
    "tablespace_map": "tablespaces are not rehearsed: everything goes to the lab server's default tablespace",
    "no_tablespaces": "always on in a rehearsal (tablespace paths are the target host's)",
}


@dataclass(frozen=True)
class RehearseOptions:
    source: Endpoint
    target_major: int
    # migrate's options of the move rehearsed (MigrateOptions' fields, not source or target).
    migrate: Mapping[str, Any] = field(default_factory=dict)
    keep: bool = False  # leave the lab server running at the end
    sample_rows: int | None = None  # load at most this many rows per table (schema in full)

    def __post_init__(self) -> None:
        if self.target_major not in LAB_MAJORS:
            raise UsageError(
                f"--target-version {major_label(self.target_major)} has no lab server",
                hint=f"choose a major from {LAB_MAJORS[0]} to {LAB_MAJORS[-1]}",
            )
        if self.sample_rows is not None and self.sample_rows < 1:
            raise UsageError(f"--sample-rows must be at least 1, not {self.sample_rows}")
        if self.sample_rows is not None and self.migrate.get("schema_only"):
            raise UsageError(
                "--sample-rows and --schema-only cannot be used together",
                hint="--schema-only loads no rows; --sample-rows N loads the schema and N rows per table",
            )
        given = sorted(set(self.migrate) & set(NOT_REHEARSED))
        if given:
            raise UsageError(f"rehearse does not take {', '.join(given)}: {NOT_REHEARSED[given[0]]}")
        # migrate's own checks of its options (a misspelt remedy, --jobs 0 …), before any server starts.
        self.migrate_options(self.source)

    @property
    def docker(self) -> bool:
        return bool(self.migrate.get("docker"))

    @property
    def dry_run(self) -> bool:
        return bool(self.migrate.get("dry_run"))

    @property
    def check(self) -> bool:
        return bool(self.migrate.get("check", True))

    @property
    def workdir(self) -> Path | None:
        value = self.migrate.get("workdir")
        return Path(value) if value is not None else None

    def migrate_options(self, target: Endpoint, workdir: Path | None = None) -> MigrateOptions:
        """The migration rehearsed, into ``target``: migrate's own check is the rehearsal's check
        step (run on the same server before), tablespaces are left out."""
        values = {k: v for k, v in self.migrate.items() if k not in ("dry_run", "workdir")}
        values["check"] = False
        values["no_tablespaces"] = True
        if self.sample_rows is not None:
            values["schema_only"] = True
        return MigrateOptions(source=self.source, target=target, workdir=workdir, **values)

    def as_dict(self) -> dict[str, Any]:
        options = self.migrate_options(self.source).as_dict()
        for name in ("target", "check", "workdir", "dry_run", "resume", "dump_reuse"):
            options.pop(name, None)
        return {
            "source": self.source.display(),
            "target_version": major_label(self.target_major),
            "lab": "docker" if self.docker else "local",
            "keep": self.keep,
            "sample_rows": self.sample_rows,
            "check": self.check,
            "migrate": options,
        }


RehearsalStepKind = Literal["lab-start", "check", "migrate", "sample-data", "measure", "lab-stop"]


@dataclass(frozen=True)
class RehearsalStep:
    """One step of a rehearsal; the ``migrate`` step runs the migration plan, whose steps it lists."""

    id: str
    kind: RehearsalStepKind
    title: str
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "title": self.title, "note": self.note}


@dataclass(frozen=True)
class LabSummary:
    """The throwaway server: what it runs, and (while it runs) where."""

    backend: Literal["local", "docker"]
    version: str
    where: str  # the binaries' directory, or the image
    conninfo: str = ""  # without password
    socket_conninfo: str = ""  # local servers: over the socket, no password needed
    stop_command: str = ""  # how to stop a kept server

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class RehearsalPlan:
    options: RehearseOptions
    lab: LabSummary
    steps: tuple[RehearsalStep, ...]
    migration: MigrationPlan

    def as_dict(self) -> dict[str, Any]:
        return {
            "options": self.options.as_dict(),
            "lab": self.lab.as_dict(),
            "steps": [s.as_dict() for s in self.steps],
            "migration": self.migration.as_dict(),
        }


@dataclass(frozen=True)
class Refusal:
    """A failing statement (or a check blocker) with its object and what to do about it."""

    rule_id: str
    database: str | None
    object: str | None
    message: str
    advice: str
    from_trial: bool  # the target refused it in the schema trial

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class SampledTable:
    database: str
    table: str
    rows: int
    seconds: float
    scale: float  # how many times the full table is larger than what was loaded (1: loaded whole)
    total_bytes: int  # on the lab server, with indexes, after the sample
    # The full table's size with its indexes: the source's (a sample's pages say little), or
    # what the lab server holds when the table was loaded whole.
    estimated_bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "table": self.table,
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "scale": round(self.scale, 2),
            "total_bytes": self.total_bytes,
            "estimated_bytes": self.estimated_bytes,
        }


@dataclass(frozen=True)
class DatabaseFigures:
    """One database of the rehearsal: how long each phase took, what it takes on disk."""

    source: str
    target: str
    status: str  # migrate's: done, failed, interrupted, pending
    seconds: Mapping[str, float]  # phase -> seconds, as measured
    size_bytes: int | None  # on the lab server after the load
    source_bytes: int | None
    error: str | None = None
    # With --sample-rows: the sample's data phase and the size scaled to the full tables (estimates).
    sample_seconds: float | None = None
    estimated_data_seconds: float | None = None
    estimated_bytes: int | None = None

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values()) + (self.sample_seconds or 0.0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "status": self.status,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "total_seconds": round(self.total_seconds, 3),
            "size_bytes": self.size_bytes,
            "source_bytes": self.source_bytes,
            "error": self.error,
            "sample_seconds": round(self.sample_seconds, 3) if self.sample_seconds is not None else None,
            "estimated_data_seconds": (
                round(self.estimated_data_seconds, 3) if self.estimated_data_seconds is not None else None
            ),
            "estimated_bytes": self.estimated_bytes,
        }


Verdict = Literal["ready", "ready-with-warnings", "not-ready"]


@dataclass(frozen=True)
class RehearsalResult:
    options: RehearseOptions
    lab: LabSummary
    source_version: str
    steps: Mapping[str, float]  # rehearsal step id -> seconds
    check: Any | None  # pgshift.checks.CheckReport; None with --no-check
    refusals: tuple[Refusal, ...]  # blockers migrate would refuse the move for
    migration: MigrationResult | None  # None when the load failed (see load_error)
    load_error: str | None
    load_error_detail: str | None
    databases: tuple[DatabaseFigures, ...]
    sampled: tuple[SampledTable, ...] = ()
    notes: tuple[str, ...] = ()
    kept: bool = False
    left_behind: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def loaded(self) -> bool:
        return self.load_error is None and all(d.status == "done" for d in self.databases)

    @property
    def verified(self) -> bool | None:
        return self.migration.verify_equal if self.migration is not None else None

    @property
    def warnings(self) -> tuple[Any, ...]:
        return tuple(self.check.warnings) if self.check is not None else ()

    @property
    def verdict(self) -> Verdict:
        if self.refusals or not self.loaded or self.verified is False:
            return "not-ready"
        if self.warnings or (self.migration is not None and self.migration.warnings):
            return "ready-with-warnings"
        return "ready"

    @property
    def exit_code(self) -> int:
        return {"ready": ExitCode.OK, "ready-with-warnings": ExitCode.WARNINGS, "not-ready": ExitCode.BLOCKERS}[
            self.verdict
        ]

    @property
    def estimated(self) -> bool:
        return self.options.sample_rows is not None

    @property
    def total_bytes(self) -> int:
        """The disk the target needs for the databases: measured, or scaled from the sample."""
        return sum((d.estimated_bytes if d.estimated_bytes is not None else d.size_bytes) or 0 for d in self.databases)

    @property
    def headline(self) -> str:
        move = f"PostgreSQL {self.source_version} → {self.lab.version}"
        if self.verdict == "not-ready":
            why = []
            if self.refusals:
                why.append(f"{len(self.refusals)} blocker(s): pgshift migrate would refuse the move")
            failed = [d.source for d in self.databases if d.status != "done"]
            if self.load_error is not None or failed:
                why.append("the load failed" + (f" ({', '.join(failed)})" if failed else ""))
            if self.verified is False:
                why.append("verify found differences")
            return f"NOT READY ({move}): " + "; ".join(why)
        what = "the schema loaded" if self.options.migrate.get("schema_only") else "everything loaded"
        if self.estimated:
            what = f"the schema and a sample of {self.options.sample_rows} row(s) per table loaded"
        if self.verdict == "ready-with-warnings":
            return f"READY WITH WARNINGS ({move}): {what}; {len(self.warnings)} check warning(s) to review"
        return f"READY ({move}): {what} and verified"

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "headline": self.headline,
            "exit_code": self.exit_code,
            "options": self.options.as_dict(),
            "lab": self.lab.as_dict(),
            "source_version": self.source_version,
            "target_version": self.lab.version,
            "loaded": self.loaded,
            "verified": self.verified,
            "estimated": self.estimated,
            "seconds": round(self.seconds, 3),
            "steps": {k: round(v, 3) for k, v in self.steps.items()},
            "phases": dict(self.migration.phases) if self.migration is not None else {},
            "databases": [d.as_dict() for d in self.databases],
            "disk_bytes": self.total_bytes,
            "refusals": [r.as_dict() for r in self.refusals],
            "load_error": self.load_error,
            "load_error_detail": self.load_error_detail,
            "check": self.check.as_dict() if self.check is not None else None,
            "migration": self.migration.as_dict() if self.migration is not None else None,
            "sampled": [t.as_dict() for t in self.sampled],
            "notes": list(self.notes),
            "kept": self.kept,
            "left_behind": list(self.left_behind),
        }
