"""The packaged samples load with the same adjustments as the corpus's load.sh scripts."""

from __future__ import annotations

from pgshift.lab import corpus
from pgshift.version import PgVersion


def _adjusted(sample: str, file: str, major: int) -> bytes:
    spec = next(f for f in corpus.SAMPLES[sample].files if f.name == file)
    data = (corpus.packaged_dir() / sample / file).read_bytes()
    return spec.adjust(data, PgVersion.from_major(major))


def test_pagila_drops_the_table_access_method_line_only_before_12() -> None:
    original = (corpus.packaged_dir() / "pagila" / "pagila-schema.sql").read_bytes()
    assert b"SET default_table_access_method = heap;" in original
    on_11 = _adjusted("pagila", "pagila-schema.sql", 11)
    assert b"default_table_access_method" not in on_11
    assert len(original.splitlines()) - len(on_11.splitlines()) == 1
    assert _adjusted("pagila", "pagila-schema.sql", 12) == original


def test_chinook_loses_exactly_its_own_database_lines() -> None:
    original = (corpus.packaged_dir() / "chinook" / "Chinook_PostgreSql.sql").read_bytes()
    adjusted = _adjusted("chinook", "Chinook_PostgreSql.sql", 18)
    removed = set(original.splitlines()) - set(adjusted.splitlines())
    assert removed == {b"DROP DATABASE IF EXISTS chinook;", b"CREATE DATABASE chinook;", b"\\c chinook;"}
    assert len(original.splitlines()) - len(adjusted.splitlines()) == 3


def test_every_packaged_sample_has_its_files_and_license() -> None:
    licenses = {"pagila": "LICENSE.txt", "chinook": "LICENSE.md", "northwind": "LICENSE", "iso3166": "README"}
    assert corpus.packaged_names() == list(licenses)
    for name, license_file in licenses.items():
        base = corpus.packaged_dir() / name
        assert (base / license_file).is_file()
        for file in corpus.SAMPLES[name].files:
            assert (base / file.name).is_file()
    assert not (corpus.packaged_dir() / "world").is_dir()
    readme = (corpus.packaged_dir() / "README.md").read_text()
    assert "provenance" in readme.lower() and all(name in readme for name in licenses)
