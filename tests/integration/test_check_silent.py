"""Every rule stays silent on a source that is safe for it: the closest safe thing, not an empty database.

Each case plants a near miss (a plain child column under a plain parent, a view's own ``_RETURN``
rule, a function with SET of a setting the target knows …) in a database of its own on a shared lab
server, runs ``run_check`` on that database and expects no finding of the rule about it. ``strict``
cases expect no finding of the rule at all (cluster-wide rules whose state no other test changes).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any

import pytest

from pgshift.catalog.inventory_check import ObjectFilters
from pgshift.checks import CheckReport, run_check
from pgshift.checks.rules import ALL_RULES

_counter = itertools.count()


@dataclass(frozen=True)
class Near:
    rule: str
    source: int
    target: int
    sql: str = ""  # ";;" separates statements that cannot share a transaction; {db} and {u} are replaced
    target_server: bool = False
    strict: bool = False
    filters: ObjectFilters | None = None
    databases: tuple[str, ...] | None = None  # default: the case's database only


NEAR_MISSES = [
    Near("object-filters-fail", 16, 17, "CREATE TABLE Mixed (a int)", filters=ObjectFilters(tables=("MIXED",))),
    Near("client-dump-newer-server", 17, 18, strict=True),
    # A hardened public into 14 as a superuser: it can apply the owner and privileges.
    Near("public-schema-needs-owner", 13, 14, "REVOKE CREATE ON SCHEMA public FROM PUBLIC", target_server=True),
    Near("client-newer-restore-older-target", 17, 18, strict=True),  # the 18 client serves an 18 target
    Near("target-older-than-source", 17, 17, strict=True),
    Near("source-is-target", 17, 18, target_server=True, strict=True),
    Near("target-database-exists", 16, 17, target_server=True),  # postgres exists there, and is not moved
    Near("target-privileges", 16, 17, target_server=True, strict=True),
    Near("connections-for-jobs", 17, 18, strict=True),
    Near("work-dir-space", 17, 18, "CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g", strict=True),
    Near("source-read-privileges", 17, 18, "CREATE TABLE t (a int); REVOKE ALL ON t FROM PUBLIC"),  # superuser reads
    Near("with-oids", 11, 12, "CREATE TABLE t (oid_copy oid) WITHOUT OIDS"),
    Near("removed-datetime-types", 11, 12, "CREATE TABLE t (a timestamptz, b interval, c tstzrange)"),
    Near("system-composite-column", 16, 17, "CREATE TYPE bgw AS (checkpoints_timed bigint); CREATE TABLE t (s bgw)"),
    Near(
        "reg-types",
        17,
        18,
        "CREATE TABLE t (name text, r regclass GENERATED ALWAYS AS ('pg_class'::regclass) STORED); "
        "CREATE MATERIALIZED VIEW mv AS SELECT 'pg_class'::regclass AS r",
    ),
    Near("sql-identifier-columns", 11, 12, "CREATE TABLE t (n name, v varchar(63))"),
    Near("char-type-nonascii", 14, 15, "CREATE TABLE t (c \"char\", b bytea); INSERT INTO t VALUES ('z', '\\xe9')"),
    Near(
        "tsvector-empty-lexeme",
        14,
        15,
        "CREATE TABLE t (v tsvector); INSERT INTO t VALUES (array_to_tsvector('{a,b}')), (''::tsvector)",
    ),
    Near("encoding-sql-ascii", 14, 18, strict=False),
    Near("encoding-mismatch", 15, 16, target_server=True),
    Near("encoding-shared-text", 16, 18, "CREATE ROLE {u}_süß; COMMENT ON ROLE {u}_süß IS 'café'"),
    Near(
        "catalog-refs",
        13,
        14,
        "CREATE VIEW v AS SELECT array_cat(ARRAY[1], ARRAY[2]) AS a, pg_is_in_recovery() AS r",
        target_server=True,
    ),
    Near("removed-builtin-operators", 13, 14, "CREATE TABLE b (x box); CREATE VIEW v AS SELECT * FROM b WHERE x && x"),
    Near(
        "postfix-operators",
        13,
        14,
        "CREATE FUNCTION neg(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT -$1'; "
        "CREATE OPERATOR ~~~ (RIGHTARG = int, PROCEDURE = neg)",
    ),
    Near(
        "polymorphic-anyarray",
        13,
        14,
        "CREATE FUNCTION app(anyarray, anyelement) RETURNS anyarray LANGUAGE sql AS 'SELECT $1 || $2'; "
        "CREATE AGGREGATE accum(anyelement) (SFUNC = app, STYPE = anyarray, INITCOND = '{}')",
    ),
    Near("encoding-conversions", 13, 14, "CREATE CONVERSION c1 FOR 'LATIN1' TO 'UTF8' FROM iso8859_1_to_utf8"),
    Near(
        "interval-text-index",
        14,
        15,
        "CREATE TABLE t (iv interval, s text); CREATE INDEX ON t ((s::text)); CREATE INDEX ON t ((iv + iv))",
    ),
    Near(
        "search-path-functions",
        16,
        17,
        "CREATE TABLE t (a int); CREATE FUNCTION twice(i int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS "
        "$$DECLARE r int; BEGIN r := i * 2; RETURN abs(r); END$$; CREATE INDEX ON t (twice(a)); "
        "CREATE FUNCTION q(i int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT i + (SELECT 1 FROM public.t LIMIT 0)'; "
        "CREATE FUNCTION atomic(i int) RETURNS int LANGUAGE sql IMMUTABLE BEGIN ATOMIC SELECT twice(i); END; "
        "CREATE INDEX ON t (atomic(a)); CREATE TABLE d (a int DEFAULT twice(1))",
    ),
    Near("lc-collate-guc", 15, 16, "CREATE VIEW v AS SELECT current_setting('lc_messages') AS m"),
    Near(
        "numeric-literal-junk",
        14,
        15,
        "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$SELECT 'x123abc' || 123 || 1e5::text AS abc$$",
    ),
    Near(
        "removed-functions-in-bodies",
        14,
        18,
        "CREATE FUNCTION b() RETURNS void LANGUAGE plpgsql AS $$BEGIN PERFORM pg_backup_start('x'); END$$",
    ),
    Near("not-null-inheritance", 17, 18, "CREATE TABLE p (a int); CREATE TABLE c () INHERITS (p)"),
    Near(
        "generated-inheritance-mismatch",
        15,
        16,
        "CREATE TABLE p (a int, b int); CREATE TABLE c (a int, b int) INHERITS (p)",
    ),
    Near(
        "generated-parent-plain-child",
        14,
        18,
        "CREATE TABLE p (a int, b int GENERATED ALWAYS AS (a * 2) STORED); CREATE TABLE c () INHERITS (p); "
        "CREATE TABLE q (a int, b int); CREATE TABLE r (a int, b int GENERATED ALWAYS AS (a) STORED) INHERITS (q)",
    ),
    Near(
        "unlogged-partitioned", 17, 18, "CREATE TABLE p (a int) PARTITION BY RANGE (a); CREATE UNLOGGED TABLE u (a int)"
    ),
    Near("nulls-not-distinct-pk", 15, 16, "CREATE TABLE t (a int); CREATE UNIQUE INDEX ON t (a) NULLS NOT DISTINCT"),
    Near(
        "duplicate-constraint-names",
        10,
        11,
        "CREATE TABLE a (x int CONSTRAINT c CHECK (x > 0)); CREATE TABLE b (x int CONSTRAINT c CHECK (x > 0))",
    ),
    Near(
        "hash-partition-enum",
        13,
        18,
        "CREATE TYPE color AS ENUM ('r'); CREATE TABLE h (c color, k int) PARTITION BY HASH (k); "
        "CREATE TABLE l (c color) PARTITION BY LIST (c)",
    ),
    Near("max-locks-for-dump", 17, 18, "CREATE TABLE t1 (a int); CREATE TABLE t2 (a int)"),
    Near(
        "reserved-rule-name",
        14,
        18,
        "CREATE TABLE t (a int); CREATE VIEW v AS SELECT a FROM t; "
        'CREATE RULE "_RETURN_not" AS ON INSERT TO t DO INSTEAD NOTHING',
    ),
    Near("removed-extension", 16, 17, "CREATE EXTENSION pg_trgm"),
    Near("extension-availability", 13, 14, "CREATE EXTENSION citext", target_server=True),
    Near("extension-object-changes", 13, 14, "CREATE EXTENSION citext"),
    Near(
        "superuser-only-objects",
        17,
        18,
        "CREATE FUNCTION my_now() RETURNS timestamptz LANGUAGE internal STABLE AS 'now'",
        target_server=True,  # the target role is a superuser
    ),
    Near(
        "plpython2-availability",
        14,
        15,
        "CREATE FUNCTION h() RETURNS language_handler AS '$libdir/plpgsql', 'plpgsql_call_handler' LANGUAGE c; "
        "CREATE LANGUAGE plpython3x HANDLER h",
    ),
    Near(
        "removed-guc-settings",
        15,
        16,
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql SET work_mem = '8MB' SET myapp.mode = 'x' AS 'SELECT 1'; "
        "ALTER DATABASE {db} SET jit = off",
    ),
    Near("vacuum-defer-cleanup-age-etc", 15, 16, strict=True),
    Near(
        "public-schema-acl",
        14,
        15,
        "CREATE ROLE {u}; REVOKE CREATE ON SCHEMA public FROM PUBLIC; GRANT CREATE ON SCHEMA public TO {u}",
    ),  # one role may create there, not everyone
    Near("md5-passwords", 13, 18, "SET password_encryption = 'scram-sha-256'; CREATE ROLE {u} PASSWORD 'x'"),
    Near("roles-globals", 16, 17, strict=True),  # the superuser reads pg_authid
    Near("createrole-inheritance", 15, 18, "CREATE ROLE {u}_g; CREATE ROLE {u}_m; GRANT {u}_g TO {u}_m"),
    # Rows written just before the check by a session that has gone are no live source.
    Near("source-taking-writes", 14, 18, "CREATE TABLE {u}_t AS SELECT generate_series(1, 1000) AS g"),
    # A superuser target may own objects as anyone (the move's database is owned by a role of its own).
    Near("owner-needs-set-role", 15, 18, "CREATE ROLE {u}_o; ALTER DATABASE {db} OWNER TO {u}_o", target_server=True),
    Near("rls-dump", 17, 18, "CREATE TABLE t (a int); ALTER TABLE t ENABLE ROW LEVEL SECURITY"),  # superuser bypasses
    Near(
        "after-trigger-role",
        17,
        18,
        "CREATE TABLE t (a int); CREATE FUNCTION tf() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN NEW.a := length(current_user); RETURN NEW; END$$; "
        "CREATE TRIGGER tb BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION tf()",
    ),
    Near("locale-availability", 17, 18, target_server=True),
    Near("collation-locale-availability", 17, 18, "CREATE COLLATION c1 (locale = 'C')", target_server=True),
    Near("collation-version-drift", 16, 18, 'CREATE TABLE t (a text COLLATE "C")', target_server=True),
    Near("datallowconn-false", 11, 18, "CREATE DATABASE {u};; ALTER DATABASE {u} ALLOW_CONNECTIONS true"),
    Near("database-properties-need-create", 13, 18, "CREATE TABLE t (a int); COMMENT ON TABLE t IS 'not the database'"),
    Near("tablespaces", 13, 18, strict=True),
    Near("subscriptions", 17, 18, "CREATE PUBLICATION {u} FOR ALL TABLES"),
    Near("large-objects", 14, 18, "CREATE TABLE t (a oid); INSERT INTO t VALUES (12345)"),  # an oid, no large object
    Near("event-triggers", 17, 18, "CREATE FUNCTION et() RETURNS event_trigger LANGUAGE plpgsql AS $$BEGIN END$$"),
    Near("prepared-xacts-and-slots", 16, 17, strict=False),
    Near(
        "maintain-privilege-older-target",
        17,
        16,
        "CREATE ROLE {u}; CREATE TABLE t (a int); GRANT ALL ON t TO {u}; GRANT SELECT ON t TO PUBLIC; "
        "ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO {u}",
    ),
    # An 11 source's archive records no table access method, so pg_restore sets none.
    Near("client-settings-older-target", 11, 10, "CREATE TABLE t (a int)", strict=True),
    Near(
        "syntax-newer-major",
        18,
        17,
        "CREATE EXTENSION btree_gist; "
        "CREATE TABLE g (a int NOT NULL, b int GENERATED ALWAYS AS (a * 2) STORED, CONSTRAINT g_pos CHECK (a > 0)); "
        "CREATE TABLE k (id int PRIMARY KEY, r int4range, EXCLUDE USING gist (id WITH =, r WITH &&)); "
        "CREATE TABLE f (id int); ALTER TABLE f ADD FOREIGN KEY (id) REFERENCES k NOT VALID",
    ),
    Near(
        "syntax-newer-major",
        17,
        16,
        "CREATE EXTENSION btree_gist; CREATE TABLE p (k int, r int4range) PARTITION BY RANGE (k); "
        "CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (9); "
        "ALTER TABLE p1 ADD EXCLUDE USING gist (k WITH =, r WITH &&); "
        "CREATE VIEW v AS SELECT jsonb_path_exists('{}'::jsonb, '$.a') AS e",
    ),
    Near("public-schema-older-target", 15, 14, "GRANT CREATE ON SCHEMA public TO PUBLIC"),
]


def _u(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{next(_counter)}"


def _run(servers: Any, case: Near) -> tuple[CheckReport, dict[str, str]]:
    server = servers.get(case.source)
    names = {"db": _u("sil"), "u": _u("sil_r")}
    server.execute(f"CREATE DATABASE {names['db']}")
    for statement in filter(None, (x.strip() for x in case.sql.split(";;"))):
        for key, value in names.items():
            statement = statement.replace("{" + key + "}", value)
        server.execute(statement, names["db"])
    target = servers.get(case.target).endpoint("target") if case.target_server else None
    report = run_check(
        server.endpoint("source"),
        target,
        target_version=None if case.target_server else case.target,
        databases=list(case.databases) if case.databases is not None else [names["db"]],
        filters=case.filters,
    )
    return report, names


def _id(case: Near) -> str:
    return f"{case.rule}-{case.source}to{case.target}"


@pytest.mark.parametrize("case", NEAR_MISSES, ids=_id)
def test_rule_is_silent_on_its_near_miss(servers: Any, case: Near) -> None:
    report, names = _run(servers, case)
    assert case.rule in report.rules_run or case.rule in {s.rule_id for s in report.skipped}
    mine = [
        f
        for f in report.findings
        if f.rule_id == case.rule
        and (case.strict or f.database == names["db"] or any(v in (f.object or "") + f.message for v in names.values()))
    ]
    assert not mine, [(f.database, f.object, f.message) for f in mine]


def test_every_rule_has_a_near_miss() -> None:
    # A server setting, so a server of its own: test_check_rules.py checks a 13 source hashing with SCRAM.
    elsewhere = {"password-encryption-default"}
    assert {r.id for r in ALL_RULES} - {c.rule for c in NEAR_MISSES} - elsewhere == set()


def test_large_objects_are_not_called_left_out_under_exclusions(servers: Any) -> None:
    server = servers.get(16)
    db = _u("sil_lo")
    server.execute(f"CREATE DATABASE {db}")
    server.execute("SELECT lo_create(0); CREATE TABLE t (a int); CREATE TABLE u (a int)", db)
    for filters in (ObjectFilters(exclude_tables=("u",)), ObjectFilters(exclude_schemas=("nothing_*",))):
        report = run_check(server.endpoint("source"), None, target_version=17, databases=[db], filters=filters)
        [lo] = [f for f in report.findings if f.rule_id == "large-objects"]
        assert lo.severity.value == "info" and "left out" not in lo.message


def test_public_schema_acl_is_silent_for_postgres_by_default(servers: Any) -> None:
    server = servers.get(14)  # postgres' public schema grants CREATE to PUBLIC on 14
    report = run_check(server.endpoint("source"), None, target_version=15)
    assert "postgres" not in {d.name for d in report.source.checked}
    assert not [f for f in report.findings if f.rule_id == "public-schema-acl" and f.database == "postgres"]


def test_an_unused_missing_extension_names_leave_out_extension(servers: Any) -> None:
    server = servers.get(16)
    db = _u("sil_ext")
    server.execute(f"CREATE DATABASE {db}")
    server.execute("CREATE EXTENSION adminpack; CREATE EXTENSION pg_trgm", db)
    report = run_check(server.endpoint("source"), None, target_version=17, databases=[db])
    [hit] = [f for f in report.findings if f.rule_id == "removed-extension"]
    assert hit.object == "adminpack" and hit.remedy == "leave-out-extension" and "--remedy" in hit.fix
