"""Connection slots: what a command's ``--jobs`` needs against what a server has free.

One judgement for every command that opens connections in parallel (migrate's preflight, verify,
check's estimate), so that they agree on what "free" means: ``max_connections`` minus the slots
reserved for superusers (and, on 16+, for ``pg_use_reserved_connections``) unless the role is a
superuser, minus the client backends connected now.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pgshift.catalog.ddl import ConnectionUsage, connection_usage
from pgshift.catalog.session import Connection


@dataclass(frozen=True)
class ConnectionShortage:
    """A server without the connections ``--jobs`` asks for, with the figures that say so."""

    role: str  # "source" or "target"
    jobs: int
    need: int
    free: int
    usage: ConnectionUsage
    jobs_that_fit: int

    @property
    def message(self) -> str:
        return (
            f"the {self.role} server has {self.free} free connection(s) (max_connections "
            f"{self.usage.max_connections}, {self.usage.in_use} in use, {self.usage.reserved} reserved) but "
            f"--jobs {self.jobs} needs {self.need}"
        )

    @property
    def hint(self) -> str:
        return f"lower --jobs (e.g. --jobs {self.jobs_that_fit}) or free connections on the {self.role}"


def connection_shortage(
    conn: Connection,
    role: str,
    *,
    jobs: int,
    need: int,
    jobs_within: Callable[[int], int],
    superuser: bool | None = None,
) -> ConnectionShortage | None:
    """None when ``need`` more connections fit on ``conn``'s server, else the shortage.

    ``jobs_within(free)`` is the largest ``--jobs`` the command could run with in ``free`` slots
    (each command opens its own number of connections per job). ``superuser`` defaults to what the
    server reported for the session's role.
    """
    if superuser is None:
        superuser = conn.info.parameter_status("is_superuser") == "on"
    usage = connection_usage(conn)
    free = usage.available(superuser)
    if free >= need:
        return None
    return ConnectionShortage(role, jobs, need, free, usage, max(1, jobs_within(free)))
