"""``pgshift check`` as a user runs it: exit codes, formats, --output, --list-rules, offline mode."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pgshift.checks.rules import ALL_RULES


def pgshift(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, timeout=300, env=env
    )


@pytest.fixture(scope="module")
def oids_server() -> Any:
    """An 11 server with one table WITH OIDS (blocker for 12+) in database app."""
    from pgshift.lab import start

    server = start(11)
    server.execute("CREATE DATABASE app")
    server.execute("CREATE TABLE t_oids (a int) WITH OIDS; INSERT INTO t_oids VALUES (1)", "app")
    yield server
    server.stop()


def test_clean_source_exits_0_with_a_ready_verdict(fresh_server: Any) -> None:
    server = fresh_server(17)
    done = pgshift("check", server.conninfo(), "--target-version", "18")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "READY (17 → 18)" in done.stdout


def test_warnings_exit_1(fresh_server: Any) -> None:
    server = fresh_server(17)
    server.execute("CREATE DATABASE app")  # postgres is not moved by default (migrate's -d default)
    server.execute("CREATE UNLOGGED TABLE up (a int) PARTITION BY RANGE (a)", "app")
    done = pgshift("check", server.conninfo(), "--target-version", "18", "--format", "json")
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert [(f["rule_id"], f["object"]) for f in doc["findings"] if f["severity"] == "warning"] == [
        ("unlogged-partitioned", "public.up")
    ]


def test_blockers_exit_2_and_json_names_rule_database_object(oids_server: Any) -> None:
    done = pgshift("check", oids_server.conninfo(), "--target-version", "12", "--json", "-d", "app")
    assert done.returncode == 2, done.stderr
    doc = json.loads(done.stdout)
    assert doc["kind"] == "check" and doc["schema_version"] == 1
    assert doc["exit_code"] == 2 and doc["verdict"].startswith("NOT READY")
    oids = [f for f in doc["findings"] if f["rule_id"] == "with-oids"]
    assert oids == [
        {
            "rule_id": "with-oids",
            "severity": "blocker",
            "title": "Tables WITH OIDS",
            "database": "app",
            "object": "public.t_oids",
            "message": "table public.t_oids has OIDs; a dump for 12+ drops them",
            "remediation": oids[0]["remediation"],
            "changed_in": "PostgreSQL 12",
            "remedy": None,
            "carried_by": None,
            "refused_by_trial": False,
        }
    ]
    assert "SET WITHOUT OIDS" in oids[0]["remediation"]
    assert {r["id"] for r in doc["rules"]} >= {"with-oids", "removed-datetime-types"}
    # offline: the target-side rules are listed as not run, with the reason
    skipped = {s["rule_id"]: s["reason"] for s in doc["skipped"]}
    assert "catalog-refs" in skipped and "needs the target server" in skipped["catalog-refs"]
    assert doc["estimates"]["jobs"] == 2 and doc["estimates"]["source_connections_needed"] == 4
    assert doc["client"]["major"] in ("14", "15", "16", "17", "18")
    assert any("pg_dump" in c and "dbname=app" in c for c in doc["client"]["commands"])


def test_console_report_groups_by_severity_and_ends_with_the_verdict(oids_server: Any) -> None:
    done = pgshift("check", oids_server.conninfo(), "--target-version", "12", "-d", "app")
    assert done.returncode == 2
    out = done.stdout
    assert out.index("Blockers") < out.index("Warnings") < out.rstrip().rindex("NOT READY")
    assert "t_oids" in out


def test_markdown_written_to_output_file(oids_server: Any, tmp_path: Path) -> None:
    target = tmp_path / "report.md"
    done = pgshift(
        "check",
        oids_server.conninfo(),
        "--target-version",
        "18",
        "-d",
        "app",
        "--format",
        "markdown",
        "-o",
        str(target),
    )
    assert done.returncode == 2
    text = target.read_text()
    assert text.startswith("# pgshift check: NOT READY (11 → 18)")
    assert "| with-oids | app | public.t_oids |" in text
    assert "## Manual migration" in text


def test_html_report_shows_the_findings_when_rendered_by_chromium(oids_server: Any, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (scripts/test.sh installs it)")
    page = tmp_path / "report.html"
    done = pgshift(
        "check", oids_server.conninfo(), "--target-version", "12", "-d", "app", "--format", "html", "-o", str(page)
    )
    assert done.returncode == 2
    html = page.read_text()
    assert "<script" not in html and "http://" not in html and "https://" not in html  # self-contained
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "NOT READY (11 → 12)" in dom.stdout
    rows = [r for r in dom.stdout.split("<tr") if "finding" in r and "with-oids" in r]
    assert rows and "t_oids" in rows[0] and "app" in rows[0]


def test_unreachable_source_exits_3_with_a_hint() -> None:
    done = pgshift("check", "host=127.0.0.1 port=1 user=x dbname=x connect_timeout=3", "--target-version", "17")
    assert done.returncode == 3
    assert "error:" in done.stderr and "hint:" in done.stderr


def test_wrong_pg_bin_exits_4(fresh_server: Any, tmp_path: Path) -> None:
    server = fresh_server(17)
    done = pgshift("check", server.conninfo(), "--target-version", "18", "--pg-bin", str(tmp_path / "nowhere"))
    assert done.returncode == 4, done.stdout + done.stderr
    assert "not a directory" in done.stderr


def test_usage_errors_exit_64() -> None:
    assert pgshift("check", "host=x", "--target-version", "seventeen").returncode == 64
    assert pgshift("check", "--no-such-option").returncode == 64
    assert pgshift("check").returncode == 64
    assert pgshift("check", "host=x", "--target-version", "9.6").returncode == 64


def test_list_rules_prints_every_rule() -> None:
    done = pgshift("check", "--list-rules", "--json")
    assert done.returncode == 0
    doc = json.loads(done.stdout)
    assert [r["id"] for r in doc["rules"]] == [r.id for r in ALL_RULES]
    assert all(r["remediation"] and r["changed_in"] and r["severity"] for r in doc["rules"])
    text = pgshift("check", "--list-rules").stdout
    assert "with-oids" in text and "catalog-refs" in text


def test_password_never_appears_in_report(fresh_server: Any) -> None:
    server = fresh_server(16, password="S3cret-pw-for-check")
    done = pgshift("check", server.conninfo(), "--target-version", "17", "--json")
    assert done.returncode in (0, 1), done.stderr
    assert "S3cret-pw-for-check" not in done.stdout + done.stderr


def test_verbose_console_shows_inventory_and_manual_commands(oids_server: Any) -> None:
    done = pgshift("check", oids_server.conninfo(), "--target-version", "18", "-d", "app", "-v")
    out = done.stdout
    assert "Source databases" in out and "hstore" not in out
    assert "manual migration" in out
    assert "--globals-only" in out and "--format=directory" in out and "--analyze-in-stages" in out
    # the manual commands never carry a password
    assert "password=" not in out


def test_a_table_locked_by_another_session_is_a_clear_error_not_a_traceback(servers: Any) -> None:
    server = servers.get(16)
    server.execute("DROP DATABASE IF EXISTS chk_locked")
    server.execute("CREATE DATABASE chk_locked")
    server.execute("CREATE TABLE busy (i int)", dbname="chk_locked")
    holder = server.connect("chk_locked", autocommit=False)
    try:
        holder.execute("LOCK TABLE busy IN ACCESS EXCLUSIVE MODE")
        done = pgshift("check", server.conninfo("chk_locked"), "--target-version", "18", "-d", "chk_locked")
    finally:
        holder.rollback()
        holder.close()
    assert done.returncode == 5, done.stderr
    assert "lock timeout" in done.stderr and "hint:" in done.stderr
    assert "Traceback" not in done.stderr
