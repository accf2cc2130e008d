"""Running a backup's or a restore's plan: migrate's step wrapper, executors and journal, in one loop.

The steps are migrate's (``migrate.plan.Step``), run through ``migrate.steps.Run`` (events, timing,
the journal's record, failures as errors); the kinds only sets have are executed here
(``EXECUTORS``), every other kind by migrate's own executor. Global steps before the first database
step run first, then each database's chain (in parallel, ``parallel`` at once), then the global
steps after them. Work happens in a worker thread so that Ctrl-C and SIGTERM reach the main
thread at once: it stops the children, cancels queries, records the interruption and raises.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import signal
from collections.abc import Callable, Mapping, Sequence

import psycopg

from pgshift.catalog.session import query_failed
from pgshift.errors import Interrupted, PgshiftError, StepFailed, WorkdirFull
from pgshift.migrate import steps
from pgshift.migrate.plan import Step
from pgshift.migrate.runner import _Signalled, _sigterm_raises, _wait
from pgshift.process import stopping_children

Executor = Callable[[steps.Run, Step], None]


def split(plan_steps: Sequence[Step]) -> tuple[list[Step], dict[str, list[Step]], list[Step]]:
    """(global steps before the databases, each database's chain in order, global steps after)."""
    before: list[Step] = []
    chains: dict[str, list[Step]] = {}
    after: list[Step] = []
    for step in plan_steps:
        if step.database is not None:
            chains.setdefault(step.database, []).append(step)
        elif chains:
            after.append(step)
        else:
            before.append(step)
    return before, chains, after


def _execute(run: steps.Run, step: Step, own: Mapping[str, Executor]) -> None:
    executor = own.get(step.kind)
    if executor is not None:
        executor(run, step)
    else:
        steps.execute(run, step)


def _body(run: steps.Run, plan_steps: Sequence[Step], own: Mapping[str, Executor], parallel: int) -> None:
    before, chains, after = split(plan_steps)
    for step in before:
        try:
            _execute(run, step, own)
        except psycopg.Error as exc:
            run.check_cancel()
            raise query_failed(step.title, exc) from None

    def chain(database: str) -> None:
        try:
            for step in chains[database]:
                _execute(run, step, own)
        except psycopg.Error as exc:
            run.check_cancel()
            raise query_failed(f"database {database!r}", exc) from None
        finally:
            run.release_snapshot(database)

    errors: dict[str, PgshiftError] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="db") as pool:
        futures = {pool.submit(chain, name): name for name in chains}
        for fut in concurrent.futures.as_completed(futures):
            failure = fut.exception()
            name = futures[fut]
            if isinstance(failure, PgshiftError):
                errors[name] = failure
            elif failure is not None:
                errors[name] = StepFailed(f"database {name!r}: internal error {type(failure).__name__}: {failure}")
    run.check_cancel()
    if errors:
        # A full disk is the one cause to name when it is among them.
        full = next((e for e in errors.values() if isinstance(e, WorkdirFull)), None)
        if full is not None:
            raise full
        first_name, first = next(iter(errors.items()))
        others = [n for n in errors if n != first_name]
        if others:
            first.message += f" (and {len(others)} other database(s) failed: {', '.join(others)})"
        raise first
    for step in after:
        _execute(run, step, own)


def run_steps(
    run: steps.Run,
    plan_steps: Sequence[Step],
    *,
    own: Mapping[str, Executor],
    parallel: int,
    resume_hint: str,
) -> None:
    """Every step of the plan, journaled; the journal's status says how the run ended.

    Raises the first failure (its hint extended with ``resume_hint``), or ``Interrupted``.
    """
    journal, log = run.journal, run.log
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="run")
    try:
        with _sigterm_raises():
            future = executor.submit(_body, run, plan_steps, own, parallel)
            try:
                _wait(future)  # type: ignore[arg-type]
            except PgshiftError as exc:
                _end(run, "failed", exc.message + (f"\n{exc.detail}" if exc.detail else ""))
                if resume_hint and not isinstance(exc, Interrupted):
                    exc.hint = (exc.hint.rstrip(".") + "; then " if exc.hint else "fix the cause, then ") + resume_hint
                raise
            except (KeyboardInterrupt, _Signalled) as exc:
                signum = exc.signum if isinstance(exc, _Signalled) else signal.SIGINT
                run.cancel.set()
                with stopping_children():
                    run.cancel_queries()
                    with contextlib.suppress(BaseException):
                        future.result(timeout=120)
                _end(run, "interrupted", f"interrupted by signal {int(signum)}")
                raise Interrupted(
                    f"interrupted ({'Ctrl-C' if signum == signal.SIGINT else 'SIGTERM'})",
                    hint=resume_hint or None,
                    signum=int(signum),
                ) from None
        journal.set_status("done")
        log.write("info", "finished")
    finally:
        executor.shutdown(wait=False)


def _end(run: steps.Run, status: str, text: str) -> None:
    with contextlib.suppress(WorkdirFull):
        run.journal.set_status(status)  # type: ignore[arg-type]
    with contextlib.suppress(WorkdirFull):
        run.log.write("error", text)
