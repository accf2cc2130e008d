"""``--sample-rows N``: after a schema-only migration, at most N rows of every table from the source.

Each table the target has after the schema restore (partitions, not their partitioned parents)
gets ``COPY (SELECT cols FROM ONLY t LIMIT n)`` from the source straight into it, the columns those
the target's COPY takes (a generated column is computed there). The target's session runs with
``session_replication_role = replica``: a sample of a child table names parents the sample of the
parent may lack, so foreign keys (and user triggers, which a restore creates after the data anyway)
are not enforced on it; unique, check and not-null constraints are. A table that refuses its rows
(an encoding, a changed type, a constraint) is a failure of the load, reported with its table.
Large objects are not sampled.

Each table's copy is timed and its time scaled to the full table by the source's row estimate
(``reltuples``) over the rows loaded, or by its size on disk when it was never analyzed (a rough
figure: a small sample's per-table overhead is scaled too, so it errs long). The full table's disk
is the source's size of it with its indexes: a sample's few pages say little.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from pgshift.catalog import sampling as q
from pgshift.catalog.session import Connection, connect, first_line
from pgshift.events import EventSink, StepProgress
from pgshift.migrate import MigrateOptions
from pgshift.rehearse.model import SampledTable


@dataclass(frozen=True)
class SampleOutcome:
    tables: tuple[SampledTable, ...]
    failures: tuple[str, ...]  # "database: table: what the target said"
    notes: tuple[str, ...] = ()


def scale_of(rows: int, limit: int, source: q.TableSize | None, target: q.TableSize | None) -> float:
    """How many times the full table is larger than its sample (1 when it was loaded whole)."""
    if rows < limit or source is None:
        return 1.0
    if source.estimated_rows > rows:
        return source.estimated_rows / rows
    if target is not None and target.table_bytes > 0 and source.table_bytes > target.table_bytes:
        return source.table_bytes / target.table_bytes
    return 1.0


def load_sample(
    options: MigrateOptions, databases: Sequence[tuple[str, str]], limit: int, sink: EventSink
) -> SampleOutcome:
    tables: list[SampledTable] = []
    failures: list[str] = []
    for source_db, target_db in databases:
        done, failed = _database(options, source_db, target_db, limit, sink)
        tables += done
        failures += failed
    return SampleOutcome(tuple(tables), tuple(failures))


def _database(
    options: MigrateOptions, source_db: str, target_db: str, limit: int, sink: EventSink
) -> tuple[list[SampledTable], list[str]]:
    out: list[SampledTable] = []
    failures: list[str] = []
    tconn = connect(options.target, target_db)
    sconn: Connection | None = None
    try:
        q.without_triggers(tconn)
        chosen = q.tables_to_sample(tconn)
        step = f"rehearse:sample:{source_db}"
        for i, table in enumerate(chosen, start=1):
            if sconn is None:
                sconn = connect(options.source, source_db)
                q.same_client_encoding(sconn, tconn)
            started = time.monotonic()
            try:
                rows = _copy(sconn, tconn, table, limit)
            except psycopg.Error as exc:
                failures.append(f"{source_db}: table {table.label}: {first_line(exc)}")
                # The source's COPY may have been left half-read: a new session for the next table.
                sconn.close()
                sconn = None
                continue
            seconds = time.monotonic() - started
            target_size = q.table_size(tconn, table)
            source_size = q.table_size(sconn, table)
            scale = scale_of(rows, limit, source_size, target_size)
            loaded = target_size.total_bytes if target_size else 0
            full = source_size.total_bytes if scale > 1 and source_size is not None else loaded
            out.append(SampledTable(source_db, table.label, rows, seconds, scale, loaded, full))
            sink(StepProgress(f"{source_db}: {table.label}", step=step, completed=float(i), total=float(len(chosen))))
    finally:
        tconn.close()
        if sconn is not None:
            sconn.close()
    return out, failures


def _copy(sconn: Connection, tconn: Connection, table: q.SampleTable, limit: int) -> int:
    with sconn.cursor() as scur, tconn.cursor() as tcur:
        with scur.copy(q.copy_sample_out(table, limit)) as out, tcur.copy(q.copy_sample_in(table)) as into:
            for block in out:
                into.write(block)
        return max(tcur.rowcount, 0)
