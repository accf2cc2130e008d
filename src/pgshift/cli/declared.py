"""Commands whose options the core declares (``pgshift.flags``): typer parameters built from the
declarations, and what the user gave turned back into field values.

``declared_command(handler, options)`` is the command typer sees: the handler's own parameters (the
arguments, and the options that are no field) with one typer option per declared option in the
place the handler's ``declared`` parameter holds. The handler receives ``declared``, a
``GivenOptions``: each field's value from the command line, and which options the user gave —
told by the parser (the parameter's source), not by a comparison with the default.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from pgshift.cli.common import parse_pairs, typer_option
from pgshift.cli.help import on_command_line
from pgshift.errors import UsageError
from pgshift.flags import DeclaredOption


def cli_type(option: DeclaredOption) -> Any:
    """The type typer parses the option's value as (a repeatable option collects a list)."""
    if option.kind in ("switch", "negation", "toggle"):
        return bool
    if option.kind == "list":
        return list[option.element] | None  # type: ignore[name-defined]
    if option.kind == "pairs":
        return list[str] | None
    if option.kind == "choice":
        return str
    return option.type


def cli_default(option: DeclaredOption) -> Any:
    """The option's default on the command line (what help shows): a switch or a negation is off."""
    if option.kind in ("switch", "negation"):
        return False
    if option.kind in ("list", "pairs"):
        return None
    return option.default


def parameter(option: DeclaredOption) -> inspect.Parameter:
    """The typer parameter of a declared option, named after its field."""
    return inspect.Parameter(
        option.field,
        inspect.Parameter.KEYWORD_ONLY,
        default=cli_default(option),
        annotation=Annotated[cli_type(option), typer_option(option.flag)],
    )


def field_value(option: DeclaredOption, value: Any) -> Any:
    """The field's value for what the command line gave (or its default)."""
    name = option.flag.name
    match option.kind:
        case "switch" | "toggle":
            return bool(value)
        case "negation":
            return not value
        case "list":
            return tuple(value or ())
        case "pairs":
            return parse_pairs(value or (), name)
        case "choice":
            if value not in option.choices:
                raise UsageError(f"{name} must be {_either(option.choices)}, not {value!r}")
            return value
    return value


def _either(items: tuple[str, ...]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" or {items[-1]}"


@dataclass(frozen=True)
class GivenOptions:
    """The declared options as the command line has them."""

    options: tuple[DeclaredOption, ...]
    raw: Mapping[str, Any]  # field -> the value typer parsed (or the command line default)
    given: frozenset[str]  # the fields whose option the user gave on the command line

    def values(self) -> dict[str, Any]:
        """Every declared field's value: what was given, else the field's default."""
        return {o.field: field_value(o, self.raw[o.field]) for o in self.options}

    def changes(self, among: Iterable[DeclaredOption] | None = None) -> dict[str, Any]:
        """The values of the options the user gave (of ``among``, by default all)."""
        chosen = self.options if among is None else tuple(among)
        return {o.field: field_value(o, self.raw[o.field]) for o in chosen if o.field in self.given}

    def given_options(self) -> list[DeclaredOption]:
        return [o for o in self.options if o.field in self.given]

    def spelled(self, option: DeclaredOption) -> str:
        """The option as the user gave it, by its long name (``--no-analyze``, ``--database`` for ``-d``)."""
        return option.flag.spelled(self.raw[option.field])


_CTX = "_pgshift_ctx"  # the context's parameter, named so that no option can take the name


def declared_command(
    handler: Callable[..., None],
    options: tuple[DeclaredOption, ...],
    *,
    place: Mapping[str, str] | None = None,
) -> Callable[..., None]:
    """The typer command of ``handler`` with the declared ``options`` among its parameters.

    ``handler`` takes ``declared: GivenOptions``; its other parameters are typer's as usual. The
    declared options go where ``declared`` stands in its signature, in their declared order;
    ``place`` puts one of the handler's own options right after a declared one instead
    (``{"yes": "if_exists"}``), keeping help in the order users know. The command takes typer's
    context too (``ctx``), to ask the parser which options the user gave.
    """
    place = dict(place or {})
    own = inspect.signature(handler, eval_str=True).parameters
    if "declared" not in own or _CTX in own:
        raise TypeError(f"{handler.__name__} needs the parameter declared, and no {_CTX}")
    fields = {o.field for o in options}
    clash = fields & set(own)
    if clash:
        raise TypeError(f"{handler.__name__}'s own parameters {sorted(clash)} are declared options too")
    unknown = {anchor for anchor in place.values() if anchor not in fields} | (set(place) - set(own))
    if unknown:
        raise TypeError(f"place names {sorted(unknown)}, which are not parameters")

    def placed_after(anchor: str) -> list[inspect.Parameter]:
        return [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for n, p in own.items() if place.get(n) == anchor]

    params = [inspect.Parameter(_CTX, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)]
    for name, param in own.items():
        if name in place:
            continue
        if name == "declared":
            for option in options:
                params.append(parameter(option))
                params.extend(placed_after(option.field))
        else:
            params.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY))

    def command(**kwargs: Any) -> None:
        ctx: typer.Context = kwargs.pop(_CTX)
        raw = {o.field: kwargs.pop(o.field) for o in options}
        given = frozenset(o.field for o in options if on_command_line(ctx, o.field))
        handler(declared=GivenOptions(options, raw, given), **kwargs)

    command.__name__ = handler.__name__
    command.__qualname__ = handler.__qualname__
    command.__doc__ = handler.__doc__
    command.__module__ = handler.__module__
    command.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
    return command
