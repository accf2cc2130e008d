"""``pgshift verify`` as a user runs it: exit codes, formats, --output, --rename, secrets."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pgshift.lab import LabServer
from pgshift.lab.server import random_password
from tests.conftest import ServerPool
from tests.integration.verify_support import copy_database, copy_globals

SQL = """
CREATE TABLE t (id integer PRIMARY KEY, v text);
INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g;
CREATE INDEX t_v ON t (v);
"""


def pgshift(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, timeout=300)


@dataclass
class Pair:
    source: LabServer
    target: LabServer
    password: str

    def uris(self, db: str = "postgres") -> tuple[str, str]:
        # The target's URI carries its password: it must never be printed.
        s = self.source.conninfo(db)
        t = f"postgresql://postgres:{self.password}@127.0.0.1:{self.target.port}/{db}"
        return s, t


@pytest.fixture(scope="module")
def pair(servers: ServerPool) -> Iterator[Pair]:
    password = random_password()
    source, target = servers.fresh(16), servers.fresh(17, password=password)
    source.execute("CREATE DATABASE app")
    source.execute(SQL, "app")
    # The same password on the source, so that pg_dumpall carries a hash that still works.
    source.execute(f"ALTER ROLE postgres PASSWORD '{password}'")
    copy_globals(source, target)
    copy_database(source, target, "app")
    copy_database(source, target, "app", "app_v2")
    yield Pair(source, target, password)
    source.stop()
    target.stop()


def test_equal_servers_exit_0_with_a_summary_line(pair: Pair) -> None:
    src, tgt = pair.uris()
    done = pgshift("verify", src, tgt, "--database", "app", "--checksums", "-j", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("EQUAL — compared 1 database") and "1 tables (100 rows)" in last
    assert pair.password not in done.stdout + done.stderr


def test_differences_exit_1_grouped_by_category(pair: Pair) -> None:
    copy_database(pair.source, pair.target, "app", "app_diff2")
    pair.target.execute("DELETE FROM t WHERE id = 5; DROP INDEX t_v", "app_diff2")
    src, tgt = pair.uris()
    done = pgshift("verify", src, tgt, "-d", "app", "--rename", "app=app_diff2", "--no-globals")
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "Schema in app (1)" in out and "index public.t_v is missing on the target" in out
    assert "Rows in app (1)" in out and "table public.t: 1 row(s) fewer on the target" in out
    assert out.strip().splitlines()[-1].startswith("DIFFERENT: 2 difference(s)")


def test_json_document_is_alone_on_stdout(pair: Pair) -> None:
    src, tgt = pair.uris()
    done = pgshift("verify", src, tgt, "-d", "app", "--rename", "app=app_v2", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["kind"] == "verify" and doc["schema_version"] == 1 and doc["equal"] is True
    assert doc["databases"][0]["source"] == "app" and doc["databases"][0]["target"] == "app_v2"
    assert doc["databases"][0]["rows_source"] == 100 and doc["exit_code"] == 0
    assert pair.password not in done.stdout and "password=********" in doc["target"]


def test_markdown_and_html_reports_to_a_file(pair: Pair, tmp_path: Path) -> None:
    src, tgt = pair.uris()
    md = tmp_path / "verify.md"
    done = pgshift("verify", src, tgt, "-d", "app", "--format", "markdown", "--output", str(md))
    assert done.returncode == 0 and done.stdout == ""
    assert md.read_text().startswith("# pgshift verify") and "| app |" in md.read_text()
    page = tmp_path / "verify.html"
    assert pgshift("verify", src, tgt, "-d", "app", "--format", "html", "-o", str(page)).returncode == 0
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and 'class="verdict ok"' in html and "<script" not in html


def test_unreachable_target_exits_3_with_a_hint(pair: Pair) -> None:
    src, _ = pair.uris()
    done = pgshift("verify", src, "host=127.0.0.1 port=1 user=postgres connect_timeout=2")
    assert done.returncode == 3
    assert "error: cannot connect to the target" in done.stderr and "hint:" in done.stderr


def test_missing_source_database_is_a_usage_error_naming_what_exists(pair: Pair) -> None:
    src, tgt = pair.uris()
    done = pgshift("verify", src, tgt, "-d", "no_such_db")
    assert done.returncode == 64 and "the source has no database 'no_such_db'" in done.stderr
    assert "app" in done.stderr.splitlines()[1]  # the hint lists the source's databases


def test_bad_rename_is_a_usage_error(pair: Pair) -> None:
    src, tgt = pair.uris()
    done = pgshift("verify", src, tgt, "--rename", "app")
    assert done.returncode == 64 and "OLD=NEW" in done.stderr


def test_rows_only_still_sees_a_missing_table(pair: Pair) -> None:
    copy_database(pair.source, pair.target, "app", "app_rows")
    pair.target.execute("DROP TABLE t", "app_rows")
    src, tgt = pair.uris()
    done = pgshift("verify", src, tgt, "-d", "app", "--rename", "app=app_rows", "--no-schema", "--no-globals")
    assert done.returncode == 1
    assert "table public.t is missing on the target" in done.stdout
    assert pgshift("verify", src, tgt, "--no-rows", "--no-schema").returncode == 64
