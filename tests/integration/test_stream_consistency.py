"""Stream mode copies each database as of one instant, whatever is written meanwhile, and a large
table split into ranges arrives exactly once.

The writer commits one row into each of two tables per transaction (same id), so in any one
snapshot the tables hold the same ids 1..k with no gap; copies taken at different moments would
differ. The tests' own queries check that on the target.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgshift.catalog.session import connect
from pgshift.migrate import MigrateOptions, run_migration, streaming


def test_a_source_under_write_load_arrives_as_of_one_snapshot(fresh_server: Any, tmp_path: Path) -> None:
    source, target = fresh_server(15), fresh_server(17)
    source.execute("CREATE DATABASE busy")
    source.execute(
        "CREATE TABLE a (id int PRIMARY KEY, pad text); CREATE TABLE b (id int PRIMARY KEY, pad text);"
        "INSERT INTO a SELECT g, repeat('x', 200) FROM generate_series(1, 200000) g;"
        "INSERT INTO b SELECT g, repeat('y', 200) FROM generate_series(1, 200000) g;",
        "busy",
    )
    stop = threading.Event()
    written = [200000]

    def write() -> None:
        with psycopg.connect(source.conninfo("busy"), autocommit=True) as conn:
            while not stop.is_set():
                n = written[0] + 1
                with conn.transaction():
                    conn.execute("INSERT INTO a VALUES (%s, 'w')", [n])
                    conn.execute("INSERT INTO b VALUES (%s, 'w')", [n])
                written[0] = n

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        result = run_migration(
            MigrateOptions(
                source=source.endpoint("source"),
                target=target.endpoint("target"),
                databases=("busy",),
                workdir=tmp_path / "run",
                mode="stream",
                verify=False,  # the source moves on: verify would count what came after the snapshot
            )
        )
    finally:
        stop.set()
        writer.join(timeout=30)
    assert result.ok
    with target.connect("busy") as conn:
        a = conn.execute("SELECT count(*), min(id), max(id) FROM a").fetchone()
        b = conn.execute("SELECT count(*), min(id), max(id) FROM b").fetchone()
    assert a == b, (a, b)  # one instant: both tables stop at the same transaction
    assert a[0] == a[2] and a[1] == 1  # ids 1..k without a gap: nothing after the snapshot, nothing lost
    assert 200000 <= a[0] < written[0], (a, written[0])  # the writer went on past the snapshot


@pytest.mark.parametrize(
    ("source_major", "ddl"),
    [
        (16, "CREATE TABLE big (id int, v text)"),  # 14+: ranges of blocks
        (13, "CREATE TABLE big (id int PRIMARY KEY, v text)"),  # before 14: ranges of the integer key
    ],
    ids=["blocks", "key"],
)
def test_a_table_split_into_ranges_arrives_exactly_once_and_a_resume_redoes_only_what_is_left(
    fresh_server: Any, monkeypatch: Any, source_major: int, ddl: str
) -> None:
    source, target = fresh_server(source_major), fresh_server(17)
    source.execute("CREATE DATABASE split")
    source.execute(f"{ddl}; INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 300000) g", "split")
    # Deleted rows leave holes in the blocks the ranges cover: they must not shift rows between ranges.
    source.execute("DELETE FROM big WHERE id % 7 = 0", "split")
    source.execute("ANALYZE big", "split")  # key ranges need the statistics to show rows in key order
    target.execute("CREATE DATABASE split")
    target.execute(ddl, "split")
    monkeypatch.setattr(streaming, "SPLIT_BYTES", 2 << 20)
    with connect(source.endpoint("source"), "split") as conn:
        oid = conn.execute("SELECT 'public.big'::regclass::oid::int8 AS o").fetchone()["o"]  # type: ignore[index]

    def copy(cancel: threading.Event) -> streaming.StreamResult:
        return streaming.stream_database(
            source.endpoint("source"),
            target.endpoint("target"),
            "split",
            "split",
            tables=frozenset({oid}),
            table_ids={1: oid},
            sequences=frozenset(),
            large_objects=False,
            post_data=b"",
            snapshot=None,
            jobs=2,
            cancel=cancel,
        )

    first = copy(threading.Event())
    assert first.units > 2, first  # really split
    with target.connect("split") as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT id) FROM big").fetchone() == (257143, 257143)
        # A resume after a kill: half the ranges' records gone as if never committed (rows too).
        done = [r[0] for r in conn.execute("SELECT id FROM pgshift_stream.done ORDER BY id").fetchall()]
        redo = [d for d in done if d.startswith("table:")][::2]
        for unit in redo:
            spec = conn.execute("SELECT spec FROM pgshift_stream.unit WHERE id = %s", [unit]).fetchone()[0]
            lo, hi = spec["lo"], spec["hi"]
            # The rows of that range on the source: the same ids, removed on the target.
            if spec.get("key"):
                assert spec["key"] == "id"
                where = ["true"] + (["id >= %s"] if lo is not None else []) + (["id < %s"] if hi is not None else [])
                params = [v for v in (lo, hi) if v is not None]
            else:
                where = ["ctid >= %s::tid"] + (["ctid < %s::tid"] if hi is not None else [])
                params = [f"({lo},0)", *([f"({hi},0)"] if hi is not None else [])]
            with source.connect("split") as sconn:
                query = "SELECT id FROM big WHERE " + " AND ".join(where)
                ids = [r[0] for r in sconn.execute(query, params).fetchall()]
            assert ids
            conn.execute("DELETE FROM big WHERE id = ANY(%s)", [ids])
            conn.execute("DELETE FROM pgshift_stream.done WHERE id = %s", [unit])
    again = copy(threading.Event())
    assert again.units == len(redo) and again.units_skipped == first.units - len(redo)
    with target.connect("split") as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT id) FROM big").fetchone() == (257143, 257143)


def test_a_key_is_split_into_ranges_only_when_the_rows_lie_in_its_order(servers: Any) -> None:
    """Before 14 a range is read through the key's index: rows stored out of the key's order would
    make the planner read the whole table for each range, so such a table is copied whole."""
    from pgshift.catalog import streaming as q

    source = servers.get(13)
    db = "split_order"
    source.execute(f"DROP DATABASE IF EXISTS {db}")
    source.execute(f"CREATE DATABASE {db}")
    source.execute(
        "CREATE TABLE ordered (id int PRIMARY KEY, v text); CREATE TABLE shuffled (id int PRIMARY KEY, v text);"
        "INSERT INTO ordered SELECT g, md5(g::text) FROM generate_series(1, 20000) g;"
        "INSERT INTO shuffled SELECT g, md5(g::text) FROM generate_series(1, 20000) g ORDER BY random();"
        "CREATE TABLE unanalyzed (id int PRIMARY KEY); INSERT INTO unanalyzed SELECT generate_series(1, 100);"
        "ANALYZE ordered; ANALYZE shuffled",
        db,
    )
    with connect(source.endpoint("source"), db) as conn:
        rows = conn.execute("SELECT oid::int8 AS oid FROM pg_class WHERE relkind = 'r' AND relnamespace = 2200")
        tables = {t.name: t for t in q.tables_to_copy(conn, frozenset(r["oid"] for r in rows))}
        assert {t.key for t in tables.values()} == {"id"}
        assert q.key_bounds(conn, tables["ordered"]) == (1, 20000)
        assert q.key_bounds(conn, tables["shuffled"]) is None
        assert q.key_bounds(conn, tables["unanalyzed"]) is None
