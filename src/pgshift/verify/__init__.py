"""``verify``: prove that the target holds what the source holds.

``verify_servers`` compares two servers (or chosen database pairs) and returns a
``VerifyReport``: globals (roles, attributes, memberships, settings, password hashes),
database properties, an inventory of user objects with owners, ACLs and comments, exact row
counts in parallel, sequence values, large objects and, with ``checksums``, server-side
digests of every table's content by primary-key range. Differences a newer major makes by
itself are classified by named rules (``verify.rules``) and do not make the servers unequal;
so are the differences a caller declares in advance (``ExpectedDifference``, ``verify.expect``:
what migrate's remedies change on purpose), each reported under its remedy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial

import psycopg

from pgshift.catalog import cluster, inventory, rows
from pgshift.catalog.session import Connection, join_snapshot, query_failed, server_version, session
from pgshift.conninfo import Endpoint, ResolvedEndpoint
from pgshift.errors import UnknownDatabase, UsageError
from pgshift.events import EventSink, Level, Message, StepFinished, StepStarted, discard
from pgshift.verify.compare import (
    compare_database,
    compare_inventories,
    compare_memberships,
    compare_roles,
)
from pgshift.verify.data import cancel_statements, cancelling, compare_rows, refuse_too_many_jobs
from pgshift.verify.expect import REMEDY_KINDS, declare
from pgshift.verify.model import (
    CATEGORIES,
    DatabaseTotals,
    DeclaredDifference,
    Difference,
    ExpectedDifference,
    ExplainedDifference,
    VerifyOptions,
    VerifyReport,
)
from pgshift.verify.patterns import Filter
from pgshift.verify.rules import RULE_NAMES, RULES, Candidate, Context, classify

__all__ = [
    "CATEGORIES",
    "REMEDY_KINDS",
    "RULES",
    "RULE_NAMES",
    "DatabaseTotals",
    "DeclaredDifference",
    "Difference",
    "ExpectedDifference",
    "ExplainedDifference",
    "VerifyOptions",
    "VerifyReport",
    "verify_servers",
]

Server = Endpoint | ResolvedEndpoint


def _display(endpoint: Server) -> str:
    return endpoint.display()


def _prepare(conn: Connection) -> None:
    # Timestamps in catalogs (rolvaliduntil) print in the session's time zone.
    rows.prepare_checksum_session(conn)


def _pairs(
    src_conn: Connection,
    tgt_conn: Connection,
    databases: Sequence[tuple[str, str]] | None,
    renames: Mapping[str, str],
) -> tuple[list[tuple[str, str]], list[Difference], dict[str, cluster.DatabaseInfo], dict[str, cluster.DatabaseInfo]]:
    src_dbs = {d.name: d for d in cluster.list_databases(src_conn)}
    tgt_dbs = {d.name: d for d in cluster.list_databases(tgt_conn)}
    diffs: list[Difference] = []
    if databases is None:
        chosen = [(name, renames.get(name, name)) for name, d in src_dbs.items() if d.allow_connections]
        expected_targets = {t for _s, t in chosen}
        for name, d in sorted(tgt_dbs.items()):
            if name not in expected_targets and d.allow_connections and name not in src_dbs:
                diffs.append(
                    Difference(
                        "database",
                        None,
                        f"database {name}",
                        "extra",
                        None,
                        "exists",
                        f"database {name} exists only on the target",
                    )
                )
    else:
        chosen = list(databases)
        missing = [s for s, _t in chosen if s not in src_dbs]
        if missing:
            raise UnknownDatabase(missing, (n for n, d in src_dbs.items() if not d.is_template))
    pairs: list[tuple[str, str]] = []
    for s, t in chosen:
        if t not in tgt_dbs:
            diffs.append(
                Difference(
                    "database", s, f"database {t}", "missing", "exists", None, f"database {t} is missing on the target"
                )
            )
        else:
            pairs.append((s, t))
    return pairs, diffs, src_dbs, tgt_dbs


def _refuse_self_comparison(
    source: Server, target: Server, src_conn: Connection, tgt_conn: Connection, pairs: Sequence[tuple[str, str]]
) -> None:
    """One server given twice compares each database with itself: "equal" would prove nothing.

    Told as migrate tells it (system identifier and start time, whatever the spellings); two
    different databases of one server (--rename a=b, -d a) remain a comparison worth making.
    """
    if not cluster.server_info(src_conn).same_server_as(cluster.server_info(tgt_conn)):
        return
    itself = [s for s, t in pairs if s == t]
    if itself or not pairs:
        raise UsageError(
            f"SOURCE and TARGET are the same server ({_display(source)} and {_display(target)}): "
            f"every database would be compared with itself",
            hint="name the migrated server as TARGET; to compare two databases of one server use "
            "-d OLD --rename OLD=NEW",
        )


def verify_servers(
    source: Server,
    target: Server,
    *,
    databases: Sequence[tuple[str, str]] | None = None,
    options: VerifyOptions = VerifyOptions(),  # noqa: B008 - frozen, immutable default
    sink: EventSink = discard,
    renames: Mapping[str, str] | None = None,
    expected: Sequence[ExpectedDifference] = (),
    snapshots: Mapping[str, str] | None = None,
    cancel: threading.Event | None = None,
) -> VerifyReport:
    """Compare ``source`` and ``target``.

    ``databases`` lists (source name, target name) pairs; None means every non-template source
    database that allows connections, under the same name on the target (or the name ``renames``
    maps it to). A source database missing on the target is a difference. ``expected`` declares
    differences made on purpose (migrate's remedies): those it explains are reported in
    ``VerifyReport.declared`` and do not count. ``snapshots`` maps a source database to a snapshot
    exported and still held (a migration's dump ran in it): that database's source side is read in
    it, so rows written since do not count, and a sequence that went on since is expected. ``cancel``,
    set from another thread (migrate's on Ctrl-C or SIGTERM), cancels the statements running then.
    """
    if options.jobs < 1:
        raise UsageError("--jobs must be at least 1", hint="give -j 1 or more")
    started = time.monotonic()
    renames = dict(renames or {})
    snapshots = dict(snapshots or {})
    flt = Filter.build(options.schemas, options.exclude_schemas, options.tables, options.exclude_tables)
    candidates: list[Candidate] = []
    totals: list[DatabaseTotals] = []
    roles_compared = 0
    with (
        session(source) as src_conn,
        session(target) as tgt_conn,
        cancelling(cancel, partial(cancel_statements, src_conn, tgt_conn)),
    ):
        _prepare(src_conn)
        _prepare(tgt_conn)
        src_version, tgt_version = server_version(src_conn), server_version(tgt_conn)
        target_own = frozenset(
            {cluster.bootstrap_superuser(tgt_conn), str(tgt_conn.info.user), *options.roles_left_alone}
        )
        sink(
            Message(
                f"verifying {_display(source)} (PostgreSQL {src_version}) against "
                f"{_display(target)} (PostgreSQL {tgt_version})",
                level=Level.DEBUG,
            )
        )
        pairs, db_diffs, src_dbs, tgt_dbs = _pairs(src_conn, tgt_conn, databases, renames)
        _refuse_self_comparison(source, target, src_conn, tgt_conn, pairs)
        if options.compare_rows:
            refuse_too_many_jobs(src_conn, tgt_conn, options.jobs)
        candidates.extend(Candidate(d) for d in db_diffs)
        if options.compare_globals:
            sink(StepStarted("comparing roles and memberships", "globals"))
            t0 = time.monotonic()
            src_roles, tgt_roles = cluster.list_roles(src_conn), cluster.list_roles(tgt_conn)
            roles_compared = len({r.name for r in src_roles} | {r.name for r in tgt_roles})
            candidates += compare_roles(
                src_roles,
                tgt_roles,
                source_passwords=inventory.role_password_digests(src_conn),
                target_passwords=inventory.role_password_digests(tgt_conn),
                renames=renames,
            )
            candidates += compare_memberships(
                cluster.list_memberships(src_conn),
                cluster.list_memberships(tgt_conn),
                both_16=src_version.num >= 160000 and tgt_version.num >= 160000,
            )
            sink(StepFinished("comparing roles and memberships", "globals", seconds=time.monotonic() - t0))
        ext_defaults: dict[str, str | None] = {}
        for s_name, t_name in pairs:
            t0 = time.monotonic()
            candidates += compare_database(
                src_dbs[s_name],
                tgt_dbs[t_name],
                compare_owners=options.compare_owners,
                compare_privileges=options.compare_privileges,
                compare_locale_provider=src_version.num >= 150000 and tgt_version.num >= 150000,
            )
            totals_kw: dict[str, int] = {}
            s_tables: list[rows.TableRef] = []
            t_tables: list[rows.TableRef] = []
            snapshot = snapshots.get(s_name)
            with (
                session(source, s_name) as sdb,
                session(target, t_name) as tdb,
                _failing(s_name),
                cancelling(cancel, partial(cancel_statements, sdb, tdb)),
            ):
                if snapshot is not None:
                    join_snapshot(sdb, snapshot)
                if not ext_defaults:
                    ext_defaults = {n: a.default_version for n, a in cluster.available_extensions(tdb).items()}
                if options.compare_schema:
                    step = f"db:{s_name}:inventory"
                    sink(StepStarted(f"reading the objects of {s_name}", step))
                    # Both servers read their catalogs at the same time.
                    with ThreadPoolExecutor(max_workers=2) as both:
                        s_future = both.submit(inventory.read_inventory, sdb, s_name)
                        t_future = both.submit(inventory.read_inventory, tdb, t_name)
                        s_inv, t_inv = s_future.result(), t_future.result()
                    candidates += compare_inventories(
                        s_name,
                        s_inv,
                        t_inv,
                        compare_owners=options.compare_owners,
                        compare_privileges=options.compare_privileges,
                        selected=flt,
                    )
                    totals_kw["objects_source"] = len(s_inv.objects)
                    totals_kw["objects_target"] = len(t_inv.objects)
                    sink(StepFinished(f"reading the objects of {s_name}", step, seconds=time.monotonic() - t0))
                if options.compare_rows:
                    s_tables = [t for t in rows.list_tables(sdb) if flt.table_ok(t.schema, t.name)]
                    t_tables = [t for t in rows.list_tables(tdb) if flt.table_ok(t.schema, t.name)]
                    if not options.compare_schema:
                        candidates += _missing_tables(s_name, s_tables, t_tables)
                    seqs = _compare_sequences(s_name, sdb, tdb, flt, in_snapshot=snapshot is not None)
                    candidates += seqs[0]
                    totals_kw["sequences"] = seqs[1]
                    lo_s = rows.large_objects(sdb, with_digest=options.checksums)
                    lo_t = rows.large_objects(tdb, with_digest=options.checksums)
                    candidates += _compare_large_objects(
                        s_name, lo_s, lo_t, owners=options.compare_owners, privileges=options.compare_privileges
                    )
                    totals_kw["large_objects_source"] = lo_s.count
                    totals_kw["large_objects_target"] = lo_t.count
            outcome = None
            if options.compare_rows:
                outcome = compare_rows(
                    s_name,
                    source,
                    s_name,
                    target,
                    t_name,
                    s_tables,
                    t_tables,
                    jobs=options.jobs,
                    checksums=options.checksums,
                    chunk_rows=options.checksum_chunk_rows,
                    sink=sink,
                    source_snapshot=snapshot,
                    cancel=cancel,
                )
                candidates += [Candidate(d) for d in outcome.differences]
            totals.append(
                DatabaseTotals(
                    source=s_name,
                    target=t_name,
                    tables=outcome.tables if outcome else 0,
                    rows_source=outcome.rows_source if outcome else 0,
                    rows_target=outcome.rows_target if outcome else 0,
                    checksummed_tables=outcome.checksummed_tables if outcome else 0,
                    checksummed_ranges=outcome.checksummed_ranges if outcome else 0,
                    seconds=round(time.monotonic() - t0, 3),
                    source_in_snapshot=snapshot is not None,
                    **totals_kw,
                )
            )
    ctx = Context(src_version, tgt_version, ext_defaults, target_own)
    undeclared, declared, unmatched = declare(candidates, expected)
    real, explained = classify(undeclared, ctx)
    order = {c: i for i, c in enumerate(CATEGORIES)}
    real.sort(key=lambda d: (order.get(d.category, 99), d.database or "", d.object, d.message))
    return VerifyReport(
        equal=not real,
        differences=tuple(real),
        expected=tuple(explained),
        declared=tuple(declared),
        unmatched=tuple(unmatched),
        databases=tuple(totals),
        source=_display(source),
        target=_display(target),
        source_version=str(src_version),
        target_version=str(tgt_version),
        options=options,
        roles_compared=roles_compared,
        seconds=time.monotonic() - started,
    )


@contextmanager
def _failing(database: str) -> Iterator[None]:
    """A catalog query that fails (privileges, a dropped object) is an error, not a verdict."""
    try:
        yield
    except psycopg.Error as exc:
        raise query_failed(f"verifying database {database} failed", exc) from None


def _missing_tables(database: str, src: list[rows.TableRef], tgt: list[rows.TableRef]) -> list[Candidate]:
    s_names = {t.qualified for t in src}
    t_names = {t.qualified for t in tgt}
    out = [
        Candidate(
            Difference("rows", database, f"table {n}", "missing", "exists", None, f"table {n} is missing on the target")
        )
        for n in sorted(s_names - t_names)
    ]
    out += [
        Candidate(
            Difference("rows", database, f"table {n}", "extra", None, "exists", f"table {n} exists only on the target")
        )
        for n in sorted(t_names - s_names)
    ]
    return out


def _compare_sequences(
    database: str, sdb: Connection, tdb: Connection, flt: Filter, *, in_snapshot: bool
) -> tuple[list[Candidate], int]:
    """``in_snapshot``: the source's tables are read as of a snapshot, but a sequence is not
    transactional (its value is the current one), so one that went on since is the source moving on."""
    src = {s.qualified: s for s in rows.sequence_values(sdb) if flt.table_ok(s.schema, s.name)}
    tgt = {s.qualified: s for s in rows.sequence_values(tdb) if flt.table_ok(s.schema, s.name)}
    out: list[Candidate] = []
    for name in sorted(src.keys() & tgt.keys()):
        s, t = src[name], tgt[name]
        if (s.last_value, s.is_called) != (t.last_value, t.is_called):
            s_txt = f"{s.last_value}{'' if s.is_called else ' (not called)'}"
            t_txt = f"{t.last_value}{'' if t.is_called else ' (not called)'}"
            behind = t.last_value < s.last_value or (t.last_value == s.last_value and s.is_called and not t.is_called)
            msg = f"sequence {name} is {'behind its source' if behind else 'ahead of its source'} on the target"
            kind = "moved-on" if behind and in_snapshot else "changed"
            diff = Difference("sequences", database, f"sequence {name}", kind, s_txt, t_txt, msg, (s.schema, s.name))
            out.append(Candidate(diff))
    return out, len(src.keys() & tgt.keys())


def _compare_large_objects(
    database: str, src: rows.LargeObjects, tgt: rows.LargeObjects, *, owners: bool, privileges: bool
) -> list[Candidate]:
    out: list[Candidate] = []
    obj = "large objects"
    if src.count == tgt.count and owners and src.owners_digest != tgt.owners_digest:
        out.append(
            Candidate(Difference("large objects", database, obj, "changed", None, None, "large object owners differ"))
        )
    if src.count == tgt.count and privileges and src.acl_digest != tgt.acl_digest:
        out.append(
            Candidate(Difference("privileges", database, obj, "changed", None, None, "large object privileges differ"))
        )
    if src.count != tgt.count:
        out.append(
            Candidate(
                Difference(
                    "large objects",
                    database,
                    obj,
                    "count",
                    f"{src.count:,}",
                    f"{tgt.count:,}",
                    f"{abs(tgt.count - src.count):,} large object(s) {'more' if tgt.count > src.count else 'fewer'} "
                    "on the target",
                )
            )
        )
    if src.total_bytes is not None and tgt.total_bytes is not None and src.total_bytes != tgt.total_bytes:
        out.append(
            Candidate(
                Difference(
                    "large objects",
                    database,
                    obj,
                    "changed",
                    f"{src.total_bytes:,} bytes",
                    f"{tgt.total_bytes:,} bytes",
                    "the total size of the large objects differs",
                )
            )
        )
    if src.digest is not None and tgt.digest is not None and src.digest != tgt.digest and src.count == tgt.count:
        out.append(
            Candidate(
                Difference(
                    "large objects", database, obj, "content", None, None, "the content of large objects differs"
                )
            )
        )
    return out
