"""The demo refuses impossible requests before it starts anything."""

from __future__ import annotations

import pytest

from pgshift.demo import DemoOptions
from pgshift.errors import ExitCode, UsageError


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (DemoOptions(source_major=9), "--source-version 9 has no lab server"),
        (DemoOptions(target_major=19), "--target-version 19 has no lab server"),
        (DemoOptions(source_major=17, target_major=15), "newer major, not from 17 to 15"),
        (DemoOptions(sample="sakila"), "no sample database named 'sakila'"),
        (DemoOptions(sample="world"), "world sample is not packaged"),
        (DemoOptions(source_major=10), "pagila sample needs a source of PostgreSQL 11 or newer"),
        (DemoOptions(jobs=0), "--jobs must be at least 1"),
    ],
)
def test_impossible_demo_requests_are_usage_errors(options: DemoOptions, message: str) -> None:
    with pytest.raises(UsageError, match=message) as raised:
        options.validate()
    assert raised.value.exit_code == ExitCode.USAGE and raised.value.hint


@pytest.mark.parametrize(
    "options",
    [DemoOptions(), DemoOptions(source_major=10, sample="chinook"), DemoOptions(source_major=18, target_major=18)],
)
def test_possible_demo_requests_pass(options: DemoOptions) -> None:
    options.validate()
