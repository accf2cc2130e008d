"""Every rule, twice, on real servers: planted hazard found (right object named), clean source silent.

Each case plants a hazard in a database of its own on a shared lab server of the major the hazard
needs (old majors for WITH OIDS, abstime, postfix operators …), runs ``run_check`` against it and
looks for the rule's finding naming the planted object; the clean twin plants the nearest harmless
thing (or nothing) and expects no finding of that rule for its database.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import Any

import pytest

from pgshift.checks import CheckReport, Finding, run_check
from pgshift.checks.rules import ALL_RULES, BY_ID

_counter = itertools.count()


@dataclass(frozen=True)
class Case:
    rule: str
    source: int
    target: int  # offline --target-version, unless target_server
    plant: str  # SQL run in the case's database (";"-separated statements in one simple query)
    expect: str  # substring of the finding's object (or message) that names the planted object
    clean: str = ""  # the harmless twin
    target_server: bool = False
    create_db: str = ""  # CREATE DATABASE options (encoding …)
    as_user: str | None = None  # connect to the source as this role (created by plant/clean)
    target_user: str | None = None  # connect to the target as this role (created there by target_sql)
    target_sql: str = ""
    jobs: int = 2
    cluster_level: bool = False  # finding has no database; match on the object only
    params: dict[str, Any] = field(default_factory=dict)


def _u(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{next(_counter)}"


CASES = [
    Case("client-newer-restore-older-target", 11, 13, "", "pg_restore", cluster_level=True),
    Case("target-older-than-source", 14, 13, "", "14 -> 13", cluster_level=True),
    Case("target-database-exists", 16, 17, "", "{db}", target_server=True, target_sql="CREATE DATABASE {db}"),
    Case(
        "target-privileges",
        16,
        17,
        "",
        "{tu}",
        target_server=True,
        target_user="{tu}",
        target_sql="CREATE ROLE {tu} LOGIN",
        cluster_level=True,
    ),
    Case("connections-for-jobs", 17, 18, "", "source", jobs=200, cluster_level=True),
    Case(
        "source-read-privileges",
        17,
        18,
        "CREATE ROLE {u} LOGIN; CREATE TABLE secret (a int); REVOKE ALL ON secret FROM PUBLIC",
        "public.secret",
        clean="CREATE ROLE {u} LOGIN; CREATE TABLE secret (a int); GRANT SELECT ON secret TO {u}",
        as_user="{u}",
    ),
    Case("with-oids", 11, 12, "CREATE TABLE t_oids (a int) WITH OIDS", "t_oids", clean="CREATE TABLE t_oids (a int)"),
    Case("with-oids", 10, 18, "CREATE TABLE t_oids10 (a int) WITH OIDS", "t_oids10", clean="CREATE TABLE t (a int)"),
    Case(
        "removed-datetime-types",
        11,
        12,
        "CREATE TABLE t_abs (a abstime, b reltime[])",
        "t_abs.a",
        clean="CREATE TABLE t_abs (a timestamptz, b interval[])",
    ),
    Case(
        "system-composite-column",
        16,
        17,
        "CREATE TABLE t_bgw (s pg_stat_bgwriter)",
        "t_bgw.s",
        clean="CREATE TABLE t_ns (s pg_namespace)",
        target_server=True,
    ),
    Case("reg-types", 17, 18, "CREATE TABLE t_reg (r regclass)", "t_reg.r", clean="CREATE TABLE t_reg (r text)"),
    Case(
        "sql-identifier-columns",
        11,
        12,
        "CREATE TABLE t_ident (n information_schema.sql_identifier)",
        "t_ident.n",
        clean="CREATE TABLE t_ident (n varchar)",
    ),
    Case(
        "char-type-nonascii",
        14,
        15,
        'CREATE TABLE t_char (c "char"); INSERT INTO t_char VALUES (chr(233)::"char")',
        "t_char.c",
        clean="CREATE TABLE t_char (c \"char\"); INSERT INTO t_char VALUES ('a')",
    ),
    Case(
        "tsvector-empty-lexeme",
        14,
        18,
        "CREATE TABLE t_tsv (v tsvector); INSERT INTO t_tsv VALUES (array_to_tsvector('{\"\",abc}'))",
        "t_tsv.v",
        clean="CREATE TABLE t_tsv (v tsvector); INSERT INTO t_tsv VALUES (to_tsvector('simple', 'abc'))",
    ),
    Case(
        "encoding-sql-ascii",
        14,
        18,
        "",
        "{db}",
        create_db="ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0",
    ),
    Case(
        "encoding-mismatch",
        15,
        16,
        "",
        "{db}",
        create_db="ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0",
        target_server=True,
    ),
    Case(
        "catalog-refs",
        14,
        15,
        "CREATE VIEW v_backup AS SELECT pg_is_in_backup() AS b",
        "v_backup",
        clean="CREATE VIEW v_backup AS SELECT pg_is_in_recovery() AS b, array_append(ARRAY[1], 2) AS a",
        target_server=True,
    ),
    Case(
        "catalog-refs",
        13,
        14,
        "CREATE TABLE t (a int); CREATE VIEW v_cat AS SELECT a FROM t WHERE to_tsvector('x') @@ 'x'::tsquery",
        "__never__",  # only used for its clean twin below (array_append is anycompatible on 14)
        clean="CREATE VIEW v_arr AS SELECT array_append(ARRAY[1], 2) AS a, ARRAY[1] || 2 AS b",
        target_server=True,
        params={"clean_only": True},
    ),
    Case(
        "removed-builtin-operators",
        13,
        14,
        "CREATE VIEW v_fac AS SELECT numeric_fac(5) AS f; CREATE TABLE bx (b box); "
        "CREATE VIEW v_box AS SELECT * FROM bx WHERE b @ box '((0,0),(1,1))'",
        "v_box",
        clean="CREATE VIEW v_fac AS SELECT factorial(5) AS f; CREATE TABLE bx (b box); "
        "CREATE VIEW v_box AS SELECT * FROM bx WHERE b <@ box '((0,0),(1,1))'",
    ),
    Case(
        "postfix-operators",
        13,
        14,
        "CREATE FUNCTION fact_int(int) RETURNS numeric LANGUAGE sql IMMUTABLE AS 'SELECT factorial($1)'; "
        "CREATE OPERATOR ### (LEFTARG = int, PROCEDURE = fact_int)",
        "###(integer,NONE)",
        clean="CREATE FUNCTION neg_int(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT -$1'; "
        "CREATE OPERATOR ### (RIGHTARG = int, PROCEDURE = neg_int)",
    ),
    Case(
        "polymorphic-anyarray",
        13,
        14,
        "CREATE AGGREGATE array_accum(anyelement) (SFUNC = array_append, STYPE = anyarray, INITCOND = '{}')",
        "array_accum(anyelement)",
        clean="CREATE AGGREGATE int_accum(int) (SFUNC = array_append, STYPE = int[], INITCOND = '{}')",
    ),
    Case(
        "encoding-conversions",
        13,
        14,
        "CREATE FUNCTION my_conv(int, int, cstring, internal, int) RETURNS void "
        "AS '$libdir/utf8_and_iso8859_1', 'iso8859_1_to_utf8' LANGUAGE c STRICT; "
        "CREATE CONVERSION my_latin1 FOR 'LATIN1' TO 'UTF8' FROM my_conv",
        "my_latin1",
        clean="CREATE CONVERSION my_latin1 FOR 'LATIN1' TO 'UTF8' FROM iso8859_1_to_utf8",
    ),
    Case(
        "interval-text-index",
        14,
        15,
        "CREATE TABLE t_iv (iv interval); CREATE INDEX t_iv_text ON t_iv ((iv::text))",
        "t_iv_text",
        clean="CREATE TABLE t_iv (iv interval); CREATE INDEX t_iv_epoch ON t_iv ((extract(epoch FROM iv)))",
    ),
    Case(
        "search-path-functions",
        16,
        17,
        "CREATE TABLE factors (f int); CREATE TABLE t_sp (a int); "
        "CREATE FUNCTION dbl(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 * (SELECT max(f) FROM factors)'; "
        "CREATE INDEX ON t_sp (dbl(a))",
        "dbl(integer)",
        clean="CREATE TABLE factors (f int); CREATE TABLE t_sp (a int); CREATE FUNCTION dbl(int) RETURNS int "
        "LANGUAGE sql IMMUTABLE SET search_path = public AS 'SELECT $1 * (SELECT max(f) FROM factors)'; "
        "CREATE INDEX ON t_sp (dbl(a))",
    ),
    Case(
        "lc-collate-guc",
        15,
        16,
        "CREATE VIEW v_lc AS SELECT current_setting('lc_collate') AS c",
        "v_lc",
        clean="CREATE VIEW v_lc AS SELECT datcollate FROM pg_database WHERE datname = current_database()",
    ),
    Case(
        "numeric-literal-junk",
        14,
        15,
        "CREATE FUNCTION junk() RETURNS int LANGUAGE sql AS 'SELECT 123abc'",
        "junk()",
        clean="CREATE FUNCTION junk() RETURNS text LANGUAGE sql AS 'SELECT ''9x'' || 123 AS abc'",
    ),
    Case(
        "removed-functions-in-bodies",
        14,
        18,
        "CREATE FUNCTION do_backup() RETURNS void LANGUAGE plpgsql AS $$BEGIN PERFORM pg_start_backup('x'); END$$; "
        "CREATE FUNCTION atomic_backup() RETURNS text LANGUAGE sql BEGIN ATOMIC "
        "SELECT pg_start_backup('x')::text; END",
        "do_backup()",
        clean="CREATE FUNCTION do_backup() RETURNS void LANGUAGE plpgsql AS $$BEGIN PERFORM pg_is_in_recovery(); END$$",
    ),
    Case(
        "not-null-inheritance",
        17,
        18,
        "CREATE TABLE nn_parent (a int); CREATE TABLE nn_child () INHERITS (nn_parent); "
        "INSERT INTO nn_child VALUES (NULL); ALTER TABLE ONLY nn_parent ALTER COLUMN a SET NOT NULL",
        "nn_child.a",
        clean="CREATE TABLE nn_parent (a int NOT NULL); CREATE TABLE nn_child () INHERITS (nn_parent)",
    ),
    Case(
        "generated-inheritance-mismatch",
        15,
        16,
        "CREATE TABLE gp (a int, b int); "
        "CREATE TABLE gc (a int, b int GENERATED ALWAYS AS (a * 2) STORED) INHERITS (gp)",
        "gc.b",
        clean="CREATE TABLE gp (a int, b int GENERATED ALWAYS AS (a * 2) STORED); CREATE TABLE gc () INHERITS (gp)",
    ),
    Case(
        "generated-parent-plain-child",
        14,
        18,
        # No DDL makes it (every major refuses it): the catalog as an early 12 minor could leave it.
        "CREATE TABLE rp (a int, b int GENERATED ALWAYS AS (a * 2) STORED); CREATE TABLE rc () INHERITS (rp); "
        "DELETE FROM pg_depend WHERE classid = 'pg_attrdef'::regclass "
        "AND objid IN (SELECT oid FROM pg_attrdef WHERE adrelid = 'rc'::regclass); "
        "DELETE FROM pg_attrdef WHERE adrelid = 'rc'::regclass; "
        "UPDATE pg_attribute SET attgenerated = '', atthasdef = false "
        "WHERE attrelid = 'rc'::regclass AND attname = 'b'",
        "rc.b",
        clean="CREATE TABLE rp (a int, b int GENERATED ALWAYS AS (a * 2) STORED); CREATE TABLE rc () INHERITS (rp)",
    ),
    Case(
        "unlogged-partitioned",
        17,
        18,
        "CREATE UNLOGGED TABLE up (a int) PARTITION BY RANGE (a)",
        "up",
        clean="CREATE TABLE up (a int) PARTITION BY RANGE (a)",
    ),
    Case(
        "nulls-not-distinct-pk",
        15,
        16,
        "CREATE TABLE t_nnd (a int NOT NULL); CREATE UNIQUE INDEX t_nnd_idx ON t_nnd (a) NULLS NOT DISTINCT; "
        "ALTER TABLE t_nnd ADD CONSTRAINT t_nnd_pk PRIMARY KEY USING INDEX t_nnd_idx",
        "t_nnd_pk",
        clean="CREATE TABLE t_nnd (a int PRIMARY KEY)",
    ),
    Case(
        "duplicate-constraint-names",
        10,
        11,
        "CREATE TABLE t_dup (a int CONSTRAINT c_dup CHECK (a > 0)); ALTER TABLE t_dup ADD CONSTRAINT c_dup UNIQUE (a)",
        "t_dup.c_dup",
        clean="CREATE TABLE t_dup (a int CONSTRAINT c_dup CHECK (a > 0)); "
        "ALTER TABLE t_dup ADD CONSTRAINT c_u UNIQUE (a)",
    ),
    Case(
        "hash-partition-enum",
        13,
        18,
        "CREATE TYPE color AS ENUM ('red', 'green'); CREATE TABLE hp (c color) PARTITION BY HASH (c); "
        "CREATE TABLE hp0 PARTITION OF hp FOR VALUES WITH (MODULUS 1, REMAINDER 0)",
        "hp",
        clean="CREATE TABLE hp (c int) PARTITION BY HASH (c); "
        "CREATE TABLE hp0 PARTITION OF hp FOR VALUES WITH (MODULUS 1, REMAINDER 0)",
    ),
    Case("removed-extension", 16, 17, "CREATE EXTENSION adminpack", "adminpack", clean="CREATE EXTENSION pg_trgm"),
    Case("removed-extension", 10, 11, "CREATE EXTENSION chkpass", "chkpass", clean="CREATE EXTENSION citext"),
    Case("removed-extension", 11, 12, "CREATE EXTENSION timetravel", "timetravel", clean="CREATE EXTENSION citext"),
    Case(
        "extension-availability",
        13,
        14,
        "CREATE EXTENSION pltcl",
        "pltcl",
        clean="CREATE EXTENSION citext",
        target_server=True,
    ),
    Case("extension-object-changes", 13, 14, "CREATE EXTENSION hstore", "hstore", clean="CREATE EXTENSION citext"),
    Case(
        "public-schema-needs-owner",
        13,
        14,
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        "public",
        clean="CREATE TABLE t_pub (a int)",
        target_server=True,
        target_user="{tu}",
        target_sql="CREATE ROLE {tu} LOGIN CREATEDB CREATEROLE",
    ),
    Case(
        "superuser-only-objects",
        17,
        18,
        "CREATE FUNCTION my_now() RETURNS timestamptz LANGUAGE internal STABLE AS 'now'",
        "my_now()",
        clean="CREATE FUNCTION my_now() RETURNS timestamptz LANGUAGE internal STABLE AS 'now'",
        target_server=True,
        target_user="{tu}",
        target_sql="CREATE ROLE {tu} LOGIN CREATEDB",
    ),
    Case(
        "plpython2-availability",
        14,
        15,
        "CREATE FUNCTION py_handler() RETURNS language_handler AS '$libdir/plpgsql', 'plpgsql_call_handler' "
        "LANGUAGE c; CREATE LANGUAGE plpythonu HANDLER py_handler",
        "plpythonu",
        clean="CREATE FUNCTION py_handler() RETURNS language_handler AS '$libdir/plpgsql', 'plpgsql_call_handler' "
        "LANGUAGE c; CREATE LANGUAGE plsomething HANDLER py_handler",
    ),
    Case(
        "removed-guc-settings",
        15,
        16,
        "CREATE FUNCTION par() RETURNS int LANGUAGE sql SET force_parallel_mode = off AS 'SELECT 1'",
        "par()",
        clean="CREATE FUNCTION par() RETURNS int LANGUAGE sql SET work_mem = '8MB' AS 'SELECT 1'",
    ),
    Case(
        "removed-guc-settings",
        13,
        14,
        "CREATE FUNCTION vac() RETURNS int LANGUAGE sql SET vacuum_cleanup_index_scale_factor = 0.2 AS 'SELECT 1'",
        "vac()",
        clean="CREATE FUNCTION vac() RETURNS int LANGUAGE sql SET maintenance_work_mem = '64MB' AS 'SELECT 1'",
        target_server=True,
    ),
    Case(
        "public-schema-acl",
        14,
        15,
        "",
        "public",
        clean="REVOKE CREATE ON SCHEMA public FROM PUBLIC",
    ),
    Case(
        "md5-passwords",
        13,
        18,
        "SET password_encryption = 'md5'; CREATE ROLE {u} LOGIN PASSWORD 'secret-md5'",
        "{u}",
        clean="SET password_encryption = 'scram-sha-256'; CREATE ROLE {u} LOGIN PASSWORD 'secret-scram'",
        cluster_level=True,
    ),
    Case(
        "roles-globals",
        16,
        17,
        "CREATE ROLE {u} LOGIN",
        "{u}",
        clean="CREATE ROLE {u} LOGIN",
        as_user="{u}",
        cluster_level=True,
        params={"clean_as_superuser": True},
    ),
    Case(
        "createrole-inheritance",
        15,
        18,
        "CREATE ROLE {u}_grp; CREATE ROLE {u}_mgr CREATEROLE; CREATE ROLE {u}_m; "
        "SET ROLE {u}_mgr; GRANT {u}_grp TO {u}_m; RESET ROLE",
        "{u}_m in {u}_grp",
        clean="CREATE ROLE {u}_grp; CREATE ROLE {u}_m; GRANT {u}_grp TO {u}_m",
        cluster_level=True,
    ),
    Case(
        "rls-dump",
        17,
        18,
        "CREATE ROLE {u} LOGIN; CREATE TABLE t_rls (a int); ALTER TABLE t_rls ENABLE ROW LEVEL SECURITY; "
        "GRANT SELECT ON t_rls TO {u}",
        "t_rls",
        clean="CREATE ROLE {u} LOGIN BYPASSRLS; CREATE TABLE t_rls (a int); "
        "ALTER TABLE t_rls ENABLE ROW LEVEL SECURITY; GRANT SELECT ON t_rls TO {u}",
        as_user="{u}",
    ),
    Case(
        "after-trigger-role",
        17,
        18,
        "CREATE TABLE t_trg (a int); CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN RAISE NOTICE '%', current_user; RETURN NULL; END$$; "
        "CREATE TRIGGER t_audit AFTER INSERT ON t_trg FOR EACH ROW EXECUTE FUNCTION audit()",
        "t_audit",
        clean="CREATE TABLE t_trg (a int); CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN RETURN NULL; END$$; "
        "CREATE TRIGGER t_audit AFTER INSERT ON t_trg FOR EACH ROW EXECUTE FUNCTION audit()",
    ),
    Case(
        "database-properties-need-create",
        13,
        18,
        "ALTER DATABASE {db} SET work_mem = '7MB'",
        "{db}",
    ),
    Case(
        "subscriptions",
        17,
        18,
        "CREATE SUBSCRIPTION {u} CONNECTION 'dbname=nowhere' PUBLICATION p WITH (connect = false)",
        "{u}",
        clean="CREATE PUBLICATION {u} FOR ALL TABLES",
    ),
    Case("large-objects", 14, 18, "SELECT lo_create(0)", "{db}", clean="CREATE TABLE t (a oid)"),
    Case(
        "reserved-rule-name",
        14,
        18,
        "CREATE TABLE t_rr (a int); CREATE RULE r AS ON INSERT TO t_rr DO INSTEAD NOTHING; "
        'ALTER RULE r ON t_rr RENAME TO "_RETURN"',
        "public.t_rr",
        clean="CREATE TABLE t_rr (a int); CREATE RULE r AS ON INSERT TO t_rr DO INSTEAD NOTHING; "
        "CREATE VIEW v_rr AS SELECT a FROM t_rr",
    ),
    Case(
        "event-triggers",
        17,
        18,
        "CREATE FUNCTION no_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$BEGIN END$$; "
        "CREATE EVENT TRIGGER {u} ON ddl_command_start EXECUTE FUNCTION no_ddl()",
        "{u}",
        clean="CREATE FUNCTION no_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$BEGIN END$$",
    ),
    Case(
        "prepared-xacts-and-slots",
        16,
        17,
        "SELECT pg_create_physical_replication_slot('{u}')",
        "{u}",
        clean="SELECT 1",
        cluster_level=True,
        params={"cleanup": "SELECT pg_drop_replication_slot('{u}')"},
    ),
    # Downgrades: what an older target lacks.
    Case(
        "maintain-privilege-older-target",
        17,
        16,
        "CREATE ROLE {u}; CREATE TABLE t_m (a int); GRANT SELECT, MAINTAIN ON t_m TO {u}",
        "public.t_m",
        clean="CREATE ROLE {u}; CREATE TABLE t_m (a int); GRANT ALL ON t_m TO {u}",  # pg_dump writes ALL
    ),
    Case(
        "maintain-privilege-older-target",
        17,
        16,
        "CREATE ROLE {u}; ALTER DEFAULT PRIVILEGES GRANT MAINTAIN ON TABLES TO {u}",
        "postgres",  # DEFAULT PRIVILEGES FOR TABLES of role postgres
        clean="CREATE ROLE {u}; ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO {u}",
    ),
    Case(
        "syntax-newer-major",
        18,
        17,
        "CREATE TABLE t_v (a int, b int GENERATED ALWAYS AS (a * 2) VIRTUAL)",
        "public.t_v.b",
        clean="CREATE TABLE t_v (a int, b int GENERATED ALWAYS AS (a * 2) STORED)",
    ),
    Case(
        "syntax-newer-major",
        18,
        17,
        "CREATE TABLE t_ne (a int, CONSTRAINT t_ne_pos CHECK (a > 0) NOT ENFORCED)",
        "t_ne_pos",
        clean="CREATE TABLE t_ne (a int, CONSTRAINT t_ne_pos CHECK (a > 0))",
    ),
    Case(
        "syntax-newer-major",
        18,
        17,
        "CREATE TABLE t_nn (a int); ALTER TABLE t_nn ADD CONSTRAINT t_nn_a NOT NULL a NOT VALID",
        "t_nn_a",
        clean="CREATE TABLE t_nn (a int); ALTER TABLE t_nn ADD CONSTRAINT t_nn_a NOT NULL a",
    ),
    Case(
        "syntax-newer-major",
        18,
        17,
        "CREATE TABLE t_ni (a int CONSTRAINT t_ni_a NOT NULL NO INHERIT)",
        "t_ni_a",
        clean="CREATE TABLE t_ni (a int CONSTRAINT t_ni_a NOT NULL)",
    ),
    Case(
        "syntax-newer-major",
        18,
        17,
        "CREATE EXTENSION btree_gist; "
        "CREATE TABLE t_wo (id int, v tstzrange, CONSTRAINT t_wo_pk PRIMARY KEY (id, v WITHOUT OVERLAPS))",
        "t_wo_pk",
        clean="CREATE EXTENSION btree_gist; "
        "CREATE TABLE t_wo (id int, v tstzrange, CONSTRAINT t_wo_pk EXCLUDE USING gist (id WITH =, v WITH &&))",
    ),
    Case(
        "syntax-newer-major",
        17,
        16,
        "CREATE EXTENSION btree_gist; "
        "CREATE TABLE t_px (k int, r int4range, EXCLUDE USING gist (k WITH =, r WITH &&)) PARTITION BY RANGE (k)",
        "public.t_px",
        clean="CREATE EXTENSION btree_gist; CREATE TABLE t_px (k int, r int4range) PARTITION BY RANGE (k); "
        "CREATE TABLE t_px1 PARTITION OF t_px FOR VALUES FROM (0) TO (9); "
        "ALTER TABLE t_px1 ADD EXCLUDE USING gist (k WITH =, r WITH &&)",
    ),
    Case(
        "syntax-newer-major",
        17,
        16,
        "CREATE TABLE t_pam (a int) PARTITION BY LIST (a); ALTER TABLE t_pam SET ACCESS METHOD heap",
        "public.t_pam",
        clean="CREATE TABLE t_pam (a int) PARTITION BY LIST (a); "
        "CREATE TABLE t_pam1 PARTITION OF t_pam FOR VALUES IN (1)",
    ),
    Case(
        "syntax-newer-major",
        17,
        16,
        "CREATE VIEW v_jt AS SELECT * FROM JSON_TABLE('[1]'::jsonb, '$[*]' COLUMNS (v int PATH '$')) AS j",
        "public.v_jt",
        clean="CREATE VIEW v_jt AS SELECT jsonb_path_query('[1]'::jsonb, '$[*]') AS v, 'JSON_TABLE(' AS label",
    ),
    Case(
        "public-schema-older-target",
        15,
        14,
        "CREATE TABLE t (a int)",
        "public",
        clean="GRANT CREATE ON SCHEMA public TO PUBLIC",  # as writable as 14 makes it
    ),
    Case("locale-availability", 17, 18, "", "__never__", target_server=True, params={"clean_only": True}),
    Case("collation-locale-availability", 17, 18, "", "__never__", target_server=True, params={"clean_only": True}),
    Case("collation-version-drift", 16, 18, "", "__never__", target_server=True, params={"clean_only": True}),
]


def _case_id(case: Case) -> str:
    return f"{case.rule}-{case.source}to{case.target}"


def _fmt(text: str, names: dict[str, str]) -> str:
    for k, v in names.items():
        text = text.replace("{" + k + "}", v)
    return text


def _run(servers: Any, case: Case, sql: str, *, planted: bool) -> tuple[CheckReport, dict[str, str]]:
    server = servers.get(case.source)
    names = {"db": _u("chk"), "u": _u("chk_r"), "tu": _u("chk_t")}
    server.execute(f"CREATE DATABASE {names['db']} {case.create_db if planted else ''}")
    # ";;" separates statements that cannot share a transaction (CREATE DATABASE …).
    for statement in filter(None, (x.strip() for x in sql.split(";;"))):
        server.execute(_fmt(statement, names), names["db"])
    target = None
    if case.target_server:
        tserver = servers.get(case.target)
        # The target's role and objects belong to the planted run; the clean twin uses the superuser.
        if case.target_sql and planted:
            tserver.execute(_fmt(case.target_sql, names))
        user = case.target_user if planted else None
        target = tserver.endpoint("target")
        if user:
            target = target.with_params(user=_fmt(user, names), password=None)
    source = server.endpoint("source", names["db"])
    as_user = case.as_user
    if case.params.get("clean_as_superuser") and not planted:
        as_user = None
    if as_user:
        source = source.with_params(user=_fmt(as_user, names), password=None)
    try:
        report = run_check(
            source,
            target,
            target_version=None if case.target_server else case.target,
            databases=[names["db"]],
            jobs=case.jobs,
        )
    finally:
        if "cleanup" in case.params and planted:
            server.execute(_fmt(case.params["cleanup"], names))
    return report, names


def _matches(case: Case, f: Finding, names: dict[str, str], expect: str) -> bool:
    if f.rule_id != case.rule:
        return False
    if not case.cluster_level and f.database != names["db"]:  # database findings name their database
        return False
    return expect in (f.object or "") or expect in f.message


@pytest.mark.parametrize("case", [c for c in CASES if not c.params.get("clean_only")], ids=_case_id)
def test_rule_finds_planted_hazard_and_names_the_object(servers: Any, case: Case) -> None:
    assert case.rule in BY_ID
    report, names = _run(servers, case, case.plant, planted=True)
    expect = _fmt(case.expect, names)
    hits = [f for f in report.findings if _matches(case, f, names, expect)]
    assert hits, f"{case.rule} did not report {expect}: {[(f.rule_id, f.object) for f in report.findings]}"
    rule = BY_ID[case.rule]
    # the rule's remediation, or an exact fix for this object that names it
    assert all(h.remediation == rule.remediation or expect.rsplit(".", 1)[0] in h.remediation for h in hits)
    assert case.rule in report.rules_run


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_rule_is_silent_on_a_clean_source(servers: Any, case: Case) -> None:
    report, names = _run(servers, case, case.clean, planted=False)
    assert case.rule in report.rules_run
    own = [
        f
        for f in report.findings
        if f.rule_id == case.rule
        and (f.database == names["db"] or any(v in (f.object or "") + f.message for v in names.values()))
    ]
    assert not own, [(f.rule_id, f.database, f.object, f.message) for f in own]


def test_every_rule_has_a_case_or_a_reason() -> None:
    covered = {c.rule for c in CASES}
    # Rules whose hazard cannot be planted on one machine are covered by unit tests of their
    # detectors (client choice failing, full disk, locales/collation versions that differ between hosts).
    # client-settings-older-target: only a pg_restore 12-14 (no 15+ installed) meets it; here pgshift
    # picks 15+ and the move works (tests/integration/test_check_downgrade.py).
    unit_only = {"client-dump-newer-server", "work-dir-space", "client-settings-older-target"}
    filters_only = {"object-filters-fail"}  # tests/integration/test_check_filters.py
    own_server = {
        "max-locks-for-dump",
        "password-encryption-default",
        "vacuum-defer-cleanup-age-etc",
        "tablespaces",
        "source-is-target",
        "encoding-shared-text",  # tests/integration/test_encodings_shared.py
        "source-taking-writes",  # tests/integration/test_check_live_source.py (a writer during check)
        "owner-needs-set-role",  # a non-superuser target: scenario target-not-superuser-owner-blocked
        # It names what a run without --database leaves out, so it needs a source of its own:
        # tests/cli/test_check_migrate_agree_cli.py (check and migrate on one source).
        "datallowconn-false",
    }
    missing = {r.id for r in ALL_RULES} - covered - unit_only - own_server - filters_only
    assert not missing


# Hazards that live in server settings or on the server's disk: servers of their own.


def _rule_hits(report: CheckReport, rule: str) -> list[Finding]:
    return [f for f in report.findings if f.rule_id == rule]


def test_max_locks_for_dump_counts_relations_against_the_lock_table(fresh_server: Any) -> None:
    # 10 locks × (10 connections + 3 autovacuum + 1 + 8 workers + 10 senders) ≈ 320 slots.
    server = fresh_server(17, settings={"max_locks_per_transaction": "10", "max_connections": "10"})
    server.execute("CREATE DATABASE few")
    server.execute("CREATE DATABASE many")
    for start in range(1, 351, 50):  # batches: one transaction would exhaust the lock table itself
        server.execute(
            f"DO $$BEGIN FOR i IN {start}..{start + 49} LOOP "
            "EXECUTE format('CREATE TABLE t%s (a int)', i); END LOOP; END$$",
            "many",
        )
    report = run_check(server.endpoint("source"), None, target_version=18, databases=["few", "many"], jobs=1)
    hits = _rule_hits(report, "max-locks-for-dump")
    assert [(f.database, f.severity.value) for f in hits] == [("many", "blocker")]
    assert "350 relations" in hits[0].message


def test_password_encryption_default_only_when_the_source_hashes_with_md5(fresh_server: Any) -> None:
    md5 = fresh_server(13)
    scram = fresh_server(13, settings={"password_encryption": "scram-sha-256"})
    found = run_check(md5.endpoint("source"), None, target_version=14)
    assert [f.object for f in _rule_hits(found, "password-encryption-default")] == ["password_encryption"]
    assert _rule_hits(run_check(scram.endpoint("source"), None, target_version=14), "password-encryption-default") == []


def test_removed_server_settings_are_named(fresh_server: Any) -> None:
    old = fresh_server(15, settings={"vacuum_defer_cleanup_age": "5"})
    report = run_check(old.endpoint("source"), None, target_version=16)
    assert [f.object for f in _rule_hits(report, "vacuum-defer-cleanup-age-etc")] == ["vacuum_defer_cleanup_age"]
    # the same setting is fine for a 15 target
    assert _rule_hits(run_check(old.endpoint("source"), None, target_version=15), "vacuum-defer-cleanup-age-etc") == []


def test_tablespaces_are_named_with_their_path_unless_the_target_has_them(fresh_server: Any) -> None:
    import shutil

    from pgshift.lab.server import lab_user

    source = fresh_server(13)
    target = fresh_server(18)
    clean = run_check(source.endpoint("source"), target.endpoint("target"))
    assert _rule_hits(clean, "tablespaces") == []
    location = source.root / "chk_ts"  # the server user can reach its own directory
    location.mkdir()
    user = lab_user()
    if user:
        shutil.chown(location, user)
    source.execute(f"CREATE TABLESPACE chk_ts LOCATION '{location}'")
    hits = _rule_hits(run_check(source.endpoint("source"), target.endpoint("target")), "tablespaces")
    assert [f.object for f in hits] == ["chk_ts"] and str(location) in hits[0].message


def test_source_is_target_names_one_server_under_two_spellings(servers: Any) -> None:
    from pgshift.conninfo import Endpoint

    server, other = servers.get(17), servers.get(18)
    through_socket = Endpoint.parse(f"host={server.socket_dir} port={server.port} user=postgres", "target")
    same = run_check(server.endpoint("source"), through_socket, databases=["postgres"])
    assert [(f.object, f.severity.value) for f in _rule_hits(same, "source-is-target")] == [("target", "blocker")]
    two = run_check(server.endpoint("source"), other.endpoint("target"), databases=["postgres"])
    assert _rule_hits(two, "source-is-target") == []


@pytest.mark.parametrize("major", [10, 11, 12, 13, 14, 15, 16, 17, 18])
def test_every_rule_query_runs_on_every_source_major(servers: Any, major: int) -> None:
    """No rule fails on any supported source (each failure would be reported as 'rule failed')."""
    source = servers.get(major)
    db = _u("chk_all")
    source.execute(f"CREATE DATABASE {db}")
    source.execute("CREATE TABLE t (a int PRIMARY KEY, b text); CREATE VIEW v AS SELECT a, upper(b) FROM t", db)
    target = servers.get(18) if major != 18 else servers.get(17)
    report = run_check(source.endpoint("source", db), target.endpoint("target"), databases=[db])
    assert [s for s in report.skipped if "failed" in s.reason or "denied" in s.reason] == []
    offline = run_check(source.endpoint("source", db), None, target_version=18, databases=[db])
    assert all("needs the target server" in s.reason for s in offline.skipped)
    assert {"catalog-refs", "extension-availability"} <= {s.rule_id for s in offline.skipped}


def test_check_sessions_are_read_only(servers: Any) -> None:
    from pgshift.catalog.session import fetch_one, session
    from pgshift.checks.engine import _OPTIONS

    server = servers.get(17)
    with session(server.endpoint("source"), options=_OPTIONS) as conn:
        row = fetch_one(conn, "SELECT current_setting('transaction_read_only') AS ro")
        assert row == {"ro": "on"}
        with pytest.raises(Exception, match="read-only transaction"):
            conn.execute("CREATE TABLE chk_must_not_exist (a int)")


def test_estimates_count_table_data_large_objects_and_connections(servers: Any) -> None:
    server = servers.get(16)
    db = _u("chk_est")
    server.execute(f"CREATE DATABASE {db}")
    server.execute(
        "CREATE TABLE big (id int PRIMARY KEY, pad text);"
        "INSERT INTO big SELECT g, repeat(md5(g::text), 10) FROM generate_series(1, 20000) g;"
        "SELECT lo_from_bytea(0, convert_to(repeat('x', 300000), 'UTF8'))",
        db,
    )
    report = run_check(server.endpoint("source", db), None, target_version=17, databases=[db], jobs=3)
    est = report.estimates
    [inv] = report.source.checked
    assert inv.large_objects == 1 and inv.large_object_bytes > 0
    assert inv.object_counts["tables"] == 1 and inv.object_counts["indexes"] == 1
    assert inv.largest_tables[0].name == "public.big"
    assert est.table_data_bytes >= 20000 * 320 + inv.large_object_bytes  # heap rows plus LO pages
    assert est.index_bytes > 0 and est.dump_bytes_estimate >= est.table_data_bytes
    assert (est.jobs, est.source_connections_needed, est.target_connections_needed) == (3, 5, 4)
    assert est.work_dir_fits is True and est.work_dir_free_bytes
