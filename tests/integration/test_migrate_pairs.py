"""Whole-cluster migrations between real servers of every supported pair, proved by the tests' own
snapshots (tests/fixtures/compare.py) as well as by pgshift's verify."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pgshift.events import Collector
from pgshift.migrate import MigrateOptions, run_migration
from tests.fixtures.compare import diff, diff_globals, snapshot, snapshot_globals
from tests.fixtures.corpus import load_corpus
from tests.fixtures.rich import build

PAIRS = [(10, 18), (11, 17), (12, 16), (13, 17), (14, 18), (15, 18), (16, 17), (17, 18), (16, 16)]


def _load_corpus(server: Any, major: int) -> list[str]:
    """Every sample packaged with pgshift that the major can hold (pagila needs 11+), as corpus_<name>."""
    loaded = load_corpus(server, "corpus")
    assert len(loaded) == (3 if major < 11 else 4)
    return sorted(loaded)


@pytest.mark.parametrize("mode", ["dump", "stream"])
@pytest.mark.parametrize(("source_major", "target_major"), PAIRS, ids=[f"{a}to{b}" for a, b in PAIRS])
def test_migrate_moves_the_whole_cluster_and_the_copies_match(
    fresh_server: Any, tmp_path: Path, source_major: int, target_major: int, mode: str
) -> None:
    source = fresh_server(source_major)
    target = fresh_server(target_major)
    fixture = build(source)
    corpus_dbs = _load_corpus(source, source_major)
    before = {db: snapshot(source, db) for db in (*fixture.database_names, *corpus_dbs)}
    roles_before = snapshot_globals(source, fixture.prefix)

    events = Collector()
    result = run_migration(
        MigrateOptions(
            source=source.endpoint("source"), target=target.endpoint("target"), workdir=tmp_path / "run", mode=mode
        ),
        sink=events,
    )

    assert result.ok, (result.verify_note, [d.message for d in result.verify.differences] if result.verify else None)
    assert result.verify is not None and result.verify.equal, [d.message for d in result.verify.differences]
    assert {d.source for d in result.moved} == set(before)
    for db, snap in before.items():
        lines = diff(snap, snapshot(target, db))
        assert not lines, f"{db} ({source_major}->{target_major}):\n" + "\n".join(lines)
    assert not diff_globals(roles_before, snapshot_globals(target, fixture.prefix))
    # ANALYZE reached every table (analyzed table by table in --jobs sessions): reltuples is -1 on
    # 14+ until a table is analyzed or vacuumed.
    if target_major >= 14:
        for db in before:
            with target.connect(db) as conn:
                never = conn.execute(
                    "SELECT c.oid::regclass::text FROM pg_class c WHERE c.relkind IN ('r', 'm') AND c.reltuples < 0"
                ).fetchall()
            assert not never, (db, never)
    # Where the time went, step by step: stream mode splits its copy from the post-data after it.
    for moved in result.moved:
        steps = set(moved.step_seconds)
        if mode == "stream":
            assert {"dump", "restore-schema", "stream-data:copy", "stream-data:post-data"} <= steps, steps
            assert "restore-data" not in steps
        else:
            assert {"dump", "restore-schema", "restore-data"} <= steps, steps
    # Dumps (and what steps wrote beside them) are removed once verified; the journal and the log
    # stay, private.
    assert not any((tmp_path / "run" / "dumps").iterdir())
    assert (tmp_path / "run" / "journal.json").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o700
    assert fixture.writer_password not in result.log_path.read_text()
