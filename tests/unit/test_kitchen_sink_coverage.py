"""The kitchen-sink fixture covers every CREATE page of the SQL reference, each by SQL that runs it."""

from __future__ import annotations

import pytest

from tests.fixtures import kitchen_sink
from tests.fixtures.kitchen_sink import CREATE_COMMANDS, REFERENCE_CREATE_PAGES_18, command_pattern, parts


def _sql_of(major: int) -> dict[str, str]:
    made = parts(major, "ksunit", icu=True, tablespace=("ksunit_space", "/nowhere"), mapping_password="x")
    return {p.name: p.sql for p in made}


def test_every_create_page_of_the_newest_reference_is_mapped() -> None:
    assert set(CREATE_COMMANDS) == set(REFERENCE_CREATE_PAGES_18)
    assert len(REFERENCE_CREATE_PAGES_18) == len(set(REFERENCE_CREATE_PAGES_18)) == 42


@pytest.mark.parametrize("command", REFERENCE_CREATE_PAGES_18)
def test_each_command_is_run_by_the_parts_it_names_on_18(command: str) -> None:
    covering, note = CREATE_COMMANDS[command]
    assert note, command
    sql = _sql_of(18)
    assert covering and set(covering) <= set(sql), (command, covering)
    pattern = command_pattern(command)
    assert any(pattern.search(sql[name]) for name in covering), f"no part of {covering} runs {command}"
    covers = {c for p in parts(18, "ksunit", icu=True, tablespace=("t", "/x")) for c in p.covers}
    assert command in covers


@pytest.mark.parametrize("major", range(10, 19))
def test_a_part_claims_only_commands_its_sql_runs(major: int) -> None:
    for part in parts(major, "ksunit", icu=True, tablespace=("t", "/x")):
        for command in part.covers:
            assert command_pattern(command).search(part.sql), (major, part.name, command)


@pytest.mark.parametrize(
    ("major", "absent"),
    [(10, "CREATE PROCEDURE"), (13, "multirange_type_name"), (11, "GENERATED ALWAYS AS (qty"), (16, "ON login")],
)
def test_sql_is_gated_by_the_source_major(major: int, absent: str) -> None:
    assert not any(absent in sql for sql in _sql_of(major).values())
    assert any(absent in sql for sql in _sql_of(18).values())


def test_command_patterns_tell_similar_commands_apart() -> None:
    assert not command_pattern("CREATE USER").search("CREATE USER MAPPING FOR x SERVER s")
    assert command_pattern("CREATE USER").search("CREATE USER alice")
    assert not command_pattern("CREATE TABLE").search("CREATE TABLE AS")  # nothing after AS: no table
    assert command_pattern("CREATE TABLE AS").search("CREATE TABLE ks.t AS SELECT 1")
    assert command_pattern("CREATE TRIGGER").search("CREATE CONSTRAINT TRIGGER t AFTER INSERT")
    assert not command_pattern("CREATE TRIGGER").search("CREATE EVENT TRIGGER e ON sql_drop")
    assert command_pattern("CREATE INDEX").search("CREATE UNIQUE INDEX i ON t (a)")
    assert not kitchen_sink.NOT_COVERED.keys() & set(REFERENCE_CREATE_PAGES_18)
