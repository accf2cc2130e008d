"""Render a ``CheckReport``: rich console, JSON document, Markdown and one self-contained HTML page."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from pgshift.checks import SCHEMA_VERSION, CheckReport, Finding, Severity
from pgshift.checks.rule import Rule
from pgshift.report.common import h, html_page, md_table
from pgshift.units import human_size

_STYLE = {Severity.BLOCKER: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
_HEADINGS = {Severity.BLOCKER: "Blockers", Severity.WARNING: "Warnings", Severity.INFO: "Information"}


def size(n: int | None) -> str:
    return human_size(n, "?")


def json_document(report: CheckReport) -> dict[str, Any]:
    """The ``--format json`` document (kind "check", ``schema_version`` first; docs/check.md)."""
    return {"kind": "check", "schema_version": SCHEMA_VERSION, **report.as_dict()}


def _by_severity(findings: Sequence[Finding]) -> list[tuple[Severity, list[Finding]]]:
    return [(s, [f for f in findings if f.severity is s]) for s in Severity if any(f.severity is s for f in findings)]


def _verdict_style(report: CheckReport) -> str:
    return "bold red" if report.blockers else ("bold yellow" if report.warnings else "bold green")


def _summary_rows(report: CheckReport) -> list[tuple[str, str]]:
    src = report.source
    est = report.estimates
    rows = [
        (
            "source",
            f"PostgreSQL {src.server.version} as {src.privileges.user}"
            + (" (superuser)" if src.privileges.superuser else ""),
        ),
        (
            "target",
            f"PostgreSQL {report.target.server.version} as {report.target.privileges.user}"
            + (" (superuser)" if report.target.privileges.superuser else "")
            if report.target is not None
            else f"PostgreSQL {report.target_version} (planned; no target server given)",
        ),
        ("databases checked", ", ".join(d.name for d in src.checked) or "none"),
        (
            "to move",
            f"{size(est.databases_bytes)} on disk; {size(est.table_data_bytes)} of table data, "
            f"{size(est.index_bytes)} of indexes (rebuilt)",
        ),
        (
            "connections",
            f"--jobs {est.jobs}: source {est.source_connections_needed} (free {est.source_connections_available}), "
            f"target {est.target_connections_needed}"
            + (f" (free {est.target_connections_available})" if est.target_connections_available is not None else ""),
        ),
        (
            "work directory",
            f"{est.work_dir}: dump needs up to {size(est.dump_bytes_estimate)}, {size(est.work_dir_free_bytes)} free"
            + ("" if est.work_dir_fits is not False else " — NOT ENOUGH"),
        ),
        (
            "client programs",
            f"PostgreSQL {report.client.version} from {report.client.where}: {report.client.reason}"
            if report.client.version
            else f"none usable: {report.client.error}",
        ),
    ]
    if report.trial is not None:
        rows.append(("schema trial", report.trial.summary))
    if report.remedies or report.carried:
        names = sorted({r.remedy for r in report.remedies} | {f.carried_by for f in report.carried if f.carried_by})
        rows.append(
            (
                "remedies",
                f"{len(report.remedies)} object(s) changed or left out by {', '.join(names)}; "
                f"{len(report.carried)} blocker(s) carried",
            )
        )
    return rows


_REMEDY_HEADERS = ["remedy", "database", "object", "on the target", "left out with it"]


def _remedy_rows(report: CheckReport) -> list[tuple[str, str, str, str, str]]:
    """What the checked run's remedies do, object by object (what migrate's report will list)."""
    return [(r.remedy, r.database or "", r.object, r.change, ", ".join(r.also)) for r in report.remedies]


def _not_tried_groups(report: CheckReport) -> list[tuple[str, list[str]]]:
    """Statements the trial did not judge, grouped by why: (reason, ["db: object", …])."""
    groups: dict[str, list[str]] = {}
    if report.trial is not None:
        for n in report.trial.not_tried:
            groups.setdefault(n.reason, []).append(f"{n.database}: {n.object}" if n.database else n.object)
    return list(groups.items())


def _trial_rows(report: CheckReport) -> list[tuple[str, str, str, str, str]]:
    """(database, object, SQLSTATE, what the server said, what also fails) per refusal."""
    if report.trial is None:
        return []
    return [
        (f.database or "(globals)", f.label, f.sqlstate or "", f.server_message, ", ".join(f.also_fails))
        for f in report.trial.failures
    ]


def _listed(items: Sequence[str], limit: int = 8) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def render_console(report: CheckReport, console: Console, *, verbose: bool = False) -> None:
    """Grouped by severity, one-line verdict last (and first, in the title)."""
    console.print(f"[bold]pgshift check[/] — [{_verdict_style(report)}]{escape(report.verdict)}[/]")
    info = Table.grid(padding=(0, 2))
    info.add_column(style="dim")
    info.add_column()
    for k, v in _summary_rows(report):
        info.add_row(k, escape(v))
    console.print(info)
    for sev, items in _by_severity(report.findings):
        if sev is Severity.INFO and not verbose and len(items) > 15:
            items = items[:15]
        table = Table(title=f"{_HEADINGS[sev]} ({len(_filter(report, sev))})", title_justify="left", expand=True)
        table.add_column("rule", style=_STYLE[sev], no_wrap=True)
        table.add_column("database")
        table.add_column("finding", ratio=3, overflow="fold")
        table.add_column("fix", ratio=2, overflow="fold")
        for f in items:
            table.add_row(escape(f.rule_id), escape(f.database or "—"), escape(f.message), escape(f.fix))
        console.print(table)
        shown = len(items)
        total = len(_filter(report, sev))
        if shown < total:
            console.print(f"[dim]… {total - shown} more; use --verbose or --format json/markdown/html[/]")
    if report.skipped:
        by_reason: dict[str, list[str]] = {}
        for skip in report.skipped:
            by_reason.setdefault(skip.reason, []).append(skip.rule_id)
        console.print(f"[bold]Not run[/] ({len(report.skipped)}):")
        for reason, ids in by_reason.items():
            console.print(f"  {escape(', '.join(ids))} [dim]— {escape(reason)}[/]")
    remedy_rows = _remedy_rows(report)
    if remedy_rows:
        table = Table(title=f"Remedies ({len(remedy_rows)})", title_justify="left", expand=True)
        for header in _REMEDY_HEADERS:
            table.add_column(header, overflow="fold")
        for row in remedy_rows:
            table.add_row(*(escape(c) for c in row))
        console.print(table)
    if report.trial is not None:
        for reason, objects in _not_tried_groups(report):
            console.print(
                f"[dim]schema trial, not tried ({len(objects)}): {escape(reason)}: {escape(_listed(objects))}[/]"
            )
        for note in report.trial.notes + tuple(n for d in report.trial.databases for n in d.notes):
            console.print(f"[dim]schema trial: {escape(note)}[/]")
    for w in report.client.warnings:
        console.print(f"[yellow]client:[/] {escape(w)}")
    if verbose:
        console.print(_inventory_table(report))
    if verbose and report.client.commands:
        console.print(Panel(Group(*[escape(c) for c in report.client.commands]), title="manual migration"))
    console.print(f"[{_verdict_style(report)}]{escape(report.verdict)}[/]")


def _db_rows(report: CheckReport) -> list[tuple[str, ...]]:
    src = report.source
    rows: list[tuple[str, ...]] = []
    for d in src.databases:
        if d.is_template:
            continue
        dbi = src.database(d.name)
        counts = dbi.object_counts if dbi else {}
        rows.append(
            (
                d.name,
                size(d.size_bytes),
                d.encoding,
                f"{d.collate}/{d.ctype}" + (f" ({d.locale_provider})" if d.locale_provider != "libc" else ""),
                d.owner,
                str(d.connlimit),
                "not checked"
                if dbi is None
                else ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items() if v)
                + (f", {dbi.large_objects} large objects" if dbi.large_objects else ""),
                "" if dbi is None else ", ".join(f"{e.name} {e.version}" for e in dbi.extensions),
            )
        )
    return rows


_DB_HEADERS = ("database", "size", "encoding", "collate/ctype", "owner", "conn. limit", "objects", "extensions")


def _inventory_table(report: CheckReport) -> Table:
    table = Table(title="Source databases", title_justify="left")
    for col in _DB_HEADERS:
        table.add_column(col)
    for row in _db_rows(report):
        table.add_row(*(escape(c) for c in row))
    return table


def _filter(report: CheckReport, sev: Severity) -> list[Finding]:
    return [f for f in report.findings if f.severity is sev]


def render_markdown(report: CheckReport) -> str:
    out = [f"# pgshift check: {report.verdict}", ""]
    out.append(md_table(["", ""], _summary_rows(report)))
    out.append("")
    for sev, items in _by_severity(report.findings):
        out += [f"## {_HEADINGS[sev]} ({len(items)})", ""]
        out.append(
            md_table(
                ["rule", "database", "object", "finding", "fix"],
                [(f.rule_id, f.database or "", f.object or "", f.message, f.fix) for f in items],
            )
        )
        out.append("")
    if not report.findings:
        out += ["No findings.", ""]
    if report.skipped:
        out += ["## Not run", "", md_table(["rule", "why"], [(s.rule_id, s.reason) for s in report.skipped]), ""]
    remedy_rows = _remedy_rows(report)
    if remedy_rows:
        out += [f"## Remedies ({len(remedy_rows)})", "", md_table(_REMEDY_HEADERS, remedy_rows), ""]
    out += _markdown_trial(report)
    out += _markdown_inventory(report)
    if report.client.commands:
        out += ["## Manual migration", "", "```sh", *report.client.commands, "```", ""]
    return "\n".join(out)


def _markdown_trial(report: CheckReport) -> list[str]:
    trial = report.trial
    if trial is None:
        return []
    out = ["## Schema trial", "", trial.summary, ""]
    rows = _trial_rows(report)
    if rows:
        out += [md_table(["database", "object", "SQLSTATE", "the server said", "also fails"], rows), ""]
    groups = _not_tried_groups(report)
    if groups:
        out += ["Not tried:", "", md_table(["why", "statements"], [(r, _listed(o, 20)) for r, o in groups]), ""]
    notes = [*trial.notes, *(n for d in trial.databases for n in d.notes)]
    out += [f"- {n}" for n in notes] + ([""] if notes else [])
    return out


def _markdown_inventory(report: CheckReport) -> list[str]:
    src = report.source
    out = ["## Source inventory", "", md_table(_DB_HEADERS, _db_rows(report)), ""]
    ranked = sorted(((t.total_bytes, d.name, t) for d in src.checked for t in d.largest_tables), key=lambda x: -x[0])
    largest = [(db, t.name, size(t.total_bytes), t.rows_estimate) for _, db, t in ranked]
    if largest:
        out += ["Largest tables:", "", md_table(["database", "table", "size", "rows (estimate)"], largest[:10]), ""]
    out.append(
        md_table(
            ["role", "login", "superuser", "createdb", "createrole", "replication", "bypassrls", "password"],
            [
                (
                    r.name,
                    r.login,
                    r.superuser,
                    r.createdb,
                    r.createrole,
                    r.replication,
                    r.bypassrls,
                    r.password_type or "",
                )
                for r in src.roles
            ],
        )
    )
    out.append("")
    if src.tablespaces:
        out += [
            md_table(["tablespace", "location", "owner"], [(t.name, t.location, t.owner) for t in src.tablespaces]),
            "",
        ]
    extras = []
    for d in src.checked:
        for label, items in (
            ("unlogged tables", d.unlogged_tables),
            ("foreign servers", d.foreign_servers),
            ("user mappings", d.user_mappings),
            ("publications", d.publications),
            ("subscriptions", d.subscriptions),
            ("event triggers", d.event_triggers),
            ("row-level security", d.rls_tables),
        ):
            if items:
                extras.append((d.name, label, ", ".join(items)))
    if extras:
        out += [md_table(["database", "kind", "objects"], extras), ""]
    if report.target is not None:
        t = report.target
        out += [
            "## Target",
            "",
            md_table(
                ["", ""],
                [
                    ("version", str(t.server.version)),
                    (
                        "role",
                        f"{t.privileges.user} (superuser: {t.privileges.superuser}, createdb: "
                        f"{t.privileges.createdb}, createrole: {t.privileges.createrole})",
                    ),
                    ("databases", ", ".join(sorted(t.databases))),
                    ("available extensions", str(len(t.extensions))),
                    ("locales", str(len(t.locales))),
                    ("settings", ", ".join(f"{k}={v}" for k, v in sorted(t.server.settings.items()))),
                ],
            ),
            "",
        ]
    return out


def _html_trial(report: CheckReport) -> list[str]:
    trial = report.trial
    if trial is None:
        return []
    parts = [f"<h2>Schema trial</h2><p>{h(trial.summary)}</p>"]
    rows = _trial_rows(report)
    if rows:
        parts.append(
            "<table><tr><th>database</th><th>object</th><th>SQLSTATE</th><th>the server said</th>"
            "<th>also fails</th></tr>"
        )
        parts += ["<tr>" + "".join(f"<td>{h(c)}</td>" for c in row) + "</tr>" for row in rows]
        parts.append("</table>")
    groups = _not_tried_groups(report)
    if groups:
        parts.append("<p>Not tried:</p><ul>")
        parts += [f"<li>{h(r)}: {h(_listed(o, 20))}</li>" for r, o in groups]
        parts.append("</ul>")
    notes = [*trial.notes, *(n for d in trial.databases for n in d.notes)]
    if notes:
        parts.append("<ul>" + "".join(f"<li>{h(n)}</li>" for n in notes) + "</ul>")
    return parts


def render_html(report: CheckReport, rules: Sequence[Rule] = ()) -> str:
    verdict_class = "blocker" if report.blockers else ("warning" if report.warnings else "ok")
    parts = [f"<h1>pgshift check</h1><div class='verdict {verdict_class}'>{h(report.verdict)}</div>"]
    parts.append(
        "<table>" + "".join(f"<tr><th>{h(k)}</th><td>{h(v)}</td></tr>" for k, v in _summary_rows(report)) + "</table>"
    )
    for sev, items in _by_severity(report.findings):
        parts.append(f"<h2>{h(_HEADINGS[sev])} ({len(items)})</h2>")
        parts.append(
            "<table><tr><th>severity</th><th>rule</th><th>database</th><th>object</th><th>finding</th><th>fix</th></tr>"
        )
        for f in items:
            parts.append(
                f"<tr class='finding'><td><span class='sev {h(sev.value)}'>{h(sev.value)}</span></td>"
                f"<td><code>{h(f.rule_id)}</code></td><td>{h(f.database or '')}</td><td>{h(f.object or '')}</td>"
                f"<td>{h(f.message)}</td><td>{h(f.fix)}</td></tr>"
            )
        parts.append("</table>")
    if not report.findings:
        parts.append("<p>No findings.</p>")
    if report.skipped:
        parts.append("<h2>Not run</h2><table><tr><th>rule</th><th>why</th></tr>")
        parts += [f"<tr><td><code>{h(s.rule_id)}</code></td><td>{h(s.reason)}</td></tr>" for s in report.skipped]
        parts.append("</table>")
    remedy_rows = _remedy_rows(report)
    if remedy_rows:
        parts.append(
            f"<h2>Remedies ({len(remedy_rows)})</h2><table><tr>"
            + "".join(f"<th>{h(c)}</th>" for c in _REMEDY_HEADERS)
            + "</tr>"
        )
        parts += ["<tr>" + "".join(f"<td>{h(c)}</td>" for c in row) + "</tr>" for row in remedy_rows]
        parts.append("</table>")
    parts += _html_trial(report)
    src = report.source
    parts.append(
        "<h2>Source databases</h2><table><tr><th>database</th><th>size</th><th>encoding</th>"
        "<th>collate/ctype</th><th>owner</th><th>tables</th><th>extensions</th></tr>"
    )
    for d in src.databases:
        if d.is_template:
            continue
        dbi = src.database(d.name)
        parts.append(
            f"<tr><td>{h(d.name)}</td><td>{h(size(d.size_bytes))}</td><td>{h(d.encoding)}</td>"
            f"<td>{h(d.collate)}/{h(d.ctype)}</td><td>{h(d.owner)}</td>"
            f"<td>{h(dbi.object_counts.get('tables', 0) if dbi else '')}</td>"
            f"<td>{h(', '.join(f'{e.name} {e.version}' for e in dbi.extensions) if dbi else '')}</td></tr>"
        )
    parts.append("</table>")
    if report.client.commands:
        parts.append(
            "<h2>Manual migration</h2><pre style='white-space:pre-wrap;word-break:break-all'><code>"
            + h("\n".join(report.client.commands))
            + "</code></pre>"
        )
    if report.client.warnings or report.client.error:
        parts.append("<h2>Client programs</h2><ul>")
        parts += [f"<li>{h(w)}</li>" for w in (*report.client.warnings, report.client.error) if w]
        parts.append("</ul>")
    return html_page(f"pgshift check — {report.verdict}", "\n".join(parts))
