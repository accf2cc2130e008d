"""The plan is the program: what ``--dry-run`` shows is what a migration runs, step by step and
statement by statement, in order per database."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pgshift.events import Collector, StepStarted
from pgshift.migrate import MigrateOptions, plan_migration, run_migration
from tests.integration.test_migrate_options import _server_dir

_LOGGED_SQL = re.compile(r"^\S+ sql {5}(?P<sql>.*)$")


def _per_database(ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for step in ids:
        key = step.split(":")[1] if step.startswith("db:") else step
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
    events = Collector()
    result = run_migration(options, sink=events, confirm=lambda _question: True)
    assert result.ok, result.verify_note

    planned = _per_database([s.step for s in plan.steps])
    started = [e.step for e in events.events if isinstance(e, StepStarted)]
    # Before the globals, check's rules (the preflight); inside verify, its own progress steps.
    run_steps = started[started.index("globals") : started.index("verify") + 1]
    executed = _per_database([s for s in run_steps if s != "migrate"])
    assert executed == planned
    assert set(planned) == {"globals", "plan_a", "plan_b", "plan_c", "verify"}

    # Statement by statement: every SQL statement the log shows applied is the plan's, in order.
    log = (tmp_path / "run" / "migrate.log").read_text().splitlines()
    logged = [m["sql"] for line in log if (m := _LOGGED_SQL.match(line))]
    planned_sql = [s.text for s in plan.steps if s.kind == "sql"]

    def same_run(statements: list[str]) -> list[str]:  # the dry run had a run id of its own
        return [re.sub(r"\(run [0-9a-f]+,", "(run ID,", q) for q in statements]

    assert same_run(logged) == same_run(planned_sql)
    assert any("pg_terminate_backend" in q and "plan_c" in q for q in planned_sql)
    assert any(q.startswith("CREATE EXTENSION IF NOT EXISTS") for q in planned_sql)
    assert any(q.startswith("GRANT CREATE ON TABLESPACE") for q in planned_sql)
    with target.connect("plan_a") as conn:
        assert conn.execute("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'hstore'")
        assert conn.execute("SELECT count(*) FROM app.t").fetchone() == (20,)
