"""The rich fixture builds on every major and the tests' own snapshot sees exactly what it describes."""

from __future__ import annotations

import pytest

from tests.conftest import ALL_MAJORS, ServerPool
from tests.fixtures.compare import diff, snapshot, snapshot_globals
from tests.fixtures.rich import LATIN1_TEXTS, build, cleanup


@pytest.mark.parametrize("major", ALL_MAJORS)
def test_rich_fixture_builds_on_every_major_with_the_described_content(servers: ServerPool, major: int) -> None:
    server = servers.get(major)
    fixture = build(server)
    try:
        main = snapshot(server, fixture.main.name)
        assert main.row_counts == fixture.main.row_counts
        assert main.unpopulated == fixture.main.unpopulated_matviews
        assert main.large_objects[0] == fixture.main.large_objects
        for seq, value in fixture.main.sequences.items():
            assert main.sequences[seq] == (value, True)
        assert main.extensions == fixture.main.extensions
        assert main.triggers == {"app.customer.customer_touch": "O", "app.customer.customer_audit": "D"}
        assert set(main.policies) == {"app.document.document_owner", "app.document.document_reader"}
        assert main.rules == ("app.event.event_delete_log 4",)
        assert main.publications == {"fixture_pub": ("app.customer", "app.document")}
        assert list(main.event_triggers) == ["fixture_ddl"]
        assert main.columns["app.session_cache.k"].endswith("persistence=u")
        assert "identity=a" in main.columns["app.customer.id"]
        assert main.default_acls and main.acls["relation sales.orders"]
        assert main.properties["connlimit"] == 50 and main.properties["settings"] == ["TimeZone=Europe/Paris"]
        assert {"type:e app", "type:d app", "type:c app", "type:r app", "relation:p sales", "relation:m sales"} <= set(
            main.objects
        )
        # Version-gated features exist exactly where the server has them.
        assert ("function:p app" in main.objects) == (major >= 11)
        assert ("generated=s" in main.columns.get("app.customer.name_upper", "")) == (major >= 12)
        assert ("relation:I sales" in main.objects) == (major >= 11)

        latin1 = snapshot(server, fixture.latin1.name)
        assert latin1.properties["encoding"] == "LATIN1" and latin1.properties["collate"] == "C"
        assert latin1.row_counts == {"public.städte": len(LATIN1_TEXTS)}
        with server.connect(fixture.latin1.name, client_encoding="UTF8") as conn:
            names = [r[0] for r in conn.execute("SELECT name FROM public.städte ORDER BY id").fetchall()]
        assert names == list(LATIN1_TEXTS)

        odd = snapshot(server, fixture.odd.name)
        assert odd.row_counts == fixture.odd.row_counts and odd.properties["owner"] == fixture.role("odd")

        roles = snapshot_globals(server, fixture.prefix)
        assert set(roles.roles) == set(fixture.roles)
        assert set(fixture.memberships) <= roles.memberships
        assert roles.roles[fixture.role("repl")]["replication"] and roles.roles[fixture.role("repl")]["bypassrls"]
        assert roles.roles[fixture.role("writer")]["has_password"]
        assert roles.role_settings[f"{fixture.role('reader')}@{fixture.main.name}"] == ("work_mem=8MB",)
    finally:
        cleanup(server, fixture)
    with server.connect() as conn:
        left = conn.execute(
            "SELECT (SELECT count(*) FROM pg_database WHERE datname LIKE %s) + "
            "(SELECT count(*) FROM pg_roles WHERE rolname LIKE %s)",
            (fixture.prefix + "%", fixture.prefix + "%"),
        ).fetchone()
    assert left == (0,)


def test_two_fixtures_live_side_by_side_on_one_server(servers: ServerPool) -> None:
    server = servers.get(17)
    first, second = build(server), build(server)
    try:
        assert not set(first.database_names) & set(second.database_names)
        assert not set(first.roles) & set(second.roles)
        assert (
            diff(
                snapshot(server, first.main.name),
                snapshot(server, second.main.name),
                ignore=(
                    "acls",
                    "owners",
                    "policies",
                    "default_acls",
                    "columns",
                    "comments",
                    "properties",
                    "large_objects",
                    "contents",  # app.document holds role names, which carry the prefix
                ),
            )
            == []
        )
    finally:
        cleanup(server, first)
        cleanup(server, second)
