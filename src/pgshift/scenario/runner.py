"""Running scenarios: servers of each case's pair, the setup, pgshift as a user runs it, the expectations.

Each case gets a source and a target server of its own (``backend`` "lab": local throwaway servers;
"docker": servers in containers of locally built images) and a temporary directory for pgshift's
state and work directories; both are removed when the case ends, whatever its outcome. A step
runs ``python -m pgshift …`` through ``pgshift.process`` with a clean environment (no ``PG*``
variables, no colours), so the scenario tests the command line a user has, not pgshift's internals.
Assertions are answered by the runner's own connection to the servers, not by pgshift.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psycopg

from pgshift import paths, process
from pgshift.catalog.generated import create_generated_tables
from pgshift.errors import Interrupted, PgshiftError, UsageError
from pgshift.events import EventSink, Level, Message, StepFinished, StepStarted, discard
from pgshift.lab import corpus
from pgshift.lab.server import LabServer
from pgshift.scenario.model import Case, ServerSpec, SetupItem, SqlAssertion, Step
from pgshift.scenario.result import CaseResult, RunResult, Status, StepResult, not_run

Backend = Literal["lab", "docker"]
BACKENDS: tuple[Backend, ...] = ("lab", "docker")
JSON_COMMANDS = ("check", "migrate", "verify")
TAIL_LINES = 15


@dataclass(frozen=True)
class RunOptions:
    backend: Backend = "lab"
    jobs: int = 1


def _start_server(backend: Backend, major: int, spec: ServerSpec) -> LabServer:
    if backend == "docker":
        from pgshift.lab import docker as docker_lab

        return docker_lab.start(
            major, encoding=spec.encoding, locale=spec.locale, settings=spec.settings, initdb_args=spec.initdb_args
        )
    from pgshift.lab import start

    return start(
        major, encoding=spec.encoding, locale=spec.locale, settings=spec.settings, initdb_args=spec.initdb_args
    )


def prepare(cases: Sequence[Case], backend: Backend, sink: EventSink = discard) -> None:
    """Fetch (or build) what the cases' servers need, once, before cases run in parallel."""
    majors = sorted({m for c in cases for m in (c.source, c.target)})
    if backend == "docker":
        from pgshift.toolchain.docker import build_image

        for major in majors:
            build_image(major, sink=sink)
    else:
        from pgshift.lab.binaries import server_binaries

        for major in majors:
            server_binaries(major, sink=sink)


def conninfo_uri(server: LabServer, role: str) -> str:
    """What the command line gets: a URI as a user types it (lab servers trust 127.0.0.1: no password)."""
    return f"postgresql://{role}@{server.host}:{server.port}/postgres"


def _child_env(state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k not in ("FORCE_COLOR", "CLICOLOR")}
    for name in ("PGSHIFT_CACHE_DIR", "PGSHIFT_LAB_DIR", "PGSHIFT_LAB_USER"):
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(
        {
            "NO_COLOR": "1",
            "COLUMNS": "200",
            "TERM": "dumb",
            "PGSHIFT_CACHE_DIR": str(paths.cache_dir()),
            "PGSHIFT_STATE_DIR": str(state),
            "XDG_STATE_HOME": str(state.parent / "xdg-state"),
        }
    )
    return env


