"""migrate's schema trial runs beside the dumps, which only read the source: a refusal still leaves
the target untouched, and a clean run changes the target only once the trial has passed."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pgshift.migrate.journal import Journal
from tests.fixtures.trial import scratch_databases


def pgshift(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, timeout=300)


def _source_db(source: Any, db: str, *, hazard: bool) -> None:
    source.execute(f"DROP DATABASE IF EXISTS {db}")
    source.execute(f"CREATE DATABASE {db}")
    source.execute(
        "CREATE TABLE big (id int PRIMARY KEY, v text);"
        "INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 200000) g",
        db,
    )
    if hazard:  # no rule knows it: pg_stat_bgwriter lost checkpoints_timed in 17
        source.execute("CREATE VIEW bgw AS SELECT checkpoints_timed FROM pg_stat_bgwriter", db)


@pytest.mark.parametrize("mode", ["dump", "stream"])
def test_a_refusal_by_the_trial_stops_the_run_before_the_target_changes(
    servers: Any, tmp_path: Path, mode: str
) -> None:
    source, target = servers.get(14), servers.get(18)
    db, role = f"trialref_{secrets.token_hex(2)}", f"trialref_role_{secrets.token_hex(2)}"
    _source_db(source, db, hazard=True)
    source.execute(f"CREATE ROLE {role}")
    try:
        workdir = tmp_path / "w"
        done = pgshift(
            "migrate", source.conninfo(), target.conninfo(), "-d", db, "--workdir", str(workdir), "--mode", mode
        )
        assert done.returncode == 2, done.stderr
        assert "schema-trial" in done.stderr and "checkpoints_timed" in done.stderr, done.stderr
        # Stream mode's trial reads the run's own schema dump; dump mode's dumps the schema itself
        # (the run's dump holds the data too, and would come too late).
        trial_dumped = "schema trial of " + db + ": dumping the schema" in (workdir / "migrate.log").read_text()
        assert trial_dumped == (mode == "dump")
        assert "Traceback" not in done.stderr
        with target.connect("postgres") as conn:
            assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (db,)).fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (role,)).fetchone() == (0,)
        assert scratch_databases(target) == []
        # No pg_dump is left behind, and the journal says how the run ended.
        assert Journal.load(tmp_path / "w").status == "failed"
        leftover = subprocess.run(["pgrep", "-f", f"pg_dump.*dbname={db}"], capture_output=True, text=True)
        assert leftover.stdout == ""
    finally:
        source.execute(f"DROP DATABASE {db}")
        source.execute(f"DROP ROLE {role}")


def test_a_clean_run_changes_the_target_only_after_the_trial(servers: Any, tmp_path: Path) -> None:
    source, target = servers.get(14), servers.get(18)
    db = f"trialok_{secrets.token_hex(2)}"
    _source_db(source, db, hazard=False)
    try:
        done = pgshift(
            "migrate", source.conninfo(), target.conninfo(), "-d", db, "--workdir", str(tmp_path / "w"), "--json"
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["verify"]["equal"]
        log = (tmp_path / "w" / "migrate.log").read_text()
        events = re.findall(r"step +(start|done) (\S+)", log)
        position = {f"{state} {step.rstrip(':')}": i for i, (state, step) in enumerate(events)}
        assert position["start check:trial:" + db] < position[f"start db:{db}:create-database"]
        assert position["done check:trial:" + db] < position[f"start db:{db}:create-database"]
        assert position[f"start db:{db}:dump"] < position["done check:trial:" + db]  # the dump did not wait
    finally:
        source.execute(f"DROP DATABASE {db}")
        target.execute(f"DROP DATABASE IF EXISTS {db}")
