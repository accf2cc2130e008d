"""What a backup records of a database and a proof compares: exact rows per table, objects per kind.

Read in whatever transaction the connection is in: the backup's counts run in the exported snapshot
that pg_dump then reads (a REPEATABLE READ transaction, where a query on ``pg_class`` sees the
catalog as of the snapshot too, so a table created after it is neither listed nor dumped).
"""

from __future__ import annotations

from collections.abc import Callable

from pgshift.catalog import inventory, rows
from pgshift.catalog.inventory import DbObject
from pgshift.catalog.session import Connection

_BATCH = 50  # tables counted per round trip


def counted_rows(
    conn: Connection, selected: Callable[[str, str], bool], *, between: Callable[[], None] | None = None
) -> dict[str, int]:
    """Exact rows of every table and populated materialized view ``selected(schema, name)`` keeps.

    ``between`` runs before each batch (a cancellation check)."""
    tables = [t for t in rows.list_tables(conn) if selected(t.schema, t.name) and (t.relkind == "r" or t.populated)]
    out: dict[str, int] = {}
    for start in range(0, len(tables), _BATCH):
        if between is not None:
            between()
        batch = tables[start : start + _BATCH]
        for table, n in zip(batch, rows.count_rows_many(conn, batch), strict=True):
            out[table.qualified] = n
    return dict(sorted(out.items()))


def object_counts(conn: Connection, database: str, selected: Callable[[DbObject], bool]) -> dict[str, int]:
    """User objects by kind (verify's inventory), those ``selected`` keeps."""
    out: dict[str, int] = {}
    for obj in inventory.read_inventory(conn, database).objects:
        if selected(obj):
            out[obj.kind] = out.get(obj.kind, 0) + 1
    return dict(sorted(out.items()))
