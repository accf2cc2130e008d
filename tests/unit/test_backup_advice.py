"""Known errors of pg_dump, pg_restore and psql are explained with their cause and fix, in every command."""

from __future__ import annotations

import pytest

from pgshift.migrate.steps import dump_advice, restore_advice

# Messages as PostgreSQL 14-18 clients print them (LC_ALL=C), and a word each piece of advice must hold.
CASES = [
    ('connection to server at "127.0.0.1", port 1 failed: Connection refused', "listens"),
    ('FATAL:  password authentication failed for user "app"', "PGPASSWORD"),
    ('FATAL:  no pg_hba.conf entry for host "10.0.0.1", user "app", database "x"', "pg_hba.conf"),
    ("unsupported version (1.16) in file header", "newer pg_dump"),
    ('could not open input file "/backups/x.dump": No such file or directory', "backup list"),
    ("input file does not appear to be a valid archive", "plain SQL"),
    ("aborting because of server version mismatch", "pg_dump is older"),
    ("could not write to file: No space left on device", "disk is full"),
    (
        'out of shared memory\nHINT:  You might need to increase "max_locks_per_transaction".',
        "max_locks_per_transaction",
    ),
    ("permission denied for table secrets", "superuser"),
]


@pytest.mark.parametrize(("message", "word"), CASES)
def test_known_client_errors_name_cause_and_fix(message: str, word: str) -> None:
    assert word in restore_advice(message) or word in dump_advice(message)
    for advice in (restore_advice(message), dump_advice(message)):
        assert advice != "see the log in the work directory and fix the cause"


def test_restore_advice_for_objects_that_exist_names_restores_ways() -> None:
    advice = restore_advice('relation "items" already exists')
    assert "--rename" in advice and "--clean --if-exists" in advice


def test_missing_role_and_extension() -> None:
    assert "--no-owner" in restore_advice('role "app" does not exist')
    assert "install its package" in restore_advice('extension "postgis" is not available')
    assert "connect as a role" in dump_advice('FATAL:  role "nobody" does not exist')
