"""Equal servers report equal across version pairs, and only named rules explain what differs.

Each pair is built with the real pg_dumpall/pg_dump/pg_restore of the target's major: corpus
databases (loaded with psql 18), a schema of our own with every kind verify inventories, and the
rich fixture of tests/fixtures.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from pgshift.events import Collector, StepFinished
from pgshift.verify import VerifyOptions, VerifyReport, verify_servers
from tests.fixtures.rich import build
from tests.integration.verify_support import copy_database, copy_globals, load_corpus

# Every kind the inventory reads; valid on 11+.
KINDS_SQL = """
CREATE ROLE kinds_reader;
CREATE SCHEMA app;
CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN app.posint AS integer NOT NULL CHECK (VALUE > 0);
CREATE TYPE app.pair AS (a integer, b text);
CREATE TYPE app.floatrange AS RANGE (subtype = float8);
CREATE TABLE app.item (id integer PRIMARY KEY, name text NOT NULL UNIQUE, mood app.mood, qty app.posint,
                       price numeric(10, 2), ratio real, score double precision, scores float8[],
                       seen timestamptz, spent interval, cash money, raw bytea, doc jsonb, span app.floatrange);
CREATE INDEX item_lower_name ON app.item (lower(name));
CREATE STATISTICS app.item_stats (dependencies) ON mood, qty FROM app.item;
INSERT INTO app.item
SELECT g, 'item ' || g, (ARRAY['sad', 'ok', 'happy'])[1 + g % 3]::app.mood, g, g * 1.25, g / 3.0, g / 7.0,
       ARRAY[g / 3.0, 0.1, NULL], '2024-03-01 12:00+01'::timestamptz + g * interval '37 minutes',
       g * interval '1 day 90 minutes', g * 1.5, decode(md5(g::text), 'hex'),
       jsonb_build_object('n', g, 'f', g / 3.0), app.floatrange(g / 3.0, g / 2.0)
FROM generate_series(1, 3000) g;
CREATE TABLE app.tagged (item_id integer REFERENCES app.item, tag text, weight float4);
INSERT INTO app.tagged SELECT g % 100 + 1, 'tag' || g, g / 9.0 FROM generate_series(1, 500) g;
CREATE TABLE app.measure (at date, sensor integer, value double precision, PRIMARY KEY (at, sensor))
    PARTITION BY RANGE (at);
CREATE TABLE app.measure_2024 PARTITION OF app.measure FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE app.measure_2025 PARTITION OF app.measure FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO app.measure SELECT date '2024-06-01' + g % 400, g, sqrt(g) FROM generate_series(1, 2000) g;
CREATE VIEW app.item_names AS SELECT id, name FROM app.item;
CREATE MATERIALIZED VIEW app.item_counts AS SELECT mood, count(*) AS n FROM app.item GROUP BY mood;
CREATE MATERIALIZED VIEW app.item_empty AS SELECT id FROM app.item WITH NO DATA;
CREATE SEQUENCE app.ticket START 100;
SELECT nextval('app.ticket') FROM generate_series(1, 5);
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER item_touch BEFORE UPDATE ON app.item FOR EACH ROW EXECUTE PROCEDURE app.touch();
CREATE TRIGGER item_audit AFTER INSERT ON app.item FOR EACH ROW EXECUTE PROCEDURE app.touch();
ALTER TABLE app.item DISABLE TRIGGER item_audit;
CREATE PROCEDURE app.bump(INOUT n integer, step integer) LANGUAGE plpgsql AS $$BEGIN n := n + step; END$$;
CREATE AGGREGATE app.concat_all(text) (SFUNC = textcat, STYPE = text, INITCOND = '');
CREATE FUNCTION app.no_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$BEGIN END$$;
CREATE EVENT TRIGGER kinds_ddl ON ddl_command_start EXECUTE PROCEDURE app.no_ddl();
ALTER TABLE app.tagged ENABLE ROW LEVEL SECURITY;
CREATE POLICY tagged_read ON app.tagged FOR SELECT TO kinds_reader USING (weight > 0);
CREATE RULE item_names_ins AS ON INSERT TO app.item_names DO INSTEAD
    INSERT INTO app.item (id, name, qty) VALUES (NEW.id, NEW.name, 1);
