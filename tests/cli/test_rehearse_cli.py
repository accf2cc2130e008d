"""``pgshift rehearse`` as a user runs it: a real source, a real lab server of the target major,
and afterwards no server process, no data directory and no work files left (unless --keep)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgshift.lab import LabServer

SOURCE_MAJOR = 14
TARGET_MAJOR = 17

_SCHEMA = """
CREATE TABLE parent(id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE child(
    id serial PRIMARY KEY,
    parent_id int NOT NULL REFERENCES parent(id),
    note text,
    doubled int GENERATED ALWAYS AS (id * 2) STORED
);
INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 300) g;
INSERT INTO child(parent_id, note) SELECT (g % 300) + 1, repeat('x', 50) FROM generate_series(1, 3000) g;
ANALYZE;
"""


@pytest.fixture
def isolated() -> Iterator[tuple[dict[str, str], Path, Path]]:
    """Lab servers and state of this test only (under /tmp: the lab's unprivileged user must reach it)."""
    base = Path(tempfile.mkdtemp(prefix="pgshift-rehearse-test-", dir="/tmp"))
    base.chmod(0o755)
    lab, state = base / "lab", base / "state"
    for d in (lab, state):
        d.mkdir()
        d.chmod(0o755)
    env = {**os.environ, "PGSHIFT_LAB_DIR": str(lab), "PGSHIFT_STATE_DIR": str(state), "NO_COLOR": "1"}
    env["COLUMNS"] = "200"
    env.pop("PGSHIFT_DEBUG", None)
    try:
        yield env, lab, state
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def source(servers: Any) -> Iterator[tuple[LabServer, str]]:
    """A small database with a foreign key and a generated column on a shared source server."""
    server = servers.get(SOURCE_MAJOR)
    name = f"rh_{uuid.uuid4().hex[:8]}"
    server.execute(f"CREATE DATABASE {name}")
    server.execute(_SCHEMA, name)
    try:
        yield server, name
    finally:
        server.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _pgshift(*args: str) -> list[str]:
    return [sys.executable, "-m", "pgshift", *args]


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_pgshift(*args), env=env, capture_output=True, text=True, timeout=300)


def _processes_using(path: Path) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


def _assert_nothing_left(lab: Path, state: Path) -> None:
    assert list(lab.iterdir()) == [], "lab server directories left behind"
    assert _processes_using(lab) == [], "lab server processes left behind"
    work = state / "work"
    assert not work.exists() or list(work.iterdir()) == [], "rehearsal work files left behind"


def _source_state(server: LabServer, name: str) -> tuple[Any, ...]:
    """What a rehearsal must not change on the source: databases, roles, the rows and the comment."""
    with server.connect() as conn:
        dbs = conn.execute("SELECT datname FROM pg_database ORDER BY 1").fetchall()
        roles = conn.execute("SELECT rolname FROM pg_roles ORDER BY 1").fetchall()
    with server.connect(name) as conn:
        rows = conn.execute("SELECT count(*), sum(id) FROM child").fetchone()
        comment = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = current_database()"
        ).fetchone()
    return (dbs, roles, rows, comment)


def test_rehearse_loads_verifies_reports_figures_and_leaves_nothing_behind(
    isolated: tuple[dict[str, str], Path, Path], source: tuple[LabServer, str]
) -> None:
    env, lab, state = isolated
    server, name = source
    before = _source_state(server, name)
    done = _run(env, "rehearse", server.conninfo(), "--target-version", str(TARGET_MAJOR), "-d", name, "--json")
    assert done.returncode in (0, 1), done.stderr
    doc = json.loads(done.stdout)
    assert doc["kind"] == "rehearse-result" and doc["schema_version"] == 1
    assert doc["verdict"] in ("ready", "ready-with-warnings") and doc["loaded"] and doc["verified"] is True
    assert doc["target_version"].startswith(f"{TARGET_MAJOR}.")
    assert doc["refusals"] == [] and doc["load_error"] is None
    (db,) = doc["databases"]
    assert db["source"] == name and db["status"] == "done"
    assert {"create", "dump", "restore"} <= set(db["seconds"]) and db["total_seconds"] > 0
    assert db["size_bytes"] > 1_000_000 and doc["disk_bytes"] == db["size_bytes"]
    assert {"lab", "check", "migrate", "measure"} <= set(doc["steps"])
    assert doc["check"]["trial"]["ran"] is True and doc["check"]["trial"]["refused"] == 0
    assert doc["migration"]["verify"]["equal"] is True
    assert doc["kept"] is False and doc["lab"]["conninfo"] == "" and doc["left_behind"] == []
    _assert_nothing_left(lab, state)
    assert _source_state(server, name) == before


