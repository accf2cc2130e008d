"""The runner: preflight, plan, then each step recorded in the journal (skeleton; filled in next)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pgshift.conninfo import Endpoint
from pgshift.events import EventSink, discard
from pgshift.migrate.options import MigrateOptions
from pgshift.migrate.plan import MigrationPlan
from pgshift.migrate.result import MigrationResult


def plan_migration(options: MigrateOptions, *, sink: EventSink = discard) -> MigrationPlan:
    """Preflight and plan: connects to both servers, reads, decides; touches nothing."""
    raise NotImplementedError


def run_migration(
    options: MigrateOptions,
    *,
    sink: EventSink = discard,
    confirm: Callable[[str], bool] = lambda question: False,
) -> MigrationResult:
    """Preflight, plan, then run every step, journaled; returns what moved (see module docs)."""
    raise NotImplementedError


def load_resume_options(
    workdir: Path,
    *,
    source: Endpoint | None = None,
    target: Endpoint | None = None,
    changes: Mapping[str, Any] | None = None,
) -> MigrateOptions:
    """The options of the run recorded in ``workdir``, ready for ``run_migration`` (resume=True)."""
    raise NotImplementedError