class _CaseRun:
    """One case, from its servers' start to their removal."""

    def __init__(self, case: Case, backend: Backend, stop: threading.Event) -> None:
        self.case = case
        self.backend = backend
        self.stop = stop
        self.servers: dict[str, LabServer] = {}
        self.tmp = Path(tempfile.mkdtemp(prefix="pgshift-scenario-"))
        self.failures: list[str] = []

    def __call__(self) -> CaseResult:
        started = time.monotonic()
        steps: list[StepResult] = []
        setup_seconds = 0.0
        status = Status.passed
        try:
            scenario = self.case.scenario
            self.servers["source"] = _start_server(self.backend, self.case.source, scenario.source)
            self.servers["target"] = _start_server(self.backend, self.case.target, scenario.target)
            for item in scenario.setup:
                self._setup(item)
            setup_seconds = time.monotonic() - started
            for step in scenario.steps:
                if self.stop.is_set():
                    raise Interrupted()
                result = self._step(step)
                steps.append(result)
                if not result.ok:
                    status = Status.failed
                    self.failures += result.failures
                    break  # later steps build on this one's outcome
        except Interrupted:
            status = Status.interrupted
            self.failures.append("interrupted")
        except PgshiftError as exc:
            status = Status.error
            self.failures.append(exc.message + (f" ({exc.detail.strip().splitlines()[-1]})" if exc.detail else ""))
        except psycopg.Error as exc:
            status = Status.error
            self.failures.append(f"setup: {str(exc).strip().splitlines()[0]}")
        finally:
            versions = {side: str(s.version) for side, s in self.servers.items()}
            for server in self.servers.values():
                server.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)
        return CaseResult(
            scenario=self.case.scenario.name,
            source=self.case.source,
            target=self.case.target,
            status=status,
            seconds=time.monotonic() - started,
            setup_seconds=setup_seconds,
            steps=tuple(steps),
            failures=tuple(self.failures),
            source_version=versions.get("source", ""),
            target_version=versions.get("target", ""),
        )

    # --- setup -------------------------------------------------------------------------------------

    def _setup(self, item: SetupItem) -> None:
        server = self.servers[item.side]
        where = f"setup on the {item.side}, database {item.database}"
        if item.sample is not None:
            corpus.load(server, item.sample, item.database, create=True)
            return
        try:
            if item.generate is not None:
                g = item.generate
                with server.connect(item.database, client_encoding="UTF8") as conn:
                    create_generated_tables(
                        conn, schema=g.schema, prefix=g.prefix, tables=g.tables, rows=g.rows, row_bytes=g.row_bytes
                    )
            else:
                # Scenario files are UTF-8: the session says so, whatever the database's encoding.
                statements = [item.file.read_text(encoding="utf-8")] if item.file is not None else list(item.sql)
                with server.connect(item.database, client_encoding="UTF8") as conn:
                    for statement in statements:
                        conn.execute(statement.encode())
        except psycopg.Error as exc:
            what = f"file {item.file.name}" if item.file else "SQL"
            raise UsageError(f"{where}: the {what} failed: {str(exc).strip().splitlines()[0]}") from None

    # --- steps -------------------------------------------------------------------------------------

    def _argv(self, step: Step) -> list[str]:
        values = {
            "source": conninfo_uri(self.servers["source"], self.case.scenario.source.role),
            "target": conninfo_uri(self.servers["target"], self.case.scenario.target.role),
            "workdir": str(self.tmp / "work"),
            "scenario_dir": str(self.case.scenario.directory),
        }
        words = shlex.split(step.run.format(**values))
        if (
            words
            and words[0] in JSON_COMMANDS
            and not any(w in ("--json", "--help") or w.startswith("--format") for w in words)
        ):
            words.append("--json")
        return [sys.executable, "-m", "pgshift", *words]

    def _step(self, step: Step) -> StepResult:
        (self.tmp / "work").mkdir(exist_ok=True)
        argv = self._argv(step)
        stderr: list[str] = []
        started = time.monotonic()
        command = process.Command(tuple(argv), env=_child_env(self.tmp / "state"), cwd=str(self.tmp / "work"))
        try:
            done = process.run(command, on_stderr=stderr.append, check=False, timeout=step.timeout)
        except PgshiftError as exc:  # the timeout, or Python missing
            return StepResult(step.run, None, step.exits, time.monotonic() - started, failures=(exc.message,))
        seconds = time.monotonic() - started
        failures: list[str] = []
        if done.returncode not in step.exits:
            expected = " or ".join(map(str, step.exits))
            failures.append(f"`pgshift {step.run}` exited {done.returncode}, expected {expected}")
        document = _json_document(done.stdout) if "--json" in argv else None
        findings = _findings(document) if step.command == "check" else ()
        verify = _verify_outcome(step.command, document)
        failures += _finding_failures(step, findings, document is not None)
        if done.returncode not in step.exits and findings:
            # Why check's status differs: what it reported, the blockers and warnings first.
            shown = [f"{sev} {rule}" for sev, rule in findings if sev in ("blocker", "warning")]
            failures.append("check reported: " + (", ".join(shown) or "information only"))
        if step.verify is not None and verify != step.verify:
            failures.append(f"verify: expected {step.verify}, got {verify or 'no verify result'}")
        for text in step.stdout_contains:
            if text not in done.stdout:
                failures.append(f"stdout does not contain {text!r}")
        all_stderr = "\n".join(stderr)
        for text in step.stderr_contains:
            if text not in all_stderr:
                failures.append(f"stderr does not contain {text!r}")
        if not failures:
            for assertion in step.asserts:
                failure = self._assert(assertion)
                if failure:
                    failures.append(failure)
        tail = stderr[-TAIL_LINES:]
        if document is None and done.stdout.strip():
            tail = done.stdout.rstrip("\n").splitlines()[-TAIL_LINES:] + tail
        return StepResult(
            run=step.run,
            exit_code=done.returncode,
            expected_exit=step.exits,
            seconds=seconds,
            failures=tuple(failures),
            findings=tuple(f"{sev} {rule}" for sev, rule in findings),
            verify=verify,
            output_tail=tuple(tail),
        )

    def _assert(self, assertion: SqlAssertion) -> str:
        server = self.servers[assertion.on]
        try:
            rows = query_text(server, assertion.database, assertion.sql)
        except psycopg.Error as exc:
            return f"{assertion.describe()}: the query failed: {str(exc).strip().splitlines()[0]}"
        if assertion.same_as_source:
            try:
                expected = query_text(self.servers["source"], assertion.database, assertion.sql)
            except psycopg.Error as exc:
                return f"{assertion.describe()}: the query failed on the source: {str(exc).strip().splitlines()[0]}"
            if rows != expected:
                return f"{assertion.describe()}: target {_shown(rows)}, source {_shown(expected)}"
        elif assertion.equals is not None:
            got = rows[0][0] if rows and rows[0] else None
            if got != assertion.equals:
                return f"{assertion.describe()}: got {got!r}"
        elif assertion.count is not None:
            if len(rows) != assertion.count:
                return f"{assertion.describe()}: got {len(rows)} row(s)"
        elif assertion.rows is not None and tuple(rows) != assertion.rows:
            return f"{assertion.describe()}: got {_shown(rows)}"
        return ""


