"""Stream mode's copy: table data from source to target by COPY, in one snapshot, with each table's
post-data items run as soon as its data is in (the ``stream-data`` step, see steps.run_stream_data).

* ``Snapshot.open`` — a leader connection that exports the snapshot the schema dump and the copy
  share; held from the dump step to the end of the copy.
* ``post_data_items`` — the archive's post-data section (``pg_restore --section=post-data
  --verbose --file``), cut into its items with their dependencies.
* ``stream_database`` — the copy: ``jobs`` workers, each with one source connection (in the
  snapshot) and one target connection for the whole step. Units of work are tables, ranges of
  large tables (by block, on 14+ sources) and batches of small tables; each commits on the target in
  one transaction with its record in the progress schema (catalog/streaming.py), so a resume knows
  from the target itself what is done and copies no row twice. A post-data item runs once every
  table it depends on is in and every item it depends on is done; foreign keys run last. Then
  sequences (as of the snapshot) and large objects.

Bytes pass unchanged: both sessions use the source database's encoding (the target database was
created with it), and the post-data statements are sent as the bytes pg_restore wrote.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg

from pgshift import process
from pgshift.catalog import streaming as q
from pgshift.catalog.session import (
    Connection,
    connect,
    export_snapshot,
    first_line,
    join_snapshot,
    server_version,
)
from pgshift.conninfo import Endpoint, ResolvedEndpoint
from pgshift.errors import Interrupted, StepFailed


@dataclass(frozen=True)
class CopyReader:
    """The chosen client's psql, which reads a unit's ``COPY … TO STDOUT`` in the shared snapshot."""

    psql: str

    def command(self, source: ResolvedEndpoint, db: str, snapshot: str, copy: str, encoding: str) -> process.Command:
        argv = [self.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1"]
        argv += [
            "-c",
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            "-c",
            f"SET TRANSACTION SNAPSHOT '{snapshot}'",
        ]
        argv += ["-c", copy, f"--dbname={source.child_conninfo(db)}"]
        # The bytes in the target session's encoding; the password only in the environment.
        options = f"-c statement_timeout=0 -c lock_timeout=0 {_TEXT_OPTIONS}"
        env = source.child_env({"PGOPTIONS": options, "PGCLIENTENCODING": encoding})
        return process.Command(tuple(argv), env=env, secrets=source.secrets)


# Worker sessions wait for no lock and time nothing out: an index build may take hours. Their
# commits do not wait for the WAL flush (a unit and its progress record are lost or kept together);
# the copy ends with a synchronous commit, which makes every earlier one durable.
# COPY's text output as pg_dump asks for it: ISO dates, and every float digit (a source before 12
# prints float4/float8 rounded unless extra_float_digits is 3).
_TEXT_OPTIONS = "-c DateStyle=ISO -c IntervalStyle=postgres -c extra_float_digits=3"
COPY_SESSION_OPTIONS = (
    "-c search_path=pg_catalog -c statement_timeout=0 -c lock_timeout=0 -c synchronous_commit=off " + _TEXT_OPTIONS
)
# A unit at least this large is read through psql (``CopyReader``): psycopg hands COPY's output over
# a row at a time, a Python loop that reads a large table 2-4 times slower than psql writes it.
READER_BYTES = 4 << 20
_FINISH_OPTIONS = "-c search_path=pg_catalog -c statement_timeout=0 -c lock_timeout=0"
# A table over twice the piece size (``piece_bytes``: between these two, by the database's size) is
# copied in ranges of about that size, so that one large table is copied by several workers at once.
SPLIT_BYTES = 256 << 20
MIN_PIECE_BYTES = 32 << 20
# Tables below this size go in batches (one target transaction for several): per-table round trips
# and commits are most of the cost of thousands of small tables.
SMALL_BYTES = 1 << 20
BATCH_BYTES = 8 << 20
BATCH_TABLES = 64
# Whole tables at least this large are emptied in the unit's transaction and loaded with FREEZE:
# their rows need no hint-bit writes later (ANALYZE, verify and the first queries read them).
FREEZE_BYTES = 8 << 20
_LO_BATCH = 32
# Tables analyzed in one round trip (thousands of small tables: one ANALYZE each).
ANALYZE_BATCH = 32
# Post-data items of small tables run this many to a transaction (one round trip and one commit).
ITEM_BATCH = 32

Log = Callable[[str, str], None]


# --- the snapshot ----------------------------------------------------------------------------------


def copy_rows(
    sconn: Connection,
    tconn: Connection,
    table: q.CopyTable,
    lo: int | None,
    hi: int | None,
    *,
    key: str | None = None,
    freeze: bool,
    cancel: threading.Event,
) -> tuple[int, int]:
    """COPY the table's rows (or a range of its blocks, or of its ``key``) from the source session
    into the target's, in whatever transaction each is in: (rows, bytes)."""
    nbytes = 0
    with sconn.cursor() as scur, tconn.cursor() as tcur:
        with scur.copy(q.copy_out(table, lo, hi, key=key)) as out, tcur.copy(q.copy_in(table, freeze=freeze)) as into:
            for block in out:
                if cancel.is_set():
                    raise Interrupted("interrupted")
                into.write(block)
                nbytes += len(block)
        return max(tcur.rowcount, 0), nbytes


