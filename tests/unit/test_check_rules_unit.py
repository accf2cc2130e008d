"""Rule logic that needs no server: version ranges, verdicts, and the detectors whose hazards cannot be
planted on one machine (no usable client, a full disk, locales or collation versions that differ
between hosts)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from pgshift.checks import CheckReport, ClientAdvice, Estimates, Finding, Severity
from pgshift.checks.rule import Context
from pgshift.checks.rules import ALL_RULES, BY_ID
from pgshift.checks.rules.cluster import drifted, missing_locales
from pgshift.version import PgVersion


def _estimates(**changes: Any) -> Estimates:
    base: dict[str, Any] = {
        "databases_bytes": 10,
        "table_data_bytes": 10,
        "index_bytes": 0,
        "jobs": 2,
        "source_connections_needed": 4,
        "source_connections_available": 50,
        "target_connections_needed": 3,
        "target_connections_available": None,
        "work_dir": "/w",
        "work_dir_free_bytes": 100,
        "dump_bytes_estimate": 10,
        "work_dir_fits": True,
    }
    base.update(changes)
    return Estimates(**base)


def _ctx(client: ClientAdvice | None = None, estimates: Estimates | None = None, target_major: int = 18) -> Context:
    source = SimpleNamespace(server=SimpleNamespace(version=PgVersion.from_major(13)))
    return Context(
        source=cast(Any, source),
        target=None,
        target_major=target_major,
        conn=cast(Any, None),
        database=None,
        client=client or ClientAdvice("18", "18.6", "/bin", "same major as the target"),
        jobs=2,
        estimates=estimates,
    )


def test_rule_ids_are_unique_and_every_rule_is_complete() -> None:
    assert len(BY_ID) == len(ALL_RULES)
    for rule in ALL_RULES:
        assert rule.id == rule.id.lower() and " " not in rule.id
        assert rule.title and rule.what_happens and rule.remediation and rule.changed_in
        assert rule.detect is not None or (rule.queries and rule.message), rule.id


def test_version_ranges_pick_the_rules_that_apply() -> None:
    with_oids = BY_ID["with-oids"]
    assert with_oids.applies(11, 12) and with_oids.applies(10, 18)
    assert not with_oids.applies(12, 18) and not with_oids.applies(11, 11)
    assert BY_ID["unlogged-partitioned"].applies(17, 18) and not BY_ID["unlogged-partitioned"].applies(17, 17)
    assert with_oids.source_range == "<= 11" and with_oids.target_range == ">= 12"
    assert BY_ID["reg-types"].source_range == "any"


def test_query_is_chosen_by_source_major() -> None:
    rule = BY_ID["generated-inheritance-mismatch"]
    assert rule.query_for(11) is None  # no generated columns before 12
    assert rule.query_for(15) is not None


def test_no_usable_client_is_a_blocker_naming_the_reason() -> None:
    advice = ClientAdvice(None, None, None, reason="no client", error="no installed PostgreSQL client can move 18")
    hits = list(BY_ID["client-dump-newer-server"].run(_ctx(client=advice)))
    assert [h.message for h in hits] == ["no installed PostgreSQL client can move 18"]
    assert list(BY_ID["client-dump-newer-server"].run(_ctx())) == []


def test_full_work_dir_is_a_warning_and_room_is_silent() -> None:
    full = _estimates(work_dir_free_bytes=5 * 1024**2, dump_bytes_estimate=3 * 1024**3, work_dir_fits=False)
    hits = list(BY_ID["work-dir-space"].run(_ctx(estimates=full)))
    assert len(hits) == 1 and "3.0 GiB" in hits[0].message and hits[0].object == "/w"
    assert list(BY_ID["work-dir-space"].run(_ctx(estimates=_estimates()))) == []


def test_connections_for_jobs_compares_needs_with_free_slots() -> None:
    short = _estimates(source_connections_needed=10, source_connections_available=3)
    assert [h.object for h in BY_ID["connections-for-jobs"].run(_ctx(estimates=short))] == ["source"]
    assert list(BY_ID["connections-for-jobs"].run(_ctx(estimates=_estimates()))) == []


@pytest.mark.parametrize(
    ("wanted", "available", "missing"),
    [
        ("en_US.UTF-8", {"en_US.utf8"}, False),
        ("C.UTF-8", {"C.utf8"}, False),
        ("de_DE.UTF-8", {"en_US.utf8", "C"}, True),
        ("C", {"C", "POSIX"}, False),
    ],
)
def test_locale_comparison_ignores_case_and_punctuation(wanted: str, available: set[str], missing: bool) -> None:
    assert bool(missing_locales({"database x": wanted}, available)) is missing


def test_collation_drift_reports_only_differing_versions() -> None:
    assert drifted({"en_US": "2.36", "de_DE": "2.36"}, {"en_US": "2.41", "de_DE": "2.36", "fr_FR": "1"}) == [
        ("en_US", "2.41", "2.36")
    ]


def _report(*severities: Severity) -> CheckReport:
    findings = tuple(Finding("r", s, "t", "m", "fix") for s in severities)
    source = SimpleNamespace(server=SimpleNamespace(version=PgVersion.from_major(13)))
    return CheckReport(
        source=cast(Any, source),
        target=None,
        target_version=18,
        offline=True,
        findings=findings,
        skipped=(),
        client=ClientAdvice(None, None, None, ""),
        estimates=_estimates(),
    )


def test_exit_code_follows_the_worst_finding() -> None:
    assert _report().exit_code == 0
    assert _report(Severity.INFO).exit_code == 0
    assert _report(Severity.INFO, Severity.WARNING).exit_code == 1
    assert _report(Severity.WARNING, Severity.BLOCKER).exit_code == 2
    assert _report(Severity.BLOCKER).verdict.startswith("NOT READY (13 → 18)")
    assert _report().verdict.startswith("READY (13 → 18)")


def test_every_knowledge_base_entry_is_a_rule_or_has_a_reason() -> None:
    import json
    from importlib import resources

    from pgshift.checks.rules import NOT_RULES

    # The knowledge base's ids, extracted into the repository (provenance in its README.md).
    kb = resources.files("pgshift") / "data" / "knowledge" / "incompatibilities.json"
    entries = json.loads(kb.read_text(encoding="utf-8"))["entries"]
    ids = {entry["id"] for entry in entries}
    assert len(ids) == len(entries) == 66
    assert sorted(ids - set(BY_ID) - set(NOT_RULES)) == []
    # A reason for not being a rule names an entry that exists, and is not also a rule.
    assert sorted(set(NOT_RULES) - ids) == []
    assert sorted(set(NOT_RULES) & set(BY_ID)) == []


# psql patterns as pg_dump 14-18 turn them into regular expressions (each expectation was checked
# against pg_dump itself: tests/integration/test_check_filters.py compares whole selections).
@pytest.mark.parametrize(
    ("pattern", "name", "schema", "database"),
    [
        ("foo", "^(foo)$", None, None),
        ("Foo", "^(foo)$", None, None),  # unquoted: lower-cased
        ('"Foo"', "^(Foo)$", None, None),
        ("*foo*", "^(.*foo.*)$", None, None),
        ("f?o", "^(f.o)$", None, None),
        ("s1.foo", "^(foo)$", "^(s1)$", None),
        ("*.foo", "^(foo)$", "^(.*)$", None),
        ('"a.b"', "^(a\\.b)$", None, None),  # a quoted dot is part of the name
        ("x$y", "^(x\\$y)$", None, None),  # $ is always literal
        ("int[]", "^(int\\[])$", None, None),  # so is []
        ("foo|bar", "^(foo|bar)$", None, None),  # other regex syntax passes through unquoted
        ('"x*"', "^(x\\*)$", None, None),
        ('"a""b"', '^(a"b)$', None, None),
        ("app.public.foo", "^(foo)$", "^(public)$", "app"),
        (".foo", "^(foo)$", "^()$", None),
    ],
)
def test_table_patterns_become_pg_dumps_regular_expressions(
    pattern: str, name: str, schema: str | None, database: str | None
) -> None:
    from pgshift.catalog.inventory_check import NamePattern, name_pattern

    assert name_pattern(pattern, tables=True) == NamePattern(name, schema, database)


def test_schema_patterns_do_not_split_and_refuse_a_dot_as_pg_dump_does() -> None:
    from pgshift.catalog.inventory_check import NamePattern, name_pattern
    from pgshift.errors import UsageError

    assert name_pattern("s?x", tables=False) == NamePattern("^(s.x)$")
    assert name_pattern('"a.b"', tables=False) == NamePattern("^(a\\.b)$")
    with pytest.raises(UsageError, match="cross-database"):
        name_pattern("app.s1", tables=False)
    with pytest.raises(UsageError, match="too many dotted names"):
        name_pattern("a.b.c.d", tables=True)


def test_default_table_access_method_blocks_a_move_into_11_only_with_a_pg_restore_before_15() -> None:
    # pg_restore 15+ leaves it out (--no-table-access-method, which pgshift passes for a target before 12).
    rule = BY_ID["client-settings-older-target"]
    assert rule.detect is not None

    def hits(client: str) -> list[str]:
        source = SimpleNamespace(server=SimpleNamespace(version=PgVersion.from_major(12)))
        ctx = Context(
            source=cast(Any, source),
            target=None,
            target_major=11,
            conn=cast(Any, None),
            database=None,
            client=ClientAdvice(client, f"{client}.1", "/bin", "closest newer"),
            jobs=2,
            estimates=None,
        )
        assert rule.detect is not None
        return [h.object for h in rule.detect(ctx)]

    assert hits("14") == ["default_table_access_method"]
    assert hits("12") == ["default_table_access_method"]
    assert hits("15") == [] and hits("18") == []
