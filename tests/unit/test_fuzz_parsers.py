"""What pgshift parses, fuzzed: any input ends in a value or a documented error, never a crash.

Version strings (server banners, ``--version`` output, majors typed by users), connection strings
(key=value and URIs, as typed) and journal files (as a crash, a full disk or a user's editor may
leave them). "Documented" means a ``PgshiftError``: the CLI turns it into one message and an exit
code; anything else would be an internal error with a traceback.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pgshift.conninfo import Endpoint
from pgshift.errors import PgshiftError, UsageError
from pgshift.migrate.journal import EVENTS, JOURNAL, KIND, SCHEMA_VERSION, Journal
from pgshift.version import PgVersion, parse_major

FUZZ = settings(
    max_examples=300,
    deadline=None,  # shared 2-core machines: timing says nothing here
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- version strings ----------------------------------------------------------------------------------

_VERSION_WORDS = st.sampled_from(
    ["PostgreSQL", "pg_dump (PostgreSQL)", "EnterpriseDB", "on x86_64-pc-linux-gnu,", "(Debian", "devel", "beta", "rc"]
)
_NUMBERS = st.integers(min_value=0, max_value=10**30).map(str) | st.text(string.digits + "٣੩", min_size=1, max_size=30)
version_like = st.lists(
    st.one_of(_VERSION_WORDS, _NUMBERS, st.text(string.digits + ".", max_size=12), st.text(max_size=8)), max_size=8
).map(" ".join)


@FUZZ
@given(text=version_like | st.text(max_size=200))
@example(text="PostgreSQL " + "9" * 5000)  # more digits than int() converts by default
@example(text="9." + "9" * 5000)
def test_version_strings_parse_or_raise_a_pgshift_error(text: str) -> None:
    try:
        version = PgVersion.parse(text)
    except PgshiftError as exc:
        assert exc.message
        return
    assert version.num >= 70000
    assert str(version) and version.major_label  # a parsed version prints


@FUZZ
@given(num=st.integers() | st.text(max_size=40) | st.none())
@example(num="1" * 5000)
def test_server_version_nums_parse_or_raise_a_pgshift_error(num: Any) -> None:
    try:
        version = PgVersion.from_num(num)
    except PgshiftError:
        return
    assert str(version)


@FUZZ
@given(text=st.text(string.digits + ". \t\n", max_size=30) | st.text(max_size=30))
@example(text="1" * 5000)
@example(text="9." + "1" * 5000)
def test_majors_typed_by_users_parse_or_raise_a_usage_error(text: str) -> None:
    try:
        major = parse_major(text)
    except UsageError as exc:
        assert exc.hint
        return
    assert str(major)


# --- connection strings -------------------------------------------------------------------------------

_KEYS = st.sampled_from(
    ["host", "port", "dbname", "user", "password", "sslmode", "service", "options", "connect_timeout", "bogus", ""]
)
_VALUES = st.text(max_size=20) | st.sampled_from(["'quoted value'", "'unterminated", "a\\'b", "", "=", "%zz", "\x00"])
keyword_value = st.lists(st.tuples(_KEYS, _VALUES), max_size=6).map(
    lambda pairs: " ".join(f"{k}={v}" for k, v in pairs)
)
uri = st.builds(
    lambda scheme, user, host, port, path, query: f"{scheme}://{user}{host}{port}{path}{query}",
    st.sampled_from(["postgresql", "postgres", "postgresql", "http"]),
    st.sampled_from(["", "u@", "u:secret@", ":@", "%zz@", "a:b:c@"]),
    st.sampled_from(["", "localhost", "[::1]", "[::1", "h1,h2", "%2Ftmp", "ä"]) | st.text(max_size=8),
    st.sampled_from(["", ":5432", ":", ":abc", ":99999999999999999999"]),
    st.sampled_from(["", "/", "/db", "/d%20b", "/%"]) | st.text(max_size=6).map(lambda t: "/" + t),
    st.sampled_from(["", "?", "?sslmode=require", "?x", "?password=hunter2&user=u", "?=&&="]),
)


_PASSWORD = "hunter2"
with_password = st.one_of(
    st.tuples(keyword_value, keyword_value).map(lambda kv: f"{kv[0]} password={_PASSWORD} {kv[1]}"),
    st.tuples(keyword_value, st.sampled_from(["'", "\\", "= x", "'a b", "x="])).map(
        lambda kv: f"password={_PASSWORD}{kv[1]} {kv[0]}"
    ),
    uri.map(lambda u: u.replace("u:secret@", f"u:{_PASSWORD}@").replace("password=hunter2", f"password={_PASSWORD}")),
)


@FUZZ
@given(text=with_password | keyword_value | uri | st.text(max_size=80))
@example(text="host=h password=hunter2 'broken")
@example(text="password='hunter2")
@example(text="postgresql://u:hunter2@[::1/db")
@example(text="port=\x00")
def test_connection_strings_parse_or_raise_a_usage_error_that_never_shows_a_password(text: str) -> None:
    try:
        endpoint = Endpoint.parse(text, "source")
    except UsageError as exc:
        assert exc.message.startswith("the source connection string")
        if f"password={_PASSWORD}" in text or f":{_PASSWORD}@" in text:  # given as a password: never shown
            assert _PASSWORD not in exc.message and _PASSWORD not in (exc.hint or ""), exc.message
        return
    assert endpoint.conninfo()  # pgshift's own connection string can be built from what parsed
    if endpoint.password and endpoint.password.startswith(_PASSWORD):
        assert _PASSWORD not in endpoint.display()


# --- journal files -----------------------------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_EVENT_KINDS = st.sampled_from(["snapshot", "step", "artifacts", "items", "attempt", "status", "role", "database", "x"])
_FIELDS = st.sampled_from(
    ["id", "state", "at", "seconds", "error", "artifacts", "items", "attempt", "status", "verify_note", "name",
     "outcome", "source", "target", "dump_dir"]
)  # fmt: skip
_STATES = st.sampled_from(["running", "done", "failed", "skipped"])
event_like = st.dictionaries(_FIELDS, _JSON | _STATES, max_size=6).flatmap(
    lambda body: _EVENT_KINDS.map(lambda kind: {**body, "e": kind})
)
event_line = st.one_of(
    event_like.map(json.dumps),
    _JSON.map(json.dumps),
    st.text(max_size=40),
    st.just("[" * 5000),  # nested deeper than json's recursion limit
)
header_text = st.one_of(
    st.just(json.dumps({"kind": KIND, "schema_version": SCHEMA_VERSION})),
    st.dictionaries(st.text(max_size=8), _JSON, max_size=4).map(
        lambda extra: json.dumps({"kind": KIND, "schema_version": SCHEMA_VERSION, **extra})
    ),
    _JSON.map(json.dumps),
    st.text(max_size=60),
    st.just("[" * 5000),
)


@settings(FUZZ, max_examples=150)  # each example writes two files
@given(header=header_text, lines=st.lists(event_line, max_size=8), raw=st.binary(max_size=40))
def test_journal_files_load_or_raise_a_usage_error(tmp_path: Path, header: str, lines: list[str], raw: bytes) -> None:
    workdir = tmp_path / "run"
    workdir.mkdir(exist_ok=True)
    (workdir / JOURNAL).write_text(header, encoding="utf-8")
    (workdir / EVENTS).write_bytes("\n".join(lines).encode("utf-8", "surrogateescape") + b"\n" + raw)
    try:
        journal = Journal.load(workdir)
    except UsageError as exc:
        assert exc.message
        return
    # What loaded can be asked what every resume asks.
    for step_id in list(journal.steps)[:5]:
        journal.step(step_id)
        journal.done(step_id)
    assert journal.status


@pytest.mark.parametrize("damage", ["[" * 5000, '{"e": "attempt", "attempt": "one"}', "\udcff{"])
def test_a_damaged_journal_line_in_the_middle_names_the_line(tmp_path: Path, damage: str) -> None:
    (tmp_path / JOURNAL).write_text(json.dumps({"kind": KIND, "schema_version": SCHEMA_VERSION}))
    good = json.dumps({"e": "attempt", "attempt": 1, "at": "2026-01-01T00:00:00Z"})
    (tmp_path / EVENTS).write_text(f"{good}\n{damage}\n{good}\n", encoding="utf-8", errors="surrogateescape")
    with pytest.raises(UsageError, match=r"is damaged at line 2"):
        Journal.load(tmp_path)
