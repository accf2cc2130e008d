"""Throwaway PostgreSQL servers in Docker containers, for machines with a daemon and an image.

The container runs the image's ``initdb`` and ``postgres`` as its ``postgres`` user, with host
networking on a free port of 127.0.0.1; the data directory lives inside the container, so
removing the container removes everything. ``DockerLabServer`` is a ``LabServer`` (``conninfo``,
``connect``, ``execute``, ``stop``) whose paths are inside the container.

Images come from ``pgshift toolchain docker-image MAJOR`` (``pgshift.toolchain.docker``), or
any image with ``initdb`` and ``postgres`` on its PATH and a ``postgres`` user (the official
``postgres:N`` images qualify). Containers carry pgshift labels with the owning process id: they
are removed by ``stop()``, at exit, on SIGTERM, and — after a hard kill — by the next start.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from pgshift.errors import StepFailed, ToolchainError
from pgshift.lab import server as lab
from pgshift.process import ContainerCommand, create_container, docker_client
from pgshift.version import PgVersion

LABEL_LAB = "org.pgshift.lab"
LABEL_OWNER = "org.pgshift.lab.owner"
DATA_DIR = "/var/lib/postgresql/data"
SOCKET_DIR = "/tmp"
# Containers left running on purpose (``detach``): the sweep of dead owners' containers skips them.
KEPT_PREFIX = "pgshift-kept-"


@dataclass(eq=False)
class DockerLabServer(lab.LabServer):
    """A throwaway server in a container; ``datadir`` and ``socket_dir`` are container paths."""

    image: str = ""
    container_id: str = ""
    container: Any = field(default=None, repr=False)

    @property
    def datadir(self) -> Path:
        return Path(DATA_DIR)

    @property
    def socket_dir(self) -> Path:
        return Path(SOCKET_DIR)

    @property
    def running(self) -> bool:
        from docker.errors import DockerException

        if self.container is None:
            return False
        try:
            self.container.reload()
        except DockerException:
            return False
        return bool(self.container.status == "running")

    def logs(self) -> str:
        from docker.errors import DockerException

        if self.container is None:
            return ""
        try:
            return str(self.container.logs().decode("utf-8", errors="replace"))
        except DockerException:
            return ""

    def detach(self, timeout: float = 60.0) -> None:
        """Leave the container running after pgshift exits (``pgshift rehearse --keep``): renamed
        ``KEPT_PREFIX…``, it is no longer removed at exit nor by the next start's sweep."""
        lab._live.discard(self)
        if self.container is not None:
            self.container.rename(f"{KEPT_PREFIX}{self.container_id[:12]}")

    def stop(self) -> None:
        """Remove the container (and with it the data directory)."""
        from docker.errors import DockerException, NotFound

        lab._live.discard(self)
        if self.container is not None:
            with contextlib.suppress(NotFound):
                try:
                    self.container.remove(force=True, v=True)
                except DockerException:
                    # The daemon may be busy: one more try, then leave it to the next start's sweep.
                    time.sleep(0.5)
                    with contextlib.suppress(DockerException):
                        self.container.remove(force=True, v=True)
            self.container = None


def _owner_label() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def remove_stale(client: Any) -> int:
    """Remove lab containers whose owning pgshift process on this host is gone; returns how many."""
    from docker.errors import DockerException

    removed = 0
    host = socket.gethostname()
    for container in client.containers.list(all=True, filters={"label": LABEL_LAB}):
        if container.name.startswith(KEPT_PREFIX):
            continue
        owner = container.labels.get(LABEL_OWNER, "")
        owner_host, _, pid_text = owner.rpartition(":")
        if owner_host != host or not pid_text.isdigit():
            continue
        try:
            os.kill(int(pid_text), 0)
            continue
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        with contextlib.suppress(DockerException):
            container.remove(force=True, v=True)
            removed += 1
    return removed


def _server_script(password: bool, encoding: str, locale: str, initdb_args: tuple[str, ...]) -> str:
    """The container's command: initdb, then exec postgres (its settings come as arguments)."""
    initdb = [
        "initdb",
        "-D",
        DATA_DIR,
        "-U",
        "postgres",
        "-E",
        encoding,
        f"--locale={locale}",
        "--auth-local=trust",
        "--no-sync",
        *initdb_args,
    ]
    if password:
        # The password comes in the environment, never in the command; the file is emptied at once.
        initdb += ["--auth-host=scram-sha-256", "--pwfile=/tmp/.pw"]
        prepare = 'umask 077; printf "%s\\n" "$PGSHIFT_LAB_PASSWORD" > /tmp/.pw; '
        after = ": > /tmp/.pw; "
    else:
        initdb += ["--auth-host=trust"]
        prepare = after = ""
    return f'{prepare}{shlex.join(initdb)} >/dev/null || exit 1; {after}exec postgres -D {DATA_DIR} "$@"'


