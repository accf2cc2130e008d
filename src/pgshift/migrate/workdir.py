"""The private work directory of a run: journal, log, pg_dumpall record, dump archives.

Layout (directory 0700, files 0600)::

    WORKDIR/journal.json     every step's state, written atomically (write, fsync, rename)
    WORKDIR/migrate.log      every command run and SQL statement applied to the target, redacted
    WORKDIR/globals.sql      pg_dumpall --globals-only of the source (the record)
    WORKDIR/dumps/NN-name/   pg_dump -Fd archives, removed once verified unless --keep-dumps
    WORKDIR/.lock            held while a run uses the directory
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from pgshift import paths
from pgshift.errors import PreflightRefused, UsageError
from pgshift.events import Event, EventSink, Message, StepFinished, StepStarted

JOURNAL = "journal.json"
LOG = "migrate.log"
GLOBALS = "globals.sql"
JOURNAL_SCHEMA = 1

# Database states in the journal, in the order a database goes through them.
STATES = ("pending", "creating", "created", "dumping", "dumped", "restoring", "restored", "analyzed", "done")
# A database in one of these was touched on the target and is not finished: resume drops it.
HALF_DONE = frozenset({"creating", "created", "dumping", "dumped", "restoring", "restored"})
# Finished on the target (verified or not yet): never redone.
FINISHED = frozenset({"analyzed", "done"})


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
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"--workdir {path} is not a directory")
        entries = {p.name for p in path.iterdir()}
        if entries - {".lock", JOURNAL, LOG, GLOBALS, "dumps"}:
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
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        handle = os.fdopen(fd, "r+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise PreflightRefused(
                f"another pgshift run is using {self.path.parent}",
                hint="wait for it to finish (or stop it), then resume",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Journal:
    """The run's record of every step, saved atomically after each change (thread-safe)."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data
        self._lock = threading.RLock()

    @classmethod
    def create(cls, workdir: Path, header: dict[str, Any]) -> Journal:
        data = {
            "kind": "pgshift-migrate-journal",
            "schema_version": JOURNAL_SCHEMA,
            "run_id": new_run_id(),
            "created": _now(),
            "status": "running",
            "attempts": 1,
            **header,
            "globals": {
                "state": "pending",
                "created_roles": [],
                "intended_roles": [],
                "memberships": 0,
                "tablespaces": [],
            },
            "databases": {},
            "steps": [],
        }
        journal = cls(workdir / JOURNAL, data)
        journal.save()
        return journal

    @classmethod
    def load(cls, workdir: Path) -> Journal:
        path = workdir / JOURNAL
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(
                f"{workdir} holds no migration journal ({JOURNAL})",
                hint="give the work directory printed by the run to resume (--resume DIR)",
            ) from None
        except (OSError, json.JSONDecodeError) as exc:
            raise UsageError(f"the journal {path} cannot be read: {exc}") from None
        if data.get("kind") != "pgshift-migrate-journal" or data.get("schema_version") != JOURNAL_SCHEMA:
            raise UsageError(f"{path} is not a pgshift migration journal of a known version")
        journal = cls(path, data)
        if "run_id" not in data:  # journals of 0.1 runs: an id of their own from now on
            data["run_id"] = new_run_id()
        data["globals"].setdefault("intended_roles", [])
        return journal

    @property
    def run_id(self) -> str:
        return str(self.data["run_id"])

    def save(self) -> None:
        with self._lock:
            self.data["updated"] = _now()
            tmp = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(self.data, handle, indent=2, ensure_ascii=False, default=str)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)

    # -- steps ---------------------------------------------------------------------------------

    def record(self, step: str, state: str, **extra: Any) -> None:
        with self._lock:
            self.data["steps"].append({"at": _now(), "step": step, "state": state, **extra})
            self.save()

    def set_status(self, status: str, **extra: Any) -> None:
        with self._lock:
            self.data["status"] = status
            self.data.update(extra)
            self.save()

    @property
    def status(self) -> str:
        return str(self.data.get("status", ""))

    # -- globals -------------------------------------------------------------------------------

    @property
    def globals(self) -> dict[str, Any]:
        return self.data["globals"]  # type: ignore[no-any-return]

    def globals_update(self, **changes: Any) -> None:
        with self._lock:
            self.data["globals"].update(changes)
            self.save()

    def role_intended(self, name: str) -> None:
        """Written before CREATE ROLE: a crash after its commit must not make the role someone else's."""
        with self._lock:
            intended = self.data["globals"]["intended_roles"]
            if name not in intended:
                intended.append(name)
                self.save()

    def role_not_ours(self, name: str) -> None:
        """CREATE ROLE found the role already there: someone else made it; it is not this run's."""
        with self._lock:
            intended = self.data["globals"]["intended_roles"]
            if name in intended:
                intended.remove(name)
                self.save()

    def roles_of_run(self, on_target: set[str]) -> set[str]:
        """Roles this run created: recorded as created, or intended and present on the target."""
        g = self.data["globals"]
        return set(g.get("created_roles", [])) | (set(g.get("intended_roles", [])) & on_target)

    def role_created(self, name: str) -> None:
        with self._lock:
            self.data["globals"]["created_roles"].append(name)
            self.save()

    # -- databases ------------------------------------------------------------------------------

    def database(self, source: str) -> dict[str, Any] | None:
        return self.data["databases"].get(source)  # type: ignore[no-any-return]

    def add_database(self, source: str, target: str, dump_dir: str) -> None:
        with self._lock:
            if source not in self.data["databases"]:
                self.data["databases"][source] = {
                    "target": target,
                    "state": "pending",
                    "dump_dir": dump_dir,
                    "dump_complete": False,
                    "created_by_run": False,
                    "seconds": {},
                    "error": None,
                }
                self.save()

    def db_update(self, source: str, **changes: Any) -> None:
        with self._lock:
            entry = self.data["databases"][source]
            entry.update(changes)
            if "state" in changes:
                self.data["steps"].append({"at": _now(), "step": f"db:{source}", "state": changes["state"]})
            self.save()

    def db_seconds(self, source: str, phase: str, seconds: float) -> None:
        with self._lock:
            self.data["databases"][source]["seconds"][phase] = round(seconds, 3)
            self.save()


class RunLog:
    """The run's log file: timestamped lines, every command and every statement applied."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._file = os.fdopen(fd, "a", encoding="utf-8", errors="replace")
        self._lock = threading.Lock()

    def write(self, kind: str, text: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        with self._lock:
            for i, line in enumerate(text.splitlines() or [""]):
                self._file.write(f"{stamp} {kind:<7} {'' if i == 0 else '  '}{line}\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()

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
