"""How an option of the core is spelled on the command line: declared once, beside what it sets.

A ``Flag`` is plain data (no typer here): the option's names, the word its value is shown as, its
help text, and whether a resumed run may be given it again. A record of options (``MigrateOptions``)
carries each field's flag in the field's metadata (``cli()``); ``declared_options`` reads them back
with how the command line's value becomes the field's value, told by the field's type and default.
``pgshift.cli.declared`` turns the declarations into typer options and the values given into
field values. Flags several commands share (pg_dump's object filters…) are declared here once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields, is_dataclass, replace
from typing import Any, Literal, get_args, get_origin, get_type_hints

# How a command line value becomes the field's value:
#   switch    --keep-dumps            sets True (the field defaults to False)
#   negation  --no-globals            sets False (the field defaults to True)
#   toggle    --analyze/--no-analyze  sets True or False
#   list      --database NAME...      repeatable, a tuple in the given order
#   pairs     --rename OLD=NEW...     repeatable, a mapping OLD -> NEW
#   choice    --if-exists error|drop|skip   one of the values of the field's Literal type
#   value     --jobs N, --workdir DIR  the value itself, in the field's type
Kind = Literal["switch", "negation", "toggle", "list", "pairs", "choice", "value"]

_METADATA_KEY = "cli"


@dataclass(frozen=True)
class Flag:
    """The command line spelling of one option."""

    names: tuple[str, ...]  # ("--jobs", "-j"); an on/off pair is one name: "--analyze/--no-analyze"
    help: str
    metavar: str | None = None  # the word a value is shown as (N, DIR); None for a flag without a value
    minimum: int | None = None  # a whole number of at least this
    resumable: bool = False  # may be given again with --resume, and then applies to what is left

    @property
    def name(self) -> str:
        """The option's name in messages: its first long spelling (``--analyze`` of an on/off pair)."""
        longs = [n for n in self.names if n.startswith("--")]
        return (longs or list(self.names))[0].partition("/")[0]

    def spelled(self, value: Any) -> str:
        """The spelling that gives ``value``: ``--no-analyze`` for False of an on/off pair."""
        on, sep, off = self.names[0].partition("/")
        if sep:
            return off if value is False else on
        return self.name


def cli(first: Flag | str, *names: str, help: str = "", **more: Any) -> dict[str, Flag]:
    """A field's metadata declaring its option: ``cli("--jobs", "-j", metavar="N", help=...)``,
    or a shared ``Flag`` (``cli(SCHEMA)``, ``cli(PG_BIN, resumable=True)``)."""
    if isinstance(first, Flag):
        if names or help:
            raise TypeError("give a shared Flag, or the names and help of a new one, not both")
        return {_METADATA_KEY: replace(first, **more)}
    return {_METADATA_KEY: Flag((first, *names), help, **more)}


@dataclass(frozen=True)
class DeclaredOption:
    """A field of a record with its flag, and how the command line's value becomes the field's."""

    field: str
    flag: Flag
    kind: Kind
    type: Any  # the field's type, resolved (int, Path | None, tuple[str, ...]…)
    default: Any  # the field's default (a factory's product for mappings)
    choices: tuple[str, ...] = ()  # of a choice

    @property
    def element(self) -> Any:
        """The type of one value of a list (``str`` of ``tuple[str, ...]``)."""
        return get_args(self.type)[0] if self.kind == "list" else self.type


def declared_options(record: type[Any]) -> tuple[DeclaredOption, ...]:
    """The declared options of a dataclass, in field order (the order help lists them in)."""
    if not is_dataclass(record):
        raise TypeError(f"{record!r} is not a dataclass")
    hints = get_type_hints(record)
    out: list[DeclaredOption] = []
    for f in fields(record):
        flag = f.metadata.get(_METADATA_KEY)
        if flag is None:
            continue
        if f.default is not MISSING:
            default = f.default
        elif f.default_factory is not MISSING:
            default = f.default_factory()
        else:
            raise TypeError(f"{record.__name__}.{f.name} declares {flag.name} but has no default")
        kind, choices = _kind(f.name, flag, hints[f.name], default)
        out.append(DeclaredOption(f.name, flag, kind, hints[f.name], default, choices))
    return tuple(out)


def _kind(name: str, flag: Flag, kind_of: Any, default: Any) -> tuple[Kind, tuple[str, ...]]:
    origin = get_origin(kind_of)
    if kind_of is bool:
        if "/" in flag.names[0]:
            return "toggle", ()
        if default is False:
            return "switch", ()
        if all(n.startswith("--no-") for n in flag.names if n.startswith("--")):
            return "negation", ()
        raise TypeError(f"{name} defaults to True: its flag {flag.name} must be --no-… (or an on/off pair)")
    if flag.metavar is None:
        raise TypeError(f"{flag.name} takes a value ({name}): declare its metavar")
    if origin is tuple:
        return "list", ()
    if origin is Mapping:
        return "pairs", ()
    if origin is Literal:
        return "choice", tuple(str(a) for a in get_args(kind_of))
    return "value", ()


# --- flags several commands share ----------------------------------------------------------------

# pg_dump's object filters, for every command that selects objects.
SCHEMA = Flag(("--schema", "-n"), "Only these schemas (pg_dump -n).", metavar="PATTERN")
EXCLUDE_SCHEMA = Flag(("--exclude-schema", "-N"), "Not these schemas (pg_dump -N).", metavar="PATTERN")
TABLE = Flag(("--table", "-t"), "Only these tables (pg_dump -t).", metavar="PATTERN")
EXCLUDE_TABLE = Flag(("--exclude-table", "-T"), "Not these tables (pg_dump -T).", metavar="PATTERN")
RENAME = Flag(("--rename",), "The source database OLD is called NEW on the target (repeatable).", metavar="OLD=NEW")
REMEDY = Flag(
    ("--remedy",),
    "Carry what a check blocker names in a declared, changed form on the target (repeatable): "
    "generated-as-plain, rename-rule, drop-removed-settings, leave-out-extension.",
    metavar="NAME",
)
EXCLUDE_OBJECT = Flag(
    ("--exclude-object",),
    "Leave out this object and what depends on it: '[DB:]KIND schema.name', e.g. 'table public.t' (repeatable).",
    metavar="OBJECT",
)
PG_BIN = Flag(("--pg-bin",), "A directory of PostgreSQL programs to use (repeatable).", metavar="DIR")
