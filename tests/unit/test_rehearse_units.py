"""The rehearsal's arithmetic and option checks, without a server."""

from __future__ import annotations

import pytest

from pgshift.catalog.sampling import TableSize
from pgshift.conninfo import Endpoint
from pgshift.errors import UsageError
from pgshift.rehearse import RehearseOptions
from pgshift.rehearse.sample import scale_of


def test_a_table_loaded_whole_is_not_scaled() -> None:
    assert scale_of(7, 100, TableSize(7_000, 10_000_000, 12_000_000), TableSize(7, 8192, 16384)) == 1.0


def test_a_sampled_table_scales_by_the_source_row_estimate() -> None:
    assert scale_of(100, 100, TableSize(20_000, 3_000_000, 4_000_000), TableSize(100, 16384, 40960)) == 200.0


def test_a_never_analyzed_table_scales_by_its_size_on_disk() -> None:
    assert scale_of(100, 100, TableSize(-1, 819_200, 900_000), TableSize(100, 8192, 16384)) == 100.0


@pytest.mark.parametrize(
    ("kwargs", "said"),
    [
        ({"target_major": 9}, "has no lab server"),
        ({"target_major": 17, "sample_rows": 0}, "at least 1"),
        ({"target_major": 17, "sample_rows": 5, "migrate": {"schema_only": True}}, "cannot be used together"),
        ({"target_major": 17, "migrate": {"if_exists": "drop"}}, "if_exists"),
        ({"target_major": 17, "migrate": {"jobs": 0}}, "--jobs"),
    ],
)
def test_options_a_rehearsal_cannot_take_are_refused_before_anything_starts(kwargs: dict, said: str) -> None:
    with pytest.raises(UsageError, match=said):
        RehearseOptions(source=Endpoint.parse("host=127.0.0.1 user=x", "source"), **kwargs)


def test_a_sample_rehearses_a_schema_only_migration_without_tablespaces_or_a_second_check() -> None:
    source = Endpoint.parse("host=127.0.0.1 user=x", "source")
    options = RehearseOptions(source=source, target_major=17, sample_rows=10, migrate={"mode": "stream"})
    migrate = options.migrate_options(Endpoint.parse("host=127.0.0.1 port=5 user=postgres", "target"))
    assert migrate.schema_only and migrate.no_tablespaces and not migrate.check and migrate.mode == "stream"
