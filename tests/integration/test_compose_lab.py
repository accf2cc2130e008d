"""compose/: the upgrade lab's files validate, and the lab starts for real on locally built images
with its one documented command (compose/lab.sh up), then moves its sample with compose/lab.sh migrate."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from pgshift.errors import ToolchainError
from pgshift.process import docker_client

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose" / "upgrade-lab.yml"
LAB = ROOT / "compose" / "lab.sh"


def _compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_compose_file_validates() -> None:
    done = subprocess.run(
        [_compose(), "-f", str(COMPOSE_FILE), "config"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    for service in ("old:", "new:", "pgshift:"):
        assert service in done.stdout
    assert "image: pgshift/postgres:14" in done.stdout and "image: pgshift/postgres:18" in done.stdout


@pytest.mark.docker
def test_the_lab_starts_with_one_command_and_moves_its_sample() -> None:
    _compose()
    try:
        docker_client()
    except ToolchainError as exc:
        pytest.skip(f"no Docker daemon reachable: {exc.message}")
    old_port, new_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "OLD_PORT": str(old_port),
        "NEW_PORT": str(new_port),
        "SAMPLE": "chinook",
        "LAB_PROJECT": f"pgshift-lab-test-{os.getpid()}",
    }
    try:
        up = subprocess.run(["sh", str(LAB), "up"], env=env, capture_output=True, text=True, timeout=1200, check=False)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "loaded the chinook sample into the old server" in up.stdout, up.stdout
        assert "lab: ready" in up.stdout and "(14 → 18)" in up.stdout, up.stdout
        moved = subprocess.run(
            ["sh", str(LAB), "migrate", "-d", "chinook"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert moved.returncode == 0, moved.stdout + moved.stderr
        assert "verify: source and target are equal" in moved.stdout
        # The test's own look at the new server, from outside the lab's containers.
        with psycopg.connect(f"host=127.0.0.1 port={new_port} user=postgres dbname=chinook") as conn:
            row = conn.execute(
                "SELECT count(*), current_setting('server_version_num')::int / 10000 FROM track"
            ).fetchone()
        assert row == (3503, 18)
    finally:
        subprocess.run(["sh", str(LAB), "down"], env=env, capture_output=True, timeout=300, check=False)
    leftover = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={env['LAB_PROJECT']}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert leftover.stdout.strip() == ""
