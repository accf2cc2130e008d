"""check's rules against a target, with the source known only by a recorded inventory (a backup set's).

``run_recorded`` runs the rules of ``RECORDED_RULES``: those whose detectors read nothing but the
inventories (the source's, as recorded; the target's, read now) and the client choice. The other
rules query the source's catalogs or data, which a set does not have. The rules that judge what
restore's own preflight decides (existing databases, the direction, privileges, connections) are
left to it, as migrate's preflight decides them for migrate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, cast

from pgshift.catalog import inventory_check as inv
from pgshift.catalog.session import Connection, session
from pgshift.checks import ClientAdvice, Finding, Skipped
from pgshift.checks.engine import _OPTIONS, _run_rules
from pgshift.checks.rule import Context, Scope
from pgshift.conninfo import ResolvedEndpoint
from pgshift.events import EventSink, discard
from pgshift.toolchain.select import ClientChoice

RECORDED_RULES = frozenset(
    {
        # the cluster: what the databases, roles, tablespaces and settings of the source ask of the target
        "encoding-sql-ascii",
        "locale-availability",
        "tablespaces",
        "md5-passwords",
        "password-encryption-default",
        "createrole-inheritance",
        "vacuum-defer-cleanup-age-etc",
        # each database: its extensions and what else it holds
        "removed-extension",
        "extension-availability",
        "extension-object-changes",
        "subscriptions",
        "large-objects",
    }
)


class _NoSource:
    """Stands for the source session a recorded check does not have: a rule that asks it fails loudly."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"a recorded check has no source session (a rule used its {name!r})")


def run_recorded(
    source: inv.SourceInventory,
    target: ResolvedEndpoint,
    *,
    databases: Sequence[str],
    client: ClientChoice,
    jobs: int = 2,
    renames: Mapping[str, str] | None = None,
    tablespace_map: Mapping[str, str] | None = None,
    sink: EventSink = discard,
) -> tuple[list[Finding], list[Skipped]]:
    """The findings of ``RECORDED_RULES`` for moving ``databases`` of ``source`` into ``target``."""
    from pgshift.checks.rules import ALL_RULES

    source = replace(source, checked=tuple(d for d in source.checked if d.name in set(databases)))
    advice = ClientAdvice(
        client.version.major_label,
        str(client.version),
        client.where,
        client.reason,
        client.warnings,
        client.dump_flags,
        choice=client,
    )
    no_source = cast(Connection, _NoSource())
    skipped: list[Skipped] = []
    with session(target, options=_OPTIONS) as tconn:
        target_inv = inv.target_inventory(tconn, target.display())
        tmajor = target_inv.server.version.major
        rules = [r for r in ALL_RULES if r.id in RECORDED_RULES and r.applies(source.server.version.major, tmajor)]

        def context(database: str | None, **more: Any) -> Context:
            return Context(
                source,
                target_inv,
                tmajor,
                no_source,
                database,
                advice,
                jobs,
                target_conn=tconn,
                moving=frozenset(databases),
                renames=dict(renames or {}),
                tablespace_map=dict(tablespace_map or {}),
                **more,
            )

        findings = _run_rules([r for r in rules if r.scope is Scope.CLUSTER], context(None), sink, skipped)
        db_rules = [r for r in rules if r.scope is Scope.DATABASE]
        for i, name in enumerate(databases):
            dbi = source.database(name)
            if dbi is None:
                continue
            # Which extensions nothing else uses is a source query; a restore offers no remedy that needs it.
            ctx = context(name, db_inventory=dbi, first_database=i == 0, cache={"unused_extensions": set()})
            findings += _run_rules(db_rules, ctx, sink, skipped)
    order = {r.id: i for i, r in enumerate(ALL_RULES)}
    findings.sort(key=lambda f: (-f.severity.rank, order.get(f.rule_id, 0), f.database or "", f.object or ""))
    return findings, skipped
