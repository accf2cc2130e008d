"""Benchmark: ``pgshift verify`` exact counts against sequential count(*), and a 10,000-table inventory.

    python bench/verify_counts.py [--size-mb 1024] [--tables 16] [--jobs 2] [--runs 3]
                                  [--inventory-tables 10000] [--source-major 16] [--target-major 17]

Counts: two throwaway servers get the same generated database (``--tables`` tables, about
``--size-mb`` MB in total on each side, no indexes). After one warm-up pass each, it times

* the baseline: ``SELECT count(*)`` on every table of the source, then on every table of the
  target, one after another on one connection per server;
* ``verify_servers`` comparing only rows (``compare_schema=False, compare_globals=False``) with
  ``--jobs`` connections per side, both sides at once;

and prints medians and their ratio (the goal: verify ≤ 1.5 × baseline).

Inventory: ``--inventory-tables`` tables (each with a primary key, so also as many indexes and
constraints) on both servers; it times ``read_inventory`` on one side, a catalog-only
``verify_servers`` of the two, and a full one (with the exact count of every table).
``--checksums`` also times one ``verify --checksums`` of the generated data.

Figures go to stdout and bench/results/verify_counts.json. Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from pgshift.catalog.inventory import read_inventory
from pgshift.catalog.session import session
from pgshift.lab import LabServer, lab_server
from pgshift.verify import VerifyOptions, verify_servers

DB = "bench_counts"
INV_DB = "bench_inventory"


def _generate(server: LabServer, tables: int, size_mb: int) -> int:
    """Identical content on every server: ~120 bytes a row on disk."""
    rows_per_table = max(1, size_mb * 1024 * 1024 // 120 // tables)
    server.execute(f"CREATE DATABASE {DB}")
    for i in range(tables):
        with server.connect(DB) as conn:
            conn.execute(f"CREATE TABLE t{i} (id bigint, n integer, payload text)".encode())
            conn.execute(
                f"INSERT INTO t{i} SELECT g, g % 1000, md5(g::text) || md5((g + {i})::text)"
                f" FROM generate_series(1, {rows_per_table}) g".encode()
            )
            conn.execute(f"VACUUM (ANALYZE) t{i}".encode())
    with server.connect(DB) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0


def _sequential(servers: list[LabServer], tables: int) -> float:
    started = time.monotonic()
    for server in servers:
        with server.connect(DB) as conn:
            for i in range(tables):
                conn.execute(f"SELECT count(*) FROM t{i}".encode()).fetchone()
    return time.monotonic() - started


def _verify_rows(source: LabServer, target: LabServer, jobs: int) -> tuple[float, Any]:
    options = VerifyOptions(jobs=jobs, compare_globals=False, compare_schema=False)
    started = time.monotonic()
    report = verify_servers(source.endpoint("source"), target.endpoint("target"), databases=[(DB, DB)], options=options)
    return time.monotonic() - started, report


def _many_tables(server: LabServer, count: int) -> None:
    server.execute(f"CREATE DATABASE {INV_DB}")
    # Batches of 500 per transaction keep the lock table small.
    for start in range(0, count, 500):
        stop = min(count, start + 500)
        server.execute(
            f"DO $$BEGIN FOR i IN {start}..{stop - 1} LOOP"
            " EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, v text NOT NULL, CHECK (id > 0))', i);"
            " END LOOP; END$$",
            INV_DB,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="generated data per server")
    parser.add_argument("--tables", type=int, default=16)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--inventory-tables", type=int, default=10_000)
    parser.add_argument("--checksums", action="store_true", help="also time one verify --checksums")
    parser.add_argument("--source-major", type=int, default=16)
    parser.add_argument("--target-major", type=int, default=17)
    args = parser.parse_args()
    result: dict[str, Any] = {"args": vars(args)}
    settings = {"shared_buffers": "256MB", "max_locks_per_transaction": "256"}

    with (
        lab_server(args.source_major, settings=settings) as source,
        lab_server(args.target_major, settings=settings) as target,
    ):
        if args.size_mb > 0:
            t0 = time.monotonic()
            sizes = [_generate(s, args.tables, args.size_mb) for s in (source, target)]
            result["generate_seconds"] = round(time.monotonic() - t0, 1)
            result["database_bytes"] = sizes
            print(f"generated {sizes[0] / 2**30:.2f} GiB + {sizes[1] / 2**30:.2f} GiB in {result['generate_seconds']}s")
            _sequential([source, target], args.tables)  # warm-up
            _verify_rows(source, target, args.jobs)
            seq, par = [], []
            report = None
            for _ in range(args.runs):
                seq.append(_sequential([source, target], args.tables))
                took, report = _verify_rows(source, target, args.jobs)
                par.append(took)
            assert report is not None and report.equal, [d.message for d in report.differences] if report else None
            if args.checksums:
                options = VerifyOptions(jobs=args.jobs, compare_globals=False, compare_schema=False, checksums=True)
                started = time.monotonic()
                checked = verify_servers(
                    source.endpoint("source"), target.endpoint("target"), databases=[(DB, DB)], options=options
                )
                result["checksums_seconds"] = round(time.monotonic() - started, 3)
                result["checksummed_ranges"] = sum(d.checksummed_ranges for d in checked.databases)
                assert checked.equal
                print(
                    f"checksums: verify --checksums -j {args.jobs} (counts + digests of every row, both sides) "
                    f"{result['checksums_seconds']}s, {result['checksummed_ranges']} ranges"
                )
            result["counts"] = {
                "rows_per_side": report.rows_source,
                "sequential_seconds": [round(x, 3) for x in seq],
                "verify_seconds": [round(x, 3) for x in par],
                "sequential_median": round(statistics.median(seq), 3),
                "verify_median": round(statistics.median(par), 3),
                "ratio": round(statistics.median(par) / statistics.median(seq), 3),
            }
            c = result["counts"]
            print(
                f"counts: {report.rows_source:,} rows per side; sequential count(*) both servers median "
                f"{c['sequential_median']}s; verify -j {args.jobs} median {c['verify_median']}s; "
                f"ratio {c['ratio']} (goal ≤ 1.5)"
            )
        if args.inventory_tables > 0:
            t0 = time.monotonic()
            for s in (source, target):
                _many_tables(s, args.inventory_tables)
            result["inventory_build_seconds"] = round(time.monotonic() - t0, 1)
            reads, verifies, fulls = [], [], []
            objects = 0
            for _ in range(args.runs):
                started = time.monotonic()
                with session(source.endpoint(), INV_DB) as conn:
                    inv = read_inventory(conn)
                reads.append(time.monotonic() - started)
                objects = len(inv.objects)
                started = time.monotonic()
                report = verify_servers(
                    source.endpoint("source"),
                    target.endpoint("target"),
                    databases=[(INV_DB, INV_DB)],
                    options=VerifyOptions(compare_rows=False, compare_globals=False),
                )
                verifies.append(time.monotonic() - started)
                started = time.monotonic()
                full = verify_servers(
                    source.endpoint("source"),
                    target.endpoint("target"),
                    databases=[(INV_DB, INV_DB)],
                    options=VerifyOptions(compare_globals=False, jobs=args.jobs),
                )
                fulls.append(time.monotonic() - started)
                assert full.equal and full.tables_compared == args.inventory_tables
            result["inventory"] = {
                "tables": args.inventory_tables,
                "objects": objects,
                "read_inventory_seconds": [round(x, 3) for x in reads],
                "read_inventory_median": round(statistics.median(reads), 3),
                "verify_catalogs_seconds": [round(x, 3) for x in verifies],
                "verify_catalogs_median": round(statistics.median(verifies), 3),
                "verify_with_counts_seconds": [round(x, 3) for x in fulls],
                "verify_with_counts_median": round(statistics.median(fulls), 3),
                "expected_differences": len(report.expected),
                "differences": len(report.differences),
            }
            i = result["inventory"]
            print(
                f"inventory: {args.inventory_tables:,} tables = {objects:,} objects; read_inventory median "
                f"{i['read_inventory_median']}s; verify (catalogs, both sides) median {i['verify_catalogs_median']}s; "
                f"{i['differences']} differences, {i['expected_differences']} expected; with row counts of every "
                f"table median {i['verify_with_counts_median']}s"
            )
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "verify_counts.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
