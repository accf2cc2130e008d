"""Expected-difference rules: each explains only what its PostgreSQL change explains."""

from __future__ import annotations

import pytest

from pgshift.catalog.inventory import DbObject
from pgshift.verify import RULE_NAMES, Difference, VerifyOptions, VerifyReport
from pgshift.verify.patterns import Filter, compile_table
from pgshift.verify.rules import Candidate, Context, classify
from pgshift.version import PgVersion


def ctx(src: int, tgt: int, **defaults: str) -> Context:
    return Context(PgVersion.from_major(src), PgVersion.from_major(tgt), defaults)


def extra(obj: DbObject) -> Candidate:
    label = f"{obj.kind} {obj.qualified}"
    return Candidate(
        Difference("schema", "db", label, "extra", None, "exists", f"{label} exists only on the target"), None, obj
    )


def changed(obj_s: DbObject, obj_t: DbObject, attr: str, s: str | None, t: str | None) -> Candidate:
    label = f"{obj_s.kind} {obj_s.qualified}"
    cat = "privileges" if attr == "acl" else "schema"
    return Candidate(Difference(cat, "db", label, "changed", s, t, f"{label}: {attr} differs"), obj_s, obj_t, attr)


def rule_of(cand: Candidate, context: Context) -> str | None:
    real, expected = classify([cand], context)
    assert len(real) + len(expected) == 1
    return expected[0].rule if expected else None


NOT_NULL = DbObject(
    "constraint (not null)",
    "public",
    "t.t_id_not_null",
    attrs={"definition": "NOT NULL id", "validated": "yes"},
    flags=frozenset({"contype:n", "on:table"}),
)
DOMAIN_NOT_NULL = DbObject(
    "constraint (not null)",
    "public",
    "d.d_not_null",
    attrs={"definition": "NOT NULL", "validated": "yes"},
    flags=frozenset({"contype:n", "on:domain"}),
)
MULTIRANGE = DbObject("type (multirange)", "public", "fr_multirange", flags=frozenset({"multirange"}))
CONSTRUCTOR = DbObject("function", "public", "fr_multirange(public.fr)", flags=frozenset({"multirange-constructor"}))


def test_not_null_constraints_are_expected_only_when_moving_to_18() -> None:
    assert rule_of(extra(NOT_NULL), ctx(17, 18)) == "not-null-constraints-18"
    assert rule_of(extra(NOT_NULL), ctx(11, 18)) == "not-null-constraints-18"
    assert rule_of(extra(NOT_NULL), ctx(18, 18)) is None  # same major: a real difference


def test_domain_not_null_constraints_are_expected_from_17() -> None:
    assert rule_of(extra(DOMAIN_NOT_NULL), ctx(16, 17)) == "domain-not-null-constraints-17"
    assert rule_of(extra(DOMAIN_NOT_NULL), ctx(17, 18)) is None


def test_a_missing_not_null_constraint_is_never_expected() -> None:
    missing = Candidate(Difference("schema", "db", "x", "missing", "exists", None, "gone"), NOT_NULL, None)
    assert rule_of(missing, ctx(11, 18)) is None


def test_multirange_objects_are_expected_only_across_14() -> None:
    assert rule_of(extra(MULTIRANGE), ctx(13, 14)) == "multirange-types-14"
    assert rule_of(extra(CONSTRUCTOR), ctx(11, 18)) == "multirange-types-14"
    assert rule_of(extra(MULTIRANGE), ctx(14, 17)) is None
    plain = DbObject("function", "public", "fr_multirange(public.fr)")
    assert rule_of(extra(plain), ctx(13, 17)) is None


def test_maintain_privilege_is_expected_when_all_table_privileges_were_granted() -> None:
    s = DbObject(
        "table", "public", "t", acl=("postgres=arwdDxt/postgres", "alice=r/postgres"), flags=frozenset({"relation"})
    )
    t = DbObject(
        "table", "public", "t", acl=("postgres=arwdDxtm/postgres", "alice=r/postgres"), flags=frozenset({"relation"})
    )
    assert rule_of(changed(s, t, "acl", "", ""), ctx(16, 17)) == "maintain-privilege-17"
    assert rule_of(changed(s, t, "acl", "", ""), ctx(17, 18)) is None


