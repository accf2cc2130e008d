"""Which source databases a move takes: one answer for ``pgshift check`` and migrate's preflight.

A database that refuses connections (datallowconn = false, or left invalid by an interrupted
DROP DATABASE) cannot be dumped. Named with --database it refuses the run (exit 2) in both
commands; otherwise it is left out, and both say so as the warning of rule datallowconn-false.
"""

from __future__ import annotations

from collections.abc import Sequence

from pgshift.catalog.cluster import DatabaseInfo
from pgshift.errors import PreflightRefused, UnknownDatabase


def refuses_connections(db: DatabaseInfo) -> str | None:
    """Why pg_dump cannot connect to ``db``; None when it can."""
    if db.connlimit == -2:  # 15.4/16+: what an interrupted DROP DATABASE leaves
        return "is invalid (left by an interrupted DROP DATABASE)"
    if not db.allow_connections:
        return "does not accept connections (datallowconn = false)"
    return None


def choose_databases(
    found: Sequence[DatabaseInfo], named: Sequence[str] | None, excluded: Sequence[str] = ()
) -> tuple[list[DatabaseInfo], dict[str, str]]:
    """(the databases to move, {database left out: why}) as both commands choose them: the databases
    named, else every one but postgres and the templates; minus the excluded ones."""
    by_name = {d.name: d for d in found}
    if named:
        missing = [n for n in named if n not in by_name]
        if missing:
            raise UnknownDatabase(missing, (d.name for d in found if not d.is_template))
        chosen = [by_name[n] for n in dict.fromkeys(named)]
    else:
        chosen = [d for d in found if d.name != "postgres" and not d.is_template]
    skip = set(excluded)
    out: list[DatabaseInfo] = []
    left_out: dict[str, str] = {}
    for db in chosen:
        if db.name in skip:
            continue
        why = refuses_connections(db)
        if why is None:
            out.append(db)
        elif named:
            raise PreflightRefused(
                f"database {db.name!r} {why} and cannot be dumped",
                hint=f"ALTER DATABASE {db.name} ALLOW_CONNECTIONS true on the source"
                + (" (or DROP DATABASE it)" if db.connlimit == -2 else "")
                + ", or do not name it",
            )
        else:
            left_out[db.name] = why
    return out, left_out
