"""Exit 3 says "cannot connect: the target is untouched". A connection lost after the run changed
the target is no such case: it exits 5, says what was changed, and ``--resume`` finishes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROLES = 3000


def test_source_lost_while_roles_are_created_exits_5_naming_the_change(fresh_server: Any, tmp_path: Path) -> None:
    source, target = fresh_server(13), fresh_server(17)
    source.execute(f"DO $$ BEGIN FOR i IN 1..{ROLES} LOOP EXECUTE format('CREATE ROLE r%s', i); END LOOP; END $$")
    source.execute("CREATE DATABASE app")
    workdir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgshift", "migrate", source.conninfo(), target.conninfo(), "--workdir", str(workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The source then refuses every new connection (its pg_hba.conf rejects all), as a stopped one
    # would; the session held here puts it back for the resume.
    held = source.connect()
    hba = Path(held.execute("SHOW hba_file").fetchone()[0])
    allowed = hba.read_text()
    deadline = time.monotonic() + 240
    made = 0
    while time.monotonic() < deadline and proc.poll() is None:
        with target.connect() as conn:
            made = conn.execute("SELECT count(*) FROM pg_roles WHERE rolname ~ '^r[0-9]+$'").fetchone()[0]
        if made > 50:
            hba.write_text("local all all reject\nhost all all 0.0.0.0/0 reject\nhost all all ::/0 reject\n")
            held.execute("SELECT pg_reload_conf()")
            break
        time.sleep(0.05)
    _out, err = proc.communicate(timeout=300)
    assert made > 50, "the roles were created before the source could be stopped"
    assert proc.returncode == 5, err
    assert "the target was already changed" in err and "role(s) created" in err, err
    assert "--resume" in err and "Traceback" not in err

    hba.write_text(allowed)
    held.execute("SELECT pg_reload_conf()")
    held.close()
    resumed = subprocess.run(
        [sys.executable, "-m", "pgshift", "migrate", "--resume", str(workdir), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["ok"]
    with target.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname ~ '^r[0-9]+$'").fetchone()[0] == ROLES
