"""The rules restore runs from a set's recorded inventory exist, and none of them is one restore's own
preflight decides (it would judge twice, in two wordings)."""

from __future__ import annotations

from pgshift.checks.recorded import RECORDED_RULES
from pgshift.checks.rules import ALL_RULES
from pgshift.migrate.preflight import HANDLED_BY_MIGRATE


def test_every_recorded_rule_is_a_rule_of_check() -> None:
    assert sorted(RECORDED_RULES - {r.id for r in ALL_RULES}) == []


def test_no_recorded_rule_is_decided_by_the_preflight() -> None:
    assert sorted(RECORDED_RULES & HANDLED_BY_MIGRATE) == []
