"""Catalog sessions: connecting, mapping libpq failures to errors users can act on."""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, LiteralString

import psycopg
from psycopg import _encodings as psycopg_encodings
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types import string as pg_strings

from pgshift.conninfo import CONNINFO_EXAMPLES, Endpoint, ResolvedEndpoint, refused_value
from pgshift.errors import ConnectionFailed, StepFailed, UsageError
from pgshift.paths import exposed_passfile
from pgshift.process import redact
from pgshift.version import PgVersion

# Catalog sessions never resolve names through a user's search_path.
SAFE_OPTIONS = "-c search_path=pg_catalog -c statement_timeout=0 -c lock_timeout=10000"

Connection = psycopg.Connection[dict[str, Any]]


# --- text in any encoding ----------------------------------------------------------------------
# Policy (docs/encodings.md). A catalog session reads text in its client encoding, which is the
# encoding of the database it is connected to (pgshift never sets client_encoding, so the server
# converts nothing). Bytes that are not valid in that encoding do occur and must not crash a read:
#
# * the shared catalogs (pg_database, pg_authid, pg_tablespace, pg_shdescription,
#   pg_db_role_setting) hold bytes as written by a session on whichever database wrote them, and
#   the server does not convert them when they are read from a database in another encoding: a role
#   named from a LATIN1 database holds 0xdc for "Ü", which a UTF8 session cannot decode;
# * a SQL_ASCII database stores bytes without an encoding (read as UTF-8 where they are UTF-8).
#
# Such bytes are kept as lone surrogates U+DC80..U+DCFF (Python's "surrogateescape"): nothing is
# lost, a name sent back into SQL on a session of the same encoding is the same bytes, and reports
# show each as the four characters \xNN (``printable``). A character that a session's encoding
# cannot represent at all is sent as its UTF-8 bytes: such text was read through a UTF8 (or
# SQL_ASCII) session, and those are the bytes the shared catalog holds.
#
# psycopg maps a server encoding to a Python codec by name, and its C adapters take fast, strict
# paths for UTF8 and give SQL_ASCII text back as bytes. So every encoding is mapped to a lossless
# variant of its codec, and every session gets psycopg's Python text adapters, which honour it.
_LOSSLESS = "pgshift-lossless-"
_ERRORS = "pgshift-lossless"


def _lossless_errors(exc: UnicodeError) -> tuple[str | bytes, int]:
    if isinstance(exc, UnicodeDecodeError):
        byte = exc.object[exc.start]
        return (chr(0xDC00 + byte) if byte >= 0x80 else chr(byte)), exc.start + 1
    if isinstance(exc, UnicodeEncodeError):
        out = bytearray()
        for char in exc.object[exc.start : exc.end]:
            code = ord(char)
            out += bytes([code - 0xDC00]) if 0xDC80 <= code <= 0xDCFF else char.encode("utf-8", "surrogatepass")
        return bytes(out), exc.end
    raise exc


codecs.register_error(_ERRORS, _lossless_errors)


def _lossless_codec(name: str) -> codecs.CodecInfo | None:
    prefix = _LOSSLESS.replace("-", "_")
    if not name.startswith(prefix):
        return None
    base = codecs.lookup(name.removeprefix(prefix)).name

    def encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
        return text.encode(base, _ERRORS), len(text)

    def decode(data: Any, errors: str = "strict") -> tuple[str, int]:
        raw = bytes(data)
        return raw.decode(base, _ERRORS), len(raw)

    return codecs.CodecInfo(name=_LOSSLESS + base, encode=encode, decode=decode)


codecs.register(_lossless_codec)
# PostgreSQL encoding -> Python codec, as psycopg knows them (before the lossless mapping below).
_PY_CODECS: dict[str, str] = {k.decode(): v for k, v in psycopg_encodings.py_codecs.items()}
for _pg_name, _py_name in list(psycopg_encodings.py_codecs.items()):
    # SQL_ASCII has no encoding: its bytes are read as UTF-8 where they are UTF-8.
    _py_name = "utf-8" if _pg_name in (b"SQL_ASCII", b"SQLASCII") else _py_name
    psycopg_encodings.py_codecs[_pg_name] = _LOSSLESS + _py_name
