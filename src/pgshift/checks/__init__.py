"""``check``: the dry-run compatibility report of a cross-version move.

Public API (used by ``migrate`` for its preflight; kept stable):

* ``Severity`` — blocker / warning / info.
* ``Finding`` — one hazard on one object: rule id, severity, title, message, remediation,
  database and object.
* ``CheckReport`` — what ``run_check`` returns: both servers' inventories, the findings, the
  target-side checks that could not run (offline mode) and why, the client choice with the
  manual commands, and the size/connection/disk estimates. ``exit_code`` is 0/1/2.
* ``run_check(source, target, ...)`` — read-only on both servers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgshift.events import EventSink, discard

if TYPE_CHECKING:
    import threading

    from pgshift.catalog.inventory_check import DumpSelection, ObjectFilters, SourceInventory, TargetInventory
    from pgshift.checks.trial import SchemaArchive, TrialReport
    from pgshift.conninfo import Endpoint, ResolvedEndpoint
    from pgshift.migrate.plan import AppliedRemedy, ItemChange
    from pgshift.toolchain.select import ClientChoice

# Version of the JSON document ``pgshift check --format json`` writes (docs/check.md).
SCHEMA_VERSION = 1


class Severity(StrEnum):
    BLOCKER = "blocker"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Higher is worse: blocker 2, warning 1, info 0."""
        return {"blocker": 2, "warning": 1, "info": 0}[self.value]


@dataclass(frozen=True)
class Finding:
    """One hazard found on one object."""

    rule_id: str
    severity: Severity
    title: str
    message: str
    remediation: str
    database: str | None = None
    object: str | None = None
    changed_in: str | None = None  # the PostgreSQL release where the behaviour changed
    # A named remedy migrate can apply on the target to carry this object in a declared, changed form
    # (``pgshift migrate --remedy NAME``); None when the object has to be fixed on the source.
    remedy: str | None = None
    # The remedy the checked run is given that carries this blocker (``--remedy NAME``): it is then
    # reported as a warning, the object arriving in the remedy's declared form.
    carried_by: str | None = None
    refused_by_trial: bool = False  # the schema trial saw the target refuse this object

    @property
    def fix(self) -> str:
        """The remediation, followed by the remedy migrate offers (what reports print as the fix)."""
        if self.carried_by is not None:
            return f"Carried by --remedy {self.carried_by} (the report's remedies say what the target gets)."
        if self.remedy is None or (self.remedy == "exclude-object" and "--exclude-object" in self.remediation):
            return self.remediation  # the remediation names the --exclude-object to give already
        if self.remedy == "exclude-object":
            return f"{self.remediation} Or leave it out of the move with --exclude-object."
        return f"{self.remediation} Or let migrate carry it: --remedy {self.remedy}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "severity": self.severity.value,
            "title": self.title,
            "database": self.database,
            "object": self.object,
            "message": self.message,
            "remediation": self.remediation,
            "changed_in": self.changed_in,
            "remedy": self.remedy,
            "carried_by": self.carried_by,
            "refused_by_trial": self.refused_by_trial,
        }


@dataclass(frozen=True)
class Skipped:
    """A rule that applies to the versions at hand but could not run, and why."""

    rule_id: str
    title: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"rule_id": self.rule_id, "title": self.title, "reason": self.reason}


@dataclass(frozen=True)
class ClientAdvice:
    """Which client programs a migration would use, why, and the commands a DBA would type."""

    program_major: str | None  # "18"; None when no client fits
    version: str | None
    where: str | None
    reason: str
    warnings: tuple[str, ...] = ()
    dump_flags: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()  # the manual migration, one shell line each
    error: str | None = None  # why no client could be chosen
    # The choice itself, for the programs check runs (the schema trial); not part of the JSON document.
    choice: ClientChoice | None = field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "major": self.program_major,
            "version": self.version,
            "where": self.where,
            "reason": self.reason,
            "warnings": list(self.warnings),
            "dump_flags": list(self.dump_flags),
            "commands": list(self.commands),
            "error": self.error,
        }


