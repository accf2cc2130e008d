"""No trigger fires while dump mode loads the data: pg_restore -j creates a table's trigger once the
table's data is in, but a partitioned table has none of its own, so its trigger (which reaches every
partition) could be made while partitions still load, and fire on their rows. The data step leaves
the triggers and their comments out; restore-triggers makes them after all the data, leaving out
those a cut-short attempt made already."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from pgshift.migrate.journal import Journal
from tests.fixtures.moves import move, new_database

PARTITIONS = 24


def pgshift(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, timeout=300)


SCHEMA = (
    "CREATE TABLE audit (id serial PRIMARY KEY, tbl text, op text);"
    "CREATE FUNCTION log_row() RETURNS trigger LANGUAGE plpgsql AS"
    " $$BEGIN INSERT INTO audit (tbl, op) VALUES (TG_TABLE_NAME, TG_OP); RETURN NULL; END$$;"
    "CREATE TABLE events (id int, part int, v text) PARTITION BY LIST (part);"
    + "".join(f"CREATE TABLE events_{i} PARTITION OF events FOR VALUES IN ({i});" for i in range(PARTITIONS))
    + f"INSERT INTO events SELECT g, g % {PARTITIONS}, md5(g::text) FROM generate_series(1, 48000) g;"
    "CREATE TRIGGER events_log AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION log_row();"
    "COMMENT ON TRIGGER events_log ON events IS 'audits inserts';"
    "CREATE TABLE plain (id int PRIMARY KEY);"
    "CREATE TRIGGER plain_log AFTER INSERT ON plain FOR EACH ROW EXECUTE FUNCTION log_row();"
    "ALTER TABLE plain DISABLE TRIGGER plain_log;"
    "INSERT INTO audit (tbl, op) VALUES ('before', 'the move');"
)


def _triggers(conn: Any) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT c.relname, t.tgname, t.tgenabled, obj_description(t.oid, 'pg_trigger')"
        " FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal ORDER BY 1, 2"
    ).fetchall()


def test_no_trigger_fires_while_the_data_loads(servers: Any, tmp_path: Path) -> None:
    source, target = servers.get(16), servers.get(17)
    db = "trigger_race"
    new_database(source, target, db, SCHEMA)
    workdir = tmp_path / "run"
    move(source, target, db, workdir, jobs=2)
    with source.connect(db) as sconn, target.connect(db) as tconn:
        assert tconn.execute("SELECT count(*) FROM audit").fetchone() == (1,)
        assert _triggers(tconn) == _triggers(sconn)
        assert len(_triggers(tconn)) == PARTITIONS + 2  # the clones on each partition, and plain's
    journal = Journal.load(workdir)
    assert journal.step(f"db:{db}:restore-data").artifacts.get("triggers_deferred") is True
    # Made by restore-triggers: events' and plain's triggers and the comment (a crash in that step is
    # tests/cli/test_migrate_crash_each_step.py's).
    assert journal.step(f"db:{db}:restore-triggers").artifacts.get("triggers") == 3


def test_a_restore_of_a_backup_set_makes_the_triggers_after_the_data(servers: Any, tmp_path: Path) -> None:
    """pgshift restore runs pg_restore -j too: the same restore-triggers step, with and without remedies."""
    source, target = servers.get(16), servers.get(17)
    db = "trigger_set"
    new_database(source, target, db, SCHEMA)
    sets = tmp_path / "sets"
    made = pgshift("backup", source.conninfo(), "--to", str(sets), "-d", db, "--json")
    assert made.returncode == 0, made.stderr
    path = json.loads(made.stdout)["path"]
    plan = pgshift("restore", path, target.conninfo(), "--dry-run", "--json")
    assert plan.returncode == 0, plan.stderr
    kinds = [s["kind"] for s in json.loads(plan.stdout)["steps"] if s["database"] == db]
    assert kinds.index("restore-archive") < kinds.index("restore-triggers"), kinds
    done = pgshift("restore", path, target.conninfo(), "--workdir", str(tmp_path / "run"), "--json")
    assert done.returncode == 0, done.stderr
    with source.connect(db) as sconn, target.connect(db) as tconn:
        assert tconn.execute("SELECT count(*) FROM audit").fetchone() == (1,)
        assert _triggers(tconn) == _triggers(sconn)
