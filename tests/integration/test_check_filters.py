"""check honours migrate's selection: -d/-D, --rename and pg_dump's -n/-N/-t/-T, as pg_dump does.

One 14 source (every client 14-18 can dump it) holds a database whose schemas and tables carry
hazards for a 16 target in known places. What check's selection says a filter moves is compared
with what each pg_dump client really dumps with that filter; then the findings are those of the
filtered move only.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pgshift.catalog.inventory_check import ObjectFilters, dump_selection
from pgshift.catalog.session import fetch_all, session
from pgshift.checks import CheckReport, run_check
from pgshift.checks.engine import _SELECTION_OPTIONS
from tests.conftest import CLIENT_MAJORS

DB = "filt"

_SCHEMA = """
CREATE SCHEMA app; CREATE SCHEMA "Mixed"; CREATE SCHEMA old;
CREATE TABLE public.keep (id serial PRIMARY KEY, r regclass);
CREATE TABLE public.keeper (c "char"); INSERT INTO public.keeper VALUES (chr(233)::"char");
CREATE TABLE public."Big" (a int);
CREATE TABLE app.orders (id int, r regtype);
CREATE TABLE app.items (c "char"); INSERT INTO app.items VALUES (chr(200)::"char");
CREATE TABLE "Mixed".t (a int);
CREATE TABLE old.legacy (r regproc);
CREATE FUNCTION old.par() RETURNS int LANGUAGE sql SET force_parallel_mode = off AS 'SELECT 1';
CREATE VIEW app.v AS SELECT id FROM app.orders;
CREATE SEQUENCE app.s;
SELECT lo_create(0);
"""

# Filters, as migrate passes them to pg_dump (the pgshift option names are the same).
FILTERS = [
    ObjectFilters(tables=("keep*",)),
    ObjectFilters(tables=("*.orders", "old.*")),
    ObjectFilters(tables=('"Big"',)),
    ObjectFilters(tables=("big",), exclude_tables=("nothing",)),
    ObjectFilters(tables=("keep*",), exclude_tables=("keeper",)),
    ObjectFilters(tables=("app.orders",), schemas=("old",)),
    ObjectFilters(tables=("keep",), exclude_schemas=("public",)),
    ObjectFilters(schemas=("app",)),
    ObjectFilters(schemas=("a?p", '"Mixed"')),
    ObjectFilters(schemas=("app", "old"), exclude_schemas=("o*",)),
    ObjectFilters(exclude_schemas=("app",)),
    ObjectFilters(exclude_tables=("app.orders", "keeper")),
    ObjectFilters(exclude_schemas=("old",), exclude_tables=("*.v",)),
    ObjectFilters(tables=(f"{DB}.public.keep",)),
]


@pytest.fixture(scope="module")
def source(servers: Any) -> Any:
    server = servers.get(14)
    server.execute(f"DROP DATABASE IF EXISTS {DB}")
    server.execute(f"CREATE DATABASE {DB}")
    server.execute(_SCHEMA, DB)
    return server


def _dumped_relations(server: Any, major: int, filters: ObjectFilters, tmp: Path) -> tuple[set[str], bool] | str:
    """(qualified names of the relations pg_dump creates, whether it dumps large objects), or its error."""
    out = tmp / f"dump-{major}.sql"
    done = subprocess.run(
        [
            f"/var/cache/pgshift/pg/{major}/bin/pg_dump",
            f"--dbname={server.conninfo(DB)}",
            f"--file={out}",
            *filters.dump_args(),
        ],
        env=server.psql_env(),
        capture_output=True,
        text=True,
    )
    if done.returncode:
        return done.stderr.strip().splitlines()[-1].removeprefix("pg_dump: error: ")
    text = out.read_text(errors="replace")  # the "char" hazards are dumped as raw bytes
    names = set(re.findall(r"^CREATE (?:TABLE|VIEW|SEQUENCE|MATERIALIZED VIEW) ([^\s(]+)", text, re.M))
    return names, "lo_create" in text or "BLOB" in text


def _selected(server: Any, filters: ObjectFilters) -> tuple[set[str], bool] | str:
    with session(server.endpoint("source"), DB, options=_SELECTION_OPTIONS) as conn:
        sel = dump_selection(conn, DB, filters)
        rows = fetch_all(
            conn,
            "SELECT c.oid, pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) AS name "
            "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')",
        )
    if sel.errors:
        return sel.errors[0]
    return {r["name"] for r in rows if sel.moves_relation(r["oid"])}, sel.large_objects


@pytest.mark.parametrize("client", CLIENT_MAJORS)
@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: " ".join(f.dump_args()))
def test_selection_is_what_pg_dump_dumps(source: Any, client: int, filters: ObjectFilters, tmp_path: Path) -> None:
    assert _selected(source, filters) == _dumped_relations(source, client, filters, tmp_path)


def test_a_pattern_matching_nothing_stops_pg_dump_and_is_a_blocker(source: Any, tmp_path: Path) -> None:
    for filters, message in (
        (ObjectFilters(tables=("nosuch",)), "no matching tables were found"),
        (ObjectFilters(schemas=("Mixed",)), "no matching schemas were found"),  # unquoted: lower-cased
        (ObjectFilters(tables=("otherdb.public.keep",)), "cross-database references are not implemented"),
    ):
        assert message in str(_dumped_relations(source, 18, filters, tmp_path))
        report = _check(source, filters=filters)
        [hit] = [f for f in report.findings if f.rule_id == "object-filters-fail"]
        assert hit.database == DB and message in hit.message and report.exit_code == 2


def _check(server: Any, **kwargs: Any) -> CheckReport:
    kwargs.setdefault("databases", [DB])
    return run_check(server.endpoint("source"), None, target_version=16, **kwargs)


def _objects(report: CheckReport, rule: str) -> set[str]:
    return {f.object or "" for f in report.findings if f.rule_id == rule and f.database == DB}


def test_findings_are_those_of_the_filtered_move(source: Any) -> None:
    everything = _check(source)
    assert _objects(everything, "reg-types") == {"public.keep.r", "app.orders.r", "old.legacy.r"}
    assert _objects(everything, "char-type-nonascii") == {"public.keeper.c", "app.items.c"}
    assert _objects(everything, "removed-guc-settings") == {"old.par()"}
    # -T: the excluded table's hazards are gone, the rest stays
    no_items = _check(source, filters=ObjectFilters(exclude_tables=("app.items",)))
    assert _objects(no_items, "char-type-nonascii") == {"public.keeper.c"}
    # -t: only those tables, and no function (pg_dump -t dumps no functions)
    only = _check(source, filters=ObjectFilters(tables=("keep*",)))
    assert _objects(only, "reg-types") == {"public.keep.r"}
    assert _objects(only, "char-type-nonascii") == {"public.keeper.c"}
    assert _objects(only, "removed-guc-settings") == set()
    # -n: that schema's tables and functions; -N takes a schema away
    old = _check(source, filters=ObjectFilters(schemas=("old",)))
    assert (_objects(old, "reg-types"), _objects(old, "removed-guc-settings")) == ({"old.legacy.r"}, {"old.par()"})
    not_old = _check(source, filters=ObjectFilters(exclude_schemas=("old",)))
    assert _objects(not_old, "removed-guc-settings") == set()
    assert _objects(not_old, "reg-types") == {"public.keep.r", "app.orders.r"}
    # public's ACL travels with the public schema only (14 -> 16: CREATE for PUBLIC)
    assert _objects(everything, "public-schema-acl") == {"public"}
    assert _objects(_check(source, filters=ObjectFilters(schemas=("app",))), "public-schema-acl") == set()
    assert not_old.selection is not None and not_old.selection.filters.exclude_schemas == ("old",)


def test_large_objects_arrive_under_exclusions_and_are_left_out_by_schema_or_table(source: Any) -> None:
    def lo(report: CheckReport) -> list[tuple[str, str]]:
        return [(f.severity.value, f.message) for f in report.findings if f.rule_id == "large-objects"]

    for kept in (ObjectFilters(exclude_tables=("keeper",)), ObjectFilters(exclude_schemas=("old",)), None):
        [(severity, message)] = lo(_check(source, filters=kept))
        assert severity == "info" and "the move carries them" in message
    for dropped in (ObjectFilters(tables=("keep",)), ObjectFilters(schemas=("app",))):
        [(severity, message)] = lo(_check(source, filters=dropped))
        assert severity == "warning" and "leaves out" in message


def test_default_databases_are_migrates_and_rename_moves_target_side_rules(servers: Any, source: Any) -> None:
    target = servers.get(16)
    target.execute(f"DROP DATABASE IF EXISTS {DB}_new")
    target.execute(f"CREATE DATABASE {DB}_new")
    report = run_check(source.endpoint("source"), target.endpoint("target"), exclude_databases=[])
    assert report.selection is not None
    assert "postgres" not in report.selection.databases and DB in report.selection.databases
    # postgres is not moved by default, so its public schema ACL is no finding
    assert not [f for f in report.findings if f.database == "postgres"]
    excluded = run_check(source.endpoint("source"), target.endpoint("target"), exclude_databases=[DB])
    assert DB not in {d.name for d in excluded.source.checked}
    clash = run_check(source.endpoint("source"), target.endpoint("target"), databases=[DB], renames={DB: f"{DB}_new"})
    assert [f.object for f in clash.findings if f.rule_id == "target-database-exists"] == [f"{DB}_new"]
    free = run_check(source.endpoint("source"), target.endpoint("target"), databases=[DB], renames={DB: f"{DB}_x"})
    assert not [f for f in free.findings if f.rule_id == "target-database-exists"]


def test_settings_of_a_database_the_move_leaves_alone_are_no_finding(source: Any) -> None:
    """ALTER DATABASE/ROLE … IN DATABASE settings go with their database: -d leaves them out."""
    other = f"{DB}_other"
    source.execute(f"DROP DATABASE IF EXISTS {other}")
    source.execute(f"DROP ROLE IF EXISTS {other}_role")
    source.execute(f"CREATE DATABASE {other}")
    source.execute(f"ALTER DATABASE {other} SET force_parallel_mode = on")
    source.execute(f"CREATE ROLE {other}_role")
    source.execute(f"ALTER ROLE {other}_role IN DATABASE {other} SET force_parallel_mode = on")
    try:

        def settings(report: CheckReport) -> set[str]:
            return {f.message.split(":")[0] for f in report.findings if f.rule_id == "removed-guc-settings"}

        moved = settings(_check(source, databases=[DB, other]))
        assert {f"ALTER DATABASE {other} SET force_parallel_mode"} <= moved
        assert {f"ALTER ROLE {other}_role IN DATABASE {other} SET force_parallel_mode"} <= moved
        assert not {m for m in settings(_check(source)) if other in m}
    finally:
        source.execute(f"DROP DATABASE {other}")
        source.execute(f"DROP ROLE {other}_role")


def test_sizes_and_locks_are_those_of_the_filtered_move(source: Any) -> None:
    source.execute(
        "CREATE TABLE IF NOT EXISTS app.heavy AS SELECT g, repeat('x', 500) AS pad FROM generate_series(1, 20000) g", DB
    )
    everything = _check(source)
    only = _check(source, filters=ObjectFilters(tables=("keep*",)))
    [whole] = everything.source.checked
    [part] = only.source.checked
    assert only.selection is not None
    [selection] = only.selection.per_database
    assert part.relations_to_lock == len(selection.relations) < whole.relations_to_lock
    assert part.table_data_bytes < whole.table_data_bytes // 10  # app.heavy (10 MB) is not moved
    assert part.large_object_bytes == 0  # -t leaves large objects out
    assert only.estimates is not None and everything.estimates is not None
    assert only.estimates.dump_bytes_estimate < everything.estimates.dump_bytes_estimate
    source.execute("DROP TABLE app.heavy", DB)