@dataclass(frozen=True)
class Estimates:
    """What a move costs: bytes, connections, work-directory space."""

    databases_bytes: int  # sum of pg_database_size of the checked databases
    table_data_bytes: int  # heap + TOAST of user tables and large objects (what a dump carries, uncompressed)
    index_bytes: int  # rebuilt on the target, not copied
    jobs: int
    source_connections_needed: int
    source_connections_available: int | None
    target_connections_needed: int
    target_connections_available: int | None
    work_dir: str
    work_dir_free_bytes: int | None
    dump_bytes_estimate: int  # upper bound of a custom/directory-format dump
    work_dir_fits: bool | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Selection:
    """What the checked move carries: migrate's -d/-D/--rename and pg_dump's -n/-N/-t/-T."""

    databases: tuple[str, ...]  # the source databases checked (migrate's default: all but postgres and templates)
    exclude_databases: tuple[str, ...]
    renames: Mapping[str, str]  # source name -> name on the target
    filters: ObjectFilters
    per_database: tuple[DumpSelection, ...] = ()  # what the object filters select in each database

    def as_dict(self) -> dict[str, Any]:
        return {
            "databases": list(self.databases),
            "exclude_databases": list(self.exclude_databases),
            "renames": dict(self.renames),
            "filters": self.filters.as_dict(),
            "per_database": [d.as_dict() for d in self.per_database],
        }


@dataclass(frozen=True)
class CheckReport:
    source: SourceInventory
    target: TargetInventory | None
    target_version: int  # the major the report is for (target server's or --target-version)
    offline: bool  # True when no target server was given
    findings: tuple[Finding, ...]
    skipped: tuple[Skipped, ...]
    client: ClientAdvice
    estimates: Estimates
    rules_run: tuple[str, ...] = field(default=())
    seconds: float = 0.0
    trial: TrialReport | None = None  # the schema trial; None with --no-trial
    selection: Selection | None = None  # the databases and objects checked (what the move carries)
    # What the checked run's remedies (--remedy, --exclude-object) do, object by object.
    remedies: tuple[AppliedRemedy, ...] = ()
    # The same as migrate's item changes per source database (what the schema trial applies); not in the JSON.
    item_changes: Mapping[str, tuple[ItemChange, ...]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def blockers(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.BLOCKER)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)

    @property
    def infos(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.INFO)

    @property
    def carried(self) -> tuple[Finding, ...]:
        """Blockers the checked run's remedies carry (reported as warnings)."""
        return tuple(f for f in self.findings if f.carried_by is not None)

    @property
    def exit_code(self) -> int:
        """0 nothing above info, 1 warnings, 2 blockers (docs/exit-codes.md)."""
        if self.blockers:
            return 2
        if self.warnings:
            return 1
        return 0

    @property
    def verdict(self) -> str:
        src = self.source.server.version.major_label
        move = f"{src} → {self.target_version}"
        if self.blockers:
            return f"NOT READY ({move}): {len(self.blockers)} blocker(s) must be fixed first" + (
                f", {len(self.warnings)} warning(s) to review" if self.warnings else ""
            )
        if self.warnings:
            carried = f", {len(self.carried)} blocker(s) carried by remedies" if self.carried else ""
            return f"READY WITH WARNINGS ({move}): {len(self.warnings)} warning(s) to review{carried}"
        return f"READY ({move}): no blockers or warnings" + (
            f"; {len(self.skipped)} target-side check(s) not run" if self.skipped else ""
        )

    def as_dict(self) -> dict[str, Any]:
        from pgshift.checks.rules import ALL_RULES

        return {
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "target_version": self.target_version,
            "offline": self.offline,
            "seconds": round(self.seconds, 3),
            "counts": {
                "blocker": len(self.blockers),
                "warning": len(self.warnings),
                "info": len(self.infos),
                "carried": len(self.carried),
                "skipped": len(self.skipped),
            },
            "source": self.source.as_dict(),
            "target": self.target.as_dict() if self.target is not None else None,
            "client": self.client.as_dict(),
            "estimates": self.estimates.as_dict(),
            "rules": [r.as_dict() for r in ALL_RULES if r.id in set(self.rules_run)],
            "findings": [f.as_dict() for f in self.findings],
            "skipped": [s.as_dict() for s in self.skipped],
            "trial": self.trial.as_dict() if self.trial is not None else None,
            "selection": self.selection.as_dict() if self.selection is not None else None,
            "remedies": [r.as_dict() for r in self.remedies],
        }


