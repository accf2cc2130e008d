"""The private work directory of a run: journal, log, pg_dumpall record, dump archives.

Layout (directory 0700, files 0600)::

    WORKDIR/journal.json     the run's header (see pgshift.migrate.journal)
    WORKDIR/journal.events   every step's start and end, appended
    WORKDIR/migrate.log      every command run and SQL statement applied to the target, redacted
    WORKDIR/globals.sql      pg_dumpall --globals-only of the source (the record)
    WORKDIR/dumps/NN-name/   pg_dump -Fd archives, removed once verified unless --keep-dumps
    WORKDIR/.lock            held while a run uses the directory
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from pgshift import paths
from pgshift.errors import PreflightRefused, UsageError
from pgshift.events import Event, EventSink, Message, StepFinished, StepStarted
from pgshift.migrate.journal import EVENTS, JOURNAL

LOG = "migrate.log"
GLOBALS = "globals.sql"


def default_workdir() -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = paths.state_dir() / "runs" / stamp
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{stamp}-{n}")
    return path


def new_run_id() -> str:
    return uuid.uuid4().hex[:16]


def check_new_workdir(path: Path) -> None:
    """Refuse, before anything is read or changed, a --workdir that cannot hold a new run."""
    paths.work_directory(path, "--workdir")  # a file, under a file, read-only, /proc …
    if path.exists():
        try:
            entries = {p.name for p in path.iterdir()}
        except OSError as exc:
            raise UsageError(f"--workdir {path} cannot be read ({exc.strerror})") from None
        if entries - {".lock", JOURNAL, EVENTS, LOG, GLOBALS, "dumps"}:
            raise UsageError(
                f"--workdir {path} is not empty and holds no pgshift run",
                hint="give a new or empty directory (pgshift creates it)",
            )
        if JOURNAL in entries:
            raise UsageError(
                f"--workdir {path} already holds a migration run",
                hint=f"continue it with: pgshift migrate --resume {path}  (or choose another --workdir)",
            )


def make_private(path: Path) -> Path:
    """Create ``path`` 0700; refuse a directory that holds something else than a pgshift run."""
    check_new_workdir(path)
    paths.private_dir(path)
    return path


def dump_dir_name(index: int, dbname: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", dbname)[:40].strip("._") or "db"
    return f"{index:02d}-{safe}"


class WorkdirLock:
    """An exclusive lock on a work directory: two runs never share one."""

    def __init__(self, workdir: Path) -> None:
        self.path = workdir / ".lock"
        self._file: IO[str] | None = None

    def previous_holder(self) -> int | None:
        """The pid the lock file names: the last process that held it."""
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return int(text) if text.isdigit() else None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            # A resumed run's directory that became read-only or was replaced: said as a bad path.
            paths.work_directory(self.path.parent, "--resume")
            raise
        handle = os.fdopen(fd, "r+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise PreflightRefused(
                f"another pgshift run is using {self.path.parent}",
                hint="wait for it to finish (or stop it), then resume",
            ) from None
        self._file = handle
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
        except OSError as exc:
            # The pid only names the holder for messages; a full disk is said once, by the error.
            refused = paths.write_refused(exc, self.path.parent)
            self.release()
            raise (refused or exc) from None

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file, fcntl.LOCK_UN)
            with contextlib.suppress(OSError):  # an unflushed pid on a full disk
                self._file.close()
            self._file = None


class RunLog:
    """The run's log file: timestamped lines, every command and every statement applied.

    A write the file system refuses raises WorkdirFull (from any thread: the stderr pump of a child
    turns it into the child's end, see process.run); later writes are tried again, since the space
    may have come back.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._lock = threading.Lock()

    def write(self, kind: str, text: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        lines = "".join(
            f"{stamp} {kind:<7} {'' if i == 0 else '  '}{line}\n" for i, line in enumerate(text.splitlines() or [""])
        )
        with self._lock:
            if self._fd is None:
                return  # closed: a late line of a child being stopped
            paths.append_line(self._fd, lines.encode("utf-8", errors="replace"), self.path.parent)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._fd)
                self._fd = None

    def sink(self, downstream: EventSink) -> EventSink:
        """A sink that writes messages and step ends to the log, then passes every event on."""

        def _sink(event: Event) -> None:
            if isinstance(event, Message):
                self.write(event.level.value if event.source == "pgshift" else event.source, event.title)
            elif isinstance(event, StepStarted):
                self.write("step", f"start {event.step}: {event.title}")
            elif isinstance(event, StepFinished):
                self.write("step", f"{'done' if event.ok else 'FAILED'} {event.step} ({event.seconds:.1f}s)")
            downstream(event)

        return _sink


def dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(root, name))
    return total


def private_files(path: Path) -> Iterator[Path]:
    """Files under ``path`` whose mode lets anyone but the owner in (should be none)."""
    for root, _dirs, files in os.walk(path):
        for name in files:
            p = Path(root) / name
            if p.stat().st_mode & 0o077:
                yield p
