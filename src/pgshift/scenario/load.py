"""Reading scenario files (TOML, stdlib ``tomllib``) and finding them: the packaged catalogue and the user's.

Every problem in a file is a ``ScenarioFileError`` (a usage error, exit 64) naming the file, the key
and the fix; nothing is run until every file chosen has been read.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from pgshift.errors import UsageError
from pgshift.lab import corpus
from pgshift.scenario.model import Generate, Scenario, ServerSpec, SetupItem, Side, SqlAssertion, Step
from pgshift.version import NEWEST_KNOWN_MAJOR, OLDEST_SUPPORTED_SOURCE

SUFFIX = ".toml"
EXIT_CODES = (0, 1, 2, 3, 4, 5, 64, 130, 143)
VERIFY_OUTCOMES = ("equal", "different", "skipped")
PLACEHOLDERS = ("source", "target", "workdir", "scenario_dir")


class ScenarioFileError(UsageError):
    """A scenario file that cannot be used: which file, which key, what to write instead."""

    def __init__(self, path: Path, where: str, problem: str, *, hint: str) -> None:
        super().__init__(f"{path}: {where}: {problem}" if where else f"{path}: {problem}", hint=hint)
        self.path = path
        self.where = where


def packaged_dir() -> Path:
    """The catalogue shipped in the package (``pgshift/data/scenarios``)."""
    return Path(str(resources.files("pgshift") / "data" / "scenarios"))


class _Table:
    """One TOML table being read: typed getters that name the key on error, and a check for unknown keys."""

    def __init__(self, path: Path, where: str, data: dict[str, Any]) -> None:
        self.path = path
        self.where = where
        self.data = data
        self.seen: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, problem: str, hint: str) -> ScenarioFileError:
        return ScenarioFileError(self.path, f"key {self._key(key)!r}", problem, hint=hint)

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str) -> Any:
        self.seen.add(key)
        return self.data.get(key)

    def text(self, key: str, default: str | None = None, *, hint: str = "") -> str | None:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {_shown(value)}", hint or f'write it in quotes: {key} = "…"')
        return value

    def required_text(self, key: str, hint: str) -> str:
        value = self.text(key, hint=hint)
        if value is None or not value.strip():
            raise self.fail(key, "is missing", hint)
        return value

    def integer(self, key: str, default: int | None = None, *, hint: str = "") -> int | None:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected a whole number, got {_shown(value)}", hint or f"e.g. {key} = 1")
        return value

    def number(self, key: str, default: float) -> float:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise self.fail(key, f"expected a positive number of seconds, got {_shown(value)}", f"e.g. {key} = 600")
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {_shown(value)}", f"e.g. {key} = true")
        return value

    def strings(self, key: str, *, hint: str = "") -> tuple[str, ...]:
        value = self.raw(key)
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, f"expected a list of strings, got {_shown(value)}", hint or f'e.g. {key} = ["…"]')
        return tuple(value)

    def table(self, key: str) -> _Table | None:
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a table, got {_shown(value)}", f"write it as a table: [{self._key(key)}]")
        return _Table(self.path, self._key(key), value)

    def tables(self, key: str, example: str) -> list[_Table]:
        value = self.raw(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.fail(key, f"expected an array of tables, got {_shown(value)}", f"write each as {example}")
        return [_Table(self.path, f"{self._key(key)}[{i}]", v) for i, v in enumerate(value, 1)]

    def done(self) -> None:
        unknown = [k for k in self.data if k not in self.seen]
        if unknown:
            known = ", ".join(sorted(self.seen))
            raise self.fail(unknown[0], "is not a key pgshift knows here", f"use one of: {known} (or fix the spelling)")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _major(table: _Table, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise table.fail(key, f"expected a PostgreSQL major such as 14, got {_shown(value)}", f"e.g. {key} = 14")
    if not OLDEST_SUPPORTED_SOURCE <= value <= NEWEST_KNOWN_MAJOR:
        raise table.fail(
            key,
            f"PostgreSQL {value} is not a major pgshift's lab runs",
            f"choose a major from {OLDEST_SUPPORTED_SOURCE} to {NEWEST_KNOWN_MAJOR}",
        )
    return value


def _majors(table: _Table, key: str) -> list[int]:
    value = table.raw(key)
    if value is None:
        raise table.fail(key, "is missing", f"name the {key} major: {key} = 14, or several: {key} = [13, 14]")
    items = value if isinstance(value, list) else [value]
    if not items:
        raise table.fail(key, "is an empty list", f"name at least one major: {key} = [14]")
    return [_major(table, key, item) for item in items]


def _pairs(table: _Table) -> tuple[tuple[int, int], ...]:
    hint = "write pairs = [[14, 18], [16, 18]] (source, target), or source = … and target = …"
    if table.has("pairs"):
        if table.has("source") or table.has("target"):
            raise table.fail("pairs", "cannot be given with source or target", hint)
        raw = table.raw("pairs")
        if not isinstance(raw, list) or not raw:
            raise table.fail("pairs", f"expected a list of [source, target] pairs, got {_shown(raw)}", hint)
        pairs = []
        for item in raw:
            if not isinstance(item, list) or len(item) != 2:
                raise table.fail("pairs", f"{_shown(item)} is not a [source, target] pair", hint)
            pairs.append((_major(table, "pairs", item[0]), _major(table, "pairs", item[1])))
    else:
        sources, targets = _majors(table, "source"), _majors(table, "target")
        pairs = [(s, t) for s in sources for t in targets if s <= t]
        if not pairs:
            raise table.fail(
                "target", "no target is at least as new as a source", "list a target major >= the source's"
            )
    seen: set[tuple[int, int]] = set()
    unique = [p for p in pairs if not (p in seen or seen.add(p))]  # type: ignore[func-returns-value]
    return tuple(unique)


def _server(table: _Table | None) -> ServerSpec:
    if table is None:
        return ServerSpec()
    settings_table = table.table("settings")
    settings: dict[str, str] = {}
    if settings_table is not None:
        for key in list(settings_table.data):
            value = settings_table.raw(key)
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise settings_table.fail(key, f"expected a setting's value, got {_shown(value)}", f'e.g. {key} = "on"')
            settings[key] = str(value)
    spec = ServerSpec(
        encoding=table.text("encoding", "UTF8") or "UTF8",
        locale=table.text("locale"),
        settings=settings,
        initdb_args=table.strings("initdb_args"),
        role=table.text("role", "postgres") or "postgres",
    )
    table.done()
    return spec


def _side(table: _Table, key: str = "on") -> Side:
    value = table.text(key, "source" if table.where.startswith("setup") else "target")
    if value not in ("source", "target"):
        raise table.fail(key, f"expected source or target, got {_shown(value)}", f'write {key} = "source" or "target"')
    return value  # type: ignore[return-value]


def _setup(table: _Table, directory: Path) -> SetupItem:
    kinds = [k for k in ("sample", "sql", "file", "generate") if table.has(k)]
    hint = 'give one of: sample = "pagila", sql = "…", file = "setup.sql", generate = { tables = 10, rows = 100 }'
    if len(kinds) != 1:
        problem = "says nothing to do" if not kinds else f"gives {' and '.join(kinds)} together"
        raise ScenarioFileError(table.path, table.where, problem, hint=hint)
    side = _side(table)
    item: SetupItem
    if kinds == ["sample"]:
        name = table.text("sample") or ""
        if name not in corpus.packaged_names():
            raise table.fail(
                "sample",
                f"there is no packaged sample {name!r}",
                f"choose one of: {', '.join(corpus.packaged_names())}",
            )
        item = SetupItem(side, database=table.text("database", name) or name, sample=name)
    elif kinds == ["sql"]:
        statements = table.strings("sql", hint='write sql = "…" or sql = ["…", "…"] (each runs as one query)')
        item = SetupItem(side, database=table.text("database", "postgres") or "postgres", sql=statements)
    elif kinds == ["file"]:
        relative = table.text("file") or ""
        path = (directory / relative).resolve()
        if not path.is_file():
            raise table.fail("file", f"{path} does not exist", "give a path relative to the scenario file")
        item = SetupItem(side, database=table.text("database", "postgres") or "postgres", file=path)
    else:
        gen = table.table("generate")
        assert gen is not None
        generate = Generate(
            tables=_positive(gen, "tables", 1),
            rows=_positive(gen, "rows", 0, zero=True),
            row_bytes=_positive(gen, "row_bytes", 0, zero=True),
            prefix=gen.text("prefix", "t") or "t",
            schema=gen.text("schema", "public") or "public",
        )
        gen.done()
        item = SetupItem(side, database=table.text("database", "postgres") or "postgres", generate=generate)
    table.done()
    return item


def _positive(table: _Table, key: str, default: int, *, zero: bool = False) -> int:
    value = table.integer(key, default)
    assert value is not None
    if value < (0 if zero else 1):
        raise table.fail(key, f"must be {'0 or more' if zero else '1 or more'}, got {value}", f"e.g. {key} = 10")
    return value


def _assertion(table: _Table) -> SqlAssertion:
    sql = table.required_text("sql", 'write the query: sql = "SELECT count(*) FROM t"')
    answers = [k for k in ("equals", "rows", "count", "same_as_source") if table.has(k)]
    if len(answers) != 1:
        raise ScenarioFileError(
            table.path,
            table.where,
            "needs exactly one of equals, rows, count, same_as_source",
            hint='e.g. equals = "42", rows = [["1", "a"]], count = 3 or same_as_source = true',
        )
    equals: str | None = None
    rows: tuple[tuple[str | None, ...], ...] | None = None
    count: int | None = None
    if answers == ["equals"]:
        value = table.raw("equals")
        if isinstance(value, list | dict):
            raise table.fail("equals", f"expected one value, got {_shown(value)}", "use rows = [[…]] for rows")
        equals = _as_text(value)
    elif answers == ["rows"]:
        value = table.raw("rows")
        if not isinstance(value, list) or not all(isinstance(r, list) for r in value):
            raise table.fail(
                "rows", f"expected a list of rows, got {_shown(value)}", 'e.g. rows = [["1", "a"], ["2", "b"]]'
            )
        rows = tuple(tuple(_as_text(v) for v in row) for row in value)
    elif answers == ["count"]:
        count = _positive(table, "count", 0, zero=True)
    elif not table.boolean("same_as_source", False):
        raise table.fail("same_as_source", "can only be true", "drop it, or give equals, rows or count instead")
    assertion = SqlAssertion(
        sql=sql,
        on=_side(table),
        database=table.text("database", "postgres") or "postgres",
        equals=equals,
        rows=rows,
        count=count,
        same_as_source=answers == ["same_as_source"],
    )
    if assertion.same_as_source and assertion.on == "source":
        raise table.fail("on", "compares the source with itself", 'drop on = "source" (same_as_source runs on both)')
    table.done()
    return assertion


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "t" if value else "f"  # as PostgreSQL prints a boolean
    return str(value)


def _step(table: _Table) -> Step:
    run = table.required_text("run", 'write the command line after "pgshift": run = "migrate {source} {target}"')
    _check_placeholders(table, run)
    exits = _exit_codes(table)
    verify = table.text("verify")
    if verify is not None and verify not in VERIFY_OUTCOMES:
        raise table.fail(
            "verify", f"expected one of {', '.join(VERIFY_OUTCOMES)}, got {verify!r}", 'e.g. verify = "equal"'
        )
    step = Step(
        run=run,
        exits=exits,
        findings=table.strings("findings"),
        blockers=table.strings("blockers"),
        warnings=table.strings("warnings"),
        infos=table.strings("infos"),
        no_findings=table.strings("no_findings"),
        verify=verify,  # type: ignore[arg-type]
        stdout_contains=table.strings("stdout_contains"),
        stderr_contains=table.strings("stderr_contains"),
        asserts=tuple(_assertion(t) for t in table.tables("assert", '[[step.assert]] with sql = "…" and equals = "…"')),
        timeout=table.number("timeout", 900.0),
    )
    if step.command != "check" and (step.findings or step.blockers or step.warnings or step.infos or step.no_findings):
        raise table.fail(
            "run",
            f"findings are read from check's report, and this step runs {step.command!r}",
            "run check in a step of its own and put the findings there",
        )
    if step.verify is not None and step.command not in ("migrate", "verify"):
        raise table.fail(
            "verify", f"is read from migrate's or verify's report, and this step runs {step.command!r}", "drop it"
        )
    table.done()
    return step


def _exit_codes(table: _Table) -> tuple[int, ...]:
    value = table.raw("exit")
    if value is None:
        return (0,)
    items = value if isinstance(value, list) else [value]
    hint = f"use one of {', '.join(map(str, EXIT_CODES))}, or a list of them: exit = [0, 1]"
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int):
            raise table.fail("exit", f"expected an exit code, got {_shown(item)}", hint)
        if item not in EXIT_CODES:
            raise table.fail("exit", f"{item} is not an exit code pgshift uses", hint)
    if not items:
        raise table.fail("exit", "is an empty list", hint)
    return tuple(items)


def _check_placeholders(table: _Table, run: str) -> None:
    import string

    try:
        names = [name for _, name, _, _ in string.Formatter().parse(run) if name is not None]
    except ValueError as exc:
        raise table.fail("run", f"has a stray brace ({exc})", "write a literal { or } twice: {{ }}") from None
    unknown = [n for n in names if n not in PLACEHOLDERS]
    if unknown:
        raise table.fail(
            "run",
            f"has an unknown placeholder {{{unknown[0]}}}",
            f"use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}",
        )


def read(path: Path) -> Scenario:
    """One scenario file, checked key by key."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ScenarioFileError(path, "", f"cannot be read ({exc.strerror})", hint="check the path") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ScenarioFileError(path, "", "is not UTF-8 text", hint="save the file as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioFileError(
            path, "", f"is not valid TOML: {exc}", hint="fix the syntax at that line (https://toml.io)"
        ) from None
    top = _Table(path, "", data)
    name = top.text("name", path.stem) or path.stem
    description = top.required_text("description", 'say what the scenario shows: description = "…"')
    pairs = _pairs(top)
    servers = top.table("servers")
    source = _server(servers.table("source") if servers else None)
    target = _server(servers.table("target") if servers else None)
    if servers is not None:
        servers.done()
    setup = tuple(_setup(t, path.parent) for t in top.tables("setup", '[[setup]] with sample = "…" or sql = "…"'))
    steps = tuple(_step(t) for t in top.tables("step", '[[step]] with run = "migrate {source} {target}"'))
    if not steps:
        raise ScenarioFileError(
            path, "", "has no [[step]]", hint='add one: [[step]] run = "migrate {source} {target}" exit = 0'
        )
    scenario = Scenario(
        name=name,
        path=path,
        description=description.strip(),
        pairs=pairs,
        steps=steps,
        setup=setup,
        source=source,
        target=target,
        tags=top.strings("tags"),
        slow=top.boolean("slow", False),
    )
    top.done()
    return scenario


