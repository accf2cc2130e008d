"""docs/reliability.md says what the fault, bad-input and secrets tests do: one row per test, no stale row."""

from __future__ import annotations

from tests.fixtures import reliability


def test_every_fault_test_has_a_row_and_every_row_a_test() -> None:
    assert set(reliability.test_names(reliability.FAULT_TESTS)) == set(reliability.FAULTS)


def test_every_bad_input_test_has_a_row_and_every_row_a_test() -> None:
    assert set(reliability.test_names(reliability.BAD_INPUT_TESTS)) == set(reliability.BAD_INPUTS)


def test_every_secrets_test_has_a_row_and_every_row_a_test() -> None:
    assert set(reliability.test_names(reliability.SECRETS_TESTS)) == set(reliability.SECRETS)


def test_the_doc_tables_are_the_generated_ones() -> None:
    doc = reliability.DOC.read_text(encoding="utf-8")
    assert reliability.generated_part(doc) == reliability.tables(), (
        "docs/reliability.md is stale: run python -m tests.fixtures.reliability"
    )
