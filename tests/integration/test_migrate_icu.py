"""ICU databases and collations keep their provider and locale (Debian's own PostgreSQL 15, built
with ICU: the PyPI and npm builds the other tests use are not)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pgshift.migrate import MigrateOptions, run_migration

DEBIAN_15 = Path("/usr/lib/postgresql/15/bin")

pytestmark = pytest.mark.skipif(
    not (DEBIAN_15 / "postgres").exists(), reason="needs Debian's postgresql-15 (built with ICU) in /usr/lib"
)

NAMES = ["Müller", "Mueller", "Muller", "Möller", "Mahler"]


def test_icu_database_and_collation_arrive_with_provider_locale_and_order(fresh_server: Any, tmp_path: Path) -> None:
    source = fresh_server(15, bin_dir=DEBIAN_15)
    target = fresh_server(15, bin_dir=DEBIAN_15)
    source.execute("CREATE DATABASE icu_db TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'de-DE' LOCALE 'C.UTF-8'")
    source.execute(
        "CREATE COLLATION phonebook (provider = icu, locale = 'de-u-co-phonebk');"
        "CREATE TABLE people (name text COLLATE phonebook);"
        "INSERT INTO people VALUES " + ", ".join(f"('{n}')" for n in NAMES),
        "icu_db",
    )
    result = run_migration(
        MigrateOptions(
            source=source.endpoint("source"),
            target=target.endpoint("target"),
            databases=("icu_db",),
            workdir=tmp_path / "run",
        )
    )
    assert result.ok, result.verify_note

    def facts(server: Any) -> tuple[Any, ...]:
        with server.connect() as conn:
            db = conn.execute(
                "SELECT datlocprovider, daticulocale, datcollate FROM pg_database WHERE datname = 'icu_db'"
            ).fetchone()
        with server.connect("icu_db") as conn:
            coll = conn.execute(
                "SELECT collprovider, colliculocale FROM pg_collation WHERE collname = 'phonebook'"
            ).fetchone()
            order = [r[0] for r in conn.execute("SELECT name FROM people ORDER BY name").fetchall()]
        return db, coll, order

    src, tgt = facts(source), facts(target)
    assert src[0] == ("i", "de-DE", "C.UTF-8")
    assert tgt == src
    # The phonebook order really is ICU's (ö sorts as oe), so a libc fallback could not pass.
    assert tgt[2].index("Möller") < tgt[2].index("Muller")


def test_icu_source_into_a_target_without_icu_is_found_by_check_and_refused_by_migrate(
    fresh_server: Any, tmp_path: Path
) -> None:
    from pgshift.checks import run_check
    from pgshift.errors import PreflightRefused

    source = fresh_server(15, bin_dir=DEBIAN_15)
    target = fresh_server(17)  # PyPI's build: no ICU
    source.execute("CREATE DATABASE icu_db TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'de-DE' LOCALE 'C.UTF-8'")
    source.execute("CREATE COLLATION phonebook (provider = icu, locale = 'de-u-co-phonebk')", "icu_db")
    report = run_check(source.endpoint("source"), target.endpoint("target"), databases=["icu_db"])
    found = {(f.rule_id, f.object) for f in report.blockers}
    assert ("locale-availability", "icu_db") in found
    assert ("collation-locale-availability", "public.phonebook") in found
    with pytest.raises(PreflightRefused) as refused:
        run_migration(
            MigrateOptions(
                source=source.endpoint("source"),
                target=target.endpoint("target"),
                databases=("icu_db",),
                workdir=tmp_path / "run",
            )
        )
    assert "locale-availability" in refused.value.message
    with target.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'icu_db'").fetchone() == (0,)
