"""Connection strings: parsing, redaction, and what a child program is given.

An ``Endpoint`` is what the user typed (key=value, a ``postgresql://`` URI or ``service=NAME``),
parsed by libpq through ``psycopg.conninfo``. Once connected, ``ResolvedEndpoint`` records the
*effective* parameters — those that came from the string, a service file or the ``PG*``
variables — so that every child program can be given them explicitly, with a cleaned
environment, and the target's ``PGHOST`` can never steer the source's pg_dump.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgshift.errors import ToolchainError, UsageError
from pgshift.process import REDACTED, base_env, redact

# libpq connection keywords and the libpq major that first accepted them. A pg_dump linked with
# an older libpq fails with 'invalid connection option "…"'.
KEYWORD_SINCE: Mapping[str, int] = {
    "target_session_attrs": 10,
    "gssencmode": 12,
    "tcp_user_timeout": 12,
    "channel_binding": 13,
    "ssl_min_protocol_version": 13,
    "ssl_max_protocol_version": 13,
    "sslpassword": 13,
    "sslcrldir": 14,
    "sslsni": 14,
    "require_auth": 16,
    "sslcertmode": 16,
    "load_balance_hosts": 16,
    "gssdelegation": 16,
    "sslnegotiation": 17,
    "min_protocol_version": 18,
    "max_protocol_version": 18,
    "sslkeylogfile": 18,
    "oauth_issuer": 18,
    "oauth_client_id": 18,
    "oauth_client_secret": 18,
    "oauth_scope": 18,
    "scram_client_key": 18,
    "scram_server_key": 18,
}

# Keys a resolved endpoint does not hand on: the password travels in the environment, and the
# service/passfile indirections were already expanded into explicit values.
_NOT_HANDED_ON = frozenset({"password", "service", "passfile"})

# Defaults libpq derives while connecting rather than reporting in PQconndefaults().
_DERIVED_DEFAULTS: Mapping[str, str] = {"sslcertmode": "allow"}

# What pgshift's own catalog sessions add; children do not get these.
SESSION_DEFAULTS: Mapping[str, str] = {
    "fallback_application_name": "pgshift",
    "connect_timeout": "10",
}


# The forms every hint about a connection string names (the CLI's help describes them once too).
CONNINFO_EXAMPLES = "a URI (postgresql://user@db1/app), key=value pairs (host=db1 dbname=app) or service=NAME"

# libpq's words for a connection string whose *values* it refuses before it talks to any server:
# connectOptions2 (sslmode, gssencmode, target_session_attrs …, host/hostaddr/port counts), the
# integer options (port, connect_timeout, keepalives …) and the service file lookup (fe-connect.c).
# The syntax itself is checked by Endpoint.parse; these show only when libpq starts a connection.
_REFUSED_VALUE = re.compile(
    r'invalid integer value "[^"]*" for connection option "[^"]*"'
    r"|invalid \w+ value: "
    r"|could not match \d+ [\w ]+ to \d+ \w+"
    r'|definition of service "[^"]*" not found'
    r'|service file "[^"]*" not found'
    r'|syntax error in service file "[^"]*"'
    r"|invalid SSL protocol version range"
    r'|weak sslmode "[^"]*" may not be used'
)


def first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else text.strip()


def refused_value(role: str, libpq_message: str) -> UsageError | None:
    """The usage error for a connection attempt libpq refused because of the string's own values.

    ``None`` when the failure came from the network or the server (those are exit 3).
    """
    for line in libpq_message.splitlines():
        match = _REFUSED_VALUE.search(line)
        if match is not None:
            reason = line[match.start() :].strip()
            return UsageError(
                f"the {role} connection string is not valid: {reason}",
                hint=f"fix that value; a connection string is {CONNINFO_EXAMPLES}",
            )
    return None


# "user:secret@host/db" without its postgresql:// is no URI to libpq, which quotes it whole in its
# parse error: the part between ":" and "@" is taken for a password wherever it appears.
_USERINFO = re.compile(r"(:)[^@\s\"':/]+@")


def _redacted_conninfo(params: Mapping[str, Any]) -> str:
    shown = {k: (REDACTED if k == "password" else v) for k, v in params.items() if v not in (None, "")}
    return make_conninfo("", **shown)


@dataclass(frozen=True)
class Endpoint:
    """A server as the user named it."""

    role: str  # "source" or "target": used in messages
    params: Mapping[str, str]

    @classmethod
    def parse(cls, text: str, role: str = "server") -> Endpoint:
        """What the user typed, parsed by libpq; a string libpq cannot parse is a usage error."""
        if not text or not text.strip():
            raise UsageError(f"the {role} connection string is empty", hint=f"give {CONNINFO_EXAMPLES}")
        try:
            params = conninfo_to_dict(text)
        except psycopg.ProgrammingError as exc:
            # libpq quotes the fragment it choked on; a password in it is hidden, the rest helps the fix.
            reason = _USERINFO.sub(rf"\g<1>{REDACTED}@", redact(first_line(str(exc))))
            raise UsageError(
                f"the {role} connection string cannot be parsed: {reason}", hint=f"write it as {CONNINFO_EXAMPLES}"
            ) from None
        return cls(role, {k: str(v) for k, v in params.items() if v is not None})

    @property
    def password(self) -> str | None:
        return self.params.get("password")

    def with_params(self, **changes: str | None) -> Endpoint:
        params = dict(self.params)
        for key, value in changes.items():
            if value is None:
                params.pop(key, None)
            else:
                params[key] = value
        return Endpoint(self.role, params)

    def conninfo(self, **overrides: Any) -> str:
        """The full connection string (password included) for pgshift's own libpq connections."""
        params: dict[str, Any] = dict(SESSION_DEFAULTS)
        params.update(self.params)
        params.update({k: v for k, v in overrides.items() if v is not None})
        return make_conninfo("", **params)

    def display(self) -> str:
        return _redacted_conninfo(self.params)

    def __str__(self) -> str:
        return self.display()

    def __repr__(self) -> str:
        return f"Endpoint({self.role!r}, {self.display()!r})"


