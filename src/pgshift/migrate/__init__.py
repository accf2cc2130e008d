"""``pgshift migrate``: a whole-cluster cross-version migration in one command, resumable.

Public API (used by the CLI, the demo and tests)::

    plan = plan_migration(options, sink=sink)          # preflight + plan; touches nothing
    result = run_migration(options, sink=sink, confirm=ask)

``run_migration`` raises ``pgshift.errors`` classes: PreflightRefused (exit 2), ConnectionFailed
(3), ToolchainError (4), StepFailed (5), Interrupted (130/143). A run whose verification finds
differences returns a result with ``ok=False`` (the CLI exits 5).
"""

from __future__ import annotations

from pgshift.migrate.options import IfExists, MigrateOptions
from pgshift.migrate.plan import (
    PHASES,
    DatabasePlan,
    ExtensionPlan,
    GlobalsPlan,
    MigrationPlan,
    RolePlan,
    ServerSummary,
    Step,
)
from pgshift.migrate.result import DatabaseResult, GlobalsResult, MigrationResult
from pgshift.migrate.runner import load_resume_options, plan_migration, run_migration

__all__ = [
    "PHASES",
    "DatabasePlan",
    "DatabaseResult",
    "ExtensionPlan",
    "GlobalsPlan",
    "GlobalsResult",
    "IfExists",
    "MigrateOptions",
    "MigrationPlan",
    "MigrationResult",
    "RolePlan",
    "ServerSummary",
    "Step",
    "load_resume_options",
    "plan_migration",
    "run_migration",
]
