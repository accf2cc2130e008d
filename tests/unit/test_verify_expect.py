"""Declared differences (ExpectedDifference), clone pairing, keyword quoting and MAINTAIN: no server."""

from __future__ import annotations

import pytest

from pgshift.catalog.inventory import COLUMN_PREFIX, DbObject, Inventory
from pgshift.errors import UsageError
from pgshift.verify import Difference, ExpectedDifference
from pgshift.verify.compare import Requote, compare_inventories
from pgshift.verify.expect import declare, matches, parse_expected
from pgshift.verify.rules import Candidate, Context, classify
from pgshift.version import PgVersion

V14, V18 = PgVersion.from_major(14), PgVersion.from_major(18)


def cand(obj: str, kind: str, *, db: str | None = "shop", attribute: str | None = None, **objs: DbObject) -> Candidate:
    d = Difference("schema", db, obj, kind, None, None, f"{obj} {kind}")
    return Candidate(d, objs.get("source"), objs.get("target"), attribute)


GEN = ExpectedDifference("generated-as-plain", "shop", "column", "public.child.b", "restored as a plain column")
RULE = ExpectedDifference("rename-rule", "shop", "rule", "public.t._RETURN", renamed_to="_RETURN_insert")
SETTINGS_FN = ExpectedDifference("drop-removed-settings", "shop", "function", "public.f(integer)")
SETTINGS_ROLE = ExpectedDifference("drop-removed-settings", None, "role", "alice")
EXT = ExpectedDifference("leave-out-extension", "shop", "extension", "hstore")
EXCL = ExpectedDifference("exclude-object", "shop", "table", "public.gone")


def test_generated_as_plain_explains_a_change_of_that_column_only() -> None:
    assert matches(cand("column public.child.b", "changed", attribute=COLUMN_PREFIX + "b"), GEN)
    assert not matches(cand("column public.child.c", "changed", attribute=COLUMN_PREFIX + "c"), GEN)
    assert not matches(cand("column public.child.b", "missing"), GEN)  # a lost column is real
    assert not matches(cand("column public.child.b", "changed", db="other"), GEN)


def test_a_declaration_spelt_as_quote_ident_spells_it_matches_verifys_bare_names() -> None:
    """migrate's remedies name objects by quote_ident (non-ASCII, capitals, spaces), verify by bare names."""
    quoted = ExpectedDifference("generated-as-plain", "shop", "column", 'public.c."größe"')
    assert matches(cand("column public.c.größe", "changed", attribute=COLUMN_PREFIX + "größe"), quoted)
    assert not matches(cand("column public.c.grösse", "changed", attribute=COLUMN_PREFIX + "grösse"), quoted)
    table = ExpectedDifference("exclude-object", "shop", "table", 'public."Old ""Orders"""')
    assert matches(cand('table public.Old "Orders"', "missing"), table)
    assert matches(cand('column public.Old "Orders".id', "missing"), table)
    rule = ExpectedDifference("rename-rule", "shop", "rule", 'public."T"."_RETURN"', renamed_to="_RETURN_insert")
    assert matches(cand("rule public.T._RETURN", "missing"), rule)
    assert matches(cand("rule public.T._RETURN_insert", "extra"), rule)


def test_rename_rule_explains_the_old_name_missing_and_the_new_one_extra() -> None:
    assert matches(cand("rule public.t._RETURN", "missing"), RULE)
    assert matches(cand("rule public.t._RETURN_insert", "extra"), RULE)
    assert not matches(cand("rule public.t._RETURN_update", "extra"), RULE)
    assert not matches(cand("rule public.t._RETURN", "changed", attribute="definition"), RULE)
    whole = ExpectedDifference("rename-rule", "shop", "rule", "public.t._RETURN", renamed_to="public.t.r2")
    assert matches(cand("rule public.t.r2", "extra"), whole)


def test_drop_removed_settings_explains_settings_not_other_attributes() -> None:
    assert matches(cand("function public.f(integer)", "changed", attribute="config"), SETTINGS_FN)
    assert not matches(cand("function public.f(integer)", "changed", attribute="body_md5"), SETTINGS_FN)
    assert not matches(cand("function public.f(integer)", "missing"), SETTINGS_FN)
    role = Candidate(Difference("globals", None, "role alice", "changed", "a", "b", "settings"), attribute="settings")
    assert matches(role, SETTINGS_ROLE)
    db = ExpectedDifference("drop-removed-settings", "shop", "database", "shop")
    assert matches(cand("database shop", "changed", attribute="settings"), db)


def test_leave_out_extension_explains_only_its_absence() -> None:
    assert matches(cand("extension hstore", "missing"), EXT)
    assert not matches(cand("extension hstore", "changed", attribute="version"), EXT)
    assert not matches(cand("extension citext", "missing"), EXT)


