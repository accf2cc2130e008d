"""The small pieces of fault handling that need no server: hints, sizes, a child's disk-full words."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pgshift import paths
from pgshift.conninfo import Endpoint
from pgshift.errors import WorkdirFull, human_bytes
from pgshift.migrate.options import MigrateOptions
from pgshift.migrate.runner import with_resume_hint

SRC = Endpoint.parse("host=old user=postgres dbname=postgres", "source")
TGT = Endpoint.parse("host=new user=postgres dbname=postgres", "target")
OPTIONS = MigrateOptions(source=SRC, target=TGT)


@pytest.mark.parametrize(
    "hint",
    [
        None,
        "see the log in the work directory and fix the cause",
        "the dump is taken again on resume.",
        "fix the cause, then resume with pgshift migrate --resume /w",
        "continue that run with: pgshift migrate --resume /w, or replace the database",
    ],
)
def test_a_failure_hint_names_the_resume_command_exactly_once(hint: str | None) -> None:
    text = with_resume_hint(hint, OPTIONS, Path("/w"))
    assert text.count("--resume") == 1, text
    assert "pgshift migrate --resume /w" in text
    if hint:
        assert text.startswith(hint.rstrip("."))


def test_workdir_full_names_the_directory_the_need_and_the_free_space() -> None:
    full = WorkdirFull("/w", reason="full", free=20 * 1024 * 1024)
    assert full.message == "the work directory /w is full (20.0 MB free)"
    full.with_needed(53 * 1024 * 1024, free=19 * 1024 * 1024)
    assert full.message == "the work directory /w is full (53.0 MB needed, 19.0 MB free)"
    assert "--resume" not in (full.hint or "")  # the runner adds the command that fits the run
    assert WorkdirFull("/w", reason="read-only", free=None).message.endswith(
        "became read-only while the run wrote to it"
    )
    assert full.exit_code == 5


@pytest.mark.parametrize(("n", "text"), [(0, "0 bytes"), (512, "512 bytes"), (1536, "1.5 kB"), (3 * 1024**3, "3.0 GB")])
def test_human_bytes(n: int, text: str) -> None:
    assert human_bytes(n) == text


def test_a_childs_own_disk_full_message_is_the_work_directory_but_a_servers_is_not(tmp_path: Path) -> None:
    own = "pg_dump: error: could not write to output file: No space left on device"
    found = paths.refused_in_output(own, tmp_path)
    assert found is not None and found.reason == "full" and found.workdir == str(tmp_path)
    server = (
        'pg_dump: error: Dumping the contents of table "t" failed: PQgetResult() failed.\n'
        'pg_dump: detail: Error message from server: ERROR:  could not write to file "base/pgsql_tmp/x": '
        "No space left on device"
    )
    assert paths.refused_in_output(server, tmp_path) is None
    assert paths.refused_in_output("pg_dump: error: connection to server lost", tmp_path) is None


def test_an_oserror_of_a_refused_write_becomes_workdir_full_and_others_do_not(tmp_path: Path) -> None:
    for code, reason in ((errno.ENOSPC, "full"), (errno.EDQUOT, "quota"), (errno.EROFS, "read-only")):
        found = paths.write_refused(OSError(code, os.strerror(code)), tmp_path)
        assert found is not None and found.reason == reason
    assert paths.write_refused(OSError(errno.EBADF, "bad"), tmp_path) is None
    assert paths.write_refused(ValueError("x"), tmp_path) is None
