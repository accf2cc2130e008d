"""Help pages in PostgreSQL's manner, and usage errors in pgshift's words.

Every pgshift command and group is built with the classes here (typer's ``cls=``). They write
help like ``pg_dump --help`` does — a description, ``Usage:`` lines, then one line per option as
``-j, --jobs=N   description`` — from the parameters' names, metavars and help texts alone, so no
Python type ever shows. ``usage_error`` turns what the argument parser raises (unknown option,
missing argument, bad value…) into a ``UsageError`` the CLI funnel prints like every other error.

typer 0.29 vendors click as ``typer._click``; this module is the only one that imports from it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from difflib import get_close_matches
from enum import Enum
from typing import Any, TypeVar

import typer
from typer._click import Context, HelpFormatter, Parameter
from typer._click import exceptions as click_errors
from typer._click.core import ParameterSource
from typer.core import TyperCommand, TyperGroup

from pgshift.errors import UsageError

E = TypeVar("E", bound=Enum)

# What the argument parser raises, for the CLI funnel (cli/main.py) to catch.
ParserError = click_errors.ClickException
NoCommandGiven = click_errors.NoArgsIsHelpError

# Old spellings that still work but are not shown: help names one spelling per option.
HIDDEN_ALIASES = frozenset({"--work-dir"})

# The description column starts at most this far in; a longer option puts its description on the
# next line (pg_dump's layout).
_TERM_WIDTH = 30
_HELP_TEXT = "Show this help, then exit."


class ValueProblem(typer.BadParameter):
    """A value an option's parser refused, in pgshift's words.

    ``{option}`` in the message and hint is replaced by the option's name (``--jobs``) or the
    argument's metavar (``SOURCE``) when the error is reported.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


# --- value parsers (typer's ``parser=``) ---------------------------------------------------------


def whole_number(minimum: int = 0) -> Callable[[Any], int]:
    """A parser of a whole number of at least ``minimum``, with pgshift's wording on refusal."""

    def parse(value: Any) -> int:
        if isinstance(value, int):  # the declared default goes through the parser too
            return value
        text = str(value).strip()
        try:
            number = int(text, 10)
        except ValueError:
            raise ValueProblem(
                f"{{option}} expects a whole number, not {text!r}", hint=f"e.g. {{option}} {max(minimum, 4)}"
            ) from None
        if number < minimum:
            raise ValueProblem(f"{{option}} must be at least {minimum}, not {number}", hint=f"give {minimum} or more")
        return number

    return parse


def one_of(kind: type[E], allowed: Sequence[E] | None = None) -> Callable[[Any], E]:
    """A parser of one of an enumeration's values (or of ``allowed``), named in the refusal."""
    choices = list(allowed if allowed is not None else kind)

    def parse(value: Any) -> E:
        if isinstance(value, kind):
            return value
        text = str(value).strip()
        for choice in choices:
            if text.lower() == str(choice.value).lower():
                return choice
        names = [str(c.value) for c in choices]
        raise ValueProblem(f"{{option}} must be {_either(names)}, not {text!r}", hint=f"e.g. {{option}} {names[0]}")

    return parse


# --- help pages ----------------------------------------------------------------------------------


def _wrap(text: str, width: int, indent: str = "", first: str | None = None) -> list[str]:
    first = indent if first is None else first
    return textwrap.wrap(
        text, width=max(width, 40), initial_indent=first, subsequent_indent=indent, break_on_hyphens=False
    ) or [first.rstrip()]


def _paragraphs(text: str | None) -> list[str]:
    if not text:
        return []
    cleaned = textwrap.dedent(text).strip().partition("\f")[0]
    return [" ".join(p.split()) for p in cleaned.split("\n\n") if p.strip()]


def first_sentence(text: str | None) -> str:
    """The short description of a command in its group's list: the first sentence of its help."""
    paragraphs = _paragraphs(text)
    if not paragraphs:
        return ""
    head, sep, _rest = paragraphs[0].partition(". ")
    return head + ("." if sep else "")


def metavar(param: Parameter) -> str:
    """The word a value is shown as (``N``, ``DIR``, ``SOURCE``); never a type."""
    if param.metavar:
        return param.metavar
    return (param.name or "value").upper()


def option_names(param: Parameter) -> list[str]:
    """The names shown for an option: short ones first, hidden aliases left out."""
    names = [n for n in [*param.opts, *param.secondary_opts] if n not in HIDDEN_ALIASES]
    return [n for n in names if not n.startswith("--")] + [n for n in names if n.startswith("--")]


def _is_flag(param: Parameter) -> bool:
    return bool(getattr(param, "is_flag", False))


def _term(param: Parameter) -> str:
    if param.param_type_name == "argument":
        return metavar(param)
    names = option_names(param)
    term = ", ".join(names)
    if not _is_flag(param):
        long = any(n.startswith("--") for n in names)
        term += ("=" if long else " ") + metavar(param)
    return term