def _shown(rows: Sequence[tuple[str | None, ...]]) -> str:
    return repr(list(rows[:10])) + (f" … ({len(rows)} rows)" if len(rows) > 10 else "")


def query_text(server: LabServer, database: str, sql: str) -> list[tuple[str | None, ...]]:
    """The rows of ``sql`` as PostgreSQL prints them (text format, the database's encoding)."""
    with server.connect(database, client_encoding="UTF8") as conn:
        cursor = conn.execute(sql.encode(), binary=False)
        result = cursor.pgresult
        if result is None or not result.nfields:
            return []
        encoding = "utf-8"  # SQL_ASCII databases send their bytes as they are: undecodable ones show as U+FFFD
        rows: list[tuple[str | None, ...]] = []
        for row in range(result.ntuples):
            values = [result.get_value(row, col) for col in range(result.nfields)]
            rows.append(tuple(None if v is None else bytes(v).decode(encoding, errors="replace") for v in values))
        return rows


def _json_document(stdout: str) -> dict[str, Any] | None:
    try:
        document = json.loads(stdout)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _findings(document: dict[str, Any] | None) -> tuple[tuple[str, str], ...]:
    if document is None:
        return ()
    found = document.get("findings") or []
    return tuple((str(f.get("severity")), str(f.get("rule_id"))) for f in found if isinstance(f, dict))


