"""Every encoding, shared catalogs included, as a user runs pgshift (check, migrate, verify; console
and --json) on 12 -> 17 and 16 -> 18.

The source holds databases in SQL_ASCII, LATIN1, WIN1252, EUC_JP and UTF8, each with schema,
table, column and function names, comments and data outside ASCII (valid in that encoding), and,
on the cluster, role names, role and database comments and settings written from its LATIN1 and
EUC_JP databases: bytes that are not valid UTF8 in catalogs every database shares.

The story a user lives, in order (one source and one target per version pair):

1. check reports each such text as a blocker (escaped, how it reads, the fix) and migrate refuses
   before touching the target;
2. the fixes the findings give, run on the source, make the rule silent;
3. migrate and verify then succeed, and the tests' own byte-level reads find every name, comment,
   setting and row of the source on the target, byte for byte.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgshift.lab import LabServer, start

RULE = "encoding-shared-text"

# database -> (encoding, text the statements use: names, comments, values valid in that encoding)
_WORDS = {
    "enc_latin1": ("LATIN1", {"s": "größe", "t": "maße", "c": "façade", "f": "grüß", "v": "Ærø ½-free ÿ", "m": "Maße"}),
    "enc_win1252": (
        "WIN1252",
        {"s": "prix€", "t": "coût", "c": "œuvre", "f": "“f”", "v": "“quoted” – 10 €", "m": "€uro"},
    ),
    "enc_eucjp": ("EUC_JP", {"s": "日本", "t": "名前", "c": "列", "f": "関数", "v": "こんにちは", "m": "名前の列"}),
    "enc_utf8": (
        "UTF8",
        {"s": "ελληνικά", "t": "таблица", "c": "naïve", "f": "φ", "v": "🐘 — 日本語 — ü", "m": "Ελληνικά"},
    ),
}
_OBJECTS = (
    'CREATE SCHEMA "{s}"; COMMENT ON SCHEMA "{s}" IS \'{m} schema\';'
    'CREATE TABLE "{s}"."{t}" (id int PRIMARY KEY, "{c}" text); COMMENT ON TABLE "{s}"."{t}" IS \'{m}\';'
    'COMMENT ON COLUMN "{s}"."{t}"."{c}" IS \'{m} col\';'
    "INSERT INTO \"{s}\".\"{t}\" VALUES (1, '{v}'), (2, '{m}'), (3, NULL);"
    'CREATE FUNCTION "{s}"."{f}"() RETURNS text LANGUAGE sql AS $$ SELECT \'{v}\'::text $$;'
    'COMMENT ON FUNCTION "{s}"."{f}"() IS \'{m} fn\';'
)
# SQL_ASCII stores bytes: some valid UTF-8, some Latin-1 (not UTF-8), written as they are.
_SQL_ASCII = (
    b'CREATE SCHEMA "caf\xc3\xa9"; CREATE TABLE "caf\xc3\xa9"."men\xc3\xbc" (id int PRIMARY KEY, "pr\xe9" text);'
    b"INSERT INTO \"caf\xc3\xa9\".\"men\xc3\xbc\" VALUES (1, 'cr\xc3\xa8me'), (2, 'br\xfbl\xe9e');"
    b'COMMENT ON TABLE "caf\xc3\xa9"."men\xc3\xbc" IS \'l\xe9gende \xe2\x82\xac\';'
    b'CREATE FUNCTION "caf\xc3\xa9"."f\xe9"() RETURNS text LANGUAGE sql AS $$ SELECT \'caf\xe9\'::text $$;'
)
# Shared text, written from the database named first (client UTF8: the server converts it to that
# database's encoding, and the shared catalogs keep those bytes).
_SHARED = (
    (
        "enc_latin1",
        'CREATE ROLE "Jürgen" LOGIN; COMMENT ON ROLE "Jürgen" IS \'Müller\';'
        "ALTER ROLE \"Jürgen\" SET application_name = 'Größe';"
        "COMMENT ON DATABASE enc_latin1 IS 'Größe'; ALTER DATABASE enc_latin1 SET application_name = 'Straße';"
        'ALTER TABLE "größe"."maße" OWNER TO "Jürgen";',
    ),
    (
        "enc_eucjp",
        'CREATE ROLE "山田"; COMMENT ON ROLE "山田" IS \'社員\';'
        "COMMENT ON DATABASE enc_eucjp IS '日本語のデータベース';"
        'ALTER TABLE "日本"."名前" OWNER TO "山田";',
    ),
    # valid UTF-8 from a UTF8 database: carried as it is, never a finding
    (
        "enc_utf8",
        'CREATE ROLE "José"; COMMENT ON ROLE "José" IS \'café ☕\'; ALTER ROLE "José" SET application_name = \'José\';'
        'COMMENT ON DATABASE enc_utf8 IS \'Ελληνικά\'; ALTER TABLE "ελληνικά"."таблица" OWNER TO "José";',
    ),
)
DATABASES = ("enc_sqlascii", *_WORDS)
# The objects the rule must name (escaped bytes, as reports show them) and the ones it must not.
FLAGGED = {"role J\\xfcrgen", "role \\xbb\\xb3\\xc5\\xc4", "database enc_latin1", "database enc_eucjp"}
NOT_FLAGGED = ("José", "enc_utf8", "enc_win1252", "enc_sqlascii")


@dataclass
class Pair:
    source: LabServer
    target: LabServer
    work: Path
    fixed: bool = False


def _pgshift(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, timeout=600)


def _clean(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert "internal error" not in result.stderr, result.stderr


def _build_source(server: LabServer) -> None:
    for name in DATABASES:
        encoding = "SQL_ASCII" if name == "enc_sqlascii" else _WORDS[name][0]
        server.execute(f"CREATE DATABASE {name} ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    with psycopg.connect(server.conninfo("enc_sqlascii"), autocommit=True, client_encoding="SQL_ASCII") as conn:
        conn.execute(_SQL_ASCII)
    for name, (_encoding, words) in _WORDS.items():
        with psycopg.connect(server.conninfo(name), autocommit=True, client_encoding="UTF8") as conn:
            conn.execute(_OBJECTS.format(**words).encode())
    for name, statements in _SHARED:
        with psycopg.connect(server.conninfo(name), autocommit=True, client_encoding="UTF8") as conn:
            conn.execute(statements.encode())


@pytest.fixture(scope="module", params=[(12, 17), (16, 18)], ids=lambda p: f"{p[0]}to{p[1]}")
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    source_major, target_major = request.param
    source = start(source_major)
    try:
        target = start(target_major)
        try:
            _build_source(source)
            yield Pair(source, target, tmp_path_factory.mktemp(f"enc{source_major}to{target_major}"))
        finally:
            target.stop()
    finally:
        source.stop()


# --- the tests' own reads: every text as bytes, no conversion anywhere ------------------------------


def _raw(server: LabServer, dbname: str) -> psycopg.Connection[Any]:
    # client_encoding SQL_ASCII: the server sends its bytes unconverted, psycopg returns them as bytes.
    return psycopg.connect(server.conninfo(dbname), autocommit=True, client_encoding="SQL_ASCII")


_USER = b"n.nspname NOT IN ('pg_catalog', 'information_schema', 'public') AND n.nspname !~ '^pg_'"


def _database_bytes(server: LabServer, dbname: str) -> dict[str, Any]:
    with _raw(server, dbname) as conn:
        out: dict[str, Any] = {}
        out["database"] = conn.execute(
            b"SELECT pg_encoding_to_char(encoding)::text, datcollate::text, shobj_description(oid, 'pg_database')"
            b" FROM pg_database WHERE datname = current_database()"
        ).fetchall()
        out["schemas"] = conn.execute(
            b"SELECT nspname::text, obj_description(n.oid, 'pg_namespace') FROM pg_namespace n WHERE " + _USER
        ).fetchall()
        out["relations"] = sorted(
            conn.execute(
                b"SELECT n.nspname::text, c.relname::text, c.relkind::text, obj_description(c.oid, 'pg_class'),"
                b" pg_get_userbyid(c.relowner)::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                b" WHERE " + _USER
            ).fetchall()
        )
        out["columns"] = sorted(
            conn.execute(
                b"SELECT c.relname::text, a.attname::text, col_description(c.oid, a.attnum) FROM pg_attribute a"
                b" JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
                b" WHERE a.attnum > 0 AND c.relkind = 'r' AND " + _USER
            ).fetchall()
        )
        out["functions"] = sorted(
            conn.execute(
                b"SELECT p.proname::text, p.prosrc, obj_description(p.oid, 'pg_proc') FROM pg_proc p"
                b" JOIN pg_namespace n ON n.oid = p.pronamespace WHERE " + _USER
            ).fetchall()
        )
        tables = conn.execute(
            b"SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c"
            b" JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND " + _USER
        ).fetchall()
        out["rows"] = {
            name: conn.execute(b"SELECT t::text FROM " + name + b" t ORDER BY 1").fetchall() for (name,) in tables
        }
    assert out["rows"], f"{dbname}: no tables read"
    return out


def _cluster_bytes(server: LabServer) -> dict[str, Any]:
    with _raw(server, "postgres") as conn:
        roles = conn.execute(
            b"SELECT rolname::text, rolcanlogin, shobj_description(oid, 'pg_authid'), rolconfig::text"
            b" FROM pg_roles WHERE rolname !~ '^pg_' AND oid <> 10 ORDER BY 1"
        ).fetchall()
        databases = conn.execute(
            b"SELECT d.datname::text, shobj_description(d.oid, 'pg_database'), s.setconfig::text FROM pg_database d"
            b" LEFT JOIN pg_db_role_setting s ON s.setdatabase = d.oid AND s.setrole = 0"
            b" WHERE d.datname LIKE 'enc_%' ORDER BY 1"
        ).fetchall()
    return {"roles": roles, "databases": databases}


# --- the story -----------------------------------------------------------------------------------


def test_shared_text_the_target_refuses_is_a_blocker_and_migrate_touches_nothing(pair: Pair) -> None:
    if pair.fixed:
        pytest.skip("the source was fixed by an earlier test of this pair")
    src, tgt = pair.source.conninfo(), pair.target.conninfo()
    console = _pgshift("check", src, tgt)
    _clean(console)
    assert console.returncode == 2, console.stdout + console.stderr
    # readable: the escaped bytes, how they read in the source's other encodings, the fix
    for shown in ("J\\xfcrgen", "Jürgen", "山田", "\\xbb\\xb3\\xc5\\xc4", "Größe", "RENAME", RULE):
        assert shown in console.stdout, shown

    as_json = _pgshift("check", src, tgt, "--json")
    _clean(as_json)
    assert as_json.returncode == 2
    hits = [f for f in json.loads(as_json.stdout)["findings"] if f["rule_id"] == RULE]
    assert {h["object"] for h in hits} == FLAGGED, hits
    assert all(h["severity"] == "blocker" and h["remediation"] for h in hits)
    assert not [h for h in hits if any(n in h["object"] for n in NOT_FLAGGED)]
    assert not [h for h in hits if "José" in h["message"]]
    parts = {(h["object"], h["message"].split(": its ", 1)[1].split(" ")[0]) for h in hits}
    assert {("role J\\xfcrgen", "name"), ("role J\\xfcrgen", "comment"), ("role J\\xfcrgen", "setting")} <= parts
    assert {("database enc_latin1", "comment"), ("database enc_latin1", "setting")} <= parts
    assert {("role \\xbb\\xb3\\xc5\\xc4", "name"), ("database enc_eucjp", "comment")} <= parts

    before = _cluster_bytes(pair.target)
    refused = _pgshift("migrate", src, tgt, "--json", "--workdir", str(pair.work / "refused"))
    _clean(refused)
    assert refused.returncode == 2, refused.stderr
    assert RULE in refused.stdout + refused.stderr
    assert _cluster_bytes(pair.target) == before  # not half done: nothing at all


def _fix_statement(hit: dict[str, Any], new_name: str) -> tuple[str, str]:
    """The database and statement a finding's fix names, as a user would run them."""
    fix = hit["remediation"]
    renamed = re.search(r"psql -d (\S+) -c '(.+?)' ", fix)
    if renamed:
        return renamed.group(1), renamed.group(2).replace("new_name", new_name)
    where = re.search(r"from database (\S+) ", fix)
    assert where, fix
    return where.group(1), fix.split(": ", 1)[1].split(" (or RESET")[0]


