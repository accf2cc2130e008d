"""A verification that failed because the source moved on is completed by ``--resume``: the tables
that differ (and those referencing them) are copied again in a new snapshot, verified in it, and
never over rows something else wrote on the target."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE parent (id int PRIMARY KEY, name text);
CREATE TABLE child (id serial PRIMARY KEY, parent_id int NOT NULL REFERENCES parent, note text);
CREATE TABLE audit (id serial PRIMARY KEY, what text);
CREATE TABLE quiet (id int PRIMARY KEY);
CREATE FUNCTION log_child() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO audit (what) VALUES ('child ' || NEW.id); RETURN NEW; END$$;
CREATE TRIGGER child_audit AFTER INSERT ON child FOR EACH ROW EXECUTE PROCEDURE log_child();
INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 50) g;
INSERT INTO child (parent_id, note) SELECT 1 + g % 50, 'n' || g FROM generate_series(1, 300) g;
INSERT INTO quiet SELECT generate_series(1, 10);
"""

# Written on the source after the move's verification: parent and child move on, quiet does not.
MOVES_ON = """
INSERT INTO parent SELECT g, 'late' || g FROM generate_series(51, 60) g;
INSERT INTO child (parent_id, note) SELECT 51 + g % 10, 'late' FROM generate_series(1, 25) g;
UPDATE parent SET name = 'renamed' WHERE id = 7;
"""


def _pgshift(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, env=env)


def _one(server: Any, dbname: str, query: str) -> Any:
    with server.connect(dbname) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def _moved_then_source_moved_on(servers: Any, tmp_path: Path, db: str) -> tuple[Any, Any, list[str]]:
    """A finished move whose verification then fails: pgshift was killed once its verify had run (the
    dumps' snapshots ended with it), the source took writes, and a resume verified against them."""
    source, target = servers.get(13), servers.get(16)
    for server in (source, target):
        server.execute(f"DROP DATABASE IF EXISTS {db}")
    source.execute(f"CREATE DATABASE {db}")
    source.execute(SCHEMA, db)
    args = ["migrate", source.conninfo(), target.conninfo(), "-d", db, "--jobs", "1", "--workdir", str(tmp_path / "w")]
    killed = _pgshift(*args, env={**os.environ, "PGSHIFT_INJECT_CRASH_IN_STEP": "verify"})
    assert killed.returncode == -9, killed.stderr
    source.execute(MOVES_ON, db)
    resume = ["migrate", "--resume", str(tmp_path / "w"), source.conninfo(), target.conninfo()]
    failed = _pgshift(*resume)
    assert failed.returncode == 5, failed.stderr
    assert "dumped by an earlier attempt" in failed.stderr
    assert "a resume copies again the 3 table(s) verify found different" in failed.stderr
    return source, target, resume


def test_a_resume_copies_again_what_moved_on_and_verifies_it(servers: Any, tmp_path: Path) -> None:
    db = "recopy_ok"
    source, target, resume = _moved_then_source_moved_on(servers, tmp_path, db)
    quiet_xmin = _one(target, db, "SELECT min(xmin::text) FROM quiet")

    plan = _pgshift(*resume, "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert f"db:{db}:recopy" in plan.stdout
    shown = " ".join(plan.stdout.split())  # as the console wrapped it
    assert (
        "copy again what verify found different: public.audit, public.parent, public.child" in shown
    )  # referenced first

    # Killed once the copy committed, before the journal heard of it: the next attempt sees its own
    # copy on the target (the fingerprints it journaled before the commit) and does not refuse it.
    killed = _pgshift(*resume, env={**os.environ, "PGSHIFT_INJECT_CRASH_IN_STEP": "recopy"})
    assert killed.returncode == -9, killed.stderr
    done = _pgshift(*resume)
    assert done.returncode == 0, done.stderr
    assert f"while db:{db}:recopy was running" in " ".join(done.stderr.split())
    assert "an earlier attempt copied the tables again" in (tmp_path / "w" / "migrate.log").read_text()
    assert "verify: source and target are equal" in done.stdout
    # audit moved on too: the source's trigger wrote to it for the late rows of child.
    for table in ("parent", "child", "audit", "quiet"):
        query = f"SELECT count(*), md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} t"
        with source.connect(db) as s, target.connect(db) as t:
            assert s.execute(query).fetchone() == t.execute(query).fetchone(), table
    assert _one(target, db, "SELECT name FROM parent WHERE id = 7") == "renamed"
    # The audit trigger did not fire for the copied rows (audit equals the source's), and it is
    # enabled again as it was.
    assert _one(target, db, "SELECT tgenabled::text FROM pg_trigger WHERE tgname = 'child_audit'") == "O"
    # The table that did not move on was left alone; the sequence covers the copied rows.
    assert _one(target, db, "SELECT min(xmin::text) FROM quiet") == quiet_xmin
    assert _one(target, db, "SELECT last_value FROM child_id_seq") >= _one(target, db, "SELECT max(id) FROM child")
    for server in (source, target):
        server.execute(f"DROP DATABASE {db}")


def test_a_resume_never_copies_over_rows_written_on_the_target(servers: Any, tmp_path: Path) -> None:
    db = "recopy_refused"
    source, target, resume = _moved_then_source_moved_on(servers, tmp_path, db)
    target.execute("INSERT INTO parent VALUES (1000, 'written on the target')", db)
    refused = _pgshift(*resume)
    assert refused.returncode == 5, refused.stderr
    assert "changed on the target since verify compared them: public.parent" in refused.stderr
    assert _one(target, db, "SELECT count(*) FROM parent WHERE id = 1000") == 1
    assert _one(target, db, "SELECT count(*) FROM child") == 300  # nothing copied, nothing truncated
    for server in (source, target):
        server.execute(f"DROP DATABASE {db}")
