"""Scenario catalogues and runs: a matrix of cases (scenario × source → target) as console, JSON and Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pgshift.report.common import md_table
from pgshift.scenario.model import Scenario, pair_label
from pgshift.scenario.result import CaseResult, RunResult, Status
from pgshift.version import major_label, major_order

LIST_KIND = "scenario-list"
RUN_KIND = "scenario-run"

_MARK = {
    Status.passed: ("✓", "green"),
    Status.failed: ("✗", "red"),
    Status.error: ("error", "red"),
    Status.interrupted: ("—", "yellow"),
}


# --- the catalogue ---------------------------------------------------------------------------------


def list_document(scenarios: Sequence[Scenario]) -> dict[str, Any]:
    return {"count": len(scenarios), "scenarios": [s.summary() for s in scenarios]}


def render_list_console(scenarios: Sequence[Scenario], console: Console) -> None:
    table = Table(show_lines=False)
    table.add_column("scenario", no_wrap=True)
    table.add_column("pairs")
    table.add_column("runs")
    table.add_column("what it shows")
    for s in scenarios:
        name = escape(s.name) + (" [dim](slow)[/]" if s.slow else "")
        table.add_row(
            name,
            escape(" ".join(pair_label(a, b) for a, b in s.pairs)),
            escape(" → ".join(step.command for step in s.steps)),
            escape(s.description),
        )
    console.print(table)
    cases = sum(len(s.pairs) for s in scenarios)
    slow = [s.name for s in scenarios if s.slow]
    console.print(
        f"{len(scenarios)} scenario(s), {cases} case(s)"
        + (f"; slow (left out by --skip-slow): {escape(', '.join(slow))}" if slow else "")
    )


def render_list_markdown(scenarios: Sequence[Scenario]) -> str:
    rows = [
        (
            f"`{s.name}`" + (" (slow)" if s.slow else ""),
            " ".join(pair_label(a, b) for a, b in s.pairs),
            " → ".join(step.command for step in s.steps),
            s.description,
        )
        for s in scenarios
    ]
    return md_table(("scenario", "pairs", "runs", "what it shows"), rows) + "\n"


# --- a run -----------------------------------------------------------------------------------------


def _cell(cases: Sequence[CaseResult], *, markup: bool) -> str:
    """The cases of one scenario into one target major: a mark and the source major of each."""
    parts = []
    for case in sorted(cases, key=lambda c: major_order(c.source)):
        mark, style = _MARK[case.status]
        text = f"{mark}{major_label(case.source)}" if len(mark) == 1 else f"{mark} {major_label(case.source)}"
        parts.append(f"[{style}]{escape(text)}[/]" if markup else text)
    return " ".join(parts)


def _grid(result: RunResult) -> tuple[list[int], list[tuple[str, list[list[CaseResult]], float]]]:
    """Rows of scenarios, columns of target majors: the matrix stays narrow however many pairs run."""
    targets = sorted({c.target for c in result.cases}, key=major_order)
    rows = []
    for name in result.scenarios():
        mine = [c for c in result.cases if c.scenario == name]
        rows.append((name, [[c for c in mine if c.target == t] for t in targets], sum(c.seconds for c in mine)))
    return targets, rows


def render_console(result: RunResult, console: Console, *, verbose: bool = False) -> None:
    targets, rows = _grid(result)
    table = Table(
        title=f"scenarios on {result.backend} servers: ✓/✗ source major, by target major",
        title_justify="left",
    )
    table.add_column("scenario", no_wrap=True)
    for target in targets:
        table.add_column(f"→ {major_label(target)}", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    for name, cells, seconds in rows:
        table.add_row(escape(name), *(_cell(c, markup=True) for c in cells), f"{seconds:.0f}s")
    console.print(table)
    for case in result.cases:
        if case.status is Status.passed and not verbose:
            continue
        style = _MARK[case.status][1]
        console.print(f"[bold {style}]{escape(case.id)}[/] {case.status} ({case.seconds:.1f}s)")
        for step in case.steps:
            mark = "[green]✓[/]" if step.ok else "[red]✗[/]"
            console.print(f"  {mark} pgshift {escape(step.run)} [dim]→ exit {step.exit_code} ({step.seconds:.1f}s)[/]")
            for failure in step.failures:
                console.print(f"      [red]{escape(failure)}[/]")
            if not step.ok:
                for line in step.output_tail:
                    console.print(f"      [dim]{escape(line)}[/]")
        stepped = {f for step in case.steps for f in step.failures}
        for failure in case.failures:
            if failure not in stepped:
                console.print(f"  [red]{escape(failure)}[/]")
    style = "bold green" if result.exit_code == 0 else "bold red"
    console.print(f"[{style}]{escape(result.verdict)}[/] in {result.seconds:.0f}s")


def render_markdown(result: RunResult) -> str:
    targets, rows = _grid(result)
    headers = ["scenario", *(f"→ {major_label(t)}" for t in targets), "time"]
    body = [[f"`{name}`", *(_cell(c, markup=False) for c in cells), f"{seconds:.0f}s"] for name, cells, seconds in rows]
    out = [
        f"# pgshift scenarios ({result.backend} servers)",
        "",
        md_table(headers, body),
        "",
        f"**{result.verdict}** in {result.seconds:.0f}s ({result.jobs} at a time). "
        "A cell lists the source majors moved to that target: ✓ passed, ✗ failed.",
        "",
    ]
    failed = [c for c in result.cases if c.status is not Status.passed]
    if failed:
        out += ["## Failures", ""]
        for case in failed:
            out.append(f"- `{case.id}` {case.status}:")
            out += [f"  - {failure}" for failure in case.failures]
        out.append("")
    return "\n".join(out)


def json_document(result: RunResult) -> dict[str, Any]:
    return result.as_dict()
