"""The schema trial's scratch databases on the target: create, mark, find leftovers, drop; run a dump's statements.

A scratch database is created from template0 with the source database's encoding and locale (the
statement migrate uses, ``ddl.create_database``), carries a comment that marks it as a trial of one
pgshift process (``MARK``), and is dropped when the trial ends. A trial that was killed (SIGKILL,
a crash of the machine) leaves one behind: the next trial finds it by its name and mark and drops it
once its owner is gone (``leftovers``).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import time
from dataclasses import dataclass, replace

import psycopg
from psycopg import sql

from pgshift.catalog import ddl
from pgshift.catalog.cluster import DatabaseInfo
from pgshift.catalog.session import Connection, fetch_all, fetch_one
from pgshift.version import PgVersion

NAME_PREFIX = "pgshift_trial_"
MARK = "pgshift schema trial: pid {pid} on {host} since {started}; drop it if that process is gone"
_MARK = re.compile(r"^pgshift schema trial: pid (?P<pid>\d+) on (?P<host>\S+) since (?P<started>\d+);")
# A mark from another machine cannot be checked for a live process: its database counts as left over
# once nobody is connected to it and it is this old.
FOREIGN_LEFTOVER_SECONDS = 6 * 3600


def new_name() -> str:
    """A database name no user has: the prefix and 12 random hex digits."""
    return NAME_PREFIX + secrets.token_hex(6)


def mark_text(pid: int | None = None, host: str | None = None, started: int | None = None) -> str:
    return MARK.format(
        pid=os.getpid() if pid is None else pid,
        host=host or socket.gethostname(),
        started=int(time.time()) if started is None else started,
    )


def may_create_databases(conn: Connection) -> bool:
    row = fetch_one(conn, "SELECT rolsuper OR rolcreatedb AS ok FROM pg_roles WHERE rolname = current_user")
    return bool(row and row["ok"])


def is_superuser(conn: Connection) -> bool:
    row = fetch_one(conn, "SELECT rolsuper AS ok FROM pg_roles WHERE rolname = current_user")
    return bool(row and row["ok"])


def role_names(conn: Connection) -> frozenset[str]:
    return frozenset(r["rolname"] for r in fetch_all(conn, "SELECT rolname FROM pg_roles"))


@dataclass(frozen=True)
class Created:
    name: str
    notes: tuple[str, ...]  # e.g. the locale the scratch database had to fall back to


def create(conn: Connection, db: DatabaseInfo, name: str, target: PgVersion) -> Created:
    """CREATE DATABASE ``name`` like ``db`` (encoding, locale, provider), then mark it as this process's trial.

    The source's locale may be missing on the target (a finding of the locale rules, not of the
    trial): the scratch database then falls back to the C locale in the same encoding, so that the
    objects can still be tried, and says so.
    """
    like = replace(db, connlimit=-1)  # the source's connection limit is not the trial's business
    notes: list[str] = []
    try:
        ddl.execute(conn, ddl.create_database(like, name, target, owner=None, tablespace=None).statement)
    except (psycopg.errors.InvalidParameterValue, psycopg.errors.FeatureNotSupported, psycopg.errors.UndefinedObject):
        plain = replace(like, collate="C", ctype="C", locale_provider="libc", icu_locale=None, icu_rules=None)
        ddl.execute(conn, ddl.create_database(plain, name, target, owner=None, tablespace=None).statement)
        notes.append(
            f"the target cannot create a database with {db.name}'s locale {db.collate!r}/{db.ctype!r} "
            f"({db.locale_provider}); the trial used the C locale in {db.encoding}"
        )
    ddl.execute(conn, ddl.comment_on_database(name, mark_text()))
    return Created(name, tuple(notes))


def drop(conn: Connection, name: str, target: PgVersion) -> None:
    """End every session on the scratch database and drop it."""
    if target.major < 13:
        # Before 13 DROP DATABASE has no WITH (FORCE): end the database's sessions first.
        ddl.execute(conn, ddl.terminate_sessions(name))
    ddl.execute(conn, ddl.drop_database(name, target))


@dataclass(frozen=True)
class Leftover:
    name: str
    pid: int
    host: str
    started: int
    sessions: int


def leftovers(conn: Connection) -> list[Leftover]:
    """Scratch databases of trials whose process is gone (killed before it could drop them)."""
    rows = fetch_all(
        conn,
        r"""
        SELECT d.datname, shobj_description(d.oid, 'pg_database') AS comment,
               (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname) AS sessions
        FROM pg_database d
        WHERE d.datname LIKE 'pgshift\_trial\_%'
        ORDER BY 1
        """,
    )
    here = socket.gethostname()
    out = []
    for r in rows:
        m = _MARK.match(r["comment"] or "")
        if m is None:
            continue  # a name like ours without our mark is not ours to drop
        pid, host, started = int(m["pid"]), m["host"], int(m["started"])
        if host == here:
            if _alive(pid):
                continue
        elif r["sessions"] or time.time() - started < FOREIGN_LEFTOVER_SECONDS:
            continue
        out.append(Leftover(r["datname"], pid, host, started, int(r["sessions"])))
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def exists(conn: Connection, name: str) -> bool:
    return fetch_one(conn, "SELECT 1 AS one FROM pg_database WHERE datname = %s", (name,)) is not None


# --- running a dump's statements -------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """What the server said when it refused one statement."""

    sqlstate: str | None
    message: str
    detail: str | None
    hint: str | None


def timeouts(statement_ms: int, lock_ms: int) -> str:
    """Session options for the trial's sessions: no statement may hang the check."""
    return f"-c statement_timeout={statement_ms} -c lock_timeout={lock_ms} -c idle_in_transaction_session_timeout=0"


def try_statement(conn: Connection, statement: bytes) -> Refusal | None:
    """Run one statement of a dump (its bytes as pg_restore wrote them); the server's refusal, if any.

    Sent as a simple query without parameters, byte for byte: the text is in the dump's encoding,
    which the dump's own ``SET client_encoding`` made the session's.
    """
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    except psycopg.errors.QueryCanceled as exc:
        if "statement timeout" in str(exc) or "lock timeout" in str(exc):
            return _refusal(exc)
        raise  # a cancel of ours (Ctrl-C): not the statement's fault
    except psycopg.DatabaseError as exc:
        if isinstance(exc, psycopg.OperationalError) and conn.closed:
            raise
        return _refusal(exc)
    return None


def _refusal(exc: psycopg.Error) -> Refusal:
    diag = exc.diag
    message = diag.message_primary or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return Refusal(diag.sqlstate, message, diag.message_detail, diag.message_hint)


def close_quietly(conn: Connection | None) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()


def set_session(conn: Connection, name: str, value: str) -> None:
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("SELECT pg_catalog.set_config({}, {}, false)").format(sql.Literal(name), sql.Literal(value))
        )
