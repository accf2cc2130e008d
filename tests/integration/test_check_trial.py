"""The schema trial of ``pgshift check``: real 14 sources, real 18 targets and lab servers.

What it must show: every statement the target refuses (with the object and the server's message),
cascades folded into their root, missing roles as "not tried", rule findings confirmed; no false
alarm on a clean, rich source; nothing left on the target, whatever happens to the trial.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from pgshift.catalog import scratch
from pgshift.checks import CheckReport, run_check
from pgshift.checks.trial import RULE_ID, split_script
from pgshift.errors import PgshiftError
from tests.fixtures import rich
from tests.fixtures.trial import Hazards, databases_and_roles, hazards, many_objects, scratch_databases

SOURCE_MAJOR = 14
TARGET_MAJOR = 18


@pytest.fixture(scope="module")
def prefix() -> str:
    return "tr" + secrets.token_hex(3)


@pytest.fixture(scope="module")
def source(servers: Any) -> Any:
    return servers.get(SOURCE_MAJOR)


@pytest.fixture(scope="module")
def target(servers: Any) -> Any:
    return servers.get(TARGET_MAJOR)


@pytest.fixture(scope="module")
def hz(source: Any, prefix: str) -> Hazards:
    return hazards(source, prefix)


def _check(source: Any, target: Any, databases: list[str], **kwargs: Any) -> CheckReport:
    return run_check(
        source.endpoint("source"),
        target.endpoint("target") if target is not None else None,
        databases=databases,
        trial=True,
        **kwargs,
    )


def test_trial_reports_every_refusal_with_object_and_message_and_leaves_the_target_as_it_was(
    source: Any, target: Any, hz: Hazards
) -> None:
    before = databases_and_roles(target)
    report = _check(source, target, [hz.database])
    assert databases_and_roles(target) == before
    assert scratch_databases(target) == []

    trial = report.trial
    assert trial is not None and trial.ran and trial.where == "target"
    assert trial.server_version is not None and trial.server_version.startswith("18")
    refused = {f.label: f for f in trial.failures}
    assert set(refused) == {"table public.gc", "rule _RETURN on public.rt", "view public.bgw"}
    assert "specifies generation expression" in refused["table public.gc"].message
    assert refused["rule _RETURN on public.rt"].message == 'non-view rule for "rt" must not be named "_RETURN"'
    assert refused["rule _RETURN on public.rt"].sqlstate == "42P17"
    assert "checkpoints_timed" in refused["view public.bgw"].message
    # The view on the view fails only because the first did: folded, not a finding of its own.
    assert refused["view public.bgw"].also_fails == ("view public.bgw_on_bgw",)

    # Owner and grant need roles migrate creates first: not tried, not findings.
    reasons = {(n.object, n.reason) for n in trial.not_tried}
    assert ("owner of table public.owned", f"needs role {hz.owner}, which migrate creates first") in reasons
    assert ("grants on table public.owned", f"needs role {hz.reader}, which migrate creates first") in reasons

    # The rule that knows the generated column keeps its advice and is confirmed; the others are blockers
    # of the trial, each with the exact --exclude-object spelling.
    generated = [f for f in report.findings if f.rule_id == "generated-inheritance-mismatch"]
    assert len(generated) == 1 and "the schema trial confirmed" in generated[0].message
    assert "specifies generation expression" in generated[0].message
    # The renamed rule is known to a rule too (reserved-rule-name), which carries its remedy.
    reserved = [f for f in report.findings if f.rule_id == "reserved-rule-name"]
    assert len(reserved) == 1 and "the schema trial confirmed" in reserved[0].message
    assert reserved[0].remedy == "rename-rule" and reserved[0].severity.value == "blocker"
    own = {f.object: f for f in report.findings if f.rule_id == RULE_ID}
    assert set(own) == {"view public.bgw"}
    assert all(f.severity.value == "blocker" and f.database == hz.database for f in own.values())
    assert f"--exclude-object '{hz.database}:view public.bgw'" in own["view public.bgw"].remediation
    assert own["view public.bgw"].remedy == "exclude-object"
    assert "also fails: view public.bgw_on_bgw" in own["view public.bgw"].message
    assert report.exit_code == 2
    doc = report.as_dict()["trial"]
    assert doc["refused"] == 3 and doc["databases"][0]["database"] == hz.database


_TRICKY = r"""
CREATE TABLE base (id int PRIMARY KEY, note text DEFAULT E'semi;colon \'quoted\' -- not a comment');
CREATE TABLE "we;ird ""name"" x" (x int);
CREATE TABLE log (id int);
CREATE FUNCTION atomic_add(a int, b int) RETURNS int LANGUAGE sql
BEGIN ATOMIC
  SELECT CASE WHEN a > 0 THEN a + b ELSE b END;
  SELECT a + b;
