"""Run a chosen client program, locally or inside its Docker image, through ``process``."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pgshift.process import Command, Completed, ContainerCommand, LineCallback, base_env, run, run_in_container
from pgshift.toolchain.select import ClientChoice
from pgshift.version import DUMP_COMPRESSIONS, PgVersion

# Variables of the cleaned host environment that make no sense inside an image.
_HOST_ONLY = ("PATH", "HOME", "TMPDIR", "USER", "LOGNAME", "LD_LIBRARY_PATH")


def run_client(
    choice: ClientChoice,
    program: str,
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    secrets: Sequence[str] = (),
    mounts: Sequence[str] = (),
    on_stderr: LineCallback | None = None,
    check: bool = True,
    timeout: float | None = None,
    on_container: Callable[[Any], None] | None = None,
) -> Completed:
    """Run ``program args`` of the chosen client.

    In Docker the host directories in ``mounts`` are bind-mounted at the same path, so file
    arguments read the same inside and out, and the container runs as the calling user so that
    what it writes belongs to the user. ``on_container`` sees the container before it starts.
    """
    if choice.docker_image is not None:
        container_env = {k: v for k, v in env.items() if k not in _HOST_ONLY}
        user = f"{os.getuid()}:{os.getgid()}" if hasattr(os, "getuid") else None
        return run_in_container(
            ContainerCommand(
                image=choice.docker_image,
                argv=(program, *args),
                env=container_env,
                mounts={m: m for m in mounts},
                secrets=tuple(secrets),
                user=user,
            ),
            on_stderr=on_stderr,
            on_container=on_container,
            check=check,
        )
    command = Command((choice.program(program), *args), env=env, secrets=tuple(secrets))
    return run(command, on_stderr=on_stderr, check=check, timeout=timeout)


def image_client_version(image: str) -> PgVersion:
    """The PostgreSQL version of the pg_dump inside a Docker image."""
    from pgshift.errors import PgshiftError, StepFailed, ToolchainError

    try:
        completed = run_in_container(ContainerCommand(image=image, argv=("pg_dump", "--version")))
        return PgVersion.parse(completed.stdout)
    except StepFailed as exc:
        raise ToolchainError(
            f"the Docker image {image} has no working pg_dump",
            hint="choose an image with the PostgreSQL client programs (--docker-image), e.g. one built by "
            "'pgshift toolchain docker-image 17'",
            detail=exc.detail,
        ) from exc
    except ToolchainError:
        raise
    except PgshiftError as exc:  # the version text did not parse
        raise ToolchainError(f"the Docker image {image} has no usable pg_dump: {exc.message}") from exc


def docker_reachable() -> bool:
    from pgshift.errors import ToolchainError
    from pgshift.process import docker_client

    try:
        docker_client()
    except ToolchainError:
        return False
    return True


def dump_compression_supported(choice: ClientChoice, method: str) -> bool:
    """Whether the chosen pg_dump can write archives compressed with ``method``.

    pg_dump validates its --compress before it connects, so a pg_dump pointed at no server at all
    says whether its build has the library (``this build does not support compression with …``)
    without touching anything. Docker images (the official ones are built with both) are taken by
    their major, which saves a container start.
    """
    if choice.major < DUMP_COMPRESSIONS.get(method, 99):
        return False
    if method in ("none", "gzip") or choice.docker_image is not None:
        return True
    done = run_client(
        choice,
        "pg_dump",
        [
            "--format=directory",
            f"--compress={method}",
            "--file=/nonexistent/pgshift-probe",
            "--no-password",
            "--dbname=host=/nonexistent port=1 connect_timeout=1",
        ],
        env=base_env(),
        check=False,
        timeout=20,
    )
    return "does not support compression" not in "\n".join(done.stderr_tail)
