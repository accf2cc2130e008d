"""Remedies on real servers: what a newer major refuses arrives in its declared, changed form.

One source database holds one object for each remedy (a generated child column under a plain
parent column, a non-view rule named _RETURN, removed settings in a function's SET clause and in
ALTER DATABASE/ROLE SET, an extension the target lacks and nothing uses, a table to leave out with
the views over it). Without remedies the move is refused before the target is touched; with
them it finishes, verify declares each change by its remedy, and the tests' own queries find on
the target exactly what each remedy promises.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from pgshift.lab import LabServer

PAIRS = [(14, 18), (12, 17)]

SOURCE_SQL = """
CREATE TABLE parent (a int, b int);
CREATE TABLE child (b int GENERATED ALWAYS AS (a * 2) STORED) INHERITS (parent);
INSERT INTO child (a) SELECT generate_series(1, 300);
INSERT INTO parent VALUES (7, 70);
CREATE TABLE t (x int);
CREATE RULE r AS ON INSERT TO t DO INSTEAD NOTHING;
ALTER RULE r ON t RENAME TO "_RETURN";
CREATE FUNCTION f() RETURNS int LANGUAGE sql SET force_parallel_mode = on SET work_mem = '8MB' AS 'SELECT 1';
CREATE EXTENSION adminpack;
CREATE TABLE keep (id int PRIMARY KEY, v text);
INSERT INTO keep VALUES (1, 'kept');
CREATE TABLE bad (id int PRIMARY KEY, k int REFERENCES keep);
INSERT INTO bad VALUES (1, 1);
COMMENT ON TABLE bad IS 'left out';
CREATE INDEX ON bad (k);
CREATE VIEW bv AS SELECT * FROM bad;
CREATE VIEW bv2 AS SELECT * FROM bv;
"""

REMEDIES = (
    "--remedy", "generated-as-plain", "--remedy", "rename-rule", "--remedy", "drop-removed-settings",
    "--remedy", "leave-out-extension", "--exclude-object", "table public.bad",
)  # fmt: skip


def _pgshift(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, timeout=300)


def _rows(server: LabServer, query: str, dbname: str) -> list[tuple[Any, ...]]:
    with server.connect(dbname) as conn:
        return conn.execute(query).fetchall()  # type: ignore[arg-type]


@pytest.mark.parametrize(("source_major", "target_major"), PAIRS, ids=lambda m: str(m))
def test_each_remedy_carries_its_object_and_verify_expects_the_change(
    servers: Any, tmp_path: Any, source_major: int, target_major: int
) -> None:
    source: LabServer = servers.get(source_major)
    target: LabServer = servers.get(target_major)
    db, role = f"remedied_{source_major}_{target_major}", f"remedy_role_{source_major}_{target_major}"
    for server in (source, target):
        server.execute(f"DROP DATABASE IF EXISTS {db}")
        server.execute(f"DROP ROLE IF EXISTS {role}")
    source.execute(f"CREATE ROLE {role}; ALTER ROLE {role} SET force_parallel_mode = on")
    source.execute(f"CREATE DATABASE {db}")
    source.execute(f"ALTER DATABASE {db} SET force_parallel_mode = on; ALTER DATABASE {db} SET work_mem = '5MB'")
    source.execute(SOURCE_SQL, db)
    base = ("migrate", source.conninfo(), target.conninfo(), "-d", db)

    refused = _pgshift(*base, "--workdir", str(tmp_path / "refused"))
    assert refused.returncode == 2, refused.stderr
    assert "--remedy leave-out-extension" in refused.stderr  # nothing uses adminpack
    refused = _pgshift(*base, "--remedy", "leave-out-extension", "--workdir", str(tmp_path / "refused2"))
    assert refused.returncode == 2, refused.stderr
    assert "generated-inheritance-mismatch" in refused.stderr and "removed-guc-settings" in refused.stderr
    assert not _rows(target, f"SELECT 1 FROM pg_database WHERE datname = '{db}'", "postgres")

    # No rule knows the renamed rule: the preflight's schema trial finds it on the target before
    # anything is made there, and names the remedy's alternative (leaving the rule out).
    pairs = list(zip(REMEDIES[::2], REMEDIES[1::2], strict=True))
    without_rename = [a for pair in pairs if pair != ("--remedy", "rename-rule") for a in pair]
    refused = _pgshift(*base, *without_rename, "--workdir", str(tmp_path / "refused3"))
    assert refused.returncode == 2, refused.stderr
    assert 'non-view rule for "t" must not be named "_RETURN"' in refused.stderr, refused.stderr
    assert not _rows(target, f"SELECT 1 FROM pg_database WHERE datname = '{db}'", "postgres")
    assert not _rows(target, "SELECT 1 FROM pg_database WHERE datname LIKE 'pgshift_trial_%'", "postgres")

    # A misspelt object is a usage error, not a run that leaves nothing out.
    typo = _pgshift(*base, *REMEDIES, "--exclude-object", "table public.bda", "--workdir", str(tmp_path / "typo"))
    assert typo.returncode == 64, typo.stderr
    assert "--exclude-object 'table public.bda': no database of this run has that object" in typo.stderr

    plan = _pgshift(*base, *REMEDIES, "--workdir", str(tmp_path / "plan"), "--dry-run", "--json")
    assert plan.returncode == 0, plan.stderr
    doc = json.loads(plan.stdout)
    kinds = [s["kind"] for s in doc["steps"] if s["database"] == db]
    assert (
        kinds.index("script-schema")
        < kinds.index("restore-schema")
        < kinds.index("restore-data")
        < kinds.index("remedy")
    )
    planned = {(r["remedy"], r["object"]) for r in doc["remedies"]}
    assert {
        ("generated-as-plain", "column public.child.b"),
        ("rename-rule", "rule public.t._RETURN"),
        ("drop-removed-settings", "function public.f()"),
        ("drop-removed-settings", f"database {db}"),
        ("drop-removed-settings", f"role {role}"),
        ("leave-out-extension", "extension adminpack"),
        ("exclude-object", "table public.bad"),
    } == planned
    excluded = next(r for r in doc["remedies"] if r["remedy"] == "exclude-object")
    assert excluded["also"] == ["view public.bv", "view public.bv2"]  # the index and FK go with the table

    done = _pgshift(*base, *REMEDIES, "--workdir", str(tmp_path / "run"), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] and result["verify"]["equal"], result["verify"]
    declared = {d["remedy"] for d in result["verify"]["declared"]}
    assert declared == {
        "generated-as-plain",
        "rename-rule",
        "drop-removed-settings",
        "leave-out-extension",
        "exclude-object",
    }

    # The target, read with the tests' own queries.
    assert _rows(
        target, "SELECT attgenerated FROM pg_attribute WHERE attrelid = 'child'::regclass AND attname = 'b'", db
    ) == [("",)]
    assert _rows(target, "SELECT count(*) FROM ONLY child WHERE b IS DISTINCT FROM a * 2", db) == [(0,)]
    assert _rows(target, "SELECT count(*), sum(b) FROM ONLY child", db) == [(300, 90300)]
    assert _rows(target, "SELECT a, b FROM ONLY parent", db) == [(7, 70)]
    assert _rows(target, "SELECT rulename FROM pg_rules WHERE tablename = 't'", db) == [("_RETURN_insert",)]
    with target.connect(db) as conn:
        conn.execute("INSERT INTO t VALUES (1)")  # the rule still does its work: nothing is inserted
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    assert _rows(target, "SELECT proconfig FROM pg_proc WHERE proname = 'f'", db) == [(["work_mem=8MB"],)]
    settings = _rows(
        target,
        f"SELECT s.setrole::regrole::text, s.setconfig FROM pg_db_role_setting s LEFT JOIN pg_database d "
        f"ON d.oid = s.setdatabase WHERE d.datname = '{db}' OR s.setrole = '{role}'::regrole",
        "postgres",
    )
    assert sorted(settings) == [("-", ["work_mem=5MB"])], settings  # the role's only setting was dropped
    assert not _rows(target, "SELECT 1 FROM pg_extension WHERE extname = 'adminpack'", db)
    assert not _rows(target, "SELECT 1 FROM pg_class WHERE relname IN ('bad', 'bv', 'bv2')", db)
    assert _rows(target, "SELECT id, v FROM keep", db) == [(1, "kept")]
    # The source is never changed.
    assert _rows(
        source, "SELECT attgenerated FROM pg_attribute WHERE attrelid = 'child'::regclass AND attname = 'b'", db
    ) == [("s",)]
    # The role's removed setting would block every later move of this source's globals.
    for server in (source, target):
        server.execute(f"DROP DATABASE {db}")
        server.execute(f"DROP ROLE {role}")


@pytest.mark.parametrize(("encoding", "column"), [("LATIN1", "größe"), ("EUC_JP", "列名")])
def test_generated_as_plain_moves_a_non_ascii_column_of_a_non_utf8_database(
    servers: Any, tmp_path: Any, encoding: str, column: str
) -> None:
    """migrate's script rewrite matches the column as the bytes pg_restore wrote, in the database's encoding."""
    source, target = servers.get(14), servers.get(18)
    db = f"gen_move_{encoding.lower()}"
    for server in (source, target):
        server.execute(f"DROP DATABASE IF EXISTS {db}")
    source.execute(f"CREATE DATABASE {db} ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    with source.connect(db) as conn:
        conn.execute("SET client_encoding TO 'UTF8'")
        conn.execute(
            f'CREATE TABLE p (a int, "{column}" int); '
            f'CREATE TABLE c ("{column}" int GENERATED ALWAYS AS (a * 2) STORED) INHERITS (p); '
            "INSERT INTO c (a) SELECT generate_series(1, 50)"
        )
    done = _pgshift(
        "migrate", source.conninfo(), target.conninfo(), "-d", db, "--remedy", "generated-as-plain",
        "--workdir", str(tmp_path / "run"), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["verify"]["equal"]
    with target.connect(db) as conn:
        conn.execute("SET client_encoding TO 'UTF8'")
        assert conn.execute(
            f"SELECT attgenerated FROM pg_attribute WHERE attrelid = 'c'::regclass AND attname = '{column}'"
        ).fetchall() == [("",)]
        assert conn.execute(f'SELECT count(*), sum("{column}") FROM ONLY c').fetchone() == (50, 2550)
