"""Backup set names sort in time order, and a name rotation freed is never taken again."""

from __future__ import annotations

from pathlib import Path

from pgshift.backup.sets import PARTIAL, new_set_name, set_order


def test_names_of_one_second_sort_by_their_count_not_as_text() -> None:
    names = ["20261203T144641Z-10", "20261203T144641Z-2", "20261203T144641Z", "20261203T144640Z-3"]
    assert sorted(names, key=set_order) == [
        "20261203T144640Z-3",
        "20261203T144641Z",
        "20261203T144641Z-2",
        "20261203T144641Z-10",
    ]


def test_a_new_name_comes_after_every_set_of_its_second_even_when_rotation_freed_lower_ones(
    tmp_path: Path,
) -> None:
    first = new_set_name(tmp_path)
    (tmp_path / first).mkdir()
    stamp = first.split("-")[0]
    (tmp_path / f"{stamp}-3{PARTIAL}").mkdir()  # an older run's partial set of the same second
    (tmp_path / first).rmdir()  # rotation removed the first
    later = new_set_name(tmp_path)
    if later.split("-")[0] == stamp:  # still the same second
        assert later == f"{stamp}-4"
    assert set_order(later) > set_order(f"{stamp}-3")