def test_a_move_that_does_not_load_is_not_ready_with_the_refused_statement_and_its_advice(
    isolated: tuple[dict[str, str], Path, Path], source: tuple[LabServer, str]
) -> None:
    env, lab, state = isolated
    server, name = source
    # force_parallel_mode is gone in 16 (renamed debug_parallel_query): the function's CREATE is refused there.
    server.execute(
        "CREATE FUNCTION public.old_setting() RETURNS int LANGUAGE sql SET force_parallel_mode = off AS 'SELECT 1'",
        name,
    )
    done = _run(env, "rehearse", server.conninfo(), "--target-version", str(TARGET_MAJOR), "-d", name, "--json")
    assert done.returncode == 2, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    assert doc["verdict"] == "not-ready" and doc["loaded"] is False
    refused = [r for r in doc["refusals"] if r["object"] and "old_setting" in r["object"]]
    assert refused, doc["refusals"]
    assert refused[0]["database"] == name and refused[0]["advice"]
    # The load itself was tried, and says where it stopped.
    assert doc["load_error"] and name in doc["load_error"]
    assert doc["databases"][0]["status"] == "failed", doc["databases"]
    assert "NOT READY" in doc["headline"]
    _assert_nothing_left(lab, state)

    console = _run(env, "rehearse", server.conninfo(), "--target-version", str(TARGET_MAJOR), "-d", name)
    assert console.returncode == 2 and "Traceback" not in console.stderr
    assert "NOT READY" in console.stdout and "old_setting" in console.stdout and "the load failed" in console.stdout
    _assert_nothing_left(lab, state)


