"""The kitchen sink (every kind of object a major can create) moved by ``pgshift migrate`` as a user
runs it, across pairs in which every supported source and target major appears, then compared by
the tests' own catalog and data queries (tests/fixtures/compare.py) with 0 differences, and by
``pgshift verify``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.compare import GlobalsSnapshot, diff, diff_globals, snapshot, snapshot_globals
from tests.fixtures.kitchen_sink import build, has_icu, loadable_extensions, tablespace_dir

# Every source major 10-18 and every target major 11-18 at least once.
PAIRS = [(10, 11), (10, 18), (11, 16), (12, 17), (13, 18), (14, 18), (15, 16), (16, 17), (17, 18), (18, 18)]
# Stream mode on pairs that reach every old source family (before generated columns, before TID
# range scans, current) and the newest targets.
CASES = [(*p, "dump") for p in PAIRS] + [(10, 18, "stream"), (13, 17, "stream"), (16, 18, "stream")]


def _without_known_bugs(snap: GlobalsSnapshot) -> GlobalsSnapshot:
    """The globals as pgshift carries them (no known loss left: the bugs the fixture found have
    their own tests below)."""
    return snap


def pgshift(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.parametrize(("source_major", "target_major", "mode"), CASES, ids=[f"{a}to{b}-{m}" for a, b, m in CASES])
def test_kitchen_sink_moves_with_no_difference(
    fresh_server: Any, tmp_path: Path, source_major: int, target_major: int, mode: str
) -> None:
    source, target = fresh_server(source_major), fresh_server(target_major)
    # ICU and the optional extensions only where both servers have them: a target without them
    # is a refusal pgshift check reports, not the subject of this test.
    sink = build(
        source,
        icu=has_icu(source) and has_icu(target),
        extensions=loadable_extensions(source) & loadable_extensions(target),
    )
    before = snapshot(source, sink.database)
    roles_before = snapshot_globals(source, sink.prefix)
    # The globals comparison has something to compare: the tablespace, and 15+'s parameter grants.
    assert sink.tablespace is None or sink.tablespace in roles_before.tablespaces
    assert (source_major >= 15) == bool(roles_before.parameter_acls)
    args = [source.conninfo(), target.conninfo(), "--workdir", str(tmp_path / "run"), "--mode", mode]
    if sink.tablespace is not None:
        location = tablespace_dir(target, sink.tablespace)
        assert location is not None
        args += ["--tablespace-map", f"{sink.tablespace}={location}"]

    done = pgshift("migrate", *args)

    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    lines = diff(before, snapshot(target, sink.database))
    assert not lines, f"{source_major}->{target_major}:\n" + "\n".join(lines)
    assert not diff_globals(
        _without_known_bugs(roles_before), _without_known_bugs(snapshot_globals(target, sink.prefix))
    )
    verified = pgshift("verify", source.conninfo(), target.conninfo())
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # The user mapping's password travels in the dump, never in what pgshift prints or logs.
    logs = "".join(p.read_text(errors="replace") for p in (tmp_path / "run").rglob("*.log"))
    assert sink.mapping_password not in output + verified.stdout + verified.stderr + logs


def test_verify_compares_foreign_server_options_as_a_set(fresh_server: Any, tmp_path: Path) -> None:
    """pg_dump writes a server's options sorted by name: the same options in another order on the
    target are no difference. (The kitchen sink writes them sorted until pgshift verify agrees.)"""
    source, target = fresh_server(18), fresh_server(18)
    source.execute("CREATE DATABASE ks_options")
    source.execute(
        "CREATE FOREIGN DATA WRAPPER ks_w; CREATE SERVER ks_s FOREIGN DATA WRAPPER ks_w"
        " OPTIONS (port '1', host 'h', dbname 'd')",
        "ks_options",
    )
    before = snapshot(source, "ks_options")

    done = pgshift("migrate", source.conninfo(), target.conninfo(), "--workdir", str(tmp_path / "run"))

    assert diff(before, snapshot(target, "ks_options")) == []
    assert done.returncode == 0, done.stdout + done.stderr


def test_migrate_carries_tablespace_comments(fresh_server: Any, tmp_path: Path) -> None:
    source, target = fresh_server(18), fresh_server(18)
    where, there = tablespace_dir(source, "ksbug_ts"), tablespace_dir(target, "ksbug_ts")
    assert where is not None and there is not None
    source.execute("CREATE DATABASE ksbug_db")  # migrate moves globals with at least one database
    source.execute(f"CREATE TABLESPACE ksbug_ts LOCATION '{where}'")
    source.execute("COMMENT ON TABLESPACE ksbug_ts IS 'kept?'")
    done = pgshift(
        "migrate",
        source.conninfo(),
        target.conninfo(),
        "--workdir",
        str(tmp_path / "run"),
        "--tablespace-map",
        f"ksbug_ts={there}",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert diff_globals(snapshot_globals(source, "ksbug"), snapshot_globals(target, "ksbug")) == []


def test_migrate_carries_parameter_privileges(fresh_server: Any, tmp_path: Path) -> None:
    source, target = fresh_server(18), fresh_server(18)
    source.execute("CREATE DATABASE ksbug_db")  # migrate moves globals with at least one database
    source.execute("CREATE ROLE ksbug_role")
    source.execute("GRANT SET ON PARAMETER work_mem TO ksbug_role")
    done = pgshift("migrate", source.conninfo(), target.conninfo(), "--workdir", str(tmp_path / "run"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert snapshot_globals(source, "ksbug").parameter_acls
    assert diff_globals(snapshot_globals(source, "ksbug"), snapshot_globals(target, "ksbug")) == []
