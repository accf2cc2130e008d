"""Sizes as people read them (1024-based, as PostgreSQL's pg_size_pretty)."""

from __future__ import annotations


def human_size(n: int | None, unknown: str = "size unknown") -> str:
    if n is None:
        return unknown
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
