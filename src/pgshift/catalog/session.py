"""Catalog sessions: connecting, mapping libpq failures to errors users can act on."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, LiteralString

import psycopg
from psycopg import _encodings as psycopg_encodings
from psycopg.rows import dict_row

from pgshift.conninfo import CONNINFO_EXAMPLES, Endpoint, ResolvedEndpoint, refused_value
from pgshift.errors import ConnectionFailed, StepFailed, UsageError
from pgshift.process import redact
from pgshift.version import PgVersion

# Catalog sessions never resolve names through a user's search_path.
SAFE_OPTIONS = "-c search_path=pg_catalog -c statement_timeout=0 -c lock_timeout=10000"

Connection = psycopg.Connection[dict[str, Any]]


# --- SQL_ASCII -------------------------------------------------------------------------------------
# A SQL_ASCII database stores bytes without an encoding; psycopg would return its text as bytes and
# refuse any name outside ASCII in a query. Catalog sessions read it as UTF-8, and bytes that are not
# valid UTF-8 as lone surrogates (Python's "surrogateescape"): nothing is lost, a name goes back into
# SQL byte for byte, and reports show those bytes as \xNN (``printable``). psycopg maps a server
# encoding to a Python codec by name; SQL_ASCII is mapped to this codec instead of "ascii".
_SQL_ASCII_CODEC = "pgshift-sql-ascii"


def _sql_ascii_codec(name: str) -> codecs.CodecInfo | None:
    if name.replace("_", "-") != _SQL_ASCII_CODEC:
        return None
    return codecs.CodecInfo(
        name=_SQL_ASCII_CODEC,
        encode=lambda text, errors="strict": (text.encode("utf-8", "surrogateescape"), len(text)),
        decode=lambda data, errors="strict": (bytes(data).decode("utf-8", "surrogateescape"), len(data)),
    )


codecs.register(_sql_ascii_codec)
psycopg_encodings.py_codecs[b"SQLASCII"] = _SQL_ASCII_CODEC
psycopg_encodings.pg2pyenc.cache_clear()

# text, varchar, bpchar, name, "char", unknown (array types load their elements with these)
_TEXT_OIDS = (25, 1043, 1042, 19, 18, 705)


class _SqlAsciiText(psycopg.adapt.Loader):
    """psycopg's own text loader returns bytes for SQL_ASCII whatever the codec."""

    def load(self, data: Any) -> str:
        return bytes(data).decode("utf-8", "surrogateescape")


def _adapt_sql_ascii(conn: Connection) -> Connection:
    if conn.info.parameter_status("server_encoding") == "SQL_ASCII":
        for oid in _TEXT_OIDS:
            conn.adapters.register_loader(oid, _SqlAsciiText)
    return conn


def printable(text: str, *, escape: str = "\\") -> str:
    """Text for a report: each byte a SQL_ASCII database held that is not UTF-8 as the characters \\xNN.

    ``escape`` is what stands for the backslash: inside a JSON string it must be ``\\\\``.
    """
    return _UNDECODED.sub(lambda m: f"{escape}x{ord(m.group()) - 0xDC00:02x}", text)


_UNDECODED = re.compile("[\udc80-\udcff]")


def _show_undecoded(exc: UnicodeError) -> tuple[str, int]:
    """Error handler for output streams: an undecoded byte is printed as \\xNN, not a crash."""
    if isinstance(exc, UnicodeEncodeError):
        return printable(exc.object[exc.start : exc.end]), exc.end
    raise exc


codecs.register_error("pgshift-undecoded", _show_undecoded)