def test_exclude_object_covers_what_belongs_to_the_object() -> None:
    index = DbObject("index", "public", "gone_pkey", attrs={"table": "gone"})
    fk = DbObject("constraint (foreign key)", "public", "gone.gone_x_fkey", flags=frozenset({"on:table"}))
    other = DbObject("index", "public", "kept_pkey", attrs={"table": "kept"})
    assert matches(cand("table public.gone", "missing"), EXCL)
    assert matches(cand("partition public.gone", "missing"), EXCL)  # "table" covers partitions
    assert matches(cand("index public.gone_pkey", "missing", source=index), EXCL)
    assert matches(cand("constraint (foreign key) public.gone.gone_x_fkey", "missing", source=fk), EXCL)
    rows = Candidate(Difference("rows", "shop", "table public.gone", "missing", "exists", None, "gone"))
    assert matches(rows, EXCL)
    assert not matches(cand("index public.kept_pkey", "missing", source=other), EXCL)
    assert not matches(cand("table public.gone", "changed", attribute="comment"), EXCL)
    assert not matches(cand("table public.gone", "extra"), EXCL)
    schema = ExpectedDifference("exclude-object", "shop", "schema", "legacy")
    in_schema = DbObject("function", "legacy", "f()")
    assert matches(cand("function legacy.f()", "missing", source=in_schema), schema)


def test_an_unknown_remedy_explains_any_difference_of_its_object() -> None:
    e = ExpectedDifference("site-specific", "shop", "table", "public.t")
    assert matches(cand("table public.t", "changed", attribute="comment"), e)
    assert not matches(cand("table public.u", "changed", attribute="comment"), e)


def test_declare_splits_and_names_what_matched_nothing() -> None:
    real = cand("table public.other", "missing")
    hit = cand("extension hstore", "missing")
    rest, declared, unmatched = declare([real, hit], [EXT, EXCL])
    assert rest == [real]
    assert [(d.remedy, d.difference.object) for d in declared] == [("leave-out-extension", "extension hstore")]
    assert unmatched == [EXCL]
    assert declared[0].as_dict()["declared"] == "extension hstore"


def test_requote_drops_only_the_quotes_one_side_adds() -> None:
    norm = Requote(frozenset({"select"}), frozenset({"select", "json"}))
    assert norm('CREATE INDEX ON public.t USING btree ((("json")::text))') == (
        "CREATE INDEX ON public.t USING btree (((json)::text))"
    )
    assert norm('"select"') == '"select"'  # quoted on both sides: left alone
    assert norm('"json_x"') == '"json_x"' and norm('"my json"') == '"my json"'
    assert Requote(frozenset(), frozenset())('"json"') == '"json"'


def _inv(version: PgVersion, *objs: DbObject, keywords: frozenset[str] = frozenset()) -> Inventory:
    return Inventory("shop", version, objs, keywords)


def fk(name: str, ref: str, *, clone: bool = True, table: str = "ref") -> DbObject:
    return DbObject(
        "constraint (foreign key)",
        "public",
        f"{table}.{name}",
        attrs={"on": f"table {table}", "definition": f"FOREIGN KEY (a) REFERENCES {ref}(id)"}
        | ({"cloned_from": f"{table}.ref_a_fkey"} if clone else {}),
        flags=frozenset({"contype:f", "on:table", *({"clone"} if clone else set())}),
    )


def _classify(cands: list[Candidate]) -> tuple[list[Difference], list[str]]:
    real, explained = classify(cands, Context(V14, V18))
    return real, [e.rule for e in explained]


def test_clones_named_differently_are_paired_by_what_they_are() -> None:
    src = _inv(V14, fk("ref_a_fkey", "pt", clone=False), fk("ref_a_fkey1", "pt_1"), fk("ref_a_fkey2", "pt_2"))
    tgt = _inv(V18, fk("ref_a_fkey", "pt", clone=False), fk("ref_a_fkey_2", "pt_2"), fk("ref_a_fkey_1", "pt_1"))
    real, rules = _classify(compare_inventories("shop", src, tgt))
    assert real == [] and rules == ["server-named-clone", "server-named-clone"]


def test_a_clone_that_differs_in_what_it_is_stays_missing() -> None:
    src = _inv(V14, fk("ref_a_fkey1", "pt_1"))
    tgt = _inv(V18, fk("ref_a_fkey_1", "pt_9"))
    real, _rules = _classify(compare_inventories("shop", src, tgt))
    assert sorted(d.kind for d in real) == ["extra", "missing"]


def test_a_user_named_object_renamed_is_still_a_difference() -> None:
    src = _inv(V14, fk("ref_a_fkey", "pt", clone=False))
    tgt = _inv(V18, fk("ref_renamed", "pt", clone=False))
    real, _rules = _classify(compare_inventories("shop", src, tgt))
    assert sorted(d.kind for d in real) == ["extra", "missing"]


def test_keyword_quoting_of_another_major_is_not_a_difference() -> None:
    def idx(defn: str) -> DbObject:
        return DbObject("index", "public", "docs_json", attrs={"table": "docs", "definition": defn})

    src = _inv(V14, idx("CREATE INDEX ON public.docs USING btree (((json)::text))"), keywords=frozenset())
    tgt = _inv(V18, idx('CREATE INDEX ON public.docs USING btree ((("json")::text))'), keywords=frozenset({"json"}))
    assert compare_inventories("shop", src, tgt) == []
    # Between servers that both quote json, the quotes are compared as they are.
    same = _inv(V18, idx("CREATE INDEX ON public.docs USING btree (((json)::text))"), keywords=frozenset({"json"}))
    assert len(compare_inventories("shop", same, tgt)) == 1


