"""Find every PostgreSQL installation on this machine, by running its programs.

A program counts only when ``PROGRAM --version`` runs and prints a version: Debian's wrapper
shims and half-removed packages exist on disk but fail.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pgshift import paths
from pgshift.errors import PgshiftError, StepFailed, ToolchainError
from pgshift.process import output_of
from pgshift.version import PgVersion

CLIENT_PROGRAMS = ("pg_dump", "pg_dumpall", "pg_restore", "psql")
SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
PROGRAMS = CLIENT_PROGRAMS + SERVER_PROGRAMS

# Well-known places, in the order they are searched after explicit directories and PATH.
WELL_KNOWN_PATTERNS = (
    ("debian", "/usr/lib/postgresql/*/bin"),
    ("pgdg-rpm", "/usr/pgsql-*/bin"),
    ("source-build", "/usr/local/pgsql/bin"),
    ("homebrew", "/opt/homebrew/opt/postgresql@*/bin"),
    ("homebrew", "/usr/local/opt/postgresql@*/bin"),
    ("homebrew", "/home/linuxbrew/.linuxbrew/opt/postgresql@*/bin"),
    ("postgres.app", "/Applications/Postgres.app/Contents/Versions/*/bin"),
)


@dataclass(frozen=True)
class Installation:
    """One directory of PostgreSQL programs of one version."""

    bin_dir: Path
    version: PgVersion
    programs: Mapping[str, Path]
    origin: str
    problems: tuple[str, ...] = field(default=())

    @property
    def major(self) -> int:
        return self.version.major

    def has(self, *names: str) -> bool:
        return all(n in self.programs for n in names)

    def program(self, name: str) -> Path:
        try:
            return self.programs[name]
        except KeyError:
            raise ToolchainError(
                f"{name} is missing from {self.bin_dir}",
                hint=f"install the PostgreSQL {self.version.major_label} client programs there, "
                f"or run 'pgshift toolchain install {self.version.major_label}'",
            ) from None

    def as_dict(self) -> dict[str, object]:
        return {
            "major": self.version.major_label,
            "version": str(self.version),
            "bin_dir": str(self.bin_dir),
            "origin": self.origin,
            "programs": sorted(self.programs),
            "problems": list(self.problems),
        }


@dataclass(frozen=True)
class Discovery:
    installations: tuple[Installation, ...]
    problems: tuple[str, ...] = ()

    def by_major(self, major: int) -> list[Installation]:
        return [i for i in self.installations if i.major == major]


@functools.lru_cache(maxsize=512)
def _program_version(path: str, mtime_ns: int, size: int) -> PgVersion:
    # Cached per file identity: a run asks about the same binaries many times.
    del mtime_ns, size
    text = output_of([path, "--version"], timeout=20)
    return PgVersion.parse(text)


def program_version(path: Path) -> PgVersion:
    st = path.stat()
    return _program_version(str(path), st.st_mtime_ns, st.st_size)


def _is_debian_wrapper(path: Path) -> bool:
    # /usr/bin/pg_dump on Debian is pg_wrapper, which picks a version per cluster; the real
    # installations are listed under /usr/lib/postgresql/N/bin anyway.
    try:
        return path.resolve().name == "pg_wrapper"
    except OSError:
        return False


def inspect_dir(bin_dir: Path, origin: str) -> Installation | str | None:
    """The installation in ``bin_dir``, None when it holds no PostgreSQL program, or a problem text."""
    found: dict[str, Path] = {}
    versions: dict[str, PgVersion] = {}
    problems: list[str] = []
    for name in PROGRAMS:
        path = bin_dir / name
        if not path.is_file() or _is_debian_wrapper(path):
            continue
        if not os.access(path, os.X_OK):
            problems.append(f"{path} is not executable")
            continue
        try:
            versions[name] = program_version(path)
            found[name] = path
        except (PgshiftError, OSError) as exc:
            reason = exc.detail if isinstance(exc, StepFailed) and exc.detail else str(exc)
            problems.append(f"{path} does not run: {reason.strip().splitlines()[-1] if reason.strip() else exc}")
    if not found:
        return "; ".join(problems) if problems else None
    # The installation's version is its pg_dump's, or the first program that answered.
    reference = next((versions[n] for n in PROGRAMS if n in versions), None)
    assert reference is not None
    for name, version in versions.items():
        if version.major != reference.major:
            problems.append(f"{found[name]} is version {version}, not {reference}")
            del found[name]
    return Installation(bin_dir=bin_dir, version=reference, programs=found, origin=origin, problems=tuple(problems))


def _candidate_dirs(pg_bins: Sequence[Path], environ: Mapping[str, str]) -> list[tuple[Path, str, bool]]:
    """(dir, origin, explicit) in search order."""
    out: list[tuple[Path, str, bool]] = [(Path(p), "--pg-bin", True) for p in pg_bins]
    for p in filter(None, environ.get("PGSHIFT_PG_BIN", "").split(os.pathsep)):
        out.append((Path(p), "PGSHIFT_PG_BIN", True))
    for p in filter(None, environ.get("PATH", "").split(os.pathsep)):
        out.append((Path(p), "PATH", False))
    for origin, pattern in WELL_KNOWN_PATTERNS:
        out.extend((Path(p), origin, False) for p in sorted(glob.glob(pattern)))
    cache = paths.cache_dir() / "pg"
    out.extend((Path(p), "pgshift cache", False) for p in sorted(glob.glob(str(cache / "*" / "bin"))))
    return out


def _ask_versions(dirs: Iterable[Path]) -> None:
    """Run every candidate program's ``--version`` at once (a machine with the nine majors has some
    60 of them, 10 ms each one after another); the answers wait in ``_program_version``'s cache."""
    from concurrent.futures import ThreadPoolExecutor

    programs = [d / name for d in dirs for name in PROGRAMS]
    programs = [p for p in programs if p.is_file() and os.access(p, os.X_OK) and not _is_debian_wrapper(p)]

    def ask(path: Path) -> None:
        with contextlib.suppress(PgshiftError, OSError):
            program_version(path)  # a failure is met again, and reported, by inspect_dir

    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="pgshift-discover") as pool:
        list(pool.map(ask, programs))


