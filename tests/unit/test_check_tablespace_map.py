"""The tablespaces rule under migrate's --tablespace-map: a mapped tablespace is created, not missing."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from pgshift.checks import ClientAdvice, Severity
from pgshift.checks.rule import Context
from pgshift.checks.rules import BY_ID
from pgshift.version import PgVersion


def _ctx(tablespace_map: dict[str, str]) -> Context:
    source = SimpleNamespace(
        server=SimpleNamespace(version=PgVersion.from_major(14)),
        tablespaces=(
            SimpleNamespace(name="fast", location="/ssd/pg"),
            SimpleNamespace(name="slow", location="/hdd/pg"),
            SimpleNamespace(name="here", location="/x"),
        ),
    )
    target = SimpleNamespace(tablespaces=frozenset({"here"}))
    return Context(
        source=cast(Any, source),
        target=cast(Any, target),
        target_major=18,
        conn=cast(Any, None),
        database=None,
        client=ClientAdvice("18", "18.6", "/bin", "same major as the target"),
        jobs=2,
        tablespace_map=tablespace_map,
    )


def test_a_tablespace_mapped_by_name_or_path_is_information_not_a_warning() -> None:
    rule = BY_ID["tablespaces"]
    unmapped = {h.object: h for h in rule.run(_ctx({}))}
    assert set(unmapped) == {"fast", "slow"} and all(h.severity is None for h in unmapped.values())
    mapped = {h.object: h for h in rule.run(_ctx({"fast": "/data/fast", "/hdd/pg": "/data/slow"}))}
    assert {o: h.severity for o, h in mapped.items()} == {"fast": Severity.INFO, "slow": Severity.INFO}
    assert "created at /data/fast (--tablespace-map)" in mapped["fast"].message
    assert "does not exist on the target" not in mapped["slow"].message
    partly = {h.object: h.severity for h in rule.run(_ctx({"fast": "/data/fast"}))}
    assert partly == {"fast": Severity.INFO, "slow": None}  # None: the rule's own severity, a warning