psycopg_encodings.pg2pyenc.cache_clear()


def _lossless_adapters() -> psycopg.adapt.AdaptersMap:
    """psycopg's Python text adapters, in psycopg's own order (the last str dumper is the default).

    Subclassed: psycopg would swap its own Python classes for their C versions.
    """
    adapters = psycopg.adapt.AdaptersMap(psycopg.adapters)
    for base in (
        pg_strings.StrBinaryDumperName,
        pg_strings.StrBinaryDumperVarchar,
        pg_strings.StrBinaryDumper,
        pg_strings.StrDumperName,
        pg_strings.StrDumperVarchar,
        pg_strings.StrDumper,
        pg_strings.StrDumperUnknown,
    ):
        adapters.register_dumper(str, type(base.__name__, (base,), {}))
    text = type("TextLoader", (pg_strings.TextLoader,), {})
    binary = type("TextBinaryLoader", (pg_strings.TextBinaryLoader,), {})
    # text, varchar, bpchar, name, "char", unknown; and (oid 0) every type without a loader of its
    # own (aclitem, regproc …). Arrays of these load their elements with these loaders.
    for oid in (25, 1043, 1042, 19, 18, 705):
        adapters.register_loader(oid, text)
        adapters.register_loader(oid, binary)
    adapters.register_loader(0, text)
    return adapters


_ADAPTERS = _lossless_adapters()


def encoded(conn: Connection, text: str) -> bytes:
    """The bytes ``text`` becomes in a statement on ``conn``: what the server will receive."""
    return text.encode(conn.info.encoding)


def _py_codec(encoding: str) -> str | None:
    """The Python codec of a PostgreSQL encoding name (None: Python has none, e.g. EUC_TW)."""
    key = encoding.upper().replace("-", "").replace("_", "")
    return next((v for k, v in _PY_CODECS.items() if k.replace("_", "") == key), None)


def encoded_in(encoding: str, text: str) -> bytes:
    """The bytes ``text`` (as a catalog session read it) becomes on a session in ``encoding``."""
    codec = _py_codec(encoding)
    return text.encode(_LOSSLESS + ("utf-8" if codec in (None, "ascii") else codec))


def decoded_in(encoding: str, data: bytes) -> str | None:
    """``data`` read as valid text of ``encoding``, or None where it is not valid there."""
    codec = _py_codec(encoding)
    if codec is None:
        return None
    try:
        return data.decode("utf-8" if codec == "ascii" else codec)
    except UnicodeDecodeError:
        return None


# Multibyte server encodings validate their input; single-byte ones accept every byte but NUL
# (PostgreSQL's pg_verify_mbstr), whatever Python's codec thinks of bytes with no character.
_MULTIBYTE = frozenset({"UTF8", "EUC_JP", "EUC_CN", "EUC_KR", "EUC_TW", "EUC_JIS_2004", "MULE_INTERNAL"})


def accepts(encoding: str, data: bytes) -> bool:
    """Whether a database in ``encoding`` accepts ``data`` as text (as its server would check it)."""
    name = encoding.upper()
    if b"\x00" in data:
        return False
    if name == "SQL_ASCII" or (name not in _MULTIBYTE and _py_codec(name) is not None):
        return True
    if _py_codec(name) is None:
        return True  # no Python codec to tell (EUC_TW, MULE_INTERNAL): the server will say
    return decoded_in(name, data) is not None


def printable(text: str, *, escape: str = "\\") -> str:
    """Text for a report: each byte kept undecoded (see above) as the characters \\xNN.

    ``escape`` is what stands for the backslash: inside a JSON string it must be ``\\\\``.
    """
    return _UNDECODED.sub(lambda m: f"{escape}x{ord(m.group()) - 0xDC00:02x}", text)


