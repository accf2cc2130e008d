"""Render a migration's plan (``--dry-run``) and its result: console, JSON, Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pgshift.migrate.plan import AppliedRemedy, MigrationPlan, Step
from pgshift.migrate.result import MigrationResult
from pgshift.report.common import md_table
from pgshift.units import human_size

PLAN_KIND = "migrate-plan"
RESULT_KIND = "migrate"


def plan_document(plan: MigrationPlan) -> dict[str, Any]:
    return plan.as_dict()


def result_document(result: MigrationResult) -> dict[str, Any]:
    return result.as_dict()


def trial_note(plan: MigrationPlan) -> str | None:
    """What the dry run did on the target: the preflight's schema trial made a scratch database there."""
    if not plan.check.ran:
        return None
    if any(w.startswith("schema-trial: the schema trial did not run") for w in plan.check.warnings):
        return None  # the warning says why; nothing was made on the target
    return (
        "the schema was tried on the target in a scratch database, which was dropped again "
        "(--no-check skips it, with check's rules)"
    )


def render_plan(plan: MigrationPlan, console: Console) -> None:
    """The whole plan: servers, client and why, databases with sizes, then every command in order."""
    console.print("[bold]pgshift migrate — plan (dry run: nothing was changed)[/]")
    console.print(f"source  {escape(plan.source.display)}  PostgreSQL {plan.source.version}")
    console.print(f"target  {escape(plan.target.display)}  PostgreSQL {plan.target.version}")
    console.print(f"client  {escape(plan.client.describe())}")
    console.print(
        f"work directory  {escape(str(plan.workdir))}  ·  {plan.parallel_databases} database(s) at once, "
        f"-j {plan.jobs_per_database} each"
    )
    if plan.check.ran:
        console.print(f"check   {len(plan.check.blockers)} accepted blocker(s), {len(plan.check.warnings)} warning(s)")
    elif plan.check.note:
        console.print(f"check   {escape(plan.check.note)}")
    trial = trial_note(plan)
    if trial:
        console.print(f"trial   {escape(trial)}")
    table = Table(title="Databases", title_justify="left")
    for col in ("source", "target", "action", "size", "tables", "encoding / locale", "extensions"):
        table.add_column(col)
    for d in plan.databases:
        locale = f"{d.encoding} {d.collate}" + (f" ({d.locale_provider} {d.icu_locale})" if d.icu_locale else "")
        table.add_row(
            escape(d.source),
            escape(d.target),
            f"{d.action}: {escape(d.reason)}",
            human_size(d.size_bytes),
            str(d.tables),
            escape(locale),
            escape(", ".join(e.name for e in d.extensions)),
        )
    console.print(table)
    if plan.globals is not None:
        g = plan.globals
        exists = [r.name for r in g.roles if r.action == "exists"]
        console.print(
            f"globals: {len(g.created)} role(s) to create, {len(exists)} already on the target (left alone), "
            f"{g.memberships} membership(s) on the source, {len(g.tablespaces)} tablespace(s); "
            f"passwords {'copied' if g.passwords else 'not copied'}"
        )
    _render_remedies(plan.applied_remedies, console, "Remedies to apply")
    console.print("\n[bold]Steps, in order[/] (databases side by side, each in its order)")
    for i, step in enumerate(plan.steps, start=1):
        console.print(f"{i:>3}. [bold]{escape(step.id)}[/]  {escape(step.title)}")
        for line in step_lines(step):
            console.print(f"       {escape(line)}", soft_wrap=True)
    for w in plan.warnings:
        console.print(f"[yellow]warning:[/] {escape(w)}")
    console.print(f"\nTotal to move: {human_size(plan.total_bytes)} in {len(plan.moving)} database(s).")


def step_lines(step: Step) -> list[str]:
    """What a step runs, as the plan shows it: its statements, its command, its notes."""
    out = []
    if step.connect_to is not None and step.sql:
        out.append(f"in database {step.connect_to}:")
    out += [
        f"sql> {a.statement.display()}"
        + (f"   (tolerates {', '.join(a.tolerates)})" if a.tolerates else "")
        + (f"   (only if this run created role {a.requires_role})" if a.requires_role else "")
        for a in step.sql
    ]
    if step.program is not None:
        out.append(f"$ {step.program.display}")
    if step.note:
        out.append(f"· {step.note}")
    out += [f"! {w}" for w in step.warnings]
    return out


