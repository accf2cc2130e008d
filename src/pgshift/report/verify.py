"""Render a ``VerifyReport``: rich console, JSON document, Markdown and one self-contained HTML page."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape

from pgshift.report.common import h, html_page, md_table
from pgshift.verify import CATEGORIES, DeclaredDifference, Difference, ExplainedDifference, VerifyReport

SCHEMA_VERSION = 1
_KIND_WORD = {
    "missing": "missing",
    "extra": "extra",
    "changed": "changed",
    "count": "count",
    "content": "content",
    "moved-on": "moved on",
}


def json_document(report: VerifyReport) -> dict[str, Any]:
    """The ``--format json`` document (kind "verify", ``schema_version`` first; docs/verify.md)."""
    return {"kind": "verify", "schema_version": SCHEMA_VERSION, **report.as_dict()}


def grouped(differences: Iterable[Difference]) -> list[tuple[str, str | None, list[Difference]]]:
    """Differences by category (report order), then database."""
    buckets: dict[tuple[str, str | None], list[Difference]] = {}
    for d in differences:
        buckets.setdefault((d.category, d.database), []).append(d)
    order = {c: i for i, c in enumerate(CATEGORIES)}
    keys = sorted(buckets, key=lambda k: (order.get(k[0], 99), k[1] or ""))
    return [(cat, db, buckets[(cat, db)]) for cat, db in keys]


def _values(d: Difference) -> str:
    if d.source is None and d.target is None:
        return ""
    return f"source: {d.source if d.source is not None else '—'} | target: {d.target if d.target is not None else '—'}"


def expected_by_rule(expected: Sequence[ExplainedDifference]) -> list[tuple[str, str, int]]:
    counts = Counter(e.rule for e in expected)
    reasons = {e.rule: e.reason for e in expected}
    return [(rule, reasons[rule], n) for rule, n in sorted(counts.items())]


def _declared_rows(declared: Sequence[DeclaredDifference]) -> list[tuple[str, str, str, str]]:
    """(remedy, database, message, note) per declared difference, in report order."""
    return sorted((d.remedy, d.difference.database or "", d.difference.message, d.expectation.note) for d in declared)


def _totals_rows(report: VerifyReport) -> list[tuple[str, str, str, str, str, str]]:
    rows = []
    for t in report.databases:
        name = t.source if t.source == t.target else f"{t.source} → {t.target}"
        rows.append(
            (
                name,
                f"{t.objects_source:,} / {t.objects_target:,}",
                f"{t.tables:,}",
                f"{t.rows_source:,} / {t.rows_target:,}",
                f"{t.sequences:,}",
                f"{t.large_objects_source:,} / {t.large_objects_target:,}",
            )
        )
    return rows


_TOTAL_HEADERS = ("database", "objects (source / target)", "tables counted", "rows", "sequences", "large objects")


def render_console(report: VerifyReport, console: Console, *, verbose: bool = False) -> None:
    console.print(f"[bold]source[/] {escape(report.source)} (PostgreSQL {report.source_version})")
    console.print(f"[bold]target[/] {escape(report.target)} (PostgreSQL {report.target_version})")
    for cat, db, diffs in grouped(report.differences):
        where = f" in {db}" if db else ""
        console.print(f"\n[bold]{escape(cat.capitalize())}{escape(where)}[/] ({len(diffs)})")
        for d in diffs:
            console.print(f"  [red]✗[/] {escape(d.message)}")
            values = _values(d)
            if values and (verbose or len(values) < 200):
                console.print(f"    [dim]{escape(values)}[/]")
    if report.expected:
        console.print("\n[bold]Expected differences[/] (named rules, docs/verify.md; not failures)")
        for rule, reason, n in expected_by_rule(report.expected):
            console.print(f"  [cyan]•[/] {escape(rule)}: {n} — {escape(reason)}")
            if verbose:
                for e in report.expected:
                    if e.rule == rule:
                        console.print(f"    [dim]{escape(e.difference.message)}[/]")
    if report.declared:
        console.print("\n[bold]Declared differences[/] (remedies applied on purpose; not failures)")
        for remedy, db, message, note in _declared_rows(report.declared):
            where = f" in {db}" if db else ""
            console.print(f"  [cyan]•[/] {escape(remedy)}{escape(where)}: {escape(message)}")
            if note:
                console.print(f"    [dim]{escape(note)}[/]")
    for u in report.unmatched:
        console.print(f"  [yellow]![/] declared but not seen ({escape(u.remedy)}): {escape(u.label)}")
    if report.databases:
        console.print()
        for row in _totals_rows(report):
            console.print(
                f"[dim]{escape(row[0])}: {row[1]} objects, {row[2]} tables, {row[3]} rows, {row[4]} sequences, "
                f"{row[5]} large objects[/]"
            )
    style = "bold green" if report.equal else "bold red"
    console.print(f"\n[{style}]{escape(report.summary())}[/] [dim]({report.seconds:.1f}s)[/]")


def render_markdown(report: VerifyReport) -> str:
    lines = [
        "# pgshift verify",
        "",
        f"**{report.summary()}**",
        "",
        f"- source: `{report.source}` (PostgreSQL {report.source_version})",
        f"- target: `{report.target}` (PostgreSQL {report.target_version})",
        f"- checksums: {'yes' if report.options.checksums else 'no'}",
        "",
    ]
    if report.differences:
        lines += ["## Differences", ""]
        for cat, db, diffs in grouped(report.differences):
            lines += [f"### {cat.capitalize()}{f' in {db}' if db else ''}", ""]
            lines.append(
                md_table(
                    ("object", "kind", "source", "target", "message"),
                    [(d.object, d.kind, d.source or "", d.target or "", d.message) for d in diffs],
                )
            )
            lines.append("")
    if report.expected:
        lines += ["## Expected differences", ""]
        lines.append(
            md_table(("rule", "count", "why"), [(r, n, why) for r, why, n in expected_by_rule(report.expected)])
        )
        lines.append("")
    if report.declared or report.unmatched:
        lines += ["## Declared differences", ""]
        rows = [(*r,) for r in _declared_rows(report.declared)]
        rows += [(e.remedy, e.database or "", f"declared but not seen: {e.label}", e.note) for e in report.unmatched]
        lines.append(md_table(("remedy", "database", "difference", "note"), rows))
        lines.append("")
    if report.databases:
        lines += ["## Compared", "", md_table(_TOTAL_HEADERS, _totals_rows(report)), ""]
    return "\n".join(lines)


def _html_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    head = "".join(f"<th>{h(x)}</th>" for x in headers)
    body = "".join("<tr>" + "".join(f"<td>{h(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: VerifyReport) -> str:
    verdict = "ok" if report.equal else "error"
    parts = [
        "<h1>pgshift verify</h1>",
        f'<div class="verdict {verdict}">{h(report.summary())}</div>',
        f"<p>source <code>{h(report.source)}</code> (PostgreSQL {h(report.source_version)})<br>"
        f"target <code>{h(report.target)}</code> (PostgreSQL {h(report.target_version)})<br>"
        f"checksums: {'yes' if report.options.checksums else 'no'}</p>",
    ]
    if report.differences:
        parts.append("<h2>Differences</h2>")
        for cat, db, diffs in grouped(report.differences):
            parts.append(f"<h3>{h(cat.capitalize())}{h(f' in {db}' if db else '')}</h3>")
            parts.append(
                _html_table(
                    ("object", "kind", "source", "target", "message"),
                    [(d.object, d.kind, d.source or "", d.target or "", d.message) for d in diffs],
                )
            )
    if report.expected:
        parts.append("<h2>Expected differences</h2>")
        parts.append(
            _html_table(("rule", "count", "why"), [(r, n, why) for r, why, n in expected_by_rule(report.expected)])
        )
    if report.declared or report.unmatched:
        parts.append("<h2>Declared differences</h2>")
        rows = [(*r,) for r in _declared_rows(report.declared)]
        rows += [(e.remedy, e.database or "", f"declared but not seen: {e.label}", e.note) for e in report.unmatched]
        parts.append(_html_table(("remedy", "database", "difference", "note"), rows))
    if report.databases:
        parts.append("<h2>Compared</h2>")
        parts.append(_html_table(_TOTAL_HEADERS, _totals_rows(report)))
    return html_page("pgshift verify", "\n".join(parts))