_UNDECODED = re.compile("[\udc80-\udcff]")


def _show_undecoded(exc: UnicodeError) -> tuple[str, int]:
    """Error handler for output streams: an undecoded byte prints as \\xNN, a character the
    stream's encoding lacks as \\uNNNN; neither is a crash."""
    if isinstance(exc, UnicodeEncodeError):
        part = exc.object[exc.start : exc.end]
        return "".join(
            printable(c) if _UNDECODED.match(c) else c.encode("ascii", "backslashreplace").decode() for c in part
        ), exc.end
    raise exc


codecs.register_error("pgshift-undecoded", _show_undecoded)


# libpq: connection to server on socket "/run/postgresql/.s.PGSQL.5432" failed: No such file or directory
_SOCKET = re.compile(r'on socket "(?P<dir>.*)/\.s\.PGSQL\.(?P<port>\d+)" failed')


def _socket_hint(directory: str, port: str, low: str) -> str | None:
    """A unix-domain socket that is not there: the directory is wrong, or no server listens in it."""
    if "no such file or directory" not in low and "connection refused" not in low:
        return None
    if not os.path.isdir(directory):
        return (
            f"the socket directory {directory} does not exist: give host= the server's "
            "unix_socket_directories (or a host name for TCP)"
        )
    return (
        f"no server listens on port {port} in {directory}: check that the server is running on this machine, "
        "and the port= of the connection string"
    )


def _explain(
    exc: psycopg.OperationalError, where: str, secrets: Sequence[str], passfile: str | None = None
) -> ConnectionFailed:
    text = redact(str(exc).strip(), secrets)
    low = text.lower()
    socket = _SOCKET.search(text)
    hint: str | None
    exposed = exposed_passfile(passfile)
    if exposed is not None and ("no password supplied" in low or "authentication failed" in low):
        hint = (
            f"the password file {exposed[0]} may be read by others (mode {exposed[1]:04o}), so libpq ignores it: "
            f"chmod 600 {exposed[0]}"
        )
    elif "password authentication failed" in low or "no password supplied" in low or "authentication failed" in low:
        hint = "check the user and password (PGPASSWORD, ~/.pgpass or the password= of the connection string)"
    elif "does not exist" in low and "database" in low:
        hint = "name an existing database in the connection string (dbname=postgres is usually there)"
    elif "role" in low and "does not exist" in low:
        hint = "connect as a role that exists on that server (user=...)"
    elif socket is not None:
        hint = _socket_hint(socket.group("dir"), socket.group("port"), low)
    elif "failed to resolve host" in low or "could not translate host name" in low:
        hint = "check the host name (host=…): it does not resolve from here"
    elif "timeout expired" in low or "could not connect" in low or "connection refused" in low:
        hint = "check host and port, that the server is running and that it accepts TCP connections from here"
    elif "no pg_hba.conf entry" in low:
        hint = "allow this client in the server's pg_hba.conf"
    elif "too many clients" in low or "remaining connection slots" in low:
        hint = "free connections on the server or lower --jobs"
    elif "does not match host name" in low:
        hint = (
            "the server's certificate is not issued for the host name given: connect with a name the "
            "certificate lists (host=…, with hostaddr= for the address), or sslmode=verify-ca to check the CA only"
        )
    elif "certificate verify failed" in low:
        hint = (
            "the server's certificate is not signed by a CA in sslrootcert= (or it expired): give sslrootcert= "
            "the CA certificate that signed the server's"
        )
    elif "ssl" in low or "certificate" in low:
        hint = "check the sslmode and certificate settings of the connection string"
    else:
        hint = None
    # psycopg prefixes libpq's text with "connection failed: "; the first line is the message,
    # the rest (libpq's own advice, other hosts tried) the detail.
    for prefix in ("connection failed:", "connection is bad:"):
        text = text.removeprefix(prefix).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else "unknown error"
    return ConnectionFailed(f"cannot connect to the {where}: {first}", hint=hint, detail="\n".join(lines[1:]) or None)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# SQLSTATEs of a session ended by the server: 57P01 admin_shutdown (pg_terminate_backend, a fast or
