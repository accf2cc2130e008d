from __future__ import annotations

from pathlib import Path

import pytest

from pgshift.errors import ToolchainError
from pgshift.toolchain.discover import PROGRAMS, Discovery, Installation
from pgshift.toolchain.select import select_client
from pgshift.version import PgVersion


def inst(version: str, *, programs: tuple[str, ...] = PROGRAMS) -> Installation:
    v = PgVersion.parse(version)
    bin_dir = Path(f"/opt/pg{v.major_label}/bin")
    return Installation(bin_dir, v, {p: bin_dir / p for p in programs}, origin="test")


def disc(*versions: str) -> Discovery:
    items = [inst(v) for v in versions]
    items.sort(key=lambda i: -i.version.num)
    return Discovery(tuple(items))


V = PgVersion.parse


def test_prefers_the_target_major() -> None:
    choice = select_client(disc("18.6", "17.11", "16.15"), V("11.22"), V("17.2"))
    assert choice.major == 17
    assert "same major as the target" in choice.describe()
    assert "/opt/pg17/bin" in choice.describe()
    assert not choice.warnings


def test_newest_between_source_and_target_when_target_missing() -> None:
    choice = select_client(disc("18.6", "15.19", "14.23"), V("12.22"), V("17.2"))
    assert choice.major == 15
    assert "between the source (12) and the target (17)" in choice.reason


def test_newer_than_target_only_with_warning_and_flags() -> None:
    choice = select_client(disc("18.6"), V("12.22"), V("16.4"))
    assert choice.major == 18
    assert choice.newer_than_target
    assert choice.warnings
    assert "--no-statistics" in choice.dump_flags


def test_closest_newer_client_is_preferred() -> None:
    choice = select_client(disc("18.6", "17.11"), V("12.22"), V("16.4"))
    assert choice.major == 17
    assert "--no-statistics" not in choice.dump_flags


def test_client_older_than_source_is_never_chosen() -> None:
    with pytest.raises(ToolchainError) as err:
        select_client(disc("14.23"), V("16.1"), V("17.2"))
    assert "toolchain install 17" in (err.value.hint or "")
    assert "--docker" in (err.value.hint or "")


def test_installation_missing_a_program_is_skipped() -> None:
    partial = Installation(Path("/x/bin"), V("17.2"), {"pg_dump": Path("/x/bin/pg_dump")}, origin="test")
    full = inst("18.6")
    choice = select_client(Discovery((full, partial)), V("13.1"), V("17.2"))
    assert choice.major == 18


def test_docker_fallback_when_nothing_local_fits() -> None:
    choice = select_client(disc(), V("12.1"), V("17.2"), docker_version=lambda image: V("17.6"))
    assert choice.docker_image == "postgres:17"
    assert choice.program("pg_dump") == "pg_dump"
    assert "no local client fits" in choice.reason


def test_docker_forced_without_daemon_is_an_error() -> None:
    with pytest.raises(ToolchainError):
        select_client(disc("17.1"), V("12.1"), V("17.2"), docker=True)


def test_a_missing_client_hint_names_only_majors_pgshift_can_install() -> None:
    with pytest.raises(ToolchainError) as err:
        select_client(disc(), V("11.22"), V("12.4"))
    hint = err.value.hint or ""
    assert "toolchain install 12" not in hint  # PyPI has no 12: that command is refused
    assert "toolchain install 14" in hint and "system's packages" in hint


def test_a_newer_client_warning_names_an_install_that_works() -> None:
    old = select_client(disc("17.11"), V("11.22"), V("12.4"))
    assert not any("toolchain install 12" in w for w in old.warnings)
    assert any("system's packages" in w for w in old.warnings)
    recent = select_client(disc("18.6"), V("12.22"), V("16.4"))
    assert any("(pgshift toolchain install 16)" in w for w in recent.warnings)


def test_a_12_source_into_11_prefers_a_client_that_can_leave_out_table_access_methods() -> None:
    # pg_restore 12+ sets default_table_access_method, which 11 rejects; 15+ leaves it out on request.
    choice = select_client(disc("18.6", "15.19", "14.23", "12.22"), V("12.22"), V("11.22"))
    assert choice.major == 15 and choice.restore_flags == ("--no-table-access-method",)
    older = select_client(disc("14.23", "12.22"), V("12.22"), V("11.22"))
    assert older.major == 12 and older.restore_flags == ()
    # A source before 12 has no access methods: the closest newer client, no flag needed there.
    plain = select_client(disc("18.6", "12.22", "11.22"), V("10.23"), V("10.23"))
    assert plain.restore_flags == ()
    assert select_client(disc("18.6"), V("14.23"), V("17.2")).restore_flags == ()
