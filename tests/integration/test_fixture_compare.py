"""The tests' own comparison sees real losses, and only the documented cross-version noise is ignored."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ServerPool
from tests.fixtures import kitchen_sink
from tests.fixtures.compare import diff, diff_globals, snapshot, snapshot_globals
from tests.fixtures.rich import build, cleanup, ident


def test_diff_names_every_kind_of_loss(servers: ServerPool) -> None:
    server = servers.get(16)
    fixture = build(server)
    try:
        before = snapshot(server, fixture.main.name)
        roles_before = snapshot_globals(server, fixture.prefix)
        assert diff(before, snapshot(server, fixture.main.name)) == []
        server.execute(
            """
            DELETE FROM app.customer WHERE id = 7;
            ALTER TABLE app.customer ENABLE TRIGGER customer_audit;
            DROP POLICY document_reader ON app.document;
            SELECT setval('app.ticket_seq', 5000);
            REFRESH MATERIALIZED VIEW sales.totals_empty;
            ALTER PUBLICATION fixture_pub DROP TABLE app.document;
            SELECT lo_unlink(min(oid)) FROM pg_largeobject_metadata;
            DROP RULE event_delete_log ON app.event;
            DROP EXTENSION hstore CASCADE;
            COMMENT ON TABLE app.customer IS NULL;
            UPDATE app.document SET body = 'document 1 ' WHERE id = 1;
            """,
            fixture.main.name,
        )
        latin1_before = snapshot(server, fixture.latin1.name)
        with server.connect(fixture.latin1.name, client_encoding="UTF8") as conn:
            conn.execute("UPDATE public.städte SET name = 'cafe' WHERE name = 'café'")
        assert diff(latin1_before, snapshot(server, fixture.latin1.name)) == [
            f"contents public.städte: {latin1_before.contents['public.städte']!r} != "
            f"{snapshot(server, fixture.latin1.name).contents['public.städte']!r}"
        ]
        server.execute(f"REVOKE {ident(fixture.role('group'))} FROM {ident(fixture.role('reader'))}")
        after = snapshot(server, fixture.main.name)
        text = "\n".join(diff(before, after))
        for expected in (
            "row_counts app.customer: 50 != 49",
            "contents app.document:",
            "triggers app.customer.customer_audit: 'D' != 'O'",
            "policies app.document.document_reader: missing",
            "sequences app.ticket_seq: (1014, True) != (5000, True)",
            "unpopulated sales.totals_empty: missing",
            "publications fixture_pub:",
            "large_objects count/bytes:",
            "rules app.event.event_delete_log 4: missing",
            "extensions hstore: missing",
            "columns app.customer.attrs: missing",
            "comments table app.customer: missing",
        ):
            assert expected in text, f"{expected!r} not in:\n{text}"
        roles_diff = diff_globals(roles_before, snapshot_globals(server, fixture.prefix))
        assert roles_diff == [
            f"membership (admin option) {fixture.role('group')} <- {fixture.role('reader')}: "
            "missing on the second side (was False)",
            # 16: the membership's INHERIT and SET options go with it.
            f"membership options {fixture.role('group')} <- {fixture.role('reader')}: "
            "missing on the second side (was 'inherit=True set=True')",
        ]
    finally:
        cleanup(server, fixture)


def test_cross_version_noise_is_ignored_only_across_its_version(servers: ServerPool) -> None:
    old, new = servers.get(13), servers.get(17)
    a_fix, b_fix = build(old, prefix="cmpnoise"), build(new, prefix="cmpnoise")
    try:
        a, b = snapshot(old, a_fix.main.name), snapshot(new, b_fix.main.name)
        # 17 creates floatmultirange (14), owns public by pg_database_owner (15), adds MAINTAIN (17).
        assert "type:m app" in b.objects and "type:m app" not in a.objects
        assert any("m" in item.split("=")[1].split("/")[0] for item in b.acls["relation app.customer"])
        # Large object oids (in the comments' and the details' keys) differ between two separate builds.
        assert diff(a, b, ignore=("comments", "large_object_details")) == []
        # Between two snapshots of one version the same difference is a real one.
        fake_old = dataclasses.replace(b, major=17, objects={**b.objects, "type:m app": ("x",)})
        assert any("type:m app" in line for line in diff(fake_old, b))
    finally:
        cleanup(old, "cmpnoise")
        cleanup(new, "cmpnoise")


@pytest.mark.parametrize(("old_major", "new_major"), [(10, 18), (14, 17)])
def test_plain_pg_dump_and_restore_of_the_fixture_shows_no_difference(
    servers: ServerPool, tmp_path: Path, old_major: int, new_major: int
) -> None:
    """With PostgreSQL's own tools alone (no pgshift code), the comparison sees only its documented
    noise: a failing pgshift migration is then pgshift's fault, not the snapshot's."""
    old, new = servers.get(old_major), servers.get(new_major)
    client = Path(f"/var/cache/pgshift/pg/{new_major}/bin")
    if not (client / "pg_dump").exists():
        pytest.skip(f"no PostgreSQL {new_major} client in {client}")
    fixture = build(old)
    env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C"}
    try:
        before = {db: snapshot(old, db) for db in fixture.database_names}
        roles_before = snapshot_globals(old, fixture.prefix)
        globals_sql = tmp_path / "globals.sql"
        subprocess.run(
            [client / "pg_dumpall", "--globals-only", "-d", old.conninfo(), "-f", globals_sql], env=env, check=True
        )
        # 'role "postgres" already exists' is the one expected error.
        subprocess.run([client / "psql", "-X", "-q", "-d", new.conninfo(), "-f", globals_sql], env=env, check=True)
        for db in fixture.database_names:
            dump = tmp_path / f"dump-{before[db].name.encode().hex()}"
            subprocess.run([client / "pg_dump", "-Fd", "-f", dump, "-d", old.conninfo(db)], env=env, check=True)
            subprocess.run(
                [client / "pg_restore", "--exit-on-error", "-C", "-d", new.conninfo(), dump], env=env, check=True
            )
        for db in fixture.database_names:
            assert diff(before[db], snapshot(new, db)) == [], db
        assert diff_globals(roles_before, snapshot_globals(new, fixture.prefix)) == []
    finally:
        cleanup(old, fixture)
        cleanup(new, fixture)


def test_definitions_name_every_kind_of_change_on_the_kitchen_sink(servers: ServerPool) -> None:
    """The definitions section sees a changed or lost object of each kind the other sections only count."""
    server = servers.get(16)
    sink = kitchen_sink.build(server, tablespace=False)
    try:
        before = snapshot(server, sink.database)
        assert diff(before, snapshot(server, sink.database)) == []
        server.execute(
            f"""
            DROP CAST (ks.mood AS int);
            ALTER OPERATOR FAMILY ks.rev_ops USING btree DROP OPERATOR 5 (int, int8);
            DROP STATISTICS ks.item_stats;
            ALTER TABLE ks.item ALTER COLUMN qty SET DEFAULT 2;
            ALTER POLICY secret_read ON ks.secret USING (owner_name = 'b');
            DROP TRANSFORM FOR ks.pair LANGUAGE plpgsql;
            ALTER TEXT SEARCH CONFIGURATION ks.cfg DROP MAPPING FOR int;
            ALTER SERVER ks_plain OPTIONS (SET anything 'else');
            ALTER USER MAPPING FOR PUBLIC SERVER ks_plain OPTIONS (SET who 'someone');
            GRANT SELECT ON LARGE OBJECT {kitchen_sink.LO_OIDS[2]} TO PUBLIC;
            ALTER TABLE ks.with_storage SET (fillfactor = 80);
            ALTER INDEX ks.item_partial RENAME TO item_partial2;
            ALTER TABLE ks.booking ALTER CONSTRAINT booking_item_id_fkey NOT DEFERRABLE;
            CREATE OR REPLACE FUNCTION ks.add(a int, b int DEFAULT 1) RETURNS int
                LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS 'SELECT a + b + 0';
            ALTER AGGREGATE ks.isum(int) OWNER TO postgres;
            ALTER COLLATION ks.posix OWNER TO {ident(sink.role("owner"))};
            ALTER EVENT TRIGGER ks_ddl DISABLE;
            DROP TRIGGER item_stamp ON ks.item;
            DROP RULE rule_v_del ON ks.rule_v;
            ALTER PUBLICATION ks_pub_filtered SET TABLE ks.item (id, name, qty) WHERE (qty > 6);
            ALTER TYPE ks.mood ADD VALUE 'ecstatic';
            ALTER LANGUAGE ks_lang OWNER TO {ident(sink.role("owner"))};
            DELETE FROM ks.item WHERE id = 7;
            """,
            sink.database,
        )
        text = "\n".join(diff(before, snapshot(server, sink.database)))
        for expected in (
            "definitions cast ks.mood as integer: missing",
            "definitions operator family ks.rev_ops using btree:",
            "definitions statistics ks.item_stats: missing",
            "definitions column ks.item.qty:",
            "definitions policy ks.secret.secret_read:",
            "definitions transform ks.pair plpgsql: missing",
            "definitions text search configuration ks.cfg:",
            "definitions server ks_plain:",
            "definitions user mapping public server ks_plain:",
            f"large_object_details large object {kitchen_sink.LO_OIDS[2]}:",
            "definitions relation ks.with_storage:",
            "definitions index ks.item_partial: missing",
            "definitions constraint ks.booking.booking_item_id_fkey:",
            "definitions function ks.add(a integer, b integer):",
            "definitions function ks.isum(integer):",
            "definitions collation ks.posix:",
            "event_triggers ks_ddl:",
            "definitions trigger ks.item.item_stamp: missing",
            "definitions rule ks.rule_v.rule_v_del: missing",
            "definitions publication table ks_pub_filtered ks.item:",
            "definitions type ks.mood:",
            "definitions language ks_lang:",
            "definitions view rows ks.trig_v:",
        ):
            assert expected in text, f"{expected!r} not in:\n{text}"
        # A user mapping's options may hold a password: never printed, only digested.
        assert sink.mapping_password not in text
    finally:
        kitchen_sink.cleanup(server, sink)
