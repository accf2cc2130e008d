"""Every packaged sample loads with the expected row counts, through pgshift's loader, and is the upstream file."""

from __future__ import annotations

import hashlib
import secrets

import pytest

from pgshift.errors import UsageError
from pgshift.events import Collector, StepFinished
from pgshift.lab import corpus
from tests.conftest import ServerPool
from tests.fixtures.compare import snapshot
from tests.fixtures.corpus import EXPECTED_ROWS, EXPECTED_UNPOPULATED, PACKAGED, load_corpus
from tests.fixtures.rich import cleanup, ident


def _dbname(sample: str) -> str:
    return f"cl{secrets.token_hex(3)}_{sample}"


@pytest.mark.parametrize("major", [12, 18])
@pytest.mark.parametrize("sample", PACKAGED)
def test_packaged_sample_loads_with_the_documented_row_counts(servers: ServerPool, sample: str, major: int) -> None:
    server = servers.get(major)
    dbname = _dbname(sample)
    events = Collector()
    try:
        result = corpus.load(server, sample, dbname, events, create=True)
        snap = snapshot(server, dbname)
        assert snap.row_counts == EXPECTED_ROWS[sample]
        assert snap.unpopulated == EXPECTED_UNPOPULATED.get(sample, ())
        assert snap.total_rows == corpus.SAMPLES[sample].total_rows
        assert result.created and result.server_version.startswith(str(major))
        assert [e.ok for e in events.events if isinstance(e, StepFinished)] == [True]
    finally:
        cleanup(server, dbname)


def test_pagila_loads_on_11_without_the_table_access_method_line(servers: ServerPool) -> None:
    server = servers.get(11)
    dbname = _dbname("pagila")
    try:
        corpus.load(server, "pagila", dbname, create=True)
        assert snapshot(server, dbname).row_counts == EXPECTED_ROWS["pagila"]
    finally:
        cleanup(server, dbname)


def test_pagila_is_refused_on_10_with_the_reason(servers: ServerPool) -> None:
    server = servers.get(10)
    with pytest.raises(UsageError, match="needs 11 or newer"):
        corpus.load(server, "pagila", "never_created", create=True)
    with server.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'never_created'").fetchone() == (0,)


def test_chinook_loads_into_the_named_database_not_its_own(servers: ServerPool) -> None:
    server = servers.get(14)
    dbname = _dbname("chinook")
    try:
        corpus.load(server, "chinook", dbname, create=True)
        with server.connect() as conn:
            assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'chinook'").fetchone() == (0,)
    finally:
        cleanup(server, dbname)


def test_loading_into_an_existing_database_with_create_is_refused(servers: ServerPool) -> None:
    server = servers.get(18)
    dbname = _dbname("iso3166")
    server.execute(f"CREATE DATABASE {ident(dbname)}")
    try:
        with pytest.raises(UsageError, match="already exists"):
            corpus.load(server, "iso3166", dbname, create=True)
        corpus.load(server, "iso3166", dbname)  # an existing, empty database is fine without create
        assert snapshot(server, dbname).row_counts == EXPECTED_ROWS["iso3166"]
    finally:
        cleanup(server, dbname)


def test_world_is_not_packaged_and_loading_it_is_refused(servers: ServerPool) -> None:
    assert "world" not in PACKAGED and not corpus.SAMPLES["world"].packaged
    server = servers.get(18)
    with pytest.raises(UsageError, match="not packaged"):
        corpus.load(server, "world", "never_created", create=True)
    with server.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'never_created'").fetchone() == (0,)


def _sha256sums() -> dict[str, str]:
    """The committed SHA256SUMS of the packaged corpus: {relative path: digest}."""
    lines = (corpus.packaged_dir() / "SHA256SUMS").read_text(encoding="ascii").splitlines()
    return {path: digest for digest, path in (line.split(maxsplit=1) for line in lines if line.strip())}


def test_packaged_files_match_the_committed_checksums_of_the_upstream_files() -> None:
    # SHA256SUMS holds the digests of the upstream files (equal to the shared corpus's, see the
    # corpus README): a packaged file edited by hand, or a sample file missing from it, fails here.
    sums = _sha256sums()
    data_files = {f"{name}/{file.name}" for name in PACKAGED for file in corpus.SAMPLES[name].files}
    assert set(sums) == data_files
    for path, digest in sums.items():
        name, _, filename = path.partition("/")
        data = (corpus.packaged_dir() / name / filename).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, f"{path} is not the upstream file"


@pytest.mark.parametrize("major", [10, 16])
def test_load_corpus_helper_loads_every_sample_the_major_can_hold(servers: ServerPool, major: int) -> None:
    server = servers.get(major)
    prefix = f"lc{secrets.token_hex(3)}"
    try:
        loaded = load_corpus(server, prefix)
        expected = {n for n in PACKAGED if not (n == "pagila" and major < 11)}
        assert set(loaded.values()) == expected
        for dbname, name in loaded.items():
            assert snapshot(server, dbname).row_counts == EXPECTED_ROWS[name]
    finally:
        cleanup(server, prefix)