END;
CREATE FUNCTION dollar() RETURNS text LANGUAGE plpgsql AS $body$
BEGIN
  -- TOC entry 1 (class 1259 OID 1)
  RETURN 'a;b' || $x$;$x$;
END
$body$;
CREATE RULE two_actions AS ON INSERT TO base DO ALSO (INSERT INTO log VALUES (1); INSERT INTO log VALUES (2));
CREATE VIEW v_base AS SELECT id, note FROM base;
COMMENT ON TABLE base IS 'a comment; with -- dashes and /* stars */';
"""


def test_a_clean_rich_source_gives_no_trial_findings(source: Any, target: Any, prefix: str) -> None:
    """Roles, owners, grants, extensions, comments, publications, odd names, LATIN1: no false alarm."""
    fixture = rich.build(source, prefix + "r")
    tricky = prefix + "_tricky"
    source.execute(f"CREATE DATABASE {tricky}")
    source.execute(_TRICKY, tricky)
    try:
        report = _check(source, target, [*fixture.database_names, tricky])
        trial = report.trial
        assert trial is not None and trial.ran
        assert trial.failures == ()
        assert [f for f in report.findings if f.rule_id == RULE_ID or "schema trial" in f.message] == []
        by_db = {d.database: d for d in trial.databases}
        assert by_db[tricky].statements >= 8 and by_db[fixture.main.name].statements > 50
        # Only owners and grants of the fixture's roles, which a fresh target lacks, were left untried.
        assert trial.not_tried and all(n.reason.startswith("needs role ") for n in trial.not_tried)
        assert scratch_databases(target) == []
    finally:
        rich.cleanup(source, fixture)
        source.execute(f"DROP DATABASE {tricky}")


def test_offline_the_trial_runs_on_a_lab_server_with_the_source_roles(source: Any, hz: Hazards) -> None:
    report = run_check(
        source.endpoint("source"), None, target_version=TARGET_MAJOR, databases=[hz.database], trial=True
    )
    trial = report.trial
    assert trial is not None and trial.ran and trial.where == "lab"
    assert trial.server_version is not None and trial.server_version.startswith("18")
    assert {f.label for f in trial.failures} == {"table public.gc", "rule _RETURN on public.rt", "view public.bgw"}
    # The lab server has the source's roles: owners and grants were tried, and accepted.
    assert trial.not_tried == ()
    assert trial.globals_failures == ()


def test_offline_without_server_binaries_the_trial_is_listed_as_not_run_with_the_install_command(
    source: Any, hz: Hazards, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clients = Path("/var/cache/pgshift/pg/18/bin")
    if not (clients / "pg_dump").exists():
        pytest.skip("needs the cached PostgreSQL 18 clients")
    monkeypatch.setenv("PGSHIFT_CACHE_DIR", str(tmp_path))  # an empty cache: no lab server binaries
    report = run_check(
        source.endpoint("source"), None, target_version=17, databases=[hz.database], pg_bins=[clients], trial=True
    )
    assert report.trial is not None and not report.trial.ran
    assert "pgshift toolchain install 17" in (report.trial.reason or "")
    assert [s.rule_id for s in report.skipped if s.rule_id == RULE_ID] == [RULE_ID]


def test_a_leftover_of_a_killed_trial_is_dropped_and_said_so(source: Any, target: Any, hz: Hazards) -> None:
    gone_pid = _a_dead_pid()
    left = scratch.NAME_PREFIX + "0badc0ffee00"
    with target.connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(left)))
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(left), sql.Literal(scratch.mark_text(pid=gone_pid))
            )
        )
    report = _check(source, target, [hz.database])
    assert scratch_databases(target) == []
    assert report.trial is not None
    assert any(left in note and str(gone_pid) in note for note in report.trial.notes)


def _a_dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert not _alive(proc.pid)
    return proc.pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_scratch_database_is_dropped_when_the_trial_fails_half_way(source: Any, target: Any, prefix: str) -> None:
    big = prefix + "_big"
    many_objects(source, big, 600)
    stop = threading.Event()
    killed: list[int] = []

    def kill_trial_sessions() -> None:
        while not stop.is_set():
            with target.connect() as conn:
                rows = conn.execute(
                    "SELECT pg_terminate_backend(pid), pid FROM pg_stat_activity "
                    "WHERE datname LIKE 'pgshift\\_trial\\_%'"
                ).fetchall()
            killed.extend(r[1] for r in rows)
            if rows:
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_trial_sessions, daemon=True)
    killer.start()
    try:
        with pytest.raises(PgshiftError):
            _check(source, target, [big])
    finally:
        stop.set()
        killer.join()
        source.execute(f"DROP DATABASE {big}")
    assert killed, "the trial's session was never seen"
    assert scratch_databases(target) == []


def test_a_target_role_that_may_not_create_databases_skips_the_trial_with_the_reason(
    source: Any, target: Any, hz: Hazards, prefix: str
) -> None:
    role = prefix + "_nocreatedb"
    target.execute(f"CREATE ROLE {role} LOGIN")
    try:
        report = run_check(
            source.endpoint("source"),
            target.endpoint("target").with_params(user=role),
            databases=[hz.database],
            trial=True,
        )
        assert report.trial is not None and not report.trial.ran
        assert "CREATEDB" in (report.trial.reason or "")
        assert any(s.rule_id == RULE_ID and "CREATEDB" in s.reason for s in report.skipped)
    finally:
        target.execute(f"DROP ROLE {role}")


def test_split_script_keeps_quoted_bodies_rules_and_atomic_bodies_whole() -> None:
    script = (
        "\\restrict abc\n"
        "SET client_encoding = 'UTF8';\n"
        "--\n-- TOC entry 7 (class 1255 OID 1)\n-- Dependencies: 3 4\n"
        "-- Name: f(integer); Type: FUNCTION; Schema: public; Owner: bob\n--\n\n"
        "CREATE FUNCTION public.f(a integer) RETURNS integer\n    LANGUAGE sql\n    BEGIN ATOMIC\n"
        " SELECT CASE WHEN a > 0 THEN 1 ELSE 2 END;\n SELECT 3;\nEND;\n\n"
        "ALTER FUNCTION public.f(a integer) OWNER TO bob;\n"
        "--\n-- TOC entry 8 (class 2618 OID 2)\n-- Name: t r; Type: RULE; Schema: public; Owner: bob\n--\n\n"
        "CREATE RULE r AS ON INSERT TO public.t DO (INSERT INTO public.l VALUES (1); DELETE FROM public.l);\n"
        "CREATE FUNCTION public.g() RETURNS text AS $b$ SELECT ';' -- TOC entry 9 (class 1 OID 1)\n$b$;\n"
        "COMMENT ON TABLE public.t IS E'it\\'s; fine' /* ; */;\n"
        "\\unrestrict abc\n"
    )
    statements = split_script(script)
    texts = [s.text.split("\n")[0] for s in statements]
    assert texts == [
        "SET client_encoding = 'UTF8';",
        "CREATE FUNCTION public.f(a integer) RETURNS integer",
        "ALTER FUNCTION public.f(a integer) OWNER TO bob;",
        "CREATE RULE r AS ON INSERT TO public.t DO (INSERT INTO public.l VALUES (1); DELETE FROM public.l);",
        "CREATE FUNCTION public.g() RETURNS text AS $b$ SELECT ';' -- TOC entry 9 (class 1 OID 1)",
        "COMMENT ON TABLE public.t IS E'it\\'s; fine' /* ; */;",
    ]
    assert statements[0].entry is None
    f = statements[1].entry
    assert f is not None and (f.dump_id, f.kind, f.schema, f.name, f.owner) == (
        7,
        "FUNCTION",
        "public",
        "f(integer)",
        "bob",
    )
    assert f.dependencies == (3, 4)
    assert statements[3].entry is not None and statements[3].entry.label == "rule r on public.t"
    assert statements[4].entry is not None and statements[4].entry.dump_id == 8  # the fake header was in a body
    assert statements[1].is_session is False and statements[0].is_session is True