@pytest.fixture
def fixed(pair: Pair) -> Pair:
    """The source after the fixes check gives, run as it gives them (the renames first)."""
    if pair.fixed:
        return pair
    report = _pgshift("check", pair.source.conninfo(), pair.target.conninfo(), "--json")
    hits = [f for f in json.loads(report.stdout)["findings"] if f["rule_id"] == RULE]
    renames = {"role J\\xfcrgen": "juergen", "role \\xbb\\xb3\\xc5\\xc4": "yamada"}
    ordered = sorted(hits, key=lambda h: ": its name" not in h["message"])
    for hit in ordered:
        if "renamed first" in hit["remediation"]:
            continue  # a comment or setting of a role renamed above: set again under the new name below
        dbname, statement = _fix_statement(hit, renames.get(hit["object"], "x"))
        with psycopg.connect(pair.source.conninfo(dbname), autocommit=True, client_encoding="UTF8") as conn:
            conn.execute(statement.encode())
    pair.source.execute(
        "COMMENT ON ROLE juergen IS 'Müller'; ALTER ROLE juergen SET application_name = 'Größe';"
        "COMMENT ON ROLE yamada IS '社員'"
    )
    pair.fixed = True
    return pair


def test_the_rule_is_silent_once_the_source_is_fixed_as_its_findings_say(fixed: Pair) -> None:
    for args in ((), ("--json",)):
        result = _pgshift("check", fixed.source.conninfo(), fixed.target.conninfo(), *args)
        _clean(result)
        assert result.returncode in (0, 1), result.stdout + result.stderr  # warnings (SQL_ASCII…), no blocker
    assert RULE not in _pgshift("check", fixed.source.conninfo(), fixed.target.conninfo()).stdout
    report = json.loads(result.stdout)
    assert RULE in {r["id"] for r in report["rules"]}  # it ran, and found nothing
    assert not [f for f in report["findings"] if f["rule_id"] == RULE]
    assert not [f for f in report["findings"] if f["severity"] == "blocker"]
    # the inventory shows the fixed shared text readably
    comments = {d["name"]: d["comment"] for d in report["source"]["databases"]}
    assert comments["enc_latin1"] == "Größe" and comments["enc_eucjp"] == "日本語のデータベース"
    assert comments["enc_utf8"] == "Ελληνικά"