def test_maintain_privilege_does_not_hide_a_revoked_grant() -> None:
    s = DbObject(
        "table", "public", "t", acl=("postgres=arwdDxt/postgres", "alice=r/postgres"), flags=frozenset({"relation"})
    )
    t = DbObject("table", "public", "t", acl=("postgres=arwdDxtm/postgres",), flags=frozenset({"relation"}))
    assert rule_of(changed(s, t, "acl", "", ""), ctx(16, 17)) is None
    # 'm' on a grantee who did not hold every table privilege is not explained either.
    t2 = DbObject(
        "table", "public", "t", acl=("postgres=arwdDxtm/postgres", "alice=rm/postgres"), flags=frozenset({"relation"})
    )
    assert rule_of(changed(s, t2, "acl", "", ""), ctx(16, 17)) is None


def test_procedure_argument_modes_spelled_by_14() -> None:
    p = DbObject("procedure", "public", "p(integer, text)")
    cand = changed(p, p, "arguments", "INOUT a integer, b text", "INOUT a integer, IN b text")
    assert rule_of(cand, ctx(13, 14)) == "procedure-argument-modes-14"
    other = changed(p, p, "arguments", "INOUT a integer, b text", "INOUT a integer, IN c text")
    assert rule_of(other, ctx(13, 14)) is None


def test_trigger_spelling_from_10() -> None:
    tg = DbObject("trigger", "public", "t.tg")
    s = "CREATE TRIGGER tg BEFORE UPDATE ON public.t FOR EACH ROW EXECUTE PROCEDURE f()"
    t = "CREATE TRIGGER tg BEFORE UPDATE ON public.t FOR EACH ROW EXECUTE FUNCTION f()"
    assert rule_of(changed(tg, tg, "definition", s, t), ctx(11, 12)) == "trigger-execute-function-12"
    assert rule_of(changed(tg, tg, "definition", s, t.replace("UPDATE", "INSERT")), ctx(10, 18)) is None


def test_extension_at_the_targets_default_version_is_expected() -> None:
    e = DbObject("extension", None, "pg_trgm")
    assert rule_of(changed(e, e, "version", "1.4", "1.6"), ctx(11, 18, pg_trgm="1.6")) == "extension-default-version"
    assert rule_of(changed(e, e, "version", "1.6", "1.4"), ctx(11, 18, pg_trgm="1.6")) is None


def test_public_schema_ownership_change_of_15() -> None:
    s = DbObject("schema", None, "public", owner="postgres")
    t = DbObject("schema", None, "public", owner="pg_database_owner")
    assert rule_of(changed(s, t, "owner", "postgres", "pg_database_owner"), ctx(14, 15)) == "public-schema-15"
    assert rule_of(changed(s, t, "owner", "postgres", "alice"), ctx(14, 15)) is None
    assert rule_of(changed(s, t, "owner", "postgres", "pg_database_owner"), ctx(15, 16)) is None


def test_every_rule_is_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "verify.md").read_text()
    for name in RULE_NAMES:
        assert f"`{name}`" in doc, name


@pytest.mark.parametrize(
    ("pattern", "schema", "table", "hit"),
    [
        ("film*", "public", "film_actor", True),
        ("public.film", "public", "film", True),
        ("public.film", "other", "film", False),
        ('"Mixed"', "public", "Mixed", True),
        ("Mixed", "public", "Mixed", False),  # unquoted folds to lower case
        ("*.f?lm", "x", "film", True),
    ],
)
def test_table_patterns_read_like_pg_dump(pattern: str, schema: str, table: str, hit: bool) -> None:
    assert compile_table(pattern).matches(schema, table) is hit


def test_schema_and_table_filters_combine() -> None:
    f = Filter.build(schemas=["app*"], exclude_tables=["app.tmp_*"])
    assert f.table_ok("app", "orders") and not f.table_ok("app", "tmp_x") and not f.table_ok("public", "orders")


def test_report_exit_code_and_summary() -> None:
    diff = Difference("rows", "db", "table public.t", "count", "3", "2", "table public.t: 1 row(s) fewer on the target")
    rep = VerifyReport(equal=False, differences=(diff,), expected=(), databases=(), options=VerifyOptions())
    assert rep.exit_code == 1 and rep.summary().startswith("DIFFERENT: 1 difference")
    assert rep.as_dict()["differences"][0]["object"] == "table public.t"
    ok = VerifyReport(equal=True, differences=(), expected=(), databases=())
    assert ok.exit_code == 0 and ok.summary().startswith("EQUAL")


