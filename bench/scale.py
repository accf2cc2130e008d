"""Benchmark: pgshift check, migrate and verify at scale, with pgshift's own peak RSS (issue 17).

    python bench/scale.py [--source-major 14] [--target-major 17] [--tables 10000]
                          [--databases 50] [--tables-per-database 20] [--large-objects 100000]

Builds on one throwaway source lab server three shapes: one database with ``--tables`` tables
(a primary key and one row each), ``--databases`` databases of ``--tables-per-database`` tables
(five rows each), and one database with ``--large-objects`` large objects (a few bytes each).
For each shape, as a user runs them (``python -m pgshift``, its ``-d`` naming the shape's
databases): ``check``, ``migrate`` (dump mode, with its verify) into a throwaway target, then
``verify`` again. Each command's wall time and pgshift's own peak RSS (VmHWM of the pgshift
process, children excluded: tests/fixtures/rss.py, shared with the scale tests) are measured, and
each result is checked by the benchmark's own queries on the target (tables, rows, databases,
large objects and their bytes against the source). Prints a table, a Markdown table for
docs/reliability.md and writes bench/results/scale.json. A wrong result or a command's failure
exits non-zero. Not a test: timings depend on the machine (about 10 minutes on 2 shared cores).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.fixtures, shared with the tests

from tests.fixtures.rss import run_pgshift

from pgshift.lab import LabServer, lab_server

LIMIT_MB = 300
# pg_dump locks every table it dumps in one transaction: the source's lock table must hold them.
LOCKS = {"max_locks_per_transaction": "256"}


@dataclass
class Row:
    shape: str
    command: str
    exit_code: int
    seconds: float
    peak_mb: float
    checked: str


def _build(source: LabServer, opts: argparse.Namespace) -> dict[str, list[str]]:
    source.execute("CREATE DATABASE scale_tables")
    for start in range(0, opts.tables, 1000):  # one transaction per thousand tables: within the lock table
        end = min(start + 999, opts.tables - 1)
        source.execute(
            f"DO $$ BEGIN FOR i IN {start}..{end} LOOP EXECUTE format("
            "'CREATE TABLE t%s (id int PRIMARY KEY, v text); INSERT INTO t%s VALUES (1, ''x'')', i, i); "
            "END LOOP; END $$",
            "scale_tables",
        )
    source.execute("CREATE DATABASE scale_tpl")
    source.execute(
        f"DO $$ BEGIN FOR i IN 1..{opts.tables_per_database} LOOP EXECUTE format("
        "'CREATE TABLE t%s (id int PRIMARY KEY, v text); "
        "INSERT INTO t%s SELECT g, md5(g::text) FROM generate_series(1, 5) g', i, i); END LOOP; END $$",
        "scale_tpl",
    )
    many = [f"scale_db_{i:02d}" for i in range(opts.databases)]
    for db in many:
        source.execute(f"CREATE DATABASE {db} TEMPLATE scale_tpl")
    source.execute("DROP DATABASE scale_tpl")
    source.execute("CREATE DATABASE scale_lo")
    source.execute(
        "SELECT lo_from_bytea(0, convert_to('large object ' || g, 'UTF8')) "
        f"FROM generate_series(1, {opts.large_objects}) g",
        "scale_lo",
    )
    return {
        f"{opts.tables} tables": ["scale_tables"],
        f"{opts.databases} databases": many,
        f"{opts.large_objects} large objects": ["scale_lo"],
    }


def _tables_and_rows(server: LabServer, db: str) -> tuple[int, int]:
    with server.connect(db) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
        ).fetchone()[0]
        # Every table's exact row count in one statement: query_to_xml runs a count per table.
        rows = conn.execute(
            "SELECT COALESCE(sum((xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I', "
            "relname), false, true, '')))[1]::text::bigint), 0) "
            "FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
        ).fetchone()[0]
    return int(tables), int(rows)


def _large_objects(server: LabServer, db: str) -> tuple[int, int, str]:
    with server.connect(db) as conn:
        row = conn.execute(
            "SELECT count(*), COALESCE(sum(length(lo_get(oid))), 0), "
            "md5(string_agg(oid::text || ':' || encode(lo_get(oid), 'hex'), ',' ORDER BY oid)) "
            "FROM pg_largeobject_metadata"
        ).fetchone()
    return int(row[0]), int(row[1]), str(row[2])


def _check_result(shape: str, dbs: list[str], source: LabServer, target: LabServer) -> str:
    """The benchmark's own comparison of the target with the source; raises on a difference."""
    with target.connect() as conn:
        present = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
    missing = [db for db in dbs if db not in present]
    if missing:
        raise SystemExit(f"{shape}: databases missing on the target: {', '.join(missing)}")
    if shape.endswith("large objects"):
        src, dst = _large_objects(source, dbs[0]), _large_objects(target, dbs[0])
        if src != dst:
            raise SystemExit(f"{shape}: large objects differ: source {src[:2]}, target {dst[:2]}")
        return f"{dst[0]} large objects, {dst[1]} bytes, same digest"
    tables = rows = 0
    for db in dbs:
        src, dst = _tables_and_rows(source, db), _tables_and_rows(target, db)
        if src != dst:
            raise SystemExit(f"{shape}: {db} differs: source {src} (tables, rows), target {dst}")
        tables, rows = tables + dst[0], rows + dst[1]
    return f"{len(dbs)} database(s), {tables} tables, {rows} rows"


