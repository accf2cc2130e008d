"""Every kind of difference is detected when planted on purpose on an otherwise equal copy.

One 14 → 17 pair per test worker; each test copies a database of its own with pg_dump/pg_restore
(17), checks the copy is equal, plants one difference on the target and expects exactly it.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from pgshift.lab import LabServer
from pgshift.verify import Difference, VerifyOptions, VerifyReport, verify_servers
from tests.conftest import ServerPool
from tests.integration.verify_support import copy_database, copy_globals

BASE_SQL = """
CREATE TABLE orders (id integer PRIMARY KEY, customer text NOT NULL, total numeric(10, 2), note text);
INSERT INTO orders SELECT g, 'customer ' || (g % 17), g * 2.5, 'note ' || g FROM generate_series(1, 200) g;
CREATE INDEX orders_customer ON orders (customer);
CREATE TABLE audit (id bigserial PRIMARY KEY, order_id integer, at timestamptz DEFAULT now());
INSERT INTO audit (order_id) SELECT g FROM generate_series(1, 50) g;
CREATE FUNCTION log_order() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER orders_log AFTER INSERT ON orders FOR EACH ROW EXECUTE PROCEDURE log_order();
GRANT SELECT ON orders TO planted_reader;
SELECT lo_from_bytea(0, 'first large object');
SELECT lo_from_bytea(0, 'second large object');
"""

_counter = itertools.count()


@dataclass
class Pair:
    source: LabServer
    target: LabServer

    def verify(self, db: str, target_db: str | None = None, **opts: object) -> VerifyReport:
        options = VerifyOptions(**{"compare_globals": False, **opts})  # type: ignore[arg-type]
        return verify_servers(
            self.source.endpoint("source"),
            self.target.endpoint("target"),
            databases=[(db, target_db or db)],
            options=options,
        )

    def copy(self) -> str:
        """A new database on the source from BASE_SQL, copied to the target."""
        db = f"planted_{os.getpid()}_{next(_counter)}"
        self.source.execute(f"CREATE DATABASE {db}")
        self.source.execute(BASE_SQL, db)
        copy_database(self.source, self.target, db)
        return db


@pytest.fixture(scope="module")
def pair(servers: ServerPool) -> Iterator[Pair]:
    source, target = servers.fresh(14), servers.fresh(17)
    source.execute("CREATE ROLE planted_reader; CREATE ROLE planted_group; GRANT planted_group TO planted_reader")
    copy_globals(source, target)
    yield Pair(source, target)
    source.stop()
    target.stop()


def only(report: VerifyReport) -> list[tuple[str, str, str]]:
    return [(d.category, d.object, d.kind) for d in report.differences]


def messages(report: VerifyReport) -> list[str]:
    return [d.message for d in report.differences]


@pytest.fixture
def db(pair: Pair) -> str:
    name = pair.copy()
    report = pair.verify(name, checksums=True)
    assert report.equal, messages(report)
    return name


def test_missing_row_is_a_count_difference(pair: Pair, db: str) -> None:
    pair.target.execute("DELETE FROM orders WHERE id = 77", db)
    report = pair.verify(db)
    assert only(report) == [("rows", "table public.orders", "count")]
    d = report.differences[0]
    assert (d.source, d.target) == ("200", "199") and "1 row(s) fewer" in d.message


def test_extra_row_is_a_count_difference(pair: Pair, db: str) -> None:
    pair.target.execute("INSERT INTO orders VALUES (1000, 'intruder', 1, NULL)", db)
    assert only(pair.verify(db)) == [("rows", "table public.orders", "count")]
    assert "1 row(s) more" in messages(pair.verify(db))[0]


def test_changed_value_with_the_same_count_needs_checksums(pair: Pair, db: str) -> None:
    pair.target.execute("UPDATE orders SET total = total + 0.01 WHERE id = 150", db)
    assert pair.verify(db).equal  # counts alone cannot see it
    report = pair.verify(db, checksums=True, checksum_chunk_rows=50)
    assert only(report) == [("checksums", "table public.orders", "content")]
    # The mismatch names the key range that holds id 150 (chunks start at 1, 51, 101, 151).
    assert report.differences[0].message.endswith("content differs in 101 <= id < 151")


def test_missing_index(pair: Pair, db: str) -> None:
    pair.target.execute("DROP INDEX orders_customer", db)
    assert only(pair.verify(db)) == [("schema", "index public.orders_customer", "missing")]


def test_trigger_disabled_that_was_enabled(pair: Pair, db: str) -> None:
    pair.target.execute("ALTER TABLE orders DISABLE TRIGGER orders_log", db)
    report = pair.verify(db)
    assert only(report) == [("schema", "trigger public.orders.orders_log", "changed")]
    assert (report.differences[0].source, report.differences[0].target) == ("enabled", "disabled")


def test_revoked_grant(pair: Pair, db: str) -> None:
    pair.target.execute("REVOKE SELECT ON orders FROM planted_reader", db)
    report = pair.verify(db)
    assert only(report) == [("privileges", "table public.orders", "changed")]
    assert "planted_reader=r/" in (report.differences[0].source or "")
    assert "planted_reader" not in (report.differences[0].target or "")


def test_sequence_behind_its_source(pair: Pair, db: str) -> None:
    pair.target.execute("SELECT setval('audit_id_seq', 10)", db)
    report = pair.verify(db)
    assert only(report) == [("sequences", "sequence public.audit_id_seq", "changed")]
    assert "behind its source" in report.differences[0].message
    assert (report.differences[0].source, report.differences[0].target) == ("50", "10")


def test_missing_large_object(pair: Pair, db: str) -> None:
    pair.target.execute("SELECT lo_unlink(max(oid)) FROM pg_largeobject_metadata", db)
    report = pair.verify(db)
    assert ("large objects", "large objects", "count") in only(report)
    assert any("1 large object(s) fewer" in m for m in messages(report))


def test_changed_large_object_needs_checksums(pair: Pair, db: str) -> None:
    pair.target.execute("SELECT lo_put(min(oid), 0, 'F') FROM pg_largeobject_metadata", db)  # same size, other content
    assert pair.verify(db).equal
    assert only(pair.verify(db, checksums=True)) == [("large objects", "large objects", "content")]


def test_missing_role_membership(pair: Pair, db: str) -> None:
    pair.target.execute("REVOKE planted_group FROM planted_reader")
    try:
        report = pair.verify(db, compare_globals=True)
        assert ("globals", "membership of planted_reader in planted_group", "missing") in only(report)
    finally:
        pair.target.execute("GRANT planted_group TO planted_reader")


def test_password_hash_that_did_not_arrive(pair: Pair, db: str) -> None:
    pair.source.execute("CREATE ROLE planted_pw LOGIN PASSWORD 'one'")
    pair.target.execute("CREATE ROLE planted_pw LOGIN PASSWORD 'two'")
    try:
        report = pair.verify(db, compare_globals=True)
        pw = [d for d in report.differences if d.object == "role planted_pw"]
        assert [d.message for d in pw] == ["role planted_pw: the password hash did not arrive intact"]
        # Hashes are never shown, only their kind.
        assert pw[0].source in ("scram-sha-256", "md5") and "SCRAM" not in repr(report.as_dict())
    finally:
        pair.source.execute("DROP ROLE planted_pw")
        pair.target.execute("DROP ROLE planted_pw")


def test_database_with_another_collation(pair: Pair) -> None:
    name = f"planted_coll_{os.getpid()}"
    pair.source.execute(f"CREATE DATABASE {name} TEMPLATE template0 LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'")
    pair.source.execute(BASE_SQL, name)
    copy_database(pair.source, pair.target, name, f"{name}_c", create_options="LC_COLLATE 'C' LC_CTYPE 'C.UTF-8'")
    report = pair.verify(name, f"{name}_c", checksums=True)
    assert only(report) == [("database", f"database {name}", "changed")]
    d = report.differences[0]
    assert (d.source, d.target) == ("C.UTF-8", "C") and "collate differs" in d.message


def test_missing_database_and_rename(pair: Pair, db: str) -> None:
    copy_database(pair.source, pair.target, db, f"{db}_renamed")
    assert pair.verify(db, f"{db}_renamed", checksums=True).equal
    report = verify_servers(
        pair.source.endpoint(),
        pair.target.endpoint(),
        databases=[(db, "no_such_db")],
        options=VerifyOptions(compare_globals=False),
    )
    assert only(report) == [("database", "database no_such_db", "missing")] and report.exit_code == 1


def test_table_filters_limit_what_is_compared(pair: Pair, db: str) -> None:
    pair.target.execute("DELETE FROM audit WHERE id = 1", db)
    assert not pair.verify(db).equal
    assert pair.verify(db, exclude_tables=("audit*",)).equal
    assert only(pair.verify(db, tables=("public.audit",))) == [("rows", "table public.audit", "count")]


def test_difference_as_dict_round_trips() -> None:
    d = Difference("rows", "db", "table public.t", "count", "1", "2", "m")
    assert Difference(**d.as_dict()) == d


def test_unreadable_table_is_an_error_not_a_verdict(pair: Pair, db: str) -> None:
    from pgshift.conninfo import Endpoint
    from pgshift.errors import ExitCode, StepFailed

    for server in (pair.source, pair.target):
        server.execute("DO $$BEGIN CREATE ROLE planted_limited LOGIN; EXCEPTION WHEN duplicate_object THEN END$$")
    src = Endpoint.parse(pair.source.conninfo(db, user="planted_limited"), "source")
    tgt = Endpoint.parse(pair.target.conninfo(db, user="planted_limited"), "target")
    with pytest.raises(StepFailed) as info:
        verify_servers(src, tgt, databases=[(db, db)], options=VerifyOptions(compare_globals=False, jobs=2))
    assert info.value.exit_code == ExitCode.FAILED
    assert "permission denied" in info.value.message and info.value.hint


def test_large_object_owner_and_grant(pair: Pair, db: str) -> None:
    with pair.target.connect(db) as conn:
        row = conn.execute("SELECT min(oid) FROM pg_largeobject_metadata").fetchone()
        assert row is not None
        conn.execute(f"ALTER LARGE OBJECT {row[0]} OWNER TO planted_reader".encode())
        conn.execute(f"GRANT SELECT ON LARGE OBJECT {row[0]} TO planted_group".encode())
    report = pair.verify(db)
    assert sorted(messages(report)) == ["large object owners differ", "large object privileges differ"]
    assert pair.verify(db, compare_owners=False, compare_privileges=False).equal


def test_a_mismatch_is_narrowed_to_a_small_key_range(pair: Pair) -> None:
    import re

    name = f"planted_big_{os.getpid()}"
    pair.source.execute(f"CREATE DATABASE {name}")
    pair.source.execute(
        "CREATE TABLE big (id integer PRIMARY KEY, v text);"
        "INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 30000) g",
        name,
    )
    copy_database(pair.source, pair.target, name)
    pair.target.execute("UPDATE big SET v = 'changed' WHERE id = 12345", name)
    report = pair.verify(name, checksums=True)  # one chunk of 100,000 rows would say "all rows"
    assert only(report) == [("checksums", "table public.big", "content")]
    found = re.search(r"content differs in (\d+) <= id < (\d+)$", report.differences[0].message)
    assert found, report.differences[0].message
    low, high = int(found[1]), int(found[2])
    assert low <= 12345 < high and high - low <= 1000
    assert (low, high) == (12301, 12401)  # 30,000 rows → parts of 1,500 → parts of 100 (docs/verify.md)
