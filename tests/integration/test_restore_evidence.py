"""The evidence a resumed restore stands on: the dump's objects looked up on another server by address.

An object of every kind pg_restore makes after the data (index, constraints, foreign key, trigger,
rule, policy, extended statistics) is found on a server that has it and not on one that lacks it,
names needing quotes included; a table says whether it holds rows.
"""

from __future__ import annotations

from typing import Any

from psycopg.rows import dict_row

from pgshift.catalog import ddl

_SCHEMA = """
CREATE SCHEMA "odd Schema";
CREATE TABLE "odd Schema"."Parent T" (id int PRIMARY KEY, v text UNIQUE);
CREATE TABLE "odd Schema".child (id int REFERENCES "odd Schema"."Parent T", n int CHECK (n > 0));
CREATE INDEX "child idx" ON "odd Schema".child (n);
CREATE FUNCTION "odd Schema".trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER "t g" BEFORE INSERT ON "odd Schema".child FOR EACH ROW EXECUTE PROCEDURE "odd Schema".trg();
CREATE RULE r AS ON UPDATE TO "odd Schema".child DO ALSO NOTIFY child;
CREATE POLICY p ON "odd Schema".child USING (n > 1);
CREATE STATISTICS "odd Schema".st ON id, n FROM "odd Schema".child;
"""

_OBJECTS = """
SELECT 'pg_class'::regclass::oid::int AS c, c.oid::bigint AS o, c.relname AS what
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'odd Schema'
UNION ALL SELECT 'pg_constraint'::regclass::oid::int, oid, conname FROM pg_constraint
  WHERE connamespace = '"odd Schema"'::regnamespace
UNION ALL SELECT 'pg_trigger'::regclass::oid::int, oid, tgname FROM pg_trigger WHERE tgname = 't g'
UNION ALL SELECT 'pg_rewrite'::regclass::oid::int, oid, rulename FROM pg_rewrite WHERE rulename = 'r'
UNION ALL SELECT 'pg_policy'::regclass::oid::int, oid, polname FROM pg_policy WHERE polname = 'p'
UNION ALL SELECT 'pg_statistic_ext'::regclass::oid::int, oid, stxname FROM pg_statistic_ext WHERE stxname = 'st'
"""


def test_objects_of_a_dump_are_found_by_address_on_a_server_that_has_them(fresh_server: Any) -> None:
    source, twin, bare = fresh_server(12), fresh_server(17), fresh_server(17)
    for server in (source, twin):
        server.execute(_SCHEMA)
    source.execute('INSERT INTO "odd Schema"."Parent T" VALUES (1, \'a\')')
    twin.execute('INSERT INTO "odd Schema"."Parent T" VALUES (1, \'a\')')  # child stays empty there
    bare.execute('CREATE SCHEMA "odd Schema"')
    with source.connect(row_factory=dict_row) as conn:
        objects = conn.execute(_OBJECTS).fetchall()
        addresses = ddl.object_addresses(conn, [(r["c"], r["o"]) for r in objects])
    assert len(addresses) == len(objects) >= 12
    kinds = {a.type for a in addresses.values()}
    assert {"table", "index", "table constraint", "trigger", "rule", "policy", "statistics object"} <= kinds
    probes = {i: (a, a.type == "table") for i, a in enumerate(addresses.values())}
    with twin.connect(row_factory=dict_row) as conn:
        present = ddl.probe_objects(conn, probes)
    assert all(p.found for p in present.values()), [a for i, (a, _r) in probes.items() if not present[i].found]
    tables = {(p.schema, p.name): p.has_rows for p in present.values() if p.name}
    assert tables == {("odd Schema", "Parent T"): True, ("odd Schema", "child"): False}
    with bare.connect(row_factory=dict_row) as conn:
        absent = ddl.probe_objects(conn, probes)
    assert not any(p.found for p in absent.values())
