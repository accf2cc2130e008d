"""The plan is the program: what ``--dry-run`` shows is what a migration runs, step by step and
statement by statement, in order per database."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pgshift.events import Collector, StepStarted
from pgshift.migrate import MigrateOptions, plan_migration, run_migration
from pgshift.report.migrate import render_plan_markdown
from tests.integration.test_migrate_options import _server_dir

_LOGGED_SQL = re.compile(r"^\S+ sql {5}(?P<sql>.*)$")


def _per_database(ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for step in ids:
        key = step.split(":")[1] if step.startswith("db:") else step.split(":")[0]
        if not out.get(key) or out[key][-1] != step:
            out.setdefault(key, []).append(step)
    return out


def test_dry_run_equals_execution_for_a_cluster_with_roles_tablespaces_filters_and_a_pre13_target(
    fresh_server: Any, tmp_path: Path
) -> None:
    source, target = fresh_server(11), fresh_server(12)
    old, new = _server_dir(tmp_path / "ts-old"), _server_dir(tmp_path / "ts-new")
    source.execute(
        "CREATE ROLE plan_alice LOGIN; CREATE ROLE plan_grp; GRANT plan_grp TO plan_alice;"
        "ALTER ROLE plan_alice SET work_mem = '5MB';"
    )
    source.execute(f"CREATE TABLESPACE plan_fast LOCATION '{old}'")
    source.execute("GRANT CREATE ON TABLESPACE plan_fast TO plan_grp")
    for db in ("plan_a", "plan_b", "plan_c"):
        source.execute(f"CREATE DATABASE {db} OWNER plan_alice")
        source.execute(f"COMMENT ON DATABASE {db} IS 'database {db}'")
        source.execute("ALTER ROLE plan_alice IN DATABASE " + db + " SET search_path = app, public")
        source.execute(
            "CREATE SCHEMA app; CREATE SCHEMA ext; CREATE EXTENSION hstore SCHEMA ext;"
            "CREATE TABLE app.t (x int) TABLESPACE plan_fast; INSERT INTO app.t SELECT generate_series(1, 20)",
            db,
        )
    # A database the target has already: dropped first, and before 13 its sessions are ended first.
    target.execute("CREATE DATABASE plan_c")
    options = MigrateOptions(
        source=source.endpoint("source"),
        target=target.endpoint("target"),
        workdir=tmp_path / "run",
        databases=("plan_a", "plan_b", "plan_c"),
        schemas=("app",),  # the extension's schema is outside the dump: pgshift creates it itself
        tablespace_map={"plan_fast": str(new)},
        if_exists="drop",
        jobs=1,  # one database at a time: the log's order is the plan's order
    )
    plan = plan_migration(options)
    # The same typed plan in every rendering: each step with its kind, what it runs and where.
    markdown = render_plan_markdown(plan)
    document = plan.as_dict()["steps"]
    assert [d["id"] for d in document] == [s.id for s in plan.steps]
    assert all(s.id in markdown for s in plan.steps)
    assert {d["kind"] for d in document} >= {"create-roles", "create-tablespaces", "dump", "restore-data", "verify"}
    assert all(d["program"] or d["sql"] or d["kind"] in ("finish", "verify", "reuse-dump") for d in document)
    events = Collector()
    result = run_migration(options, sink=events, confirm=lambda _question: True)
    assert result.ok, result.verify_note

    planned = _per_database([s.id for s in plan.steps])
    ids = {s.id for s in plan.steps}
    # Check's rules (the preflight) and verify's own progress are steps of their own, not the plan's.
    executed = _per_database([e.step for e in events.events if isinstance(e, StepStarted) and e.step in ids])
    assert executed == planned
    assert set(planned) == {"globals", "plan_a", "plan_b", "plan_c", "verify"}
    assert planned["plan_c"] == [
        f"db:plan_c:{kind}"
        for kind in (
            "dump",
            "drop-database",
            "create-database",
            "restore-schema",
            "restore-data",
            "restore-triggers",
            "database-settings",
            "analyze",
            "finish",
        )
    ]
    for step in plan.steps:  # each step waits for the one before it in its database (or the globals)
        assert all(dep in ids for dep in step.after)
    # A dump reads the source alone: it waits for nothing (the runner takes it ahead, beside the
    # schema trial); the first step on the target waits for the dump and for the globals.
    by_id = {s.id: s for s in plan.steps}
    assert by_id["db:plan_c:dump"].after == ()
    assert "db:plan_c:dump" in by_id["db:plan_c:drop-database"].after
    assert {s.id for s in plan.steps_of(None) if s.kind != "verify"} <= set(by_id["db:plan_c:drop-database"].after)

    # Statement by statement: every SQL statement the log shows applied is the plan's, in order.
    log = (tmp_path / "run" / "migrate.log").read_text().splitlines()
    logged = [m["sql"] for line in log if (m := _LOGGED_SQL.match(line))]
    planned_sql = [a.statement.display() for s in plan.steps for a in s.sql]

    def same_run(statements: list[str]) -> list[str]:  # the dry run had a run id of its own
        return [re.sub(r"\(run [0-9a-f]+,", "(run ID,", q) for q in statements]

    assert same_run(logged) == same_run(planned_sql)
    assert any("pg_terminate_backend" in q and "plan_c" in q for q in planned_sql)
    assert any(q.startswith("CREATE EXTENSION IF NOT EXISTS") for q in planned_sql)
    assert any(q.startswith("GRANT CREATE ON TABLESPACE") for q in planned_sql)
    with target.connect("plan_a") as conn:
        assert conn.execute("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'hstore'")
        assert conn.execute("SELECT count(*) FROM app.t").fetchone() == (20,)