CREATE PUBLICATION kinds_pub FOR TABLE app.item;
CREATE COLLATION app.bytes (locale = 'C');
CREATE TEXT SEARCH CONFIGURATION app.simple_en (COPY = english);
CREATE FOREIGN DATA WRAPPER kinds_fdw;
CREATE SERVER kinds_srv FOREIGN DATA WRAPPER kinds_fdw OPTIONS (host 'h');
CREATE USER MAPPING FOR kinds_reader SERVER kinds_srv OPTIONS (user 'r', password 'never shown');
ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO kinds_reader;
GRANT USAGE ON SCHEMA app TO kinds_reader;
GRANT SELECT ON app.item TO kinds_reader;
GRANT ALL ON app.tagged TO kinds_reader;
GRANT SELECT (at, sensor) ON app.measure TO kinds_reader;
GRANT EXECUTE ON FUNCTION app.touch() TO kinds_reader;
COMMENT ON TABLE app.item IS 'things';
COMMENT ON COLUMN app.item.qty IS 'how many';
COMMENT ON FUNCTION app.touch() IS 'touches';
SELECT lo_from_bytea(0, convert_to(repeat('large object ', 1000), 'UTF8'));
SELECT lo_from_bytea(0, '\\x00ff00ff');
"""


def kinds_sql(major: int) -> str:
    """KINDS_SQL for ``major``: procedures and keys on partitioned tables exist from 11."""
    if major >= 11:
        return KINDS_SQL
    lines = [line for line in KINDS_SQL.splitlines() if not line.startswith("CREATE PROCEDURE")]
    return "\n".join(lines).replace(", PRIMARY KEY (at, sensor))", ")")


def _explain(report: VerifyReport) -> str:
    return "\n".join(f"{d.category} {d.database}: {d.message} [{d.source} | {d.target}]" for d in report.differences)


PAIRS = [
    # (source, target, corpus databases, the rules that must explain something)
    (
        11,
        18,
        ("pagila", "chinook"),
        {
            "not-null-constraints-18",
            "domain-not-null-constraints-17",
            "multirange-types-14",
            "maintain-privilege-17",
            "procedure-argument-modes-14",
            "trigger-execute-function-12",
            "public-schema-15",
            "extension-default-version",
        },
    ),
    (
        13,
        17,
        ("pagila", "northwind", "iso3166"),
        {
            "domain-not-null-constraints-17",
            "multirange-types-14",
            "maintain-privilege-17",
            "public-schema-15",
            "procedure-argument-modes-14",
            "extension-default-version",
        },
    ),
    (14, 15, ("chinook",), {"public-schema-15", "multirange-owner-14-16"}),
    (
        10,
        18,
        ("chinook",),
        {
            "not-null-constraints-18",
            "domain-not-null-constraints-17",
            "multirange-types-14",
            "maintain-privilege-17",
            "trigger-execute-function-12",
            "public-schema-15",
            "extension-default-version",
        },
    ),
    (17, 17, ("northwind",), set()),
]


@pytest.mark.parametrize(
    ("src_major", "tgt_major", "corpus", "rules"), [pytest.param(*p, id=f"{p[0]}-to-{p[1]}") for p in PAIRS]
)
def test_equal_servers_report_equal(
    fresh_server: Any, src_major: int, tgt_major: int, corpus: tuple[str, ...], rules: set[str]
) -> None:
    source, target = fresh_server(src_major), fresh_server(tgt_major)
    corpus_dbs = load_corpus(source, corpus)
    source.execute("CREATE DATABASE kinds")
    source.execute(kinds_sql(src_major), "kinds")
    fixture = build(source)
    copy_globals(source, target)
    for db in (*corpus_dbs, "kinds", *fixture.database_names):
        copy_database(source, target, db)

    sink = Collector()
    report = verify_servers(
        source.endpoint("source"), target.endpoint("target"), options=VerifyOptions(checksums=True, jobs=3), sink=sink
    )

    assert report.equal, _explain(report)
    assert report.exit_code == 0 and report.differences == ()
    compared = {t.source: t for t in report.databases}
    assert set(compared) == {"postgres", "kinds", *corpus_dbs, *fixture.database_names}
    if "pagila" in corpus:
        assert compared["corpus_pagila"].rows_source == 49_636 == compared["corpus_pagila"].rows_target
    kinds = compared["kinds"]
    assert kinds.rows_source == 3000 + 500 + 2000 + 3  # item, tagged, measure partitions, item_counts
    assert kinds.large_objects_source == kinds.large_objects_target == 2
    assert kinds.sequences == 1 and kinds.checksummed_tables == kinds.tables == 5
    main = compared[fixture.main.name]
    assert main.rows_source == main.rows_target
    assert {e.rule for e in report.expected} == rules
    # The rules explain only what their change explains: nothing of a same-major pair.
    if src_major == tgt_major:
        assert report.expected == ()
    assert any(isinstance(e, StepFinished) and e.step == "globals" for e in sink.events)


def test_inventory_sees_every_kind(fresh_server: Any) -> None:
    from pgshift.catalog.inventory import read_inventory
    from pgshift.catalog.session import session

    server = fresh_server(16)
    server.execute("CREATE DATABASE kinds")
    server.execute(KINDS_SQL, "kinds")
    with session(server.endpoint(), "kinds") as conn:
        inv = read_inventory(conn)
    objs = inv.by_key()
    counts = inv.counts()
    for kind in (
        "table",
        "partitioned table",
        "partition",
        "view",
        "materialized view",
        "sequence",
        "index",
        "constraint (primary key)",
        "constraint (unique)",
        "constraint (foreign key)",
        "constraint (check)",
        "trigger",
        "function",
        "procedure",
        "aggregate",
        "type (enum)",
        "type (domain)",
        "type (composite)",
        "type (range)",
        "type (multirange)",
        "policy",
        "rule",
        "publication",
        "event trigger",
        "collation",
        "text search configuration",
        "foreign data wrapper",
        "foreign server",
        "user mapping",
        "default privileges",
        "schema",
        "extension",
        "statistics object",
    ):
        assert counts.get(kind), kind
    assert objs[("type (enum)", "app", "mood")].attrs["labels"] == "sad, ok, happy"
    assert objs[("trigger", "app", "item.item_audit")].attrs["enabled"] == "disabled"
    assert objs[("trigger", "app", "item.item_touch")].attrs["enabled"] == "enabled"
    item = objs[("table", "app", "item")]
    assert item.comment == "things" and "qty: how many" in (item.attrs.get("column_comments") or "")
    assert item.acl is not None and any(a.startswith("kinds_reader=r/") for a in item.acl)
    assert "kinds_reader=r/" in (objs[("partitioned table", "app", "measure")].attrs.get("column_privileges") or "")
    mapping = objs[("user mapping", "", "kinds_reader@kinds_srv")]
    assert mapping.attrs["options"] == "password, user"
    assert "never shown" not in repr(inv)
    assert objs[("materialized view", "app", "item_empty")].attrs["populated"] == "no"
    assert Counter(o.kind for o in inv.objects if o.schema == "app")["trigger"] == 2


def test_float_columns_checksum_equal_from_11_to_18(fresh_server: Any) -> None:
    """11 prints floats with 15 digits, 18 with the shortest exact form: digests still agree (plain,
    array, composite, geometric), and a change in the 17th significant digit of a plain column is
    still seen."""
    source, target = fresh_server(11), fresh_server(18)
    source.execute("CREATE DATABASE floats")
    source.execute(
        "CREATE TYPE xy AS (x float8, y real);"
        "CREATE TABLE f (id int PRIMARY KEY, r real, d float8, a float8[], p point, c xy, b box);"
        "INSERT INTO f SELECT g, g / 3.0, g / 7.0 + 1e-13, ARRAY[g / 11.0], point(g / 3.0, g / 7.0),"
        " ROW(g / 3.0, g / 9.0)::xy, box(point(0, 0), point(g / 3.0, 1)) FROM generate_series(1, 500) g",
        "floats",
    )
    copy_database(source, target, "floats")
    pairs = [("floats", "floats")]
    opts = VerifyOptions(checksums=True, compare_globals=False)
    assert verify_servers(source.endpoint(), target.endpoint(), databases=pairs, options=opts).equal
    # One ulp away: invisible at 15 digits, visible to the binary digest.
    target.execute("UPDATE f SET d = d + d * 2.3e-16 WHERE id = 250", "floats")
    report = verify_servers(source.endpoint(), target.endpoint(), databases=pairs, options=opts)
    assert [(d.category, d.object) for d in report.differences] == [("checksums", "table public.f")]
