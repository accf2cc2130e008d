"""What a migration is asked to do: the options of ``pgshift migrate``, as one frozen record."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from pgshift.conninfo import Endpoint
from pgshift.errors import UsageError
from pgshift.flags import (
    EXCLUDE_OBJECT,
    EXCLUDE_SCHEMA,
    EXCLUDE_TABLE,
    PG_BIN,
    REMEDY,
    RENAME,
    SCHEMA,
    TABLE,
    DeclaredOption,
    cli,
    declared_options,
)
from pgshift.version import DUMP_COMPRESSIONS

IfExists = Literal["error", "drop", "skip"]
IF_EXISTS_CHOICES: tuple[IfExists, ...] = ("error", "drop", "skip")
# On resume, a dump of an earlier attempt: reused when the source is unchanged (auto), always, never.
DumpReuse = Literal["auto", "always", "never"]
# How the data travels: an archive in the work directory (dump), or COPY straight from the source
# to the target in one snapshot (stream).
Mode = Literal["dump", "stream"]
MODE_CHOICES: tuple[Mode, ...] = ("dump", "stream")


@dataclass(frozen=True)
class MigrateOptions:
    """Every option of a migration. The CLI builds one; the demo and tests build their own.

    A field that is an option of ``pgshift migrate`` declares it in its metadata (``cli(...)``, see
    ``pgshift.flags``): its flags, metavar and help, and whether a resumed run may be given it again
    (``resumable``: how the rest is done). Options that define what the run moves are not
    resumable: a changed selection is a new run. The CLI's options, in the order of its help, are
    these fields in this order; the fields without one are in ``NOT_ON_THE_COMMAND_LINE``.
    """

    source: Endpoint
    target: Endpoint
    databases: tuple[str, ...] = field(
        default=(),  # empty: every non-template database except postgres
        metadata=cli(
            "--database",
            "-d",
            metavar="NAME",
            help="Move this database (repeatable). Default: all but postgres and templates.",
        ),
    )
    exclude_databases: tuple[str, ...] = field(
        default=(),
        metadata=cli("--exclude-database", "-D", metavar="NAME", help="Do not move this database (repeatable)."),
    )
    renames: Mapping[str, str] = field(default_factory=dict, metadata=cli(RENAME))  # source name -> target name
    if_exists: IfExists = field(
        default="error",
        metadata=cli(
            "--if-exists",
            metavar="|".join(IF_EXISTS_CHOICES),
            resumable=True,
            help="A target database that already exists: refuse (error), drop and replace it, or skip it.",
        ),
    )
    jobs: int = field(
        default=2,
        metadata=cli(
            "--jobs",
            "-j",
            metavar="N",
            minimum=1,
            resumable=True,
            help="Parallel work: databases at once × pg_dump/pg_restore -j.",
        ),
    )
    mode: Mode = field(
        default="dump",
        metadata=cli(
            "--mode",
            metavar="|".join(MODE_CHOICES),
            help="dump: pg_dump to the work directory, then pg_restore. stream: the schema by pg_dump, the data "
            "by COPY from source to target in one snapshot, indexes built while other tables copy.",
        ),
    )
    compress: str = field(
        default="auto",
        metadata=cli(
            "--compress",
            metavar="METHOD",
            resumable=True,
            help="How dumps in the work directory are compressed: auto, none, gzip, lz4 or zstd, with an optional "
            ":LEVEL. auto: lz4 with a pg_dump 16+ built with it, else none (gzip, pg_dump's own default, takes "
            "3-4 times as long).",
        ),
    )
    workdir: Path | None = field(  # default: state_dir()/runs/<timestamp>
        default=None,
        metadata={"path": True, **cli("--workdir", metavar="DIR", help="Work directory (journal, log, dumps).")},
    )
    resume: bool = False  # continue the run recorded in ``workdir``
    keep_dumps: bool = field(
        default=False,
        metadata=cli("--keep-dumps", resumable=True, help="Keep the dump archives (else removed once restored)."),
    )
    analyze: bool = field(
        default=True,
        metadata=cli("--analyze/--no-analyze", resumable=True, help="ANALYZE each database after restore."),
    )
    accept: tuple[str, ...] = field(  # check rule ids whose blockers are overridden
        default=(),
        metadata=cli(
            "--accept", metavar="RULE_ID", resumable=True, help="Override a blocker of pgshift check (repeatable)."
        ),
    )
    # Named remedies (migrate/remedies.py) and objects left out: they change what the target
    # receives, so a resumed run keeps those it started with.
    remedies: tuple[str, ...] = field(default=(), metadata=cli(REMEDY))
    exclude_objects: tuple[str, ...] = field(default=(), metadata=cli(EXCLUDE_OBJECT))
    check: bool = field(  # run pgshift check's rules in the preflight
        default=True, metadata=cli("--no-check", resumable=True, help="Do not run pgshift check's rules first.")
    )
    allow_downgrade: bool = field(
        default=False, metadata=cli("--allow-downgrade", help="Allow a target older than the source.")
    )
    globals: bool = field(  # roles, memberships, role settings, tablespaces
        default=True,
        metadata=cli("--no-globals", resumable=True, help="Do not create roles, memberships and tablespaces."),
    )
    no_role_passwords: bool = field(
        default=False,
        metadata=cli("--no-role-passwords", resumable=True, help="Create roles without their passwords."),
    )
    tablespace_map: Mapping[str, str] = field(  # tablespace name or old path -> new path
        default_factory=dict,
        metadata=cli(
            "--tablespace-map",
            metavar="OLD=NEW",
            resumable=True,
            help="Create tablespace OLD (name or path) at path NEW.",
        ),
    )
    no_tablespaces: bool = field(
        default=False,
        metadata=cli("--no-tablespaces", resumable=True, help="Ignore tablespaces: everything goes to the default."),
    )
    schemas: tuple[str, ...] = field(default=(), metadata=cli(SCHEMA))  # psql patterns, passed to pg_dump --schema
    exclude_schemas: tuple[str, ...] = field(default=(), metadata=cli(EXCLUDE_SCHEMA))
    tables: tuple[str, ...] = field(default=(), metadata=cli(TABLE))
    exclude_tables: tuple[str, ...] = field(default=(), metadata=cli(EXCLUDE_TABLE))
    no_owner: bool = field(
        default=False,
        metadata=cli("--no-owner", "-O", resumable=True, help="Objects belong to the target's connecting role."),
    )
    no_privileges: bool = field(
        default=False,
        metadata=cli("--no-privileges", "--no-acl", "-x", resumable=True, help="Do not restore grants."),
    )
    data_only: bool = field(
        default=False,
        metadata=cli("--data-only", "-a", help="Only data, into databases that exist on the target."),
    )
    schema_only: bool = field(default=False, metadata=cli("--schema-only", "-s", help="Only the schema, no data."))
    pg_bins: tuple[Path, ...] = field(default=(), metadata={"path": True, **cli(PG_BIN, resumable=True)})
    docker: bool = field(
        default=False, metadata=cli("--docker", resumable=True, help="Run the client programs in Docker.")
    )
    docker_image: str | None = field(
        default=None,
        metadata=cli("--docker-image", metavar="IMAGE", resumable=True, help="The image for --docker."),
    )
    verify: bool = field(
        default=True,
        metadata=cli("--verify/--no-verify", resumable=True, help="Compare source and target at the end."),
    )
    checksums: bool = field(
        default=False,
        metadata=cli("--checksums", resumable=True, help="Verify the data itself with checksums (reads everything)."),
    )
    dry_run: bool = field(  # for this attempt only: not kept in the journal
        default=False,
        metadata=cli("--dry-run", resumable=True, help="Print the plan and every command in order; change nothing."),
    )
    dump_reuse: DumpReuse = "auto"  # for this attempt only: not kept in the journal

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise UsageError(f"--jobs must be at least 1, not {self.jobs}")
        if self.data_only and self.schema_only:
            raise UsageError("--data-only and --schema-only cannot be used together")
        if self.if_exists not in IF_EXISTS_CHOICES:
            raise UsageError(f"--if-exists must be one of {', '.join(IF_EXISTS_CHOICES)}, not {self.if_exists!r}")
        if self.mode not in MODE_CHOICES:
            raise UsageError(f"--mode must be one of {', '.join(MODE_CHOICES)}, not {self.mode!r}")
        if self.mode == "stream" and self.data_only:
            raise UsageError(
                "--data-only works in dump mode only",
                hint="drop --mode stream, or move schema and data together in stream mode",
            )
        method, colon, level = self.compress.partition(":")
        if method not in ("auto", *DUMP_COMPRESSIONS) or (colon and not (level.isdigit() and method != "auto")):
            raise UsageError(
                f"--compress {self.compress}: not a compression",
                hint="give auto, none, gzip, lz4 or zstd, optionally with a level (gzip:6, zstd:3)",
            )
        if self.resume and self.workdir is None:
            raise UsageError("--resume needs the work directory of the run to continue")
        from pgshift.migrate.remedies import check_remedy_names, parse_object_spec

        check_remedy_names(self.remedies)
        for spec in self.exclude_objects:
            parse_object_spec(spec)
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


# The fields that are no option of ``pgshift migrate``, and why.
NOT_ON_THE_COMMAND_LINE: Mapping[str, str] = {
    "source": "the SOURCE argument",
    "target": "the TARGET argument",
    "resume": "--resume WORKDIR, which names the work directory as well",
    "dump_reuse": "--redump or --reuse-dump, with --resume only",
}
# The options of ``pgshift migrate``, in the order of its help.
CLI_OPTIONS: tuple[DeclaredOption, ...] = declared_options(MigrateOptions)


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
