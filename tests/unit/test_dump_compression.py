"""How migrate compresses its dumps: chosen for speed, and refused where the client cannot write it.

These run the real pg_dump programs of the lab cache (the lz4 probe asks the binary itself).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pgshift.conninfo import Endpoint
from pgshift.errors import PreflightRefused, UsageError
from pgshift.migrate.options import MigrateOptions
from pgshift.migrate.preflight import dump_compression
from pgshift.toolchain.clients import dump_compression_supported
from pgshift.toolchain.discover import inspect_dir
from pgshift.toolchain.select import ClientChoice

PG = Path("/var/cache/pgshift/pg")


def client(major: int) -> ClientChoice:
    installation = inspect_dir(PG / str(major) / "bin", "test")
    if not hasattr(installation, "version"):
        pytest.skip(f"no PostgreSQL {major} binaries in {PG} (scripts/test.sh installs them)")
    return ClientChoice(version=installation.version, reason="test", installation=installation)  # type: ignore[union-attr]


def test_auto_is_lz4_on_a_16_plus_client_built_with_it() -> None:
    assert dump_compression_supported(client(17), "lz4")
    assert dump_compression("auto", client(17)) == "lz4"


def test_auto_is_no_compression_before_16_where_only_gzip_exists() -> None:
    assert not dump_compression_supported(client(15), "lz4")
    assert dump_compression("auto", client(15)) == "0"


def test_levels_pass_through_and_become_gzip_levels_before_16() -> None:
    assert dump_compression("zstd:3", client(17)) == "zstd:3"
    assert dump_compression("gzip:3", client(15)) == "3"
    assert dump_compression("none", client(15)) == "0"
    assert dump_compression("none", client(17)) == "none"


def test_lz4_with_a_15_client_is_refused_naming_the_version() -> None:
    with pytest.raises(PreflightRefused) as exc:
        dump_compression("lz4", client(15))
    assert "from 16 on" in exc.value.message and "--compress" in (exc.value.hint or "")


@pytest.mark.parametrize("bad", ["bogus", "lz4:x", "auto:3", "gzip:"])
def test_a_misspelt_compression_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError) as exc:
        MigrateOptions(
            source=Endpoint.parse("host=a", "source"), target=Endpoint.parse("host=b", "target"), compress=bad
        )
    assert bad in exc.value.message