class Snapshot:
    """A source session holding an exported snapshot open (a repeatable-read transaction)."""

    def __init__(self, conn: Connection, snapshot_id: str, taken_at: str) -> None:
        self.conn = conn  # in the snapshot: what to copy is read here
        self.id = snapshot_id
        self.taken_at = taken_at

    @classmethod
    def open(cls, source: Endpoint | ResolvedEndpoint, dbname: str) -> Snapshot:
        conn = connect(source, dbname, autocommit=True, options=COPY_SESSION_OPTIONS)
        try:
            snapshot_id, taken_at = export_snapshot(conn)
        except BaseException:
            conn.close()
            raise
        return cls(conn, snapshot_id, taken_at)

    def alive(self) -> bool:
        """The exporting session still holds the snapshot (others can still join it)."""
        try:
            self.conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self.conn.close()


# --- post-data items -------------------------------------------------------------------------------

_HEADER = re.compile(rb"^--\n-- TOC entry (\d+) \(class (\d+) OID (\d+)\)\n", re.MULTILINE)
_DEPS = re.compile(rb"^-- Dependencies: ([\d ]+)$", re.MULTILINE)
_TYPE = re.compile(rb"; Type: ([A-Z ]+?); Schema: ", re.MULTILINE)
_NAME = re.compile(rb"^-- Name: (.*?); Type: ", re.MULTILINE)
_SETTING = re.compile(rb"^SET (default_tablespace|default_table_access_method) = .*;$", re.MULTILINE)


@dataclass(frozen=True)
class PostItem:
    dump_id: int
    kind: str  # the TOC entry's type: INDEX, CONSTRAINT, FK CONSTRAINT, TRIGGER, COMMENT …
    about: str  # "INDEX public.t_v" for messages
    sql: bytes  # as pg_restore wrote it, preceded by the settings in force for it
    depends_on: frozenset[int]


@dataclass(frozen=True)
class PostData:
    preamble: tuple[bytes, ...]  # the script's SET statements: run first on every target session
    items: tuple[PostItem, ...]


def post_data_items(script: bytes) -> PostData:
    """The items of a post-data script, each with the settings in force where pg_restore put it."""
    heads = list(_HEADER.finditer(script))
    head_text = script[: heads[0].start()] if heads else script
    preamble = tuple(
        line.strip()
        for line in head_text.splitlines()
        if line.strip().upper().startswith((b"SET ", b"SELECT PG_CATALOG.SET_CONFIG"))
    )
    settings: dict[bytes, bytes] = {}
    for m in _SETTING.finditer(head_text):
        settings[m[1]] = m[0]
    items = []
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(script)
        chunk = script[head.start() : end]
        trailing = list(_SETTING.finditer(chunk))
        body = chunk
        if trailing:
            body = chunk[: trailing[0].start()]
        body = b"\n".join(line for line in body.splitlines() if not line.startswith(b"\\"))
        deps = _DEPS.search(chunk)
        kind = _TYPE.search(chunk)
        name = _NAME.search(chunk)
        prefix = b"".join(v + b"\n" for v in settings.values())
        items.append(
            PostItem(
                dump_id=int(head[1]),
                kind=kind[1].decode("ascii") if kind else "",
                about=(kind[1].decode("ascii") + " " if kind else "")
                + (name[1].decode("utf-8", "replace") if name else f"TOC entry {head[1].decode()}"),
                sql=prefix + body,
                depends_on=frozenset(int(d) for d in deps[1].split()) if deps else frozenset(),
            )
        )
        for m in trailing:  # in force from the next item on
            settings[m[1]] = m[0]
    return PostData(preamble, tuple(items))


def with_binary(tables: list[q.CopyTable], target_types: dict[tuple[str, str], dict[str, str]]) -> list[q.CopyTable]:
    """The tables, those that can move in binary format marked so: each carried column has a type
    with a binary form (see catalog/streaming.py) and the same type on the target."""
    out = []
    for t in tables:
        there = target_types.get((t.schema, t.name), {})
        same = (
            t.binary_types is not None
            and bool(t.columns)
            and all(there.get(c) == ty for c, ty in zip(t.columns, t.binary_types, strict=True))
        )
        out.append(replace(t, binary=True) if same else t)
    return out


# --- units of work ---------------------------------------------------------------------------------


@dataclass
class Unit:
    id: str
    kind: str  # "table" (a whole table or a range of it), "batch" (small tables), "large-objects"
    tables: list[int]  # table OIDs (one for "table")
    # The range [lo, hi) of a "table" unit: of its blocks, or of its integer ``key``'s values; None on
    # both sides: the whole table; on one side: no bound there.
    lo: int | None = None
    hi: int | None = None
    objects: list[int] = field(default_factory=list)  # large-object OIDs of a "large-objects" unit
    size: int = 0
    key: str | None = None

    @property
    def whole(self) -> bool:
        return self.lo is None and self.hi is None

    def spec(self) -> str:
        return json.dumps(
            {"kind": self.kind, "tables": self.tables, "lo": self.lo, "hi": self.hi, "objects": self.objects,
             "size": self.size, "key": self.key}
        )  # fmt: skip

    @classmethod
    def from_spec(cls, data: dict[str, Any]) -> Unit:
        return cls(
            data["id"],
            data["kind"],
            list(data["tables"]),
            data["lo"],
            data["hi"],
            list(data["objects"]),
            data["size"],
            data.get("key"),
        )


