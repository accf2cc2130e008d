"""Children start with the signals the parent held during the fork unblocked, and the parent's mask
is restored: a Ctrl-C that arrives while pgshift forks waits for the fork, it is not lost."""

from __future__ import annotations

import signal

from pgshift.process import Command, run


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