# smart shutdown), 57P02 crash_shutdown (another backend crashed), 57P03 cannot_connect_now (starting
# up or shutting down), 57P04 database_dropped, 57P05 idle_session_timeout (14+); class 08, the
# connection exceptions.
_SESSION_ENDED = frozenset({"57P01", "57P02", "57P03", "57P04", "57P05"})


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the session is gone (terminated, the server restarted, the network cut)
    rather than that the server refused a statement: the two want different fixes."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    # No SQLSTATE: libpq's own "server closed the connection unexpectedly", "consuming input
    # failed", or psycopg's "the connection is closed" on a session already broken.
    return state is None or state in _SESSION_ENDED or state.startswith("08")


LOST_CONNECTION_HINT = (
    "the server ended the session (restarted, shut down, or the session was terminated by "
    "pg_terminate_backend or a timeout): check that it is up, then run again"
)


def failure_hint(exc: psycopg.Error) -> str:
    """The likely fix for a query that failed, by what the failure says."""
    if connection_lost(exc):
        return LOST_CONNECTION_HINT
    if isinstance(exc, psycopg.errors.LockNotAvailable):
        return (
            "another session holds an exclusive lock on a table or catalog pgshift reads (it waits "
            "lock_timeout = 10 s): let that session finish, then run again"
        )
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return "connect as a superuser, or as a role that may read every table, sequence and large object"
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return "a statement was cancelled (statement_timeout, or pg_cancel_backend): run again"
    if isinstance(exc, psycopg.errors.OutOfMemory) and "out of shared memory" in str(exc):
        # 53200 "out of shared memory": the lock table (max_locks_per_transaction × connections) is full.
        return (
            "raise max_locks_per_transaction on that server (restart needed): its lock table is full (a dump, "
            "and pgshift's reads in its snapshot, lock every table of a database at once)"
        )
    if isinstance(exc, psycopg.OperationalError):
        return "check the server's log for the cause, then run again"
    return "run again with --debug and report it if it persists"


def query_failed(what: str, exc: psycopg.Error, *, hint: str | None = None) -> StepFailed:
    """A catalog query that failed, as an error naming what pgshift was doing and the likely fix."""
    return StepFailed(f"{what}: a query failed: {first_line(exc)}", hint=hint or failure_hint(exc))


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
        return psycopg.connect(conninfo, autocommit=autocommit, row_factory=dict_row, context=_ADAPTERS)
    except psycopg.OperationalError as exc:
        # A value libpq refuses (port=abc, sslmode=bogus, an unknown service) is bad input, like a
        # string that does not parse: exit 64 wherever the string was given, not "cannot connect".
        refused = refused_value(endpoint.role, redact(str(exc), secrets))
        if refused is not None:
            raise refused from None
        raise _explain(exc, where, secrets, endpoint.params.get("passfile")) from None
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


def export_snapshot(conn: Connection) -> tuple[str, str]:
    """Open a repeatable-read transaction on ``conn`` and export its snapshot: (id, when).

    The session may stay idle in its transaction for as long as the run needs the snapshot (the
    copy, or a migration's verify): a server's idle or transaction timeouts must not end it.
    """
    conn.execute("SET idle_in_transaction_session_timeout = 0")
    if server_version(conn).num >= 170000:  # 17 added transaction_timeout
        conn.execute("SET transaction_timeout = 0")
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    row = fetch_one(conn, "SELECT pg_catalog.pg_export_snapshot() AS id, pg_catalog.now()::text AS at")
    assert row is not None
    return str(row["id"]), str(row["at"])


def join_snapshot(conn: Connection, snapshot: str) -> None:
    """Begin a transaction on ``conn`` that sees exactly what ``snapshot`` saw."""
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))


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