def _run(
    shape: str, command: str, args: list[str], rows: list[Row], expect: tuple[int, ...], checked: str = ""
) -> None:
    done = run_pgshift(args)
    if command == "check":  # what it found, by rule (run with --json)
        found = Counter(f"{f['rule_id']} ({f['severity']})" for f in json.loads(done.stdout)["findings"])
        checked = ", ".join(f"{rule} ×{n}" for rule, n in sorted(found.items())) or "no findings"
    elif command == "verify" and done.returncode == 0:
        checked = "equal"
    row = Row(shape, command, done.returncode, round(done.seconds, 1), round(done.peak_mb, 1), checked)
    rows.append(row)
    print(f"  {shape:20} {command:8} exit {done.returncode}  {done.seconds:7.1f} s  {done.peak_mb:6.1f} MB", flush=True)
    if done.returncode not in expect:
        raise SystemExit(f"{shape}: pgshift {command} exited {done.returncode}:\n{done.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-major", type=int, default=14)
    parser.add_argument("--target-major", type=int, default=17)
    parser.add_argument("--tables", type=int, default=10_000)
    parser.add_argument("--databases", type=int, default=50)
    parser.add_argument("--tables-per-database", type=int, default=20)
    parser.add_argument("--large-objects", type=int, default=100_000)
    opts = parser.parse_args()

    rows: list[Row] = []
    with (
        lab_server(opts.source_major, settings=LOCKS) as source,
        lab_server(opts.target_major, settings=LOCKS) as target,
        tempfile.TemporaryDirectory(prefix="pgshift-scale-") as tmp,
    ):
        t0 = time.monotonic()
        shapes = _build(source, opts)
        built = time.monotonic() - t0
        print(f"built the source in {built:.0f} s", flush=True)
        for shape, dbs in shapes.items():
            select = [arg for db in dbs for arg in ("-d", db)]
            pair = [source.conninfo(), target.conninfo()]
            _run(shape, "check", ["check", *pair, *select, "--json"], rows, expect=(0, 1))
            workdir = str(Path(tmp) / shape)
            _run(shape, "migrate", ["migrate", *pair, *select, "--workdir", workdir], rows, expect=(0,))
            rows[-1].checked = _check_result(shape, dbs, source, target)
            _run(shape, "verify", ["verify", *pair, *select], rows, expect=(0,))

    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": f"{platform.machine()}, 2 cores (shared)",
        "source_major": opts.source_major,
        "target_major": opts.target_major,
        "build_seconds": round(built, 1),
        "limit_mb": LIMIT_MB,
        "runs": [asdict(r) for r in rows],
    }
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "scale.json").write_text(json.dumps(result, indent=2) + "\n")
    print("\n| shape | command | time (s) | pgshift peak RSS (MB) | result checked |\n|---|---|--:|--:|---|")
    for r in rows:
        print(f"| {r.shape} | `pgshift {r.command}` | {r.seconds:.1f} | {r.peak_mb:.0f} | {r.checked} |")
    over = [r for r in rows if r.peak_mb >= LIMIT_MB]
    if over:
        raise SystemExit(f"peak RSS at or above {LIMIT_MB} MB: " + ", ".join(f"{r.shape} {r.command}" for r in over))


if __name__ == "__main__":
    main()
