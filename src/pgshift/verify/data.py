"""Rows: exact counts and content digests, in parallel on both servers at once.

Each side gets a pool of ``jobs`` connections; the tables are handed out largest first, and
both pools work at the same time, so the wall time is close to that of the slower server's
share divided by ``jobs``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import psycopg

from pgshift.catalog import rows as rowcat
from pgshift.catalog.connections import connection_shortage
from pgshift.catalog.rows import Digest, KeyValue, TableRef
from pgshift.catalog.session import Connection, connect, connection_lost, failure_hint, first_line, join_snapshot
from pgshift.conninfo import Endpoint, ResolvedEndpoint
from pgshift.errors import StepFailed, UsageError
from pgshift.events import EventSink, StepFinished, StepProgress, StepStarted
from pgshift.verify.model import Difference

T = TypeVar("T")


class SideFailed(Exception):
    """A query of one side's pool failed: which side, which database, and libpq's error."""

    def __init__(self, role: str, dbname: str, error: psycopg.Error) -> None:
        super().__init__(str(error))
        self.role = role
        self.dbname = dbname
        self.error = error


class SidePool:
    """``jobs`` connections to one database, each used by one worker thread."""

    def __init__(
        self,
        endpoint: Endpoint | ResolvedEndpoint,
        dbname: str,
        jobs: int,
        *,
        checksums: bool,
        snapshot: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.dbname = dbname
        self.checksums = checksums
        self.snapshot = snapshot  # every session reads in this exported snapshot
        self._local = threading.local()
        self._conns: list[Connection] = []
        self._lock = threading.Lock()
        self.executor = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix=f"verify-{endpoint.role}")

    def _conn(self) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.endpoint, self.dbname)
            if self.checksums:
                rowcat.prepare_checksum_session(conn)
            if self.snapshot is not None:
                join_snapshot(conn, self.snapshot)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def submit(self, fn: Callable[[Connection], T]) -> Future[T]:
        def on_this_side() -> T:
            try:
                return fn(self._conn())
            except psycopg.Error as exc:
                if connection_lost(exc):
                    # The session is dead: the next task of this worker gets a new one (and, with the
                    # server still down, the connection error: exit 3), not "the connection is closed".
                    self._forget_connection()
                raise SideFailed(self.endpoint.role, self.dbname, exc) from exc

        return self.executor.submit(on_this_side)

    def _forget_connection(self) -> None:
        conn: Connection | None = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def cancel(self) -> None:
        """Cancel the statements running now (on an error or Ctrl-C): no waiting for a big count."""
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(psycopg.Error):
                    conn.cancel_safe(timeout=5)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()


@contextmanager
def cancelling(event: threading.Event | None, cancel: Callable[[], None]) -> Iterator[None]:
    """While the block runs, ``cancel()`` every 0.1 s once ``event`` is set (a caller in another thread
    was interrupted: migrate's Ctrl-C or SIGTERM), so the block's statements end at once with an error;
    again each time, so a statement started after the first cancel ends too."""
    if event is None:
        yield
        return
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.1):
            if event.is_set():
                cancel()

    watcher = threading.Thread(target=watch, name="verify-cancel", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def cancel_statements(*conns: Connection) -> None:
    """Cancel what each session runs now (nothing happens to an idle one)."""
    for conn in conns:
        with contextlib.suppress(psycopg.Error):
            conn.cancel_safe(timeout=5)


@contextmanager
def side_pools(
    source: Endpoint | ResolvedEndpoint,
    source_db: str,
    target: Endpoint | ResolvedEndpoint,
    target_db: str,
    jobs: int,
    *,
    checksums: bool,
    source_snapshot: str | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[tuple[SidePool, SidePool]]:
    """The pools of both sides; once ``cancel`` is set their statements are cancelled (``cancelling``)."""
    src = SidePool(source, source_db, jobs, checksums=checksums, snapshot=source_snapshot)
    tgt = SidePool(target, target_db, jobs, checksums=checksums)

    def both() -> None:
        src.cancel()
        tgt.cancel()

    try:
        with cancelling(cancel, both):
            yield src, tgt
    except BaseException:
        both()
        raise
    finally:
        src.close()
        tgt.close()


def refuse_too_many_jobs(source: Connection, target: Connection, jobs: int) -> None:
    """Before anything is counted: ``jobs`` more sessions must fit on each server (its catalog
    session, already open, is counted in use), or the counts would end in 'too many clients'."""
    for role, conn in (("source", source), ("target", target)):
        short = connection_shortage(conn, role, jobs=jobs, need=jobs, jobs_within=lambda free: free)
        if short is not None:
            raise UsageError(short.message, hint=short.hint)


def _wait(
    futures: Sequence[Future[Any]], sink: EventSink, step: str, title: str, describe: Callable[[int], str]
) -> list[Any]:
    """Results in order; the first failure is raised as StepFailed naming the task."""
    results: list[Any] = []
    for i, fut in enumerate(futures):
        try:
            results.append(fut.result())
        except SideFailed as failed:
            for other in futures:
                other.cancel()
            raise _side_failure(describe(i), failed) from None
        if (i + 1) % 25 == 0 or i + 1 == len(futures):
            sink(StepProgress(title, step, completed=i + 1, total=len(futures)))
    return results


def _side_failure(task: str, failed: SideFailed) -> StepFailed:
    """The error a user gets: a lost connection says so and names the server, a refused read asks for
    the privilege, anything else gets the catalog layer's hint for it."""
    exc = failed.error
    if connection_lost(exc):
        return StepFailed(
            f"{task} failed: the connection to the {failed.role} (database {failed.dbname!r}) was lost: "
            f"{first_line(exc)}",
            hint=f"the {failed.role} server ended the session (restarted, shut down, or the session was "
            "terminated by pg_terminate_backend or a timeout): check that it is up, then run verify again",
        )
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        hint = f"the verifying role needs SELECT on every table of the {failed.role} (or exclude it with -T)"
    else:
        hint = failure_hint(exc)
    return StepFailed(f"{task} failed: {first_line(exc)}", hint=hint)


# Tables of up to 1 MB are counted COUNT_BATCH at a time: 10,000 tiny tables cost 10,000/50
# round trips per side instead of 10,000.
SMALL_TABLE_PAGES = 128
COUNT_BATCH = 50


def _count_many(tables: list[TableRef], conn: Connection) -> list[int]:
    return rowcat.count_rows_many(conn, tables)


def _bounds(table: TableRef, chunk_rows: int, conn: Connection) -> list[KeyValue]:
    return rowcat.range_boundaries(conn, table, chunk_rows)


def _bounds_label(key: tuple[str, str], _index: int) -> str:
    return f"cutting key ranges of {key[0]}.{key[1]}"


def _sub_bounds(
    table: TableRef, chunk_rows: int, lower: KeyValue | None, upper: KeyValue | None, conn: Connection
) -> list[KeyValue]:
    return rowcat.range_boundaries(conn, table, chunk_rows, lower, upper)


def _digest_all(table: TableRef, conn: Connection) -> Digest:
    return rowcat.digest_table(conn, table)


def _digest_range(table: TableRef, lo: KeyValue | None, hi: KeyValue | None, conn: Connection) -> Digest:
    return rowcat.digest_range(conn, table, lo, hi)


@dataclass
class RowOutcome:
    differences: list[Difference] = field(default_factory=list)
    tables: int = 0
    rows_source: int = 0
    rows_target: int = 0
    checksummed_tables: int = 0
    checksummed_ranges: int = 0


def _range_label(lower: KeyValue | None, upper: KeyValue | None, key_names: Sequence[str]) -> str:
    def show(value: KeyValue) -> str:
        return value[0] if len(value) == 1 else "(" + ", ".join(value) + ")"

    key = key_names[0] if len(key_names) == 1 else "(" + ", ".join(key_names) + ")"
    if lower is None and upper is None:
        return "all rows"
    if lower is None:
        assert upper is not None
        return f"{key} < {show(upper)}"
    if upper is None:
        return f"{key} >= {show(lower)}"
    return f"{show(lower)} <= {key} < {show(upper)}"


# A mismatched key range of more than REFINE_ROWS rows is cut again into about REFINE_PARTS
# parts, at most REFINE_DEPTH times, so that the report names a narrow range.
REFINE_ROWS = 1000
REFINE_PARTS = 20
REFINE_DEPTH = 3
MAX_RANGES_SHOWN = 10

Range = tuple[KeyValue | None, KeyValue | None]


def _refine(
    s: TableRef, t: TableRef, ranges: list[tuple[Range, int]], sp: SidePool, tp: SidePool, sink: EventSink, step: str
) -> list[Range]:
    """Narrow mismatched ranges (with their source row counts) down to small ones."""
    for _depth in range(REFINE_DEPTH):
        wide = [(r, n) for r, n in ranges if n > REFINE_ROWS]
        if not wide:
            break
        narrow = [(r, n) for r, n in ranges if n <= REFINE_ROWS]
        narrow += wide[MAX_RANGES_SHOWN:]  # beyond what the report shows: kept as they are
        for (lo, hi), n in wide[:MAX_RANGES_SHOWN]:
            chunk = max(REFINE_ROWS // 10, -(-n // REFINE_PARTS))
            bounds = _wait(
                [sp.submit(partial(_sub_bounds, s, chunk, lo, hi))],
                sink,
                step,
                "narrowing a mismatch",
                lambda _i: f"cutting key ranges of {s.qualified}",
            )[0]
            cuts: list[KeyValue | None] = [lo, *bounds[1:], hi]
            subs = [(cuts[i], cuts[i + 1]) for i in range(len(cuts) - 1)]
            futures = []
            for a, b in subs:
                futures.append(sp.submit(partial(_digest_range, s, a, b)))
                futures.append(tp.submit(partial(_digest_range, t, a, b)))
            digests = _wait(futures, sink, step, "narrowing a mismatch", lambda _i: f"checksumming {s.qualified}")
            for i, sub in enumerate(subs):
                sd, td = digests[2 * i], digests[2 * i + 1]
                if sd != td:
                    narrow.append((sub, max(sd.rows, td.rows)))
        ranges = narrow
    return [r for r, _n in ranges]


def compare_rows(
    database: str,
    source: Endpoint | ResolvedEndpoint,
    source_db: str,
    target: Endpoint | ResolvedEndpoint,
    target_db: str,
    source_tables: list[TableRef],
    target_tables: list[TableRef],
    *,
    jobs: int,
    checksums: bool,
    chunk_rows: int,
    sink: EventSink,
    source_snapshot: str | None = None,
    cancel: threading.Event | None = None,
) -> RowOutcome:
    """Exact counts of every table on both sides (and digests with ``checksums``); the source's
    read in ``source_snapshot`` when given (an exported snapshot still held); ``cancel`` set ends the
    statements running (see ``side_pools``)."""
    out = RowOutcome()
    tgt_by_name = {(t.schema, t.name): t for t in target_tables}
    pairs = [(s, tgt_by_name[(s.schema, s.name)]) for s in source_tables if (s.schema, s.name) in tgt_by_name]
    started = time.monotonic()
    step = f"db:{database}:rows"
    title = f"counting rows in {database}"
    sink(StepStarted(title, step, total=None, unit="batches"))
    with side_pools(
        source, source_db, target, target_db, jobs, checksums=checksums, source_snapshot=source_snapshot, cancel=cancel
    ) as (sp, tp):
        batches: list[tuple[str, list[TableRef], Future[list[int]]]] = []
        for role, pool, tables in (("source", sp, [s for s, _t in pairs]), ("target", tp, [t for _s, t in pairs])):
            countable = [t for t in tables if not (t.relkind == "m" and not t.populated)]
            # Large tables one by one, largest first; small ones in batches (one round trip each).
            small = [t for t in countable if t.pages <= SMALL_TABLE_PAGES]
            for t in countable:
                if t.pages > SMALL_TABLE_PAGES:
                    batches.append((role, [t], pool.submit(partial(_count_many, [t]))))
            for i in range(0, len(small), COUNT_BATCH):
                chunk = small[i : i + COUNT_BATCH]
                batches.append((role, chunk, pool.submit(partial(_count_many, chunk))))
        # Key ranges are cut on the source while the counts run.
        bound_futures: dict[tuple[str, str], Future[list[KeyValue]]] = {}
        if checksums:
            for s, t in pairs:
                if s.rangeable and [c.name for c in s.key] == [c.name for c in t.key] and s.populated and t.populated:
                    bound_futures[(s.schema, s.name)] = sp.submit(partial(_bounds, s, chunk_rows))
        results = _wait(
            [f for _r, _ts, f in batches],
            sink,
            step,
            title,
            lambda i: (
                f"counting rows of {', '.join(t.qualified for t in batches[i][1][:3])}"
                + (" …" if len(batches[i][1]) > 3 else "")
                + f" on the {batches[i][0]}"
            ),
        )
        found: dict[tuple[str, str, str], int] = {}
        for (role, tables, _f), ns in zip(batches, results, strict=True):
            for t, n in zip(tables, ns, strict=True):
                found[(role, t.schema, t.name)] = n
        counts: list[int | None] = []
        for s, _t in pairs:
            counts.append(found.get(("source", s.schema, s.name)))
            counts.append(found.get(("target", s.schema, s.name)))
        for i, (s, _t) in enumerate(pairs):
            sc, tc = counts[2 * i], counts[2 * i + 1]
            obj = f"{'materialized view' if s.relkind == 'm' else 'table'} {s.qualified}"
            if sc is None or tc is None:
                if (sc is None) != (tc is None):
                    out.differences.append(
                        Difference(
                            "rows",
                            database,
                            obj,
                            "changed",
                            "unpopulated" if sc is None else f"populated ({sc:,} rows)",
                            "unpopulated" if tc is None else f"populated ({tc:,} rows)",
                            f"{obj} is populated on one side only",
                            relation=(s.schema, s.name),
                        )
                    )
                continue
            out.tables += 1
            out.rows_source += sc
            out.rows_target += tc
            if sc != tc:
                delta = tc - sc
                out.differences.append(
                    Difference(
                        "rows",
                        database,
                        obj,
                        "count",
                        f"{sc:,}",
                        f"{tc:,}",
                        f"{obj}: {abs(delta):,} row(s) {'more' if delta > 0 else 'fewer'} on the target",
                        relation=(s.schema, s.name),
                    )
                )
        sink(StepFinished(title, step, seconds=time.monotonic() - started))
        if checksums:
            _checksums(database, pairs, counts, bound_futures, sp, tp, out, sink)
    return out


def _checksums(
    database: str,
    pairs: list[tuple[TableRef, TableRef]],
    counts: list[int | None],
    bound_futures: dict[tuple[str, str], Future[list[KeyValue]]],
    sp: SidePool,
    tp: SidePool,
    out: RowOutcome,
    sink: EventSink,
) -> None:
    started = time.monotonic()
    step = f"db:{database}:checksums"
    title = f"checksumming rows in {database}"
    bounds = {k: _wait([f], sink, step, title, partial(_bounds_label, k))[0] for k, f in bound_futures.items()}
    jobs: list[tuple[TableRef, TableRef, list[KeyValue] | None]] = []
    for i, (s, t) in enumerate(pairs):
        if counts[2 * i] is None or counts[2 * i + 1] is None:
            continue
        if {c.name for c in s.columns} != {c.name for c in t.columns}:
            continue  # the column difference is reported by the inventory
        jobs.append((s, t, bounds.get((s.schema, s.name))))
    futures: list[Future[Digest]] = []
    labels: list[str] = []
    index: list[tuple[int, Range, TableRef]] = []  # (job, range, target table in source column order)
    for j, (s, t, b) in enumerate(jobs):
        # Both sides digest the columns in the source's order.
        t_cols = {c.name: c for c in t.columns}
        t_ordered = TableRef(
            t.schema, t.name, t.relkind, t.populated, t.pages, tuple(t_cols[c.name] for c in s.columns), t.key
        )
        ranges: list[tuple[KeyValue | None, KeyValue | None]]
        if b and len(b) > 1:
            ranges = [(None if r == 0 else b[r], b[r + 1] if r + 1 < len(b) else None) for r in range(len(b))]
        else:
            ranges = [(None, None)]
        for lo, hi in ranges:
            for pool, table, role in ((sp, s, "source"), (tp, t_ordered, "target")):
                if lo is None and hi is None:
                    futures.append(pool.submit(partial(_digest_all, table)))
                else:
                    futures.append(pool.submit(partial(_digest_range, table, lo, hi)))
                labels.append(f"checksumming {table.qualified} on the {role}")
            index.append((j, (lo, hi), t_ordered))
    sink(StepStarted(title, step, total=len(futures), unit="ranges"))
    digests = _wait(futures, sink, step, title, lambda i: labels[i])
    mismatched: dict[int, list[tuple[Range, int]]] = {}
    targets: dict[int, TableRef] = {}
    for n, (j, rng, t_ordered) in enumerate(index):
        sd, td = digests[2 * n], digests[2 * n + 1]
        out.checksummed_ranges += 1
        if sd != td:
            mismatched.setdefault(j, []).append((rng, max(sd.rows, td.rows)))
            targets[j] = t_ordered
    out.checksummed_tables += len(jobs)
    for j, found in sorted(mismatched.items()):
        s = jobs[j][0]
        if s.rangeable and s.key == jobs[j][1].key:
            narrowed = _refine(s, targets[j], found, sp, tp, sink, step)
        else:
            narrowed = [r for r, _n in found]
        names = [c.name for c in s.key]
        texts = [_range_label(lo, hi, names) for lo, hi in narrowed] if s.rangeable else ["all rows"]
        obj = f"{'materialized view' if s.relkind == 'm' else 'table'} {s.qualified}"
        where = "; ".join(texts[:MAX_RANGES_SHOWN]) + (
            f"; … {len(texts) - MAX_RANGES_SHOWN} more" if len(texts) > MAX_RANGES_SHOWN else ""
        )
        out.differences.append(
            Difference(
                "checksums",
                database,
                obj,
                "content",
                None,
                None,
                f"{obj}: content differs in {where}",
                relation=(s.schema, s.name),
            )
        )
    sink(StepFinished(title, step, seconds=time.monotonic() - started))
