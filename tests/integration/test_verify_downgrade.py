"""verify on a downgrade compares what both servers mean, not how their catalogs spell it.

18 keeps NOT NULL as pg_constraint rows (t_col_not_null) where 17 and older keep only
pg_attribute.attnotnull; 17 catalogs domain NOT NULL constraints and adds MAINTAIN to ALL on
tables. A kitchen sink of the target's level, built on the newer source and moved by
``pgshift migrate --allow-downgrade`` as a user runs it, verifies equal: each of those facts is a
named expected difference, never a missing object. What the older major cannot hold (a NOT NULL
… NOT VALID, a MAINTAIN granted alone) and a NOT NULL dropped on the target stay real differences.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pgshift.lab import LabServer
from tests.fixtures import kitchen_sink as ks

PAIRS = [(18, 17), (18, 16), (17, 15)]


def pgshift(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, timeout=600, check=False
    )


def sink_of_level(source: LabServer, target: LabServer) -> str:
    """The kitchen sink of the target's major built on the newer source (what a downgrade can carry)."""
    prefix = ks.new_prefix()
    made = ks.parts(
        target.major,
        prefix,
        icu=ks.has_icu(source) and ks.has_icu(target),
        extensions=ks.loadable_extensions(source) & ks.loadable_extensions(target),
        tablespace=None,
        mapping_password=f"{ks.MAPPING_PASSWORD_TAG}-{secrets.token_hex(4)}",
    )
    database = f"{prefix}_kitchen"
    for part in made:
        with source.connect(database if part.database == "kitchen" else "postgres", client_encoding="UTF8") as conn:
            conn.execute(part.sql.encode())
    return database


def verify(source: LabServer, target: LabServer, database: str) -> tuple[int, dict[str, Any]]:
    done = pgshift("verify", source.conninfo(), target.conninfo(), "--database", database, "--json")
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def real(report: dict[str, Any]) -> list[str]:
    return [f"{d['object']}: {d['message']} ({d['source']!r} -> {d['target']!r})" for d in report["differences"]]


@pytest.mark.parametrize(("source_major", "target_major"), PAIRS, ids=[f"{a}to{b}" for a, b in PAIRS])
def test_a_downgrade_verifies_equal_and_a_dropped_not_null_is_still_caught(
    fresh_server: Any, tmp_path: Path, source_major: int, target_major: int
) -> None:
    source, target = fresh_server(source_major), fresh_server(target_major)
    database = sink_of_level(source, target)
    done = pgshift(
        "migrate", source.conninfo(), target.conninfo(), "--workdir", str(tmp_path / "run"),
        "--allow-downgrade", "--yes", "--json",
    )  # fmt: skip
    assert done.stdout, done.stderr
    report = json.loads(done.stdout)["verify"]
    assert real(report) == [], "\n".join(real(report))
    assert report["equal"] is True
    rules = Counter(e["rule"] for e in report["expected"])
    # Each catalog fact of the newer major was seen, on the source's side, and explained.
    assert ("not-null-constraints-18" in rules) == (source_major >= 18 > target_major)
    assert ("domain-not-null-constraints-17" in rules) == (source_major >= 17 > target_major)
    assert ("maintain-privilege-17" in rules) == (source_major >= 17 > target_major)
    for explained in report["expected"]:
        if explained["rule"].startswith(("not-null", "domain-not-null")):
            assert explained["kind"] == "missing"
            assert explained["source"] == "exists"

    # The target's meaning is what the rule leans on: a NOT NULL dropped there is reported.
    target.execute("ALTER TABLE ks.item ALTER COLUMN name DROP NOT NULL", database)
    code, after = verify(source, target, database)
    assert code == 1, after["summary"]
    differences = [d for d in after["differences"] if d["object"] == "column ks.item.name"]
    assert len(differences) == 1, real(after)
    assert "NOT NULL" in differences[0]["source"]
    assert "NOT NULL" not in differences[0]["target"]
    assert len(after["differences"]) == 1, real(after)


def test_the_rule_holds_both_ways_across_18(fresh_server: Any) -> None:
    """The same two servers compared 18 -> 17 and 17 -> 18: missing one way, extra the other,
    explained by the same rule, and a column's NOT NULL compared both ways."""
    new, old = fresh_server(18), fresh_server(17)
    database = f"vd_{secrets.token_hex(3)}"
    sql = """
        CREATE TABLE item (id integer PRIMARY KEY, name text NOT NULL, note text);
        CREATE TABLE part (id integer NOT NULL, at date NOT NULL) PARTITION BY RANGE (at);
        CREATE TABLE part_1 PARTITION OF part FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
        CREATE DOMAIN posint AS integer NOT NULL CHECK (VALUE > 0);
    """
    for server in (new, old):
        server.execute(f"CREATE DATABASE {database}")
        server.execute(sql, database)
    for a, b, kind in ((new, old, "missing"), (old, new, "extra")):
        code, report = verify(a, b, database)
        assert code == 0, real(report)
        not_null = [e for e in report["expected"] if e["rule"] == "not-null-constraints-18"]
        assert {e["kind"] for e in not_null} == {kind}
        # item.id, item.name, part.id, part.at, and part_1's two cloned from part.
        assert len(not_null) == 6, not_null

    old.execute("ALTER TABLE item ALTER COLUMN name DROP NOT NULL", database)
    for a, b in ((new, old), (old, new)):
        code, report = verify(a, b, database)
        assert code == 1
        assert [d["object"] for d in report["differences"]] == ["column public.item.name"], real(report)