def render_plan_markdown(plan: MigrationPlan) -> str:
    lines = [
        "# pgshift migrate — plan (dry run: nothing was changed)",
        "",
        f"- source: `{plan.source.display}` PostgreSQL {plan.source.version}",
        f"- target: `{plan.target.display}` PostgreSQL {plan.target.version}",
        f"- client: {plan.client.describe()}",
        f"- work directory: `{plan.workdir}`; {plan.parallel_databases} database(s) at once, "
        f"-j {plan.jobs_per_database} each",
        *([f"- schema trial: {trial}"] if (trial := trial_note(plan)) else []),
        "",
        "## Databases",
        "",
        md_table(
            ["source", "target", "action", "size", "tables"],
            [
                [d.source, d.target, f"{d.action}: {d.reason}", human_size(d.size_bytes), str(d.tables)]
                for d in plan.databases
            ],
        ),
        "",
    ]
    lines += _remedies_markdown(
        plan.applied_remedies, "Remedies to apply (on the target only; verify expects these differences)"
    )
    lines += ["## Steps, in order", ""]
    for i, step in enumerate(plan.steps, start=1):
        lines.append(f"{i}. **{step.id}** {step.title}" + (f" (after {', '.join(step.after)})" if step.after else ""))
        body = step_lines(step)
        if body:
            lines += ["", "   ```", *(f"   {line}" for line in body), "   ```", ""]
    if plan.warnings:
        lines += ["", "## Warnings", "", *(f"- {w}" for w in plan.warnings)]
    return "\n".join(lines) + "\n"


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}s"


def render_result(result: MigrationResult, console: Console) -> None:
    verdict = "[green]migration done[/]" if result.ok else "[red]migration FAILED verification[/]"
    console.print(
        f"[bold]{verdict}[/]: PostgreSQL {result.source_version} → {result.target_version} in {result.seconds:.1f}s"
        + (" (resumed)" if result.resumed else "")
    )
    console.print(f"client: {escape(result.client)}")
    table = Table(title_justify="left")
    for col in ("source", "target"):
        table.add_column(col, overflow="fold")
    for col in ("status", "size", "dump size", "seconds*"):
        table.add_column(col)
    for d in result.databases:
        s = d.seconds
        table.add_row(
            escape(d.source),
            escape(d.target),
            d.status + (" (earlier attempt)" if d.resumed else ""),
            human_size(d.size_bytes),
            human_size(d.dump_bytes) if d.dump_bytes is not None else "",
            " / ".join(f"{s[p]:.1f}" if p in s else "-" for p in ("create", "dump", "restore", "analyze")),
        )
    console.print(table)
    console.print("[dim]* seconds of create / dump / restore / analyze[/]")
    if result.globals is not None and not result.globals.skipped:
        g = result.globals
        console.print(
            f"globals: {len(g.created_roles)} role(s) created, {len(g.existing_roles)} left alone, "
            f"{g.memberships} membership(s) granted, {len(g.tablespaces)} tablespace(s) created"
        )
    phases = ", ".join(f"{k} {v:.1f}s" for k, v in result.phases.items())
    if phases:
        console.print(f"time per phase: {phases}")
    _render_remedies(result.remedies, console, "Remedies applied")
    if any("source-taking-writes" in w for w in result.warnings):
        moments = ", ".join(f"{d.source} {d.as_of}" for d in result.databases if d.as_of)
        console.print(
            "[yellow]the source was taking writes:[/] each database is on the target as of its dump's start "
            f"({escape(moments)}); what was written later is not"
        )
    console.print(f"verify: {escape(result.verify_note or 'not run')}")
    if result.verify is not None and not result.ok:
        for diff in list(result.verify.differences)[:20]:
            console.print(f"  [red]≠[/] {escape(str(getattr(diff, 'message', diff)))}")
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {escape(w)}")
    console.print(f"log: {escape(str(result.log_path))}")
    console.print(f"journal: {escape(str(result.journal_path))}")


def _render_remedies(remedies: Sequence[AppliedRemedy], console: Console, title: str) -> None:
    if not remedies:
        return
    table = Table(title=f"{title} (on the target only; verify expects these differences)", title_justify="left")
    for col in ("remedy", "database", "object", "on the target"):
        table.add_column(col, overflow="fold")
    for r in remedies:
        table.add_row(escape(r.remedy), escape(r.database or "—"), escape(r.object), escape(r.change))
    console.print(table)


def _remedies_markdown(remedies: Sequence[AppliedRemedy], title: str) -> list[str]:
    if not remedies:
        return []
    rows = [[r.remedy, r.database or "", r.object, r.change] for r in remedies]
    return [f"## {title}", "", md_table(["remedy", "database", "object", "on the target"], rows), ""]


def render_markdown(result: MigrationResult) -> str:
    lines = [
        f"# pgshift migrate: {'done' if result.ok else 'FAILED verification'}",
        "",
        f"PostgreSQL {result.source_version} → {result.target_version}, {result.seconds:.1f}s. "
        f"Client: {result.client}.",
        "",
        md_table(
            ["source", "target", "status", "size", "create", "dump", "restore", "analyze"],
            [
                [
                    d.source,
                    d.target,
                    d.status,
                    human_size(d.size_bytes),
                    _seconds(d.seconds.get("create")),
                    _seconds(d.seconds.get("dump")),
                    _seconds(d.seconds.get("restore")),
                    _seconds(d.seconds.get("analyze")),
                ]
                for d in result.databases
            ],
        ),
        "",
        f"Verify: {result.verify_note or 'not run'}",
        "",
    ]
    lines += _remedies_markdown(result.remedies, "Remedies applied")
    lines += [f"- warning: {w}" for w in result.warnings]
    lines += ["", f"Log: `{result.log_path}`"]
    return "\n".join(lines) + "\n"
