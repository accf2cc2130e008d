"""The advice is right: a planted hazard really breaks a real pg_dump/pg_restore of the target major,
and applying the finding's remediation makes check silent and the migration succeed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pgshift.catalog.session import resolve
from pgshift.checks import run_check
from pgshift.conninfo import Endpoint
from pgshift.toolchain.clients import run_client
from pgshift.toolchain.discover import discover
from pgshift.toolchain.select import select_client


def _move(source: Endpoint, target: Endpoint, db: str, new_db: str, work: Path) -> tuple[int, str]:
    """pg_dump -Fc of the source database, pg_restore --exit-on-error into a new target database."""
    src, tgt = resolve(source), resolve(target)
    with tgt_conn(target) as conn:
        conn.execute(f'CREATE DATABASE "{new_db}"')
    choice = select_client(discover(), _version(source), _version(target))
    archive = work / f"{db}.dump"
    run_client(
        choice,
        "pg_dump",
        ["-Fc", f"--dbname={src.child_conninfo(db)}", f"--file={archive}"],
        env=src.child_env(),
        secrets=src.secrets,
    )
    done = run_client(
        choice,
        "pg_restore",
        ["--exit-on-error", "--no-owner", f"--dbname={tgt.child_conninfo(new_db)}", str(archive)],
        env=tgt.child_env(),
        secrets=tgt.secrets,
        check=False,
    )
    return done.returncode, "\n".join(done.stderr_tail)


def tgt_conn(endpoint: Endpoint) -> Any:
    import psycopg

    return psycopg.connect(endpoint.conninfo(), autocommit=True)


def _version(endpoint: Endpoint) -> Any:
    from pgshift.catalog.session import server_version, session

    with session(endpoint) as conn:
        return server_version(conn)


def _apply(source: Any, db: str, remediation: str) -> None:
    """Run a finding's remediation exactly as the finding words it."""
    prefix = "On the source: "
    assert remediation.startswith(prefix), remediation
    source.execute(remediation[len(prefix) :], db)


def test_value_hazards_advice_makes_the_14_to_18_restore_work(servers: Any, tmp_path: Path) -> None:
    source, target = servers.get(14), servers.get(18)
    db = f"mig_val_{os.getpid()}"
    source.execute(f"CREATE DATABASE {db}")
    source.execute(
        'CREATE TABLE t_tsv (id int PRIMARY KEY, v tsvector, c "char");'
        "INSERT INTO t_tsv VALUES (1, array_to_tsvector('{\"\",abc}'), 'a'),"
        " (2, to_tsvector('simple', 'kept words'), chr(233)::\"char\")",
        db,
    )
    src_ep, tgt_ep = source.endpoint("source", db), target.endpoint("target")

    report = run_check(src_ep, tgt_ep, databases=[db])
    found = {f.rule_id: f for f in report.findings if f.rule_id in ("tsvector-empty-lexeme", "char-type-nonascii")}
    assert found["tsvector-empty-lexeme"].object == "public.t_tsv.v"
    assert found["char-type-nonascii"].object == "public.t_tsv.c"

    # The hazards are real: the target major's pg_restore stops at the table's data.
    rc, stderr = _move(src_ep, tgt_ep, db, f"{db}_before", tmp_path)
    assert rc != 0 and ("syntax error in tsvector" in stderr or "invalid byte sequence" in stderr), stderr

    # Each finding's remediation, run as written, clears the findings and the migration works.
    for finding in found.values():
        _apply(source, db, finding.remediation)
    after = run_check(src_ep, tgt_ep, databases=[db])
    assert not [f for f in after.findings if f.rule_id in found]
    rc, stderr = _move(src_ep, tgt_ep, db, f"{db}_after", tmp_path)
    assert rc == 0, stderr
    with source.connect(db) as s, target.connect(f"{db}_after") as t:
        query = "SELECT id, v::text, c FROM t_tsv ORDER BY id"
        rows = s.execute(query).fetchall()
        assert rows == t.execute(query).fetchall()
        assert rows == [(1, "'abc'", 97), (2, "'kept':1 'words':2", -61)]


def test_with_oids_advice_keeps_the_oid_values_through_an_11_to_18_move(servers: Any, tmp_path: Path) -> None:
    source, target = servers.get(11), servers.get(18)
    db = f"mig_oids_{os.getpid()}"
    source.execute(f"CREATE DATABASE {db}")
    source.execute(
        "CREATE TABLE t_oids (a int) WITH OIDS; INSERT INTO t_oids SELECT g FROM generate_series(1, 3) g", db
    )
    src_ep, tgt_ep = source.endpoint("source", db), target.endpoint("target")
    [finding] = [f for f in run_check(src_ep, tgt_ep, databases=[db]).findings if f.rule_id == "with-oids"]
    assert finding.object == "public.t_oids"
    with source.connect(db) as conn:
        oids = conn.execute("SELECT oid, a FROM t_oids ORDER BY a").fetchall()

    # Without the fix the move "works" and the OIDs are gone.
    rc, stderr = _move(src_ep, tgt_ep, db, f"{db}_lost", tmp_path)
    assert rc == 0, stderr
    with target.connect(f"{db}_lost") as conn:
        columns = [r[0] for r in conn.execute("SELECT attname FROM pg_attribute WHERE attrelid = 't_oids'::regclass")]
        assert "oid" not in columns and "legacy_oid" not in columns

    _apply(source, db, finding.remediation)
    assert not [f for f in run_check(src_ep, tgt_ep, databases=[db]).findings if f.rule_id == "with-oids"]
    rc, stderr = _move(src_ep, tgt_ep, db, f"{db}_moved", tmp_path)
    assert rc == 0, stderr
    with target.connect(f"{db}_moved") as conn:
        assert conn.execute("SELECT legacy_oid, a FROM t_oids ORDER BY a").fetchall() == oids


def test_real_sample_databases_raise_no_false_blockers(fresh_server: Any) -> None:
    """pagila, chinook, northwind and the rich multi-database fixture (14 -> 18): nothing blocks them,
    and the warnings are the ones that are true of them."""
    from pgshift.lab import corpus
    from tests.fixtures import rich

    source, target = fresh_server(14), fresh_server(18)
    for name in ("pagila", "chinook", "northwind"):
        corpus.load(source, name, name, create=True)
    fixture = rich.build(source)
    report = run_check(source.endpoint("source"), target.endpoint("target"))
    assert report.blockers == (), [(f.rule_id, f.object) for f in report.blockers]
    assert {f.rule_id for f in report.warnings} <= {"public-schema-acl", "encoding-mismatch"}
    latin1 = [f for f in report.warnings if f.rule_id == "encoding-mismatch"]
    assert [f.database for f in latin1] == [d.name for d in fixture.databases if d.encoding == "LATIN1"]
    assert {"pagila", "chinook", "northwind"} <= {d.name for d in report.source.checked}
    assert report.exit_code == 1
