"""Unpacking archives safely, with and without Python's extraction filters (3.11.2 has none)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from pgshift.errors import ToolchainError
from pgshift.toolchain.install import extract_member


def _archive(path: Path, *entries: tuple[str, str, str]) -> Path:
    """entries: (kind, name, data or link target)."""
    with tarfile.open(path, "w") as tar:
        for kind, name, value in entries:
            info = tarfile.TarInfo(name)
            info.uid = info.gid = 1001
            if kind == "file":
                data = value.encode()
                info.size = len(data)
                info.mode = 0o4777
                tar.addfile(info, io.BytesIO(data))
            else:
                info.type = tarfile.SYMTYPE
                info.linkname = value
                tar.addfile(info)
    return path


@pytest.fixture(params=["with-filters", "without-filters"])
def filters(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "without-filters":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    elif not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python has no extraction filters")
    return str(request.param)


def test_tree_is_unpacked_owned_by_the_installer_without_setuid(tmp_path: Path, filters: str) -> None:
    tar = _archive(
        tmp_path / "ok.tar", ("file", "pg/bin/pg_dump", "#!/bin/sh\n"), ("link", "pg/lib/libpq.so", "libpq.so.5")
    )
    dest = tmp_path / "out"
    dest.mkdir()
    with tarfile.open(tar) as tf:
        for member in tf.getmembers():
            extract_member(tf, member, dest)
    program = dest / "pg" / "bin" / "pg_dump"
    assert program.read_text() == "#!/bin/sh\n"
    st = program.stat()
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
    assert st.st_mode & 0o7022 == 0
    assert os.readlink(dest / "pg" / "lib" / "libpq.so") == "libpq.so.5"


@pytest.mark.parametrize(
    "entry",
    [("file", "../escape", "x"), ("link", "pg/evil", "../../../etc/passwd"), ("link", "pg/abs", "/etc/passwd")],
    ids=["dotdot", "symlink-out", "symlink-absolute"],
)
def test_entries_escaping_the_destination_are_refused(
    tmp_path: Path, filters: str, entry: tuple[str, str, str]
) -> None:
    tar = _archive(tmp_path / "evil.tar", entry)
    dest = tmp_path / "out"
    dest.mkdir()
    with tarfile.open(tar) as tf, pytest.raises(ToolchainError, match="unsafe entry"):
        for member in tf.getmembers():
            extract_member(tf, member, dest)
    assert not (tmp_path / "escape").exists()


def test_absolute_names_land_inside_the_destination(tmp_path: Path, filters: str) -> None:
    tar = _archive(tmp_path / "abs.tar", ("file", "/pgshift-abs-test/file", "x"))
    dest = tmp_path / "out"
    dest.mkdir()
    with tarfile.open(tar) as tf:
        for member in tf.getmembers():
            extract_member(tf, member, dest)
    assert (dest / "pgshift-abs-test" / "file").read_text() == "x"
    assert not Path("/pgshift-abs-test").exists()
