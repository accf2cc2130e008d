"""Cross-version false alarms of verify, reproduced with `pgshift migrate` then `pgshift verify`.

A schema with every hazard class the inventory once misread: foreign keys to and from
partitioned tables (the server clones them and names the clones itself, differently from 18),
keys, indexes and triggers cloned onto partitions, columns and expressions named with words that
became keywords (json quoted from 17, system_user from 16, normalize from 13), an owner who lost a
privilege (17 adds MAINTAIN to the owner's), GRANT ALL and default privileges. After the move
verify exits 0; then real differences of each class planted on the target are still reported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HAZARDS_SQL = """
CREATE TABLE pt (id int PRIMARY KEY, doc json, b int) PARTITION BY RANGE (id);
CREATE TABLE pt_1 PARTITION OF pt FOR VALUES FROM (0) TO (100);
CREATE TABLE pt_2 PARTITION OF pt FOR VALUES FROM (100) TO (200) PARTITION BY RANGE (id);
CREATE TABLE pt_2a PARTITION OF pt_2 FOR VALUES FROM (100) TO (150);
CREATE TABLE pt_2b PARTITION OF pt_2 FOR VALUES FROM (150) TO (200);
CREATE TABLE ref (a int REFERENCES pt, b int, json json, "system_user" text, CHECK (b > 0)) PARTITION BY LIST (b);
CREATE TABLE ref_1 PARTITION OF ref FOR VALUES IN (1);
CREATE TABLE ref_2 PARTITION OF ref FOR VALUES IN (2);
CREATE TABLE plain_ref (a int REFERENCES pt ON DELETE CASCADE, CHECK (a >= 0));
CREATE INDEX ON ref (a);
CREATE INDEX ref_json_idx ON ref ((json::text));
CREATE FUNCTION trg() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER ref_trg AFTER INSERT ON ref FOR EACH ROW EXECUTE PROCEDURE trg();
INSERT INTO pt SELECT g, json_build_object('g', g), g % 3 FROM generate_series(0, 199) g;
INSERT INTO ref SELECT g, 1 + g % 2, '{}', 'u' FROM generate_series(0, 199) g;
INSERT INTO plain_ref SELECT g FROM generate_series(0, 199, 7) g;
CREATE TABLE docs (id int PRIMARY KEY, json json, "normalize" text, CHECK (json::text <> ''));
INSERT INTO docs VALUES (1, '{"a": 1}', 'x');
CREATE VIEW v_docs AS SELECT json, "normalize" FROM docs WHERE json::text <> '' ;
CREATE INDEX docs_json ON docs ((json::text));
CREATE FUNCTION jf(j json) RETURNS json LANGUAGE sql AS $$ SELECT j $$;
CREATE RULE docs_log AS ON DELETE TO docs DO ALSO NOTIFY docs_deleted;
CREATE TABLE owned (x int); ALTER TABLE owned OWNER TO hz_owner; REVOKE DELETE ON owned FROM hz_owner;
GRANT ALL ON owned TO hz_reader;
CREATE TABLE owned2 (x int); ALTER TABLE owned2 OWNER TO hz_owner; GRANT SELECT ON owned2 TO hz_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE hz_owner GRANT ALL ON TABLES TO hz_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE hz_owner REVOKE DELETE ON TABLES FROM hz_owner;
GRANT ALL ON SCHEMA public TO hz_reader;
GRANT ALL ON DATABASE hazards TO hz_reader;
"""

# (source, target, the rules that must explain something)
PAIRS = [
    (12, 18, {"server-named-clone", "maintain-privilege-17", "not-null-constraints-18"}),
    (14, 18, {"server-named-clone", "maintain-privilege-17", "not-null-constraints-18"}),
    (16, 17, {"maintain-privilege-17"}),
    (14, 15, set()),
]


def pgshift(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, timeout=600)


def verify_json(source: Any, target: Any) -> tuple[int, dict[str, Any]]:
    done = pgshift("verify", source.conninfo(), target.conninfo(), "-d", "hazards", "--format", "json")
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def real(doc: dict[str, Any]) -> list[str]:
    return [f"{d['object']} {d['kind']}" for d in doc["differences"]]


@pytest.mark.parametrize(("src", "tgt", "rules"), PAIRS, ids=[f"{a}to{b}" for a, b, _ in PAIRS])
def test_migrated_hazards_verify_equal_and_real_differences_still_show(
    fresh_server: Any, tmp_path: Path, src: int, tgt: int, rules: set[str]
) -> None:
    source, target = fresh_server(src), fresh_server(tgt)
    source.execute("CREATE ROLE hz_owner; CREATE ROLE hz_reader")
    source.execute("CREATE DATABASE hazards OWNER hz_owner")
    source.execute(HAZARDS_SQL, "hazards")

    moved = pgshift("migrate", source.conninfo(), target.conninfo(), "-d", "hazards", "--workdir", str(tmp_path / "w"))
    assert moved.returncode == 0, moved.stderr[-3000:]

    code, doc = verify_json(source, target)
    assert code == 0 and doc["equal"], doc["differences"]
    explained = {e["rule"] for e in doc["expected"]}
    assert explained == rules, doc["expected"]
    if "server-named-clone" in rules:
        # 18 names the clones of ref's and plain_ref's foreign key fk_a_fkey_1 where 14 said fkey1.
        renamed = [e for e in doc["expected"] if e["rule"] == "server-named-clone"]
        assert {e["object"].split(".")[1] for e in renamed} == {"ref", "plain_ref"}
        assert any(e["source"] == "ref.ref_a_fkey1" and e["target"] == "ref.ref_a_fkey_1" for e in renamed)
    assert doc["databases"][0]["rows_source"] == doc["databases"][0]["rows_target"] > 0

    # Real differences of each class are still reported.
    target.execute(
        "ALTER TABLE plain_ref DROP CONSTRAINT plain_ref_a_fkey;"
        "ALTER TABLE ref RENAME CONSTRAINT ref_b_check TO ref_b_is_positive;"
        "DROP RULE docs_log ON docs;"
        "REVOKE SELECT ON owned2 FROM hz_reader;"
        "ALTER TABLE docs RENAME COLUMN json TO js;",
        "hazards",
    )
    code, doc = verify_json(source, target)
    found = real(doc)
    assert code == 1 and not doc["equal"]
    assert "constraint (foreign key) public.plain_ref.plain_ref_a_fkey missing" in found, found
    # A rename of what the user named shows, on the table and on each partition.
    assert "constraint (check) public.ref.ref_b_check missing" in found
    assert "constraint (check) public.ref.ref_b_is_positive extra" in found
    assert "rule public.docs.docs_log missing" in found
    assert "table public.owned2 changed" in found
    assert "column public.docs.json missing" in found and "column public.docs.js extra" in found
