"""check judges the database the run makes on the target: its --rename name, not the source's.

A LATIN1 target cluster cannot hold a database named in Chinese: with --rename to such a name,
encoding-shared-text is a blocker naming the new name; renamed to a LATIN1 or ASCII name, silent.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from pgshift.checks import Severity, run_check
from pgshift.lab import LabServer

RULE = "encoding-shared-text"


@pytest.fixture(scope="module")
def latin1_target(servers: Any) -> LabServer:
    server: LabServer = servers.get(18, encoding="LATIN1", locale="C")
    return server


@pytest.fixture(scope="module")
def source_db(servers: Any) -> str:
    db = "rn_" + secrets.token_hex(3)
    servers.get(14).execute(f"CREATE DATABASE {db}")
    return db


@pytest.mark.parametrize(
    ("new_name", "blocked"),
    [(None, False), ("数据", True), ("größe", False), ("plain_new", False)],
)
def test_encoding_shared_text_judges_the_renamed_database(
    servers: Any, latin1_target: LabServer, source_db: str, new_name: str | None, blocked: bool
) -> None:
    report = run_check(
        servers.get(14).endpoint("source"),
        latin1_target.endpoint("target"),
        databases=[source_db],
        renames={source_db: new_name} if new_name else None,
    )
    found = [f for f in report.findings if f.rule_id == RULE]
    if not blocked:
        assert not found, [f.message for f in found]
        return
    (finding,) = found
    assert finding.severity is Severity.BLOCKER
    assert f"created on the target as {new_name} (--rename)" in finding.message
    assert "not valid LATIN1 text" in finding.message
    assert f"--rename {source_db}=NEW" in finding.remediation