def _finding_failures(step: Step, findings: Sequence[tuple[str, str]], have_json: bool) -> list[str]:
    wanted = [("any", r) for r in step.findings]
    wanted += [("blocker", r) for r in step.blockers]
    wanted += [("warning", r) for r in step.warnings]
    wanted += [("info", r) for r in step.infos]
    if not wanted and not step.no_findings:
        return []
    if not have_json:
        return ["check printed no JSON report to read findings from"]
    failures: list[str] = []
    reported = {rule for _, rule in findings}
    for severity, rule in wanted:
        if severity == "any":
            if rule not in reported:
                failures.append(f"check did not report {rule}")
        elif (severity, rule) not in findings:
            got = sorted(sev for sev, r in findings if r == rule)
            failures.append(f"check did not report {rule} as {severity}" + (f" (as {', '.join(got)})" if got else ""))
    for rule in step.no_findings:
        if rule in reported:
            failures.append(f"check reported {rule}, which the scenario says it must not")
    return failures


def _verify_outcome(command: str, document: dict[str, Any] | None) -> str | None:
    if document is None:
        return None
    if command == "verify" and "equal" in document:
        return "equal" if document["equal"] else "different"
    if command == "migrate" and "verify" in document:
        verify = document["verify"]
        if not isinstance(verify, dict):
            return "skipped"
        return "equal" if verify.get("equal") else "different"
    return None


class _Terminated(Exception):
    """SIGTERM, raised in the main thread so that the cases stop as after Ctrl-C."""


def _terminate_as_exception() -> Any:
    """Make SIGTERM raise ``_Terminated`` (main thread only); returns the handler to restore, or None."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(_signum: int, _frame: object) -> None:
        raise _Terminated()

    return signal.signal(signal.SIGTERM, handler)


def run_cases(cases: Sequence[Case], options: RunOptions, sink: EventSink = discard) -> RunResult:
    """Run ``cases`` (``options.jobs`` at a time) and collect their results in the order given."""
    started = time.monotonic()
    prepare(cases, options.backend, sink)
    stop = threading.Event()
    results: dict[int, CaseResult] = {}

    def one(index: int, case: Case) -> CaseResult:
        sink(StepStarted(case.id, step=case.id))
        result = _CaseRun(case, options.backend, stop)()
        ok = result.status is Status.passed
        sink(StepFinished(f"{case.id}: {result.status}", step=case.id, ok=ok, seconds=result.seconds))
        if not ok:
            for failure in result.failures:
                sink(Message(f"{case.id}: {failure}", level=Level.DEBUG))
        return result

    pool = ThreadPoolExecutor(max_workers=max(1, options.jobs), thread_name_prefix="scenario")
    futures: dict[Future[CaseResult], int] = {pool.submit(one, i, c): i for i, c in enumerate(cases)}
    previous = _terminate_as_exception()
    try:
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                results[futures[future]] = future.result()
    except (KeyboardInterrupt, _Terminated) as exc:
        stop.set()
        for future in futures:
            future.cancel()
        process.terminate_all()  # the running pgshift children; their cases then stop their servers
        pool.shutdown(wait=True)
        signum = signal.SIGTERM if isinstance(exc, _Terminated) else signal.SIGINT
        raise Interrupted("interrupted while scenarios were running", signum=int(signum)) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    pool.shutdown(wait=True)
    ordered = tuple(results.get(i) or not_run(c, Status.error, "did not run") for i, c in enumerate(cases))
    descriptions = {c.scenario.name: c.scenario.description for c in cases}
    return RunResult(ordered, options.backend, options.jobs, time.monotonic() - started, descriptions)
