"""What a scenario is, as plain data: servers, setup, the pgshift commands it runs and what it expects.

A scenario file (TOML, parsed by ``scenario.load``) names one or more source → target pairs; each
pair is a *case*, run on servers of its own. The runner runs each step's command as a user would
(``python -m pgshift …``) and compares what happened with the step's expectations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pgshift.version import major_label

Side = Literal["source", "target"]
VerifyOutcome = Literal["equal", "different", "skipped"]


@dataclass(frozen=True)
class ServerSpec:
    """How one side's lab server is made (initdb options) and which role pgshift connects as."""

    encoding: str = "UTF8"
    locale: str | None = None
    settings: Mapping[str, str] = field(default_factory=dict)
    initdb_args: tuple[str, ...] = ()
    role: str = "postgres"  # the role in the connection string the command gets


@dataclass(frozen=True)
class SetupItem:
    """One thing done to a server before the steps, in the order written.

    Exactly one of ``sample`` (a packaged sample database, loaded into ``database``, created),
    ``sql`` (statements, each run as one query, in ``database``), ``file`` (a SQL file beside the
    scenario, run as one query) or ``generate`` (tables of generated rows) is set.
    """

    side: Side
    database: str = "postgres"
    sample: str | None = None
    sql: tuple[str, ...] = ()
    file: Path | None = None
    generate: Generate | None = None


@dataclass(frozen=True)
class Generate:
    """``tables`` tables ``<prefix>1 …`` of ``rows`` rows each, ``row_bytes`` of text per row."""

    tables: int = 1
    rows: int = 0
    row_bytes: int = 0
    prefix: str = "t"
    schema: str = "public"


@dataclass(frozen=True)
class SqlAssertion:
    """A query the runner runs on a server after a step, with the answer it must give.

    ``equals`` compares the first column of the first row (as text); ``rows`` every row (as text,
    in order); ``count`` the number of rows; ``same_as_source`` runs the query on the source too and
    compares all rows. Values are compared as PostgreSQL prints them.
    """

    sql: str
    on: Side = "target"
    database: str = "postgres"
    equals: str | None = None
    rows: tuple[tuple[str | None, ...], ...] | None = None
    count: int | None = None
    same_as_source: bool = False

    def describe(self) -> str:
        where = f"{self.on}:{self.database}"
        if self.equals is not None:
            return f"{where} `{self.sql}` = {self.equals!r}"
        if self.same_as_source:
            return f"{where} `{self.sql}` gives what it gives on the source"
        if self.count is not None:
            return f"{where} `{self.sql}` returns {self.count} row(s)"
        return f"{where} `{self.sql}` returns {self.rows!r}"


@dataclass(frozen=True)
class Step:
    """One pgshift command line and what must come of it."""

    run: str  # the command line after "pgshift", with {source}, {target}, {workdir}, {scenario_dir}
    exits: tuple[int, ...] = (0,)  # the exit codes that pass (one, or several where pairs differ)
    findings: tuple[str, ...] = ()  # check rule ids that must be reported (any severity)
    blockers: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    infos: tuple[str, ...] = ()
    no_findings: tuple[str, ...] = ()  # rule ids that must not be reported
    verify: VerifyOutcome | None = None
    stdout_contains: tuple[str, ...] = ()
    stderr_contains: tuple[str, ...] = ()
    asserts: tuple[SqlAssertion, ...] = ()
    timeout: float = 900.0

    @property
    def command(self) -> str:
        return self.run.split(maxsplit=1)[0] if self.run.strip() else ""


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path
    description: str
    pairs: tuple[tuple[int, int], ...]
    steps: tuple[Step, ...]
    setup: tuple[SetupItem, ...] = ()
    source: ServerSpec = field(default_factory=ServerSpec)
    target: ServerSpec = field(default_factory=ServerSpec)
    tags: tuple[str, ...] = ()
    slow: bool = False  # left out by --skip-slow (CI's default set)

    @property
    def directory(self) -> Path:
        return self.path.parent

    def cases(self) -> tuple[Case, ...]:
        return tuple(Case(self, source, target) for source, target in self.pairs)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "file": str(self.path),
            "pairs": [pair_label(s, t) for s, t in self.pairs],
            "commands": [step.command for step in self.steps],
            "tags": list(self.tags),
            "slow": self.slow,
        }


@dataclass(frozen=True)
class Case:
    """A scenario on one source → target pair."""

    scenario: Scenario
    source: int
    target: int

    @property
    def pair(self) -> str:
        return pair_label(self.source, self.target)

    @property
    def id(self) -> str:
        return f"{self.scenario.name}@{self.source}-{self.target}"


def pair_label(source: int, target: int) -> str:
    return f"{major_label(source)}→{major_label(target)}"