def test_every_encoding_moves_byte_for_byte_and_verifies(fixed: Pair) -> None:
    src, tgt = fixed.source.conninfo(), fixed.target.conninfo()
    done = _pgshift("migrate", src, tgt, "--json", "--workdir", str(fixed.work / "run"))
    _clean(done)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["verify"]["equal"]

    for args in ((), ("--json",)):
        checked = _pgshift("verify", src, tgt, *args)
        _clean(checked)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    assert json.loads(checked.stdout)["equal"] is True

    assert _cluster_bytes(fixed.target) == _cluster_bytes(fixed.source)
    roles = {r[0] for r in _cluster_bytes(fixed.target)["roles"]}
    assert {b"juergen", b"yamada", "José".encode()} <= roles
    for name in DATABASES:
        assert _database_bytes(fixed.target, name) == _database_bytes(fixed.source, name), name
    # the bytes are the source's own, in each database's encoding (not converted on the way)
    latin1 = _database_bytes(fixed.target, "enc_latin1")["rows"]
    assert latin1[b'"gr\xf6\xdfe"."ma\xdfe"'][0] == (b'(1,"' + "Ærø ½-free ÿ".encode("latin-1") + b'")',)
    sqlascii = _database_bytes(fixed.target, "enc_sqlascii")
    assert any(b"br\xfbl\xe9e" in row[0] for rows in sqlascii["rows"].values() for row in rows)