def test_what_17_cannot_hold_is_a_real_difference_after_a_downgrade(fresh_server: Any) -> None:
    """A NOT NULL … NOT VALID, NO INHERIT or commented on 18, and a MAINTAIN granted alone on 17,
    have no 16/17 spelling: verify says what was lost (check is where a run should hear it first)."""
    s18, s17, s16 = fresh_server(18), fresh_server(17), fresh_server(16)
    database = f"vd_{secrets.token_hex(3)}"
    role = f"vd_{secrets.token_hex(3)}"
    for server in (s18, s17, s16):
        server.execute(f"CREATE DATABASE {database}")
        server.execute(f"CREATE ROLE {role}")
    try:
        # The nearest 17 can come to each: a plain NOT NULL (or none, for NOT VALID), no comment.
        s18.execute(
            """
            CREATE TABLE lax (a integer, b integer NOT NULL NO INHERIT, c integer NOT NULL);
            ALTER TABLE lax ADD CONSTRAINT lax_a_nn NOT NULL a NOT VALID;
            COMMENT ON CONSTRAINT lax_c_not_null ON lax IS 'required by billing';
            """,
            database,
        )
        s17.execute("CREATE TABLE lax (a integer, b integer NOT NULL, c integer NOT NULL)", database)
        code, report = verify(s18, s17, database)
        assert code == 1
        lost = sorted(d["object"] for d in report["differences"])
        assert lost == [
            "column public.lax.a",  # 18 sets attnotnull for a NOT VALID NOT NULL too
            "constraint (not null) public.lax.lax_a_nn",
            "constraint (not null) public.lax.lax_b_not_null",
            "constraint (not null) public.lax.lax_c_not_null",
        ], real(report)

        s17.execute("DROP TABLE lax", database)
        for server in (s17, s16):
            server.execute(f"CREATE TABLE kept (id integer); GRANT SELECT ON kept TO {role}", database)
        s17.execute(f"GRANT MAINTAIN ON kept TO {role}", database)
        code, report = verify(s17, s16, database)
        assert code == 1
        assert [d["object"] for d in report["differences"]] == ["table public.kept"], real(report)
        assert f"{role}=rm/" in report["differences"][0]["source"]
    finally:
        for server in (s18, s17, s16):
            server.execute(f"DROP DATABASE IF EXISTS {database}")
            server.execute(f"DROP ROLE IF EXISTS {role}")


CORPUS_PAIRS = [
    # (source, target, the rules that must explain something on the way down)
    (18, 16, {"not-null-constraints-18", "domain-not-null-constraints-17", "maintain-privilege-17"}),
    (17, 15, {"domain-not-null-constraints-17", "maintain-privilege-17"}),
    # 15 made pg_database_owner own schema public and took CREATE from PUBLIC; pg_dump 15+ leaves
    # that default out, so a 14 target keeps its own (the bootstrap superuser's, CREATE for PUBLIC).
    # That is real (PUBLIC may create in public again) and stays reported.
    (15, 14, set()),
]
# Lower pairs do not load, which check or the restore says before verify runs: 14 -> 13 (pg_dump
# 14+ spells a range type's multirange_type_name; the schema trial refuses it). 12 -> 11 loads with
# a 15+ client (pg_restore --no-table-access-method: tests/integration/test_check_downgrade.py). The
# rules of 14 and 12 are read back on a downgrade in tests/unit/test_verify_rules_downgrade.py.


@pytest.mark.parametrize(
    ("source_major", "target_major", "rules"), CORPUS_PAIRS, ids=[f"{a}to{b}" for a, b, _ in CORPUS_PAIRS]
)
def test_corpus_and_every_kind_move_down_equal(
    fresh_server: Any, tmp_path: Path, source_major: int, target_major: int, rules: set[str]
) -> None:
    """The corpus and a schema of every kind verify inventories (test_verify_pairs' KINDS_SQL, valid
    on 11+), moved down by migrate: nothing but named spellings of the newer major."""
    from tests.integration.test_verify_pairs import kinds_sql
    from tests.integration.verify_support import load_corpus

    source, target = fresh_server(source_major), fresh_server(target_major)
    load_corpus(source, ("pagila", "chinook", "northwind", "iso3166"))
    source.execute("CREATE DATABASE kinds")
    source.execute(kinds_sql(source_major), "kinds")
    done = pgshift(
        "migrate", source.conninfo(), target.conninfo(), "--workdir", str(tmp_path / "run"),
        "--allow-downgrade", "--yes", "--json",
    )  # fmt: skip
    assert done.stdout, done.stderr
    result = json.loads(done.stdout)
    report = result.get("verify")
    assert report is not None, result.get("error")
    lost = [(d["database"], d["object"], d["source"], d["target"]) for d in report["differences"]]
    if source_major >= 15 > target_major:
        moved = sorted({d["database"] for d in report["differences"]})
        assert "kinds" in moved, moved  # a database that left public as 15 made it (pagila sets its own)
        assert sorted(lost) == sorted(
            entry
            for db in moved
            for entry in (
                (db, "schema public", "pg_database_owner", "postgres"),
                (
                    db,
                    "schema public",
                    "pg_database_owner=UC/pg_database_owner, =U/pg_database_owner",
                    "postgres=UC/postgres, =UC/postgres",
                ),
            )
        ), "\n".join(real(report))
    else:
        assert lost == [], "\n".join(real(report))
    seen = {e["rule"] for e in report["expected"]}
    assert rules <= seen, seen
