from __future__ import annotations

import pytest

from pgshift.conninfo import Endpoint, ResolvedEndpoint, refused_value
from pgshift.errors import ToolchainError, UsageError
from pgshift.process import redact


def test_display_hides_the_password() -> None:
    ep = Endpoint.parse("postgresql://alice:s3cret@db1:5433/app", "source")
    assert "s3cret" not in ep.display()
    assert "s3cret" not in repr(ep)
    assert "db1" in ep.display()


def test_unparseable_string_is_a_usage_error_without_echoing_it() -> None:
    with pytest.raises(UsageError) as err:
        Endpoint.parse("host=db1 password='hunter2", "source")
    assert "hunter2" not in str(err.value)


def test_child_conninfo_and_env_carry_no_pg_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGHOST", "wrong-host")
    monkeypatch.setenv("PGPASSWORD", "leaked")
    ep = ResolvedEndpoint("source", {"host": "db1", "port": "5432", "user": "u", "dbname": "app"}, "pw")
    env = ep.child_env()
    assert "PGHOST" not in env
    assert env["PGPASSWORD"] == "pw"
    assert env["LC_ALL"] == "C"
    assert "pw" not in ep.child_conninfo()
    assert "dbname=other" in ep.child_conninfo("other")


def test_keywords_too_new_for_the_client_libpq_are_caught() -> None:
    ep = ResolvedEndpoint("target", {"host": "h", "sslnegotiation": "direct", "require_auth": "scram-sha-256"})
    assert ep.unsupported_keywords(15) == ["require_auth", "sslnegotiation"]
    assert ep.unsupported_keywords(17) == []
    with pytest.raises(ToolchainError) as err:
        ep.require_client_support(16, "pg_dump 16")
    assert "sslnegotiation" in err.value.message
    assert "17" in (err.value.hint or "")


def test_redact_covers_conninfo_uri_and_known_secrets() -> None:
    assert "x1" not in redact("host=a password=x1 user=b")
    assert "x2" not in redact("password='x2 y' host=a")
    assert "x3" not in redact("postgresql://u:x3@h/db")
    assert "tok" not in redact("error near tok", ["tok"])


@pytest.mark.parametrize(
    "libpq_message",
    [
        'connection is bad: invalid integer value "abc" for connection option "port"',
        'connection is bad: invalid sslmode value: "bogus"',
        "connection is bad: could not match 3 port numbers to 2 hosts",
        'connection is bad: definition of service "nosuch" not found',
    ],
)
def test_values_libpq_refuses_are_usage_errors(libpq_message: str) -> None:
    refused = refused_value("target", libpq_message)
    assert isinstance(refused, UsageError)
    assert refused.message == "the target connection string is not valid: " + libpq_message.split(": ", 1)[1]
    assert "postgresql://" in (refused.hint or "") and "service=NAME" in (refused.hint or "")


@pytest.mark.parametrize(
    "libpq_message",
    [
        'connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused',
        'connection failed: FATAL:  password authentication failed for user "postgres"',
        'connection failed: FATAL:  database "x" does not exist',
        'connection is bad: could not translate host name "nowhere" to address',
    ],
)
def test_network_and_server_failures_are_not_usage_errors(libpq_message: str) -> None:
    assert refused_value("source", libpq_message) is None


def test_an_unparseable_connection_string_is_quoted_as_libpq_saw_it_with_passwords_hidden() -> None:
    with pytest.raises(UsageError) as plain:
        Endpoint.parse("a", "source")
    assert 'missing "=" after "a" in connection info string' in plain.value.message
    with pytest.raises(UsageError) as secret:
        Endpoint.parse("host=db1 password=s3cret-Pw port", "source")
    assert "s3cret-Pw" not in secret.value.message and "cannot be parsed" in secret.value.message
