"""Endpoints are resolved once: children get explicit parameters, never pgshift's PG* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgshift.catalog.session import resolve
from pgshift.conninfo import Endpoint
from pgshift.errors import ConnectionFailed
from pgshift.process import Command, run
from pgshift.toolchain.discover import discover
from pgshift.toolchain.select import find_local
from tests.conftest import ServerPool


def test_target_pghost_cannot_steer_the_source_dump(
    servers: ServerPool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source = servers.get(16)
    target = servers.get(18)
    source.execute("DROP DATABASE IF EXISTS steer_src")
    source.execute("CREATE DATABASE steer_src")
    source.execute("CREATE TABLE only_on_source (id int)", dbname="steer_src")
    # The user's shell points at the target; the source is named by a string that omits the port.
    monkeypatch.setenv("PGPORT", str(source.port))
    resolved = resolve(Endpoint.parse("host=127.0.0.1 user=postgres dbname=steer_src", "source"))
    monkeypatch.setenv("PGPORT", str(target.port))
    monkeypatch.setenv("PGDATABASE", "postgres")
    assert resolved.params["port"] == str(source.port)
    inst = find_local(discover(), 18)
    assert inst is not None
    out = tmp_path / "d.sql"
    run(
        Command(
            (str(inst.program("pg_dump")), "--dbname", resolved.child_conninfo(), "-f", str(out)),
            env=resolved.child_env(),
        )
    )
    assert "only_on_source" in out.read_text()


def test_password_reaches_children_through_the_environment_only(fresh_server: object, tmp_path: Path) -> None:
    server = fresh_server(17, password="Secret-Pw-42")  # type: ignore[operator]
    resolved = resolve(Endpoint.parse(server.conninfo(), "source"))
    assert resolved.password == "Secret-Pw-42"
    assert "Secret-Pw-42" not in resolved.child_conninfo()
    assert "Secret-Pw-42" not in resolved.display()
    inst = find_local(discover(), 17)
    assert inst is not None
    command = Command(
        (str(inst.program("psql")), "-X", "-At", "--dbname", resolved.child_conninfo(), "-c", "select 42"),
        env=resolved.child_env(),
        secrets=resolved.secrets,
    )
    assert "Secret-Pw-42" not in " ".join(command.argv)
    assert run(command).stdout.strip() == "42"


def test_wrong_password_is_a_connection_error_naming_the_fix(fresh_server: object) -> None:
    server = fresh_server(15, password="right")  # type: ignore[operator]
    with pytest.raises(ConnectionFailed) as err:
        resolve(Endpoint.parse(server.conninfo(password="wrong-one"), "source"))
    assert "password authentication failed" in err.value.message
    assert "wrong-one" not in err.value.message + (err.value.detail or "")
    assert err.value.hint and "password" in err.value.hint


def test_unreachable_port_fails_quickly_with_a_hint() -> None:
    with pytest.raises(ConnectionFailed) as err:
        resolve(Endpoint.parse("host=127.0.0.1 port=1 connect_timeout=2 user=x dbname=x", "target"))
    assert "target" in err.value.message
    assert err.value.hint and "port" in err.value.hint