def _default(param: Parameter) -> str | None:
    if param.param_type_name != "option" or getattr(param, "show_default", True) is False:
        return None
    value = param.default
    if _is_flag(param):
        if param.secondary_opts:  # --analyze/--no-analyze: name the one that applies by default
            return param.opts[0] if value else param.secondary_opts[0]
        return None
    if value is None or value == () or value == [] or value == "" or callable(value):
        return None
    if isinstance(value, Enum):
        value = value.value
    return str(value)


def _description(param: Parameter, help_option: Parameter | None) -> str:
    if param is help_option:
        return _HELP_TEXT
    text = " ".join((getattr(param, "help", None) or "").split())
    if getattr(param, "multiple", False) and "repeatable" not in text:
        text += " (repeatable)"
    default = _default(param)
    if default is not None:
        text += f" (default: {default})"
    return text.strip()


def _rows(rows: Sequence[tuple[str, str]], width: int) -> list[str]:
    # The description column: after the longest term, at most _TERM_WIDTH in (pg_dump's layout).
    column = min(max((len(term) for term, _ in rows), default=0) + 4, _TERM_WIDTH)
    out: list[str] = []
    for term, text in rows:
        lead = f"  {term}"
        if len(lead) + 2 > column:
            out.append(lead)
            out.extend(_wrap(text, width, " " * column) if text else [])
        elif text:
            out.extend(_wrap(text, width, " " * column, first=lead.ljust(column)))
        else:
            out.append(lead)
    return out


def _visible(params: Iterable[Parameter], kind: str) -> list[Parameter]:
    return [p for p in params if p.param_type_name == kind and not getattr(p, "hidden", False)]


def _page(
    description: str | None,
    usage: Sequence[str],
    sections: Sequence[tuple[str, list[tuple[str, str]]]],
    width: int,
    footer: str | None = None,
) -> str:
    lines: list[str] = []
    for paragraph in _paragraphs(description):
        lines.extend(_wrap(paragraph, width))
        lines.append("")
    lines.append("Usage:")
    lines.extend(f"  {u}" for u in usage)
    for title, rows in sections:
        if rows:
            lines.extend(["", f"{title}:", *_rows(rows, width)])
    if footer:
        lines.extend(["", *_wrap(footer, width)])
    return "\n".join(lines) + "\n"


def default_usage(command: TyperCommand | TyperGroup, ctx: Context) -> str:
    """``[OPTION]... SOURCE [TARGET]``: required arguments bare, optional ones in brackets."""
    pieces = ["[OPTION]..."]
    for param in _visible(command.get_params(ctx), "argument"):
        word = metavar(param) + ("..." if param.nargs == -1 else "")
        pieces.append(word if param.required else f"[{word}]")
    return " ".join(pieces)


@contextmanager
def _in_context(ctx: Context) -> Iterator[None]:
    """The option parser raises some errors without their command: attach it, for the report."""
    try:
        yield
    except click_errors.UsageError as exc:
        if exc.ctx is None:
            exc.ctx = ctx
        raise


