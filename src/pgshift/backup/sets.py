"""Backup sets on disk: their layout, the manifest, what makes a set complete, listing, rotation, history.

A backup directory (``--to DIR``, 0700 when pgshift creates it) holds one directory per set::

    DIR/20261201T020000Z/            a complete set: it has a manifest and no .partial suffix
        manifest.json                written last: versions, databases, options, times, every file's size and SHA-256
        globals.sql                  pg_dumpall --globals-only (the record a DBA reads)
        globals.json                 roles, memberships, tablespaces, grants: what restore applies itself
        dumps/01-sales.dump          one archive per database (custom; NN-name/ directory; NN-name.sql plain)
        journal.json, journal.events, backup.log   the run that wrote it
    DIR/20261202T020000Z.partial/    a set being written, or one whose run died: never restored, never counted
    DIR/history.jsonl                one line per verify-backup: set, when, result, duration

A set is renamed from ``NAME.partial`` to ``NAME`` only after its manifest is written and synced,
so a crash at any instant leaves either a complete set or a partial one, never a set that looks
complete and is not. The manifest's checksums are checked before a restore reads anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pgshift import paths
from pgshift.errors import PreflightRefused, UsageError

MANIFEST = "manifest.json"
MANIFEST_KIND = "pgshift-backup-manifest"
SCHEMA_VERSION = 1
PARTIAL = ".partial"
HISTORY = "history.jsonl"
GLOBALS_SQL = "globals.sql"
GLOBALS_FACTS = "globals.json"
LOG = "backup.log"
# Files of the run that wrote a set: they change after the manifest is written, so it does not list them.
RUN_FILES = frozenset({MANIFEST, "journal.json", "journal.events", "journal.json.tmp", LOG, ".lock"})


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


_SET_NAME = re.compile(r"^(?P<stamp>\d{8}T\d{6}Z)(?:-(?P<n>\d+))?$")


def set_order(name: str) -> tuple[str, int, str]:
    """The time order of set names: the second, then the count within it (``…Z``, ``…Z-2``, ``…Z-10``)."""
    m = _SET_NAME.match(name.removesuffix(PARTIAL))
    if m is None:
        return (name, 0, name)
    return (m["stamp"], int(m["n"] or 1), name)


def new_set_name(directory: Path) -> str:
    """A name later in time order than every set of ``directory`` (complete or partial) from the same
    second: a count freed by rotation is never taken again, which would sort a new set before older ones."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    names = [p.name for p in directory.iterdir()] if directory.is_dir() else []
    n = max((set_order(name)[1] for name in names if set_order(name)[0] == stamp), default=0) + 1
    return stamp if n == 1 else f"{stamp}-{n}"


# --- files ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetFile:
    path: str  # relative to the set, with /
    size: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def set_files(root: Path) -> list[Path]:
    """The files a manifest lists: everything in the set but the run's own record."""
    out = []
    for base, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = Path(base) / name
            if path.parent == root and name in RUN_FILES:
                continue
            out.append(path)
    return out


def make_private(root: Path) -> None:
    """Directories 0700, files 0600 (pg_dump writes with the umask)."""
    os.chmod(root, 0o700)
    for base, dirs, files in os.walk(root):
        for d in dirs:
            os.chmod(os.path.join(base, d), 0o700)
        for f in files:
            os.chmod(os.path.join(base, f), 0o600)


def describe_files(root: Path) -> list[SetFile]:
    return [SetFile(p.relative_to(root).as_posix(), p.stat().st_size, sha256_of(p)) for p in set_files(root)]


