"""What a migration is asked to do: the options of ``pgshift migrate``, as one frozen record."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pgshift.conninfo import Endpoint
from pgshift.errors import UsageError

IfExists = Literal["error", "drop", "skip"]
IF_EXISTS_CHOICES: tuple[IfExists, ...] = ("error", "drop", "skip")
# On resume, a dump of an earlier attempt: reused when the source is unchanged (auto), always, never.
DumpReuse = Literal["auto", "always", "never"]


@dataclass(frozen=True)
class MigrateOptions:
    """Every option of a migration. The CLI builds one; the demo and tests build their own."""

    source: Endpoint
    target: Endpoint
    databases: tuple[str, ...] = ()  # empty: every non-template database except postgres
    exclude_databases: tuple[str, ...] = ()
    renames: Mapping[str, str] = field(default_factory=dict)  # source name -> target name
    if_exists: IfExists = "error"
    jobs: int = 2
    workdir: Path | None = None  # default: state_dir()/runs/<timestamp>
    resume: bool = False  # continue the run recorded in ``workdir``
    keep_dumps: bool = False
    analyze: bool = True
    accept: tuple[str, ...] = ()  # check rule ids whose blockers are overridden
    allow_downgrade: bool = False
    globals: bool = True  # roles, memberships, role settings, tablespaces
    no_role_passwords: bool = False
    tablespace_map: Mapping[str, str] = field(default_factory=dict)  # tablespace name or old path -> new path
    no_tablespaces: bool = False
    schemas: tuple[str, ...] = ()  # psql patterns, passed to pg_dump --schema
    exclude_schemas: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    exclude_tables: tuple[str, ...] = ()
    no_owner: bool = False
    no_privileges: bool = False
    data_only: bool = False
    schema_only: bool = False
    pg_bins: tuple[Path, ...] = ()
    docker: bool = False
    docker_image: str | None = None
    verify: bool = True
    checksums: bool = False
    check: bool = True  # run pgshift check's rules in the preflight
    dry_run: bool = False
    dump_reuse: DumpReuse = "auto"  # for this attempt only: not kept in the journal

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise UsageError(f"--jobs must be at least 1, not {self.jobs}")
        if self.data_only and self.schema_only:
            raise UsageError("--data-only and --schema-only cannot be used together")
        if self.if_exists not in IF_EXISTS_CHOICES:
            raise UsageError(f"--if-exists must be one of {', '.join(IF_EXISTS_CHOICES)}, not {self.if_exists!r}")
        if self.resume and self.workdir is None:
            raise UsageError("--resume needs the work directory of the run to continue")
        targets = list(self.renames.values())
        dupes = sorted({t for t in targets if targets.count(t) > 1})
        if dupes:
            raise UsageError(f"--rename maps several databases to {', '.join(dupes)}")

    @property
    def has_object_filters(self) -> bool:
        return bool(self.schemas or self.exclude_schemas or self.tables or self.exclude_tables)

    def target_name(self, source_db: str) -> str:
        return self.renames.get(source_db, source_db)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with the connection strings redacted (the journal keeps this)."""
        return {
            "source": self.source.display(),
            "target": self.target.display(),
            "databases": list(self.databases),
            "exclude_databases": list(self.exclude_databases),
            "renames": dict(self.renames),
            "if_exists": self.if_exists,
            "jobs": self.jobs,
            "workdir": str(self.workdir) if self.workdir else None,
            "keep_dumps": self.keep_dumps,
            "analyze": self.analyze,
            "accept": list(self.accept),
            "allow_downgrade": self.allow_downgrade,
            "globals": self.globals,
            "no_role_passwords": self.no_role_passwords,
            "tablespace_map": dict(self.tablespace_map),
            "no_tablespaces": self.no_tablespaces,
            "schemas": list(self.schemas),
            "exclude_schemas": list(self.exclude_schemas),
            "tables": list(self.tables),
            "exclude_tables": list(self.exclude_tables),
            "no_owner": self.no_owner,
            "no_privileges": self.no_privileges,
            "data_only": self.data_only,
            "schema_only": self.schema_only,
            "pg_bins": [str(p) for p in self.pg_bins],
            "docker": self.docker,
            "docker_image": self.docker_image,
            "verify": self.verify,
            "checksums": self.checksums,
            "check": self.check,
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, source: Endpoint, target: Endpoint, **changes: Any
    ) -> MigrateOptions:
        """Rebuild options recorded by ``as_dict`` (the journal), with fresh endpoints."""
        values: dict[str, Any] = {
            "source": source,
            "target": target,
            "databases": tuple(data.get("databases", ())),
            "exclude_databases": tuple(data.get("exclude_databases", ())),
            "renames": dict(data.get("renames", {})),
            "if_exists": data.get("if_exists", "error"),
            "jobs": int(data.get("jobs", 2)),
            "workdir": Path(data["workdir"]) if data.get("workdir") else None,
            "keep_dumps": bool(data.get("keep_dumps", False)),
            "analyze": bool(data.get("analyze", True)),
            "accept": tuple(data.get("accept", ())),
            "allow_downgrade": bool(data.get("allow_downgrade", False)),
            "globals": bool(data.get("globals", True)),
            "no_role_passwords": bool(data.get("no_role_passwords", False)),
            "tablespace_map": dict(data.get("tablespace_map", {})),
            "no_tablespaces": bool(data.get("no_tablespaces", False)),
            "schemas": tuple(data.get("schemas", ())),
            "exclude_schemas": tuple(data.get("exclude_schemas", ())),
            "tables": tuple(data.get("tables", ())),
            "exclude_tables": tuple(data.get("exclude_tables", ())),
            "no_owner": bool(data.get("no_owner", False)),
            "no_privileges": bool(data.get("no_privileges", False)),
            "data_only": bool(data.get("data_only", False)),
            "schema_only": bool(data.get("schema_only", False)),
            "pg_bins": tuple(Path(p) for p in data.get("pg_bins", ())),
            "docker": bool(data.get("docker", False)),
            "docker_image": data.get("docker_image"),
            "verify": bool(data.get("verify", True)),
            "checksums": bool(data.get("checksums", False)),
            "check": bool(data.get("check", True)),
        }
        values.update(changes)
        return cls(**values)
