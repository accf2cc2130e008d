"""check (and so migrate's preflight) says when the source is taking writes: a move copies each
database as of its dump's snapshot, and what is written later is not on the target."""

from __future__ import annotations

from typing import Any

from pgshift.checks import Severity, run_check
from tests.fixtures.writer import ticking


def test_a_database_written_to_while_check_runs_gets_a_warning(servers: Any) -> None:
    source = servers.get(14)
    source.execute("DROP DATABASE IF EXISTS live_src")
    source.execute("DROP DATABASE IF EXISTS still_src")
    source.execute("CREATE DATABASE live_src")
    source.execute("CREATE DATABASE still_src")
    with ticking(source, "live_src"):
        report = run_check(source.endpoint("source"), None, target_version=18, databases=["live_src", "still_src"])
    live = [f for f in report.findings if f.rule_id == "source-taking-writes"]
    assert [f.database for f in live] == ["live_src"], [f.message for f in live]
    assert live[0].severity is Severity.WARNING and "write transaction(s)" in live[0].message
    source.execute("DROP DATABASE live_src")
    source.execute("DROP DATABASE still_src")