def write_json_atomically(path: Path, doc: Mapping[str, Any]) -> None:
    """Write, fsync, rename, fsync the directory: the file is whole or absent (a refused write is WorkdirFull)."""
    tmp = path.with_name(path.name + ".tmp")
    data = (json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8", "surrogateescape")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            paths.append_line(fd, data, path.parent)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise (paths.write_refused(exc, path.parent) or exc) from None
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --- reading a set ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupSet:
    """A complete set as its manifest describes it."""

    path: Path
    manifest: Mapping[str, Any]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def server_version(self) -> str:
        return str(self.manifest["server"]["version"])

    @property
    def server_version_num(self) -> int:
        return int(self.manifest["server"]["version_num"])

    @property
    def client_major(self) -> int:
        return int(self.manifest["client"]["major_num"])

    @property
    def format(self) -> str:
        return str(self.manifest["options"]["format"])

    @property
    def databases(self) -> list[Mapping[str, Any]]:
        return list(self.manifest["databases"])

    def database(self, name: str) -> Mapping[str, Any] | None:
        return next((d for d in self.databases if d["name"] == name), None)

    def archive(self, name: str) -> Path:
        entry = self.database(name)
        assert entry is not None
        return self.path / str(entry["archive"])

    @property
    def size_bytes(self) -> int:
        return sum(int(f["size"]) for f in self.manifest["files"])

    def globals_facts(self) -> dict[str, Any]:
        try:
            data = json.loads((self.path / GLOBALS_FACTS).read_text(encoding="utf-8", errors="surrogateescape"))
        except (OSError, json.JSONDecodeError) as exc:
            raise PreflightRefused(f"the set {self.path} has no readable {GLOBALS_FACTS} ({exc})") from None
        if not isinstance(data, dict):
            raise PreflightRefused(f"{self.path / GLOBALS_FACTS} is not what pgshift backup writes")
        return data


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the set at ``path``; refused (exit 2) when the set is incomplete or not a set."""
    if not path.exists():
        raise UsageError(
            f"there is no backup set at {path}", hint="give a set directory listed by: pgshift backup list DIR"
        )
    if not path.is_dir():
        raise UsageError(f"{path} is a file, not a backup set directory")
    if path.name.endswith(PARTIAL):
        raise PreflightRefused(
            f"{path} is an incomplete backup set: its run did not finish (it is still running, failed or was killed)",
            hint="restore a complete set (pgshift backup list DIR shows which are), or take a new backup",
        )
    manifest = path / MANIFEST
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8", errors="surrogateescape"))
    except FileNotFoundError:
        raise PreflightRefused(
            f"{path} has no {MANIFEST}: it is not a complete pgshift backup set",
            hint="give a set directory listed by: pgshift backup list DIR",
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise PreflightRefused(f"the manifest {manifest} cannot be read: {exc}", hint="the set is damaged") from None
    if not isinstance(doc, dict) or doc.get("kind") != MANIFEST_KIND:
        raise PreflightRefused(f"{manifest} is not a pgshift backup manifest")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise PreflightRefused(
            f"the manifest {manifest} has schema version {doc.get('schema_version')}; this pgshift reads "
            f"version {SCHEMA_VERSION}",
            hint="restore it with the pgshift that wrote it",
        )
    return doc


def damaged_files(root: Path, manifest: Mapping[str, Any]) -> list[str]:
    """Each listed file that is missing or whose size or SHA-256 differs, in words."""
    out = []
    for entry in manifest["files"]:
        path = root / entry["path"]
        if not path.is_file():
            out.append(f"{entry['path']} is missing")
            continue
        size = path.stat().st_size
        if size != int(entry["size"]):
            out.append(f"{entry['path']} has {size} bytes, the manifest says {entry['size']} (truncated or changed)")
        elif sha256_of(path) != entry["sha256"]:
            out.append(f"{entry['path']} changed since the backup (its SHA-256 differs from the manifest's)")
    return out


def open_set(path: Path, *, check: bool = True) -> BackupSet:
    """A complete set, with every file checked against the manifest first (``check``)."""
    manifest = read_manifest(path)
    if check:
        damaged = damaged_files(path, manifest)
        if damaged:
            raise PreflightRefused(
                f"the backup set {path} is damaged: {damaged[0]}"
                + (f" (and {len(damaged) - 1} more file(s))" if len(damaged) > 1 else ""),
                detail="\n".join(damaged) if len(damaged) > 1 else None,
                hint="nothing was restored; restore another set (pgshift backup list DIR), or copy this one again "
                "from its off-host copy",
            )
    return BackupSet(path, manifest)


# --- listing, rotation, history ---------------------------------------------------------------------


def locked(root: Path) -> bool:
    """Whether a live pgshift run holds the set's lock (the run is still writing it)."""
    lock = root / ".lock"
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@dataclass(frozen=True)
class SetEntry:
    """A set in a backup directory, complete or not, for ``backup list`` and rotation."""

    name: str
    path: Path
    complete: bool
    state: str  # complete, running, failed, interrupted, killed, damaged
    manifest: Mapping[str, Any] | None
    size_bytes: int
    verification: Mapping[str, Any] | None = None  # the last history line of this set

    def as_dict(self) -> dict[str, Any]:
        m = self.manifest or {}
        return {
            "name": self.name,
            "path": str(self.path),
            "complete": self.complete,
            "state": self.state,
            "started": m.get("started"),
            "ended": m.get("ended"),
            "size_bytes": self.size_bytes,
            "server_version": (m.get("server") or {}).get("version"),
            "client_version": (m.get("client") or {}).get("version"),
            "format": (m.get("options") or {}).get("format"),
            "databases": [d["name"] for d in m.get("databases", [])],
            "last_verification": dict(self.verification) if self.verification else None,
        }


def _dir_size(path: Path) -> int:
    total = 0
    for base, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(base, name))
    return total


