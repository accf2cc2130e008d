"""pgshift's own memory stays bounded on a source with 10,000 tables (issue 16: peak RSS < 300 MB).

pgshift runs as a user runs it (``python -m pgshift migrate``); its peak resident set is read from
``/proc/PID/status`` (VmHWM, the kernel's high-water mark of that one process, so the pg_dump and
pg_restore children are not counted) while it runs. The move is then checked by the test's own
count of tables on the target.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

TABLES = 10_000
LIMIT_MB = 300


def _peak_rss_mb(args: list[str]) -> tuple[subprocess.CompletedProcess[str], float]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgshift", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peak_kb = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kb = max(peak_kb, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.2)
    out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), peak_kb / 1024


@pytest.mark.parametrize("mode", ["dump", "stream"])
def test_migrating_10000_tables_keeps_pgshift_under_300_mb(fresh_server: Any, tmp_path: Path, mode: str) -> None:
    # pg_dump locks every table it dumps in one transaction: the lock table must hold 10,000.
    locks = {"max_locks_per_transaction": "256"}
    source, target = fresh_server(16, settings=locks), fresh_server(17, settings=locks)
    source.execute("CREATE DATABASE many")
    # One transaction per thousand tables keeps the lock table within max_locks_per_transaction.
    for start in range(0, TABLES, 1000):
        source.execute(
            f"DO $$ BEGIN FOR i IN {start}..{start + 999} LOOP EXECUTE format("
            "'CREATE TABLE t%s (id int PRIMARY KEY, v text); INSERT INTO t%s VALUES (1, ''x'')', i, i); "
            "END LOOP; END $$",
            "many",
        )
    done, peak = _peak_rss_mb(
        [
            "migrate",
            source.conninfo(),
            target.conninfo(),
            "-d",
            "many",
            "--mode",
            mode,
            "--workdir",
            str(tmp_path / "w"),
        ]
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with target.connect("many") as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
        )
        assert tables.fetchone()[0] == TABLES
        assert conn.execute("SELECT count(*) FROM t9999").fetchone()[0] == 1
    print(f"pgshift migrate --mode {mode}, {TABLES} tables: peak RSS {peak:.0f} MB")
    assert 0 < peak < LIMIT_MB, f"pgshift's peak RSS was {peak:.0f} MB"
