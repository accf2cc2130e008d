"""Stream mode analyzes each table as soon as its data and its indexes are in, beside the copies
still running, and the analyze step then does only the rest (partitioned parents, materialized
views, the catalogs). The statistics are read on the target by the test's own queries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pgshift.migrate.journal import Journal
from tests.fixtures.moves import move, new_database

SCHEMA = """
CREATE TABLE big (id int PRIMARY KEY, v text, n numeric);
CREATE INDEX big_lower ON big (lower(v));
INSERT INTO big SELECT g, 'Value ' || (g % 50), g / 3.0 FROM generate_series(1, 200000) g;
CREATE TABLE measure (id int, at date, v int) PARTITION BY RANGE (at);
CREATE TABLE measure_1 PARTITION OF measure FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
CREATE TABLE measure_2 PARTITION OF measure FOR VALUES FROM ('2021-01-01') TO ('2022-01-01');
INSERT INTO measure SELECT g, date '2020-01-01' + (g % 700), g FROM generate_series(1, 20000) g;
CREATE MATERIALIZED VIEW counts AS SELECT v, count(*) FROM big GROUP BY v;
"""


def test_each_table_is_analyzed_by_the_copy_with_its_expression_indexes(servers: Any, tmp_path: Path) -> None:
    source, target = servers.get(13), servers.get(17)
    db = "stream_analyze"
    tiny = "".join(
        f"CREATE TABLE tiny_{i} (id int PRIMARY KEY); INSERT INTO tiny_{i} VALUES (1), (2);" for i in range(40)
    )
    new_database(source, target, db, SCHEMA + tiny)
    workdir = tmp_path / "run"
    move(source, target, db, workdir, mode="stream", jobs=2)
    journal = Journal.load(workdir)
    copied = {tuple(t) for t in journal.step(f"db:{db}:stream-data").artifacts["analyzed"]}
    leaves = {("public", "big"), ("public", "measure_1"), ("public", "measure_2")}
    assert copied == leaves | {("public", f"tiny_{i}") for i in range(40)}
    assert journal.step(f"db:{db}:analyze").artifacts["analyzed_by_the_copy"] == len(copied)
    with target.connect(db) as conn:

        def stats(name: str) -> int:
            row = conn.execute("SELECT count(*) FROM pg_stats WHERE schemaname = 'public' AND tablename = %s", [name])
            return int(row.fetchone()[0])

        # Every table has statistics, the expression index its own (the ANALYZE came after it), and
        # what the copy did not analyze was analyzed by the analyze step.
        for _schema, name in copied:
            assert stats(name) > 0, name
        assert stats("big_lower") == 1
        assert stats("measure") > 0 and stats("counts") > 0
        analyzed = conn.execute(
            "SELECT relname FROM pg_stat_user_tables WHERE schemaname = 'public' AND last_analyze IS NULL"
        ).fetchall()
        assert analyzed == []
