"""PostgreSQL versions and the client/server compatibility rules, as data.

``PgVersion`` is integer based, like the server's own ``server_version_num``: 90624 is 9.6.24,
170002 is 17.2. ``packaging.version`` is not used to parse these strings: it rejects or misreads
``18devel``, ``16beta2`` and vendor suffixes such as ``15.4 (Debian 15.4-1.pgdg120+1)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pgshift.errors import PgshiftError, UsageError

# Matches the first version-looking token: "9.6.24", "17.2", "16beta2", "18devel", "17rc1", "15".
# Numbers of at most 9 digits: a longer run is no version (and int() refuses more than 4300 digits).
_VERSION_RE = re.compile(
    r"(?<![\w.])(?P<a>\d{1,9})(?:\.(?P<b>\d{1,9}))?(?:\.(?P<c>\d{1,9}))?(?P<pre>devel|(?:alpha|beta|rc)\d{0,9})?(?!\d|\.\d)"
)


class Major(int):
    """A major version: an integer comparable within an era that prints as users write it.

    ``Major(18)`` prints "18" and ``Major(906)`` prints "9.6", so every message, hint and path
    built with an f-string shows the major the user typed, never the internal 906. Arithmetic,
    comparison, hashing and JSON (a number) are those of ``int``.
    """

    def __str__(self) -> str:
        return major_label(int(self))

    def __format__(self, spec: str) -> str:
        if spec and spec[-1] in "bcdoxXn":
            return int.__format__(self, spec)
        return format(str(self), spec)


@dataclass(frozen=True, order=True)
class PgVersion:
    """A PostgreSQL version as ``server_version_num`` plus an optional pre-release tag."""

    num: int
    prerelease: str = ""
    # False for a version known only by its major (``from_major``): it prints as the major alone,
    # "12" rather than a made-up "12.0".
    minor_known: bool = field(default=True, compare=False)

    @classmethod
    def from_num(cls, num: int | str) -> PgVersion:
        """From ``server_version_num`` (e.g. ``"170002"`` or ``90624``)."""
        try:
            value = int(num)
        except (TypeError, ValueError):
            raise PgshiftError(f"not a server_version_num: {num!r}") from None
        if value < 80000:
            raise PgshiftError(f"not a server_version_num: {num!r}")
        return cls(value)

    @classmethod
    def parse(cls, text: str) -> PgVersion:
        """From any human version string: ``version()``, ``pg_dump --version``, ``server_version``.

        Accepts "PostgreSQL 15.4 (Debian 15.4-1.pgdg120+1)", "pg_dump (PostgreSQL) 18.6",
        "PostgreSQL 13.7 on x86_64-pc-linux-gnu, compiled by ...", "EnterpriseDB 14.2.1",
        "9.6.24", "16beta2", "18devel".
        """
        # Prefer the token right after the word PostgreSQL; vendor strings put their own
        # numbers elsewhere ("EnterpriseDB 14.2.1" has only one).
        anchor = re.search(r"PostgreSQL\)?\s+", text)
        match = _VERSION_RE.search(text, anchor.end() if anchor else 0) or _VERSION_RE.search(text)
        if match is None:
            raise PgshiftError(f"cannot read a PostgreSQL version from {text.strip()!r}")
        a = int(match["a"])
        b = int(match["b"]) if match["b"] is not None else None
        c = int(match["c"]) if match["c"] is not None else None
        pre = match["pre"] or ""
        if a >= 10:
            # 10+: major.minor; a third component (EDB's 14.2.1) is a vendor build number.
            num = a * 10000 + (b or 0)
        elif a >= 7:
            # Before 10 the major is two numbers: 9.6.24 -> 90624.
            num = a * 10000 + (b or 0) * 100 + (c or 0)
        else:
            raise PgshiftError(f"cannot read a PostgreSQL version from {text.strip()!r}")
        return cls(num, pre)

    @classmethod
    def from_major(cls, major: int) -> PgVersion:
        """18 -> 18.0; 906 (9.6) -> 9.6.0, printed as the major alone ("18", "9.6")."""
        return cls(major * 10000 if major < 100 else major * 100, minor_known=False)

    @property
    def major(self) -> Major:
        """The major as an integer comparable across eras: 18, 17 ... 10, then 906, 905 ..."""
        return Major(self.num // 10000 if self.num >= 100000 else self.num // 100)

    @property
    def minor(self) -> int:
        return self.num % 10000 if self.num >= 100000 else self.num % 100

    @property
    def major_label(self) -> str:
        if self.num >= 100000:
            return str(self.major)
        return f"{self.num // 10000}.{self.num // 100 % 100}"

    def __str__(self) -> str:
        if self.prerelease:
            return f"{self.major_label}{self.prerelease}"
        if not self.minor_known:
            return self.major_label
        return f"{self.major_label}.{self.minor}"


def major_order(major: int) -> int:
    """A sort key for majors of both eras: 906 (9.6) sorts before 10."""
    return PgVersion.from_major(major).num


def major_label(major: int) -> str:
    """18 -> "18", 906 -> "9.6"."""
    if major >= 100:
        return f"{major // 100}.{major % 100}"
    return str(int(major))


def _major_hint() -> str:
    """The hint of every "not a major" error: an example pgshift accepts, and the range it supports."""
    return (
        f"give a major such as {NEWEST_KNOWN_MAJOR - 1} "
        f"(pgshift supports {OLDEST_SUPPORTED_SOURCE} to {NEWEST_KNOWN_MAJOR})"
    )


def parse_major(text: str) -> Major:
    """A major as users type it: "17", "9.6". Raises UsageError otherwise."""
    m = re.fullmatch(r"\s*(\d{1,9})(?:\.(\d{1,9}))?\s*", text)
    if m is None:
        raise UsageError(f"{text!r} is not a PostgreSQL major version", hint=_major_hint())
    a, b = int(m[1]), m[2]
    if a >= 10:
        if b is not None:
            raise UsageError(f"{text!r} is a minor release, not a major", hint=f"give the major alone, e.g. {a}")
        return Major(a)
    if b is None or a < 7:
        raise UsageError(f"{text!r} is not a PostgreSQL major version", hint=_major_hint())
    return Major(a * 100 + int(b))


# --- Client/server rules -------------------------------------------------------------------------

# Oldest server each pg_dump major can dump, as (first client major, oldest server num).
# pg_dump 15 dropped support for servers before 9.2 (commit 30e7c175, release notes 15); the
# development branch for 20 raises the floor to 10 (commit 3a0a3088).
_DUMP_FLOOR: tuple[tuple[int, int], ...] = (
    (20, 100000),
    (15, 90200),
    (0, 80000),
)

# Oldest and newest majors pgshift is tested with, as source or target.
OLDEST_SUPPORTED_SOURCE = 10
# The archive compressions of pg_dump and the first client major with each: pg_dump 16 added lz4 and
# zstd to gzip (its default, level 6 when -Z is not given); "none" is -Z 0.
DUMP_COMPRESSIONS: dict[str, int] = {"none": 10, "gzip": 10, "lz4": 16, "zstd": 16}
NEWEST_KNOWN_MAJOR = 18


def oldest_server_for_client(client_major: int) -> PgVersion:
    for first, floor in _DUMP_FLOOR:
        if client_major >= first:
            return PgVersion(floor)
    raise AssertionError("unreachable")


def dump_refusal(client_major: int, server: PgVersion) -> str | None:
    """Why a pg_dump of ``client_major`` cannot dump ``server`` (None when it can)."""
    if major_order(server.major) > major_order(client_major):
        return (
            f"pg_dump {major_label(client_major)} cannot dump a newer server ({server}); "
            "pg_dump refuses servers of a newer major"
        )
    floor = oldest_server_for_client(client_major)
    if server.num < floor.num:
        return f"pg_dump {major_label(client_major)} supports servers from {floor.major_label} on, not {server}"
    return None


def restore_refusal(restore_major: int, dump_major: int) -> str | None:
    """pg_restore must be at least as new as the pg_dump that wrote the archive.

    Archive format versions move with pg_dump (pg_dump 17 writes 1.16, which pg_restore 16 rejects
    with "unsupported version (1.16) in file header").
    """
    if major_order(restore_major) < major_order(dump_major):
        return (
            f"pg_restore {major_label(restore_major)} cannot read an archive written by "
            f"pg_dump {major_label(dump_major)}"
        )
    return None


@dataclass(frozen=True)
class DirectionCheck:
    """Whether a (source, target) pair may be migrated, and what the user must be told."""

    allowed: bool
    warning: str | None = None
    reason: str | None = None


def check_direction(source: PgVersion, target: PgVersion, *, allow_downgrade: bool = False) -> DirectionCheck:
    """A target older than the source is refused unless ``--allow-downgrade`` (then warned)."""
    if major_order(target.major) >= major_order(source.major):
        return DirectionCheck(True)
    text = (
        f"the target ({target}) is an older major than the source ({source}); objects and syntax of "
        f"{source.major_label} may not load into {target.major_label}"
    )
    if allow_downgrade:
        return DirectionCheck(True, warning=text)
    return DirectionCheck(False, reason=text)
