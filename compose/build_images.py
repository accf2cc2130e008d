"""Build the upgrade lab's images locally, with no registry: ``python compose/build_images.py [OLD NEW]``.

- ``pgshift/postgres:OLD`` and ``pgshift/postgres:NEW``: PostgreSQL from pgshift's cache, as
  ``pgshift toolchain docker-image`` builds them (``pgshift.toolchain.docker.build_image``).
- ``pgshift/pgshift:lab``: ``pgshift/postgres:NEW`` (its client programs) plus this machine's Debian
  Python 3.11 (``/usr/bin/python3.11``, its standard library and the shared libraries they load,
  found with ldd) and pgshift with its dependencies, installed by pip from this checkout into
  ``/opt/pgshift/site``. ``FROM`` names the local image, so nothing is pulled.

Images that exist are kept (``--force`` rebuilds them). Exit 0 when all three exist at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pgshift.errors import PgshiftError
from pgshift.toolchain.docker import build_image, image_exists, shared_libraries

ROOT = Path(__file__).resolve().parents[1]
PGSHIFT_IMAGE = "pgshift/pgshift:lab"
PYTHON = Path("/usr/bin/python3.11")
STDLIB = Path("/usr/lib/python3.11")
# Not needed to run pgshift: the test suite, IDLE, tkinter, the packages Debian installs for itself.
STDLIB_SKIP = ("test", "idlelib", "tkinter", "turtledemo", "dist-packages", "lib2to3", "ensurepip")

DOCKERFILE = """\
FROM {base}
COPY rootfs/ /
ENV PATH=/opt/pgshift/bin:/opt/postgresql/bin:/usr/local/bin:/usr/bin:/bin \\
    PYTHONPATH=/opt/pgshift/site PYTHONDONTWRITEBYTECODE=1 LANG=C.UTF-8 \\
    PGSHIFT_STATE_DIR=/var/lib/pgshift PGSHIFT_CACHE_DIR=/var/cache/pgshift
LABEL org.pgshift.lab=pgshift
CMD ["pgshift", "--help"]
"""
LAUNCHER = '#!/bin/sh\nexec /usr/bin/python3.11 -m pgshift "$@"\n'


def _copy(host: Path, rootfs: Path, path: str | None = None) -> None:
    dest = rootfs / (path or str(host)).lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists():
        shutil.copy2(host.resolve(), dest)


def _python_rootfs(rootfs: Path) -> None:
    if not PYTHON.is_file() or not STDLIB.is_dir():
        raise SystemExit(f"{PYTHON} and {STDLIB} are needed (Debian's python3.11): apt-get install python3.11")
    _copy(PYTHON, rootfs)
    (rootfs / "usr/bin/python3").symlink_to("python3.11")
    shutil.copytree(
        STDLIB,
        rootfs / STDLIB.relative_to("/"),
        ignore=lambda _d, names: [n for n in names if n in STDLIB_SKIP or n == "__pycache__"],
        symlinks=True,
    )
    site = rootfs / "opt/pgshift/site"
    # pip of the running Python installs for 3.11, which Debian's 3.11 loads.
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--target", str(site), str(ROOT)],
        check=True,
    )
    launcher = rootfs / "opt/pgshift/bin/pgshift"
    launcher.parent.mkdir(parents=True)
    launcher.write_text(LAUNCHER)
    launcher.chmod(0o755)
    for directory in ("var/lib/pgshift", "var/cache/pgshift"):
        (rootfs / directory).mkdir(parents=True)
    elves = [PYTHON, *STDLIB.glob("lib-dynload/*.so"), *site.rglob("*.so*")]
    needed, missing = shared_libraries([p for p in elves if p.is_file()])
    for asked, host in sorted(needed.items()):
        if str(host).startswith(str(site)):
            continue  # the wheels' own libraries travel with them
        _copy(host, rootfs, asked)
    for file, libs in sorted(missing.items()):
        print(f"note: {file.name} has no {', '.join(libs)} here; the modules that need it will not load")


def build_pgshift_image(base: str, *, force: bool = False) -> None:
    import docker

    client = docker.from_env()
    if image_exists(PGSHIFT_IMAGE, client) and not force:
        print(f"{PGSHIFT_IMAGE}: exists")
        return
    with tempfile.TemporaryDirectory(prefix="pgshift-image-") as tmp:
        context = Path(tmp)
        _python_rootfs(context / "rootfs")
        (context / "Dockerfile").write_text(DOCKERFILE.format(base=base))
        client.images.build(path=str(context), tag=PGSHIFT_IMAGE, rm=True, pull=False, network_mode="none")
    probe = client.containers.run(PGSHIFT_IMAGE, ["pgshift", "--version"], remove=True, network_mode="none")
    print(f"{PGSHIFT_IMAGE}: built ({probe.decode().strip()})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", nargs="?", type=int, default=int(os.environ.get("OLD_MAJOR", "14")))
    parser.add_argument("new", nargs="?", type=int, default=int(os.environ.get("NEW_MAJOR", "18")))
    parser.add_argument("--force", action="store_true", help="rebuild images that exist")
    args = parser.parse_args()
    try:
        for major in (args.old, args.new):
            info = build_image(major, force=args.force)
            print(f"{info.tag}: {'built' if info.built else 'exists'} (PostgreSQL {info.version})")
        build_pgshift_image(f"pgshift/postgres:{args.new}", force=args.force)
    except PgshiftError as exc:
        print(f"error: {exc.message}" + (f"\nhint: {exc.hint}" if exc.hint else ""), file=sys.stderr)
        return int(exc.exit_code)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
