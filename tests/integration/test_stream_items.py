"""Stream mode runs the post-data items of small tables several to a transaction; when the target
refuses one, the error names that item, and the others are in, each with its progress record, so a
resume does only what is left."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from pgshift.catalog.session import connect
from pgshift.errors import StepFailed
from pgshift.migrate import streaming

TABLES = 6


def _item(dump_id: int, table_dump_id: int, name: str, sql: str) -> bytes:
    return (
        f"--\n-- TOC entry {dump_id} (class 1259 OID {dump_id})\n-- Dependencies: {table_dump_id}\n"
        f"-- Name: {name}; Type: INDEX; Schema: public; Owner: postgres\n--\n\n{sql}\n\n"
    ).encode()


def test_a_refused_item_in_a_batch_is_named_and_the_others_are_kept(servers: Any) -> None:
    source, target = servers.get(15), servers.get(17)
    db = "stream_items"
    for server in (source, target):
        server.execute(f"DROP DATABASE IF EXISTS {db}")
        server.execute(f"CREATE DATABASE {db}")
    ddl = "".join(f"CREATE TABLE t{i} (id int, v text);" for i in range(TABLES))
    source.execute(ddl + "".join(f"INSERT INTO t{i} VALUES (1, 'a'), (2, 'b');" for i in range(TABLES)), db)
    target.execute(ddl, db)
    with connect(source.endpoint("source"), db) as conn:
        rows = conn.execute("SELECT relname, oid::int8 AS oid FROM pg_class WHERE relname ~ '^t[0-9]$'").fetchall()
    oids = {r["relname"]: r["oid"] for r in rows}
    table_ids = {100 + i: oids[f"t{i}"] for i in range(TABLES)}
    script = b"SET default_tablespace = '';\n\n"
    for i in range(TABLES):
        column = "nope" if i == 3 else "v"
        script += _item(200 + i, 100 + i, f"t{i}_v", f"CREATE INDEX t{i}_v ON public.t{i} USING btree ({column});")

    with pytest.raises(StepFailed) as failed:
        streaming.stream_database(
            source.endpoint("source"),
            target.endpoint("target"),
            db,
            db,
            tables=frozenset(table_ids.values()),
            table_ids=table_ids,
            sequences=frozenset(),
            large_objects=False,
            post_data=script,
            snapshot=None,
            jobs=1,
            cancel=threading.Event(),
        )
    assert "INDEX t3_v" in failed.value.message and 'column "nope" does not exist' in failed.value.message
    with target.connect(db) as conn:
        made = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename ~ '^t[0-9]$'")}
        done = {r[0] for r in conn.execute("SELECT id FROM pgshift_stream.done WHERE id LIKE 'item:%'")}
        rows = conn.execute(
            "SELECT sum(n) FROM ("
            + " UNION ALL ".join(f"SELECT count(*) AS n FROM t{i}" for i in range(TABLES))
            + ") x"
        ).fetchone()
    # Every item before the refused one in the batch is in with its record; none is half there.
    assert {f"item:{200 + i}" for i in range(TABLES) if f"t{i}_v" in made} == done
    assert "t3_v" not in made and {"t0_v", "t1_v", "t2_v"} <= made
    assert rows == (2 * TABLES,)
