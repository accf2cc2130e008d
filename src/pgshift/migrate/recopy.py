"""Copying again what a failed verification found different, without starting the move over.

A verification that fails because the source moved on (its dump's snapshot could not be held, or
ended with an earlier attempt) leaves tables whose rows differ. ``pgshift migrate --resume``
copies those again in a new snapshot of the source, which verify then reads the source in:

* what to copy is decided when verify fails (``what_to_copy``): the differing tables, every table
  that references one of them by a foreign key (``TRUNCATE`` takes them together), the differing
  sequences, and each table's fingerprint on the target at that moment;
* the copy (``copy_again``) runs only on tables whose fingerprint is unchanged: a table written on
  the target since (an application already moved over) is never overwritten, and the step stops
  naming it. Everything happens in one target transaction (user triggers disabled for it, as a
  restore loads data before creating them), so a failure or a kill leaves the target as it was;
  the fingerprints after the copy are journaled before its commit, so a resume after a kill between
  the commit and the journal's record recognises the copy as done.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from contextlib import closing
from typing import Any

import psycopg

from pgshift.catalog import recopy as q
from pgshift.catalog import streaming as sq
from pgshift.catalog.session import Connection, connect, first_line, join_snapshot
from pgshift.conninfo import ResolvedEndpoint
from pgshift.errors import Interrupted, StepFailed
from pgshift.migrate.streaming import COPY_SESSION_OPTIONS, copy_rows
from pgshift.verify.model import Difference

# What copying a table again can make equal: its row count, its content, whether it is populated.
_ROW_CATEGORIES = frozenset({"rows", "checksums"})


def what_to_copy(target: ResolvedEndpoint, target_db: str, differences: list[Difference], token: str) -> dict[str, Any]:
    """The journal's record of what a resume copies again in one database (JSON data), from the
    differences verify found there; ``token`` names the verification it answers."""
    tables = sorted({d.relation for d in differences if d.category in _ROW_CATEGORIES and d.relation})
    sequences = sorted({d.relation for d in differences if d.category == "sequences" and d.relation})
    with closing(connect(target, target_db)) as conn:
        found = q.relations(conn, tables)
        closure = q.truncation_closure(conn, {r.oid for r in found.values()})
        return {
            "token": token,
            "tables": [[r.schema, r.name, q.fingerprint(conn, r)] for r in closure],
            "differing": [f"{s}.{n}" for s, n in tables],
            "not_on_target": [f"{s}.{n}" for s, n in tables if (s, n) not in found],
            "sequences": [[s, n] for s, n in sequences],
        }


def copy_again(
    source: ResolvedEndpoint,
    source_db: str,
    tconn: Connection,
    spec: Mapping[str, Any],
    snapshot: str,
    *,
    done_before: Mapping[str, Any] | None,
    record_after: Callable[[dict[str, Any]], None],
    cancel: threading.Event,
    log: Callable[[str, str], None],
) -> dict[str, Any]:
    """Copy the tables and sequences of ``spec`` from the source (in ``snapshot``) into ``tconn``'s
    database; what it did, for the journal. ``done_before``: the fingerprints an earlier attempt
    journaled before its commit."""
    planned = [(str(s), str(n), str(fp)) for s, n, fp in spec.get("tables", [])]
    sequences = [(str(s), str(n)) for s, n in spec.get("sequences", [])]
    target_db = str(tconn.info.dbname)
    rels = q.relations(tconn, [(s, n) for s, n, _fp in planned])
    gone = [f"{s}.{n}" for s, n, _fp in planned if (s, n) not in rels]
    if gone:
        raise StepFailed(
            f"database {target_db!r} on the target no longer has table(s) {', '.join(gone)}, which verify found "
            "different",
            hint="compare the servers with pgshift verify; start a new migration of this database to move it again",
        )
    order = [rels[(s, n)] for s, n, _fp in planned]
    with closing(connect(source, source_db, options=COPY_SESSION_OPTIONS)) as sconn:
        join_snapshot(sconn, snapshot)
        src_rels = q.relations(sconn, [(r.schema, r.name) for r in order])
        missing = [r.label for r in order if (r.schema, r.name) not in src_rels]
        if missing:
            raise StepFailed(
                f"table(s) {', '.join(missing)} of database {source_db!r} are no longer on the source",
                hint="start a new migration of this database: its tables changed since it was moved",
            )
        copyable = {
            (t.schema, t.name): t for t in sq.tables_to_copy(sconn, frozenset(r.oid for r in src_rels.values()))
        }
        seq_oids = q.relations(sconn, sequences, relkind="S")
        values = sq.sequence_values(sconn, frozenset(r.oid for r in seq_oids.values()))
        rows = nbytes = 0
        try:
            with tconn.transaction():
                if order:
                    tconn.execute(q.lock_all(order))
                now = {r.label: q.fingerprint(tconn, r) for r in order}
                if done_before and done_before.get("token") == spec.get("token") and done_before.get("tables") == now:
                    log("info", f"{source_db}: an earlier attempt copied the tables again (it committed, then ended)")
                    return {"tables": len(order), "already": True}
                changed = [r.label for r, (_s, _n, fp) in zip(order, planned, strict=True) if now[r.label] != fp]
                if changed:
                    raise StepFailed(  # rolls the transaction back, as any exception does
                        f"{len(changed)} table(s) of database {target_db!r} changed on the target since verify "
                        f"compared them: {', '.join(changed[:10])}{' …' if len(changed) > 10 else ''}; pgshift "
                        "copies again only what nothing else wrote to",
                        hint="find what writes to the target (an application moved over already?); compare with "
                        "pgshift verify, and start a new migration of this database to replace its rows",
                    )
                triggers = q.enabled_user_triggers(tconn, [r.oid for r in order])
                for trigger in triggers:
                    tconn.execute(q.disable_trigger(trigger))
                if order:
                    tconn.execute(q.truncate_all(order))
                for rel in order:
                    if cancel.is_set():
                        raise Interrupted("interrupted")
                    r, b = copy_rows(
                        sconn, tconn, copyable[(rel.schema, rel.name)], None, None, freeze=False, cancel=cancel
                    )
                    rows, nbytes = rows + r, nbytes + b
                    log("info", f"{source_db}: copied {rel.label} again ({r:,} rows)")
                if values:
                    tconn.execute(sq.set_sequences(values))
                for trigger in triggers:
                    tconn.execute(q.restore_trigger(trigger))
                record_after({"token": spec.get("token"), "tables": {r.label: q.fingerprint(tconn, r) for r in order}})
        except psycopg.Error as exc:
            if cancel.is_set():
                raise Interrupted("interrupted") from None
            raise StepFailed(
                f"copying the tables of database {source_db!r} again failed: {first_line(exc)}",
                hint="the target is as it was before this step; fix the cause, then resume",
            ) from None
    return {"tables": len(order), "rows": rows, "bytes": nbytes, "sequences": len(values)}
