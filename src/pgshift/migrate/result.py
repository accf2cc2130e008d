"""What a migration did: per database, per phase, with warnings and the verification."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pgshift.migrate.plan import AppliedRemedy

DatabaseStatus = Literal["done", "skipped", "failed", "interrupted", "pending"]


@dataclass(frozen=True)
class DatabaseResult:
    source: str
    target: str
    status: DatabaseStatus
    size_bytes: int | None = None
    dump_bytes: int | None = None
    seconds: Mapping[str, float] = field(default_factory=dict)  # phase -> seconds
    error: str | None = None
    resumed: bool = False  # finished in an earlier attempt of the run
    step_seconds: Mapping[str, float] = field(default_factory=dict)  # step kind -> seconds (finer than phases)
    # When its dump began (its snapshot's moment; stream mode's too): the target holds the database as of then.
    as_of: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "status": self.status,
            "size_bytes": self.size_bytes,
            "dump_bytes": self.dump_bytes,
            "seconds": dict(self.seconds),
            "step_seconds": dict(self.step_seconds),
            "as_of": self.as_of,
            "error": self.error,
            "resumed": self.resumed,
        }


@dataclass(frozen=True)
class GlobalsResult:
    created_roles: tuple[str, ...] = ()
    existing_roles: tuple[str, ...] = ()
    memberships: int = 0
    tablespaces: tuple[str, ...] = ()
    skipped: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "created_roles": list(self.created_roles),
            "existing_roles": list(self.existing_roles),
            "memberships": self.memberships,
            "tablespaces": list(self.tablespaces),
            "skipped": self.skipped,
        }


@dataclass(frozen=True)
class MigrationResult:
    ok: bool
    workdir: Path
    log_path: Path
    journal_path: Path
    source_version: str
    target_version: str
    client: str  # e.g. "pg_dump 18 from /var/cache/pgshift/pg/18/bin: same major as the target"
    databases: tuple[DatabaseResult, ...]
    globals: GlobalsResult | None
    phases: Mapping[str, float]  # phase -> seconds of wall time
    seconds: float
    warnings: tuple[str, ...] = ()
    verify: Any | None = None  # pgshift.verify's report, or None when verification did not run
    verify_note: str = ""  # why verification did not run, or its summary
    resumed: bool = False
    remedies: tuple[AppliedRemedy, ...] = ()  # what the remedies changed on the target, on purpose

    @property
    def moved(self) -> tuple[DatabaseResult, ...]:
        return tuple(d for d in self.databases if d.status == "done")

    @property
    def verify_equal(self) -> bool | None:
        if self.verify is None:
            return None
        return bool(getattr(self.verify, "equal", False))

    def as_dict(self) -> dict[str, Any]:
        verify: Any = None
        if self.verify is not None:
            as_dict = getattr(self.verify, "as_dict", None)
            verify = as_dict() if callable(as_dict) else {"equal": self.verify_equal}
        return {
            "ok": self.ok,
            "workdir": str(self.workdir),
            "log": str(self.log_path),
            "journal": str(self.journal_path),
            "source_version": self.source_version,
            "target_version": self.target_version,
            "client": self.client,
            "databases": [d.as_dict() for d in self.databases],
            "globals": self.globals.as_dict() if self.globals else None,
            "phases": dict(self.phases),
            "seconds": round(self.seconds, 3),
            "warnings": list(self.warnings),
            "verify": verify,
            "verify_note": self.verify_note,
            "resumed": self.resumed,
            "remedies": [r.as_dict() for r in self.remedies],
        }
