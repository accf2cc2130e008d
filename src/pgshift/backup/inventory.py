"""What ``pgshift check`` needs of the source, recorded in a set at backup time and read back at restore.

A restore has no source to ask: the rules that judge the target against the source's inventory
(locales, extensions, tablespaces, roles, settings; see ``checks.engine.RECORDED_RULES``) read the
inventory the backup recorded in the manifest (``check``), taken in the same run as the archives.
The catalog's records are rebuilt here from their ``as_dict`` form.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from typing import Any, TypeVar

from pgshift.catalog import inventory_check as inv
from pgshift.catalog.cluster import DatabaseInfo, ExtensionInfo, Membership, RoleInfo, ServerInfo, TablespaceInfo
from pgshift.errors import PreflightRefused
from pgshift.version import PgVersion

SCHEMA_VERSION = 1
T = TypeVar("T")


def record(cluster: inv.SourceInventory, databases: Sequence[inv.DatabaseInventory]) -> dict[str, Any]:
    """The manifest's ``check``: the source's inventory with the backed-up databases as checked."""
    return {"schema_version": SCHEMA_VERSION, "source": replace(cluster, checked=tuple(databases)).as_dict()}


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _rebuild(cls: type[T], data: Mapping[str, Any], **given: Any) -> T:
    """A frozen record from its ``as_dict`` form: the fields it has, lists as tuples."""
    values = {f.name: _tuples(data[f.name]) for f in fields(cls) if f.name in data and f.name not in given}  # type: ignore[arg-type]
    return cls(**values, **given)


def _database_inventory(d: Mapping[str, Any]) -> inv.DatabaseInventory:
    return _rebuild(
        inv.DatabaseInventory,
        d,
        extensions=tuple(_rebuild(ExtensionInfo, e) for e in d["extensions"]),
        largest_tables=tuple(_rebuild(inv.TableSize, t) for t in d["largest_tables"]),
        object_counts=dict(d["object_counts"]),
    )


def source_inventory(manifest: Mapping[str, Any]) -> inv.SourceInventory | None:
    """The recorded inventory, or None for a set taken before pgshift recorded one."""
    doc = manifest.get("check")
    if doc is None:
        return None
    if not isinstance(doc, Mapping) or doc.get("schema_version") != SCHEMA_VERSION:
        raise PreflightRefused(
            "the set's recorded check inventory is of another schema version than this pgshift reads",
            hint="restore it with the pgshift that wrote it, or knowingly without the rules (--no-check)",
        )
    try:
        s = doc["source"]
        server = s["server"]
        return inv.SourceInventory(
            server=_rebuild(
                ServerInfo,
                server,
                version=PgVersion.from_num(int(server["version_num"])),
                settings=dict(server["settings"]),
            ),
            privileges=_rebuild(inv.Privileges, s["privileges"]),
            databases=tuple(_rebuild(DatabaseInfo, d) for d in s["databases"]),
            checked=tuple(_database_inventory(d) for d in s["checked"]),
            roles=tuple(_rebuild(RoleInfo, r) for r in s["roles"]),
            memberships=tuple(_rebuild(Membership, m) for m in s["memberships"]),
            tablespaces=tuple(_rebuild(TablespaceInfo, t) for t in s["tablespaces"]),
            non_default_settings=dict(s["non_default_settings"]),
            prepared_xacts=tuple(s["prepared_transactions"]),
            replication_slots=tuple(s["replication_slots"]),
            display=str(s.get("connection", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PreflightRefused(
            f"the set's recorded check inventory cannot be read ({type(exc).__name__}: {exc})",
            hint="the manifest was changed by hand; restore another set, or knowingly without the rules (--no-check)",
        ) from None
