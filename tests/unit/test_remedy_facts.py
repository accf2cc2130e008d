"""migrate's remedy planning on facts alone (no server), and a set's record of those facts read back."""

from __future__ import annotations

import json

import pytest

from pgshift.backup import remedies as set_remedies
from pgshift.catalog import remedies as cat
from pgshift.errors import UsageError
from pgshift.migrate.plan import ItemChange
from pgshift.migrate.remedies import DatabaseRemedies, ExcludedObject, RemedyFacts, parse_object_spec, plan_from_facts

FACTS = RemedyFacts(
    generated_child_columns=(
        cat.GeneratedChildColumn(16400, "public", "child", "b", "(a * 2)", "public.child.b"),
        cat.GeneratedChildColumn(16400, "public", "child", "c", "(a + 1)", "public.child.c"),
    ),
    reserved_name_rules=(
        cat.ReservedNameRule(
            16500,
            "public",
            "log",
            "insert",
            'CREATE RULE "_RETURN" AS ON INSERT TO public.log DO INSTEAD NOTHING;',
            ("_RETURN_insert",),
            "public.log",
        ),
    ),
    routine_settings=(
        cat.RoutineSettings(16600, "public.f()", ("vacuum_defer_cleanup_age=0", "work_mem=64kB"), "function"),
        cat.RoutineSettings(16601, "public.g()", ("work_mem=64kB", "my.custom=1"), "procedure"),
    ),
    extension_uses=(
        cat.ExtensionUse("old_ext", 16700, "public", 0),
        cat.ExtensionUse("used_ext", 16701, "public", 3),
        cat.ExtensionUse("hstore", 16702, "public", 0),
    ),
)
ALL = ("generated-as-plain", "rename-rule", "drop-removed-settings", "leave-out-extension")
KNOWN = frozenset({"work_mem", "search_path"})


def plan(facts: RemedyFacts = FACTS, remedies: tuple[str, ...] = ALL, target_major: int = 18) -> DatabaseRemedies:
    return plan_from_facts(
        facts,
        "shop",
        remedies=remedies,
        target_major=target_major,
        target_settings=KNOWN,
        target_extensions=frozenset({"hstore"}),
        superuser=True,
    )


def test_each_remedy_changes_exactly_the_objects_its_facts_name() -> None:
    out = plan()
    assert out.items == [
        ItemChange("generated-as-plain", 1259, 16400, "table public.child", False, ("b", "c")),
        ItemChange("rename-rule", 2618, 16500, "rule _RETURN on public.log", True),
        ItemChange(
            "drop-removed-settings", 1255, 16600, "function public.f()", drop_settings=("vacuum_defer_cleanup_age",)
        ),
        ItemChange("leave-out-extension", 3079, 16700, "extension old_ext", True),
    ]
    assert [a.about for a in out.after_data] == [
        "table public.child (generated-as-plain)",
        "rule _RETURN_insert_2 on public.log (rename-rule)",  # _RETURN_insert is taken on that table
    ]
    assert out.after_data[1].tolerates == ("duplicate_object",)
    assert [(a.remedy, a.kind, a.name) for a in out.applied] == [
        ("generated-as-plain", "column", "public.child.b"),
        ("generated-as-plain", "column", "public.child.c"),
        ("rename-rule", "rule", "public.log._RETURN"),
        ("drop-removed-settings", "function", "public.f()"),
        ("leave-out-extension", "extension", "old_ext"),
    ]
    assert out.left_out_extensions == {"old_ext"} and out.rewrites_schema and out.omits


def test_only_the_remedies_asked_for_apply_and_generated_as_plain_only_from_16() -> None:
    assert plan(remedies=()).items == []
    assert [i.remedy for i in plan(remedies=("rename-rule",)).items] == ["rename-rule"]
    # 15 still accepts a generated child column under a plain parent: nothing to carry there.
    assert [i.remedy for i in plan(remedies=("generated-as-plain",), target_major=15).items] == []
    assert [i.remedy for i in plan(remedies=("generated-as-plain",), target_major=16).items] == ["generated-as-plain"]


def test_a_rule_definition_that_is_not_a_return_rule_is_a_usage_error() -> None:
    odd = cat.ReservedNameRule(
        1, "public", "t", "insert", "CREATE RULE r AS ON INSERT TO t DO NOTHING;", (), "public.t"
    )
    with pytest.raises(UsageError, match=r"rule _RETURN on public\.t: "):
        plan(RemedyFacts(reserved_name_rules=(odd,)), remedies=("rename-rule",))


def test_an_excluded_object_goes_with_its_dependents_and_lists_only_the_whole_ones() -> None:
    spec = parse_object_spec("table public.parent")
    root = cat.CatalogObject(1259, 16800, "table public.parent")
    found = (
        root,
        cat.CatalogObject(1259, 16801, "view public.v"),
        cat.CatalogObject(2618, 16802, "rule _RETURN on view public.v", part=True),
    )
    out = plan(RemedyFacts(excluded=(ExcludedObject(spec, root, found),)), remedies=())
    assert [(i.remedy, i.objid, i.omit) for i in out.items] == [
        ("exclude-object", 16800, True),
        ("exclude-object", 16801, True),
        ("exclude-object", 16802, True),
    ]
    (applied,) = out.applied
    assert (applied.kind, applied.name, applied.also) == ("table", "public.parent", ("view public.v",))
    assert out.excluded == {"table public.parent"}


def test_a_sets_record_reads_back_as_the_facts_it_was_written_from() -> None:
    entry = {"name": "shop", set_remedies.FACTS: json.loads(json.dumps(set_remedies.as_manifest(FACTS)))}
    assert set_remedies.recorded(entry) == FACTS
    assert set_remedies.recorded({"name": "shop"}) == RemedyFacts()  # a set older than the facts
    restored = set_remedies.plan_database(
        entry,
        "shop",
        remedies=ALL,
        target_major=18,
        target_settings=KNOWN,
        target_extensions=frozenset({"hstore"}),
        superuser=True,
    )
    assert restored == plan()
