"""Differences declared in advance (migrate's remedies) on real servers: reported under their
remedy and not counted; undeclared differences still count.

The source (14) holds what a 16+ target refuses or lacks: a generated column of an inheritance
child whose parent column is plain, a table's rule renamed to _RETURN, a function and a database
SET naming a setting, an extension. The target (17) is built as migrate's remedies leave it: the
column plain, the rule under another name, the settings and the extension left out, and one
table (with its index, key, rows and a view on it) excluded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from pgshift.report.verify import json_document
from pgshift.verify import ExpectedDifference, VerifyOptions, verify_servers

COMMON = """
CREATE TABLE parent (a int, b int);
CREATE TABLE rlog (x int);
CREATE TABLE rt (x int);
CREATE VIEW rt_view AS SELECT x FROM rt;
CREATE TABLE kept (id int PRIMARY KEY, note text);
INSERT INTO kept SELECT g, 'n' || g FROM generate_series(1, 20) g;
"""

SOURCE = (
    COMMON
    + """
CREATE TABLE child (a int, b int GENERATED ALWAYS AS (a * 2) STORED) INHERITS (parent);
INSERT INTO child (a) SELECT g FROM generate_series(1, 10) g;
CREATE RULE r AS ON INSERT TO rt DO ALSO INSERT INTO rlog VALUES (NEW.x);
ALTER RULE r ON rt RENAME TO "_RETURN";
CREATE TABLE legacy (id int PRIMARY KEY, v text);
CREATE INDEX legacy_v ON legacy (v);
INSERT INTO legacy SELECT g, 'v' || g FROM generate_series(1, 5) g;
CREATE VIEW legacy_report AS SELECT count(*) AS n FROM legacy;
CREATE FUNCTION f(integer) RETURNS integer LANGUAGE sql AS 'SELECT $1' SET work_mem = '1MB';
CREATE EXTENSION pg_trgm;
"""
)

# What the remedies leave on the target.
TARGET = (
    COMMON
    + """
CREATE TABLE child (a int, b int) INHERITS (parent);
INSERT INTO child SELECT g, g * 2 FROM generate_series(1, 10) g;
CREATE RULE "_RETURN_insert" AS ON INSERT TO rt DO ALSO INSERT INTO rlog VALUES (NEW.x);
CREATE FUNCTION f(integer) RETURNS integer LANGUAGE sql AS 'SELECT $1';
"""
)

DECLARED = [
    ExpectedDifference("generated-as-plain", "decl", "column", "public.child.b", "restored as a plain column"),
    ExpectedDifference("rename-rule", "decl", "rule", "public.rt._RETURN", renamed_to="_RETURN_insert"),
    ExpectedDifference("drop-removed-settings", "decl", "function", "public.f(integer)", "SET work_mem left out"),
    ExpectedDifference("drop-removed-settings", "decl", "database", "decl"),
    ExpectedDifference("leave-out-extension", "decl", "extension", "pg_trgm"),
    ExpectedDifference("exclude-object", "decl", "table", "public.legacy"),
    ExpectedDifference("exclude-object", "decl", "view", "public.legacy_report"),
]


def test_declared_differences_are_reported_apart_and_do_not_count(fresh_server: Any, tmp_path: Path) -> None:
    source, target = fresh_server(14), fresh_server(17)
    for server, sql in ((source, SOURCE), (target, TARGET)):
        server.execute("CREATE DATABASE decl")
        server.execute(sql, "decl")
    source.execute("ALTER DATABASE decl SET work_mem = '2MB'")
    pairs = [("decl", "decl")]
    opts = VerifyOptions(compare_globals=False)

    plain = verify_servers(source.endpoint("source"), target.endpoint("target"), databases=pairs, options=opts)
    found = {(d.object, d.kind) for d in plain.differences}
    assert not plain.equal and plain.exit_code == 1
    assert found == {
        ("column public.child.b", "changed"),
        # A rule named _RETURN that is not a view's own is seen (the view's own is the view).
        ("rule public.rt._RETURN", "missing"),
        ("rule public.rt._RETURN_insert", "extra"),
        ("function public.f(integer)", "changed"),
        ("database decl", "changed"),
        ("extension pg_trgm", "missing"),
        ("table public.legacy", "missing"),
        ("index public.legacy_pkey", "missing"),
        ("index public.legacy_v", "missing"),
        ("constraint (primary key) public.legacy.legacy_pkey", "missing"),
        ("view public.legacy_report", "missing"),
    }, sorted(found)

    stale = ExpectedDifference("exclude-object", "decl", "table", "public.kept", "said excluded, but it arrived")
    report = verify_servers(
        source.endpoint("source"),
        target.endpoint("target"),
        databases=pairs,
        options=opts,
        expected=[*DECLARED, stale],
    )
    assert report.equal and report.exit_code == 0, [d.message for d in report.differences]
    assert {(d.difference.object, d.remedy) for d in report.declared} == {
        ("column public.child.b", "generated-as-plain"),
        ("rule public.rt._RETURN", "rename-rule"),
        ("rule public.rt._RETURN_insert", "rename-rule"),
        ("function public.f(integer)", "drop-removed-settings"),
        ("database decl", "drop-removed-settings"),
        ("extension pg_trgm", "leave-out-extension"),
        ("table public.legacy", "exclude-object"),
        ("index public.legacy_pkey", "exclude-object"),
        ("index public.legacy_v", "exclude-object"),
        ("constraint (primary key) public.legacy.legacy_pkey", "exclude-object"),
        ("view public.legacy_report", "exclude-object"),
    }
    assert report.unmatched == (stale,)
    doc = json_document(report)
    assert doc["differences"] == [] and doc["equal"] is True
    assert {d["remedy"] for d in doc["declared"]} == {e.remedy for e in DECLARED}
    assert doc["declared_unmatched"][0]["object"] == "public.kept"
    assert all(e["rule"] != "exclude-object" for e in doc["expected"])

    # An undeclared difference still counts, next to the declared ones.
    target.execute("ALTER TABLE kept DROP COLUMN note", "decl")
    again = verify_servers(
        source.endpoint("source"), target.endpoint("target"), databases=pairs, options=opts, expected=DECLARED
    )
    assert not again.equal
    assert [(d.object, d.kind) for d in again.differences] == [("column public.kept.note", "missing")]
    assert len(again.declared) == len(report.declared)

    # The same declarations from a file, as a user re-runs verify after such a migration.
    target.execute("ALTER TABLE kept ADD COLUMN note text", "decl")
    declared = tmp_path / "expected.json"
    declared.write_text(json.dumps({"expected": [e.as_dict() for e in DECLARED]}))

    def cli(*extra: str) -> subprocess.CompletedProcess[str]:
        args = ["verify", source.conninfo("decl"), target.conninfo("decl"), "-d", "decl", "--no-globals", *extra]
        return subprocess.run([sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, timeout=300)

    done = cli("--expected", str(declared), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(json.loads(done.stdout)["declared"]) == len(report.declared)
    console = cli("--expected", str(declared))
    assert console.returncode == 0 and "Declared differences" in console.stdout
    assert "rename-rule in decl: rule public.rt._RETURN is missing on the target" in console.stdout
    assert cli().returncode == 1
    declared.write_text('[{"remedy": "rename-rule", "kind": "rule"}]')
    bad = cli("--expected", str(declared))
    assert bad.returncode == 64 and "entry 1 needs 'object'" in bad.stderr and "Traceback" not in bad.stderr
