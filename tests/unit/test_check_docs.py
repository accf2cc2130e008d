"""docs/check.md is generated from the rules: this fails while it is stale."""

from __future__ import annotations

from pathlib import Path

from pgshift.checks.docs import render
from pgshift.checks.rules import ALL_RULES

DOC = Path(__file__).resolve().parents[2] / "docs" / "check.md"


def test_docs_check_md_is_generated_from_the_current_rules() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), "docs/check.md is stale: run python -m pgshift.checks.docs"


def test_every_rule_is_documented_with_versions_severity_and_remediation() -> None:
    text = render()
    for rule in ALL_RULES:
        assert f"### {rule.id}\n" in text
        assert rule.remediation in text
        assert f"source {rule.source_range}, target {rule.target_range}" in text
