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
from psycopg.types import string as pg_strings

from pgshift.conninfo import CONNINFO_EXAMPLES, Endpoint, ResolvedEndpoint, refused_value
from pgshift.errors import ConnectionFailed, StepFailed, UsageError
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
        return psycopg.connect(conninfo, autocommit=autocommit, row_factory=dict_row, context=_ADAPTERS)
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
