"""The journal of a run: what every step of the plan did, so that a later attempt does only the rest.

Two files in the work directory (both 0600):

``journal.json``
    The header: schema version, run id, the servers' identities, the options, the client, the
    databases of the run with their targets and dump directories. Replaced atomically (write,
    fsync, rename) when an attempt starts or ends — never for a step.

``journal.events``
    Append-only JSON lines, one per change: a step started, ended (done, failed, interrupted)
    with its seconds, error and artifacts; a role's intent and outcome; an item of a restore
    finished. State changes are fsync'd before the work they announce goes on. Loading replays
    them; an attempt starting under the lock compacts them (one ``snapshot`` line, atomically).

A torn last line (a crash mid-write) is ignored: what it announced is found again from evidence.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pgshift import paths
from pgshift.errors import UsageError

JOURNAL = "journal.json"
EVENTS = "journal.events"
KIND = "pgshift-migrate-journal"
SCHEMA_VERSION = 2

StepState = Literal["pending", "running", "done", "failed", "interrupted"]
RunStatus = Literal["running", "done", "failed", "interrupted", "verify-failed"]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class StepRecord:
    """What the journal knows of one step of the plan, over every attempt."""

    id: str
    state: StepState = "pending"
    attempts: int = 0
    started: str | None = None
    ended: str | None = None
    seconds: float = 0.0  # all attempts together
    error: str | None = None  # of the last attempt; cleared when it is done
    artifacts: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.state == "done"

    @property
    def begun(self) -> bool:
        return self.attempts > 0


@dataclass(frozen=True)
class DatabaseEntry:
    source: str
    target: str
    dump_dir: str


@dataclass(frozen=True)
class DatabaseRecord:
    """A database of the run as its steps' records tell it (see ``Journal.database``)."""

    source: str
    target: str
    dump_dir: str
    steps: Mapping[str, StepRecord]  # by kind: "create-database", "dump", …

    def step(self, kind: str) -> StepRecord:
        return self.steps.get(kind) or StepRecord(f"db:{self.source}:{kind}")

    @property
    def finished(self) -> bool:
        return self.step("finish").done

    @property
    def touched_target(self) -> bool:
        """Some step that changes the target database began."""
        return any(
            self.step(k).begun
            for k in (
                "drop-database",
                "create-database",
                "restore-schema",
                "restore-data",
                "stream-data",
                "database-settings",
            )
        )

    @property
    def created_by_run(self) -> bool:
        # Written when the create step starts (the intent), before CREATE DATABASE.
        return bool(self.step("create-database").artifacts.get("created_by_run"))

    @property
    def dump_complete(self) -> bool:
        return self.step("dump").done and self.step("dump").artifacts.get("dump_dir") == self.dump_dir

    def restored(self, *, schema_only: bool) -> bool:
        """Every step that reads the dump is done: what is left runs SQL only (settings, ANALYZE,
        the last step), and the dump, removed by then, is not needed again."""
        if schema_only:
            return self.step("restore-schema").done
        data = self.step("restore-data")
        if data.done and data.artifacts.get("triggers_deferred"):
            return self.step("restore-triggers").done
        return data.done or self.step("stream-data").done

    @property
    def dump_started(self) -> bool:
        return self.step("dump").begun

    @property
    def dump_evidence(self) -> str | None:
        value = self.step("dump").artifacts.get("evidence")
        return str(value) if value is not None else None

    @property
    def dump_bytes(self) -> int | None:
        value = self.step("dump").artifacts.get("dump_bytes")
        return int(value) if value is not None else None

    @property
    def items_done(self) -> frozenset[int]:
        """TOC items of the data step that pg_restore reported finished."""
        return frozenset(self.step("restore-data").artifacts.get("items_done", ()))

    @property
    def error(self) -> str | None:
        """The error still standing: a step that failed and was not done since."""
        for record in self.steps.values():
            if record.state == "failed" and record.error:
                return record.error
        return None

    @property
    def state(self) -> str:
        """A word for messages: the last step that began, and how it stands."""
        begun = [r for r in self.steps.values() if r.begun]
        if not begun:
            return "pending"
        last = max(begun, key=lambda r: r.started or "")
        return f"{last.id.rsplit(':', 1)[-1]} {last.state}"

    def seconds(self) -> dict[str, float]:
        """Seconds by phase (create, dump, restore, analyze), all attempts together."""
        out: dict[str, float] = {}
        for kind, record in self.steps.items():
            phase = _PHASE_OF.get(kind)
            if phase and record.seconds:
                out[phase] = round(out.get(phase, 0.0) + record.seconds, 3)
        order = ("create", "dump", "restore", "analyze")  # the phases' own order, whatever ran first
        return {p: out[p] for p in sorted(out, key=lambda p: order.index(p) if p in order else len(order))}

    def step_seconds(self) -> dict[str, float]:
        """Seconds by step kind, in the order they ran, all attempts together; stream mode's copy is
        split as its engine timed it (copy, post-data after the last copy, sequences+matviews)."""
        out: dict[str, float] = {}
        for kind, record in sorted(self.steps.items(), key=lambda kv: kv[1].started or ""):
            parts = record.artifacts.get("timings") if kind == "stream-data" else None
            if isinstance(parts, dict) and parts:
                # What the engine did not time: the post-data script from the archive, the listing.
                parts = {**parts, "script": max(0.0, record.seconds - sum(float(v) for v in parts.values()))}
                for part, seconds in parts.items():
                    out[f"stream-data:{part}"] = round(out.get(f"stream-data:{part}", 0.0) + float(seconds), 3)
            elif record.seconds:
                out[kind] = round(out.get(kind, 0.0) + record.seconds, 3)
        return out


