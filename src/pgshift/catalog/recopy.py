"""SQL of copying tables again after a verification found them different (``migrate --resume``).

A table is emptied with ``TRUNCATE ONLY`` and filled by COPY from the source; a table that another
references by a foreign key can only be truncated together with the referencing ones, so those
are copied again too (the closure). Whether pgshift may overwrite a table at all is decided by its
fingerprint: the set of its rows' ``ctid``, which any insert, update or delete changes.

Version notes: foreign keys on partitioned tables (11) are cloned onto each partition
(``conparentid``, 11), so the closure reaches the partitions that hold rows through the clones;
a partitioned table itself holds none and is never truncated ONLY.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from pgshift.catalog.session import Connection, fetch_all


@dataclass(frozen=True)
class Relation:
    oid: int
    schema: str
    name: str

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.name}"


def relations(conn: Connection, names: list[tuple[str, str]], *, relkind: str = "r") -> dict[tuple[str, str], Relation]:
    """The tables (or, with ``relkind="S"``, sequences) among ``names`` (schema, name) that exist on
    ``conn``'s database."""
    if not names:
        return {}
    rows = fetch_all(
        conn,
        """
        SELECT c.oid::int8 AS oid, n.nspname AS schema, c.relname AS name
          FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          JOIN unnest(%s::text[], %s::text[]) AS w(schema, name) ON w.schema = n.nspname AND w.name = c.relname
         WHERE c.relkind = %s
        """,
        [[s for s, _n in names], [n for _s, n in names], relkind],
    )
    return {(r["schema"], r["name"]): Relation(int(r["oid"]), r["schema"], r["name"]) for r in rows}


def truncation_closure(conn: Connection, oids: set[int]) -> list[Relation]:
    """``oids`` and every table that references one of them by a foreign key, at any depth,
    referenced tables before those referencing them (the order their rows can be copied in)."""
    if not oids:
        return []
    rows = fetch_all(
        conn,
        """
        WITH RECURSIVE closure(rel) AS (
            SELECT unnest(%s::oid[])
            UNION
            SELECT k.conrelid FROM pg_catalog.pg_constraint k JOIN closure c ON k.confrelid = c.rel
             WHERE k.contype = 'f'
        )
        SELECT c.oid::int8 AS oid, n.nspname AS schema, c.relname AS name,
               ARRAY(SELECT k.confrelid::int8 FROM pg_catalog.pg_constraint k
                      WHERE k.contype = 'f' AND k.conrelid = c.oid AND k.confrelid <> c.oid) AS refs
          FROM closure JOIN pg_catalog.pg_class c ON c.oid = closure.rel
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'r'
         ORDER BY n.nspname, c.relname
        """,
        [sorted(oids)],
    )
    found = {
        int(r["oid"]): (Relation(int(r["oid"]), r["schema"], r["name"]), {int(x) for x in r["refs"]}) for r in rows
    }
    ordered: list[Relation] = []
    pending = dict(found)
    while pending:
        ready = [oid for oid, (_rel, refs) in pending.items() if not (refs & pending.keys()) - {oid}]
        if not ready:  # a cycle of foreign keys: any order (the checks run at each COPY's end)
            ready = [next(iter(pending))]
        for oid in ready:
            ordered.append(pending.pop(oid)[0])
    return ordered


def fingerprint(conn: Connection, rel: Relation) -> str:
    """The row count and a sum of hashes of the rows' ctid: changed by any write to the table."""
    query = sql.SQL(
        "SELECT count(*) AS n, COALESCE(sum(('x' || substr(md5(ctid::text), 1, 15))::bit(60)::int8), 0)::text AS h"
        " FROM ONLY {}"
    ).format(sql.Identifier(rel.schema, rel.name))
    with conn.cursor() as cur:
        cur.execute(query)
        row = cur.fetchone()
    assert row is not None
    return f"{row['n']}:{row['h']}"


@dataclass(frozen=True)
class Trigger:
    table: Relation
    name: str
    enabled: str  # pg_trigger.tgenabled: O (origin, the default), A (always), R (replica)


def enabled_user_triggers(conn: Connection, oids: list[int]) -> list[Trigger]:
    """The user triggers on ``oids`` that would fire on COPY (internal ones, for foreign keys, stay)."""
    if not oids:
        return []
    rows = fetch_all(
        conn,
        """
        SELECT c.oid::int8 AS oid, n.nspname AS schema, c.relname AS name, t.tgname, t.tgenabled::text AS enabled
          FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE t.tgrelid = ANY(%s::oid[]) AND NOT t.tgisinternal AND t.tgenabled <> 'D'
         ORDER BY 2, 3, 4
        """,
        [oids],
    )
    return [Trigger(Relation(int(r["oid"]), r["schema"], r["name"]), r["tgname"], r["enabled"]) for r in rows]


_ENABLE = {"O": "ENABLE", "A": "ENABLE ALWAYS", "R": "ENABLE REPLICA"}


def disable_trigger(trigger: Trigger) -> sql.Composed:
    return sql.SQL("ALTER TABLE ONLY {} DISABLE TRIGGER {}").format(
        sql.Identifier(trigger.table.schema, trigger.table.name), sql.Identifier(trigger.name)
    )


def restore_trigger(trigger: Trigger) -> sql.Composed:
    """The trigger enabled as it was (ENABLE, ENABLE ALWAYS or ENABLE REPLICA)."""
    return sql.SQL("ALTER TABLE ONLY {} {} TRIGGER {}").format(
        sql.Identifier(trigger.table.schema, trigger.table.name),
        sql.SQL(_ENABLE.get(trigger.enabled, "ENABLE")),
        sql.Identifier(trigger.name),
    )


def lock_all(rels: list[Relation]) -> sql.Composed:
    """What TRUNCATE takes anyway, taken first: nothing writes between the check and the copy."""
    return sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
        sql.SQL(", ").join(sql.SQL("ONLY {}").format(sql.Identifier(r.schema, r.name)) for r in rels)
    )


def truncate_all(rels: list[Relation]) -> sql.Composed:
    """One TRUNCATE of the tables' own rows: a referenced table only with those referencing it."""
    return sql.SQL("TRUNCATE {}").format(
        sql.SQL(", ").join(sql.SQL("ONLY {}").format(sql.Identifier(r.schema, r.name)) for r in rels)
    )
