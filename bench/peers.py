"""Benchmark: pgshift against its peers (issue 16), one command.

    python bench/peers.py [--scale 1.0] [--runs 3] [--jobs 2] [--source-major 13] [--target-major 17]
                          [--shapes bulk,many,partitioned] [--methods classic,pipe,...]

Datasets (generated on the source server with generate_series, kept between invocations in a
cached source cluster under ``--cache-dir``; a dataset is rebuilt only when the comment on its
database, which records how it was made, differs from what this invocation asks for):

* ``bulk``: four tables with text, jsonb, numeric, timestamptz and bytea columns, primary keys,
  secondary and unique indexes, a check constraint, foreign keys, an identity column and a free
  sequence; ``events`` is over 1 GB at ``--scale 1.0`` so splitting one table matters;
* ``many``: ``bulk`` plus ``--tiny-tables`` (2,000) tiny tables, each with a primary key and 3 rows;
* ``partitioned``: a range-partitioned table (8 partitions and a default one) with a primary key,
  a secondary index and a foreign key, plus its referenced table.

Methods, timed interleaved (a, b, c, a, b, c …) into a freshly dropped target database, every one
ending with statistics on the target (``--no-analyze`` leaves ANALYZE out of all of them):

* ``classic``: the recipe, with the target's client: ``pg_dump -Fd -j N``, ``createdb -T template0``,
  ``pg_restore --exit-on-error -j N``, ``vacuumdb --analyze-only -j N``;
* ``pipe``: ``createdb -T template0``, ``pg_dump -Fc | pg_restore --exit-on-error``, ``vacuumdb``;
* ``pgcopydb-0.10`` / ``pgcopydb-0.18``: ``createdb``, ``pgcopydb clone --table-jobs N --index-jobs N``
  when installed (Debian's ``pgcopydb``; 0.18 as ``pgcopydb-0.18`` on PATH, see
  bench/build_pgcopydb.sh); left out with the reason when missing;
* ``pgshift-dump``: ``pgshift migrate --no-verify --jobs N --format json``;
* ``pgshift-stream``: the same with ``--mode stream``, when ``pgshift migrate --help`` lists ``--mode``;
* ``lower-bound``: ``createdb``; pre-data (``pg_dump --schema-only --snapshot``, ``pg_restore
  --section=pre-data``); N parallel ``COPY … TO STDOUT`` → ``COPY … FROM STDIN`` streams in one
  exported snapshot (psql pipes for big tables or ranges, psycopg on reused connections for small
  ones; tables over the split threshold cut into key or block ranges) and the sequences; post-data
  (``pg_restore --section=post-data -j N``); ``vacuumdb``: one phase after another.

Every run's result is checked against the source (exact row count of every table, columns, every
index present, valid and ready, every constraint present and validated, sequence values; with
``--digest first`` the first run's table contents too): a wrong result is FAILED, never timed.

Medians, ratios to ``classic``, median time per phase and pgshift's peak RSS go to stdout, with a
Markdown table for docs/performance.md; raw results to bench/results/peers.json (not committed).
Connection strings come from the lab servers (trust on 127.0.0.1): no password on any command line.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import json
import math
import os
import pwd
import queue
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pgshift import paths
from pgshift.lab import LabServer, lab_server
from pgshift.lab.binaries import server_binaries
from pgshift.lab.server import FAST_SETTINGS, lab_user
from pgshift.process import Command, base_env, run, spawn

PG_CACHE = Path("/var/cache/pgshift/pg")
RESULTS = Path(__file__).parent / "results"
DATASET_VERSION = 1  # bump when a generator changes: cached datasets are rebuilt
SHAPES = ("bulk", "many", "partitioned")
METHODS = ("classic", "pipe", "pgcopydb-0.10", "pgcopydb-0.18", "pgshift-dump", "pgshift-stream", "lower-bound")
# Both servers get the same settings, so no method gains from a server the others do not have.
# max_locks_per_transaction: pg_dump locks every table of the many shape in one transaction.
SETTINGS = {
    "shared_buffers": "256MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "30min",
    "maintenance_work_mem": "256MB",
    "max_locks_per_transaction": "256",
}
# Below this a table (or range) is copied through psycopg on a reused connection: two psql
# processes cost ~10 ms, which is more than a tiny table's whole copy.
PIPE_MIN_BYTES = 8 * 2**20


class MethodFailed(Exception):
    """A method did not finish: its program failed, or its result differs from the source."""


# --- the cached source cluster ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def cached_source(major: int, root: Path, settings: dict[str, str]) -> Iterator[LabServer]:
    """A source server whose data directory survives the run, so datasets are built once.

    pgshift.lab's servers are deleted when they stop; this one is started with the same binaries,
    user and settings but keeps ``root/data``. Its postmaster gets SIGINT (a clean fast shutdown)
    when this process dies.
    """
    installation = server_binaries(major)
    bin_dir = installation.bin_dir
    data = root / "data"
    user = lab_user()
    ids = pwd.getpwnam(user) if user else None
    if not (data / "PG_VERSION").exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        if ids:
            os.chown(root, ids.pw_uid, ids.pw_gid)
        argv = [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8"]
        argv += ["--auth-local=trust", "--auth-host=trust", "--no-sync"]
        run(Command(tuple(argv), env=base_env(), run_as=user), timeout=300)
    sock = root / "sock"
    sock.mkdir(exist_ok=True)
    if ids:
        os.chown(sock, ids.pw_uid, ids.pw_gid)
    port = _free_port()
    conf = {**FAST_SETTINGS, **settings, "listen_addresses": "127.0.0.1", "unix_socket_directories": str(sock)}
    argv = [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port)]
    for key, value in conf.items():
        argv += ["-c", f"{key}={value.strip(chr(39))}"]
    log = root / "server.log"
    proc = spawn(Command(tuple(argv), env=base_env(), run_as=user), log_path=log, die_with_parent=signal.SIGINT)
    server = LabServer(version=installation.version, bin_dir=bin_dir, root=root, port=port, process=proc)
    try:
        deadline = time.monotonic() + 300  # crash recovery of a killed run can take a while
        while True:
            if proc.poll() is not None:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                raise SystemExit(f"the cached source server in {root} did not start:\n{tail}")
            try:
                with server.connect(connect_timeout=2):
                    break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the cached source server in {root} did not accept connections") from None
                time.sleep(0.2)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGQUIT)
                proc.wait()


# --- datasets ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    accounts: int
    orders: int
    events: int
    attachments: int
    sensors: int
    measurements: int

    @staticmethod
    def at(scale: float) -> Sizes:
        # Row counts at scale 1.0, chosen so events is ~1.1 GB of heap and bulk ~2 GB with indexes.
        def n(base: int) -> int:
            return max(100, int(base * scale))

        return Sizes(n(250_000), n(1_500_000), n(4_500_000), n(20_000), n(2_000), n(3_000_000))


def _bulk_sql(s: Sizes) -> list[str]:
    return [
        """CREATE TABLE accounts (
               id integer PRIMARY KEY, name text NOT NULL, email text NOT NULL,
               balance numeric(14, 2) NOT NULL DEFAULT 0, created_at timestamptz NOT NULL, profile jsonb)""",
        f"""INSERT INTO accounts
               SELECT g, 'account ' || g, 'a' || g || '@example.org', round((g % 1000003) / 7.0, 2),
                      timestamptz '2019-01-01 00:00+00' + g * interval '61 seconds',
                      jsonb_build_object('tier', g % 5, 'tags', jsonb_build_array('t' || g % 11, 't' || g % 17),
                                         'newsletter', g % 2 = 0)
               FROM generate_series(1, {s.accounts}) g""",
        "CREATE UNIQUE INDEX accounts_email ON accounts (email)",
        "CREATE INDEX accounts_created ON accounts (created_at)",
        """CREATE TABLE orders (
               id bigint PRIMARY KEY, account_id integer NOT NULL REFERENCES accounts,
               amount numeric(12, 2) NOT NULL CHECK (amount >= 0), status text NOT NULL,
               placed_at timestamptz NOT NULL, items jsonb NOT NULL, note text)""",
        f"""INSERT INTO orders
               SELECT g, 1 + g % {s.accounts}, round(((g::bigint * 7919) % 1000000) / 100.0, 2),
                      (ARRAY['new', 'paid', 'shipped', 'returned'])[1 + g % 4],
                      timestamptz '2021-01-01 00:00+00' + g * interval '3 seconds',
                      jsonb_build_array(jsonb_build_object('sku', 'S' || g % 9973, 'qty', 1 + g % 4),
                                        jsonb_build_object('sku', 'S' || g % 7919, 'qty', 1 + g % 3)),
                      CASE WHEN g % 3 = 0 THEN md5(g::text) END
               FROM generate_series(1, {s.orders}) g""",
        "CREATE INDEX orders_account ON orders (account_id)",
        "CREATE INDEX orders_placed ON orders (placed_at)",
        """CREATE TABLE events (
               id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders,
               kind text NOT NULL, at timestamptz NOT NULL, payload jsonb NOT NULL, body bytea NOT NULL,
               note text NOT NULL)""",
        f"""INSERT INTO events (id, order_id, kind, at, payload, body, note)
               SELECT g, 1 + g % {s.orders}, 'kind-' || g % 13,
                      timestamptz '2022-01-01 00:00+00' + g * interval '1 second',
                      jsonb_build_object('seq', g, 'ok', g % 7 <> 0, 'score', round((g % 1000) / 3.0, 3),
                                         'ref', md5(g::text)),
                      decode(md5((g * 31)::text) || md5((g * 37)::text), 'hex'),
                      md5(g::text) || ' ' || md5((g * 17)::text)
               FROM generate_series(1, {s.events}) g""",
        f"SELECT setval(pg_get_serial_sequence('events', 'id'), {s.events})",
        "CREATE INDEX events_order ON events (order_id)",
        "CREATE INDEX events_at ON events (at)",
        # Toasted, incompressible bytea: ~4 KB per row of md5 output.
        """CREATE TABLE attachments (
               id integer PRIMARY KEY, event_id bigint NOT NULL, name text NOT NULL, content bytea NOT NULL)""",
        f"""INSERT INTO attachments
               SELECT g, 1 + g * 97 % {s.events}, 'file-' || g || '.bin',
                      (SELECT decode(string_agg(md5((g * 1000 + i)::text), ''), 'hex') FROM generate_series(1, 256) i)
               FROM generate_series(1, {s.attachments}) g""",
        "CREATE INDEX attachments_event ON attachments (event_id)",
        "CREATE SEQUENCE invoice_no START 1000",
        "SELECT setval('invoice_no', 123456)",
    ]


def _tiny_sql(count: int) -> list[str]:
    # Batches of 200 tables: one transaction creating all 2,000 would need more lock slots than the
    # server has.
    batches = []
    for first in range(1, count + 1, 200):
        last = min(count, first + 199)
        batches.append(
            f"""DO $$ BEGIN FOR i IN {first}..{last} LOOP
                 EXECUTE format('CREATE TABLE tiny.t%s (id integer PRIMARY KEY, label text NOT NULL,
                                 qty numeric(8, 2), at timestamptz)', lpad(i::text, 4, '0'));
                 EXECUTE format('INSERT INTO tiny.t%s SELECT g, ''item '' || g, g * 1.5,
                                 timestamptz ''2024-01-01 00:00+00'' + g * interval ''1 day''
                                 FROM generate_series(1, 3) g', lpad(i::text, 4, '0'));
               END LOOP; END $$"""
        )
    return ["CREATE SCHEMA tiny", *batches]


def _partitioned_sql(s: Sizes, major: int) -> list[str]:
    # PostgreSQL 11 added indexes, primary keys and foreign keys on partitioned tables and the
    # default partition; a 10 source gets them per partition instead.
    partitions = [f"2024-{m:02d}-01" for m in (1, 4, 7, 10)] + [f"2025-{m:02d}-01" for m in (1, 4, 7, 10)]
    bounds = [*partitions, "2026-01-01"]
    out = [
        "CREATE TABLE sensors (id integer PRIMARY KEY, name text NOT NULL, site text NOT NULL)",
        f"INSERT INTO sensors SELECT g, 'sensor ' || g, 'site-' || g % 17 FROM generate_series(1, {s.sensors}) g",
        f"""CREATE TABLE measurements (
               id bigint NOT NULL, sensor_id integer NOT NULL {"REFERENCES sensors" if major >= 11 else ""},
               taken_at timestamptz NOT NULL, value numeric(10, 3) NOT NULL, reading jsonb NOT NULL,
               raw bytea, note text{", PRIMARY KEY (id, taken_at)" if major >= 11 else ""})
               PARTITION BY RANGE (taken_at)""",
    ]
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        name = f"measurements_p{i + 1}"
        out.append(
            f"CREATE TABLE {name} PARTITION OF measurements FOR VALUES FROM ('{lo} 00:00+00') TO ('{hi} 00:00+00')"
        )
        if major < 11:
            out.append(f"ALTER TABLE {name} ADD PRIMARY KEY (id, taken_at)")
            out.append(f"CREATE INDEX {name}_sensor ON {name} (sensor_id, taken_at)")
    if major >= 11:
        out.append("CREATE TABLE measurements_other PARTITION OF measurements DEFAULT")
    out += [
        # Two years of rows spread evenly, plus a few outside every range for the default partition.
        f"""INSERT INTO measurements
               SELECT g, 1 + g % {s.sensors},
                      timestamptz '2024-01-01 00:00+00'
                          + (g % {s.measurements}) * (interval '730 days' / {s.measurements}),
                      round((g % 100000) / 9.0, 3),
                      jsonb_build_object('unit', (ARRAY['C', 'kPa', 'lux'])[1 + g % 3], 'quality', g % 4),
                      CASE WHEN g % 5 = 0 THEN decode(md5(g::text), 'hex') END,
                      CASE WHEN g % 7 = 0 THEN 'checked ' || g END
               FROM generate_series(1, {s.measurements}) g""",
    ]
    if major >= 11:
        out += [
            f"""INSERT INTO measurements
                   SELECT {s.measurements} + g, 1, timestamptz '2030-01-01 00:00+00' + g * interval '1 hour',
                          g, '{{}}', NULL, NULL FROM generate_series(1, 100) g""",
            "CREATE INDEX measurements_sensor ON measurements (sensor_id, taken_at)",
        ]
    return out


def dataset_marker(shape: str, scale: float, tiny: int, major: int) -> str:
    extra = f" tiny={tiny}" if shape == "many" else ""
    return f"pgshift-bench dataset={shape} v={DATASET_VERSION} scale={scale:g}{extra} source={major}"


def _marker_of(server: LabServer, db: str) -> str | None:
    with server.connect() as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (db,)
        ).fetchone()
    return None if row is None else (row[0] or "")


def _run_sql(server: LabServer, db: str, statements: list[str]) -> None:
    with server.connect(db) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        for statement in statements:
            conn.execute(statement.encode())


def ensure_dataset(server: LabServer, shape: str, scale: float, tiny: int) -> dict[str, Any]:
    """Build ``shape`` unless the source already holds it made with the same parameters."""
    marker = dataset_marker(shape, scale, tiny, server.major)
    if _marker_of(server, shape) == marker:
        return {"cached": True, "generate_seconds": 0.0, **_dataset_size(server, shape)}
    started = time.monotonic()
    server.execute(f'DROP DATABASE IF EXISTS "{shape}"')
    sizes = Sizes.at(scale)
    if shape == "many":
        bulk = ensure_dataset(server, "bulk", scale, tiny)
        # A file copy of bulk: the many shape is bulk plus its tiny tables.
        server.execute('CREATE DATABASE "many" TEMPLATE "bulk"')
        _run_sql(server, shape, _tiny_sql(tiny))
        del bulk
    else:
        server.execute(f'CREATE DATABASE "{shape}"')
        _run_sql(server, shape, _bulk_sql(sizes) if shape == "bulk" else _partitioned_sql(sizes, server.major))
    # Hint bits and visibility set now, so no method pays for them on its first read.
    _run_sql(server, shape, ["VACUUM (FREEZE, ANALYZE)", "CHECKPOINT"])
    # The marker goes last: a dataset whose generation was interrupted has none and is rebuilt.
    server.execute(f"COMMENT ON DATABASE \"{shape}\" IS '{marker}'")
    return {"cached": False, "generate_seconds": round(time.monotonic() - started, 1), **_dataset_size(server, shape)}


def _dataset_size(server: LabServer, db: str) -> dict[str, Any]:
    with server.connect(db) as conn:
        row = conn.execute(
            """SELECT pg_database_size(current_database()),
                      (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')),
                      (SELECT max(pg_table_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema'))"""
        ).fetchone()
    assert row is not None
    return {"bytes": int(row[0]), "tables": int(row[1]), "largest_table_bytes": int(row[2] or 0)}


# --- the result checker -----------------------------------------------------------------------------

_USER = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'"


def shape_of(conn: psycopg.Connection[Any], *, digest: bool) -> dict[str, Any]:
    """What a correct copy must reproduce: rows, columns, indexes, constraints, sequences.

    Read with version-stable catalog columns only (no definition text whose spelling changes
    between majors, no 18 not-null constraint rows), so a correct cross-version move compares equal.
    """
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute("SET extra_float_digits = 3")
    tables = conn.execute(
        f"""SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'm') AND {_USER} ORDER BY 1"""
    ).fetchall()
    rows: dict[str, int] = {}
    digests: dict[str, str] = {}
    for (name,) in tables:
        rows[name] = int(conn.execute(f"SELECT count(*) FROM ONLY {name}".encode()).fetchone()[0])  # type: ignore[index]
        if digest:
            # Order-independent: a sum of per-row hashes of the rows' text form.
            got = conn.execute(
                f"""SELECT coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint), 0)::text
                    FROM ONLY {name} t""".encode()
            ).fetchone()
            digests[name] = str(got[0]) if got else ""
    columns = {
        f"{r[0]}.{r[1]}": [r[2], r[3], r[4]]
        for r in conn.execute(
            f"""SELECT format('%I.%I', n.nspname, c.relname), a.attname, format_type(a.atttypid, a.atttypmod),
                       a.attnotnull, a.attnum
                FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind IN ('r', 'p', 'm') AND a.attnum > 0 AND NOT a.attisdropped AND {_USER}"""
        ).fetchall()
    }
    for value in columns.values():
        value.pop()  # attnum only orders; a dropped column's gap is not a difference
    indexes = {
        r[0]: list(r[1:])
        for r in conn.execute(
            f"""SELECT format('%I.%I', n.nspname, ic.relname), format('%I.%I', tn.nspname, tc.relname), am.amname,
                       i.indisunique, i.indisprimary, i.indisvalid, i.indisready,
                       (SELECT string_agg(coalesce(a.attname, '(expr)'), ',' ORDER BY k.ord)
                        FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
                        LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum)
                FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_namespace n ON n.oid = ic.relnamespace
                JOIN pg_class tc ON tc.oid = i.indrelid JOIN pg_namespace tn ON tn.oid = tc.relnamespace
                JOIN pg_am am ON am.oid = ic.relam WHERE {_USER}"""
        ).fetchall()
    }
    constraints = {
        f"{r[0]}.{r[1]}": list(r[2:])
        for r in conn.execute(
            f"""SELECT format('%I.%I', tn.nspname, tc.relname), c.conname, c.contype::text, c.convalidated,
                       (SELECT string_agg(a.attname, ',' ORDER BY k.ord)
                        FROM unnest(c.conkey) WITH ORDINALITY k(attnum, ord)
                        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum),
                       CASE WHEN c.confrelid <> 0 THEN c.confrelid::regclass::text END
                FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
                JOIN pg_class tc ON tc.oid = c.conrelid JOIN pg_namespace tn ON tn.oid = tc.relnamespace
                WHERE c.contype IN ('p', 'u', 'f', 'c', 'x') AND {_USER}"""
        ).fetchall()
    }
    sequences = {
        r[0]: r[1]
        for r in conn.execute(
            "SELECT format('%I.%I', schemaname, sequencename), last_value FROM pg_sequences"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
    }
    out: dict[str, Any] = {
        "rows": rows,
        "columns": columns,
        "indexes": indexes,
        "constraints": constraints,
        "sequences": sequences,
    }
    if digest:
        out["digests"] = digests
    return out


def differences(expected: dict[str, Any], got: dict[str, Any], limit: int = 8) -> list[str]:
    """What ``got`` lacks or has wrong against ``expected``; empty when the copy is correct.

    Every index and constraint of the target must also be valid/validated, whatever the source says.
    """
    found: list[str] = []
    for section, want in expected.items():
        have = got.get(section, {})
        for key in sorted(set(want) | set(have)):
            if key not in have:
                found.append(f"{section}: {key} missing on the target")
            elif key not in want:
                found.append(f"{section}: {key} on the target only")
            elif want[key] != have[key]:
                found.append(f"{section}: {key}: source {want[key]!r}, target {have[key]!r}")
    for name, value in got.get("indexes", {}).items():
        if not (value[4] and value[5]):
            found.append(f"indexes: {name} is not valid and ready on the target")
    for name, value in got.get("constraints", {}).items():
        if not value[1]:
            found.append(f"constraints: {name} is not validated on the target")
    found = list(dict.fromkeys(found))
    return found[:limit] + ([f"… and {len(found) - limit} more"] if len(found) > limit else [])


# --- running children -------------------------------------------------------------------------------


@dataclass
class Child:
    returncode: int
    output: str
    maxrss_mb: float = 0.0
    hwm_mb: float = 0.0


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_child(argv: list[str], env: dict[str, str], log: list[str], *, measure: bool = False) -> Child:
    """Run a program with stdout/stderr in a file; with ``measure``, its peak memory.

    ``maxrss_mb`` is wait4's ru_maxrss: the peak of the process and of the children it waited for
    (pgshift's pg_dump/pg_restore). ``hwm_mb`` is the process's own VmHWM, sampled while it runs.
    """
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        hwm = [0]
        done = threading.Event()

        def sample() -> None:
            status = Path(f"/proc/{proc.pid}/status")
            while not done.is_set():
                with contextlib.suppress(OSError, ValueError):
                    for line in status.read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            hwm[0] = max(hwm[0], int(line.split()[1]))
                done.wait(0.1)

        sampler = threading.Thread(target=sample, daemon=True) if measure else None
        if sampler:
            sampler.start()
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
        done.set()
        if sampler:
            sampler.join()
        out.seek(0)
        text = out.read().decode(errors="replace")
    log.append(f"$ {shlex.join(argv)}\n{text}")
    return Child(proc.returncode, text, usage.ru_maxrss / 1024, hwm[0] / 1024)


def check_child(argv: list[str], env: dict[str, str], log: list[str]) -> Child:
    child = run_child(argv, env, log)
    if child.returncode != 0:
        raise MethodFailed(f"{Path(argv[0]).name} exited {child.returncode}:\n{_tail(child.output)}")
    return child


class Clock:
    """Seconds per phase of one run."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.phases[name] = round(self.phases.get(name, 0.0) + time.monotonic() - started, 3)


# --- methods ----------------------------------------------------------------------------------------


@dataclass
class Outcome:
    phases: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


class Methods:
    def __init__(self, args: argparse.Namespace, source: LabServer, target: LabServer, scratch: Path) -> None:
        self.args, self.source, self.target, self.scratch = args, source, target, scratch
        self.jobs = str(args.jobs)
        self.client = PG_CACHE / str(target.major) / "bin"
        self.env = base_env({"PGCONNECT_TIMEOUT": "10"})
        self.log: list[str] = []
        self.pgshift = shlex.split(args.pgshift) if args.pgshift else [sys.executable, "-m", "pgshift"]
        self.split_bytes = int(args.split_mb * 2**20)
        self._n = 0

    def src(self, db: str) -> str:
        return self.source.conninfo(db, with_password=False)

    def tgt(self, db: str = "postgres") -> str:
        return self.target.conninfo(db, with_password=False)

    def workdir(self, name: str) -> Path:
        self._n += 1
        return self.scratch / f"{self._n:03d}-{name}"

    def bin(self, program: str) -> str:
        return str(self.client / program)

    def createdb(self, db: str) -> None:
        check_child([self.bin("createdb"), "-T", "template0", f"--maintenance-db={self.tgt()}", db], self.env, self.log)

    def analyze(self, db: str, clock: Clock) -> None:
        if self.args.analyze:
            with clock.phase("analyze"):
                check_child(
                    [self.bin("vacuumdb"), "--analyze-only", "-j", self.jobs, "-d", self.tgt(db)], self.env, self.log
                )

    # classic recipe
    def classic(self, db: str) -> Outcome:
        clock, dump = Clock(), self.workdir("classic")
        try:
            with clock.phase("dump"):
                check_child(
                    [self.bin("pg_dump"), "-Fd", "-j", self.jobs, "-f", str(dump), "-d", self.src(db)],
                    self.env,
                    self.log,
                )
            with clock.phase("create"):
                self.createdb(db)
            with clock.phase("restore"):
                argv = [self.bin("pg_restore"), "--exit-on-error", "-j", self.jobs, "-d", self.tgt(db), str(dump)]
                check_child(argv, self.env, self.log)
        finally:
            shutil.rmtree(dump, ignore_errors=True)
        self.analyze(db, clock)
        return Outcome(clock.phases)

    def pipe(self, db: str) -> Outcome:
        clock = Clock()
        with clock.phase("create"):
            self.createdb(db)
        with clock.phase("dump+restore"), tempfile.TemporaryFile() as err1, tempfile.TemporaryFile() as err2:
            dump = subprocess.Popen(
                [self.bin("pg_dump"), "-Fc", "-d", self.src(db)], env=self.env, stdout=subprocess.PIPE, stderr=err1
            )
            restore = subprocess.Popen(
                [self.bin("pg_restore"), "--exit-on-error", "-d", self.tgt(db)],
                env=self.env,
                stdin=dump.stdout,
                stdout=subprocess.DEVNULL,
                stderr=err2,
            )
            assert dump.stdout is not None
            dump.stdout.close()
            rc_restore, rc_dump = restore.wait(), dump.wait()
            if rc_dump or rc_restore:
                err1.seek(0)
                err2.seek(0)
                text = err1.read().decode(errors="replace") + err2.read().decode(errors="replace")
                raise MethodFailed(f"pg_dump exited {rc_dump}, pg_restore exited {rc_restore}:\n{_tail(text)}")
        self.analyze(db, clock)
        return Outcome(clock.phases)

    # pgcopydb
    def pgcopydb(self, db: str, program: str, client: Path) -> Outcome:
        clock, work = Clock(), self.workdir("pgcopydb")
        with clock.phase("create"):
            self.createdb(db)
        argv = [program, "clone", "--source", self.src(db), "--target", self.tgt(db), "--dir", str(work)]
        argv += ["--table-jobs", self.jobs, "--index-jobs", self.jobs]
        argv += ["--split-tables-larger-than", f"{max(1, self.split_bytes // 2**20)}MB"]
        if "0.18" in program:
            argv += ["--restore-jobs", self.jobs]
            if not self.args.analyze:
                argv += ["--skip-vacuum", "--skip-analyze"]
        # pgcopydb finds pg_dump and pg_restore through pg_config.
        env = self.env | {"PG_CONFIG": str(client / "pg_config"), "TMPDIR": str(self.scratch)}
        try:
            with clock.phase("clone"):
                child = check_child(argv, env, self.log)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        summary = _pgcopydb_summary(child.output)
        phases = dict(clock.phases)
        clone = phases.pop("clone")
        # Its own wall-clock steps, in the order it runs them; what it does not time is "rest".
        for step, label in _PGCOPYDB_STEPS.items():
            seconds = _duration(summary.get(step, ""))
            if seconds is not None:
                phases[label] = round(phases.get(label, 0.0) + seconds, 3)
        phases["rest"] = round(clone - sum(v for k, v in phases.items() if k != "create"), 3)
        return Outcome(phases, {"summary": summary})

    # pgshift
    def pgshift_run(self, db: str, stream: bool) -> Outcome:
        work = self.workdir("pgshift")
        argv = [*self.pgshift, "migrate", self.src("postgres"), self.tgt(), "--database", db, "--jobs", self.jobs]
        argv += ["--no-verify", "--format", "json", "--workdir", str(work)]
        if stream:
            argv += ["--mode", "stream"]
        if not self.args.analyze:
            argv.append("--no-analyze")
        started = time.monotonic()
        child = run_child(argv, self.env, self.log, measure=True)
        wall = time.monotonic() - started
        shutil.rmtree(work, ignore_errors=True)
        report = _json_in(child.output)
        if child.returncode != 0 or report is None or not report.get("ok"):
            why = _pgshift_error(report) or _tail(child.output)
            raise MethodFailed(f"pgshift exited {child.returncode}: {why}")
        database = report["databases"][0]
        # Its steps as it timed them (stream mode splits the copy from the post-data after it).
        by_step = database.get("step_seconds") or database.get("seconds") or {}
        phases = {k: float(v) for k, v in by_step.items()}
        phases["globals"] = float((report.get("phases") or {}).get("globals", 0.0))
        # Interpreter start, connections, preflight, check's rules, the report.
        phases["rest"] = round(wall - sum(phases.values()), 3)
        return Outcome(
            phases,
            {
                "maxrss_mb": round(child.maxrss_mb, 1),
                "own_hwm_mb": round(child.hwm_mb, 1),
                "client": report.get("client"),
            },
        )

    # lower bound
    def lower_bound(self, db: str) -> Outcome:
        clock, work = Clock(), self.workdir("lower")
        work.mkdir()
        archive = work / "schema.dump"
        try:
            with clock.phase("create"):
                self.createdb(db)
            with psycopg.connect(self.src(db)) as leader:
                leader.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                leader.read_only = True
                snapshot = str(leader.execute("SELECT pg_export_snapshot()").fetchone()[0])  # type: ignore[index]
                with clock.phase("pre-data"):
                    argv = [self.bin("pg_dump"), "-Fc", "--schema-only", f"--snapshot={snapshot}", "-f", str(archive)]
                    check_child([*argv, "-d", self.src(db)], self.env, self.log)
                    argv = [
                        self.bin("pg_restore"),
                        "--exit-on-error",
                        "--section=pre-data",
                        "-d",
                        self.tgt(db),
                        str(archive),
                    ]
                    check_child(argv, self.env, self.log)
                with clock.phase("copy"):
                    items = _copy_items(leader, self.split_bytes, self.source.major)
                    _copy_all(self, db, snapshot, items)
                    _copy_sequences(leader, self.tgt(db))
            with clock.phase("post-data"):
                argv = [self.bin("pg_restore"), "--exit-on-error", "--section=post-data", "-j", self.jobs]
                check_child([*argv, "-d", self.tgt(db), str(archive)], self.env, self.log)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self.analyze(db, clock)
        return Outcome(clock.phases, {"copy_items": len(items)})


def _json_in(output: str) -> dict[str, Any] | None:
    """pgshift's JSON report: stdout and stderr share the file, so take the outermost object."""
    start, end = output.find("{\n"), output.rfind("\n}")
    if start < 0 or end < 0:
        return None
    try:
        value = json.loads(output[start : end + 2])
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _pgshift_error(report: dict[str, Any] | None) -> str | None:
    if not report:
        return None
    error = report.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    for database in report.get("databases") or []:
        if database.get("error"):
            return f"database {database.get('source')}: {database['error']}"
    return None


_PGCOPYDB_STEPS = {
    "Catalog Queries (table ordering, filtering, etc)": "catalog",
    "Dump Schema": "dump schema",
    "Prepare Schema": "pre-data",
    "COPY, INDEX, CONSTRAINTS, VACUUM (wall clock)": "copy+index+vacuum",
    "Reset Sequences": "post-data",
    "Finalize Schema": "post-data",
}


def _duration(text: str) -> float | None:
    """pgcopydb's durations: 226ms, 3s021, 1m02s, 1h02m."""
    text = text.strip()
    try:
        if text.endswith("ms"):
            return int(text[:-2]) / 1000
        if "h" in text:
            hours, minutes = text.rstrip("m").split("h")
            return int(hours) * 3600 + int(minutes or 0) * 60
        if "m" in text:
            minutes, seconds = text.rstrip("s").split("m")
            return int(minutes) * 60 + int(seconds or 0)
        if "s" in text:
            seconds, millis = text.split("s")
            return int(seconds) + int(millis or 0) / 1000
    except ValueError:
        return None
    return None


def _pgcopydb_summary(output: str) -> dict[str, str]:
    """The step durations of pgcopydb's closing summary table (``Step | Connection | Duration …``)."""
    summary: dict[str, str] = {}
    in_table = False
    for line in output.splitlines():
        if "Step" in line and "Duration" in line:
            in_table = True
            continue
        if in_table:
            parts = [p.strip() for p in (line.split("|") if "|" in line else line.split("  ")) if p.strip()]
            if len(parts) >= 3 and not set(parts[0]) <= {"-", "+"}:
                summary[parts[0]] = parts[2]
    return summary


@dataclass(frozen=True)
class CopyItem:
    table: str
    columns: str
    where: str | None
    bytes: int


def _copy_items(conn: psycopg.Connection[Any], split_bytes: int, major: int) -> list[CopyItem]:
    """Every leaf table's data as work items, the big ones cut in ranges, largest first."""
    tables = conn.execute(
        f"""SELECT format('%I.%I', n.nspname, c.relname), pg_table_size(c.oid),
                   (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a
                    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                    {"AND a.attgenerated = ''" if major >= 12 else ""}),
                   (SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid
                    AND a.attnum = i.indkey[0] WHERE i.indrelid = c.oid AND i.indisprimary AND i.indnatts = 1
                    AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)),
                   c.relpages
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'r' AND c.relpersistence = 'p' AND {_USER}"""
    ).fetchall()
    items: list[CopyItem] = []
    for name, size, columns, key, pages in tables:
        parts = math.ceil(size / split_bytes) if split_bytes and size > split_bytes else 1
        if parts > 1 and key:
            low, high = conn.execute(
                sql.SQL("SELECT min({k}), max({k}) FROM {t}").format(k=sql.Identifier(key), t=sql.SQL(name))
            ).fetchone()  # type: ignore[misc]
            if low is not None:
                step = math.ceil((high - low + 1) / parts)
                q = sql.Identifier(key).as_string(conn)
                for i in range(parts):
                    lo, hi = low + i * step, low + (i + 1) * step
                    items.append(CopyItem(name, columns, f"{q} >= {lo} AND {q} < {hi}", size // parts))
                continue
        # TID range scans came in 14; before that each ctid range would read the whole table.
        if parts > 1 and major >= 14 and pages:
            step = math.ceil(pages / parts)
            for i in range(parts):
                upper = "" if i == parts - 1 else f" AND ctid < '({(i + 1) * step},0)'::tid"
                items.append(CopyItem(name, columns, f"ctid >= '({i * step},0)'::tid{upper}", size // parts))
            continue
        items.append(CopyItem(name, columns, None, size))
    return sorted(items, key=lambda item: -item.bytes)


def _copy_all(methods: Methods, db: str, snapshot: str, items: list[CopyItem]) -> None:
    work: queue.Queue[CopyItem] = queue.Queue()
    for item in items:
        work.put(item)
    errors: list[str] = []

    def worker() -> None:
        src: psycopg.Connection[Any] | None = None
        tgt: psycopg.Connection[Any] | None = None
        try:
            while not errors:
                try:
                    item = work.get_nowait()
                except queue.Empty:
                    return
                select = f"SELECT {item.columns} FROM ONLY {item.table}" + (
                    f" WHERE {item.where}" if item.where else ""
                )
                copy_to = (
                    f"COPY ({select}) TO STDOUT" if item.where else f"COPY {item.table} ({item.columns}) TO STDOUT"
                )
                copy_from = f"COPY {item.table} ({item.columns}) FROM STDIN"
                if item.bytes >= PIPE_MIN_BYTES:
                    _psql_pipe(methods, db, snapshot, copy_to, copy_from)
                    continue
                if src is None or tgt is None:
                    src = psycopg.connect(methods.src(db))
                    src.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                    src.read_only = True
                    src.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
                    tgt = psycopg.connect(methods.tgt(db), autocommit=True)
                with (
                    src.cursor() as sc,
                    tgt.cursor() as tc,
                    sc.copy(copy_to.encode()) as out,
                    tc.copy(copy_from.encode()) as inp,
                ):
                    for data in out:
                        inp.write(data)
        except Exception as exc:  # one failing stream fails the method
            errors.append(str(exc))
        finally:
            for conn in (src, tgt):
                if conn is not None:
                    conn.close()

    threads = [threading.Thread(target=worker) for _ in range(methods.args.jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise MethodFailed(f"a COPY stream failed: {errors[0]}")


def _psql_pipe(methods: Methods, db: str, snapshot: str, copy_to: str, copy_from: str) -> None:
    psql = methods.bin("psql")
    reader = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", methods.src(db)]
    reader += ["-c", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "-c", f"SET TRANSACTION SNAPSHOT '{snapshot}'"]
    reader += ["-c", copy_to, "-c", "COMMIT"]
    writer = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", methods.tgt(db), "-c", copy_from]
    with tempfile.TemporaryFile() as err:
        out = subprocess.Popen(reader, env=methods.env, stdout=subprocess.PIPE, stderr=err)
        inp = subprocess.Popen(writer, env=methods.env, stdin=out.stdout, stdout=subprocess.DEVNULL, stderr=err)
        assert out.stdout is not None
        out.stdout.close()
        rc_in, rc_out = inp.wait(), out.wait()
        if rc_in or rc_out:
            err.seek(0)
            raise MethodFailed(f"psql pipe for {copy_from!r} failed:\n{_tail(err.read().decode(errors='replace'))}")


def _copy_sequences(leader: psycopg.Connection[Any], target: str) -> None:
    values = leader.execute(
        "SELECT format('%I.%I', schemaname, sequencename), last_value FROM pg_sequences"
        " WHERE last_value IS NOT NULL AND schemaname NOT IN ('pg_catalog', 'information_schema')"
    ).fetchall()
    with psycopg.connect(target, autocommit=True) as conn:
        for name, value in values:
            conn.execute("SELECT setval(%s::regclass, %s, true)", (name, value))


def _pgcopydb_method(methods: Methods, program: str, client: Path, db: str) -> Outcome:
    return methods.pgcopydb(db, program, client)


# --- availability -----------------------------------------------------------------------------------


def pgshift_available(methods: Methods) -> dict[str, str]:
    """Why a pgshift method cannot run here ({} when both can): asked of ``pgshift migrate --help``."""
    child = run_child([*methods.pgshift, "migrate", "--help"], methods.env, [])
    if child.returncode != 0:
        why = f"`pgshift migrate --help` exited {child.returncode}: {_tail(child.output, 3)}"
        return {"pgshift-dump": why, "pgshift-stream": why}
    if "--mode" not in child.output:
        return {"pgshift-stream": "not available: `pgshift migrate --help` lists no --mode"}
    return {}


def pgcopydb_programs(target_major: int) -> tuple[dict[str, tuple[str, Path, str]], dict[str, str]]:
    """Installed pgcopydb versions → (program, client directory, version line); reasons for the others."""
    found: dict[str, tuple[str, Path, str]] = {}
    missing: dict[str, str] = {}
    # Debian's 0.10 is built against 15 and knows majors up to 15: it gets the client Debian gives it.
    wanted = {
        "pgcopydb-0.10": ("pgcopydb", Path("/usr/lib/postgresql/15/bin")),
        "pgcopydb-0.18": ("pgcopydb-0.18", PG_CACHE / str(target_major) / "bin"),
    }
    hints = {
        "pgcopydb-0.10": "not installed (Debian: apt-get install -y pgcopydb)",
        "pgcopydb-0.18": "not installed: build it with bench/build_pgcopydb.sh (see bench/README.md)",
    }
    for name, (program, client) in wanted.items():
        path = shutil.which(program)
        if path is None:
            missing[name] = hints[name]
            continue
        done = subprocess.run([path, "version"], capture_output=True, text=True, check=False)
        line = next((x for x in done.stdout.splitlines() if x.startswith("pgcopydb version")), "")
        if not line:
            missing[name] = f"{path} does not say its version: {_tail(done.stdout + done.stderr, 2)}"
            continue
        if not line.split()[-1].startswith(name.split("-")[1]):
            missing[name] = f"{path} is {line}, not {name}"
            continue
        if not (client / "pg_config").exists():
            missing[name] = f"no pg_config in {client} for it to find pg_dump"
            continue
        found[name] = (path, client, line)
    return found, missing


# --- the run ----------------------------------------------------------------------------------------


def drop_target(target: LabServer, db: str) -> None:
    """Drop the target database, then flush what the previous method left dirty, before the clock."""
    with target.connect() as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (db,))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(db)))
        conn.execute("CHECKPOINT")
    os.sync()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="dataset size: 1.0 puts events over 1 GB")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--source-major", type=int, default=13)
    parser.add_argument("--target-major", type=int, default=17)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--tiny-tables", type=int, default=2000, help="tiny tables of the many shape")
    parser.add_argument(
        "--split-mb", type=float, default=None, help="split tables larger than this (default 300 × scale)"
    )
    parser.add_argument("--digest", choices=("first", "all", "none"), default="first", help="which runs check contents")
    parser.add_argument("--no-analyze", dest="analyze", action="store_false", help="no method runs ANALYZE")
    parser.add_argument(
        "--pgshift", default=None, help="the command that runs pgshift (default: this python -m pgshift)"
    )
    parser.add_argument("--cache-dir", type=Path, default=paths.cache_dir() / "bench", help="the cached source cluster")
    parser.add_argument("--fresh", action="store_true", help="rebuild the cached source cluster")
    parser.add_argument("--output", type=Path, default=RESULTS / "peers.json")
    parser.add_argument("--report", type=Path, default=None, help="print the report of a peers.json again; run nothing")
    args = parser.parse_args(argv)
    if args.report is not None:
        try:
            earlier = json.loads(args.report.read_text())
        except (OSError, ValueError) as exc:
            parser.error(f"--report {args.report}: {exc}")
        print_report(earlier, argparse.Namespace(**earlier["args"]))
        return 0
    shapes = [s for s in args.shapes.split(",") if s]
    methods_wanted = [m for m in args.methods.split(",") if m]
    for bad in [s for s in shapes if s not in SHAPES] + [m for m in methods_wanted if m not in METHODS]:
        parser.error(f"unknown shape or method {bad!r}: shapes are {', '.join(SHAPES)}; methods {', '.join(METHODS)}")
    if args.runs < 1 or args.jobs < 1 or args.scale <= 0:
        parser.error("--runs and --jobs must be at least 1, --scale above 0")
    if args.split_mb is None:
        args.split_mb = max(8.0, 300.0 * args.scale)
    if "classic" not in methods_wanted:
        methods_wanted.insert(0, "classic")  # the ratios' denominator

    result: dict[str, Any] = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg()},
        "settings": SETTINGS,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "shapes": {},
    }
    source_root = args.cache_dir / f"source-{args.source_major}"
    if args.fresh:
        shutil.rmtree(source_root, ignore_errors=True)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    args.cache_dir.chmod(0o755)

    with (
        cached_source(args.source_major, source_root, SETTINGS) as source,
        lab_server(args.target_major, settings=SETTINGS) as target,
        tempfile.TemporaryDirectory(prefix="pgshift-bench-") as scratch,
    ):
        result["versions"] = {"source": str(source.version), "target": str(target.version)}
        methods = Methods(args, source, target, Path(scratch))
        skipped: dict[str, str] = {}
        skipped.update(pgshift_available(methods))
        copydbs, missing = pgcopydb_programs(args.target_major)
        skipped.update(missing)
        result["pgcopydb"] = {k: {"program": v[0], "client": str(v[1]), "version": v[2]} for k, v in copydbs.items()}
        plan: dict[str, Callable[[str], Outcome]] = {
            "classic": methods.classic,
            "pipe": methods.pipe,
            "pgshift-dump": lambda db: methods.pgshift_run(db, stream=False),
            "pgshift-stream": lambda db: methods.pgshift_run(db, stream=True),
            "lower-bound": methods.lower_bound,
        }
        for name, (program, client, _line) in copydbs.items():
            plan[name] = functools.partial(_pgcopydb_method, methods, program, client)
        order = [m for m in methods_wanted if m not in skipped]
        for name in methods_wanted:
            if name in skipped:
                print(f"{name}: left out: {skipped[name]}", flush=True)
        result["skipped"] = {m: skipped[m] for m in methods_wanted if m in skipped}
        print(
            f"source {source.version} (cached in {source_root}), target {target.version}, -j {args.jobs}, "
            f"scale {args.scale:g}, {args.runs} runs, split over {args.split_mb:g} MB",
            flush=True,
        )

        for shape in shapes:
            info = ensure_dataset(source, shape, args.scale, args.tiny_tables)
            how = "cached" if info["cached"] else f"generated in {info['generate_seconds']} s"
            print(
                f"\n== {shape}: {info['bytes'] / 2**20:,.0f} MB, {info['tables']:,} tables, largest "
                f"{info['largest_table_bytes'] / 2**20:,.0f} MB ({how})",
                flush=True,
            )
            with source.connect(shape) as conn:
                # Also the warm-up: every table read once, so the first method reads from the page cache too.
                expected_full = shape_of(conn, digest=args.digest != "none")
            expected = {k: v for k, v in expected_full.items() if k != "digests"}
            runs: dict[str, list[dict[str, Any]]] = {m: [] for m in order}
            failed: dict[str, str] = {}
            for run_no in range(1, args.runs + 1):
                for name in order:
                    if name in failed:
                        continue
                    drop_target(target, shape)
                    started = time.monotonic()
                    try:
                        outcome = plan[name](shape)
                    except MethodFailed as exc:
                        failed[name] = f"run {run_no}: {exc}"
                        print(f"run {run_no} {name:<15} FAILED: {str(exc).splitlines()[0]}", flush=True)
                        continue
                    took = time.monotonic() - started
                    digest = args.digest == "all" or (args.digest == "first" and run_no == 1)
                    with target.connect(shape) as conn:
                        got = shape_of(conn, digest=digest)
                    diffs = differences(expected_full if digest else expected, got)
                    if diffs:
                        failed[name] = f"run {run_no}: wrong result: " + "; ".join(diffs)
                        print(f"run {run_no} {name:<15} FAILED (wrong result): {diffs[0]}", flush=True)
                        continue
                    runs[name].append({"seconds": round(took, 3), "phases": outcome.phases, **outcome.extra})
                    rss = f"  peak RSS {outcome.extra['maxrss_mb']:.0f} MB" if "maxrss_mb" in outcome.extra else ""
                    print(f"run {run_no} {name:<15} {took:8.2f} s  checked{rss}", flush=True)
            drop_target(target, shape)
            result["shapes"][shape] = summarise(info, runs, failed, expected)
        result["machine"]["loadavg_end"] = os.getloadavg()
        log = methods.log

    print_report(result, args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))
    args.output.with_suffix(".log").write_text("\n".join(log))
    print(f"\nraw results: {args.output}")
    return 0


def summarise(
    info: dict[str, Any], runs: dict[str, list[dict[str, Any]]], failed: dict[str, str], expected: dict[str, Any]
) -> dict[str, Any]:
    medians = {m: statistics.median(r["seconds"] for r in rs) for m, rs in runs.items() if rs and m not in failed}
    base = medians.get("classic")
    phases: dict[str, dict[str, float]] = {}
    for m, rs in runs.items():
        if m in medians:
            keys = dict.fromkeys(k for r in rs for k in r["phases"])
            phases[m] = {k: round(statistics.median(r["phases"].get(k, 0.0) for r in rs), 3) for k in keys}
    rss = {m: max(r["maxrss_mb"] for r in rs) for m, rs in runs.items() if rs and "maxrss_mb" in rs[0]}
    hwm = {m: max(r["own_hwm_mb"] for r in rs) for m, rs in runs.items() if rs and "own_hwm_mb" in rs[0]}
    return {
        "dataset": info,
        "checked": {
            "tables": len(expected["rows"]),
            "rows": sum(expected["rows"].values()),
            "indexes": len(expected["indexes"]),
            "constraints": len(expected["constraints"]),
            "sequences": len(expected["sequences"]),
        },
        "runs": runs,
        "failed": failed,
        "medians": {m: round(v, 3) for m, v in medians.items()},
        "ratio_to_classic": {m: round(v / base, 3) for m, v in medians.items()} if base else {},
        "median_phases": phases,
        "peak_rss_mb": rss,
        "own_hwm_mb": hwm,
    }


def print_report(result: dict[str, Any], args: argparse.Namespace) -> None:
    shapes = result["shapes"]
    print(
        f"\n{result['versions']['source']} → {result['versions']['target']}, -j {args.jobs}, scale {args.scale:g}, "
        f"medians of {args.runs}; load average {result['machine']['loadavg_start'][0]:.1f} → "
        f"{result['machine']['loadavg_end'][0]:.1f} on {result['machine']['cpus']} CPUs"
    )
    for shape, s in shapes.items():
        c = s["checked"]
        print(
            f"\n{shape}: {s['dataset']['bytes'] / 2**20:,.0f} MB; checked {c['rows']:,} rows in {c['tables']:,} "
            f"tables, {c['indexes']:,} indexes, {c['constraints']:,} constraints, {c['sequences']} sequences"
        )
        print(f"  {'method':<16}{'median s':>10}{'min s':>9}{'max s':>9}{'× classic':>11}  phases (median s)")
        for m, median in s["medians"].items():
            xs = [r["seconds"] for r in s["runs"][m]]
            ratio = f"{s['ratio_to_classic'][m]:.2f}" if m in s["ratio_to_classic"] else "-"
            per = ", ".join(f"{k} {v:.2f}" for k, v in s["median_phases"][m].items())
            print(f"  {m:<16}{median:>10.2f}{min(xs):>9.2f}{max(xs):>9.2f}{ratio:>11}  {per}")
        for m, why in s["failed"].items():
            print(f"  {m:<16}FAILED {why.splitlines()[0]}")
        for m, mb in s["peak_rss_mb"].items():
            print(f"  {m} peak RSS: {mb:.0f} MB with its children (wait4), {s['own_hwm_mb'][m]:.0f} MB its own process")
    for m, why in result["skipped"].items():
        print(f"{m}: not run: {why}")

    # The table for docs/performance.md.
    asked = {m for s in shapes.values() for m in (*s["runs"], *s["failed"])} | set(result["skipped"])
    names = [m for m in METHODS if m in asked]
    print("\nMarkdown (ratio to classic, median seconds in brackets):\n")
    heads = [
        f"{shape} ({s['dataset']['bytes'] / 2**30:.2f} GB, {s['dataset']['tables']:,} tables)"
        for shape, s in shapes.items()
    ]
    print("| method | " + " | ".join(heads) + " |")
    print("|---|" + "---|" * len(shapes))
    for m in names:
        cells = []
        for s in shapes.values():
            if m in s["medians"]:
                cells.append(f"{s['ratio_to_classic'].get(m, 0):.2f} ({s['medians'][m]:.1f} s)")
            elif m in s["failed"]:
                cells.append("FAILED")
            elif m in result["skipped"]:
                cells.append("not run")
            else:
                cells.append("-")
        print(f"| {m} | " + " | ".join(cells) + " |")
    print("\nMedian seconds per phase:\n")
    print("| method | " + " | ".join(shapes) + " |")
    print("|---|" + "---|" * len(shapes))
    for m in names:
        cells = [
            ", ".join(f"{k} {v:.1f}" for k, v in s["median_phases"].get(m, {}).items()) or "-" for s in shapes.values()
        ]
        if any(c != "-" for c in cells):
            print(f"| {m} | " + " | ".join(cells) + " |")
    rss = {m: max(s["peak_rss_mb"].get(m, 0) for s in shapes.values()) for m in names}
    own = {m: max(s["own_hwm_mb"].get(m, 0) for s in shapes.values()) for m in names}
    for m in (m for m in names if rss.get(m)):
        print(f"\n{m}: peak RSS {rss[m]:.0f} MB with its children (wait4), {own[m]:.0f} MB its own process")


if __name__ == "__main__":
    sys.exit(main())
