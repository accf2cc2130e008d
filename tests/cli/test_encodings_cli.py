"""Every server encoding: check and migrate read, report and move databases whose names, comments
and data are outside ASCII — SQL_ASCII with bytes that are valid UTF-8 and bytes that are not,
LATIN1, WIN1252, EUC_JP — and the tests' own comparison finds the copy equal."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import psycopg

from tests.fixtures.compare import assert_same, snapshot

# (database, encoding, the client encoding the statements below are written in, statements)
_DATABASES: list[tuple[str, str, str, bytes]] = [
    (
        "enc_ascii",
        "SQL_ASCII",
        "SQL_ASCII",
        b'CREATE SCHEMA "caf\xc3\xa9"; CREATE TABLE "caf\xc3\xa9"."men\xc3\xbc" (id int PRIMARY KEY, t text);'
        b"INSERT INTO \"caf\xc3\xa9\".\"men\xc3\xbc\" VALUES (1, 'cr\xc3\xa8me'), (2, 'br\xfbl\xe9e');"
        b'CREATE TABLE public."bad\xe9" (x text); INSERT INTO public."bad\xe9" VALUES (\'\xff\xfe\');'
        b"COMMENT ON TABLE public.\"bad\xe9\" IS 'l\xe9gende \xe2\x82\xac';"
        b'CREATE VIEW public."vue\xe9" AS SELECT * FROM public."bad\xe9";'
        b"CREATE FUNCTION public.\"f\xe9\"() RETURNS text LANGUAGE sql AS $$ SELECT 'caf\xe9'::text $$;",
    ),
    (
        "enc_latin1",
        "LATIN1",
        "UTF8",
        'CREATE TABLE "größe" (id int PRIMARY KEY, t text); INSERT INTO "größe" VALUES (1, \'façade\');'
        "COMMENT ON TABLE \"größe\" IS 'Maße und Gewichte';".encode(),
    ),
    (
        "enc_win1252",
        "WIN1252",
        "UTF8",
        'CREATE TABLE "prix€" (id int PRIMARY KEY, t text); INSERT INTO "prix€" VALUES (1, \'“quoted” – 10 €\');'
        'CREATE INDEX "idx_€" ON "prix€" (t);'.encode(),
    ),
    (
        "enc_eucjp",
        "EUC_JP",
        "UTF8",
        'CREATE TABLE "日本語" (id int PRIMARY KEY, "名前" text); INSERT INTO "日本語" VALUES (1, \'こんにちは\');'
        'COMMENT ON COLUMN "日本語"."名前" IS \'名前の列\';'.encode(),
    ),
]


def _pgshift(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, timeout=300)


def test_databases_of_every_encoding_are_checked_and_moved_without_loss(fresh_server: Any, tmp_path: Any) -> None:
    source, target = fresh_server(12), fresh_server(17)
    for name, encoding, client, statements in _DATABASES:
        source.execute(f"CREATE DATABASE {name} ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
        with psycopg.connect(source.conninfo(name), autocommit=True, client_encoding=client) as conn:
            conn.execute(statements)
    names = [d[0] for d in _DATABASES]
    selection = [a for n in names for a in ("-d", n)]
    check = _pgshift("check", source.conninfo(), target.conninfo(), "--json", *selection)
    assert check.returncode in (0, 1), check.stderr  # findings, never a crash
    assert "Traceback" not in check.stderr and "internal error" not in check.stderr
    findings = json.loads(check.stdout)
    assert not [f for f in findings.get("findings", []) if f.get("severity") == "blocker"], findings
    done = _pgshift(
        "migrate", source.conninfo(), target.conninfo(), "--json", "--workdir", str(tmp_path / "run"), *selection
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["verify"]["equal"]
    for name in names:
        assert_same(snapshot(source, name), snapshot(target, name))
    with target.connect("enc_ascii") as conn:  # bytes that are not UTF-8 arrived byte for byte
        conn.execute("SET client_encoding = 'SQL_ASCII'")
        row = conn.execute(b"SELECT convert_to(x, 'SQL_ASCII') FROM public.\"bad\xe9\"").fetchone()
    assert row == (b"\xff\xfe",)
