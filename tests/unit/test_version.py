from __future__ import annotations

import json

import pytest

from pgshift.errors import PgshiftError, UsageError
from pgshift.version import (
    NEWEST_KNOWN_MAJOR,
    OLDEST_SUPPORTED_SOURCE,
    PgVersion,
    check_direction,
    dump_refusal,
    major_order,
    oldest_server_for_client,
    parse_major,
    restore_refusal,
)


@pytest.mark.parametrize(
    ("text", "num", "label", "pre"),
    [
        ("pg_dump (PostgreSQL) 18.6", 180006, "18.6", ""),
        ("psql (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)", 150018, "15.18", ""),
        ("PostgreSQL 15.4 (Debian 15.4-1.pgdg120+1) on x86_64-pc-linux-gnu, compiled by gcc", 150004, "15.4", ""),
        (
            "PostgreSQL 13.7 on x86_64-pc-linux-gnu, compiled by x86_64-pc-linux-gnu-gcc (GCC) 7.4.0, 64-bit",
            130007,
            "13.7",
            "",
        ),
        ("PostgreSQL 14.2 (EnterpriseDB Advanced Server 14.2.1) on x86_64", 140002, "14.2", ""),
        ("EnterpriseDB 14.2.1", 140002, "14.2", ""),
        ("9.6.24", 90624, "9.6.24", ""),
        ("PostgreSQL 9.2.4 on x86_64", 90204, "9.2.4", ""),
        ("16beta2", 160000, "16beta2", "beta2"),
        ("18devel", 180000, "18devel", "devel"),
        ("pg_dump (PostgreSQL) 17rc1", 170000, "17rc1", "rc1"),
        ("10.23", 100023, "10.23", ""),
    ],
)
def test_parse_reads_every_style(text: str, num: int, label: str, pre: str) -> None:
    v = PgVersion.parse(text)
    assert v.num == num
    assert v.prerelease == pre
    assert str(v) == label


def test_major_is_comparable_across_eras() -> None:
    assert PgVersion.parse("9.6.24").major == 906
    assert PgVersion.parse("9.6.24").major_label == "9.6"
    assert PgVersion.parse("10.1").major == 10
    assert PgVersion.parse("9.6.24") < PgVersion.parse("10.0")
    assert PgVersion.from_major(906).major_label == "9.6"


def test_from_num_matches_server_version_num() -> None:
    assert PgVersion.from_num("170002") == PgVersion.parse("17.2")
    assert PgVersion.from_num(90624).major_label == "9.6"
    with pytest.raises(PgshiftError):
        PgVersion.from_num("abc")


def test_parse_rejects_text_without_version() -> None:
    with pytest.raises(PgshiftError):
        PgVersion.parse("no version here")


def test_parse_major_accepts_user_spelling() -> None:
    assert parse_major("17") == 17
    assert parse_major("9.6") == 906
    with pytest.raises(UsageError):
        parse_major("17.2")
    with pytest.raises(UsageError):
        parse_major("seventeen")


def test_pg_dump_never_dumps_a_newer_server() -> None:
    assert dump_refusal(16, PgVersion.parse("17.1")) is not None
    assert dump_refusal(17, PgVersion.parse("17.1")) is None
    assert dump_refusal(18, PgVersion.parse("10.23")) is None


def test_oldest_server_each_client_supports() -> None:
    assert oldest_server_for_client(14).num == 80000
    assert oldest_server_for_client(15).num == 90200
    assert oldest_server_for_client(20).num == 100000
    assert dump_refusal(15, PgVersion.parse("9.1.24")) is not None
    assert dump_refusal(14, PgVersion.parse("9.1.24")) is None
    assert dump_refusal(20, PgVersion.parse("9.6.24")) is not None


def test_pg_restore_must_be_at_least_the_archive_writer() -> None:
    assert restore_refusal(16, 17) is not None
    assert restore_refusal(17, 17) is None
    assert restore_refusal(18, 17) is None


def test_downgrade_refused_unless_allowed_then_warned() -> None:
    src, tgt = PgVersion.parse("17.2"), PgVersion.parse("16.5")
    refused = check_direction(src, tgt)
    assert not refused.allowed and refused.reason
    allowed = check_direction(src, tgt, allow_downgrade=True)
    assert allowed.allowed and allowed.warning
    assert check_direction(tgt, src).allowed
    assert check_direction(src, src).warning is None


def test_majors_print_as_users_write_them() -> None:
    old, new = parse_major("9.6"), parse_major("18")
    assert (str(old), f"{old}", f"pg_dump {old}", f"{old:>5}") == ("9.6", "9.6", "pg_dump 9.6", "  9.6")
    assert (str(new), f"{new:d}") == ("18", "18")
    assert old == 906 and old + 1 == 907 and sorted([new, old], key=major_order) == [old, new]
    assert json.dumps({"major": old}) == '{"major": 906}'  # JSON keeps the number
    assert str(PgVersion.parse("9.6.24").major) == "9.6"


def test_a_version_known_only_by_its_major_prints_the_major() -> None:
    assert str(PgVersion.from_major(12)) == "12"
    assert str(PgVersion.from_major(906)) == "9.6"
    assert str(PgVersion.parse("17.0")) == "17.0"  # a real release keeps its minor
    assert PgVersion.from_major(17) == PgVersion.parse("17.0")


def test_a_bad_major_hint_suggests_only_supported_majors() -> None:
    with pytest.raises(UsageError) as err:
        parse_major("seventeen")
    assert "9.6" not in (err.value.hint or "")
    assert f"supports {OLDEST_SUPPORTED_SOURCE} to {NEWEST_KNOWN_MAJOR}" in (err.value.hint or "")
