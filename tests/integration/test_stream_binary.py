"""Stream mode's binary COPY: each type it allows in binary format (catalog/streaming.BINARY_TYPES)
arrives with the same values, with its edge values, as a plain column, an array and a domain —
from the oldest major to the newest and on the benchmark's pair. Tables with any other type, and
moves to an older major, go as text. The tests read both servers with their own queries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pgshift.catalog import streaming as q
from pgshift.catalog.session import connect
from pgshift.migrate import streaming
from pgshift.migrate.journal import Journal
from tests.fixtures.moves import move, new_database

# Values of each type, edge cases first; every table also gets a NULL row.
VALUES: dict[str, list[str]] = {
    "bool": ["true", "false"],
    "bytea": ["''", "'\\x00ff00'::bytea", "decode(repeat('00ff', 5000), 'hex')"],
    "char": ["'a'", "''''", "'z'"],
    "name": ["''", "'a name'", "repeat('n', 63)"],
    "int2": ["-32768", "0", "32767"],
    "int4": ["-2147483648", "0", "2147483647"],
    "int8": ["-9223372036854775808", "0", "9223372036854775807"],
    "oid": ["0", "4294967295", "16384"],
    "float4": ["'NaN'", "'Infinity'", "'-Infinity'", "'-0'", "1.17549435e-38", "3.4028235e38", "0.1"],
    "float8": [
        "'NaN'",
        "'Infinity'",
        "'-Infinity'",
        "'-0'",
        "2.2250738585072014e-308",
        "1.7976931348623157e308",
        "0.1",
    ],
    "numeric": [
        "'NaN'",
        "0",
        "-0.000000000000000000000000000001",
        "123456789012345678901234567890.123456789",
        "1e-100",
    ],
    "text": ["''", "'tab\tnewline\nbackslash\\ quote'''", "'日本語 ünïcödé 🐘'", "repeat('x', 100000)"],
    "varchar": ["''", "'v'", "repeat('é', 300)"],
    "bpchar": ["''", "'  padded  '", "'é'"],
    "date": ["'infinity'", "'-infinity'", "'4713-01-01 BC'", "'5874897-12-31'", "'2000-02-29'"],
    "time": ["'00:00'", "'24:00'", "'23:59:59.999999'"],
    "timetz": ["'00:00+15:59'", "'24:00-15:59'", "'12:34:56.789+05:30'"],
    "timestamp": ["'infinity'", "'-infinity'", "'4713-01-01 00:00 BC'", "'294276-12-31 23:59:59.999999'"],
    "timestamptz": ["'infinity'", "'-infinity'", "'2000-01-01 00:00+14'", "'1901-12-13 20:45:52+00'"],
    "interval": ["'0'", "'-178000000 years'", "'178000000 years'", "'1 mon -2 days 03:04:05.000006'"],
    "uuid": ["'00000000-0000-0000-0000-000000000000'", "'ffffffff-ffff-ffff-ffff-ffffffffffff'"],
    "inet": ["'0.0.0.0/0'", "'192.168.1.5/24'", "'::ffff:1.2.3.4'", "'2001:db8::1/64'"],
    "cidr": ["'0.0.0.0/0'", "'10.0.0.0/8'", "'2001:db8::/32'"],
    "macaddr": ["'00:00:00:00:00:00'", "'ff:ff:ff:ff:ff:ff'"],
    "macaddr8": ["'00:00:00:00:00:00:00:00'", "'08:00:2b:01:02:03:04:05'"],
    "json": ["'{}'", '\'{"a": [1, 2.50, null], "a": "dup key kept"}\'', "'\"\\u0000 é\"'", "'  [ ]  '"],
    "jsonb": ["'{}'", '\'{"a": [1, 2.50, null], "b": {"c": "é"}}\'', "'1e400'", "'[]'"],
    "bit": ["B'1'", "B'0'"],
    "varbit": ["B''", "B'10101'", "repeat('1', 1000)::varbit"],
}

# The type each column is declared with (a length or precision where the type takes one).
DECLARED = {"char": '"char"', "bit": "bit(1)", "varchar": "varchar(300)", "bpchar": "char(12)", "numeric": "numeric"}

# Tables that must go as text: a type whose binary form holds an OID, a composite, an array of an
# enum, a range, money.
TEXT_TABLES = {
    "t_regclass": "CREATE TABLE t_regclass (id int, v regclass); INSERT INTO t_regclass VALUES (1, 'pg_class')",
    "t_composite": "CREATE TYPE pair AS (a int, b text); CREATE TABLE t_composite (id int, v pair);"
    " INSERT INTO t_composite VALUES (1, ROW(1, 'x'))",
    "t_enum_array": "CREATE TYPE mood AS ENUM ('sad', 'ok'); CREATE TABLE t_enum_array (id int, v mood[]);"
    " INSERT INTO t_enum_array VALUES (1, '{ok,sad}')",
    "t_range": "CREATE TABLE t_range (id int, v int4range); INSERT INTO t_range VALUES (1, '[1,5)')",
    "t_mixed": "CREATE TABLE t_mixed (id int, ok text, v regtype); INSERT INTO t_mixed VALUES (1, 'x', 'int4')",
    # Its binary form counts lc_monetary's smallest unit: another currency on the target would read it
    # as another amount, where its text form is refused.
    "t_money": "CREATE TABLE t_money (id int, v money); INSERT INTO t_money VALUES (1, 12.34), (2, -0.01)",
}

PAIRS = [(10, 18), (13, 17)]


def _schema() -> str:
    parts = []
    for name, values in VALUES.items():
        declared = DECLARED.get(name, name)
        parts.append(f"CREATE DOMAIN d_{name} AS {declared};")
        parts.append(f"CREATE TABLE t_{name} (id int, v {declared}, a {declared}[], d d_{name});")
        rows = [f"({i}, {v}, ARRAY[{v}, NULL]::{declared}[], {v})" for i, v in enumerate(values, 1)]
        rows.append(f"({len(values) + 1}, NULL, NULL, NULL)")
        parts.append(f"INSERT INTO t_{name} VALUES {', '.join(rows)};")
    parts.extend(f"{ddl};" for ddl in TEXT_TABLES.values())
    return "\n".join(parts)


def _rendered(conn: Any, table: str, column: str) -> list[str | None]:
    """The column's values by id in a form that is the same text on every major: floats by their
    binary form (their text form changed in 12), everything else as text in ISO and UTC."""
    kind = table.removeprefix("t_")
    if kind in ("float4", "float8"):
        if column == "a":
            expr = f"(SELECT string_agg(coalesce(encode({kind}send(x), 'hex'), 'null'), ',') FROM unnest(a) x)"
        else:
            expr = f"encode({kind}send({column}::{kind}), 'hex')"
    else:
        expr = f"{column}::text"
    return [r[0] for r in conn.execute(f"SELECT {expr} FROM {table} ORDER BY id").fetchall()]


def _stream(source: Any, target: Any, db: str, workdir: Path, **options: Any) -> dict[str, Any]:
    """Move ``db`` in stream mode; the stream-data step's record of it."""
    move(source, target, db, workdir, mode="stream", **options)
    return dict(Journal.load(workdir).step(f"db:{db}:stream-data").artifacts)