@pytest.mark.parametrize(
    ("marker", "signum", "code"),
    [
        ("… pgshift check on the lab server", signal.SIGTERM, 143),
        ("… pgshift migrate into the lab server", signal.SIGINT, 130),
        (": restore the schema", signal.SIGTERM, 143),
    ],
    ids=["sigterm-in-check", "ctrl-c-in-migrate", "sigterm-in-restore"],
)
def test_a_signal_at_any_step_removes_the_lab_server_and_exits_with_its_code(
    isolated: tuple[dict[str, str], Path, Path], source: tuple[LabServer, str], marker: str, signum: int, code: int
) -> None:
    env, lab, state = isolated
    server, name = source
    before = _source_state(server, name)
    proc = subprocess.Popen(
        _pgshift("rehearse", server.conninfo(), "--target-version", str(TARGET_MAJOR), "-d", name, "--verbose"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            if marker in line:
                proc.send_signal(signum)
                break
        else:
            pytest.fail("the rehearsal ended before the step began:\n" + "".join(seen))
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = "".join(seen) + err
    assert proc.returncode == code, f"stdout:\n{out}\nstderr:\n{err}"
    assert "nothing is left behind" in err and "Traceback" not in err
    _assert_nothing_left(lab, state)
    assert _source_state(server, name) == before


def test_keep_with_a_sample_leaves_a_server_with_the_schema_and_at_most_n_rows_per_table(
    isolated: tuple[dict[str, str], Path, Path], source: tuple[LabServer, str]
) -> None:
    env, lab, state = isolated
    server, name = source
    done = _run(
        env,
        "rehearse",
        server.conninfo(),
        "--target-version",
        str(TARGET_MAJOR),
        "-d",
        name,
        "--sample-rows",
        "50",
        "--keep",
        "--json",
    )
    doc = json.loads(done.stdout)
    kept = doc["lab"]
    try:
        assert done.returncode in (0, 1), done.stderr
        assert doc["kept"] is True and doc["estimated"] is True
        assert "password" not in kept["conninfo"] and kept["socket_conninfo"]
        sampled = {t["table"]: t for t in doc["sampled"]}
        assert set(sampled) == {"public.parent", "public.child"}
        assert sampled["public.child"]["rows"] == 50 and sampled["public.child"]["scale"] > 10
        (db,) = doc["databases"]
        # Scaled to the full tables: more than the sample holds, of the order of the source.
        assert db["estimated_bytes"] > db["size_bytes"]
        assert db["estimated_data_seconds"] >= db["sample_seconds"]
        # The kept server is reachable without a password, over its socket.
        with psycopg.connect(kept["socket_conninfo"].replace("dbname=postgres", f"dbname={name}")) as conn:
            assert conn.execute("SELECT count(*) FROM parent").fetchone() == (50,)
            assert conn.execute("SELECT count(*) FROM child").fetchone() == (50,)
            # Generated on the target from the copied columns; the foreign key is there.
            assert conn.execute("SELECT bool_and(doubled = id * 2) FROM child").fetchone() == (True,)
            fks = conn.execute("SELECT count(*) FROM pg_constraint WHERE contype = 'f'").fetchone()
            assert fks == (1,)
    finally:
        command = kept.get("stop_command", "")
        if command:
            subprocess.run(command, shell=True, check=False)
    _assert_nothing_left(lab, state)


def test_dry_run_prints_the_rehearsal_and_migration_steps_and_leaves_nothing(
    isolated: tuple[dict[str, str], Path, Path], source: tuple[LabServer, str]
) -> None:
    env, lab, state = isolated
    server, name = source
    before = _source_state(server, name)
    done = _run(
        env, "rehearse", server.conninfo(), "--target-version", str(TARGET_MAJOR), "-d", name, "--dry-run", "--json"
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["kind"] == "rehearse-plan"
    kinds = [s["kind"] for s in doc["steps"]]
    assert kinds == ["lab-start", "check", "migrate", "measure", "lab-stop"]
    migrate_kinds = [s["kind"] for s in doc["migration"]["steps"]]
    assert "dump" in migrate_kinds and "restore-data" in migrate_kinds and "verify" in migrate_kinds
    _assert_nothing_left(lab, state)

    text = _run(env, "rehearse", server.conninfo(), "--target-version", str(TARGET_MAJOR), "-d", name, "--dry-run")
    assert text.returncode == 0
    assert "start a PostgreSQL 17 lab server" in text.stdout and f"db:{name}:dump" in text.stdout
    assert "stop the lab server" in text.stdout
    _assert_nothing_left(lab, state)
    assert _source_state(server, name) == before


@pytest.mark.parametrize("extra", [("--schema-only",), ("--mode", "stream")], ids=["schema-only", "stream"])
def test_schema_only_and_stream_mode_rehearsals(
    isolated: tuple[dict[str, str], Path, Path], source: tuple[LabServer, str], extra: tuple[str, ...]
) -> None:
    env, lab, state = isolated
    server, name = source
    done = _run(env, "rehearse", server.conninfo(), "--target-version", str(TARGET_MAJOR), "-d", name, *extra, "--json")
    assert done.returncode in (0, 1), done.stderr
    doc = json.loads(done.stdout)
    assert doc["loaded"] and doc["verified"] is True
    assert doc["options"]["migrate"]["schema_only" if extra[0] == "--schema-only" else "mode"] in (True, "stream")
    if extra[0] == "--schema-only":
        assert "the schema loaded" in doc["headline"]
    _assert_nothing_left(lab, state)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ((), "--target-version N"),
        (("--target-version", "9.6"), "has no lab server"),
        (("--target-version", "17", "--sample-rows", "5", "--schema-only"), "cannot be used together"),
        (("--target-version", "17", "--sample-rows", "0"), "--sample-rows"),
        (("--target-version", "17", "--remedy", "no-such-remedy"), "no-such-remedy"),
        (("--target-version", "17", "--if-exists", "drop"), "--if-exists"),
    ],
)
def test_bad_input_is_a_usage_error_before_any_server_starts(
    isolated: tuple[dict[str, str], Path, Path], args: tuple[str, ...], said: str
) -> None:
    env, lab, state = isolated
    done = _run(env, "rehearse", "host=127.0.0.1 port=1 user=nobody", *args)
    assert done.returncode == 64, done.stdout + done.stderr
    assert said in done.stderr and "Traceback" not in done.stderr
    _assert_nothing_left(lab, state)


@pytest.mark.docker
def test_docker_rehearsal_loads_into_a_container_and_removes_it(
    isolated: tuple[dict[str, str], Path, Path], source: tuple[LabServer, str]
) -> None:
    from pgshift.errors import ToolchainError
    from pgshift.lab.docker import LABEL_LAB, LABEL_OWNER
    from pgshift.process import docker_client
    from pgshift.toolchain.docker import build_image

    try:
        client = docker_client()
    except ToolchainError as exc:
        pytest.skip(f"no Docker daemon reachable: {exc.message}")
    build_image(TARGET_MAJOR)  # locally, from the cached binaries (reused when it exists)
    env, lab, state = isolated
    server, name = source
    args = ("rehearse", server.conninfo(), "--target-version", str(TARGET_MAJOR), "-d", name, "--docker", "--json")
    proc = subprocess.Popen(_pgshift(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=600)
    doc = json.loads(out)
    assert doc["lab"]["backend"] == "docker" and doc["lab"]["where"].startswith("docker image ")
    assert doc["loaded"] and doc["verified"] is True, err
    assert doc["databases"][0]["size_bytes"] > 1_000_000
    # The containers of this rehearsal carry its process id as owner: none is left.
    ours = [
        c.name
        for c in client.containers.list(all=True, filters={"label": LABEL_LAB})
        if c.labels.get(LABEL_OWNER, "").endswith(f":{proc.pid}")
    ]
    assert ours == [], "the rehearsal's container was left behind"
    _assert_nothing_left(lab, state)
