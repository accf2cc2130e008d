"""Every rule pgshift check knows, in report order.

Adding a rule: define a ``Rule`` in the topic module that fits (or a new module listed here) and
add it to that module's ``RULES``; ``docs/check.md`` is generated from these
(``python -m pgshift.checks.docs``) and a test fails while it is stale.
"""

from __future__ import annotations

from pgshift.checks.rule import Rule
from pgshift.checks.rules import cluster, encoding_shared, expressions, extensions, move, roles, tables, types

ALL_RULES: tuple[Rule, ...] = (
    *move.RULES,
    *types.RULES,
    *expressions.RULES,
    *tables.RULES,
    *extensions.RULES,
    *roles.RULES,
    *cluster.RULES,
    *encoding_shared.RULES,
)

BY_ID: dict[str, Rule] = {r.id: r for r in ALL_RULES}
if len(BY_ID) != len(ALL_RULES):  # pragma: no cover - a programming error caught at import
    raise AssertionError("duplicate rule ids")

# Knowledge-base entries (../shared/knowledge/incompatibilities.md) that are not rules, and why.
NOT_RULES: dict[str, str] = {
    "client-dump-oldest-server": "every supported source (10+) is in range for every client; the client choice "
    "applies the cut-offs (client-dump-newer-server fires when nothing fits)",
    "client-archive-version": "pgshift uses pg_dump and pg_restore of one installation, so the archive version "
    "always matches",
    "client-pg-restore-stdout": "pgshift always passes -d or -f to pg_restore",
    "plain-dump-restrict": "pgshift and its manual commands use directory/custom archives and pg_restore, never "
    "plain-text scripts (except globals, loaded with the same major's psql)",
    "dump18-statistics": "no planner statistics arrive either way: the manual commands end with vacuumdb "
    "--analyze-in-stages; --no-statistics is added when an 18 client serves an older target",
    "client-psql-single-transaction": "pgshift's globals replay does not use --single-transaction",
    "client-no-sync-snapshots": "pgshift never passes --no-synchronized-snapshots",
    "client-catalog-queries": "pgshift's own catalog queries are version-gated in pgshift.catalog",
    "aclitem-columns": "affects pg_upgrade only; a logical dump goes through the text form",
    "unknown-type-columns": "sources older than 10 only",
    "factorial-negative etc.": "behaviour changes with no catalog trace; retest the application",
    "views-on-select-rules": "only replays of old plain dumps are affected; pgshift dumps afresh with the "
    "target's pg_dump",
    "grant-all-maintain": "confirmed not to be a hazard (GRANT ALL does not turn into MAINTAIN)",
    "rule-privilege": "GRANT RULE is a no-op never stored in the catalogs; only scripts are affected",
    "recovery-conf": "physical replication only",
    "catalog-refs (generic)": "implemented as catalog-refs",
}