def test_multirange_owner_left_behind_before_17() -> None:
    s = DbObject(
        "type (multirange)", "app", "fr_multirange", owner="o", flags=frozenset({"multirange", "range-owner:o"})
    )
    t = DbObject(
        "type (multirange)", "app", "fr_multirange", owner="postgres", flags=frozenset({"multirange", "range-owner:o"})
    )
    assert rule_of(changed(s, t, "owner", "o", "postgres"), ctx(14, 15)) == "multirange-owner-14-16"
    assert rule_of(changed(s, t, "owner", "o", "postgres"), ctx(16, 17)) is None  # 17 fixed it
    t2 = DbObject(
        "type (multirange)", "app", "fr_multirange", owner="postgres", flags=frozenset({"multirange", "range-owner:x"})
    )
    assert rule_of(changed(s, t2, "owner", "o", "postgres"), ctx(14, 15)) is None


def test_memberships_compare_options_not_grantors() -> None:
    from pgshift.catalog.cluster import Membership
    from pgshift.verify.compare import compare_memberships

    src = [Membership("staff", "alice", "postgres", True, None, None)]
    # 16+: the same membership granted twice (two grantors), one of them WITH ADMIN OPTION.
    tgt = [
        Membership("staff", "alice", "bob", False, True, True),
        Membership("staff", "alice", "postgres", True, True, True),
    ]
    assert compare_memberships(src, tgt, both_16=False) == []
    lost = [Membership("staff", "alice", "postgres", False, True, True)]
    (cand,) = compare_memberships(src, lost, both_16=False)
    assert (cand.difference.kind, cand.difference.source, cand.difference.target) == ("changed", "admin", "no admin")
    (gone,) = compare_memberships(src, [], both_16=False)
    assert gone.difference.message == "alice is no longer a member of staff"


def test_public_schema_acl_of_15_only_replaces_the_old_default() -> None:
    new = "pg_database_owner=UC/pg_database_owner, =U/pg_database_owner"
    s = DbObject("schema", None, "public", owner="postgres", acl=("postgres=UC/postgres", "=UC/postgres"))
    t = DbObject("schema", None, "public", owner="pg_database_owner", acl=tuple(new.split(", ")))
    assert rule_of(changed(s, t, "acl", "postgres=UC/postgres, =UC/postgres", new), ctx(14, 15)) == "public-schema-15"
    # A hardened source (no PUBLIC access) that arrives with USAGE for PUBLIC is a real difference.
    hardened = DbObject("schema", None, "public", owner="postgres", acl=("postgres=UC/postgres",))
    assert rule_of(changed(hardened, t, "acl", "postgres=UC/postgres", new), ctx(14, 15)) is None


def role_diff(kind: str, obj: str, *roles: str) -> Candidate:
    s, t = ("exists", None) if kind == "missing" else (None, "exists") if kind == "extra" else ("a", "b")
    return Candidate(Difference("globals", None, obj, kind, s, t, obj), roles=roles)


def test_the_targets_own_roles_keep_their_attributes_on_any_pair() -> None:
    own = Context(PgVersion.from_major(16), PgVersion.from_major(16), {}, frozenset({"postgres", "admin"}))
    assert rule_of(role_diff("changed", "role postgres", "postgres"), own) == "target-own-role"
    assert rule_of(role_diff("changed", "membership of admin in grp", "admin", "grp"), own) == "target-own-role"
    missing_grant = role_diff("missing", "membership of admin in grp", "admin", "grp")
    assert rule_of(Candidate(missing_grant.difference, attribute="membership", roles=("admin", "grp")), own) == (
        "target-own-role"
    )
    # Another role's changed password is real, and so is any role missing on the target.
    assert rule_of(role_diff("changed", "role alice", "alice"), own) is None
    assert rule_of(role_diff("missing", "role admin", "admin"), own) is None


def test_roles_only_on_the_target_hold_nothing_of_the_source() -> None:
    any_pair = ctx(17, 17)
    assert rule_of(role_diff("extra", "role rds_admin", "rds_admin"), any_pair) == "role-only-on-target"
    assert rule_of(role_diff("missing", "role alice", "alice"), any_pair) is None


def test_a_sequence_that_went_on_is_expected_only_when_read_in_the_dumps_snapshot() -> None:
    def seq(kind: str) -> Candidate:
        return Candidate(
            Difference("sequences", "db", "sequence public.s", kind, "120", "80", "sequence public.s is behind")
        )

    # verify marks a sequence "moved-on" only inside a migration's dump snapshot, and only when behind.
    assert rule_of(seq("moved-on"), ctx(14, 17)) == "sequence-moved-on"
    assert rule_of(seq("moved-on"), ctx(17, 17)) == "sequence-moved-on"
    assert rule_of(seq("changed"), ctx(14, 17)) is None