def run_check(
    source: Endpoint | ResolvedEndpoint,
    target: Endpoint | ResolvedEndpoint | None,
    *,
    target_version: int | None = None,
    databases: Sequence[str] | None = None,
    jobs: int = 2,
    pg_bins: Sequence[Path] = (),
    sink: EventSink = discard,
    work_dir: Path | None = None,
    client: ClientChoice | None = None,
    trial: bool = False,
    remedies: Mapping[str, Sequence[ItemChange]] | None = None,
    exclude_databases: Sequence[str] = (),
    renames: Mapping[str, str] | None = None,
    filters: ObjectFilters | None = None,
    restore_args: Sequence[str] = (),
    remedy_names: Sequence[str] = (),
    exclude_objects: Sequence[str] = (),
    tablespace_map: Mapping[str, str] | None = None,
) -> CheckReport:
    """Inventory both servers and run every rule that applies; change nothing on either.

    The databases and objects are those ``pgshift migrate`` moves with the same options:
    ``databases`` (default: every database but postgres and the templates) minus ``exclude_databases``;
    ``renames`` (source name -> target name) for the target-side rules; ``filters`` (pg_dump's
    -n/-N/-t/-T patterns): findings on objects the filters leave out are not reported.
    Without ``target``, ``target_version`` (default: the newest known major) names the planned major
    and the target-side rules are reported as skipped.
    Resolved endpoints and a ``client`` choice (migrate's preflight) are used as they are.

    ``restore_args`` are pg_restore options of the move the trial mimics (``--no-owner``, ``--no-privileges``).
    ``trial`` runs the schema trial after the rules (``checks.trial``): the source's schema is restored
    into a scratch database on the target (or on a lab server of the planned major), which is dropped
    afterwards; what the target refuses becomes findings. Off by default here (migrate's preflight);
    ``pgshift check`` turns it on unless ``--no-trial``.

    ``remedy_names`` and ``exclude_objects`` are migrate's ``--remedy`` and ``--exclude-object`` of the
    checked run: planned here as migrate's preflight plans them (unless ``remedies``, the preflight's
    own item changes, are given), applied in the trial; what they leave out is no hazard of the
    move, and a blocker a given remedy carries becomes a warning ``carried_by`` it.
    ``tablespace_map`` is migrate's ``--tablespace-map`` (a mapped tablespace is created, not missing).
    """
    import psycopg

    from pgshift.catalog.session import query_failed
    from pgshift.checks.engine import run
    from pgshift.migrate.remedies import check_remedy_names, parse_object_spec

    check_remedy_names(remedy_names)
    specs = [parse_object_spec(text) for text in exclude_objects]
    try:
        report = run(
            source,
            target,
            target_version=target_version,
            databases=databases,
            jobs=jobs,
            pg_bins=pg_bins,
            sink=sink,
            work_dir=work_dir,
            chosen_client=client,
            exclude_databases=exclude_databases,
            renames=renames,
            filters=filters,
            remedies=remedies,
            remedy_names=remedy_names,
            exclude_objects=specs,
            tablespace_map=tablespace_map,
            restore_args=tuple(restore_args),
        )
    except psycopg.Error as exc:
        raise query_failed("check could not read the servers", exc) from None
    if trial:
        return with_trial(
            report,
            source,
            target,
            sink=sink,
            work_dir=work_dir,
            filters=filters,
            remedies=remedies,
            restore_args=restore_args,
            remedy_names=remedy_names,
        )
    return _carried(report, remedy_names)


def with_trial(
    report: CheckReport,
    source: Endpoint | ResolvedEndpoint,
    target: Endpoint | ResolvedEndpoint | None,
    *,
    sink: EventSink = discard,
    work_dir: Path | None = None,
    filters: ObjectFilters | None = None,
    remedies: Mapping[str, Sequence[ItemChange]] | None = None,
    restore_args: Sequence[str] = (),
    remedy_names: Sequence[str] = (),
    cancel: threading.Event | None = None,
    schema_archive: SchemaArchive | None = None,
) -> CheckReport:
    """``report`` (of ``run_check`` without the trial) completed by the schema trial, as
    ``run_check(trial=True)`` would have made it: migrate's preflight runs the rules first and the
    trial beside its first steps, which only read the source (``schema_archive``: see run_trial)."""
    report = _with_trial(
        report,
        source,
        target,
        sink=sink,
        work_dir=work_dir,
        dump_args=filters.dump_args() if filters else (),
        remedies=remedies if remedies is not None else report.item_changes,
        restore_args=restore_args,
        cancel=cancel,
        schema_archive=schema_archive,
    )
    return _carried(report, remedy_names)