def discover(pg_bins: Iterable[Path | str] = (), environ: Mapping[str, str] | None = None) -> Discovery:
    """Every installation, newest first. Explicit directories that hold no working program fail."""
    env = os.environ if environ is None else environ
    installations: list[Installation] = []
    problems: list[str] = []
    seen: set[Path] = set()
    candidates = _candidate_dirs([Path(p) for p in pg_bins], env)
    _ask_versions(dict.fromkeys(d for d, _, _ in candidates if d.is_dir()))
    for bin_dir, origin, explicit in candidates:
        try:
            real = bin_dir.resolve()
        except OSError:
            real = bin_dir
        if real in seen:
            continue
        if not bin_dir.is_dir():
            if explicit:
                raise ToolchainError(
                    f"{origin} {bin_dir} is not a directory",
                    hint="give the bin directory of a PostgreSQL installation, e.g. /usr/lib/postgresql/17/bin",
                )
            continue
        seen.add(real)
        result = inspect_dir(bin_dir, origin)
        if isinstance(result, Installation):
            installations.append(result)
            problems.extend(result.problems)
        elif explicit:
            raise ToolchainError(
                f"{origin} {bin_dir} holds no working PostgreSQL program"
                + (f" ({result})" if isinstance(result, str) else ""),
                hint="give the bin directory of a PostgreSQL installation (it holds pg_dump, psql …), "
                "or install one with 'pgshift toolchain install N'",
            )
        elif isinstance(result, str) and origin != "PATH":
            problems.append(result)
    explicit_order = {"--pg-bin": 0, "PGSHIFT_PG_BIN": 1}
    installations.sort(key=lambda i: (-i.version.num, explicit_order.get(i.origin, 2)))
    return Discovery(tuple(installations), tuple(problems))
