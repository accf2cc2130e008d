"""Rules about tables, constraints, partitions and inheritance."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import LiteralString

from pgshift.catalog.remedies import reserved_name_rules
from pgshift.catalog.session import fetch_all, fetch_one
from pgshift.checks import Severity
from pgshift.checks.rule import Context, Hit, Query, Rule

NOT_NULL_INHERITANCE = Rule(
    id="not-null-inheritance",
    title="Nullable child columns under a NOT NULL parent column",
    severity=Severity.BLOCKER,
    changed_in="pg_dump behaviour; pg_upgrade check added in 18",
    what_happens="The child column comes back NOT NULL, so COPY of its rows fails with a not-null violation and "
    "the rows are lost.",
    remediation="Fix the NULLs and ALTER TABLE child ALTER col SET NOT NULL, or drop the parent's constraint.",
    queries=(
        Query(
            """
            SELECT DISTINCT i.inhrelid::regclass::text || '.' || quote_ident(ac.attname) AS object,
                   i.inhparent::regclass::text AS parent, i.inhrelid AS relid
            FROM pg_inherits i
            JOIN pg_attribute ac ON ac.attrelid = i.inhrelid AND ac.attnum > 0 AND NOT ac.attisdropped
            JOIN pg_attribute ap ON ap.attrelid = i.inhparent AND ap.attname = ac.attname
                 AND ap.attnum > 0 AND NOT ap.attisdropped
            WHERE ap.attnotnull AND NOT ac.attnotnull
            ORDER BY 1
            """
        ),
    ),
    message="column {object} allows NULL but its parent {parent} has it NOT NULL",
    verified="17->17, 17->18",
)

GENERATED_INHERITANCE_MISMATCH = Rule(
    id="generated-inheritance-mismatch",
    title="Generated child column under a plain parent column",
    severity=Severity.BLOCKER,
    changed_in="PostgreSQL 16",
    source_max=15,
    target_min=16,
    what_happens="A plain parent column with a generated child column was accepted up to 15; 16 refuses it "
    "('child column specifies generation expression'): the child table and its data are missing.",
    remediation="Make the generation status match on the source (drop the expression from the child, or "
    "re-create the column).",
    # attgenerated exists from 12 (generated columns).
    queries=(
        Query(
            """
            SELECT i.inhrelid::regclass::text || '.' || quote_ident(ac.attname) AS object,
                   i.inhparent::regclass::text AS parent, i.inhrelid AS relid
            FROM pg_inherits i
            JOIN pg_attribute ap ON ap.attrelid = i.inhparent AND ap.attnum > 0 AND NOT ap.attisdropped
            JOIN pg_attribute ac ON ac.attrelid = i.inhrelid AND ac.attname = ap.attname
            WHERE ac.attgenerated = 's' AND ap.attgenerated = ''
            ORDER BY 1
            """,
            since=12,
            until=15,
        ),
    ),
    message="column {object} is generated but its parent's column in {parent} is plain",
    verified="14->16, 14->17, 14->18 (the child table is refused); generated-as-plain carries it",
    # The remedy's own query (catalog.remedies.generated_child_columns) selects exactly these columns.
    remedy="generated-as-plain",
)

GENERATED_PARENT_PLAIN_CHILD = Rule(
    id="generated-parent-plain-child",
    title="Plain child column under a generated parent column",
    severity=Severity.BLOCKER,
    changed_in="PostgreSQL 12 (generated columns); refused by CREATE/ALTER TABLE on every major since",
    # No DDL of 12-18 makes this ("column in child table must be a generated column"): it is found in
    # catalogs upgraded from early 12 minors or edited by hand. It exists wherever generated columns do.
    what_happens="pg_dump writes the child with a plain column and INHERITS the parent: every major makes the "
    "column generated again when it creates the child, then refuses pg_dump's COPY of the child's values "
    "('column \"b\" is a generated column'): the child table arrives empty. The schema trial cannot see it "
    "(the schema is accepted); no remedy carries it (generated-as-plain is for the opposite case).",
    remediation="On the source, give the child column its parent's generation (re-create it as GENERATED ALWAYS "
    "AS (…) STORED), or detach the child (ALTER TABLE child NO INHERIT parent); or leave the table out of the move "
    "with --exclude-object 'table schema.child'.",
    queries=(
        Query(
            """
            SELECT i.inhrelid::regclass::text || '.' || quote_ident(ac.attname) AS object,
                   i.inhparent::regclass::text AS parent, i.inhrelid AS relid
            FROM pg_inherits i
            JOIN pg_attribute ap ON ap.attrelid = i.inhparent AND ap.attnum > 0 AND NOT ap.attisdropped
            JOIN pg_attribute ac ON ac.attrelid = i.inhrelid AND ac.attname = ap.attname
            WHERE ap.attgenerated = 's' AND ac.attgenerated = ''
            ORDER BY 1
            """,
            since=12,
        ),
    ),
    message="column {object} is plain but its parent's column in {parent} is generated: its values cannot be "
    "restored (the target makes the column generated and refuses the COPY)",
    verified="14->16, 14->18, 14->14: the child created with a generated column, COPY refused",
)

UNLOGGED_PARTITIONED = Rule(
    id="unlogged-partitioned",
    title="UNLOGGED partitioned tables",
    severity=Severity.WARNING,
    changed_in="PostgreSQL 18",
    source_max=17,
    target_min=18,
    what_happens="UNLOGGED on a partitioned table had no effect before 18 and is rejected by 18: pg_dump 18 drops "
    "the keyword, a pg_dump 17 dump fails on 18 and loses the table.",
    remediation="Dump with pg_dump 18 (pgshift does); set UNLOGGED on each partition if wanted.",
    queries=(
        Query(
            "SELECT c.oid::regclass::text AS object, c.oid AS relid FROM pg_class c "
            "WHERE c.relkind = 'p' AND c.relpersistence = 'u' ORDER BY 1",
            until=17,
        ),
    ),
    message="partitioned table {object} is UNLOGGED; 18 makes it a permanent table",
    verified="pg_dump 17 and 18",
)

NULLS_NOT_DISTINCT_PK = Rule(
    id="nulls-not-distinct-pk",
    title="Primary keys adopted from NULLS NOT DISTINCT indexes",
    severity=Severity.INFO,
    changed_in="PostgreSQL 16",
    source_min=15,
    source_max=15,
    target_min=16,
    what_happens="Dumped as a plain PRIMARY KEY; NULLS NOT DISTINCT is lost, which changes nothing for NOT NULL "
    "key columns.",
    remediation="None needed.",
    # indnullsnotdistinct appeared in 15.
    queries=(
        Query(
            "SELECT i.indexrelid::regclass::text AS object, i.indrelid::regclass::text AS tbl, i.indrelid AS relid "
            "FROM pg_index i WHERE i.indisprimary AND i.indnullsnotdistinct ORDER BY 1",
            since=15,
        ),
    ),
    message="primary key {object} of {tbl} is NULLS NOT DISTINCT; it is restored without that flag",
    verified="15->18",
)

DUPLICATE_CONSTRAINT_NAMES = Rule(
    id="duplicate-constraint-names",
    title="Duplicate constraint names on one table or domain",
    severity=Severity.BLOCKER,
    changed_in="PostgreSQL 11",
    source_max=10,
    target_min=11,
    what_happens="Duplicate constraint names, possible through corner cases before 11, fail to restore.",
    remediation="ALTER TABLE … RENAME CONSTRAINT one of them on the source.",
    queries=(
        Query(
            """
            SELECT COALESCE(NULLIF(conrelid, 0)::regclass::text, contypid::regtype::text) || '.' || quote_ident(conname)
                   AS object, NULLIF(conrelid, 0) AS relid,
                   CASE WHEN conrelid = 0 THEN (SELECT n.nspname FROM pg_type t JOIN pg_namespace n
                                                ON n.oid = t.typnamespace WHERE t.oid = contypid) END AS schema_name
            FROM pg_constraint WHERE oid >= 16384
            GROUP BY conrelid, contypid, conname HAVING count(*) > 1 ORDER BY 1
            """,
            until=10,
        ),
    ),
    message="constraint name {object} is used more than once on the same table or domain",
    verified="docs only",
)

HASH_PARTITION_ENUM = Rule(
    id="hash-partition-enum",
    title="Hash partitioning on enum columns",
    severity=Severity.WARNING,
    changed_in="pg_dump behaviour (current minors load via the partition root)",
    source_min=11,
    what_happens="Hash partitioning on an enum uses the enum's OIDs, which change on reload: old pg_dump minors "
    "fail with partition constraint errors; current ones load via the partition root.",
    remediation="Use a current pg_dump (pgshift picks the target's), or --load-via-partition-root.",
    # Hash partitioning exists from 11.
    queries=(
        Query(
            """
            SELECT DISTINCT pt.partrelid::regclass::text AS object, a.attname, a.atttypid::regtype::text AS key_type,
                   pt.partrelid AS relid
            FROM pg_partitioned_table pt
            JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = ANY (pt.partattrs::int2[])
            JOIN pg_type t ON t.oid = a.atttypid
            WHERE pt.partstrat = 'h' AND (t.typtype = 'e' OR (t.typtype = 'd' AND EXISTS
                  (SELECT 1 FROM pg_type b WHERE b.oid = t.typbasetype AND b.typtype = 'e')))
            ORDER BY 1
            """,
            since=11,
        ),
    ),
    message="table {object} is hash-partitioned on {attname} ({key_type}), an enum",
    verified="13->18 (handled by current pg_dump)",
)


def _lock_capacity(ctx: Context) -> Iterator[Hit]:
    inv = ctx.db_inventory
    if inv is None:
        return
    if "lock_capacity" not in ctx.cache:
        # The shared lock table holds max_locks_per_transaction × (MaxBackends + max_prepared_transactions).
        # PostgreSQL 18 counts autovacuum_worker_slots (default 16) in MaxBackends instead of
        # autovacuum_max_workers, and two special workers (autovacuum launcher, slot sync) instead of one.
        autovacuum: LiteralString = (
            "current_setting('autovacuum_worker_slots')::int + 2"
            if ctx.source_major >= 18
            else "current_setting('autovacuum_max_workers')::int + 1"
        )
        row = fetch_one(
            ctx.conn,
            """
            SELECT current_setting('max_locks_per_transaction')::int AS locks,
                   current_setting('max_connections')::int + """
            + autovacuum
            + """
                   + current_setting('max_worker_processes')::int + current_setting('max_wal_senders')::int
                   + current_setting('max_prepared_transactions')::int AS slots
            """,
        )
        assert row is not None
        ctx.cache["lock_capacity"] = (row["locks"], row["locks"] * row["slots"])
    locks, capacity = ctx.cache["lock_capacity"]
    if inv.relations_to_lock > capacity:
        yield Hit(
            inv.name,
            f"database {inv.name} has {inv.relations_to_lock} relations for pg_dump to lock; the source's lock "
            f"table holds about {capacity} (max_locks_per_transaction = {locks}): pg_dump fails with "
            "'out of shared memory'",
            inv.name,
        )
    elif inv.relations_to_lock > capacity // 2:
        yield Hit(
            inv.name,
            f"database {inv.name} has {inv.relations_to_lock} relations for pg_dump to lock, more than half of the "
            f"source's lock table (about {capacity}); other sessions' locks may exhaust it",
            inv.name,
            Severity.WARNING,
        )


MAX_LOCKS_FOR_DUMP = Rule(
    id="max-locks-for-dump",
    title="More relations than the lock table holds",
    severity=Severity.BLOCKER,
    changed_in="pg_dump behaviour (all versions)",
    what_happens="pg_dump takes an AccessShareLock on every table, view and sequence in one transaction: with too "
    "many, 'out of shared memory — increase max_locks_per_transaction'.",
    remediation="Raise max_locks_per_transaction on the source (restart needed), or dump the database in parts.",
    detect=_lock_capacity,
    verified="17",
)


def _reserved_rule_names(ctx: Context) -> Iterator[Hit]:
    rules = reserved_name_rules(ctx.conn)  # migrate's rename-rule remedy reads the same list
    if not rules:
        return
    tables = {
        int(r["oid"]): int(r["relid"])
        for r in fetch_all(
            ctx.conn, "SELECT oid, ev_class AS relid FROM pg_rewrite WHERE oid = ANY(%s)", ([r.oid for r in rules],)
        )
    }
    for rule in rules:
        yield Hit(
            rule.label,
            f'table {rule.label} has an ON {rule.event.upper()} rule named "_RETURN", a name PostgreSQL keeps for '
            'the ON SELECT rule of a view: every target refuses it (non-view rule must not be named "_RETURN")',
            ctx.database,
            remediation=f'On the source: ALTER RULE "_RETURN" ON {rule.label} RENAME TO {rule.table}_{rule.event};',
            relation=tables.get(rule.oid),
        )


RESERVED_RULE_NAME = Rule(
    id="reserved-rule-name",
    title='Rules named "_RETURN" that are not a view\'s ON SELECT rule',
    severity=Severity.BLOCKER,
    changed_in='PostgreSQL 15 (ALTER RULE … RENAME TO "_RETURN" refused from then on)',
    # Up to 14 ALTER RULE could rename any rule to _RETURN; CREATE RULE refuses the name on every
    # major, and pg_dump writes CREATE RULE, so the restore fails on any target.
    source_max=14,
    what_happens='CREATE RULE "_RETURN" for anything but a view\'s ON SELECT rule fails on every major '
    '(\'non-view rule for "t" must not be named "_RETURN"\'): the rule is missing on the target, and with '
    "pg_restore --exit-on-error the restore stops there.",
    remediation='Rename the rule on the source (ALTER RULE "_RETURN" ON t RENAME TO another_name), or let migrate '
    "rename it on the target.",
    detect=_reserved_rule_names,
    verified='ALTER RULE … RENAME TO "_RETURN" accepted by 10-14, refused by 15-18; CREATE RULE "_RETURN" '
    "(INSERT) refused by 10-18",
    remedy="rename-rule",
)


# Syntax of a newer major, per feature: the major that added it, the detection SQL (run on sources of
# that major and newer; it names catalog columns the older majors lack), and what to change on the
# source. Each row: object, relid, and the exact fix for that object.
@dataclass(frozen=True)
class NewerSyntax:
    feature: str
    since: int
    sql: LiteralString
    advice: str


NEWER_SYNTAX = (
    # 17: exclusion constraints on partitioned tables (16 has them on plain tables and partitions only).
    NewerSyntax(
        "an exclusion constraint on a partitioned table",
        17,
        """
        SELECT 'constraint ' || quote_ident(k.conname) || ' on ' || k.conrelid::regclass::text AS object,
               k.conrelid AS relid,
               format('ALTER TABLE %s DROP CONSTRAINT %I;', k.conrelid::regclass, k.conname)
               || coalesce(' ' || (SELECT string_agg(format('ALTER TABLE %s ADD %s;', t.relid::regclass,
                                                            pg_get_constraintdef(k.oid)),
                                                     ' ' ORDER BY t.relid::regclass::text)
                                   FROM pg_partition_tree(k.conrelid) t WHERE t.isleaf), '') AS fix
        FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
        WHERE k.contype = 'x' AND c.relkind = 'p' AND k.conparentid = 0
        ORDER BY 1
        """,
        "on the source, drop it from the partitioned table and add it to each partition (it then holds within "
        "each partition only, as it does wherever the partition key is one of its = columns)",
    ),
    # 17: partitioned tables may have a table access method (pg_class.relam of relkind 'p').
    NewerSyntax(
        "a partitioned table with a table access method",
        17,
        """
        SELECT c.oid::regclass::text AS object, c.oid AS relid,
               format('ALTER TABLE %s SET ACCESS METHOD DEFAULT;', c.oid::regclass) AS fix
        FROM pg_class c WHERE c.relkind = 'p' AND c.relam <> 0
        ORDER BY 1
        """,
        "16 gives a partitioned table no access method: reset it on the source (its partitions keep their own)",
    ),
    # 17: SQL/JSON query functions (JSON_TABLE, JSON_QUERY, JSON_EXISTS, JSON_VALUE). They are no catalog
    # functions but nodes of the view's query tree: a JsonExpr, or a TableFunc of functype 1 (JSON_TABLE;
    # 0 is XMLTABLE). The tree's text names nodes, never the text of string constants.
    NewerSyntax(
        "a view using 17's SQL/JSON query functions (JSON_TABLE, JSON_QUERY, JSON_EXISTS, JSON_VALUE)",
        17,
        r"""
        SELECT c.oid::regclass::text AS object, c.oid AS relid,
               format('CREATE OR REPLACE VIEW %s AS … with jsonb_path_query / jsonb_path_exists / '
                      'jsonb_to_recordset in place of the SQL/JSON functions;', c.oid::regclass) AS fix
        FROM pg_class c JOIN pg_rewrite w ON w.ev_class = c.oid AND w.rulename = '_RETURN'
        WHERE c.relkind IN ('v', 'm') AND w.ev_action::text ~ '\{(JSONEXPR|TABLEFUNC :functype 1) '
        ORDER BY 1
        """,
        "16 has no SQL/JSON query functions: rewrite the view with the jsonb_path_* functions and operators",
    ),
    # 18: virtual generated columns (attgenerated 'v'); the default kind of generated column in 18.
    NewerSyntax(
        "a virtual generated column",
        18,
        """
        SELECT c.oid::regclass::text || '.' || quote_ident(a.attname) AS object, c.oid AS relid,
               format('ALTER TABLE %s DROP COLUMN %I, ADD COLUMN %I %s GENERATED ALWAYS AS (%s) STORED;',
                      c.oid::regclass, a.attname, a.attname, format_type(a.atttypid, a.atttypmod),
                      pg_get_expr(d.adbin, d.adrelid)) AS fix
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attgenerated = 'v' AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'f')
        ORDER BY 1
        """,
        "make it a stored generated column on the source (the column moves to the end of the table, and "
        "the table is rewritten)",
    ),
    # 18: NOT ENFORCED CHECK and FOREIGN KEY constraints (pg_constraint.conenforced).
    NewerSyntax(
        "a NOT ENFORCED constraint",
        18,
        """
        SELECT 'constraint ' || quote_ident(k.conname) || ' on ' || k.conrelid::regclass::text AS object,
               k.conrelid AS relid,
               format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I %s NOT VALID;', k.conrelid::regclass,
                      k.conname, k.conname, replace(pg_get_constraintdef(k.oid), ' NOT ENFORCED', '')) AS fix
        FROM pg_constraint k
        WHERE NOT k.conenforced AND k.conrelid <> 0 AND k.conparentid = 0
        ORDER BY 1
        """,
        "17 enforces every constraint: drop it on the source, or make it enforced for new rows only (NOT VALID, "
        "which does not check the existing ones)",
    ),
    # 18: NOT NULL constraints in pg_constraint (contype 'n') can be NOT VALID …
    NewerSyntax(
        "a NOT NULL … NOT VALID constraint",
        18,
        """
        SELECT 'constraint ' || quote_ident(k.conname) || ' on ' || k.conrelid::regclass::text AS object,
               k.conrelid AS relid,
               format('ALTER TABLE %1$s VALIDATE CONSTRAINT %2$I; (once no row holds NULL) or ALTER TABLE %1$s '
                      'DROP CONSTRAINT %2$I, ADD CONSTRAINT %2$I CHECK (%3$I IS NOT NULL) NOT VALID;',
                      k.conrelid::regclass, k.conname, a.attname) AS fix
        FROM pg_constraint k
        JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
        WHERE k.contype = 'n' AND NOT k.convalidated AND k.conparentid = 0 AND k.conislocal
        ORDER BY 1
        """,
        "17 has no unvalidated NOT NULL: validate it on the source once its NULLs are fixed, or make it a CHECK "
        "(… IS NOT NULL) NOT VALID, which 17 has",
    ),
    # … or NO INHERIT.
    NewerSyntax(
        "a NOT NULL … NO INHERIT constraint",
        18,
        """
        SELECT 'constraint ' || quote_ident(k.conname) || ' on ' || k.conrelid::regclass::text AS object,
               k.conrelid AS relid,
               format('ALTER TABLE %s ALTER CONSTRAINT %I INHERIT;', k.conrelid::regclass, k.conname) AS fix
        FROM pg_constraint k
        WHERE k.contype = 'n' AND k.connoinherit
        ORDER BY 1
        """,
        "17's NOT NULL always reaches the children: let it be inherited on the source (children, if any, "
        "then get NOT NULL too)",
    ),
    # 18: temporal keys, PRIMARY KEY/UNIQUE (… WITHOUT OVERLAPS) and FOREIGN KEY (…, PERIOD …) (conperiod).
    NewerSyntax(
        "a temporal key (WITHOUT OVERLAPS / PERIOD)",
        18,
        """
        SELECT 'constraint ' || quote_ident(k.conname) || ' on ' || k.conrelid::regclass::text AS object,
               k.conrelid AS relid,
               CASE WHEN k.contype = 'f'
                    THEN format('ALTER TABLE %s DROP CONSTRAINT %I; (17 can check it only with a trigger)',
                                k.conrelid::regclass, k.conname)
                    ELSE format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I EXCLUDE USING gist (%s);',
                                k.conrelid::regclass, k.conname, k.conname,
                                (SELECT string_agg(quote_ident(a.attname)
                                                   || CASE WHEN n = array_length(k.conkey, 1) THEN ' WITH &&'
                                                           ELSE ' WITH =' END, ', ' ORDER BY n)
                                 FROM unnest(k.conkey) WITH ORDINALITY AS u(attnum, n)
                                 JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum))
               END AS fix
        FROM pg_constraint k
        WHERE k.conperiod AND k.conparentid = 0
        ORDER BY k.contype = 'f' DESC, 1
        """,
        "17 has no temporal keys: on the source, drop the PERIOD foreign keys (first) and make each WITHOUT "
        "OVERLAPS key an exclusion constraint, which 17 has (btree_gist for scalar columns)",
    ),
)


def _newer_syntax(ctx: Context) -> Iterator[Hit]:
    for syntax in NEWER_SYNTAX:
        if not (ctx.source_major >= syntax.since > ctx.target_major):
            continue
        for row in fetch_all(ctx.conn, syntax.sql):
            yield Hit(
                str(row["object"]),
                f"{row['object']} is {syntax.feature}, which {ctx.target_major} does not have (added in "
                f"{syntax.since}); the restore stops there: {syntax.advice}",
                ctx.database,
                remediation=f"On the source: {row['fix']}",
                relation=int(row["relid"]),
            )


SYNTAX_NEWER_MAJOR = Rule(
    id="syntax-newer-major",
    title="Objects in syntax the older target major does not have",
    severity=Severity.BLOCKER,
    changed_in="PostgreSQL 17 (exclusion constraints and access methods of partitioned tables, SQL/JSON query "
    "functions), 18 (virtual generated columns, NOT ENFORCED, NOT NULL NOT VALID / NO INHERIT, WITHOUT OVERLAPS)",
    source_min=min(s.since for s in NEWER_SYNTAX),
    target_max=max(s.since for s in NEWER_SYNTAX) - 1,
    what_happens="pg_dump writes these objects in the source major's syntax; an older target refuses the "
    "statement (a syntax error), so the table or constraint is missing and pg_restore --exit-on-error stops "
    "there.",
    remediation="Change the object on the source into a form the target has (the fix of each finding spells it "
    "out), or leave it out of the move (--exclude-object).",
    detect=_newer_syntax,
    verified="18->17 and 17->16 (each fix tried on the source, then the schema trial on the target accepted the "
    "schema)",
)


RULES = (
    NOT_NULL_INHERITANCE,
    GENERATED_INHERITANCE_MISMATCH,
    GENERATED_PARENT_PLAIN_CHILD,
    UNLOGGED_PARTITIONED,
    NULLS_NOT_DISTINCT_PK,
    DUPLICATE_CONSTRAINT_NAMES,
    HASH_PARTITION_ENUM,
    MAX_LOCKS_FOR_DUMP,
    RESERVED_RULE_NAME,
    SYNTAX_NEWER_MAJOR,
)