def _either(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" or {items[-1]}"


class PgCommand(TyperCommand):
    """A pgshift command: help like pg_dump's, pgshift's wording for extra arguments."""

    # The forms of the usage line after the command's path; the default is built from the
    # arguments. A command whose arguments depend on its options declares them (see ``usage``).
    usages: tuple[str, ...] = ()
    # Extra arguments are reported by parse_args below, in pgshift's words.
    allow_extra_args = True

    def usage_lines(self, ctx: Context) -> list[str]:
        forms = self.usages or (default_usage(self, ctx),)
        return [f"{ctx.command_path} {form}" for form in forms]

    def format_usage(self, ctx: Context, formatter: HelpFormatter) -> None:
        formatter.write("Usage: " + self.usage_lines(ctx)[0] + "\n")

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        params = self.get_params(ctx)
        help_option = self.get_help_option(ctx)
        sections = [
            ("Arguments", [(_term(p), _description(p, help_option)) for p in _visible(params, "argument")]),
            ("Options", [(_term(p), _description(p, help_option)) for p in _visible(params, "option")]),
        ]
        formatter.write(_page(self.help, self.usage_lines(ctx), sections, formatter.width))

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        with _in_context(ctx):
            rest = super().parse_args(ctx, args)
        if rest and not ctx.resilient_parsing:
            extra = " ".join(repr(a) for a in rest)
            raise UsageError(
                f"{ctx.command_path} takes no argument {extra}",
                hint=f"usage: {self.usage_lines(ctx)[0]}; quote a connection string that holds spaces "
                "('host=db1 port=5432')",
            )
        return rest


def usage(*forms: str) -> type[PgCommand]:
    """A command class whose usage line(s) are ``forms`` (after ``pgshift COMMAND``)."""
    return type("PgCommand", (PgCommand,), {"usages": tuple(forms)})


class PgGroup(TyperGroup):
    """A group of commands (``pgshift``, ``pgshift toolchain``) with help like PostgreSQL's."""

    def usage_lines(self, ctx: Context) -> list[str]:
        return [f"{ctx.command_path} [OPTION]... COMMAND [ARG]..."]

    def format_usage(self, ctx: Context, formatter: HelpFormatter) -> None:
        formatter.write("Usage: " + self.usage_lines(ctx)[0] + "\n")

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        help_option = self.get_help_option(ctx)
        commands = [
            (name, first_sentence(cmd.help))
            for name in self.list_commands(ctx)
            if (cmd := self.get_command(ctx, name)) is not None and not cmd.hidden
        ]
        sections = [
            ("Commands", commands),
            ("Options", [(_term(p), _description(p, help_option)) for p in _visible(self.get_params(ctx), "option")]),
        ]
        footer = f"Run '{ctx.command_path} COMMAND --help' for the arguments and options of a command."
        formatter.write(_page(self.help, self.usage_lines(ctx), sections, formatter.width, footer))

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        with _in_context(ctx):
            return super().parse_args(ctx, args)

    def visible_commands(self, ctx: Context) -> list[str]:
        return [n for n in self.list_commands(ctx) if (c := self.get_command(ctx, n)) is not None and not c.hidden]

    def resolve_command(self, ctx: Context, args: list[str]) -> tuple[str | None, Any, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None and not ctx.resilient_parsing:
            known = self.visible_commands(ctx)
            close = get_close_matches(name, known, n=2)
            hint = (
                f"did you mean {_either(close)}?"
                if close
                else f"the commands are {', '.join(known)} ('{ctx.command_path} --help' describes them)"
            )
            raise UsageError(f"{ctx.command_path} has no command {name!r}", hint=hint)
        return super().resolve_command(ctx, args)


def on_command_line(ctx: Context, name: str) -> bool:
    """Whether the user gave parameter ``name`` on the command line (not its default, even when equal)."""
    return ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE


# --- usage errors --------------------------------------------------------------------------------


def _label(param: Parameter | None) -> str:
    if param is None:
        return "a value"
    if param.param_type_name == "argument":
        return metavar(param)
    names = option_names(param) or list(param.opts)
    longs = [n for n in names if n.startswith("--")]
    return (longs or names)[0]


def _usage_hint(ctx: Context | None) -> str:
    if ctx is None:
        return "see 'pgshift --help'"
    command = ctx.command
    if isinstance(command, PgCommand | PgGroup):
        return f"usage: {command.usage_lines(ctx)[0]} (see '{ctx.command_path} --help')"
    return f"see '{ctx.command_path} --help'"


def _find_option(ctx: Context | None, name: str) -> Parameter | None:
    if ctx is None:
        return None
    for param in ctx.command.get_params(ctx):
        if name in param.opts or name in param.secondary_opts:
            return param
    return None


def _raw_input(exc: click_errors.BadParameter) -> Any:
    """The value typer's own coercion refused, when its cause (a pydantic ValidationError) names it."""
    errors = getattr(exc.__cause__, "errors", None)
    if callable(errors):
        try:
            found = errors()
        except Exception:  # pragma: no cover - a cause of another shape: no value to show
            return None
        if found and isinstance(found[0], dict):
            return found[0].get("input")
    return None


def usage_error(exc: click_errors.ClickException) -> UsageError:
    """What the argument parser refused, in pgshift's words: one line naming it, a hint naming the fix."""
    ctx: Context | None = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "pgshift"
    if isinstance(exc, click_errors.NoSuchOption):
        name = exc.option_name
        if name == "-h":
            return UsageError(
                f"{command} has no option -h",
                hint=f"for help give '{command} --help'; a host goes in the connection string (host=db1), "
                "as -h is pg_dump's host option",
            )
        close = [p for p in exc.possibilities or () if p not in HIDDEN_ALIASES]
        hint = f"did you mean {_either(close)}?" if close else f"'{command} --help' lists the options"
        return UsageError(f"{command} has no option {name}", hint=hint)
    if isinstance(exc, click_errors.BadOptionUsage):
        param = _find_option(ctx, exc.option_name)
        if param is not None and _is_flag(param):
            return UsageError(f"{exc.option_name} takes no value", hint=f"give {exc.option_name} alone")
        word = metavar(param) if param is not None else "VALUE"
        return UsageError(f"{exc.option_name} needs a value", hint=f"give {exc.option_name} {word}")
    if isinstance(exc, click_errors.MissingParameter):
        return UsageError(f"missing {_label(exc.param)}", hint=_usage_hint(ctx))
    if isinstance(exc, ValueProblem):
        label = _label(exc.param)
        return UsageError(
            exc.message.replace("{option}", label),
            hint=(exc.hint or "").replace("{option}", label) or _usage_hint(ctx),
        )
    if isinstance(exc, click_errors.BadParameter):
        label = _label(exc.param)
        value = _raw_input(exc)
        what = f"{label} cannot be {value!r}" if value is not None else f"{label} has a value pgshift cannot use"
        return UsageError(what, hint=f"'{command} --help' says what {label} takes")
    if isinstance(exc, click_errors.NoArgsIsHelpError) or exc.format_message().startswith("Missing command"):
        return UsageError(f"{command} needs a command", hint=f"'{command} --help' lists them")
    text = exc.format_message().strip().rstrip(".")
    return UsageError(text[:1].lower() + text[1:], hint=_usage_hint(ctx))