def _carried(report: CheckReport, remedy_names: Sequence[str]) -> CheckReport:
    """Blockers a given remedy carries become warnings naming it — unless the schema trial, run with
    the remedies applied, still saw the target refuse the object."""
    given = set(remedy_names) - {"exclude-object"}
    if not given:
        return report
    findings = tuple(
        replace(f, severity=Severity.WARNING, carried_by=f.remedy)
        if f.severity is Severity.BLOCKER and f.remedy in given and not f.refused_by_trial
        else f
        for f in report.findings
    )
    return replace(report, findings=findings)


def _with_trial(
    report: CheckReport,
    source: Endpoint | ResolvedEndpoint,
    target: Endpoint | ResolvedEndpoint | None,
    *,
    sink: EventSink,
    work_dir: Path | None,
    dump_args: Sequence[str],
    remedies: Mapping[str, Sequence[ItemChange]] | None = None,
    restore_args: Sequence[str] = (),
    cancel: threading.Event | None = None,
    schema_archive: SchemaArchive | None = None,
) -> CheckReport:
    """The report with the schema trial's outcome: its refusals merged into the findings."""
    import psycopg

    from pgshift.catalog.session import query_failed, resolve
    from pgshift.checks.rules import ALL_RULES
    from pgshift.checks.trial import RULE_ID, TITLE, merge_findings, run_trial
    from pgshift.conninfo import ResolvedEndpoint

    try:
        src = source if isinstance(source, ResolvedEndpoint) else resolve(source)
        tgt = target if isinstance(target, ResolvedEndpoint) or target is None else resolve(target)
        checked = {d.name for d in report.source.checked}
        outcome = run_trial(
            src,
            tgt,
            databases=[d for d in report.source.databases if d.name in checked],
            source_roles=[r.name for r in report.source.roles],
            target_major=report.target_version,
            client=report.client.choice,
            # The object filters of the check (a seam for --schema/--table …: pg_dump's own flags).
            dump_args=dump_args,
            sink=sink,
            work_dir=work_dir,
            remedies=remedies,
            restore_args=restore_args,
            cancel=cancel,
            schema_archive=schema_archive,
        )
    except psycopg.Error as exc:
        raise query_failed("the schema trial could not finish", exc) from None
    skipped = report.skipped
    if not outcome.ran:
        skipped = (*skipped, Skipped(RULE_ID, TITLE, f"schema trial {outcome.summary}"))
    skipped = (*skipped, *(Skipped(RULE_ID, TITLE, f"{d.database}: {d.error}") for d in outcome.databases if d.error))
    order = {r.id: i for i, r in enumerate(ALL_RULES)}
    findings = merge_findings(report.findings, outcome)
    if not outcome.ran:
        # A check that could not do part of its work is not "ready": the rules ran, so a warning
        # (exit 1) that names why the trial did not run and how to run it, never a silent 0.
        findings.append(
            Finding(
                rule_id=RULE_ID,
                severity=Severity.WARNING,
                title="The schema trial did not run",
                message=f"the schema trial did not run: {outcome.reason}; what the target would refuse "
                "is known only from the rules",
                remediation="fix what the message names and run pgshift check again, or pass --no-trial to check "
                "without the trial knowingly",
            )
        )
    findings.sort(key=lambda f: (-f.severity.rank, order.get(f.rule_id, len(order))))
    return replace(report, findings=tuple(findings), skipped=skipped, trial=outcome)


__all__ = [
    "SCHEMA_VERSION",
    "CheckReport",
    "ClientAdvice",
    "Estimates",
    "Finding",
    "Selection",
    "Severity",
    "Skipped",
    "run_check",
    "with_trial",
]