def start(
    major: int | None = None,
    *,
    image: str | None = None,
    encoding: str = "UTF8",
    locale: str | None = None,
    settings: Mapping[str, str] | None = None,
    password: str | None = None,
    initdb_args: tuple[str, ...] = (),
    start_timeout: float = 90.0,
) -> DockerLabServer:
    """Start a throwaway server in a container of ``image`` (default pgshift/postgres:MAJOR).

    The image must exist on this machine (build it with ``pgshift toolchain docker-image``);
    the caller must ``stop()`` the server, or use ``docker_lab_server``.
    """
    from docker.errors import DockerException

    from pgshift.toolchain.docker import LABEL_VERSION, default_tag

    if image is None:
        if major is None:
            raise ValueError("give a major or an image")
        image = default_tag(major)
    client = docker_client()
    remove_stale(client)
    try:
        labels = client.images.get(image).attrs.get("Config", {}).get("Labels") or {}
    except DockerException:
        labels = {}
    expected = PgVersion.parse(labels[LABEL_VERSION]) if LABEL_VERSION in labels else None
    if major is not None and expected is not None and expected.major != major:
        raise ToolchainError(f"the image {image} holds PostgreSQL {expected}, not {major}")
    if locale is None:
        locale = "C.UTF-8" if encoding.upper().replace("-", "") in ("UTF8", "UNICODE") else "C"
    conf = {**lab.FAST_SETTINGS, "listen_addresses": "127.0.0.1", "unix_socket_directories": SOCKET_DIR}
    if password:
        conf["password_encryption"] = "scram-sha-256"
    conf.update(settings or {})
    lab._install_guards()
    script = _server_script(bool(password), encoding, locale, initdb_args)
    env = {"PGSHIFT_LAB_PASSWORD": password} if password else {}
    last_error: StepFailed | None = None
    for _attempt in range(5):
        port = lab._free_port()
        args = [arg for key, value in {**conf, "port": str(port)}.items() for arg in ("-c", f"{key}={value}")]
        container = create_container(
            ContainerCommand(image=image, argv=("sh", "-c", script, "postgres", *args), env=env, user="postgres"),
            labels={LABEL_LAB: "1", LABEL_OWNER: _owner_label()},
            client=client,
        )
        server = DockerLabServer(
            version=expected or PgVersion.from_major(major or 0),
            bin_dir=Path("/"),
            root=Path(DATA_DIR).parent,
            port=port,
            password=password,
            image=image,
            container_id=container.id,
            container=container,
        )
        lab._live.add(server)
        try:
            container.start()
            _wait_ready(server, start_timeout)
        except StepFailed as exc:
            server.stop()
            if "could not bind" in (exc.detail or "") or "already in use" in (exc.detail or ""):
                last_error = exc
                continue
            raise
        except BaseException:
            server.stop()
            raise
        with server.connect() as conn:
            server.version = PgVersion.from_num(conn.info.server_version)
        if major is not None and server.version.major != major:  # an image without pgshift's labels
            server.stop()
            raise ToolchainError(f"the image {image} runs PostgreSQL {server.version}, not {major}")
        return server
    assert last_error is not None
    raise last_error


def _wait_ready(server: DockerLabServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        if not server.running:
            raise StepFailed(
                f"the lab server in {server.image} exited during start",
                detail=server.logs()[-4000:],
            )
        try:
            with psycopg.connect(server.conninfo(), connect_timeout=2):
                return
        except psycopg.OperationalError as exc:
            last_error = str(exc)
            time.sleep(0.2)
    raise StepFailed(
        f"the lab server in {server.image} did not accept connections within {timeout:g} s",
        detail=last_error + "\n" + server.logs()[-4000:],
    )


@contextlib.contextmanager
def docker_lab_server(major: int | None = None, **kwargs: Any) -> Iterator[DockerLabServer]:
    """A server in a container for the duration of a ``with`` block."""
    server = start(major, **kwargs)
    try:
        yield server
    finally:
        server.stop()
