"""Docker in client selection, and the image builder's reading of ldd: rules without a daemon."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgshift.errors import ToolchainError
from pgshift.toolchain import docker as docker_images
from pgshift.toolchain.discover import PROGRAMS, Discovery, Installation
from pgshift.toolchain.select import select_client
from pgshift.version import PgVersion

V = PgVersion.parse


def disc(*versions: str) -> Discovery:
    items = []
    for text in versions:
        v = V(text)
        bin_dir = Path(f"/opt/pg{v.major_label}/bin")
        items.append(Installation(bin_dir, v, {p: bin_dir / p for p in PROGRAMS}, origin="test"))
    return Discovery(tuple(sorted(items, key=lambda i: -i.version.num)))


def test_default_image_comes_from_the_callback_with_the_targets_major() -> None:
    asked: list[int] = []

    def default(major: int) -> str:
        asked.append(major)
        return f"pgshift/postgres:{major}"

    choice = select_client(
        disc(), V("12.1"), V("17.2"), docker_version=lambda image: V("17.11"), docker_default_image=default
    )
    assert asked == [17]
    assert choice.docker_image == "pgshift/postgres:17"
    assert choice.describe() == (
        "pg_dump 17 from Docker image pgshift/postgres:17: no local client fits; the image's clients are "
        "PostgreSQL 17.11"
    )


def test_explicit_image_wins_over_the_default() -> None:
    choice = select_client(
        disc("17.1"),
        V("12.1"),
        V("17.2"),
        docker=True,
        docker_image="registry.local/pg:17",
        docker_version=lambda image: V("17.6"),
        docker_default_image=lambda major: "never-used",
    )
    assert choice.docker_image == "registry.local/pg:17"
    assert choice.reason == "--docker was given; the image's clients are PostgreSQL 17.6"


def test_local_client_is_preferred_and_docker_is_not_asked() -> None:
    def fail(image: str) -> PgVersion:
        raise AssertionError("Docker must not be asked when a local client fits")

    choice = select_client(disc("17.1"), V("12.1"), V("17.2"), docker_version=fail)
    assert choice.docker_image is None and choice.major == 17


def test_failed_docker_fallback_reports_the_missing_client_and_why_docker_did_not_help() -> None:
    def unreachable(image: str) -> PgVersion:
        raise ToolchainError("no Docker daemon is reachable at unix:///nonexistent")

    with pytest.raises(ToolchainError) as err:
        select_client(disc("14.2"), V("16.1"), V("17.2"), docker_version=unreachable)
    assert err.value.message.startswith("no installed PostgreSQL client can move 16.1 to 17.2")
    assert "Docker was tried: no Docker daemon is reachable" in err.value.message
    assert "pgshift toolchain install 17" in (err.value.hint or "")


def test_docker_image_older_than_the_source_is_refused() -> None:
    with pytest.raises(ToolchainError, match="cannot dump a newer server"):
        select_client(disc(), V("17.2"), V("18.1"), docker=True, docker_version=lambda image: V("16.4"))


def test_docker_image_newer_than_the_target_gets_warning_and_flags() -> None:
    choice = select_client(disc(), V("12.1"), V("16.2"), docker=True, docker_version=lambda image: V("18.6"))
    assert choice.newer_than_target
    assert choice.dump_flags == ("--no-statistics",)
    assert any("newer than the target" in w for w in choice.warnings)


def test_default_tag_names_pgshifts_repository() -> None:
    assert docker_images.default_tag(17) == "pgshift/postgres:17"
    assert docker_images.default_tag(906) == "pgshift/postgres:9.6"


def test_ldd_output_is_read_per_file_with_sonames_and_missing_libraries() -> None:
    # The parser of ldd's multi-file output, on a real ldd run of this Python (always an ELF).
    import sys

    needed, missing = docker_images.shared_libraries([Path(sys.executable).resolve()])
    assert any(Path(asked).name.startswith("libc.so") for asked in needed)
    assert all(Path(host).is_file() for host in needed.values())
    assert missing == {}
