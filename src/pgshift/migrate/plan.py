"""The plan of a migration: pure data, built by the preflight, printed by ``--dry-run``, run by the runner."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pgshift.catalog.ddl import Statement
from pgshift.migrate.options import MigrateOptions
from pgshift.toolchain.select import ClientChoice

# "continue": an earlier attempt of the run got this database part of the way; the steps it did not
# finish are done now, the smallest unit first (an item of the restore, the ANALYZE …).
DatabaseAction = Literal["migrate", "drop-and-migrate", "skip", "done", "redo", "continue"]

# The phases of one database, in order: the result times each (several steps may add up to one).
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
class AppliedRemedy:
    """A remedy applied to one object on the target (migrate/remedies.py): said in the plan and
    the report, and declared to verify as the difference it makes."""

    remedy: str  # generated-as-plain, rename-rule, drop-removed-settings, leave-out-extension, exclude-object
    database: str | None  # the source database; None: a global object (a role's setting)
    kind: str  # as verify names objects: column, rule, function, procedure, extension, database, role, table …
    name: str  # as verify prints it: public.child.b, public.t._RETURN, public.f(integer), hstore
    change: str  # what the target gets instead
    also: tuple[str, ...] = ()  # exclude-object: the dependents left out with it ("view public.v")
    renamed_to: str | None = None  # rename-rule: the new name

    @property
    def object(self) -> str:
        return f"{self.kind} {self.name}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "remedy": self.remedy,
            "database": self.database,
            "object": self.object,
            "kind": self.kind,
            "name": self.name,
            "change": self.change,
            "also": list(self.also),
            "renamed_to": self.renamed_to,
        }


@dataclass(frozen=True)
class ItemChange:
    """What a remedy does to one item of the dump, found by its catalog address on the source."""

    remedy: str
    classid: int
    objid: int
    about: str
    omit: bool = False  # left out of the restore (with its data, comments and grants)
    plain_columns: tuple[str, ...] = ()  # CREATE TABLE rewritten: these columns lose GENERATED … STORED
    drop_settings: tuple[str, ...] = ()  # CREATE FUNCTION rewritten: these SET clauses left out

    def as_dict(self) -> dict[str, Any]:
        return {
            "remedy": self.remedy,
            "object": self.about,
            "address": [self.classid, self.objid],
            "omit": self.omit,
            "plain_columns": list(self.plain_columns),
            "drop_settings": list(self.drop_settings),
        }


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
    remedies: tuple[AppliedRemedy, ...] = ()

    @property
    def moves(self) -> bool:
        return self.action in ("migrate", "drop-and-migrate", "redo", "continue")

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
            "remedies": [r.as_dict() for r in self.remedies],
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


# What a step does, one kind per executor (steps.EXECUTORS): the runner runs nothing else.
StepKind = Literal[
    "record-globals",  # pg_dumpall --globals-only: the record kept in the work directory
    "create-roles",
    "grant-memberships",
    "create-tablespaces",
    "drop-database",
    "create-database",
    "dump",
    "reuse-dump",
    "script-schema",  # pg_restore --section=pre-data --file: the schema as SQL, rewritten by remedies
    "restore-schema",  # pg_restore --section=pre-data (or psql of the rewritten script)
    "restore-data",  # pg_restore --section=data --section=post-data: tables, then indexes and constraints
    "restore-triggers",  # pg_restore of the triggers the data step left out: none fires while data loads
    # Stream mode: COPY from source to target in the dump's snapshot, each table's post-data items
    # (indexes, constraints …) as soon as its data is in, then the rest of post-data, sequences and
    # large objects (migrate/stream.py). Its program writes the post-data section as SQL first.
    "stream-data",
    "stream-finish",  # stream mode: the copy's progress records dropped from the target database
    "remedy",  # statements of remedies after the data: values of generated-as-plain columns, renamed rules
    "database-settings",  # extensions a filtered dump left out, role settings in the database
    "analyze",
    "finish",  # the database's own comment in place of pgshift's in-progress mark
    # A resume after a verification that failed: the tables it found different (and those referencing
    # them) copied again from the source, in a new snapshot verify then reads (migrate/recopy.py).
    "recopy",
    "verify",
    # Backups and restores of sets (pgshift.backup): the rows of each table counted in the snapshot
    # the dump then reads, the globals' facts written to the set, the manifest and the rename that
    # make a set complete, and pg_restore (or psql) of one archive of a set.
    "snapshot-counts",
    "record-facts",
    "seal-set",
    "rotate-sets",  # --keep N: complete sets beyond the newest N removed, and partial ones no run holds
    "restore-archive",
]


@dataclass(frozen=True)
class Action:
    """One SQL statement of a step, with what it is about (for messages)."""

    about: str
    statement: Statement
    role_created: str | None = None  # a CREATE ROLE: its intent and outcome are journaled
    # A GRANT of a membership: applied only when the role was created by this run after all.
    requires_role: str | None = None
    # A setting (ALTER DATABASE/ROLE … SET): when the target no longer knows the parameter (an
    # accepted removed-guc-settings blocker), it is skipped with a warning instead of failing.
    setting: bool = False
    # SQLSTATE condition names (psycopg.errors.lookup) that leave the statement undone, not failed.
    tolerates: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"about": self.about, "sql": self.statement.display()}
        if self.tolerates:
            out["tolerates"] = list(self.tolerates)
        if self.requires_role:
            out["requires_role"] = self.requires_role
        return out


@dataclass(frozen=True)
class ProgramCall:
    """A client program a step runs: its arguments hold no secret (those go by the environment)."""

    program: str  # "pg_dump"
    args: tuple[str, ...]
    server: Literal["source", "target"]
    display: str  # the command line as the log and the plan show it


@dataclass(frozen=True)
class Step:
    """One step of the plan: what it runs, where, after what. Its id is stable across attempts."""

    id: str  # "globals:roles", "db:sales:restore-data", "verify"
    kind: StepKind
    title: str
    database: str | None = None  # the source database the step belongs to
    connect_to: str | None = None  # the target database its SQL runs in
    sql: tuple[Action, ...] = ()
    program: ProgramCall | None = None
    after: tuple[str, ...] = ()  # steps that must be done first
    note: str = ""
    warnings: tuple[str, ...] = ()  # said when the step runs (also shown by --dry-run)
    # Journaled when the step starts, before its work: e.g. that this run creates the database.
    intent: Mapping[str, Any] = field(default_factory=dict)
    # Remedies: dump items a restore step leaves out, or a script step rewrites.
    items: tuple[ItemChange, ...] = ()

    @property
    def tolerates(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t for a in self.sql for t in a.tolerates))

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "title": self.title,
            "database": self.database,
            "connect_to": self.connect_to,
            "sql": [a.as_dict() for a in self.sql],
            "program": (
                {"program": self.program.program, "server": self.program.server, "command": self.program.display}
                if self.program
                else None
            ),
            "after": list(self.after),
            "tolerates": list(self.tolerates),
            "note": self.note,
            "warnings": list(self.warnings),
            "items": [i.as_dict() for i in self.items],
        }


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
    steps: tuple[Step, ...]
    workdir: Path
    dump_dirs: Mapping[str, Path]
    parallel_databases: int
    jobs_per_database: int
    warnings: tuple[str, ...] = ()
    changes: tuple[str, ...] = ()  # how a resume's plan differs from the recorded run (also in warnings)
    check: CheckSummary = field(default_factory=lambda: CheckSummary(ran=False))
    resumed: bool = False
    run_id: str = ""
    remedies: tuple[AppliedRemedy, ...] = ()  # global ones (role settings); per database in DatabasePlan

    @property
    def applied_remedies(self) -> tuple[AppliedRemedy, ...]:
        return (*self.remedies, *(r for d in self.moving for r in d.remedies))

    def steps_of(self, database: str | None) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.database == database)

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
            "run_id": self.run_id,
            "dump_dirs": {k: str(v) for k, v in self.dump_dirs.items()},
            "parallel_databases": self.parallel_databases,
            "jobs_per_database": self.jobs_per_database,
            "warnings": list(self.warnings),
            "changes": list(self.changes),
            "check": self.check.as_dict(),
            "resumed": self.resumed,
            "remedies": [r.as_dict() for r in self.applied_remedies],
            "total_bytes": self.total_bytes,
            "options": self.options.as_dict(),
        }
