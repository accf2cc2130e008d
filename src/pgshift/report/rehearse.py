"""Render a rehearsal's plan and result: console and Markdown (the JSON is the result's ``as_dict``)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pgshift.rehearse import RehearsalPlan, RehearsalResult
from pgshift.report.common import md_table
from pgshift.report.migrate import step_lines
from pgshift.units import human_size

# The phases of one database, as migrate's result names them.
_PHASES = ("create", "dump", "restore", "analyze")
_COLOR = {"ready": "green", "ready-with-warnings": "yellow", "not-ready": "red"}


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _estimated_note(result: RehearsalResult) -> str:
    return (
        f"estimated: a sample of at most {result.options.sample_rows:,} row(s) per table was loaded; "
        "data time and disk are scaled to the full tables"
    )


def render_plan(plan: RehearsalPlan, console: Console) -> None:
    console.print("[bold]pgshift rehearse — plan (dry run: the source is only read)[/]")
    m = plan.migration
    console.print(f"source  {escape(m.source.display)}  PostgreSQL {m.source.version}")
    console.print(f"lab     PostgreSQL {m.target.version} ({escape(plan.lab.where)}), started for the plan and removed")
    console.print(f"client  {escape(m.client.describe())}")
    table = Table(title="Databases", title_justify="left")
    for col in ("source", "target", "size", "tables"):
        table.add_column(col)
    for d in m.databases:
        table.add_row(escape(d.source), escape(d.target), human_size(d.size_bytes), str(d.tables))
    console.print(table)
    console.print("\n[bold]Steps, in order[/]")
    for i, step in enumerate(plan.steps, start=1):
        console.print(f"{i:>3}. [bold]{escape(step.id)}[/]  {escape(step.title)}")
        if step.note:
            console.print(f"       · {escape(step.note)}")
        if step.kind == "migrate":
            for j, mstep in enumerate(m.steps, start=1):
                console.print(f"       {i}.{j} [bold]{escape(mstep.id)}[/]  {escape(mstep.title)}")
                for line in step_lines(mstep):
                    console.print(f"            {escape(line)}", soft_wrap=True)
    for w in m.warnings:
        console.print(f"[yellow]warning:[/] {escape(w)}")


def render_plan_markdown(plan: RehearsalPlan) -> str:
    m = plan.migration
    lines = [
        "# pgshift rehearse — plan (dry run: the source is only read)",
        "",
        f"- source: `{m.source.display}` PostgreSQL {m.source.version}",
        f"- lab server: PostgreSQL {m.target.version} ({plan.lab.where})",
        f"- client: {m.client.describe()}",
        "",
        "## Steps, in order",
        "",
    ]
    for i, step in enumerate(plan.steps, start=1):
        lines.append(f"{i}. **{step.id}** {step.title}" + (f" — {step.note}" if step.note else ""))
        if step.kind == "migrate":
            for mstep in m.steps:
                lines.append(f"   - **{mstep.id}** {mstep.title}")
    return "\n".join(lines) + "\n"


def render_result(result: RehearsalResult, console: Console, *, verbose: bool = False) -> None:
    color = _COLOR[result.verdict]
    console.print(f"[bold {color}]{escape(result.headline)}[/]")
    console.print(f"rehearsed in {result.seconds:.1f}s on a lab server ({escape(result.lab.where)})")
    if result.refusals:
        table = Table(title="What blocks the move (migrate would refuse it)", title_justify="left")
        for col in ("rule", "database", "object", "what", "advice"):
            table.add_column(col, overflow="fold")
        for r in result.refusals:
            table.add_row(
                escape(r.rule_id),
                escape(r.database or "—"),
                escape(r.object or "—"),
                escape(r.message),
                escape(r.advice),
            )
        console.print(table)
    if result.load_error is not None:
        console.print(f"[red]the load failed:[/] {escape(result.load_error)}")
        if result.load_error_detail:
            console.print(escape(result.load_error_detail), soft_wrap=True)
    table = Table(title="Time and disk per database", title_justify="left")
    for col in ("database", "status"):
        table.add_column(col, overflow="fold")
    for col in ("seconds*", "sample s (≈full)", "total s", "on disk (≈full)"):
        table.add_column(col, justify="right")
    for d in result.databases:
        table.add_row(
            escape(d.source if d.source == d.target else f"{d.source} → {d.target}"),
            d.status,
            " / ".join(_secs(d.seconds.get(p)) for p in _PHASES),
            (
                f"{_secs(d.sample_seconds)} (≈{_secs(d.estimated_data_seconds)})"
                if d.sample_seconds is not None
                else "-"
            ),
            _secs(d.total_seconds),
            human_size(d.size_bytes)
            + (f" (≈{human_size(d.estimated_bytes)})" if d.estimated_bytes is not None else ""),
        )
    console.print(table)
    console.print("[dim]* seconds of create / dump / restore / analyze, as measured on the lab server[/]")
    if result.migration is not None and result.migration.phases:
        phases = ", ".join(f"{k} {v:.1f}s" for k, v in result.migration.phases.items())
        console.print(f"migrate's phases: {phases}")
    console.print("rehearsal steps: " + ", ".join(f"{k} {v:.1f}s" for k, v in result.steps.items()))
    disk = human_size(result.total_bytes)
    console.print(
        f"disk needed on the target: {'≈' if result.estimated else ''}{disk} for the databases"
        + (" (scaled from the sample)" if result.estimated else " (their size on the lab server)")
    )
    if result.estimated:
        console.print(f"[yellow]{escape(_estimated_note(result))}[/]")
    if result.migration is not None:
        console.print(f"verify: {escape(result.migration.verify_note or 'not run')}")
    if result.check is not None:
        console.print(f"check: {escape(result.check.verdict)}")
        if result.check.trial is not None:
            console.print(f"schema trial: {escape(result.check.trial.summary)}")
        shown = [f for f in result.check.findings if verbose or f.severity.value != "info"]
        refused = {(r.rule_id, r.database, r.object) for r in result.refusals}
        for f in shown:
            if (f.rule_id, f.database, f.object) in refused:
                continue
            where = f" [{f.database}{': ' + f.object if f.object else ''}]" if f.database else ""
            console.print(f"  {f.severity.value}: {escape(f.rule_id + where)}: {escape(f.message)}", soft_wrap=True)
            console.print(f"    fix: {escape(f.fix)}", soft_wrap=True)
    else:
        console.print("check: skipped (--no-check)")
    if result.migration is not None:
        for w in result.migration.warnings:
            console.print(f"[yellow]warning:[/] {escape(w)}")
    failed_sample = [t for t in result.sampled if t.rows == 0]
    if verbose and result.sampled:
        console.print(f"sampled {len(result.sampled)} table(s), {len(failed_sample)} of them empty")
    for note in result.notes:
        console.print(f"[dim]note: {escape(note)}[/]")
    if result.kept:
        console.print("[bold]the lab server is still running (--keep):[/]")
        console.print(f"  connect: psql {escape(repr(result.lab.socket_conninfo or result.lab.conninfo))}")
        if result.lab.socket_conninfo:
            console.print(f"  over TCP: {escape(result.lab.conninfo)} (password: none printed; use the socket)")
        console.print(f"  stop and remove it: {escape(result.lab.stop_command)}")
    for path in result.left_behind:
        console.print(f"[red]left behind:[/] {escape(path)}")


def render_markdown(result: RehearsalResult) -> str:
    lines = [f"# pgshift rehearse: {result.headline}", ""]
    if result.estimated:
        lines += [f"> {_estimated_note(result)}", ""]
    if result.refusals:
        lines += [
            "## What blocks the move",
            "",
            md_table(
                ["rule", "database", "object", "what", "advice"],
                [[r.rule_id, r.database or "", r.object or "", r.message, r.advice] for r in result.refusals],
            ),
            "",
        ]
    if result.load_error is not None:
        lines += ["## The load failed", "", result.load_error, ""]
        if result.load_error_detail:
            lines += ["```", result.load_error_detail, "```", ""]
    lines += [
        "## Time and disk per database",
        "",
        md_table(
            ["source", "target", "status", *_PHASES, "sample s (full ≈)", "total s", "on disk (full ≈)"],
            [
                [
                    d.source,
                    d.target,
                    d.status,
                    *(_secs(d.seconds.get(p)) for p in _PHASES),
                    f"{_secs(d.sample_seconds)} ({_secs(d.estimated_data_seconds)})" if d.sample_seconds else "-",
                    _secs(d.total_seconds),
                    human_size(d.size_bytes)
                    + (f" ({human_size(d.estimated_bytes)})" if d.estimated_bytes is not None else ""),
                ]
                for d in result.databases
            ],
        ),
        "",
        f"Disk needed on the target: {'≈' if result.estimated else ''}{human_size(result.total_bytes)}.",
        "",
    ]
    if result.check is not None:
        lines += ["## Check", "", result.check.verdict, ""]
        rows = [
            [f.severity.value, f.rule_id, f.database or "", f.object or "", f.message, f.fix]
            for f in result.check.findings
        ]
        if rows:
            lines += [md_table(["severity", "rule", "database", "object", "what", "fix"], rows), ""]
    if result.notes:
        lines += ["## Notes", "", *(f"- {n}" for n in result.notes), ""]
    return "\n".join(lines)
