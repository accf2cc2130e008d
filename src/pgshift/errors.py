"""The pgshift error family and the exit codes the CLI maps them to.

Every failure a user can act on is a ``PgshiftError`` carrying a message, a hint naming the fix
and an exit code; the CLI prints the two lines and exits with the code, with a traceback only
under ``--debug``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import IntEnum


class ExitCode(IntEnum):
    """The one table of exit codes (docs/exit-codes.md)."""

    OK = 0
    WARNINGS = 1  # check found warnings; verify found differences
    DIFFERENCES = 1
    BLOCKERS = 2  # check found blockers, or preflight refused a migration
    CONNECTION = 3  # cannot connect or authenticate
    TOOLCHAIN = 4  # no suitable client program, broken installation, no Docker daemon
    FAILED = 5  # a step or a child program failed
    USAGE = 64  # bad arguments (click's own 2 is remapped)
    INTERRUPTED = 130  # SIGINT; the journal is saved and --resume works
    TERMINATED = 143  # SIGTERM


class PgshiftError(Exception):
    """A failure the user can act on: what went wrong, and how to fix it."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.detail = detail

    def __str__(self) -> str:
        return self.message


class UsageError(PgshiftError):
    exit_code = ExitCode.USAGE


class UnknownDatabase(UsageError):
    """``--database`` named a database the server does not have: bad input, the same in every command."""

    def __init__(self, missing: Sequence[str], existing: Iterable[str], *, role: str = "source") -> None:
        names = sorted(existing)
        shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
        plural = "databases" if len(missing) > 1 else "database"
        super().__init__(
            f"the {role} has no {plural} {', '.join(repr(m) for m in missing)}",
            hint=f"name a database the {role} has with --database ({shown or 'it has none'}), "
            "or leave --database out for all of them",
        )
        self.missing = tuple(missing)
        self.existing = tuple(names)


class ConnectionFailed(PgshiftError):
    exit_code = ExitCode.CONNECTION


class ToolchainError(PgshiftError):
    exit_code = ExitCode.TOOLCHAIN


class StepFailed(PgshiftError):
    """A child program or a step of a run failed."""

    exit_code = ExitCode.FAILED

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        detail: str | None = None,
        program: str | None = None,
        returncode: int | None = None,
    ) -> None:
        super().__init__(message, hint=hint, detail=detail)
        self.program = program
        self.returncode = returncode


class WorkdirFull(PgshiftError):
    """The work directory's file system refused a write: full (ENOSPC, EDQUOT), read-only, or failing.

    Raised by every writer of a run (log, journal, the child programs' stderr pumps) instead of the
    OSError, so that the run stops at once with one message naming the directory and the space.
    """

    exit_code = ExitCode.FAILED

    def __init__(self, workdir: str, *, reason: str, free: int | None, needed: int | None = None) -> None:
        self.workdir = workdir
        self.reason = reason
        self.free = free
        self.needed = needed
        super().__init__(self._compose(), hint=self._hint())

    def with_needed(self, needed: int | None, free: int | None = None) -> WorkdirFull:
        """The same error with what the rest of the run needs (the runner knows it), the free space anew."""
        self.needed = needed
        if free is not None:
            self.free = free
        self.message = self._compose()
        self.hint = self._hint()
        return self

    def _compose(self) -> str:
        if self.reason in ("full", "quota"):
            space = [f"{human_bytes(self.needed)} needed"] if self.needed else []
            if self.free is not None:
                space.append(f"{human_bytes(self.free)} free")
            what = "is full" if self.reason == "full" else "is over its disk quota"
            return f"the work directory {self.workdir} {what}" + (f" ({', '.join(space)})" if space else "")
        if self.reason == "read-only":
            return f"the work directory {self.workdir} became read-only while the run wrote to it"
        return f"the work directory {self.workdir} cannot be written ({self.reason})"

    def _hint(self) -> str:
        # The resume command is the runner's to add: it knows whether passwords must come again.
        if self.reason in ("full", "quota"):
            return "free space on its file system, or move the directory to a larger one and resume from there"
        return "repair or remount the file system, or move the directory elsewhere and resume from there"


def human_bytes(n: int | None) -> str:
    """1.5 GB, 20 MB, 512 bytes: sizes as messages give them."""
    if n is None:
        return "?"
    size = float(n)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{int(size)} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} bytes"  # pragma: no cover - the loop returns


class PreflightRefused(PgshiftError):
    exit_code = ExitCode.BLOCKERS


class Interrupted(PgshiftError):
    exit_code = ExitCode.INTERRUPTED

    def __init__(self, message: str = "interrupted", *, hint: str | None = None, signum: int = 2) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = ExitCode.TERMINATED if signum == 15 else ExitCode.INTERRUPTED
