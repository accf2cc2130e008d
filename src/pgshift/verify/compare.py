"""Comparisons of catalog facts: globals, database properties and object inventories.

Everything is compared by name, never by OID. The functions return candidates (a difference
plus the objects it came from) so that the expected-difference rules can look at them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from pgshift.catalog.cluster import DatabaseInfo, Membership, RoleInfo
from pgshift.catalog.inventory import COLUMN_PREFIX, DbObject, Inventory, acl_name
from pgshift.verify.model import Difference
from pgshift.verify.patterns import Filter
from pgshift.verify.rules import Candidate

_ROLE_FIELDS = (
    "superuser",
    "inherit",
    "createrole",
    "createdb",
    "login",
    "replication",
    "bypassrls",
    "connlimit",
    "valid_until",
    "comment",
)


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple | list):
        return ", ".join(str(v) for v in value) if value else "(none)"
    return str(value)


def _acl_text(acl: tuple[str, ...] | None) -> str:
    return "(default)" if acl is None else (", ".join(acl) if acl else "(none)")


def compare_roles(
    source: list[RoleInfo],
    target: list[RoleInfo],
    *,
    source_passwords: Mapping[str, str | None] | None = None,
    target_passwords: Mapping[str, str | None] | None = None,
    renames: Mapping[str, str] | None = None,
) -> list[Candidate]:
    out: list[Candidate] = []
    src = {r.name: r for r in source}
    tgt = {r.name: r for r in target}
    renames = renames or {}
    for name in sorted(src.keys() | tgt.keys()):
        obj = f"role {name}"
        who = (name,)
        s, t = src.get(name), tgt.get(name)
        if t is None:
            out.append(
                _cand(
                    "globals", None, obj, "missing", "exists", None, f"role {name} is missing on the target", roles=who
                )
            )
            continue
        if s is None:
            out.append(
                _cand(
                    "globals", None, obj, "extra", None, "exists", f"role {name} exists only on the target", roles=who
                )
            )
            continue
        for fld in _ROLE_FIELDS:
            sv, tv = _text(getattr(s, fld)), _text(getattr(t, fld))
            if sv != tv:
                out.append(
                    _cand("globals", None, obj, "changed", sv, tv, f"role {name}: {fld} differs", fld, roles=who)
                )
        s_set = sorted((renames.get(db, db) if db else "", v) for db, v in s.settings)
        t_set = sorted((db or "", v) for db, v in t.settings)
        if s_set != t_set:
            out.append(
                _cand(
                    "globals",
                    None,
                    obj,
                    "changed",
                    _settings_text(s_set),
                    _settings_text(t_set),
                    f"role {name}: settings differ",
                    "settings",
                    roles=who,
                )
            )
        if source_passwords is not None and target_passwords is not None:
            sp, tp = source_passwords.get(name), target_passwords.get(name)
            if sp != tp:
                out.append(
                    _cand(
                        "globals",
                        None,
                        obj,
                        "changed",
                        s.password_type or "no password",
                        t.password_type or "no password",
                        f"role {name}: the password hash did not arrive intact",
                        "password",
                        roles=who,
                    )
                )
        elif s.password_type is not None and t.password_type is None:
            out.append(
                _cand(
                    "globals",
                    None,
                    obj,
                    "changed",
                    "has a password",
                    "no password",
                    f"role {name}: the password is missing on the target",
                    "password",
                    roles=who,
                )
            )
    return out


def _settings_text(items: Iterable[tuple[str, str]]) -> str:
    texts = [f"{v} (in {db})" if db else v for db, v in items]
    return ", ".join(texts) if texts else "(none)"


def compare_memberships(source: list[Membership], target: list[Membership], *, both_16: bool) -> list[Candidate]:
    """Role memberships; grantors are not compared (16 records them differently)."""

    def collect(items: list[Membership]) -> dict[tuple[str, str], str]:
        # 16+ may record one membership several times (one per grantor): an option holds when
        # any of the grants gives it.
        grants: dict[tuple[str, str], list[Membership]] = {}
        for m in items:
            grants.setdefault((m.role, m.member), []).append(m)
        out: dict[tuple[str, str], str] = {}
        for k, ms in grants.items():
            opts = ["admin" if any(m.admin_option for m in ms) else "no admin"]
            if both_16:
                opts.append("inherit" if any(m.inherit_option for m in ms) else "no inherit")
                opts.append("set" if any(m.set_option for m in ms) else "no set")
            out[k] = ", ".join(opts)
        return out

    src = collect(source)
    tgt = collect(target)
    out: list[Candidate] = []
    for k in sorted(src.keys() | tgt.keys()):
        obj = f"membership of {k[1]} in {k[0]}"
        who = (k[1], k[0])
        if k not in tgt:
            out.append(
                _cand(
                    "globals",
                    None,
                    obj,
                    "missing",
                    src[k],
                    None,
                    f"{k[1]} is no longer a member of {k[0]}",
                    attribute="membership",
                    roles=who,
                )
            )
        elif k not in src:
            out.append(
                _cand(
                    "globals",
                    None,
                    obj,
                    "extra",
                    None,
                    tgt[k],
                    f"{k[1]} is a member of {k[0]} only on target",
                    attribute="membership",
                    roles=who,
                )
            )
        elif src[k] != tgt[k]:
            out.append(
                _cand(
                    "globals",
                    None,
                    obj,
                    "changed",
                    src[k],
                    tgt[k],
                    f"membership options of {k[1]} in {k[0]}",
                    attribute="membership",
                    roles=who,
                )
            )
    return out


def compare_database(
    source: DatabaseInfo,
    target: DatabaseInfo,
    *,
    compare_owners: bool,
    compare_privileges: bool,
    compare_locale_provider: bool,
) -> list[Candidate]:
    fields: list[tuple[str, object, object]] = [
        ("encoding", source.encoding, target.encoding),
        ("collate", source.collate, target.collate),
        ("ctype", source.ctype, target.ctype),
        ("connection limit", source.connlimit, target.connlimit),
        ("tablespace", source.tablespace, target.tablespace),
        ("comment", source.comment, target.comment),
        ("settings", sorted(source.settings), sorted(target.settings)),
    ]
    if compare_locale_provider:
        # 15 added the ICU provider for databases; older sources are libc by construction.
        fields += [
            ("locale provider", source.locale_provider, target.locale_provider),
            ("locale", source.icu_locale, target.icu_locale),
            ("icu rules", source.icu_rules, target.icu_rules),
        ]
    elif target.locale_provider != "libc":
        fields.append(("locale provider", "libc", target.locale_provider))
    if compare_owners:
        fields.append(("owner", source.owner, target.owner))
    out: list[Candidate] = []
    obj = f"database {source.name}"
    for name, sv, tv in fields:
        s, t = _text(sv), _text(tv)
        if s != t:
            out.append(
                _cand("database", source.name, obj, "changed", s, t, f"database {source.name}: {name} differs", name)
            )
    if compare_privileges:
        s_acl = _database_acl(source)
        t_acl = _database_acl(target)
        if (sorted(s_acl) if s_acl is not None else None) != (sorted(t_acl) if t_acl is not None else None):
            out.append(
                _cand(
                    "privileges",
                    source.name,
                    obj,
                    "changed",
                    _acl_text(s_acl),
                    _acl_text(t_acl),
                    f"database {source.name}: privileges differ",
                    "acl",
                )
            )
    return out


def _database_acl(db: DatabaseInfo) -> tuple[str, ...] | None:
    """A database's ACL, None for the defaults, also when spelled out (CONNECT and TEMPORARY for
    PUBLIC, everything for the owner: acldefault('d') in every major 10-18)."""
    if db.acl_is_default:
        return None
    owner = acl_name(db.owner)
    if sorted(db.acl) == sorted((f"=Tc/{owner}", f"{owner}=CTc/{owner}")):
        return None
    return db.acl


def table_of(obj: DbObject) -> str | None:
    """The table an object belongs to (itself for relations), for -t/-T filters."""
    if "relation" in obj.flags:
        return obj.name
    if obj.kind in ("index", "statistics object"):
        return obj.attrs.get("table")
    if obj.kind in ("trigger", "rule", "policy") or (obj.kind.startswith("constraint") and "on:table" in obj.flags):
        return obj.name.split(".", 1)[0]
    return None


def object_selected(obj: DbObject, flt: Filter) -> bool:
    if not flt.active:
        return True
    if obj.kind == "schema":
        return flt.schema_ok(obj.name) and not flt.tables
    if obj.schema is None:
        return not (flt.schemas or flt.tables)
    if not flt.schema_ok(obj.schema):
        return False
    table = table_of(obj)
    if table is None:
        return not flt.tables
    return flt.table_ok(obj.schema, table)


class Requote:
    """Text modulo the quoting of keywords that only one of the two servers quotes.

    quote_ident, format_type and pg_get_*def quote an identifier that is a keyword of the
    server's grammar; the keywords change between majors (a column ``json`` prints as ``"json"``
    from 17, ``system_user`` is quoted from 16), so both sides drop the quotes around exactly
    those words before comparing.
    """

    def __init__(self, source: frozenset[str], target: frozenset[str]) -> None:
        words = sorted(w for w in source ^ target if re.fullmatch(r"[a-z_][a-z0-9_$]*", w))
        self._re = re.compile(r'(?<![\w"])"(' + "|".join(words) + r')"(?![\w"])') if words else None

    def __call__(self, text: str | None) -> str | None:
        if text is None or self._re is None or '"' not in text:
            return text
        return self._re.sub(r"\1", text)

    def key(self, obj: DbObject) -> tuple[str, str, str]:
        return (obj.kind, obj.schema or "", self(obj.name) or "")


def _identity(obj: DbObject, norm: Requote) -> tuple[str | None, ...]:
    """What a server-named object is, whatever its name: kind, table, definition and parent."""
    return (
        obj.kind,
        obj.schema,
        norm(obj.attrs.get("on") or obj.attrs.get("table")),
        norm(obj.attrs.get("definition")),
        norm(obj.attrs.get("cloned_from") or obj.attrs.get("attached_to")),
    )


def _pair_clones(src_only: list[DbObject], tgt_only: list[DbObject], norm: Requote) -> list[tuple[DbObject, DbObject]]:
    """Objects the server cloned onto partitions and named itself, paired by what they are."""
    groups: dict[tuple[str | None, ...], tuple[list[DbObject], list[DbObject]]] = {}
    for side, objs in ((0, src_only), (1, tgt_only)):
        for o in objs:
            if "clone" in o.flags:
                groups.setdefault(_identity(o, norm), ([], []))[side].append(o)
    pairs: list[tuple[DbObject, DbObject]] = []
    for s_objs, t_objs in groups.values():
        # Two clones alike in all but name (rare) pair in name order, so the result is stable.
        pairs += zip(sorted(s_objs, key=lambda o: o.name), sorted(t_objs, key=lambda o: o.name), strict=False)
    return pairs


def compare_inventories(
    database: str,
    source: Inventory,
    target: Inventory,
    *,
    compare_owners: bool = True,
    compare_privileges: bool = True,
    selected: Filter | None = None,
) -> list[Candidate]:
    flt = selected or Filter()
    norm = Requote(source.quoted_keywords, target.quoted_keywords)
    src = {norm.key(o): o for o in source.objects if object_selected(o, flt)}
    tgt = {norm.key(o): o for o in target.objects if object_selected(o, flt)}
    paired = _pair_clones([src[k] for k in src.keys() - tgt.keys()], [tgt[k] for k in tgt.keys() - src.keys()], norm)
    renamed = {norm.key(s): t for s, t in paired}
    renamed_targets = {norm.key(t) for _s, t in paired}
    out: list[Candidate] = []
    for key in sorted(src.keys() | tgt.keys()):
        if key in renamed_targets:
            continue
        s, t = src.get(key), tgt.get(key) or renamed.get(key)
        any_obj = s or t
        assert any_obj is not None
        label = f"{any_obj.kind} {any_obj.qualified}"
        if t is None:
            assert s is not None
            out.append(
                Candidate(
                    Difference(
                        "schema", database, label, "missing", "exists", None, f"{label} is missing on the target"
                    ),
                    s,
                    None,
                )
            )
            continue
        if s is None:
            out.append(
                Candidate(
                    Difference(
                        "schema", database, label, "extra", None, "exists", f"{label} exists only on the target"
                    ),
                    None,
                    t,
                )
            )
            continue
        out += _compare_objects(database, label, s, t, norm, compare_owners, compare_privileges)
    return out


def _compare_objects(
    database: str,
    label: str,
    s: DbObject,
    t: DbObject,
    norm: Requote,
    compare_owners: bool,
    compare_privileges: bool,
) -> list[Candidate]:
    out: list[Candidate] = []
    if norm(s.name) != norm(t.name):
        out.append(
            Candidate(
                Difference(
                    "schema", database, label, "changed", s.name, t.name, f"{label} is named {t.name} on the target"
                ),
                s,
                t,
                "name",
            )
        )
    for attr in sorted(s.attrs.keys() | t.attrs.keys()):
        sv, tv = s.attrs.get(attr), t.attrs.get(attr)
        if norm(sv) == norm(tv):
            continue
        if attr.startswith(COLUMN_PREFIX):
            out.append(_column_difference(database, s, t, attr, sv, tv))
        elif attr == "columns":
            # Added or missing columns are said column by column; here only the order is left.
            if sorted((sv or "").split(", ")) == sorted((tv or "").split(", ")):
                out.append(
                    Candidate(
                        Difference("schema", database, label, "changed", sv, tv, f"{label}: the column order differs"),
                        s,
                        t,
                        attr,
                    )
                )
        else:
            out.append(
                Candidate(
                    Difference("schema", database, label, "changed", sv, tv, f"{label}: {attr} differs"), s, t, attr
                )
            )
    if s.comment != t.comment:
        out.append(
            Candidate(
                Difference("schema", database, label, "changed", s.comment, t.comment, f"{label}: comment differs"),
                s,
                t,
                "comment",
            )
        )
    if compare_owners and s.owner != t.owner:
        out.append(
            Candidate(
                Difference("schema", database, label, "changed", s.owner, t.owner, f"{label}: owner differs"),
                s,
                t,
                "owner",
            )
        )
    if compare_privileges and _acl_norm(s.acl) != _acl_norm(t.acl):
        out.append(
            Candidate(
                Difference(
                    "privileges",
                    database,
                    label,
                    "changed",
                    _acl_text(s.acl),
                    _acl_text(t.acl),
                    f"{label}: privileges differ",
                ),
                s,
                t,
                "acl",
            )
        )
    return out


def _column_difference(database: str, s: DbObject, t: DbObject, attr: str, sv: str | None, tv: str | None) -> Candidate:
    label = f"column {s.qualified}.{attr[len(COLUMN_PREFIX) :]}"
    if tv is None:
        d = Difference("schema", database, label, "missing", sv, None, f"{label} is missing on the target")
    elif sv is None:
        d = Difference("schema", database, label, "extra", None, tv, f"{label} exists only on the target")
    else:
        d = Difference("schema", database, label, "changed", sv, tv, f"{label} differs")
    return Candidate(d, s, t, attr)


def _acl_norm(acl: tuple[str, ...] | None) -> list[str] | None:
    return None if acl is None else sorted(acl)


def _cand(
    category: str,
    database: str | None,
    obj: str,
    kind: str,
    source: str | None,
    target: str | None,
    message: str,
    attribute: str | None = None,
    *,
    roles: tuple[str, ...] = (),
) -> Candidate:
    return Candidate(
        Difference(category, database, obj, kind, source, target, message), attribute=attribute, roles=roles
    )
