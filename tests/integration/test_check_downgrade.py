"""check on a move to an older major, against real targets: what the older server lacks is named
before the move, by a rule with its fix, and the schema trial confirms it (or, once fixed, accepts it).

Sources and targets are the shared lab servers (17 -> 16, 12 -> 11, 18 -> 17, 15 -> 14); each test
uses databases and roles of its own.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

from pgshift.checks import CheckReport, Finding, run_check
from pgshift.checks.trial import RULE_ID


def _name(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(3)}"


def _check(source: Any, target: Any, db: str) -> CheckReport:
    return run_check(source.endpoint("source"), target.endpoint("target"), databases=[db], trial=True)


def _of(report: CheckReport, rule: str) -> list[Finding]:
    return [f for f in report.findings if f.rule_id == rule]


def test_a_maintain_grant_to_a_role_the_target_lacks_is_tried_for_public_and_named_by_its_rule(servers: Any) -> None:
    source, target = servers.get(17), servers.get(16)
    db, role, reader = _name("dgm"), _name("dgm_r"), _name("dgm_s")
    source.execute(f"CREATE ROLE {role}; CREATE ROLE {reader}")
    source.execute(f"CREATE DATABASE {db}")
    source.execute(
        f"CREATE TABLE t (a int); GRANT SELECT, MAINTAIN ON t TO {role}; "
        # A grant option is tried without it: PUBLIC takes none.
        f"CREATE TABLE plain (a int); GRANT SELECT ON plain TO {reader} WITH GRANT OPTION",
        db,
    )
    report = _check(source, target, db)
    # Neither role is on the 16 target. 16 names the missing role before the privilege it does not
    # know: tried for PUBLIC, the grant on t is refused for MAINTAIN, the one on plain is not.
    assert report.trial is not None and report.trial.ran
    hits = _of(report, "maintain-privilege-older-target")
    assert [h.object for h in hits] == ["public.t"]
    assert hits[0].refused_by_trial and 'unrecognized privilege type "maintain"' in hits[0].message
    assert hits[0].remediation == f"On the source: REVOKE MAINTAIN ON TABLE public.t FROM {role};"
    assert not _of(report, RULE_ID)  # the refusal is the rule's finding, not a second one
    assert {n.object for n in report.trial.not_tried} == {"grants on table public.plain"}

    source.execute(f"REVOKE MAINTAIN ON TABLE public.t FROM {role}", db)
    fixed = _check(source, target, db)
    assert not _of(fixed, "maintain-privilege-older-target") and not _of(fixed, RULE_ID)


def test_a_12_source_moves_into_11_with_a_client_that_leaves_out_table_access_methods(
    servers: Any, tmp_path: Path
) -> None:
    """pg_restore 12+ sets default_table_access_method before each table of a 12+ archive, which 11
    rejects; pgshift picks a 15+ client (installed here) and passes --no-table-access-method, so
    check has nothing to say of it, the trial accepts the tables and migrate moves them."""
    source, target = servers.get(12), servers.get(11)
    db = _name("dgam")
    source.execute(f"CREATE DATABASE {db}")
    source.execute("CREATE TABLE t (a int); CREATE TABLE u (b text); INSERT INTO t VALUES (1), (2)", db)
    report = _check(source, target, db)
    assert report.client.program_major is not None and int(report.client.program_major) >= 15, report.client
    assert not _of(report, "client-settings-older-target")
    assert report.trial is not None and report.trial.ran and not report.trial.failures
    moved = subprocess.run(
        [sys.executable, "-m", "pgshift", "migrate", source.conninfo(), target.conninfo(), "-d", db,
         "--allow-downgrade", "--workdir", str(tmp_path / "w"), "--json"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout)["verify"]["equal"]
    with target.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)
    target.execute(f"DROP DATABASE {db}")
    source.execute(f"DROP DATABASE {db}")


def test_18_syntax_in_17_is_named_with_fixes_that_make_the_target_accept_the_schema(servers: Any) -> None:
    source, target = servers.get(18), servers.get(17)
    db = _name("dgsx")
    source.execute(f"CREATE DATABASE {db}")
    source.execute(
        "CREATE EXTENSION btree_gist; "
        "CREATE TABLE vg (a int, b int GENERATED ALWAYS AS (a * 2) VIRTUAL); "
        "CREATE TABLE ne (a int, CONSTRAINT ne_pos CHECK (a > 0) NOT ENFORCED); "
        "CREATE TABLE pk (id int PRIMARY KEY); "
        "CREATE TABLE fk (id int, CONSTRAINT fk_id FOREIGN KEY (id) REFERENCES pk NOT ENFORCED); "
        "CREATE TABLE nn (a int); INSERT INTO nn VALUES (NULL); "
        "ALTER TABLE nn ADD CONSTRAINT nn_a NOT NULL a NOT VALID; "
        "CREATE TABLE ni (a int CONSTRAINT ni_a NOT NULL NO INHERIT); "
        "CREATE TABLE wo (id int, v tstzrange, CONSTRAINT wo_pk PRIMARY KEY (id, v WITHOUT OVERLAPS)); "
        "CREATE TABLE wf (id int, v tstzrange, "
        "CONSTRAINT wf_fk FOREIGN KEY (id, PERIOD v) REFERENCES wo (id, PERIOD v))",
        db,
    )
    report = _check(source, target, db)
    hits = {h.object: h for h in _of(report, "syntax-newer-major")}
    assert set(hits) == {
        "public.vg.b",
        "constraint ne_pos on public.ne",
        "constraint fk_id on public.fk",
        "constraint nn_a on public.nn",
        "constraint ni_a on public.ni",
        "constraint wo_pk on public.wo",
        "constraint wf_fk on public.wf",
    }
    # Each is what the 17 target refused, and no refusal is left without its rule.
    assert all(h.refused_by_trial and "schema trial confirmed" in h.message for h in hits.values())
    assert not _of(report, RULE_ID)

    # The fixes, as given (the temporal foreign key before the key it references; nn_a holds a NULL,
    # so its CHECK alternative), make a schema that 17 accepts whole.
    order = ["constraint wf_fk on public.wf", *sorted(set(hits) - {"constraint wf_fk on public.wf"})]
    for name in order:
        fix = (hits[name].remediation or "").removeprefix("On the source: ")
        statement = fix.split("; ", 1)[0] if " or " not in fix else fix.rsplit(" or ", 1)[1]
        source.execute(statement, db)
    fixed = _check(source, target, db)
    assert not _of(fixed, "syntax-newer-major")
    assert not _of(fixed, RULE_ID)
    assert fixed.trial is not None and not fixed.trial.failures


def test_a_15_database_into_14_is_warned_of_its_public_schema_and_the_fix_closes_it(servers: Any) -> None:
    source, target = servers.get(15), servers.get(14)
    db = _name("dgps")
    source.execute(f"CREATE DATABASE {db}")
    report = run_check(source.endpoint("source"), target.endpoint("target"), databases=[db])
    hits = _of(report, "public-schema-older-target")
    assert [(h.database, h.severity.value) for h in hits] == [(db, "warning")]
    fix = (hits[0].remediation or "").split(": ", 1)[1]
    # What the move makes on 14 (CREATE DATABASE … TEMPLATE template0) is writable by everyone; the fix closes it.
    target.execute(f"CREATE DATABASE {db} TEMPLATE template0")
    try:
        with target.connect(db) as conn:
            writable = "SELECT has_schema_privilege('public', 'public', 'CREATE')"
            assert conn.execute(writable).fetchone() == (True,)
            conn.execute(fix)
            assert conn.execute(writable).fetchone() == (False,)
            owner = conn.execute("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'public'")
            assert owner.fetchone() == ("pg_database_owner",)
    finally:
        target.execute(f"DROP DATABASE {db}")


def test_17_syntax_in_16_is_named_and_the_fixed_source_is_accepted(servers: Any) -> None:
    source, target = servers.get(17), servers.get(16)
    db = _name("dgsx17")
    source.execute(f"CREATE DATABASE {db}")
    source.execute(
        "CREATE EXTENSION btree_gist; "
        "CREATE TABLE px (k int, r int4range, EXCLUDE USING gist (k WITH =, r WITH &&)) PARTITION BY RANGE (k); "
        "CREATE TABLE px1 PARTITION OF px FOR VALUES FROM (0) TO (10); "
        "CREATE TABLE pam (a int) PARTITION BY LIST (a); ALTER TABLE pam SET ACCESS METHOD heap; "
        "CREATE VIEW jt AS SELECT * FROM JSON_TABLE('[1, 2]'::jsonb, '$[*]' COLUMNS (v int PATH '$')) AS j; "
        "CREATE VIEW jq AS SELECT JSON_QUERY('{\"a\": 1}'::jsonb, '$.a') AS q; "
        "CREATE VIEW lit AS SELECT 'JSON_TABLE(' AS label",  # the words only: 16 has no trouble with it
        db,
    )
    report = _check(source, target, db)
    hits = {h.object: h for h in _of(report, "syntax-newer-major")}
    assert set(hits) == {"constraint px_k_r_excl on public.px", "public.pam", "public.jt", "public.jq"}
    assert all(h.refused_by_trial for h in hits.values())
    assert not _of(report, RULE_ID)

    for name in ("constraint px_k_r_excl on public.px", "public.pam"):
        source.execute((hits[name].remediation or "").removeprefix("On the source: "), db)
    # The views need rewriting by hand: as the advice says, with the jsonb_path functions.
    source.execute(
        "CREATE OR REPLACE VIEW jt AS SELECT v::int AS v FROM jsonb_path_query('[1, 2]'::jsonb, '$[*]') AS v; "
        "CREATE OR REPLACE VIEW jq AS SELECT jsonb_path_query_first('{\"a\": 1}'::jsonb, '$.a') AS q",
        db,
    )
    fixed = _check(source, target, db)
    assert not _of(fixed, "syntax-newer-major") and not _of(fixed, RULE_ID)
    assert fixed.trial is not None and not fixed.trial.failures
