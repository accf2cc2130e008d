"""What a migration is asked to do: the options of ``pgshift migrate``, as one frozen record."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
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
    workdir: Path | None = field(default=None, metadata={"path": True})  # default: state_dir()/runs/<timestamp>
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
    pg_bins: tuple[Path, ...] = field(default=(), metadata={"path": True})
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
        out: dict[str, Any] = {"source": self.source.display(), "target": self.target.display()}
        for f in fields(self):
            if f.name not in _NOT_RECORDED:
                out[f.name] = _to_json(getattr(self, f.name))
        return out

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, source: Endpoint, target: Endpoint, **changes: Any
    ) -> MigrateOptions:
        """Rebuild options recorded by ``as_dict`` (the journal), with fresh endpoints."""
        values: dict[str, Any] = {"source": source, "target": target}
        for f in fields(cls):
            if f.name not in _NOT_RECORDED and f.name in data:
                values[f.name] = _from_json(f, data[f.name])
        values.update(changes)
        return cls(**values)


# Fields the journal does not keep: the endpoints (kept redacted, above) and what belongs to one attempt.
_NOT_RECORDED = frozenset({"source", "target", "resume", "dry_run", "dump_reuse"})


def _to_json(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [_to_json(v) for v in value]
    if isinstance(value, Mapping):
        return dict(value)
    return value


def _from_json(f: Field[Any], value: Any) -> Any:
    """Each field's recorded value back in its own type, told by its default (and ``path`` metadata)."""
    default = f.default_factory() if f.default is MISSING and f.default_factory is not MISSING else f.default
    if f.metadata.get("path"):
        if isinstance(default, tuple):
            return tuple(Path(v) for v in value)
        return Path(value) if value else None
    if isinstance(default, tuple):
        return tuple(value)
    if isinstance(default, Mapping):
        return dict(value)
    if isinstance(default, bool):
        return bool(value)
    if isinstance(default, int):
        return int(value)
    return value
