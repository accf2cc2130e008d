"""check's locale rules take the target's word for a locale its own databases use: a server whose
pg_collation lacks the locale (a container image without `locale -a`, where initdb imports none)
still creates databases with it."""

from __future__ import annotations

from typing import Any

from pgshift.checks import run_check


def test_a_locale_the_targets_databases_use_is_available_without_its_collation(fresh_server: Any, servers: Any) -> None:
    source = servers.get(14)
    source.execute("DROP DATABASE IF EXISTS loc_utf8")
    source.execute("CREATE DATABASE loc_utf8 TEMPLATE template0 LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'")
    target = fresh_server(17)  # initdb --locale=C.UTF-8: every database of it runs with that locale
    with target.connect("postgres") as conn:
        conn.execute("DELETE FROM pg_collation WHERE collprovider = 'c' AND collcollate ILIKE 'C.UTF%8'")
    try:
        report = run_check(source.endpoint("source"), target.endpoint("target"), databases=["loc_utf8"])
        assert "C.UTF-8" in report.target.locales if report.target else False
        hits = [f for f in report.findings if "C.UTF-8" in f.message]
        assert not hits, [f.message for f in hits]
        # Without that evidence the rule still speaks: a locale no database and no collation has.
        with target.connect("postgres") as conn:
            conn.execute("UPDATE pg_database SET datcollate = 'C', datctype = 'C'")
        report = run_check(source.endpoint("source"), target.endpoint("target"), databases=["loc_utf8"])
        assert [f for f in report.findings if f.rule_id == "locale-availability" and "C.UTF-8" in f.message]
    finally:
        source.execute("DROP DATABASE loc_utf8")
