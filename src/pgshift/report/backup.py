"""Console renderings of backup plans and results, restores, proofs and the list of sets."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pgshift.backup.proof import VerifyBackupReport
from pgshift.backup.restore import RestorePlan, RestoreResult
from pgshift.backup.sets import SetEntry
from pgshift.backup.take import BackupPlan, BackupResult
from pgshift.migrate.plan import Step
from pgshift.units import human_size


def _steps(steps: Sequence[Step], console: Console) -> None:
    for n, step in enumerate(steps, start=1):
        console.print(f"{n:>3}. {escape(step.title)}  [dim]({step.id})[/]")
        if step.program is not None:
            console.print(f"       $ {escape(step.program.display)}", soft_wrap=True)
        for action in step.sql:
            console.print(f"       {escape(action.statement.display())};", soft_wrap=True)
        for warning in step.warnings:
            console.print(f"       [yellow]warning:[/] {escape(warning)}")


def render_backup_plan(plan: BackupPlan, console: Console) -> None:
    console.print(f"[bold]Backup plan[/] (dry run: nothing is written) — set {plan.name} in {plan.path.parent}")
    console.print(f"  source  {escape(plan.source.display)} (PostgreSQL {plan.source.version})")
    console.print(f"  client  {escape(plan.client.describe())}")
    console.print(
        f"  format  {plan.options.format}, --compress={plan.compress}, {plan.parallel_databases} database(s) at once"
        + (f", pg_dump -j {plan.jobs_per_database}" if plan.options.format == "directory" else "")
    )
    for warning in plan.warnings:
        console.print(f"  [yellow]warning:[/] {escape(warning)}")
    _steps(plan.steps, console)


def render_backup_result(result: BackupResult, console: Console) -> None:
    console.print(
        f"[green]backup complete[/]: {result.path} ({human_size(result.size_bytes)}, PostgreSQL "
        f"{result.server_version}, {result.seconds:.1f}s)"
    )
    table = Table(box=None, pad_edge=False)
    for col in ("database", "tables", "rows", "archive", "size", "time"):
        table.add_column(col, justify="right" if col in ("tables", "rows", "size", "time") else "left")
    for d in result.databases:
        table.add_row(
            str(d["name"]),
            str(d["tables"]),
            str(d["rows"]),
            str(d["archive"]),
            human_size(int(d["archive_bytes"])),
            f"{float(d['seconds']):.1f}s",
        )
    console.print(table)
    for name in result.removed:
        console.print(f"removed the older set {name}")
    for name in result.removed_partial:
        console.print(f"removed the incomplete set {name}")
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")


def render_restore_plan(plan: RestorePlan, console: Console) -> None:
    console.print(
        f"[bold]Restore plan[/] (dry run: nothing is changed) — set {plan.set_name} (PostgreSQL {plan.set_version})"
    )
    console.print(f"  target  {escape(plan.target.display)} (PostgreSQL {plan.target.version})")
    console.print(f"  client  {escape(plan.client.describe('pg_restore'))}")
    for d in plan.databases:
        console.print(f"  {d.source} -> {d.target}: {d.action} ({escape(d.reason)})")
        for r in d.remedies:
            console.print(f"    remedy {r.remedy}: {escape(r.object)}: {escape(r.change)}")
    for warning in plan.warnings:
        console.print(f"  [yellow]warning:[/] {escape(warning)}")
    _steps(plan.steps, console)


def render_restore_result(result: RestoreResult, console: Console) -> None:
    done = [d for d in result.databases if d["action"] != "skip"]
    console.print(
        f"[green]restore complete[/]: {len(done)} database(s) into PostgreSQL {result.target_version} "
        f"({result.seconds:.1f}s); journal and log in {result.workdir}"
    )
    for d in result.databases:
        console.print(f"  {d['source']} -> {d['target']}: {escape(str(d['reason']))}")
    for r in result.remedies:
        console.print(f"  {escape(r.database or '')}: remedy {r.remedy}: {escape(r.object)}: {escape(r.change)}")
    if result.roles_created:
        console.print(f"  roles created: {', '.join(result.roles_created)}")
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")


def render_proof(report: VerifyBackupReport, console: Console) -> None:
    if report.problem:
        console.print(f"[red]FAILED[/]: the set {report.set_name} is not proven: {escape(report.problem)}")
    elif report.ok:
        console.print(
            f"[green]OK[/]: the set {report.set_name} restored into {escape(report.target)} and matches its manifest "
            f"({report.seconds:.1f}s)"
        )
    else:
        console.print(
            f"[red]FAILED[/]: the set {report.set_name} restored into {escape(report.target)} with "
            f"{len(report.differences)} difference(s) from its manifest"
        )
    if report.databases:
        table = Table(box=None, pad_edge=False)
        for col in ("database", "tables", "rows", "objects", "differences"):
            table.add_column(col, justify="left" if col == "database" else "right")
        for d in report.databases:
            table.add_row(
                str(d["name"]), str(d["tables"]), str(d["rows"]), str(d["objects"]), str(len(d["differences"]))
            )
        console.print(table)
    for line in report.differences[:50]:
        console.print(f"  {escape(line)}")
    if report.history:
        console.print(f"recorded in {report.history}")


def render_sets(entries: Sequence[SetEntry], console: Console) -> None:
    if not entries:
        console.print("no backup sets")
        return
    table = Table(box=None, pad_edge=False)
    for col in ("set", "state", "size", "server", "client", "format", "databases", "last verification"):
        table.add_column(col, justify="right" if col == "size" else "left")
    for e in entries:
        d = e.as_dict()
        v = e.verification
        verification = "never"
        if v:
            verification = ("OK " if v.get("ok") else "FAILED ") + str(v.get("at", ""))
            if v.get("target_version"):
                verification += f" (into {v.get('target_version')})"
        table.add_row(
            e.name,
            e.state,
            human_size(e.size_bytes),
            str(d["server_version"] or "-"),
            str(d["client_version"] or "-"),
            str(d["format"] or "-"),
            ", ".join(d["databases"]) or "-",
            verification,
        )
    console.print(table)
