"""``pgshift migrate`` as a user runs it: bad input and faults give one clear message, a documented
exit code and no traceback, and leave either an untouched target or a resumable journal."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pgshift.lab import LabServer
from tests.fixtures.journal import journal_of, step_state


def pgshift(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def databases(server: LabServer) -> set[str]:
    with server.connect() as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE NOT datistemplate").fetchall()}


def counts(server: LabServer, dbname: str) -> dict[str, int]:
    """The test's own exact row counts of every user table."""
    with server.connect(dbname) as conn:
        tables = conn.execute(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'"
        ).fetchall()
        return {t: conn.execute(f"SELECT count(*) FROM ONLY {t}").fetchone()[0] for (t,) in tables}


def assert_clean_failure(done: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert "error:" in done.stderr
    for needle in needles:
        assert needle in done.stderr, done.stderr


def test_unreachable_host_is_reported_within_connect_timeout(fresh_server: Any, tmp_path: Path) -> None:
    target = fresh_server(17)
    started = time.monotonic()
    done = pgshift("migrate", "host=10.255.255.1 connect_timeout=2 user=postgres", target.conninfo())
    assert_clean_failure(done, 3, "cannot connect to the source", "hint:")
    assert time.monotonic() - started < 30


def test_wrong_password_exits_3_without_showing_it(fresh_server: Any) -> None:
    source = fresh_server(16)
    target = fresh_server(17, password="right-one")
    done = pgshift("migrate", source.conninfo(), target.conninfo(password="Wrong-Pw-42"))
    assert_clean_failure(done, 3, "password authentication failed", "hint:")
    assert "Wrong-Pw-42" not in done.stderr + done.stdout


def test_missing_database_in_the_connection_string_exits_3(fresh_server: Any) -> None:
    source = fresh_server(16)
    target = fresh_server(17)
    done = pgshift("migrate", source.conninfo("no_such_db"), target.conninfo())
    assert_clean_failure(done, 3, "no_such_db")


def test_existing_target_database_is_refused_and_left_untouched(fresh_server: Any, tmp_path: Path) -> None:
    source, target = fresh_server(16), fresh_server(17)
    source.execute("CREATE DATABASE app")
    source.execute("CREATE TABLE t AS SELECT generate_series(1, 10) AS a", "app")
    target.execute("CREATE DATABASE app")
    target.execute("CREATE TABLE mine AS SELECT 1 AS keep", "app")
    done = pgshift("migrate", source.conninfo(), target.conninfo(), "--workdir", str(tmp_path / "run"))
    assert_clean_failure(done, 2, "already has database 'app'", "--if-exists drop")
    assert counts(target, "app") == {"public.mine": 1}
    assert not (tmp_path / "run").exists()
    # Without --yes and without a terminal, a drop is not confirmed.
    done = pgshift("migrate", source.conninfo(), target.conninfo(), "--if-exists", "drop")
    assert_clean_failure(done, 2, "not confirmed", "--yes")
    assert counts(target, "app") == {"public.mine": 1}
    skipped = pgshift("migrate", source.conninfo(), target.conninfo(), "--if-exists", "skip", "--json")
    assert skipped.returncode == 0, skipped.stderr
    assert [d["status"] for d in json.loads(skipped.stdout)["databases"]] == ["skipped"]
    assert counts(target, "app") == {"public.mine": 1}
    replaced = pgshift("migrate", source.conninfo(), target.conninfo(), "--if-exists", "drop", "--yes", "--json")
    assert replaced.returncode == 0, replaced.stderr
    assert counts(target, "app") == {"public.t": 10}


def test_no_suitable_client_exits_4(fresh_server: Any, tmp_path: Path) -> None:
    source, target = fresh_server(16), fresh_server(17)
    source.execute("CREATE DATABASE app")
    env = {
        **os.environ,
        "PGSHIFT_CACHE_DIR": str(tmp_path / "empty"),
        "PATH": str(Path(sys.executable).parent),
        "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock",  # the Docker fallback is unreachable too
    }
    env.pop("PGSHIFT_PG_BIN", None)
    done = pgshift("migrate", source.conninfo(), target.conninfo(), env=env)
    assert_clean_failure(done, 4, "no installed PostgreSQL client", "pgshift toolchain install")
    assert databases(target) == {"postgres"}


def test_extension_missing_on_the_target_is_refused_before_anything_is_touched(fresh_server: Any) -> None:
    source, target = fresh_server(14), fresh_server(17)
    source.execute("CREATE DATABASE app")
    source.execute("CREATE EXTENSION adminpack", "app")  # removed in 17
    done = pgshift("migrate", source.conninfo(), target.conninfo())
    assert_clean_failure(done, 2, "adminpack", "install the package")
    assert databases(target) == {"postgres"}


def test_unreadable_tables_are_named_before_anything_is_touched(fresh_server: Any) -> None:
    source, target = fresh_server(16), fresh_server(17)
    source.execute("CREATE ROLE migrator LOGIN")
    source.execute("CREATE DATABASE app")
    source.execute(
        "CREATE TABLE open_t (a int); CREATE TABLE secret_t (a int); GRANT SELECT ON open_t TO migrator", "app"
    )
    done = pgshift("migrate", source.conninfo(user="migrator"), target.conninfo())
    assert_clean_failure(done, 2, "table public.secret_t", "pg_read_all_data")
    assert databases(target) == {"postgres"}


def test_too_many_jobs_for_the_free_connections_is_refused(fresh_server: Any) -> None:
    source, target = fresh_server(16), fresh_server(17)
    source.execute("CREATE DATABASE app")
    done = pgshift("migrate", source.conninfo(), target.conninfo(), "--jobs", "70")
    assert_clean_failure(done, 2, "free connection", "lower --jobs")
    assert databases(target) == {"postgres"}


def test_dry_run_prints_every_command_and_touches_nothing(fresh_server: Any, tmp_path: Path) -> None:
    source, target = fresh_server(15), fresh_server(18)
    source.execute("CREATE ROLE app_owner")
    source.execute("CREATE DATABASE app OWNER app_owner")
    done = pgshift("migrate", source.conninfo(), target.conninfo(), "--dry-run", "--workdir", str(tmp_path / "w"))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "same major as the target" in out
    for needle in ("pg_dumpall --globals-only", 'CREATE ROLE "app_owner"', 'CREATE DATABASE "app" TEMPLATE template0'):
        assert needle in out
    assert out.index("pg_dump --format=directory") < out.index("pg_restore") < out.index("ANALYZE")
    plan = json.loads(pgshift("migrate", source.conninfo(), target.conninfo(), "--dry-run", "--json").stdout)
    assert plan["kind"] == "migrate-plan" and [d["source"] for d in plan["databases"]] == ["app"]
    assert databases(target) == {"postgres"}
    assert not (tmp_path / "w").exists()
    with target.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'app_owner'").fetchone()[0] == 0


def test_a_failing_restore_statement_names_the_object_and_the_fix_then_resume_finishes(
    fresh_server: Any, tmp_path: Path
) -> None:
    source, target = fresh_server(16), fresh_server(18)
    source.execute("CREATE ROLE app_owner")
    source.execute("CREATE DATABASE app")
    source.execute("CREATE TABLE t AS SELECT generate_series(1, 100) AS a; ALTER TABLE t OWNER TO app_owner", "app")
    workdir = tmp_path / "run"
    done = pgshift("migrate", source.conninfo(), target.conninfo(), "--no-globals", "--workdir", str(workdir))
    assert_clean_failure(
        done, 5, "failed on TABLE t (owner app_owner)", 'role "app_owner" does not exist', "ALTER TABLE public.t OWNER"
    )
    assert "--no-owner --no-privileges" in done.stderr and f"--resume {workdir}" in done.stderr
    assert journal_of(workdir).status == "failed"  # type: ignore[union-attr]
    target.execute("CREATE ROLE app_owner")
    resumed = pgshift("migrate", "--resume", str(workdir), "--json")
    assert resumed.returncode == 0, resumed.stderr
    doc = json.loads(resumed.stdout)
    assert doc["ok"] and doc["resumed"] and doc["databases"][0]["status"] == "done"
    assert counts(target, "app") == {"public.t": 100}


def _big_source(source: LabServer) -> None:
    """A database whose restore takes seconds on any machine: every restored row of ``slow`` runs a
    CHECK that sleeps 20 ms (the function only starts sleeping after the source was loaded)."""
    source.execute("CREATE DATABASE big")
    source.execute(
        "CREATE FUNCTION ok(int) RETURNS boolean IMMUTABLE LANGUAGE sql AS 'SELECT true';"
        "CREATE TABLE slow (id int PRIMARY KEY CHECK (ok(id)));"
        "INSERT INTO slow SELECT generate_series(1, 300);"
        "CREATE TABLE plain AS SELECT g AS id, md5(g::text) AS t FROM generate_series(1, 20000) g;"
        "CREATE OR REPLACE FUNCTION ok(int) RETURNS boolean IMMUTABLE LANGUAGE sql "
        "AS 'SELECT pg_sleep(0.02) IS NOT NULL';",
        "big",
    )
    source.execute("CREATE DATABASE small")
    source.execute("CREATE TABLE s AS SELECT generate_series(1, 5) AS a", "small")


def _children_working_in(workdir: Path) -> list[str]:
    """Command lines of processes whose arguments name the work directory (pg_dump, pg_restore)."""
    found = []
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (proc_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if str(workdir) in cmdline and "pytest" not in cmdline:
                found.append(cmdline)
    return found


def _start_and_wait_for_restore(source: LabServer, target: LabServer, workdir: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pgshift",
            "migrate",
            source.conninfo(),
            target.conninfo(),
            "--workdir",
            str(workdir),
            "--jobs",
            "1",
            "-d",
            "small",
            "-d",
            "big",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if step_state(workdir, "db:big:restore-data") == "running":
            time.sleep(1.0)  # well inside pg_restore: the COPY of ``slow`` lasts about 6 s
            return proc
        if proc.poll() is not None:
            raise AssertionError(f"pgshift ended before the restore: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the restore never started")


@pytest.mark.parametrize("how", ["sigint", "sigkill"])
def test_interrupted_restore_resumes_without_redoing_or_duplicating(
    fresh_server: Any, tmp_path: Path, how: str
) -> None:
    source, target = fresh_server(16), fresh_server(17)
    _big_source(source)
    workdir = tmp_path / "run"
    proc = _start_and_wait_for_restore(source, target, workdir)
    proc.send_signal(signal.SIGINT if how == "sigint" else signal.SIGKILL)
    _out, err = proc.communicate(timeout=120)
    journal = journal_of(workdir)
    assert journal is not None
    assert journal.done("db:small:finish")
    assert journal.step("db:big:restore-data").state == ("interrupted" if how == "sigint" else "running")
    if how == "sigint":
        assert proc.returncode == 130, err
        assert "interrupted" in err and f"--resume {workdir}" in err and "Traceback" not in err
        assert journal.status == "interrupted"
    else:
        assert proc.returncode == -signal.SIGKILL
        # Its pg_restore does not live on to race the resume: it dies with pgshift (PR_SET_PDEATHSIG).
        deadline = time.monotonic() + 15
        while _children_working_in(workdir) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _children_working_in(workdir)
    resumed = pgshift("migrate", "--resume", str(workdir), "--json")
    assert resumed.returncode == 0, resumed.stderr
    if how == "sigkill":
        assert "the previous attempt was killed" in resumed.stderr
    doc = json.loads(resumed.stdout)
    by_name = {d["source"]: d for d in doc["databases"]}
    assert by_name["small"]["resumed"] and by_name["big"]["status"] == "done"
    assert doc["verify"]["equal"]
    assert counts(target, "big") == counts(source, "big") == {"public.slow": 300, "public.plain": 20000}
    assert counts(target, "small") == {"public.s": 5}
    log = (workdir / "migrate.log").read_text()
    assert log.count('CREATE DATABASE "small"') == 1  # finished databases are not redone
    # The half-restored one is continued, not dropped: the loaded table stays, the cut one is loaded again.
    assert log.count('CREATE DATABASE "big"') == 1 and "DROP DATABASE" not in log
    assert "big: 1 of 3 item(s) of the data step are on the target already" in log


def test_client_newer_than_the_target_restores_despite_transaction_timeout(fresh_server: Any, tmp_path: Path) -> None:
    """Only an 18 client is available for a 16 target: pg_restore 18 sets transaction_timeout, which 16
    rejects; that one expected error is tolerated and every other error still fails the restore."""
    source, target = fresh_server(16), fresh_server(16)
    source.execute("CREATE DATABASE app")
    source.execute("CREATE TABLE t AS SELECT generate_series(1, 42) AS x", "app")
    cache = tmp_path / "cache"
    (cache / "pg").mkdir(parents=True)
    (cache / "pg" / "18").symlink_to("/var/cache/pgshift/pg/18")
    env = {
        **os.environ,
        "PGSHIFT_CACHE_DIR": str(cache),
        "PATH": str(Path(sys.executable).parent),
        "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock",
    }
    workdir = tmp_path / "run"
    done = pgshift("migrate", source.conninfo(), target.conninfo(), "--workdir", str(workdir), "--json", env=env)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["client"].startswith("pg_dump 18") and doc["verify"]["equal"]
    assert any("transaction_timeout" in w for w in doc["warnings"])
    log = (workdir / "migrate.log").read_text()
    assert "expected transaction_timeout error(s) of a newer pg_restore ignored" in log
    assert "--no-statistics" in log and "--exit-on-error" not in log
    assert counts(target, "app") == {"public.t": 42}
    # A real error still fails the restore.
    source.execute("CREATE ROLE gone")
    source.execute("CREATE DATABASE app2")
    source.execute("CREATE TABLE u (x int); ALTER TABLE u OWNER TO gone", "app2")
    failed = pgshift("migrate", source.conninfo(), target.conninfo(), "-d", "app2", "--no-globals", env=env)
    assert_clean_failure(failed, 5, 'role "gone" does not exist')


@pytest.mark.docker
def test_clients_in_docker_move_a_database(fresh_server: Any, tmp_path: Path) -> None:
    from pgshift.errors import ToolchainError
    from pgshift.process import docker_client
    from pgshift.toolchain.docker import build_image

    try:
        docker_client()
    except ToolchainError as exc:
        pytest.skip(f"no Docker daemon reachable: {exc.message}")
    image = build_image(17)
    source, target = fresh_server(15), fresh_server(17, password="docker-Secret-7")
    source.execute("CREATE DATABASE app")
    source.execute("CREATE TABLE t AS SELECT generate_series(1, 33) AS x", "app")
    workdir = tmp_path / "run"
    done = pgshift(
        "migrate",
        source.conninfo(),
        target.conninfo(),
        "--docker",
        "--docker-image",
        image.tag,
        "--workdir",
        str(workdir),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert image.tag in doc["client"] and doc["ok"]
    # The target's postgres has a password, the source's has none: the target's own role, reported.
    assert any(e["rule"] == "target-own-role" and e["object"] == "role postgres" for e in doc["verify"]["expected"]), (
        doc["verify"]["expected"]
    )
    assert counts(target, "app") == {"public.t": 33}
    log = (workdir / "migrate.log").read_text()
    assert f"docker run --network host {image.tag} pg_restore" in log and "docker-Secret-7" not in log


def test_quiet_and_markdown_outputs(fresh_server: Any, tmp_path: Path) -> None:
    source, target = fresh_server(17), fresh_server(18)
    source.execute("CREATE DATABASE one")
    source.execute("CREATE DATABASE two")
    quiet = pgshift(
        "migrate", source.conninfo(), target.conninfo(), "-d", "one", "--quiet", "--workdir", str(tmp_path / "q")
    )
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.strip().splitlines() == [f"done: 1 database(s); log {tmp_path / 'q' / 'migrate.log'}"]
    md = pgshift("migrate", source.conninfo(), target.conninfo(), "-d", "two", "--format", "markdown")
    assert md.returncode == 0, md.stderr
    assert md.stdout.startswith("# pgshift migrate: done")
    assert "| two | two | done |" in md.stdout and "Verify: source and target are equal" in md.stdout


def test_killed_during_the_dump_resumes_into_a_fresh_dump_directory(fresh_server: Any, tmp_path: Path) -> None:
    """pgshift is SIGKILLed while its pg_dump waits for a lock; the orphaned pg_dump may still write
    into its directory, so the resume dumps into one of its own."""
    source, target = fresh_server(16), fresh_server(17)
    source.execute("CREATE DATABASE app")
    source.execute("CREATE TABLE t AS SELECT generate_series(1, 1000) AS x", "app")
    workdir = tmp_path / "run"
    with source.connect("app", autocommit=False) as holder:
        holder.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pgshift",
                "migrate",
                source.conninfo(),
                target.conninfo(),
                "--workdir",
                str(workdir),
                "--no-check",  # check's inventory would wait for the lock too (until lock_timeout)
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        state = ""
        while time.monotonic() < deadline and state != "running":
            state = step_state(workdir, "db:app:dump")
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        time.sleep(0.5)
        proc.kill()
        proc.communicate(timeout=60)
        first = journal_of(workdir)
        assert first is not None and first.step("db:app:dump").state == "running"
        assert first.databases["app"].dump_dir == "01-app"
        holder.rollback()  # the orphaned pg_dump goes on now
    resumed = pgshift("migrate", "--resume", str(workdir), "--json", "--keep-dumps")
    assert resumed.returncode == 0, resumed.stderr
    after = journal_of(workdir)
    assert after is not None and after.done("db:app:finish") and after.databases["app"].dump_dir == "01-app-attempt2"
    assert (workdir / "dumps" / "01-app-attempt2" / "toc.dat").is_file()
    assert counts(target, "app") == {"public.t": 1000}


def test_a_locked_source_table_stops_the_preflight_with_a_clear_message(fresh_server: Any) -> None:
    source, target = fresh_server(16), fresh_server(17)
    source.execute("CREATE DATABASE app")
    source.execute("CREATE TABLE t AS SELECT 1 AS x", "app")
    with source.connect("app", autocommit=False) as holder:
        holder.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        done = pgshift("migrate", source.conninfo(), target.conninfo())
        holder.rollback()
    assert_clean_failure(done, 5, "could not read the servers", "lock timeout", "exclusive lock")
    assert databases(target) == {"postgres"}


def test_a_tablespace_the_target_cannot_create_fails_with_the_fix_and_a_resumable_journal(
    fresh_server: Any, tmp_path: Path
) -> None:
    from tests.integration.test_migrate_options import _server_dir

    source, target = fresh_server(16), fresh_server(17)
    location = _server_dir(tmp_path / "ts")
    source.execute(f"CREATE TABLESPACE fast LOCATION '{location}'")
    source.execute("CREATE DATABASE app")
    workdir = tmp_path / "run"
    done = pgshift(
        "migrate", source.conninfo(), target.conninfo(), "--workdir", str(workdir),
        "--tablespace-map", f"fast={tmp_path}/missing/dir",
    )  # fmt: skip
    assert_clean_failure(done, 5, "tablespace fast", "--tablespace-map", f"--resume {workdir}")
    assert journal_of(workdir).status == "failed"  # type: ignore[union-attr]
    assert databases(target) == {"postgres"}
    # The fix the hint names, given with --resume, applies to the rest of the run.
    good = _server_dir(tmp_path / "ts-target")
    resumed = pgshift("migrate", "--resume", str(workdir), "--tablespace-map", f"fast={good}", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["globals"]["tablespaces"] == ["fast"]
    with target.connect() as conn:
        row = conn.execute("SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'fast'").fetchone()
    assert row == (str(good),)


def test_source_and_target_the_same_server_is_refused_even_with_if_exists_drop(
    fresh_server: Any, tmp_path: Path
) -> None:
    server = fresh_server(17)
    server.execute("CREATE DATABASE precious")
    server.execute("CREATE TABLE t (i int); INSERT INTO t VALUES (1), (2)", dbname="precious")
    # The same server under two spellings: a URI over TCP and key=value through its socket.
    other_spelling = f"host={server.socket_dir} port={server.port} user=postgres dbname=postgres"
    done = pgshift(
        "migrate", server.uri(), other_spelling, "--if-exists", "drop", "--yes", "--workdir", str(tmp_path / "w")
    )
    assert_clean_failure(done, 2, "the same server")
    assert counts(server, "precious") == {"public.t": 2}


def test_a_killed_pg_restore_is_named_as_killed_by_its_signal_and_the_run_resumes(
    fresh_server: Any, tmp_path: Path
) -> None:
    source, target = fresh_server(16), fresh_server(17)
    _big_source(source)
    workdir = tmp_path / "run"
    proc = _start_and_wait_for_restore(source, target, workdir)
    found = subprocess.run(["pgrep", "-a", "-x", "pg_restore"], capture_output=True, text=True).stdout
    restores = [int(line.split(None, 1)[0]) for line in found.splitlines() if str(workdir) in line]
    assert restores, "no pg_restore found"
    for pid in restores:
        os.kill(pid, signal.SIGKILL)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 5, err
    assert "pg_restore was killed by signal 9 (SIGKILL) while restoring database 'big'" in " ".join(err.split())
    assert "Traceback" not in err
    resumed = pgshift("migrate", "--resume", str(workdir), "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert counts(target, "big") == {"public.slow": 300, "public.plain": 20000}
