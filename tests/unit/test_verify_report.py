"""Rendering a VerifyReport: grouping, summary, escaping, the JSON document."""

from __future__ import annotations

import io
import json

from rich.console import Console

from pgshift.report.verify import grouped, json_document, render_console, render_html, render_markdown
from pgshift.verify import DatabaseTotals, Difference, ExplainedDifference, VerifyOptions, VerifyReport

DIFFS = (
    Difference("rows", "shop", "table public.orders", "count", "200", "199", "table public.orders: 1 row(s) fewer"),
    Difference("globals", None, "role bob", "missing", "exists", None, "role bob is missing on the target"),
    Difference(
        "schema", "shop", "index public.<script>x", "missing", "exists", None, "index public.<script>x is missing"
    ),
    Difference("rows", "accounts", "table public.a", "count", "1", "2", "table public.a: 1 row(s) more"),
)
EXPECTED = (
    ExplainedDifference(
        "not-null-constraints-18",
        "PostgreSQL 18 catalogs NOT NULL column constraints in pg_constraint",
        Difference("schema", "shop", "constraint (not null) public.t.t_id_not_null", "extra", None, "exists", "x"),
    ),
)
REPORT = VerifyReport(
    equal=False,
    differences=DIFFS,
    expected=EXPECTED,
    databases=(DatabaseTotals("shop", "shop", 10, 11, 2, 201, 200), DatabaseTotals("accounts", "accounts_v2")),
    source="host=a password=********",
    target="host=b",
    source_version="13.23",
    target_version="18.6",
    options=VerifyOptions(checksums=True),
    roles_compared=4,
)


def test_differences_group_by_category_in_report_order_then_database() -> None:
    keys = [(cat, db) for cat, db, _ in grouped(DIFFS)]
    assert keys == [("globals", None), ("schema", "shop"), ("rows", "accounts"), ("rows", "shop")]


def test_console_lists_groups_expected_rules_and_ends_with_the_summary() -> None:
    buf = io.StringIO()
    render_console(REPORT, Console(file=buf, width=200, no_color=True))
    text = buf.getvalue()
    assert "Globals (1)" in text and "Rows in shop (1)" in text and "Schema in shop (1)" in text
    assert "not-null-constraints-18: 1" in text
    assert "source: 200 | target: 199" in text
    last = text.strip().splitlines()[-1]
    assert last.startswith("DIFFERENT: 4 difference(s) — compared 2 databases")
    assert "201 rows" in last and "4 roles" in last and "1 expected difference(s)" in last


def test_markdown_has_a_table_per_group() -> None:
    md = render_markdown(REPORT)
    assert md.startswith("# pgshift verify\n\n**DIFFERENT")
    assert "### Rows in shop" in md and "| table public.orders | count | 200 | 199 |" in md
    assert "| not-null-constraints-18 | 1 | PostgreSQL 18 catalogs" in md
    assert "| accounts → accounts_v2 |" in md


def test_html_escapes_object_names_and_is_self_contained() -> None:
    page = render_html(REPORT)
    assert "<script>x" not in page and "&lt;script&gt;x" in page
    assert 'class="verdict error"' in page and "http" not in page.split("</style>")[1]


def test_json_document_carries_kind_and_schema_version_first() -> None:
    doc = json_document(REPORT)
    assert list(doc)[:2] == ["kind", "schema_version"] and doc["kind"] == "verify"
    assert doc["equal"] is False and doc["exit_code"] == 1 and len(doc["differences"]) == 4
    assert doc["expected"][0]["rule"] == "not-null-constraints-18"
    assert json.loads(json.dumps(doc)) == doc
