"""The pure parts of migrate's remedies: object specs, archive items, rewrites of the schema script."""

from __future__ import annotations

import pytest
from psycopg import sql

from pgshift.catalog.ddl import Statement
from pgshift.errors import UsageError
from pgshift.migrate.plan import ItemChange
from pgshift.migrate.remedies import (
    RewriteFailed,
    drop_generation,
    drop_set_clauses,
    omitted_ids,
    parse_listing,
    parse_object_spec,
    rewrite_script,
    use_list,
)


def test_object_spec_with_database_kind_quoted_names_and_arguments() -> None:
    spec = parse_object_spec('shop:function "My Schema".f(integer, numeric(10, 2))')
    assert (spec.database, spec.kind, spec.names, spec.args) == (
        "shop",
        "function",
        ("My Schema", "f"),
        ("integer", "numeric(10, 2)"),
    )
    spec = parse_object_spec("Materialized View Public.MV")
    assert (spec.database, spec.kind, spec.names) == (None, "materialized view", ("public", "mv"))


@pytest.mark.parametrize("text", ["public.t", "widget public.t", "table "])
def test_object_spec_without_a_kind_or_a_name_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError):
        parse_object_spec(text)


LISTING = [
    ";",
    "; Archive created at ...",
    "4; 2615 2200 SCHEMA - public postgres",
    "3; 3079 16500 EXTENSION - adminpack ",
    "2540; 0 0 COMMENT - EXTENSION adminpack ",
    "210; 1259 16388 TABLE public bad postgres",
    "211; 1259 16400 TABLE public bad_copy postgres",
    "2541; 0 0 COMMENT public TABLE bad postgres",
    "2542; 0 0 COMMENT public COLUMN bad.k postgres",
    "2543; 0 0 COMMENT public TABLE bad_copy postgres",
    "2544; 0 0 ACL public TABLE bad postgres",
    "3300; 0 16388 TABLE DATA public bad postgres",
    "3301; 0 16400 TABLE DATA public bad_copy postgres",
    "3400; 2606 16420 FK CONSTRAINT public bad bad_k_fkey postgres",
]


def test_omitted_items_take_their_data_comments_and_grants_with_them_and_nothing_else() -> None:
    items = parse_listing(LISTING)
    assert [i.desc for i in items][:3] == ["SCHEMA", "EXTENSION", "COMMENT"]
    changes = [
        ItemChange("exclude-object", 1259, 16388, "table public.bad", True),
        ItemChange("exclude-object", 2606, 16420, "constraint", True),
        ItemChange("leave-out-extension", 3079, 16500, "extension adminpack", True),
    ]
    assert omitted_ids(items, changes) == {3, 2540, 210, 2541, 2542, 2544, 3300, 3400}
    lines = use_list(LISTING, {210})
    assert (
        ";210; 1259 16388 TABLE public bad postgres" in lines
        and "211; 1259 16400 TABLE public bad_copy postgres" in lines
    )


def test_rewrites_touch_only_the_named_items() -> None:
    script = (
        "SET statement_timeout = 0;\n\n"
        "--\n-- TOC entry 210 (class 1259 OID 16388)\n-- Name: child; Type: TABLE; Schema: public; Owner: o\n--\n\n"
        "CREATE TABLE public.child (\n"
        "    b integer GENERATED ALWAYS AS (((a * 2) + length(')('::text))) STORED,\n"
        "    \"Odd Col\" text GENERATED ALWAYS AS (('x' || a)) STORED NOT NULL\n"
        ")\nINHERITS (public.parent);\n\n"
        "--\n-- TOC entry 211 (class 1259 OID 16390)\n-- Name: other; Type: TABLE; Schema: public; Owner: o\n--\n\n"
        "CREATE TABLE public.other (\n    b integer GENERATED ALWAYS AS ((a * 2)) STORED\n);\n\n"
        "--\n-- TOC entry 212 (class 1255 OID 16396)\n--\n\n"
        "CREATE FUNCTION public.f() RETURNS integer\n    LANGUAGE sql\n    SET force_parallel_mode TO 'on'\n"
        "    SET work_mem TO '8MB'\n    AS $$select 1$$;\n"
    )
    changes = [
        ItemChange("generated-as-plain", 1259, 16388, "table public.child", False, ("b", "Odd Col")),
        ItemChange("drop-removed-settings", 1255, 16396, "function public.f()", False, (), ("force_parallel_mode",)),
    ]
    text, done = rewrite_script(script, changes)
    assert "    b integer,\n" in text
    assert '    "Odd Col" text NOT NULL\n' in text
    assert "CREATE TABLE public.other (\n    b integer GENERATED ALWAYS AS ((a * 2)) STORED\n);" in text
    assert "force_parallel_mode" not in text and "SET work_mem TO '8MB'" in text
    assert len(done) == 3


def test_a_rewrite_that_finds_nothing_stops_rather_than_restoring_unchanged() -> None:
    with pytest.raises(RewriteFailed):
        drop_generation("CREATE TABLE t (\n    b integer\n);\n", "b")
    with pytest.raises(RewriteFailed):
        drop_set_clauses("CREATE FUNCTION f() RETURNS int AS $$ SET x TO 1 $$;\n", ["x"])
    with pytest.raises(RewriteFailed):
        rewrite_script(
            "-- TOC entry 1 (class 1259 OID 5)\n", [ItemChange("generated-as-plain", 1259, 6, "t", False, ("b",))]
        )


def test_a_statement_naming_undecoded_bytes_is_displayed_with_them_escaped() -> None:
    statement = Statement(
        sql.SQL("COMMENT ON ROLE {} IS {}").format(sql.Identifier("r\udcdc"), sql.Literal("it's \udcdc"))
    )
    assert statement.display() == "COMMENT ON ROLE \"r\\xdc\" IS 'it''s \\xdc'"
