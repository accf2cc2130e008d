"""Unit tests run without servers: a connection attempt here is a bug in the test."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest


@pytest.fixture(autouse=True)
def _no_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("unit tests must not connect to PostgreSQL; move this test to tests/integration")

    monkeypatch.setattr(psycopg, "connect", refuse)
    monkeypatch.setattr(psycopg.Connection, "connect", refuse)
