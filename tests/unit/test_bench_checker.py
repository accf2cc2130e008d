"""bench/peers.py's result checker: a fast wrong method must not win, so every kind of wrong copy is caught."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "peers.py"


@pytest.fixture(scope="module")
def peers() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_peers", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_peers"] = module
    spec.loader.exec_module(module)
    return module


def _source() -> dict[str, Any]:
    # The layout shape_of returns: indexes [table, am, unique, primary, valid, ready, columns],
    # constraints [type, validated, columns, referenced table].
    return {
        "rows": {"public.events": 1000, "public.orders": 10},
        "columns": {"public.events.id": ["bigint", True], "public.events.note": ["text", False]},
        "indexes": {
            "public.events_pkey": ["public.events", "btree", True, True, True, True, "id"],
            "public.events_at": ["public.events", "btree", False, False, True, True, "at"],
        },
        "constraints": {
            "public.events.events_pkey": ["p", True, "id", None],
            "public.events.events_order_id_fkey": ["f", True, "order_id", "orders"],
        },
        "sequences": {"public.events_id_seq": 1000, "public.unused_seq": None},
        "digests": {"public.events": "123", "public.orders": "456"},
    }


def test_an_equal_copy_has_no_differences(peers: ModuleType) -> None:
    assert peers.differences(_source(), _source()) == []


@pytest.mark.parametrize(
    ("spoil", "expected"),
    [
        (lambda t: t["rows"].__setitem__("public.events", 999), "rows: public.events: source 1000, target 999"),
        (lambda t: t["rows"].pop("public.orders"), "rows: public.orders missing on the target"),
        (lambda t: t["rows"].__setitem__("public.extra", 0), "rows: public.extra on the target only"),
        (lambda t: t["columns"]["public.events.id"].__setitem__(1, False), "columns: public.events.id"),
        (lambda t: t["indexes"].pop("public.events_at"), "indexes: public.events_at missing on the target"),
        (lambda t: t["indexes"]["public.events_at"].__setitem__(4, False), "public.events_at is not valid and ready"),
        (lambda t: t["indexes"]["public.events_at"].__setitem__(5, False), "public.events_at is not valid and ready"),
        (lambda t: t["constraints"].pop("public.events.events_order_id_fkey"), "events_order_id_fkey missing"),
        (
            lambda t: t["constraints"]["public.events.events_order_id_fkey"].__setitem__(1, False),
            "events_order_id_fkey is not validated on the target",
        ),
        (lambda t: t["sequences"].__setitem__("public.events_id_seq", 1), "sequences: public.events_id_seq"),
        (lambda t: t["sequences"].__setitem__("public.unused_seq", 1), "sequences: public.unused_seq"),
        (lambda t: t["digests"].__setitem__("public.orders", "457"), "digests: public.orders"),
    ],
)
def test_each_kind_of_wrong_copy_is_named(peers: ModuleType, spoil: Any, expected: str) -> None:
    target = copy.deepcopy(_source())
    spoil(target)
    found = peers.differences(_source(), target)
    assert any(expected in line for line in found), found


def test_an_unvalidated_constraint_fails_even_when_the_source_has_it_too(peers: ModuleType) -> None:
    # A method that copies NOT VALID constraints as they are would otherwise look correct.
    source = _source()
    source["constraints"]["public.events.events_order_id_fkey"][1] = False
    assert peers.differences(source, copy.deepcopy(source)) == [
        "constraints: public.events.events_order_id_fkey is not validated on the target"
    ]


def test_many_differences_are_cut_to_a_readable_list(peers: ModuleType) -> None:
    target = copy.deepcopy(_source())
    target["rows"] = {f"public.t{i}": i for i in range(20)}
    found = peers.differences(_source(), target, limit=5)
    assert len(found) == 6 and found[-1].startswith("… and ")


def test_dataset_markers_differ_when_the_parameters_do(peers: ModuleType) -> None:
    # The cache reuses a dataset only when its marker is the same: every parameter must be in it.
    base = peers.dataset_marker("many", 0.05, 2000, 13)
    assert base == peers.dataset_marker("many", 0.05, 2000, 13)
    others = {
        peers.dataset_marker("many", 1.0, 2000, 13),
        peers.dataset_marker("many", 0.05, 100, 13),
        peers.dataset_marker("many", 0.05, 2000, 14),
        peers.dataset_marker("bulk", 0.05, 2000, 13),
    }
    assert base not in others and len(others) == 4


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("226ms", 0.226), ("3s021", 3.021), ("1m02s", 62), ("1h02m", 3720), ("0ms", 0.0), ("n/a", None), ("", None)],
)
def test_pgcopydb_durations_are_read_as_seconds(peers: ModuleType, text: str, seconds: float | None) -> None:
    assert peers._duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_pgcopydb_summary_table_is_parsed(peers: ModuleType) -> None:
    output = """
                                               Step   Connection    Duration   Concurrency
 --------------------------------------------------   ----------  ----------  ------------
                                        Dump Schema       source       226ms             1
      COPY, INDEX, CONSTRAINTS, VACUUM (wall clock)         both       3s021         2 + 4
 --------------------------------------------------   ----------  ----------  ------------
                          Total Wall Clock Duration         both       3s520         2 + 4
"""
    assert peers._pgcopydb_summary(output) == {
        "Dump Schema": "226ms",
        "COPY, INDEX, CONSTRAINTS, VACUUM (wall clock)": "3s021",
        "Total Wall Clock Duration": "3s520",
    }