def _explain(exc: psycopg.OperationalError, where: str, secrets: Sequence[str]) -> ConnectionFailed:
    text = redact(str(exc).strip(), secrets)
    low = text.lower()
    if "password authentication failed" in low or "no password supplied" in low or "authentication failed" in low:
        hint = "check the user and password (PGPASSWORD, ~/.pgpass or the password= of the connection string)"
    elif "does not exist" in low and "database" in low:
        hint = "name an existing database in the connection string (dbname=postgres is usually there)"
    elif "role" in low and "does not exist" in low:
        hint = "connect as a role that exists on that server (user=...)"
    elif "timeout expired" in low or "could not connect" in low or "connection refused" in low:
        hint = "check host and port, that the server is running and that it accepts TCP connections from here"
    elif "no pg_hba.conf entry" in low:
        hint = "allow this client in the server's pg_hba.conf"
    elif "too many clients" in low or "remaining connection slots" in low:
        hint = "free connections on the server or lower --jobs"
    elif "ssl" in low:
        hint = "check the sslmode and certificate settings of the connection string"
    else:
        hint = None
    # psycopg prefixes libpq's text with "connection failed: "; the first line is the message,
    # the rest (libpq's own advice, other hosts tried) the detail.
    lines = [line.strip() for line in text.removeprefix("connection failed:").strip().splitlines() if line.strip()]
    first = lines[0] if lines else "unknown error"
    return ConnectionFailed(f"cannot connect to the {where}: {first}", hint=hint, detail="\n".join(lines[1:]) or None)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def query_failed(what: str, exc: psycopg.Error, *, hint: str | None = None) -> StepFailed:
    """A catalog query that failed, as an error naming what pgshift was doing and the likely fix."""
    if isinstance(exc, psycopg.errors.LockNotAvailable):
        default = (
            "another session holds an exclusive lock on a table or catalog pgshift reads (it waits "
            "lock_timeout = 10 s): let that session finish, then run again"
        )
    elif isinstance(exc, psycopg.errors.InsufficientPrivilege):
        default = "connect as a superuser, or as a role that may read every table, sequence and large object"
    elif isinstance(exc, psycopg.OperationalError):
        default = "the connection was lost: check the server, then run again"
    else:
        default = "run again with --debug and report it if it persists"
    return StepFailed(f"{what}: a query failed: {first_line(exc)}", hint=hint or default)


def connect(
    endpoint: Endpoint | ResolvedEndpoint,
    dbname: str | None = None,
    *,
    autocommit: bool = True,
    options: str | None = SAFE_OPTIONS,
) -> Connection:
    """A catalog session on ``endpoint`` (optionally on another database of the same server)."""
    overrides: dict[str, Any] = {}
    if dbname is not None:
        overrides["dbname"] = dbname
    if options:
        overrides["options"] = options
    conninfo = endpoint.conninfo(**overrides)
    secrets = [endpoint.password] if endpoint.password else []
    where = endpoint.role if dbname is None else f"{endpoint.role} database {dbname!r}"
    try:
        return _adapt_sql_ascii(psycopg.connect(conninfo, autocommit=autocommit, row_factory=dict_row))
    except psycopg.OperationalError as exc:
        # A value libpq refuses (port=abc, sslmode=bogus, an unknown service) is bad input, like a
        # string that does not parse: exit 64 wherever the string was given, not "cannot connect".
        refused = refused_value(endpoint.role, redact(str(exc), secrets))
        if refused is not None:
            raise refused from None
        raise _explain(exc, where, secrets) from None
    except psycopg.ProgrammingError as exc:  # psycopg refused a value (connect_timeout=x) before libpq ran
        raise UsageError(
            f"the {endpoint.role} connection string is not valid: {redact(first_line(exc), secrets)}",
            hint=f"fix that value; a connection string is {CONNINFO_EXAMPLES}",
        ) from None


@contextmanager
def session(endpoint: Endpoint | ResolvedEndpoint, dbname: str | None = None, **kwargs: Any) -> Iterator[Connection]:
    conn = connect(endpoint, dbname, **kwargs)
    try:
        yield conn
    finally:
        conn.close()


def resolve(endpoint: Endpoint) -> ResolvedEndpoint:
    """Connect once and record the effective parameters libpq used."""
    # Resolution must not carry pgshift's own session options into child programs.
    with session(endpoint, options=None) as conn:
        return ResolvedEndpoint.from_connection(endpoint.role, conn, endpoint)


def server_version(conn: Connection) -> PgVersion:
    return PgVersion.from_num(conn.info.server_version)


def fetch_all(
    conn: Connection, query: LiteralString, params: Mapping[str, Any] | Sequence[Any] | None = None
) -> list[dict[str, Any]]:
    with conn.cursor() as cur:
        cur.execute(query, params)
        return list(cur.fetchall())


def fetch_one(
    conn: Connection, query: LiteralString, params: Mapping[str, Any] | Sequence[Any] | None = None
) -> dict[str, Any] | None:
    with conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchone()
