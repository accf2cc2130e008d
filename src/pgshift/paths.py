"""Where pgshift keeps things: the toolchain cache, work directories, lab clusters."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path

import platformdirs

from pgshift.errors import UsageError, WorkdirFull


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def cache_dir() -> Path:
    """Downloaded PostgreSQL binaries. ``PGSHIFT_CACHE_DIR`` overrides.

    When run as root the cache lives in /var/cache/pgshift rather than under /root: lab servers
    run as an unprivileged user, who must be able to execute these binaries.
    """
    override = os.environ.get("PGSHIFT_CACHE_DIR")
    if override:
        return Path(override)
    if _is_root():
        return Path("/var/cache/pgshift")
    return Path(platformdirs.user_cache_dir("pgshift"))


def state_dir() -> Path:
    """pgshift's state: migration work directories (``runs/<timestamp>``) and check's work directory.

    ``PGSHIFT_STATE_DIR`` overrides; otherwise ``$XDG_STATE_HOME/pgshift`` (``~/.local/state/pgshift``).
    The test suite points both at a directory of its own run (tests/conftest.py).
    """
    override = os.environ.get("PGSHIFT_STATE_DIR")
    if override:
        return Path(override)
    return Path(platformdirs.user_state_dir("pgshift"))


def lab_root() -> Path:
    """Parent of throwaway clusters: world-traversable so the unprivileged server user can reach them."""
    override = os.environ.get("PGSHIFT_LAB_DIR")
    if override:
        return Path(override)
    return Path(tempfile.gettempdir()) / f"pgshift-lab-{os.geteuid() if hasattr(os, 'geteuid') else 0}"


def exposed_passfile(passfile: str | None = None) -> tuple[Path, int] | None:
    """The password file libpq would read (``passfile=``, ``PGPASSFILE``, ``~/.pgpass``) with its
    mode, when group or others may read it: libpq then ignores it (and says so only on stderr)."""
    name = passfile or os.environ.get("PGPASSFILE") or os.path.join(os.path.expanduser("~"), ".pgpass")
    path = Path(name)
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if not path.is_file() or not mode & 0o077:
        return None
    return path, mode & 0o777


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


# What a file system says when it cannot take a write, and how the message names it.
_WRITE_REFUSED = {
    errno.ENOSPC: "full",
    errno.EDQUOT: "quota",
    errno.EROFS: "read-only",
    errno.EIO: "input/output error",
    errno.EFBIG: "file too large",
}


def free_bytes(path: Path) -> int | None:
    """Free space for this user on the file system holding ``path`` (its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def write_refused(exc: BaseException, workdir: Path) -> WorkdirFull | None:
    """The WorkdirFull an OSError from a write into ``workdir`` stands for, or None when it is another error."""
    if isinstance(exc, WorkdirFull):
        return exc
    if not isinstance(exc, OSError) or exc.errno not in _WRITE_REFUSED:
        return None
    return WorkdirFull(str(workdir), reason=_WRITE_REFUSED[exc.errno], free=free_bytes(workdir))


def append_line(fd: int, data: bytes, workdir: Path) -> None:
    """Append ``data`` to ``fd`` whole or not at all; a refused write is a WorkdirFull.

    Written with os.write, not a buffered file: a buffer that failed to flush would try again at
    every later write and at close, raising the same error out of cleanup code. A write cut short
    by a full disk is cut back off (ftruncate needs no space), so the file stays a sequence of
    whole lines and a journal written before stays valid.
    """
    try:
        start = os.fstat(fd).st_size
    except OSError as exc:
        raise (write_refused(exc, workdir) or exc) from None
    view = memoryview(data)
    try:
        while view:
            written = os.write(fd, view)
            view = view[written:]
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, start)
        raise (write_refused(exc, workdir) or exc) from None


# strerror texts (LC_ALL=C: children's messages are in English) of a write a file system refused.
_REFUSED_TEXT = {
    os.strerror(errno.ENOSPC): "full",
    os.strerror(errno.EDQUOT): "quota",
    os.strerror(errno.EROFS): "read-only",
}


def refused_in_output(text: str, workdir: Path) -> WorkdirFull | None:
    """A child that writes into ``workdir`` (pg_dump, pg_dumpall) saying it could not: a WorkdirFull.

    Only the child's own messages count: a server's error (``ERROR:`` — say, the source's temporary
    files on a full disk) is that server's disk, not the work directory.
    """
    for line in text.splitlines():
        if "ERROR:" in line:
            continue
        for words, reason in _REFUSED_TEXT.items():
            if words in line:
                return WorkdirFull(str(workdir), reason=reason, free=free_bytes(workdir))
    return None


# --- paths given on the command line ----------------------------------------------------------------
# Every path option of every command is judged here, before anything is read or changed, so that a
# bad one gets one message naming the option, the path and the fix (exit 64), never an OSError.


def _nearest_existing(path: Path) -> Path:
    probe = path
    while not probe.exists() and not probe.is_symlink() and probe != probe.parent:
        probe = probe.parent
    return probe


def _probe_writable(directory: Path) -> str | None:
    """Why a file cannot be created in ``directory`` (tried for real, then removed), or None.

    Tried rather than judged from modes: root passes every mode check yet a read-only mount or
    /proc still refuse, and only the kernel knows about ACLs and quotas.
    """
    try:
        fd, name = tempfile.mkstemp(prefix=".pgshift-probe-", dir=directory)
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)
    return None


def work_directory(path: Path, option: str = "--workdir") -> Path:
    """A directory pgshift will write into (created with its parents when missing): refused now if it cannot be."""

    fix = f"give a directory pgshift can create or write, e.g. {option} ~/pgshift-runs/NAME"
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path} is a file, not a directory", hint=fix)
    existing = _nearest_existing(path)
    if not existing.is_dir():
        raise UsageError(f"{option} {path} cannot be created: {existing} is a file, not a directory", hint=fix)
    why = _probe_writable(existing)
    if why is not None:
        where = "it" if existing == path else f"{existing}"
        raise UsageError(f"{option} {path} cannot be written: creating a file in {where} failed ({why})", hint=fix)
    return path


def output_file(path: Path, option: str = "--output") -> Path:
    """A file a report will be written to: refused now if it cannot be (nothing is created)."""

    fix = f"give a file in a writable directory, e.g. {option} report.json"
    if path.is_dir():
        raise UsageError(f"{option} {path} is a directory", hint=f"give a file name, e.g. {option} {path / 'report'}")
    parent = path.parent
    if not parent.exists():
        raise UsageError(f"{option} {path}: the directory {parent} does not exist", hint=f"create it first, or {fix}")
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: {parent} is a file, not a directory", hint=fix)
    if path.exists():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))  # opened, not changed
        except OSError as exc:
            raise UsageError(f"{option} {path} cannot be written ({exc.strerror})", hint=fix) from None
        return path
    why = _probe_writable(parent)
    if why is not None:
        raise UsageError(f"{option} {path} cannot be written: creating a file in {parent} failed ({why})", hint=fix)
    return path
