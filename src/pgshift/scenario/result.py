"""What running scenarios found, as plain data the renderers (``report/scenario.py``) turn into a matrix."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pgshift.errors import ExitCode
from pgshift.scenario.model import Case, pair_label


class Status(StrEnum):
    passed = "passed"
    failed = "failed"  # ran, and something differed from the scenario's expectations
    error = "error"  # could not run: a server did not start, a setup statement failed
    interrupted = "interrupted"


@dataclass(frozen=True)
class StepResult:
    run: str  # the command line as written in the scenario (placeholders kept: no ports, no paths)
    exit_code: int | None
    expected_exit: tuple[int, ...]
    seconds: float
    failures: tuple[str, ...] = ()
    findings: tuple[str, ...] = ()  # "severity rule-id" reported by check (or migrate's preflight JSON)
    verify: str | None = None  # equal / different / skipped, when the command reports it
    output_tail: tuple[str, ...] = ()  # the last lines of stderr (and stdout when not JSON), for failures

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "exit_code": self.exit_code,
            "expected_exit": list(self.expected_exit),
            "seconds": round(self.seconds, 3),
            "ok": self.ok,
            "failures": list(self.failures),
            "findings": list(self.findings),
            "verify": self.verify,
            "output_tail": list(self.output_tail) if self.failures else [],
        }


@dataclass(frozen=True)
class CaseResult:
    scenario: str
    source: int
    target: int
    status: Status
    seconds: float
    setup_seconds: float = 0.0
    steps: tuple[StepResult, ...] = ()
    failures: tuple[str, ...] = ()  # every failure of the case, steps' included, in order
    source_version: str = ""
    target_version: str = ""

    @property
    def id(self) -> str:
        return f"{self.scenario}@{self.source}-{self.target}"

    @property
    def pair(self) -> str:
        return pair_label(self.source, self.target)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "scenario": self.scenario,
            "source": self.source,
            "target": self.target,
            "source_version": self.source_version,
            "target_version": self.target_version,
            "status": str(self.status),
            "seconds": round(self.seconds, 3),
            "setup_seconds": round(self.setup_seconds, 3),
            "failures": list(self.failures),
            "steps": [s.as_dict() for s in self.steps],
        }


def not_run(case: Case, status: Status, reason: str) -> CaseResult:
    return CaseResult(case.scenario.name, case.source, case.target, status, 0.0, failures=(reason,))


@dataclass(frozen=True)
class RunResult:
    cases: tuple[CaseResult, ...]
    backend: str
    jobs: int
    seconds: float
    descriptions: dict[str, str] = field(default_factory=dict)  # scenario name -> description

    def count(self, status: Status) -> int:
        return sum(1 for c in self.cases if c.status is status)

    @property
    def exit_code(self) -> ExitCode:
        if self.count(Status.interrupted):
            return ExitCode.INTERRUPTED
        if self.count(Status.error):
            return ExitCode.FAILED
        if self.count(Status.failed):
            return ExitCode.DIFFERENCES
        return ExitCode.OK

    @property
    def verdict(self) -> str:
        total = len(self.cases)
        if self.exit_code is ExitCode.OK:
            return f"all {total} case(s) passed"
        parts = [f"{self.count(s)} {s}" for s in Status if s is not Status.passed and self.count(s)]
        return f"{self.count(Status.passed)} of {total} case(s) passed; " + ", ".join(parts)

    def pairs(self) -> list[tuple[int, int]]:
        return sorted({(c.source, c.target) for c in self.cases})

    def scenarios(self) -> list[str]:
        seen: dict[str, None] = {}
        for case in self.cases:
            seen.setdefault(case.scenario, None)
        return list(seen)

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "exit_code": int(self.exit_code),
            "backend": self.backend,
            "jobs": self.jobs,
            "seconds": round(self.seconds, 3),
            "counts": {str(s): self.count(s) for s in Status},
            "cases": [c.as_dict() for c in self.cases],
        }
