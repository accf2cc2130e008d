"""Pieces every renderer shares: Markdown tables and a self-contained HTML page."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence


def md_escape(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(md_escape(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def h(text: object) -> str:
    """HTML-escape any value."""
    return html.escape(str(text), quote=True)


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:72rem;
color:#1d2430;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #dde}
table{border-collapse:collapse;width:100%;margin:.6rem 0;font-size:.92rem}
th,td{border:1px solid #d5d9e0;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f1f3f7}code{background:#f1f3f7;padding:0 .2rem;border-radius:3px}
.verdict{font-size:1.1rem;padding:.6rem .8rem;border-radius:6px;margin:1rem 0}
.ok{background:#e6f4ea;color:#1e5631}.warning{background:#fff4e0;color:#7a4b00}
.blocker,.error{background:#fdecea;color:#8a1c1c}.info{background:#eef3fb;color:#1f3d7a}
.sev{font-weight:600;text-transform:uppercase;font-size:.8rem}
"""


def html_page(title: str, body: str) -> str:
    """One self-contained HTML file: no external CSS, scripts or fonts."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><title>{h(title)}</title>'
        f"<style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )
