"""``pgshift rehearse``: the real migration into a throwaway server of the planned major.

Public API (used by the CLI and tests)::

    plan = plan_rehearsal(options, sink=sink)      # the steps, with the migration plan; changes nothing
    result = run_rehearsal(options, sink=sink)     # start, check, migrate, sample, measure, stop

A move that does not load is the result's verdict (``not-ready``, exit 2), not an error; errors
are what stops the rehearsal itself (``pgshift.errors``), always after the cleanup.
"""

from __future__ import annotations

from pgshift.rehearse.model import (
    PLAN_KIND,
    RESULT_KIND,
    SCHEMA_VERSION,
    DatabaseFigures,
    LabSummary,
    Refusal,
    RehearsalPlan,
    RehearsalResult,
    RehearsalStep,
    RehearseOptions,
    SampledTable,
)
from pgshift.rehearse.runner import plan_rehearsal, run_rehearsal

__all__ = [
    "PLAN_KIND",
    "RESULT_KIND",
    "SCHEMA_VERSION",
    "DatabaseFigures",
    "LabSummary",
    "Refusal",
    "RehearsalPlan",
    "RehearsalResult",
    "RehearsalStep",
    "RehearseOptions",
    "SampledTable",
    "plan_rehearsal",
    "run_rehearsal",
]
