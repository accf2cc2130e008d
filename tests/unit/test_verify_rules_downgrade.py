"""The expected-difference rules hold both ways across a major: what the newer major catalogs or
spells by itself is expected only on its own side, on a downgrade as on an upgrade, and never
hides what the older major could have kept."""

from __future__ import annotations

from dataclasses import replace

from pgshift.catalog.inventory import DbObject
from pgshift.verify import Difference
from pgshift.verify.rules import Candidate
from tests.unit.test_verify_rules import (
    CONSTRUCTOR,
    DOMAIN_NOT_NULL,
    MULTIRANGE,
    NOT_NULL,
    changed,
    ctx,
    extra,
    rule_of,
)


def missing(obj: DbObject) -> Candidate:
    label = f"{obj.kind} {obj.qualified}"
    return Candidate(
        Difference("schema", "db", label, "missing", "exists", None, f"{label} is missing on the target"), obj, None
    )


def test_not_null_constraints_of_18_are_expected_missing_on_an_older_target() -> None:
    assert rule_of(missing(NOT_NULL), ctx(18, 17)) == "not-null-constraints-18"
    assert rule_of(missing(NOT_NULL), ctx(18, 12)) == "not-null-constraints-18"
    # Same side of 18: a real difference either way.
    assert rule_of(missing(NOT_NULL), ctx(18, 18)) is None
    assert rule_of(missing(NOT_NULL), ctx(17, 16)) is None
    # Only on the newer side: an older source's "extra" or a newer target's "missing" is real.
    assert rule_of(extra(NOT_NULL), ctx(18, 17)) is None
    assert rule_of(missing(NOT_NULL), ctx(17, 18)) is None


def test_what_only_a_constraint_holds_is_never_expected_to_vanish() -> None:
    not_valid = replace(NOT_NULL, attrs={"definition": "NOT NULL id NOT VALID", "validated": "no"})
    no_inherit = replace(NOT_NULL, attrs={"definition": "NOT NULL id NO INHERIT", "validated": "yes"})
    commented = replace(NOT_NULL, comment="why it is required")
    for obj in (not_valid, no_inherit, commented):
        assert rule_of(missing(obj), ctx(18, 17)) is None


def test_domain_not_null_constraints_of_17_are_expected_missing_on_16_and_older() -> None:
    assert rule_of(missing(DOMAIN_NOT_NULL), ctx(17, 16)) == "domain-not-null-constraints-17"
    assert rule_of(missing(DOMAIN_NOT_NULL), ctx(18, 15)) == "domain-not-null-constraints-17"
    assert rule_of(missing(DOMAIN_NOT_NULL), ctx(18, 17)) is None


def test_multirange_objects_are_expected_missing_below_14() -> None:
    assert rule_of(missing(MULTIRANGE), ctx(14, 13)) == "multirange-types-14"
    assert rule_of(missing(CONSTRUCTOR), ctx(18, 12)) == "multirange-types-14"
    assert rule_of(missing(MULTIRANGE), ctx(17, 14)) is None


RELATION = frozenset({"relation"})


def test_maintain_of_all_privileges_is_expected_to_vanish_below_17() -> None:
    s = DbObject("table", "public", "t", acl=("postgres=arwdDxtm/postgres", "alice=r/postgres"), flags=RELATION)
    t = DbObject("table", "public", "t", acl=("postgres=arwdDxt/postgres", "alice=r/postgres"), flags=RELATION)
    assert rule_of(changed(s, t, "acl", "", ""), ctx(17, 16)) == "maintain-privilege-17"
    assert rule_of(changed(s, t, "acl", "", ""), ctx(18, 15)) == "maintain-privilege-17"
    assert rule_of(changed(s, t, "acl", "", ""), ctx(18, 17)) is None
    # The owner's implicit privileges (a NULL ACL) on the 16 side mean what 17's spelled-out ones do.
    null_target = replace(t, owner="postgres", acl=None)
    s_owner = replace(s, owner="postgres", acl=("postgres=arwdDxtm/postgres",))
    assert rule_of(changed(s_owner, null_target, "acl", "", ""), ctx(17, 16)) == "maintain-privilege-17"


def test_a_maintain_granted_alone_is_a_real_loss_on_a_downgrade() -> None:
    s = DbObject("table", "public", "t", acl=("postgres=arwdDxtm/postgres", "alice=m/postgres"), flags=RELATION)
    t = DbObject("table", "public", "t", acl=("postgres=arwdDxt/postgres",), flags=RELATION)
    assert rule_of(changed(s, t, "acl", "", ""), ctx(17, 16)) is None
    # Nor is an 'm' the older target somehow holds (it has no such privilege to grant).
    assert rule_of(changed(t, s, "acl", "", ""), ctx(17, 16)) is None


def test_spellings_of_12_and_14_read_back_on_a_downgrade() -> None:
    p = DbObject("procedure", "public", "p(integer, text)")
    cand = changed(p, p, "arguments", "INOUT a integer, IN b text", "INOUT a integer, b text")
    assert rule_of(cand, ctx(14, 13)) == "procedure-argument-modes-14"
    assert rule_of(cand, ctx(13, 14)) is None
    tg = DbObject("trigger", "public", "t.tg")
    s = "CREATE TRIGGER tg BEFORE UPDATE ON public.t FOR EACH ROW EXECUTE FUNCTION f()"
    t = "CREATE TRIGGER tg BEFORE UPDATE ON public.t FOR EACH ROW EXECUTE PROCEDURE f()"
    assert rule_of(changed(tg, tg, "definition", s, t), ctx(12, 11)) == "trigger-execute-function-12"
    assert rule_of(changed(tg, tg, "definition", s, t.replace("UPDATE", "INSERT")), ctx(18, 10)) is None