def files_in(directories: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for directory in directories:
        found += sorted(p for p in directory.glob(f"*{SUFFIX}") if p.is_file())
    return found


def catalogue(extra_dirs: Sequence[Path] = (), *, packaged: bool = True) -> list[Scenario]:
    """Every scenario: the packaged catalogue, then the files of ``extra_dirs``; names must be unique."""
    for directory in extra_dirs:
        if not directory.is_dir():
            raise UsageError(
                f"{directory} is not a directory of scenarios", hint="give --dir a directory of .toml files"
            )
    directories = ([packaged_dir()] if packaged else []) + list(extra_dirs)
    scenarios = [read(path) for path in files_in(directories)]
    by_name: dict[str, Scenario] = {}
    for scenario in scenarios:
        other = by_name.get(scenario.name)
        if other is not None:
            raise ScenarioFileError(
                scenario.path,
                "",
                f"is named {scenario.name!r}, like {other.path}",
                hint='give one of them another file name (or name = "…")',
            )
        by_name[scenario.name] = scenario
    return scenarios


def choose(scenarios: Sequence[Scenario], names: Sequence[str]) -> list[tuple[Scenario, tuple[int, int] | None]]:
    """The scenarios (and optionally one pair, ``NAME@14-18``) ``names`` ask for, or a path to a file."""
    by_name = {s.name: s for s in scenarios}
    chosen: list[tuple[Scenario, tuple[int, int] | None]] = []
    for name in names:
        if name.endswith(SUFFIX) and Path(name).is_file():
            chosen.append((read(Path(name)), None))
            continue
        base, _, pair_text = name.partition("@")
        scenario = by_name.get(base)
        if scenario is None:
            near = [s for s in by_name if base and (base in s or s in base)]
            raise UsageError(
                f"there is no scenario named {base!r}",
                hint=(f"did you mean {', '.join(near[:5])}? " if near else "")
                + "see them with 'pgshift scenario list', or give a path to a .toml file",
            )
        pair: tuple[int, int] | None = None
        if pair_text:
            pair = _parse_pair(scenario, pair_text)
        chosen.append((scenario, pair))
    return chosen


def _parse_pair(scenario: Scenario, text: str) -> tuple[int, int]:
    left, sep, right = text.partition("-")
    labels = ", ".join(f"{scenario.name}@{s}-{t}" for s, t in scenario.pairs)
    if sep and left.isdigit() and right.isdigit() and (int(left), int(right)) in scenario.pairs:
        return int(left), int(right)
    raise UsageError(f"scenario {scenario.name} has no pair {text!r}", hint=f"its pairs: {labels}")
