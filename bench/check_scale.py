"""Benchmark: ``pgshift check`` on a source with 10,000 tables in 50 databases.

    python bench/check_scale.py [--runs 5] [--source-major 17] [--target-major 18]

Builds a throwaway source (one template database with 200 tables, each with a primary key, an
index and a few rows, copied 50 times) and a throwaway target, runs ``run_check`` several times
and prints the median
(also written to bench/results/check_scale.json). It also proves that check reads no table data:
the sequential and index scan counters of every user table (pg_stat_user_tables) are the same before and after the runs.
Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from pgshift.checks import run_check
from pgshift.lab import lab_server

TABLES_PER_DB = 200
DATABASES = 50


def _scans(server: Any, databases: list[str]) -> int:
    total = 0
    for db in databases:
        with server.connect(db) as conn:
            row = conn.execute(
                "SELECT COALESCE(sum(seq_scan + COALESCE(idx_scan, 0)), 0) FROM pg_stat_user_tables"
            ).fetchone()
            total += int(row[0])
    return total


def _flush_stats(server: Any, databases: list[str]) -> None:
    # Counters reach the shared statistics when sessions end (15+) or after the stats interval.
    time.sleep(1.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--source-major", type=int, default=17)
    parser.add_argument("--target-major", type=int, default=18)
    args = parser.parse_args()

    with lab_server(args.source_major) as source, lab_server(args.target_major) as target:
        t0 = time.monotonic()
        source.execute("CREATE DATABASE bench_tpl")
        source.execute(
            f"""
            DO $$BEGIN FOR i IN 1..{TABLES_PER_DB} LOOP
              EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, v text, ts timestamptz DEFAULT now())', i);
              EXECUTE format('CREATE INDEX ON t%s (v)', i);
              EXECUTE format('INSERT INTO t%s (id, v) SELECT g, md5(g::text) FROM generate_series(1, 20) g', i);
            END LOOP; END$$
            """,
            "bench_tpl",
        )
        databases = [f"bench_{i:02d}" for i in range(DATABASES)]
        for db in databases:
            source.execute(f"CREATE DATABASE {db} TEMPLATE bench_tpl")
        source.execute("DROP DATABASE bench_tpl")
        built = time.monotonic() - t0

        _flush_stats(source, databases)
        before = _scans(source, databases)
        times = []
        report = None
        for _ in range(args.runs):
            start = time.monotonic()
            report = run_check(source.endpoint("source"), target.endpoint("target"), jobs=4)
            times.append(time.monotonic() - start)
        _flush_stats(source, databases)
        after = _scans(source, databases)
        assert report is not None
        tables = sum(d.object_counts["tables"] for d in report.source.checked)
        result = {
            "source": str(report.source.server.version),
            "target": str(report.target.server.version) if report.target else None,
            "databases_checked": len(report.source.checked),
            "tables": tables,
            "build_seconds": round(built, 1),
            "runs": [round(t, 3) for t in times],
            "median_seconds": round(statistics.median(times), 3),
            "findings": len(report.findings),
            "table_scans_during_check": after - before,
        }
        print(json.dumps(result, indent=2))
        out = Path(__file__).resolve().parent / "results"
        out.mkdir(exist_ok=True)
        (out / "check_scale.json").write_text(json.dumps(result, indent=2) + "\n")
        if after != before:
            raise SystemExit(f"check scanned user tables: {after - before} scans")
        # The probe itself must see a scan, or the zero above proves nothing.
        with source.connect(databases[0]) as conn:
            conn.execute("SELECT count(*) FROM t1").fetchone()
        _flush_stats(source, databases)
        if _scans(source, databases) <= after:
            raise SystemExit("the scan counters did not move for a real scan: the measurement is broken")


if __name__ == "__main__":
    main()