_PHASE_OF = {
    "drop-database": "create",
    "create-database": "create",
    "dump": "dump",
    "restore-schema": "restore",
    "restore-data": "restore",
    "restore-triggers": "restore",
    "stream-data": "restore",  # stream mode: the copy with its indexes and constraints
    "stream-finish": "restore",
    "database-settings": "restore",
    "analyze": "analyze",
    "finish": "analyze",
    "recopy": "restore",
}


class Journal:
    """The run's journal: the header and the replayed events. Thread-safe."""

    def __init__(self, workdir: Path, header: dict[str, Any]) -> None:
        self.workdir = workdir
        self.path = workdir / JOURNAL
        self.events_path = workdir / EVENTS
        self.header = header
        self.steps: dict[str, StepRecord] = {}
        self.status: RunStatus = "running"
        self.attempts = 0
        self.intended_roles: set[str] = set()
        self.created_roles: list[str] = []
        self.databases: dict[str, DatabaseEntry] = {}
        self.verify_note = ""
        self._lock = threading.RLock()
        self._events: int | None = None  # the events file, appended with os.write

    # --- files --------------------------------------------------------------------------------

    @classmethod
    def create(cls, workdir: Path, header: Mapping[str, Any]) -> Journal:
        journal = cls(workdir, {"kind": KIND, "schema_version": SCHEMA_VERSION, "created": now(), **header})
        journal._write_header()
        _atomic_write(journal.events_path, "")
        journal.begin_attempt(compact=False)
        return journal

    @classmethod
    def load(cls, workdir: Path) -> Journal:
        """Read header and events (nothing is written: a dry run reads too)."""
        journal = cls(workdir, cls.read_header(workdir))
        for number, event in _read_events(workdir / EVENTS):
            try:
                journal._apply(event)
            except (KeyError, TypeError, ValueError, AttributeError):
                raise _damaged(workdir / EVENTS, number) from None
        return journal

    @staticmethod
    def read_header(workdir: Path) -> dict[str, Any]:
        """The header alone (the options, the servers): what resuming needs before the run starts."""
        path = workdir / JOURNAL
        try:
            header = json.loads(path.read_text(encoding="utf-8", errors="surrogateescape"))
        except FileNotFoundError:
            raise UsageError(
                f"{workdir} holds no migration journal ({JOURNAL})",
                hint="give the work directory printed by the run to resume (--resume DIR)",
            ) from None
        except (OSError, json.JSONDecodeError, RecursionError) as exc:  # RecursionError: nested too deep to read
            raise UsageError(f"the journal {path} cannot be read: {exc}") from None
        if not isinstance(header, dict) or header.get("kind") != KIND:
            raise UsageError(f"{path} is not a pgshift migration journal")
        version = header.get("schema_version")
        if version != SCHEMA_VERSION:
            raise UsageError(
                f"the journal {path} has schema version {version}; this pgshift reads version {SCHEMA_VERSION}",
                hint="finish that run with the pgshift that started it, or start a new run",
            )
        return header

    def _write_header(self) -> None:
        with self._lock:
            self.header["updated"] = now()
            _atomic_write(self.path, json.dumps(self.header, indent=2, ensure_ascii=False, default=str) + "\n")

    def _append(self, event: dict[str, Any], *, sync: bool = True) -> None:
        """Write one event, then apply it: a write the disk refuses (WorkdirFull) leaves the file
        and the state as they were, each event whole or absent."""
        with self._lock:
            event = {"at": now(), **event}
            # Names the catalog holds undecoded (bytes not valid in their database's encoding,
            # session.py) are written as those very bytes, and read back the same way.
            line = (json.dumps(event, ensure_ascii=False, default=str) + "\n").encode("utf-8", "surrogateescape")
            try:
                if self._events is None:
                    self._events = os.open(self.events_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                paths.append_line(self._events, line, self.workdir)
                if sync:
                    os.fsync(self._events)
            except OSError as exc:
                raise (paths.write_refused(exc, self.workdir) or exc) from None
            self._apply(event)

    def close(self) -> None:
        with self._lock:
            if self._events is not None:
                with contextlib.suppress(OSError):
                    os.fsync(self._events)
                with contextlib.suppress(OSError):
                    os.close(self._events)
                self._events = None

    def compact(self) -> None:
        """Replace the events by one snapshot of the state they add up to (atomically)."""
        with self._lock:
            self.close()
            snapshot = {"at": now(), "e": "snapshot", "state": self.snapshot()}
            _atomic_write(self.events_path, json.dumps(snapshot, ensure_ascii=False, default=str) + "\n")

    # --- replay ---------------------------------------------------------------------------------

    def _apply(self, event: Mapping[str, Any]) -> None:
        kind = event.get("e")
        if kind == "snapshot":
            self._restore(event["state"])
        elif kind == "step":
            record = self.steps.setdefault(event["id"], StepRecord(event["id"]))
            state = event["state"]
            if state == "running":
                record.attempts += 1
                record.started = event["at"]
                record.ended = None
            else:
                record.ended = event["at"]
                record.seconds = round(record.seconds + float(event.get("seconds", 0.0)), 3)
                record.error = event.get("error") if state == "failed" else None
            record.state = state
            record.artifacts.update(event.get("artifacts", {}))
        elif kind == "artifacts":
            self.steps.setdefault(event["id"], StepRecord(event["id"])).artifacts.update(event["artifacts"])
        elif kind == "items":
            record = self.steps.setdefault(event["id"], StepRecord(event["id"]))
            done = set(record.artifacts.get("items_done", ()))
            done.update(int(i) for i in event["items"])
            record.artifacts["items_done"] = sorted(done)
        elif kind == "attempt":
            self.attempts = int(event["attempt"])
            self.status = "running"
        elif kind == "status":
            self.status = event["status"]
            if "verify_note" in event:
                self.verify_note = str(event["verify_note"])
        elif kind == "role":
            name, outcome = event["name"], event["outcome"]
            if outcome == "intended":
                self.intended_roles.add(name)
            elif outcome == "created":
                if name not in self.created_roles:
                    self.created_roles.append(name)
            elif outcome == "not-ours":
                self.intended_roles.discard(name)
        elif kind == "database":
            self.databases[event["source"]] = DatabaseEntry(event["source"], event["target"], event["dump_dir"])

    def snapshot(self) -> dict[str, Any]:
        """The whole state as JSON-ready data (also what ``pgshift migrate --resume … --format json`` reads)."""
        return {
            "status": self.status,
            "attempts": self.attempts,
            "verify_note": self.verify_note,
            "steps": {k: asdict(v) for k, v in self.steps.items()},
            "roles": {"intended": sorted(self.intended_roles), "created": list(self.created_roles)},
            "databases": {k: asdict(v) for k, v in self.databases.items()},
        }

    def _restore(self, state: Mapping[str, Any]) -> None:
        self.status = state["status"]
        self.attempts = int(state["attempts"])
        self.verify_note = str(state.get("verify_note", ""))
        self.steps = {k: StepRecord(**v) for k, v in state["steps"].items()}
        self.intended_roles = set(state["roles"]["intended"])
        self.created_roles = list(state["roles"]["created"])
        self.databases = {k: DatabaseEntry(**v) for k, v in state["databases"].items()}

    # --- attempts and status --------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return str(self.header["run_id"])

    def begin_attempt(self, header: Mapping[str, Any] | None = None, *, compact: bool = True) -> int:
        """A new attempt (under the work directory's lock): steps left running were cut short."""
        with self._lock:
            if compact:
                for record in self.steps.values():
                    if record.state == "running":
                        record.state = "interrupted"
                self.compact()
            if header:
                self.header.update(header)
                self._write_header()
            self._append({"e": "attempt", "attempt": self.attempts + 1})
            return self.attempts

    def set_status(self, status: RunStatus, *, verify_note: str | None = None) -> None:
        event: dict[str, Any] = {"e": "status", "status": status}
        if verify_note is not None:
            event["verify_note"] = verify_note
        self._append(event)

    # --- steps ----------------------------------------------------------------------------------

    def step(self, step_id: str) -> StepRecord:
        return self.steps.get(step_id) or StepRecord(step_id)

    def done(self, step_id: str) -> bool:
        return self.step(step_id).done

    def step_started(self, step_id: str, **artifacts: Any) -> None:
        """Before the step's work: its intent (e.g. that this run creates the database)."""
        self._append({"e": "step", "id": step_id, "state": "running", "artifacts": artifacts})

    def step_ended(
        self, step_id: str, state: StepState, seconds: float, *, error: str | None = None, **artifacts: Any
    ) -> None:
        event: dict[str, Any] = {"e": "step", "id": step_id, "state": state, "seconds": round(seconds, 3)}
        if error:
            event["error"] = error
        if artifacts:
            event["artifacts"] = artifacts
        self._append(event)

    def step_artifacts(self, step_id: str, **artifacts: Any) -> None:
        """What a running step produced so far (e.g. the evidence taken before a dump)."""
        self._append({"e": "artifacts", "id": step_id, "artifacts": artifacts})

    def items_finished(self, step_id: str, items: Iterable[int]) -> None:
        """Items of a restore that finished: not fsync'd, since the target's catalog is the evidence."""
        items = list(items)
        if items:
            self._append({"e": "items", "id": step_id, "items": items}, sync=False)

    # --- roles ----------------------------------------------------------------------------------

    def role_intended(self, name: str) -> None:
        """Written before CREATE ROLE: a crash after its commit must not make the role someone else's."""
        if name not in self.intended_roles:
            self._append({"e": "role", "name": name, "outcome": "intended"})

    def role_created(self, name: str) -> None:
        self._append({"e": "role", "name": name, "outcome": "created"})

    def role_not_ours(self, name: str) -> None:
        """CREATE ROLE found the role already there: someone else made it; it is not this run's."""
        self._append({"e": "role", "name": name, "outcome": "not-ours"})

    def roles_of_run(self, on_target: set[str]) -> set[str]:
        """Roles this run created: recorded as created, or intended and present on the target."""
        return set(self.created_roles) | (self.intended_roles & on_target)

    # --- databases ------------------------------------------------------------------------------

    def add_database(self, source: str, target: str, dump_dir: str) -> None:
        known = self.databases.get(source)
        if known is None or known.dump_dir != dump_dir or known.target != target:
            self._append({"e": "database", "source": source, "target": target, "dump_dir": dump_dir})

    def database(self, source: str) -> DatabaseRecord | None:
        entry = self.databases.get(source)
        if entry is None:
            return None
        prefix = f"db:{source}:"
        steps = {k.removeprefix(prefix): v for k, v in self.steps.items() if k.startswith(prefix)}
        return DatabaseRecord(entry.source, entry.target, entry.dump_dir, steps)


def _damaged(path: Path, line: int) -> UsageError:
    return UsageError(
        f"the journal {path} is damaged at line {line}",
        hint="pgshift only appends to it: restore the file from a backup, or start a new run in another --workdir",
    )


def _read_events(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        lines = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    except FileNotFoundError:
        return
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            if i == len(lines) - 1:
                return  # torn by a crash mid-write
            raise _damaged(path, i + 1) from None
        yield i + 1, event


def _atomic_write(path: Path, text: str) -> None:
    """Write, fsync, rename: the file is the old one or the new one; a refused write is WorkdirFull."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            paths.append_line(fd, text.encode("utf-8", "surrogateescape"), path.parent)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise (paths.write_refused(exc, path.parent) or exc) from None
    with contextlib.suppress(OSError):
        dirfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)


def killed_attempt(journal: Journal, pid: int | None) -> str:
    """What a resume (migrate's, restore's) says of an attempt that died unrecorded: who, and in which
    steps (a DBA looks for the OOM killer's line or the operator's kill at that time)."""
    cut = [r for r in journal.steps.values() if r.state == "running"]
    where = ""
    if cut:
        where = " while " + ", ".join(
            f"{r.id} was running" + (f" (since {_clock(r.started)})" if r.started else "") for r in cut
        )
    return (
        "the previous attempt was killed"
        + (f" (pid {pid})" if pid else "")
        + where
        + " before it could record its end; what it had not finished is done again"
    )


def _clock(stamp: str) -> str:
    """An ISO time of the journal as a person reads it in a log: 2026-12-03 10:01:02 UTC."""
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
