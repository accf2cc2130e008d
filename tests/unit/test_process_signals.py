"""Children start with the signals the parent held during the fork unblocked, and the parent's mask
is restored: a Ctrl-C that arrives while pgshift forks waits for the fork, it is not lost."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from pgshift.errors import Interrupted
from pgshift.process import Command, output_stream, run, stopping_children


def _blocked_mask(status: str) -> int:
    line = next(x for x in status.splitlines() if x.startswith("SigBlk:"))
    return int(line.split()[1], 16)


def test_a_child_can_be_interrupted_and_the_parent_mask_is_restored() -> None:
    before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    done = run(Command(("cat", "/proc/self/status")))
    child_blocked = _blocked_mask(done.stdout)
    for signum in (signal.SIGINT, signal.SIGTERM):
        assert not child_blocked & (1 << (int(signum) - 1)), f"{signum.name} blocked in the child"
    assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == before


def _children_named(marker: str) -> list[str]:
    found = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    return found.split()


@pytest.mark.parametrize("start", ["run", "output_stream"])
def test_a_child_started_while_pgshift_stops_them_all_is_stopped_too(start: str, tmp_path: Path) -> None:
    """Ctrl-C: the main thread stops every child while a worker, past its own cancel check, starts
    one more. That child must not run to its end (it did, and its step was journaled done)."""
    marker = f"{tmp_path}/never-left-running"
    command = Command(("sh", "-c", f"sleep 30 # {marker}"))
    outcome: list[BaseException] = []

    def worker() -> None:
        try:
            if start == "run":
                run(command)
            else:
                with output_stream(command) as stream:
                    for _ in stream.chunks():
                        pass
        except BaseException as exc:
            outcome.append(exc)

    with stopping_children():
        thread = threading.Thread(target=worker)
        began = time.monotonic()
        thread.start()
        thread.join(timeout=20)
        assert not thread.is_alive()
    assert time.monotonic() - began < 10
    assert len(outcome) == 1 and isinstance(outcome[0], Interrupted), outcome
    assert not _children_named(marker)
    # Once stopped, pgshift may start children again (the next run in the same process).
    assert run(Command(("true",))).ok