@pytest.fixture(scope="module", params=PAIRS, ids=lambda p: f"{p[0]}to{p[1]}")
def moved(request: Any, servers: Any, tmp_path_factory: Any) -> tuple[Any, Any, str, dict[str, Any]]:
    source_major, target_major = request.param
    source, target = servers.get(source_major), servers.get(target_major)
    db = f"binary_{source_major}_{target_major}"
    new_database(source, target, db)
    with source.connect(db) as conn:
        conn.execute("SET timezone = 'UTC'")
        conn.execute(_schema())
    copied = _stream(source, target, db, Path(tmp_path_factory.mktemp("binary")) / "run")
    return source, target, db, copied


def _decisions(source: Any, target: Any, db: str) -> dict[str, bool]:
    """Which tables stream mode copies in binary format between these two servers."""
    with connect(source.endpoint("source"), db) as sconn, connect(target.endpoint("target"), db) as tconn:
        rows = sconn.execute("SELECT oid::int8 AS oid FROM pg_class WHERE relname LIKE 't\\_%' AND relkind = 'r'")
        info = q.tables_to_copy(sconn, frozenset(r["oid"] for r in rows))
        chosen = streaming.with_binary(info, q.target_column_types(tconn, info))
    return {t.name: t.binary for t in chosen}


@pytest.mark.parametrize("kind", sorted(VALUES))
def test_each_allowed_type_moves_in_binary_with_the_same_values(
    moved: tuple[Any, Any, str, dict[str, Any]], kind: str
) -> None:
    source, target, db, _ = moved
    assert _decisions(source, target, db)[f"t_{kind}"], f"t_{kind} should be copied in binary format"
    with source.connect(db) as sconn, target.connect(db) as tconn:
        for conn in (sconn, tconn):
            conn.execute("SET timezone = 'UTC'; SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres'")
            conn.execute("SET extra_float_digits = 3")
        for column in ("v", "a", "d"):
            want = _rendered(sconn, f"t_{kind}", column)
            assert len(want) == len(VALUES[kind]) + 1
            assert _rendered(tconn, f"t_{kind}", column) == want, (kind, column)


def test_other_types_go_as_text(moved: tuple[Any, Any, str, dict[str, Any]]) -> None:
    source, target, db, copied = moved
    decisions = _decisions(source, target, db)
    assert sorted(name for name in TEXT_TABLES if decisions[name]) == []
    assert copied["tables_binary"] == len(VALUES)
    assert copied["tables"] == len(VALUES) + len(TEXT_TABLES)
    with source.connect(db) as sconn, target.connect(db) as tconn:
        for table in TEXT_TABLES:
            query = f"SELECT v::text FROM {table} ORDER BY id"
            assert tconn.execute(query).fetchall() == sconn.execute(query).fetchall()


def test_a_move_to_an_older_major_goes_as_text(servers: Any, tmp_path: Path) -> None:
    newer, older = servers.get(17), servers.get(13)
    db = "binary_downgrade"
    new_database(
        newer,
        older,
        db,
        "CREATE TABLE t (id int PRIMARY KEY, n numeric, at timestamptz, j jsonb);"
        "INSERT INTO t SELECT g, g / 7.0, '2000-01-01'::timestamptz + g * interval '1 hour', jsonb_build_object('g', g)"
        " FROM generate_series(1, 1000) g",
    )
    # verify=False: schema public's 15+ default (no CREATE for PUBLIC) does not reach a 13 target,
    # which check warns of (public-schema-older-target) and verify reports.
    copied = _stream(newer, older, db, tmp_path / "run", allow_downgrade=True, verify=False)
    assert (copied["tables"], copied["tables_binary"]) == (1, 0)
    query = "SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM t"
    with newer.connect(db) as a, older.connect(db) as b:
        assert a.execute(query).fetchone() == b.execute(query).fetchone()