def _partial_state(path: Path) -> str:
    if locked(path):
        return "running"
    try:
        events = (path / "journal.events").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "killed"
    status = "killed"  # no end recorded: the run died without a word (SIGKILL, power loss)
    for line in events:
        with contextlib.suppress(json.JSONDecodeError):
            event = json.loads(line)
            if event.get("e") == "status":
                status = str(event.get("status"))
            elif event.get("e") == "snapshot":
                status = str(event.get("state", {}).get("status", status))
    return status if status in ("failed", "interrupted") else "killed"


def list_sets(directory: Path) -> list[SetEntry]:
    """Every set in ``directory``, oldest first."""
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory of backup sets", hint="give the --to DIR of pgshift backup")
    history = last_verifications(directory)
    out = []
    for path in sorted((p for p in directory.iterdir() if p.is_dir()), key=lambda p: set_order(p.name)):
        if path.name.endswith(PARTIAL):
            name = path.name.removesuffix(PARTIAL)
            out.append(SetEntry(name, path, False, _partial_state(path), None, _dir_size(path)))
            continue
        if not (path / MANIFEST).exists():
            continue  # not ours
        try:
            manifest: dict[str, Any] | None = read_manifest(path)
        except (PreflightRefused, UsageError):
            manifest = None
        size = sum(int(f["size"]) for f in manifest["files"]) if manifest else _dir_size(path)
        out.append(
            SetEntry(
                path.name,
                path,
                manifest is not None,
                "complete" if manifest is not None else "damaged",
                manifest,
                size,
                history.get(path.name),
            )
        )
    return out


def rotate(directory: Path, keep: int, *, just_written: str) -> tuple[list[str], list[str]]:
    """Keep the newest ``keep`` complete sets (``just_written`` always among them); remove older ones,
    and partial sets no live run holds. Returns (removed complete sets, removed partial sets)."""
    entries = list_sets(directory)
    good = [e for e in entries if e.complete and e.name != just_written]
    keep_others = max(keep - 1, 0)
    doomed = good[: max(len(good) - keep_others, 0)]
    stale = [e for e in entries if not e.complete and e.state != "running" and e.path.name.endswith(PARTIAL)]
    for entry in (*doomed, *stale):
        shutil.rmtree(entry.path, ignore_errors=True)
    return [e.name for e in doomed], [e.path.name for e in stale]


def record_verification(directory: Path, line: Mapping[str, Any]) -> None:
    """One line of the history beside the sets (0600), appended whole."""
    data = (json.dumps(dict(line), ensure_ascii=False, default=str) + "\n").encode("utf-8")
    path = directory / HISTORY
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        paths.append_line(fd, data, directory)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_history(directory: Path) -> Iterator[dict[str, Any]]:
    try:
        lines = (directory / HISTORY).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return
    for line in lines:
        with contextlib.suppress(json.JSONDecodeError):
            doc = json.loads(line)
            if isinstance(doc, dict):
                yield doc


def last_verifications(directory: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for line in read_history(directory):
        if "set" in line:
            out[str(line["set"])] = line
    return out


def names(entries: Sequence[SetEntry]) -> list[str]:
    return [e.name for e in entries]