@dataclass(frozen=True)
class ResolvedEndpoint:
    """The effective connection parameters of an endpoint, as libpq used them."""

    role: str
    params: Mapping[str, str]  # no password, no service indirection
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_connection(cls, role: str, conn: psycopg.Connection[Any], given: Endpoint) -> ResolvedEndpoint:
        # A value is handed on when the user set it (string, PG* variable or service file); values
        # libpq filled in by itself are not: an older client's libpq may not know their keyword.
        defaults = {o.keyword.decode(): o.val.decode() for o in psycopg.pq.Conninfo.get_defaults() if o.val is not None}
        params: dict[str, str] = {}
        for option in conn.pgconn.info:
            key = option.keyword.decode()
            if option.val is None or key in _NOT_HANDED_ON:
                continue
            val = option.val.decode("utf-8", errors="replace")
            from_env = option.envvar is not None and option.envvar.decode() in os.environ
            if key in SESSION_DEFAULTS and key not in given.params and val == SESSION_DEFAULTS[key]:
                continue
            if key == "options" and "options" not in given.params and not from_env:
                continue
            if key not in given.params and not from_env:
                builtin = defaults.get(key, _DERIVED_DEFAULTS.get(key))
                compiled = option.compiled.decode() if option.compiled is not None else None
                if val == "" or val in (builtin, compiled):
                    continue
            params[key] = val
        # With several hosts in the string, children go to the one that answered.
        params["host"] = conn.info.host
        params["port"] = str(conn.info.port)
        params.pop("hostaddr", None)
        if conn.info.hostaddr and conn.info.hostaddr != conn.info.host and not conn.info.host.startswith("/"):
            params["hostaddr"] = conn.info.hostaddr
        params["user"] = conn.info.user
        params["dbname"] = conn.info.dbname
        password = conn.info.password or given.password or None
        return cls(role, params, password)

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.password,) if self.password else ()

    @property
    def user(self) -> str:
        return self.params.get("user", "")

    @property
    def dbname(self) -> str:
        return self.params.get("dbname", "")

    def for_database(self, dbname: str) -> ResolvedEndpoint:
        return ResolvedEndpoint(self.role, {**self.params, "dbname": dbname}, self.password)

    def child_conninfo(self, dbname: str | None = None) -> str:
        """What a child program gets as ``--dbname``: explicit, and never the password."""
        params = dict(self.params)
        if dbname is not None:
            params["dbname"] = dbname
        return make_conninfo("", **params)

    def conninfo(self, dbname: str | None = None, **overrides: Any) -> str:
        """Full connection string (with password) for pgshift's own connections."""
        params: dict[str, Any] = {**SESSION_DEFAULTS, **self.params}
        if dbname is not None:
            params["dbname"] = dbname
        if self.password:
            params["password"] = self.password
        params.update({k: v for k, v in overrides.items() if v is not None})
        return make_conninfo("", **params)

    def child_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """A cleaned environment: no PG* variable of pgshift's own, the password in PGPASSWORD."""
        env = base_env(extra)
        if self.password:
            env["PGPASSWORD"] = self.password
        return env

    def display(self, dbname: str | None = None) -> str:
        params = dict(self.params)
        if dbname is not None:
            params["dbname"] = dbname
        return _redacted_conninfo(params)

    def unsupported_keywords(self, client_major: int) -> list[str]:
        """Keywords of this endpoint that a libpq of ``client_major`` would reject."""
        return sorted(k for k in self.params if KEYWORD_SINCE.get(k, 0) > client_major)

    def require_client_support(self, client_major: int, program: str = "the client") -> None:
        bad = self.unsupported_keywords(client_major)
        if bad:
            since = max(KEYWORD_SINCE[k] for k in bad)
            raise ToolchainError(
                f"the {self.role} connection uses {', '.join(bad)}, which {program} "
                f"(libpq {client_major}) does not understand",
                hint=f"use a client of PostgreSQL {since} or newer (pgshift toolchain install {since}), "
                f"or drop {', '.join(bad)} from the {self.role} connection string",
            )


def redact_all(texts: Iterable[str], endpoints: Iterable[ResolvedEndpoint | Endpoint]) -> list[str]:
    from pgshift.process import redact

    secrets = [e.password for e in endpoints if e.password]
    return [redact(t, secrets) for t in texts]
