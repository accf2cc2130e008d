"""``pgshift verify``: not yet built (its issue replaces this module)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Registers nothing until the command exists."""