def test_columns_are_compared_one_by_one() -> None:
    def table(**cols: str) -> DbObject:
        return DbObject(
            "table",
            "public",
            "child",
            attrs={"columns": ", ".join(cols)} | {COLUMN_PREFIX + k: v for k, v in cols.items()},
        )

    src = _inv(V14, table(a="integer", b="integer GENERATED (a * 2)", c="text"))
    tgt = _inv(V18, table(a="integer", b="integer", d="text"))
    got = {(c.difference.object, c.difference.kind) for c in compare_inventories("shop", src, tgt)}
    assert got == {
        ("column public.child.b", "changed"),
        ("column public.child.c", "missing"),
        ("column public.child.d", "extra"),
    }
    moved = _inv(V18, table(b="integer GENERATED (a * 2)", a="integer", c="text"))
    [order] = compare_inventories("shop", src, moved)
    assert order.difference.message == "table public.child: the column order differs"


def _acl_cand(s_acl: tuple[str, ...] | None, t_acl: tuple[str, ...] | None, owner: str = "own") -> Candidate:
    s = DbObject("table", "public", "t", owner=owner, acl=s_acl, flags=frozenset({"relation"}))
    t = DbObject("table", "public", "t", owner=owner, acl=t_acl, flags=frozenset({"relation"}))
    return Candidate(Difference("privileges", "shop", "table public.t", "changed", "", "", "acl"), s, t, "acl")


def test_maintain_of_the_owner_is_expected_also_when_the_owner_lost_a_privilege() -> None:
    ctx = Context(PgVersion.from_major(16), PgVersion.from_major(17))
    # REVOKE DELETE FROM the owner on 16: pg_dump restores the rest, and 17 adds MAINTAIN.
    revoked = _acl_cand(("own=arwDxt/own", "r=r/own"), ("own=arwDxtm/own", "r=r/own"))
    assert [e.rule for e in classify([revoked], ctx)[1]] == ["maintain-privilege-17"]
    # Another grantee with a partial set and MAINTAIN on the target is not explained.
    other = _acl_cand(("own=arwdDxt/own", "r=r/own"), ("own=arwdDxtm/own", "r=rm/own"))
    assert classify([other], ctx)[1] == []
    # A NULL ACL on one side is the owner's defaults of that side's major.
    defaults = _acl_cand(None, ("own=arwdDxtm/own", "r=r/own"))
    assert classify([defaults], ctx)[1] == []  # r=r/own is missing on the source: real
    null_target = _acl_cand(("own=arwdDxt/own",), None)
    assert [e.rule for e in classify([null_target], ctx)[1]] == ["maintain-privilege-17"]
    # Not between two 17+ servers.
    assert classify([revoked], Context(PgVersion.from_major(17), V18))[1] == []


def test_maintain_in_default_privileges_of_a_role() -> None:
    ctx = Context(PgVersion.from_major(16), PgVersion.from_major(17))
    flags = frozenset({"defacl:r", "defacl-role:own"})
    s = DbObject("default privileges", None, "own on tables", acl=("own=arwDxt/own", "r=arwdDxt/own"), flags=flags)
    t = DbObject("default privileges", None, "own on tables", acl=("own=arwDxtm/own", "r=arwdDxtm/own"), flags=flags)
    c = Candidate(
        Difference("privileges", "shop", "default privileges own on tables", "changed", "", "", "x"), s, t, "acl"
    )
    assert [e.rule for e in classify([c], ctx)[1]] == ["maintain-privilege-17"]


def test_parse_expected_reads_a_list_or_a_document() -> None:
    text = '[{"remedy": "rename-rule", "database": "shop", "kind": "rule", "object": "public.t._RETURN",'
    text += ' "renamed_to": "_RETURN_insert"}]'
    assert parse_expected(text, "f") == [
        ExpectedDifference("rename-rule", "shop", "rule", "public.t._RETURN", renamed_to="_RETURN_insert")
    ]
    doc = '{"expected": [{"remedy": "x", "database": null, "kind": "role", "object": "alice", "note": "n"}]}'
    assert parse_expected(doc, "f") == [ExpectedDifference("x", None, "role", "alice", "n")]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{", "is not JSON"),
        ('{"other": []}', "holds no list"),
        ("[1]", "entry 1 is not an object"),
        ('[{"remedy": "r", "kind": "table"}]', "needs 'object'"),
        ('[{"remedy": "r", "kind": "table", "object": "t", "colour": 1}]', "unknown keys: colour"),
        ('[{"remedy": "r", "kind": "table", "object": "t", "database": 3}]', "'database' must be a string"),
    ],
)
def test_parse_expected_names_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_expected(text, "--expected x.json")
    assert says in err.value.message and err.value.exit_code == 64 and err.value.hint