def piece_bytes(tables: Sequence[q.CopyTable], jobs: int) -> int:
    """The size of the ranges large tables are cut into: small enough that the workers share a
    database whose size is mostly one table (a quarter of each worker's share), large enough that a
    range's own cost does not count."""
    share = sum(t.size_bytes for t in tables) // max(1, 4 * jobs)
    return min(SPLIT_BYTES, max(MIN_PIECE_BYTES, share))


def plan_units(
    tables: Sequence[q.CopyTable],
    objects: Sequence[int],
    *,
    split: bool,
    jobs: int,
    key_bounds: Callable[[q.CopyTable], tuple[int, int] | None] = lambda _t: None,
) -> list[Unit]:
    """Largest first (the longest work starts first); small tables in batches; large ones in ranges:
    of blocks with ``split`` (14+ sources), else of their integer primary key (``key_bounds``)."""
    units: list[Unit] = []
    batch: list[q.CopyTable] = []
    piece = piece_bytes(tables, jobs)

    def flush() -> None:
        if batch:
            units.append(
                Unit(f"batch:{batch[0].oid}", "batch", [t.oid for t in batch], size=sum(t.size_bytes for t in batch))
            )
            batch.clear()

    for t in sorted(tables, key=lambda t: t.size_bytes, reverse=True):
        large = jobs > 1 and t.size_bytes > 2 * piece and t.blocks > 0
        pieces = max(2, -(-t.size_bytes // piece))
        bounds = key_bounds(t) if large and not split and t.key is not None else None
        if large and split:
            step = -(-t.blocks // pieces)
            for lo in range(0, t.blocks, step):
                hi = lo + step if lo + step < t.blocks else None  # the last range is open: rows past the end
                units.append(Unit(f"table:{t.oid}:{lo}", "table", [t.oid], lo, hi, size=t.size_bytes // pieces))
        elif bounds is not None and bounds[1] - bounds[0] >= pieces:
            # Open at both ends: every row is in one range, whatever the bounds were.
            step = -(-(bounds[1] - bounds[0] + 1) // pieces)
            cuts = [bounds[0] + i * step for i in range(1, pieces)]
            for lo_key, hi_key in zip([None, *cuts], [*cuts, None], strict=True):
                units.append(
                    Unit(
                        f"table:{t.oid}:key:{'' if lo_key is None else lo_key}",
                        "table",
                        [t.oid],
                        lo_key,
                        hi_key,
                        size=t.size_bytes // pieces,
                        key=t.key,
                    )
                )
        elif t.size_bytes < SMALL_BYTES:
            if batch and (len(batch) >= BATCH_TABLES or sum(b.size_bytes for b in batch) + t.size_bytes > BATCH_BYTES):
                flush()
            batch.append(t)
        else:
            units.append(Unit(f"table:{t.oid}", "table", [t.oid], size=t.size_bytes))
    flush()
    for i in range(0, len(objects), _LO_BATCH):
        chunk = list(objects[i : i + _LO_BATCH])
        units.append(Unit(f"lo:{chunk[0]}", "large-objects", [], objects=chunk))
    return units


# --- the copy --------------------------------------------------------------------------------------


@dataclass
class StreamResult:
    tables: int = 0
    tables_binary: int = 0  # copied in binary format
    rows: int = 0
    bytes: int = 0
    units: int = 0
    units_skipped: int = 0  # done by an earlier attempt
    items: int = 0
    items_skipped: int = 0
    sequences: int = 0
    large_objects: int = 0
    analyzed: list[tuple[str, str]] = field(default_factory=list)  # (schema, name), in this attempt or before
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "tables": self.tables,
            "tables_binary": self.tables_binary,
            "rows": self.rows,
            "bytes": self.bytes,
            "units": self.units,
            "units_skipped": self.units_skipped,
            "post_data_items": self.items,
            "post_data_items_skipped": self.items_skipped,
            "sequences": self.sequences,
            "large_objects": self.large_objects,
            "analyzed": [list(t) for t in self.analyzed],
            "timings": dict(self.seconds),
        }


def _reader_failure(exc: StepFailed) -> str:
    """psql's own error line (ERROR: …) when it gave one, else how it ended."""
    lines = [line for line in (exc.detail or "").splitlines() if "ERROR:" in line or "FATAL:" in line]
    return lines[-1].split(":", 1)[-1].strip() if lines else exc.message


class _Failed(Exception):
    def __init__(self, error: StepFailed) -> None:
        super().__init__(error.message)
        self.error = error


class _Copy:
    """One database's copy: the shared state of its workers."""

    def __init__(
        self,
        source: Endpoint | ResolvedEndpoint,
        target: Endpoint | ResolvedEndpoint,
        source_db: str,
        target_db: str,
        *,
        snapshot: str,
        tables: dict[int, q.CopyTable],
        units: list[Unit],
        done: set[str],
        post: PostData,
        table_ids: dict[int, int],
        owner: bool,
        privileges: bool,
        cancel: threading.Event,
        on_progress: Callable[[float], None],
        log: Log,
        reader: CopyReader | None = None,
        analyze: bool = False,
        partitions: dict[int, list[int]] | None = None,
    ) -> None:
        partitions = partitions or {}
        self.source, self.target, self.source_db, self.target_db = source, target, source_db, target_db
        self.reader = reader
        self.children: set[process.OutputStream] = set()
        self.snapshot = snapshot
        self.tables = tables
        self.owner, self.privileges = owner, privileges
        self.cancel = cancel
        self.on_progress = on_progress
        self.log = log
        self.result = StreamResult()
        self.lock = threading.Condition()
        self.failure: BaseException | None = None
        self.connections: set[Connection] = set()
        self.done = done
        # Work left: units to copy, and post-data items waiting for their tables and items.
        self.queue = [u for u in units if u.id not in done]
        self.result.units_skipped = len(units) - len(self.queue)
        self.pending_units: dict[int, int] = {}  # table OID -> its units not yet copied
        for u in self.queue:
            for oid in u.tables:
                self.pending_units[oid] = self.pending_units.get(oid, 0) + 1
        self.tables_done = len(tables) - len(self.pending_units)
        self.table_ids = table_ids  # dump id of a TABLE entry -> the table's OID
        self.partitions = partitions  # a partitioned table's OID -> the partitions under it
        self.preamble = post.preamble
        self.waiting: dict[int, PostItem] = {}  # items not started, by dump id
        self.items_done: set[int] = set()
        for item in post.items:
            if f"item:{item.dump_id}" in done:
                self.items_done.add(item.dump_id)
            else:
                self.waiting[item.dump_id] = item
        self.result.items_skipped = len(self.items_done)
        self.running_items = 0
        self.running_other = 0  # items (and ANALYZEs) running that are not foreign keys
        self.running_units = 0
        self.last_unit_at: float | None = None  # when the last unit of data committed
        self.large_object_info: list[q.LargeObject] = []
        # Readiness, kept as events happen (thousands of items: no rescans): what each waiting item
        # still waits for, and who waits for each item and table.
        self.unmet: dict[int, int] = {}
        self.item_waiters: dict[int, list[int]] = {}  # item dump id -> items waiting for it
        self.table_waiters: dict[int, list[int]] = {}  # table OID -> items waiting for its data
        self.leaves_left: dict[int, int] = {}  # partitioned table -> its partitions still copying
        self.parents: dict[int, list[int]] = {}  # partition -> the partitioned tables above it
        for parent, leaves in partitions.items():
            self.leaves_left[parent] = sum(1 for leaf in leaves if self.pending_units.get(leaf, 0))
            for leaf in leaves:
                self.parents.setdefault(leaf, []).append(parent)
        self.ready: deque[int] = deque()  # items every dependency of which is done (not foreign keys)
        self.keys_ready: list[int] = []  # foreign keys likewise: they start when nothing else is left
        self.waiting_other = 0  # waiting items that are not foreign keys
        post_ids = {i.dump_id for i in post.items}
        for item in self.waiting.values():
            if item.kind != "FK CONSTRAINT":
                self.waiting_other += 1
            unmet = 0
            for dep in item.depends_on:
                if dep in post_ids:
                    if dep not in self.items_done:
                        unmet += 1
                        self.item_waiters.setdefault(dep, []).append(item.dump_id)
                elif dep in table_ids and not self._loaded(table_ids[dep]):
                    unmet += 1
                    self.table_waiters.setdefault(table_ids[dep], []).append(item.dump_id)
            self.unmet[item.dump_id] = unmet
            if not unmet:
                self._now_ready(item)
        # ANALYZE of each table once its data and its own post-data items (indexes: an expression
        # index's statistics come from the ANALYZE after it) are in, beside the copies still running.
        self.analyze = analyze
        self.table_items: dict[int, set[int]] = {}  # table OID -> its own items not yet done
        if analyze:
            for item in self.waiting.values():
                if item.kind == "FK CONSTRAINT":
                    continue
                for dep in item.depends_on:
                    if dep in table_ids:
                        self.table_items.setdefault(table_ids[dep], set()).add(item.dump_id)
        self.to_analyze = {oid for oid in tables if analyze and f"analyze:{oid}" not in done}
        self.analyzed = [oid for oid in tables if analyze and f"analyze:{oid}" in done]
        self.analyze_ready: list[int] = []
        for oid in list(self.to_analyze):
            self._check_analyze(oid)

    # -- scheduling (under self.lock) --

    def _now_ready(self, item: PostItem) -> None:
        if item.kind == "FK CONSTRAINT":
            self.keys_ready.append(item.dump_id)
        else:
            self.ready.append(item.dump_id)

    def _met(self, waiters: list[int] | None) -> None:
        for dump_id in waiters or ():
            self.unmet[dump_id] -= 1
            if not self.unmet[dump_id]:
                self._now_ready(self.waiting[dump_id])

    def _table_loaded(self, oid: int) -> None:
        """Every unit of this table is copied: what waits for it (and for a partitioned table all of
        whose partitions are now in) may start."""
        self._met(self.table_waiters.pop(oid, None))
        self._check_analyze(oid)
        for parent in self.parents.get(oid, ()):
            self.leaves_left[parent] -= 1
            if not self.leaves_left[parent] and not self.pending_units.get(parent, 0):
                self._met(self.table_waiters.pop(parent, None))

    def _small(self, item: PostItem) -> bool:
        """Every table the item is about is small: such items go several to a round trip."""
        for dep in item.depends_on:
            oid = self.table_ids.get(dep)
            if oid is not None:
                table = self.tables.get(oid)
                if table is None or table.size_bytes >= SMALL_BYTES:
                    return False
        return True

    def _check_analyze(self, oid: int) -> None:
        if oid in self.to_analyze and not self.table_items.get(oid) and not self.pending_units.get(oid, 0):
            self.to_analyze.discard(oid)
            self.analyze_ready.append(oid)

    def _loaded(self, oid: int) -> bool:
        if self.pending_units.get(oid, 0):
            return False
        return not any(self.pending_units.get(leaf, 0) for leaf in self.partitions.get(oid, ()))

    def _take(self, dump_ids: list[int]) -> list[PostItem]:
        items = [self.waiting.pop(d) for d in dump_ids]
        self.running_items += 1
        others = sum(1 for i in items if i.kind != "FK CONSTRAINT")
        self.waiting_other -= others
        if others:
            self.running_other += 1
        return items

    def _next(self) -> tuple[str, Any] | None:
        """The next piece of work, or None when everything is done; waits while work is blocked."""
        with self.lock:
            while True:
                if self.failure is not None or self.cancel.is_set():
                    return None
                if self.ready:
                    first = self.ready.popleft()
                    taken = [first]
                    if self._small(self.waiting[first]):
                        while self.ready and len(taken) < ITEM_BATCH and self._small(self.waiting[self.ready[0]]):
                            taken.append(self.ready.popleft())
                    return ("items", self._take(taken))
                if self.analyze_ready:
                    batch, self.analyze_ready = self.analyze_ready[:ANALYZE_BATCH], self.analyze_ready[ANALYZE_BATCH:]
                    self.running_items += 1
                    self.running_other += 1
                    return ("analyze", batch)
                if self.queue:
                    self.running_units += 1
                    return ("unit", self.queue.pop(0))
                if (
                    self.keys_ready
                    and not self.running_units
                    and not self.running_other
                    and not self.waiting_other
                    and not self.analyze_ready
                ):
                    # Last: a key may reference a partitioned table whose unique index is valid only
                    # once every partition's index is attached, which the archive does not always say.
                    return ("items", self._take([self.keys_ready.pop(0)]))
                if not self.waiting and not self.running_items and not self.running_units:
                    return None
                if not self.running_items and not self.running_units:
                    # Nothing runs and nothing can start: an item depends on something never done.
                    stuck = ", ".join(i.about for i in list(self.waiting.values())[:3])
                    self.failure = _Failed(
                        StepFailed(f"{self.target_db}: post-data items wait for what never comes: {stuck}")
                    )
                    self.lock.notify_all()
                    return None
                self.lock.wait(0.5)

    def _unit_done(self, unit: Unit, rows: int, nbytes: int) -> None:
        with self.lock:
            self.last_unit_at = time.monotonic()
            self.running_units -= 1
            self.result.units += 1
            self.result.rows += rows
            self.result.bytes += nbytes
            for oid in unit.tables:
                left = self.pending_units.get(oid, 0) - 1
                if left <= 0:
                    self.pending_units.pop(oid, None)
                    self.tables_done += 1
                    self._table_loaded(oid)
                else:
                    self.pending_units[oid] = left
            done = self.tables_done
            self.lock.notify_all()
        self.on_progress(float(done))

    def _items_done(self, items: list[PostItem]) -> None:
        with self.lock:
            self.running_items -= 1
            if any(i.kind != "FK CONSTRAINT" for i in items):
                self.running_other -= 1
            for item in items:
                self.items_done.add(item.dump_id)
                self.result.items += 1
                self._met(self.item_waiters.pop(item.dump_id, None))
                for dep in item.depends_on:
                    oid = self.table_ids.get(dep)
                    if oid is not None and oid in self.table_items:
                        self.table_items[oid].discard(item.dump_id)
                        self._check_analyze(oid)
            self.lock.notify_all()

    def _analyzed(self, oids: list[int]) -> None:
        with self.lock:
            self.running_items -= 1
            self.running_other -= 1
            self.analyzed.extend(oids)
            self.lock.notify_all()

    # -- workers --

    def _connect(self, endpoint: Endpoint | ResolvedEndpoint, dbname: str) -> Connection:
        conn = connect(endpoint, dbname, autocommit=True, options=COPY_SESSION_OPTIONS)
        with self.lock:
            self.connections.add(conn)
        return conn

    def worker(self) -> None:
        sconn = tconn = None
        try:
            sconn = self._connect(self.source, self.source_db)
            join_snapshot(sconn, self.snapshot)
            tconn = self._connect(self.target, self.target_db)
            for statement in self.preamble:
                with contextlib.suppress(psycopg.errors.UndefinedObject):  # transaction_timeout before 17
                    tconn.execute(statement)
            while True:
                work = self._next()
                if work is None:
                    return
                kind, what = work
                if kind == "items":
                    self._run_items(tconn, what)
                    self._items_done(what)
                elif kind == "analyze":
                    self._run_analyze(tconn, what)
                    self._analyzed(what)
                else:
                    rows, nbytes = self._copy_unit(sconn, tconn, what)
                    self._unit_done(what, rows, nbytes)
        except BaseException as exc:  # handed to the main thread as the step's failure
            with self.lock:
                if self.failure is None:
                    self.failure = exc
                self.lock.notify_all()
        finally:
            for conn in (sconn, tconn):
                if conn is not None:
                    with self.lock:
                        self.connections.discard(conn)
                    with contextlib.suppress(Exception):
                        conn.close()

    def _copy_unit(self, sconn: Connection, tconn: Connection, unit: Unit) -> tuple[int, int]:
        if unit.kind == "large-objects":
            return self._copy_large_objects(sconn, tconn, unit), 0
        rows = nbytes = 0
        tconn.execute("BEGIN")
        try:
            for oid in unit.tables:
                table = self.tables[oid]
                freeze = unit.kind == "table" and unit.whole and table.size_bytes >= FREEZE_BYTES
                if freeze:
                    tconn.execute(q.truncate_only(table))
                r, b = self._copy_table(sconn, tconn, table, unit, freeze=freeze)
                rows += r
                nbytes += b
            tconn.execute(q.mark_done([unit.id], self.snapshot))
            tconn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                tconn.execute("ROLLBACK")
            raise
        return rows, nbytes

    def _copy_table(
        self, sconn: Connection, tconn: Connection, table: q.CopyTable, unit: Unit, *, freeze: bool
    ) -> tuple[int, int]:
        if self.reader is not None and unit.kind == "table" and unit.size >= READER_BYTES:
            return self._copy_through_psql(self.reader, sconn, tconn, table, unit, freeze=freeze)
        return self._copy_table_here(sconn, tconn, table, unit, freeze=freeze)

    def _copy_table_here(
        self, sconn: Connection, tconn: Connection, table: q.CopyTable, unit: Unit, *, freeze: bool
    ) -> tuple[int, int]:
        try:
            rows, nbytes = copy_rows(
                sconn, tconn, table, unit.lo, unit.hi, key=unit.key, freeze=freeze, cancel=self.cancel
            )
        except psycopg.Error as exc:
            raise self._failed(f"copying table {table.label} of database {self.source_db!r}", exc) from None
        return rows, nbytes

    def _failed(self, what: str, exc: psycopg.Error) -> BaseException:
        """What a worker raises when a statement of ``what`` failed (an interruption, if it was ours)."""
        if self.cancel.is_set():
            return Interrupted("interrupted")
        return _Failed(
            StepFailed(
                f"{what} failed: {first_line(exc)}",
                hint="see the log in the work directory; fix the cause, then resume",
            )
        )

    def _copy_through_psql(
        self, reader: CopyReader, sconn: Connection, tconn: Connection, table: q.CopyTable, unit: Unit, *, freeze: bool
    ) -> tuple[int, int]:
        """The unit read by psql in the snapshot, written here in chunks of a megabyte. The target's
        transaction commits (in ``_copy_unit``) only after psql ended well: data cut short by a
        failed or killed reader would otherwise load as if complete."""
        if not isinstance(self.source, ResolvedEndpoint):
            return self._copy_table_here(sconn, tconn, table, unit, freeze=freeze)
        copy = q.copy_out(table, unit.lo, unit.hi, key=unit.key).as_string(sconn)
        encoding = tconn.info.parameter_status("client_encoding") or "UTF8"
        command = reader.command(self.source, self.source_db, self.snapshot, copy, encoding)
        nbytes = 0
        try:
            with process.output_stream(command, on_stderr=lambda line: self.log("psql", line)) as child:
                with self.lock:
                    self.children.add(child)
                try:
                    with tconn.cursor() as tcur, tcur.copy(q.copy_in(table, freeze=freeze)) as into:
                        for block in child.chunks():
                            if self.cancel.is_set():
                                raise Interrupted("interrupted")
                            into.write(block)
                            nbytes += len(block)
                        child.check_ended()  # a killed reader's data ends early: fail the COPY
                    rows = max(tcur.rowcount, 0)
                finally:
                    with self.lock:
                        self.children.discard(child)
        except (psycopg.Error, StepFailed) as exc:
            if self.cancel.is_set():
                raise Interrupted("interrupted") from None
            why = first_line(exc) if isinstance(exc, psycopg.Error) else _reader_failure(exc)
            raise _Failed(
                StepFailed(
                    f"copying table {table.label} of database {self.source_db!r} failed: {why}",
                    hint="see the log in the work directory; fix the cause, then resume",
                )
            ) from None
        return rows, nbytes

    def _copy_large_objects(self, sconn: Connection, tconn: Connection, unit: Unit) -> int:
        properties = {lo.oid: lo for lo in self.large_object_info if lo.oid in set(unit.objects)}
        tconn.execute("BEGIN")
        try:
            left = list(unit.objects)
            offset = 0
            first = True
            while left:
                pieces = q.read_large_objects(sconn, left, offset)
                if first:
                    q.create_large_objects(tconn, pieces)
                    first = False
                else:
                    for oid, data in pieces.items():
                        if data:
                            q.append_large_object(tconn, oid, offset, data)
                left = [oid for oid, data in pieces.items() if len(data) == q.LO_CHUNK]
                offset += q.LO_CHUNK
            for oid in unit.objects:
                lo = properties.get(oid)
                if lo is not None:
                    for statement in q.large_object_properties(lo, owner=self.owner, privileges=self.privileges):
                        tconn.execute(statement)
            tconn.execute(q.mark_done([unit.id], self.snapshot))
            tconn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                tconn.execute("ROLLBACK")
            raise
        with self.lock:
            self.result.large_objects += len(unit.objects)
        return 0

    def _run_items(self, tconn: Connection, items: list[PostItem]) -> None:
        """Several items of small tables in one transaction and round trip, with their progress
        records; if that fails, each again on its own, so that the one that fails is the one named."""
        if len(items) == 1:
            self._run_item(tconn, items[0])
            return
        if self.cancel.is_set():
            raise Interrupted("interrupted")
        for item in items:
            self.log("sql", item.sql.decode("utf-8", "replace").strip())
        record = q.mark_done([f"item:{i.dump_id}" for i in items], self.snapshot).as_bytes(tconn)
        body = b"".join(i.sql + b"\n;\n" for i in items)
        try:
            tconn.execute(b"BEGIN;\n" + body + record + b";\nCOMMIT")
        except psycopg.Error:
            with contextlib.suppress(Exception):
                tconn.execute("ROLLBACK")
            if self.cancel.is_set():
                raise Interrupted("interrupted") from None
            for item in items:
                self._run_item(tconn, item)

    def _run_item(self, tconn: Connection, item: PostItem) -> None:
        if self.cancel.is_set():
            raise Interrupted("interrupted")
        self.log("sql", item.sql.decode("utf-8", "replace").strip())
        try:
            # One round trip: the item and its progress record commit together (thousands of small
            # tables have thousands of items).
            record = q.mark_done([f"item:{item.dump_id}"], self.snapshot).as_bytes(tconn)
            tconn.execute(b"BEGIN;\n" + item.sql + b"\n;\n" + record + b";\nCOMMIT")
        except psycopg.Error as exc:
            with contextlib.suppress(Exception):
                tconn.execute("ROLLBACK")
            if self.cancel.is_set():
                raise Interrupted("interrupted") from None
            detail = getattr(exc, "diag", None)
            raise _Failed(
                StepFailed(
                    f"restoring {item.about} into database {self.target_db!r} failed: {first_line(exc)}",
                    detail=(item.sql.decode("utf-8", "replace").strip()[-2000:]),
                    hint=(detail.message_hint if detail is not None and detail.message_hint else None)
                    or "see the log in the work directory; fix the cause, then resume",
                )
            ) from None

    def _run_analyze(self, tconn: Connection, oids: list[int]) -> None:
        if self.cancel.is_set():
            raise Interrupted("interrupted")
        tables = [self.tables[oid] for oid in oids]
        self.log("sql", "; ".join(q.analyze(t).as_string(tconn) for t in tables))
        try:
            # One round trip for the batch, committed with its progress records (a resume skips them).
            tconn.execute(q.analyze_tables(tables, [f"analyze:{oid}" for oid in oids], self.snapshot))
        except psycopg.Error as exc:
            with contextlib.suppress(Exception):
                tconn.execute("ROLLBACK")
            raise self._failed(f"ANALYZE in database {self.target_db!r}", exc) from None

    def cancel_all(self) -> None:
        with self.lock:
            conns = list(self.connections)
            children = list(self.children)
        for child in children:
            child.stop()
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.cancel_safe(timeout=5)


def stream_database(
    source: Endpoint | ResolvedEndpoint,
    target: Endpoint | ResolvedEndpoint,
    source_db: str,
    target_db: str,
    *,
    tables: frozenset[int],
    table_ids: dict[int, int],
    sequences: frozenset[int],
    matviews: Sequence[int] = (),
    large_objects: bool,
    post_data: bytes,
    snapshot: Snapshot | None,
    jobs: int,
    owner: bool = True,
    privileges: bool = True,
    cancel: threading.Event,
    on_progress: Callable[[float], None] = lambda _done: None,
    log: Log = lambda _kind, _text: None,
    reader: CopyReader | None = None,
    analyze: bool = False,
) -> StreamResult:
    """Copy ``tables`` (source OIDs) and run the post-data items; see the module's docs. With
    ``analyze``, each table is analyzed once it is in, with its indexes (``StreamResult.analyzed``)."""
    started = time.monotonic()
    own = snapshot is None
    snap = Snapshot.open(source, source_db) if snapshot is None else snapshot
    try:
        with contextlib.closing(connect(target, target_db, options=COPY_SESSION_OPTIONS)) as tconn:
            resumed = q.has_progress(tconn)
            if resumed:
                # A killed attempt's sessions may still hold what they were loading.
                q.end_other_sessions(tconn)
            q.create_progress(tconn)
            done = q.done_ids(tconn)
            info = q.tables_to_copy(snap.conn, tables)
            if server_version(tconn).major >= server_version(snap.conn).major:
                info = with_binary(info, q.target_column_types(tconn, [t for t in info if t.binary_types]))
            partitions = q.partition_leaves(snap.conn, tables)
            by_oid = {t.oid: t for t in info}
            objects = q.large_objects(snap.conn) if large_objects else []
            recorded = q.recorded_units(tconn) if resumed else []
            if recorded:
                units = [Unit.from_spec(u) for u in recorded]
            else:
                units = plan_units(
                    info,
                    [lo.oid for lo in objects],
                    split=q.splits_by_block(snap.conn),
                    jobs=jobs,
                    key_bounds=lambda t: q.key_bounds(snap.conn, t),
                )
                q.record_units(tconn, [(u.id, u.spec()) for u in units])
        post = post_data_items(post_data)
        copy = _Copy(
            source,
            target,
            source_db,
            target_db,
            snapshot=snap.id,
            tables=by_oid,
            units=units,
            done=done,
            post=post,
            table_ids=table_ids,
            owner=owner,
            privileges=privileges,
            cancel=cancel,
            on_progress=on_progress,
            log=log,
            reader=reader,
            analyze=analyze,
            partitions=partitions,
        )
        copy.large_object_info = objects
        copy.result.tables = len(by_oid)
        copy.result.tables_binary = sum(1 for t in info if t.binary)
        if resumed:
            copy.result.notes.append(
                f"resumed: {copy.result.units_skipped} of {len(units)} unit(s) of data and "
                f"{copy.result.items_skipped} post-data item(s) were done by an earlier attempt"
            )
        if own:
            copy.result.notes.append(f"copied in a new snapshot taken at {snap.taken_at}")
        workers = [threading.Thread(target=copy.worker, name=f"copy-{i}", daemon=True) for i in range(max(1, jobs))]
        for w in workers:
            w.start()
        while any(w.is_alive() for w in workers):
            if cancel.is_set() or copy.failure is not None:
                copy.cancel_all()
            for w in workers:
                w.join(timeout=0.2)
        if cancel.is_set():
            raise Interrupted("interrupted")
        if copy.failure is not None:
            failure = copy.failure
            if isinstance(failure, _Failed):
                raise failure.error
            raise failure
        # The data's time, and the post-data items still running after the last unit of data (the
        # indexes and constraints not overlapped with copies): where stream mode's time goes.
        ended = time.monotonic()
        data_end = copy.last_unit_at or started
        copy.result.seconds["copy"] = round(data_end - started, 3)
        copy.result.seconds["post-data"] = round(ended - data_end, 3)
        copy.result.analyzed = sorted((by_oid[o].schema, by_oid[o].name) for o in copy.analyzed if o in by_oid)
        _finish(snap, target, target_db, sequences, list(matviews), copy.result, cancel)
        copy.result.seconds["sequences+matviews"] = round(time.monotonic() - ended, 3)
        return copy.result
    finally:
        if own:
            snap.close()


def _finish(
    snap: Snapshot,
    target: Endpoint | ResolvedEndpoint,
    target_db: str,
    sequences: frozenset[int],
    matviews: list[int],
    result: StreamResult,
    cancel: threading.Event,
) -> None:
    """Sequences as of the snapshot, materialized views refreshed (in the archive's order, which is
    their dependencies'), and a synchronous commit that makes every unit durable."""
    values = q.sequence_values(snap.conn, sequences)
    views = q.populated_matviews(snap.conn, matviews)
    with contextlib.closing(connect(target, target_db, options=_FINISH_OPTIONS)) as tconn:
        if values:
            tconn.execute(q.set_sequences(values))
        done = q.done_ids(tconn)
        for schema, name in views:
            if cancel.is_set():
                raise Interrupted("interrupted")
            key = f"refresh:{schema}.{name}"
            if key in done:
                continue
            tconn.execute("BEGIN")
            tconn.execute(q.refresh_matview(schema, name))
            tconn.execute(q.mark_done([key], snap.id))
            tconn.execute("COMMIT")
        tconn.execute(q.mark_done(["sequences"], snap.id))  # synchronous: every unit before it is durable
        result.sequences = len(values)
