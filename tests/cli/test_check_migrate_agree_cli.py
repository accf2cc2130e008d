"""``pgshift check`` and ``pgshift migrate`` give one verdict on the same facts, and a check whose
schema trial could not run does not report "ready"."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgshift.checks.rules import ALL_RULES
from pgshift.migrate.preflight import HANDLED_BY_MIGRATE


def pgshift(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgshift", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def target(servers: Any) -> Any:
    return servers.get(18)


@pytest.fixture
def source(fresh_server: Any) -> Any:
    """A source of its own: without --database both commands take every database it has."""
    server = fresh_server(14)
    server.execute("CREATE DATABASE moved")
    server.execute("CREATE TABLE t (a int); INSERT INTO t VALUES (1)", "moved")
    server.execute("CREATE DATABASE closed")
    server.execute("ALTER DATABASE closed ALLOW_CONNECTIONS false")
    return server


def _target_databases(target: Any) -> set[str]:
    with target.connect() as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}


def test_a_database_refusing_connections_gets_one_verdict_in_check_and_migrate(
    source: Any, target: Any, tmp_path: Path
) -> None:
    before = _target_databases(target)
    check = pgshift("check", source.conninfo(), target.conninfo(), "--no-trial", "--json")
    doc = json.loads(check.stdout)
    found = [f for f in doc["findings"] if f["rule_id"] == "datallowconn-false"]
    assert [(f["severity"], f["database"]) for f in found] == [("warning", "closed")], check.stdout
    assert "leaves it out" in found[0]["message"]
    assert check.returncode == 1, check.stderr
    migrate = pgshift(
        "migrate", source.conninfo(), target.conninfo(), "--dry-run", "--json", "--workdir", str(tmp_path / "w")
    )
    # Both go ahead without it, and both say so: a warning, not a refusal.
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    assert "'closed' does not accept connections (datallowconn = false)" in migrate.stdout + migrate.stderr
    plan = json.loads(migrate.stdout)
    assert "closed" not in json.dumps(plan.get("databases", plan))

    # Named, it refuses both, with the same message and exit code.
    check = pgshift("check", source.conninfo(), target.conninfo(), "--no-trial", "-d", "closed")
    migrate = pgshift(
        "migrate", source.conninfo(), target.conninfo(), "-d", "closed", "--dry-run", "--workdir", str(tmp_path / "n")
    )
    assert (check.returncode, migrate.returncode) == (2, 2), check.stderr + migrate.stderr
    for done in (check, migrate):
        assert "database 'closed' does not accept connections (datallowconn = false)" in done.stderr
        assert "ALLOW_CONNECTIONS true" in done.stderr and "Traceback" not in done.stderr
    assert _target_databases(target) == before


def test_every_rule_migrate_decides_itself_exists() -> None:
    """HANDLED_BY_MIGRATE names rules of check whose verdict migrate's preflight makes with its own
    options; a name there that is no rule hides nothing but means the list has drifted."""
    ids = {r.id for r in ALL_RULES}
    assert ids >= HANDLED_BY_MIGRATE, HANDLED_BY_MIGRATE - ids


def test_check_whose_trial_cannot_create_its_scratch_database_is_not_ready(
    servers: Any, target: Any, tmp_path: Path
) -> None:
    source = servers.get(14)
    name = "cm" + secrets.token_hex(3)
    password = secrets.token_hex(12)
    source.execute(f"CREATE DATABASE {name}")
    source.execute("CREATE TABLE t (a int)", name)
    target.execute(f"CREATE ROLE {name} LOGIN NOCREATEDB NOSUPERUSER PASSWORD '{password}'")
    params = conninfo_to_dict(target.conninfo())
    params.pop("password", None)
    params["user"] = name
    limited = make_conninfo(**params)
    env = {"PGPASSWORD": password}
    try:
        check = pgshift("check", source.conninfo(), limited, "-d", name, "--json", env=env)
        doc = json.loads(check.stdout)
        assert doc["trial"]["ran"] is False
        notrun = [f for f in doc["findings"] if f["rule_id"] == "schema-trial"]
        assert [f["severity"] for f in notrun] == ["warning"], check.stdout
        assert "did not run" in notrun[0]["message"] and "CREATEDB" in notrun[0]["message"]
        assert "--no-trial" in notrun[0]["remediation"]
        # The role's missing CREATEDB stops the move itself: check's blocker and migrate's refusal agree.
        assert any(f["rule_id"] == "target-privileges" and f["severity"] == "blocker" for f in doc["findings"])
        assert check.returncode == 2
        migrate = pgshift(
            "migrate", source.conninfo(), limited, "-d", name, "--dry-run", "--workdir", str(tmp_path / "w"), env=env
        )
        assert migrate.returncode == 2, migrate.stderr
        assert "may not create databases" in migrate.stderr
    finally:
        target.execute(f"DROP ROLE {name}")
        source.execute(f"DROP DATABASE {name}")


def test_offline_check_whose_lab_server_cannot_start_warns_and_exits_1(servers: Any, tmp_path: Path) -> None:
    source = servers.get(14)
    name = "cm" + secrets.token_hex(3)
    source.execute(f"CREATE DATABASE {name}")
    source.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC", name)  # 14's default is a warning of its own
    try:
        # An empty cache: no server binaries of 18 for the lab server the trial needs.
        env = {"PGSHIFT_CACHE_DIR": str(tmp_path / "cache")}
        done = pgshift("check", source.conninfo(), "--target-version", "18", "--trial", "-d", name, "--json", env=env)
        doc = json.loads(done.stdout)
        assert doc["trial"]["ran"] is False
        notrun = [f for f in doc["findings"] if f["rule_id"] == "schema-trial"]
        assert [f["severity"] for f in notrun] == ["warning"], done.stdout
        assert "pgshift toolchain install 18" in notrun[0]["message"]
        assert not [f for f in doc["findings"] if f["severity"] == "blocker"], doc["findings"]
        assert done.returncode == 1, done.stderr
        without = pgshift("check", source.conninfo(), "--target-version", "18", "--no-trial", "-d", name, env=env)
        assert without.returncode == 0, without.stdout + without.stderr
    finally:
        source.execute(f"DROP DATABASE {name}")


def _plant_existing(source: Any, target: Any, name: str) -> tuple[list[str], str]:
    target.execute(f"CREATE DATABASE {name}")
    target.execute("CREATE TABLE other (a int)", name)
    return [], "target-database-exists"


def _plant_unreadable(source: Any, target: Any, name: str) -> tuple[list[str], str]:
    source.execute(f"CREATE ROLE {name} LOGIN PASSWORD 'x{name}'")
    source.execute(f"CREATE TABLE secret (a int); GRANT CONNECT ON DATABASE {name} TO {name}", name)
    return [f"user={name}", f"password=x{name}"], "source-read-privileges"


def _plant_many_jobs(source: Any, target: Any, name: str) -> tuple[list[str], str]:
    return ["--jobs=500"], "connections-for-jobs"


@pytest.mark.parametrize("plant", [_plant_existing, _plant_unreadable, _plant_many_jobs], ids=lambda p: p.__name__)
def test_rules_migrate_decides_itself_stop_both_commands(servers: Any, target: Any, tmp_path: Path, plant: Any) -> None:
    """The rules of HANDLED_BY_MIGRATE are judged by migrate's preflight, not by check's findings:
    on the same source and target, with migrate's defaults, check blocks exactly when migrate refuses."""
    source = servers.get(14)
    name = "cm" + secrets.token_hex(3)
    source.execute(f"CREATE DATABASE {name}")
    source.execute("CREATE TABLE t (a int)", name)
    try:
        extra, rule = plant(source, target, name)
        src = source.conninfo()
        args = [a for a in extra if a.startswith("--")]
        as_role = dict(a.split("=", 1) for a in extra if not a.startswith("--"))
        if as_role:
            params = conninfo_to_dict(src)
            params.update(as_role)
            src = make_conninfo(**params)
        assert rule in HANDLED_BY_MIGRATE
        check = pgshift("check", src, target.conninfo(), "-d", name, "--no-trial", "--json", *args)
        doc = json.loads(check.stdout)
        assert any(f["rule_id"] == rule and f["severity"] == "blocker" for f in doc["findings"]), check.stdout
        migrate = pgshift(
            "migrate", src, target.conninfo(), "-d", name, "--dry-run", "--workdir", str(tmp_path / "w"), *args
        )
        assert (check.returncode, migrate.returncode) == (2, 2), migrate.stdout + migrate.stderr
        assert "Traceback" not in migrate.stderr
    finally:
        with target.connect() as conn:
            conn.autocommit = True
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
        source.execute(f"DROP DATABASE {name}")
        source.execute(f"DROP ROLE IF EXISTS {name}")


def test_a_downgrade_stops_check_and_migrate_alike(servers: Any, tmp_path: Path) -> None:
    newer, older = servers.get(18), servers.get(14)
    name = "cm" + secrets.token_hex(3)
    newer.execute(f"CREATE DATABASE {name}")
    try:
        check = pgshift("check", newer.conninfo(), older.conninfo(), "-d", name, "--no-trial", "--json")
        doc = json.loads(check.stdout)
        assert any(f["rule_id"] == "target-older-than-source" for f in doc["findings"]), check.stdout
        migrate = pgshift(
            "migrate", newer.conninfo(), older.conninfo(), "-d", name, "--dry-run", "--workdir", str(tmp_path / "w")
        )
        assert (check.returncode, migrate.returncode) == (2, 2), migrate.stderr
        assert "--allow-downgrade" in migrate.stderr
    finally:
        newer.execute(f"DROP DATABASE {name}")
