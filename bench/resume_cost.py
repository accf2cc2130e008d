"""Benchmark: what a resume costs after pgshift is killed late in a database, against a full run.

    python bench/resume_cost.py [--runs 3] [--rows 1500000] [--source-major 14] [--target-major 17]

One source database (a table of N rows with a primary key and an index). For each run, on a fresh
target: a full ``pgshift migrate --no-verify``; then the same migration killed (SIGKILL, through
``PGSHIFT_INJECT_CRASH_IN_STEP``) right after the work of the restore-data step, and right after
ANALYZE, each followed by ``--resume``. Prints the medians and the ratios resume/full (also written
to bench/results/resume_cost.json). Before issue 14 a resume dropped such a database and restored it
again in full (ratio about 1). Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pgshift.lab import lab_server


def _pgshift(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, env=env)
    return done, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_500_000)
    parser.add_argument("--source-major", type=int, default=14)
    parser.add_argument("--target-major", type=int, default=17)
    opts = parser.parse_args()
    seconds: dict[str, list[float]] = {"full": [], "restore-data": [], "analyze": []}
    with lab_server(opts.source_major) as source:
        source.execute("CREATE DATABASE big")
        source.execute(
            f"CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, {opts.rows}) g;"
            "ALTER TABLE t ADD PRIMARY KEY (id); CREATE INDEX ON t (v)",
            "big",
        )
        for _ in range(opts.runs):
            for kind in seconds:
                with lab_server(opts.target_major) as target:
                    workdir = tempfile.mkdtemp() + "/run"
                    args = ("migrate", source.conninfo(), target.conninfo(), "-d", "big", "--workdir", workdir)
                    args += ("--no-verify",)
                    if kind == "full":
                        done, took = _pgshift(*args)
                    else:
                        killed, _ = _pgshift(*args, env={**os.environ, "PGSHIFT_INJECT_CRASH_IN_STEP": kind})
                        assert killed.returncode == -9, killed.stderr
                        done, took = _pgshift("migrate", "--resume", workdir)
                    assert done.returncode == 0, done.stderr
                    seconds[kind].append(round(took, 3))
    full = statistics.median(seconds["full"])
    result = {
        "rows": opts.rows,
        "runs": seconds,
        "median_full": full,
        **{f"median_resume_after_{k}": statistics.median(v) for k, v in seconds.items() if k != "full"},
        **{f"ratio_resume_after_{k}": round(statistics.median(v) / full, 3) for k, v in seconds.items() if k != "full"},
    }
    out = Path(__file__).parent / "results" / "resume_cost.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
