"""Expected differences: what a newer major creates or spells by itself.

Each rule has a name (shown in reports and documented in docs/verify.md) and a test. A rule
that follows a PostgreSQL change only ever explains a difference between two *different*
majors on either side of that change, and holds both ways: what the newer major catalogs or
spells by itself is expected only on the target of an upgrade and only on the source of a
downgrade, never between two servers of the same side. One rule holds for any pair: the names the server
chooses itself for what it clones onto partitions (server-named-clone).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pgshift.catalog.inventory import DbObject, acl_name
from pgshift.verify.model import Difference, ExplainedDifference
from pgshift.version import PgVersion


@dataclass(frozen=True)
class Context:
    source_version: PgVersion
    target_version: PgVersion
    # Extension name -> the default version the target server installs.
    target_extension_defaults: Mapping[str, str | None] = field(default_factory=dict)
    # Roles whose state on the target is the target's own: its bootstrap superuser, the connecting
    # role, and VerifyOptions.roles_left_alone (roles that existed before a migration).
    target_own_roles: frozenset[str] = frozenset()

    def crosses(self, num: int) -> bool:
        """True when the source is older than ``num`` (a server_version_num) and the target is not."""
        return self.source_version.num < num <= self.target_version.num

    def crosses_down(self, num: int) -> bool:
        """True when the target is older than ``num`` and the source is not (a downgrade across it)."""
        return self.target_version.num < num <= self.source_version.num


@dataclass(frozen=True)
class Candidate:
    """A difference with the objects it came from, for rules to look at."""

    difference: Difference
    source: DbObject | None = None
    target: DbObject | None = None
    attribute: str | None = None  # the attribute that differs ("acl", "owner", "arguments" …)
    roles: tuple[str, ...] = ()  # the roles a globals difference concerns (role, or member and group)


@dataclass(frozen=True)
class Rule:
    name: str
    reason: str
    applies: Callable[[Candidate, Context], bool]


def _extra(c: Candidate) -> DbObject | None:
    return c.target if c.difference.kind == "extra" and c.source is None else None


def _newer_side_only(c: Candidate, ctx: Context, num: int) -> DbObject | None:
    """The object that exists only on the side of major ``num`` or newer, the other side older.

    What a major catalogs by itself appears on its side alone, whichever way a move goes: only on
    the target of an upgrade ("extra"), only on the source of a downgrade ("missing").
    """
    if ctx.crosses(num):
        return _extra(c)
    if ctx.crosses_down(num):
        return c.source if c.difference.kind == "missing" and c.target is None else None
    return None


def _plain_not_null(obj: DbObject) -> bool:
    # What an older major's attnotnull (or typnotnull) says in full: a valid NOT NULL that children
    # inherit, with no comment. NOT VALID, NO INHERIT and a comment exist only as a constraint (18
    # sets attnotnull for a NOT VALID one too), so losing them is a real difference.
    definition = obj.attrs.get("definition") or ""
    return obj.attrs.get("validated") == "yes" and "NO INHERIT" not in definition and obj.comment is None


def _not_null_table(c: Candidate, ctx: Context) -> bool:
    # 18 catalogs every NOT NULL column constraint in pg_constraint (contype 'n'); older majors
    # keep only pg_attribute.attnotnull, which the column's own attribute compares on both sides.
    obj = _newer_side_only(c, ctx, 180000)
    return obj is not None and {"contype:n", "on:table"} <= obj.flags and _plain_not_null(obj)


def _not_null_domain(c: Candidate, ctx: Context) -> bool:
    # 17 catalogs domain NOT NULL constraints in pg_constraint (contype 'n'); older majors keep
    # pg_type.typnotnull, which the domain's not_null attribute compares on both sides.
    obj = _newer_side_only(c, ctx, 170000)
    return obj is not None and {"contype:n", "on:domain"} <= obj.flags and _plain_not_null(obj)


def _multirange(c: Candidate, ctx: Context) -> bool:
    # 14 creates a multirange type and three constructor functions for every range type (pg_dump
    # dumps none of them: an older target has none, a newer one makes them).
    obj = _newer_side_only(c, ctx, 140000)
    return obj is not None and bool({"multirange", "multirange-constructor"} & obj.flags)


def _multirange_owner(c: Candidate, ctx: Context) -> bool:
    # Until 17, ALTER TYPE … OWNER on a range type left its multirange owned by the role that
    # created it; pg_restore into 14-16 creates as the restoring role and then changes the owner
    # of the range type only. Expected when the target's range type has the source's owner.
    if c.attribute != "owner" or c.target is None or "multirange" not in c.target.flags:
        return False
    if not 140000 <= ctx.target_version.num < 170000:
        return False
    return f"range-owner:{c.difference.source}" in c.target.flags


_ALL_TABLE_PRIVS = set("arwdDxt")


def _strip_maintain(item: str, owner: str | None) -> str | None:
    """``item`` without the MAINTAIN a 17+ server adds by itself; None when nothing is left."""
    grantee, sep, rest = item.partition("=")
    privs, slash, grantor = rest.partition("/")
    if not sep or "m" not in privs:
        return item
    # GRANT ALL (every pre-17 table privilege) includes MAINTAIN from 17, and so do the owner's
    # implicit privileges: pg_dump of an older source spells the owner's out when any was revoked.
    if not (set(privs.replace("*", "")) >= _ALL_TABLE_PRIVS or (owner is not None and grantee == acl_name(owner))):
        return item
    stripped = privs.replace("m*", "").replace("m", "")
    return f"{grantee}={stripped}{slash}{grantor}" if stripped else None


def _relation_default(owner: str | None, *, maintain: bool) -> tuple[str, ...]:
    if owner is None:
        return ()
    name = acl_name(owner)
    return (f"{name}=arwdDxt{'m' if maintain else ''}/{name}",)


def _maintain(c: Candidate, ctx: Context) -> bool:
    # 17 added the MAINTAIN privilege (aclitem letter 'm'): GRANT ALL on a table, the owner's
    # default privileges and ALTER DEFAULT PRIVILEGES … GRANT ALL ON TABLES include it. Either
    # way across 17: an upgrade's target adds it, a downgrade's source has it where the target's
    # ALL cannot. A MAINTAIN granted on its own is not part of ALL and stays a real difference.
    if c.attribute != "acl" or c.source is None or c.target is None:
        return False
    if ctx.crosses(170000):
        older, newer = c.source, c.target
    elif ctx.crosses_down(170000):
        older, newer = c.target, c.source
    else:
        return False
    if not {"relation", "defacl:r"} & newer.flags:
        return False
    owner = newer.owner or next((f[12:] for f in newer.flags if f.startswith("defacl-role:")), None)
    # A NULL ACL is the owner's defaults, which gained MAINTAIN in 17.
    old_acl = older.acl if older.acl is not None else _relation_default(older.owner, maintain=False)
    new_acl = newer.acl if newer.acl is not None else _relation_default(newer.owner, maintain=True)
    stripped = [i for i in (_strip_maintain(i, owner) for i in new_acl) if i is not None]
    return sorted(old_acl) == sorted(stripped) and sorted(old_acl) != sorted(new_acl)


def _server_named_clone(c: Candidate, ctx: Context) -> bool:
    # pg_dump does not dump what the server clones onto partitions (foreign keys referencing a
    # partitioned table, its keys on partitions, inherited NOT NULL constraints in 18); the
    # target's server names them again, by its own scheme (fk_a_fkey1 before 18, fk_a_fkey_1
    # from 18) and in its own order. compare_inventories pairs them by table, definition and
    # parent; only the name differs.
    if c.attribute != "name" or c.source is None or c.target is None:
        return False
    return "clone" in c.source.flags and "clone" in c.target.flags


def _procedure_modes(c: Candidate, ctx: Context) -> bool:
    # 14 spells the IN mode of procedure arguments ("INOUT a integer, IN b text").
    if c.attribute != "arguments":
        return False
    src, tgt = c.difference.source or "", c.difference.target or ""
    if ctx.crosses(140000):
        return re.sub(r"(^|, )IN ", r"\1", tgt) == src
    return ctx.crosses_down(140000) and re.sub(r"(^|, )IN ", r"\1", src) == tgt


def _execute_function(c: Candidate, ctx: Context) -> bool:
    # 12 prints trigger definitions with EXECUTE FUNCTION (11 and older printed EXECUTE PROCEDURE).
    if c.attribute != "definition":
        return False
    src, tgt = c.difference.source or "", c.difference.target or ""
    if ctx.crosses(120000):
        return src.replace(" EXECUTE PROCEDURE ", " EXECUTE FUNCTION ") == tgt
    return ctx.crosses_down(120000) and tgt.replace(" EXECUTE PROCEDURE ", " EXECUTE FUNCTION ") == src


def _extension_default(c: Candidate, ctx: Context) -> bool:
    # The target installs the version its own packages ship (CREATE EXTENSION without VERSION, or
    # ALTER EXTENSION … UPDATE after the move): an upgrade on purpose.
    if c.attribute != "version" or c.target is None or c.target.kind != "extension":
        return False
    return ctx.target_extension_defaults.get(c.target.name) == c.difference.target


def _public_schema_15(c: Candidate, ctx: Context) -> bool:
    # 15 made pg_database_owner the owner of schema public and revoked CREATE from PUBLIC.
    if not ctx.crosses(150000) or c.target is None or c.target.kind != "schema" or c.target.name != "public":
        return False
    if c.attribute == "owner":
        return c.difference.target == "pg_database_owner"
    if c.attribute == "acl" and c.source is not None and c.source.acl is not None:
        # Only the old default becomes the new default; a hardened source ACL must arrive as it was.
        owner = c.source.owner
        old_default = {f"{owner}=UC/{owner}", "=UC/" + str(owner)}
        return set(c.source.acl) == old_default and c.difference.target == (
            "pg_database_owner=UC/pg_database_owner, =U/pg_database_owner"
        )
    return False


def _target_own_role(c: Candidate, ctx: Context) -> bool:
    # A migration never recreates or alters these roles (migrate's globals rules), so their
    # attributes, password, settings and memberships on the target are the target's, including
    # memberships it did not grant them. A role that is missing on the target is never explained.
    if c.difference.category != "globals" or not any(r in ctx.target_own_roles for r in c.roles):
        return False
    return c.difference.kind != "missing" or c.attribute == "membership"


def _role_only_on_target(c: Candidate, ctx: Context) -> bool:
    # Roles (and their memberships) that exist only on the target hold nothing of the source:
    # managed services and other applications create their own.
    return c.difference.category == "globals" and c.difference.kind == "extra"


def _sequence_moved_on(c: Candidate, _ctx: Context) -> bool:
    # Read in a migration's dump snapshot, the source's tables are as of that moment, but a sequence's
    # value is never transactional: the source's went on after the dump read it (verify marks such a
    # sequence "moved-on" only then, and only when the target's is behind the source's).
    return c.difference.category == "sequences" and c.difference.kind == "moved-on"


RULES: tuple[Rule, ...] = (
    Rule(
        "server-named-clone",
        "the server names the constraints and indexes it clones onto partitions itself (pg_dump does not dump them)",
        _server_named_clone,
    ),
    Rule(
        "not-null-constraints-18",
        "PostgreSQL 18 catalogs NOT NULL column constraints in pg_constraint; older majors keep them as the"
        " column's NOT NULL, which is compared",
        _not_null_table,
    ),
    Rule(
        "domain-not-null-constraints-17",
        "PostgreSQL 17 catalogs domain NOT NULL constraints in pg_constraint; older majors keep them as the"
        " domain's NOT NULL, which is compared",
        _not_null_domain,
    ),
    Rule(
        "multirange-types-14",
        "PostgreSQL 14 creates a multirange type and its constructor functions for every range type",
        _multirange,
    ),
    Rule(
        "multirange-owner-14-16",
        "before 17, changing the owner of a range type left its multirange type with the restoring role",
        _multirange_owner,
    ),
    Rule(
        "maintain-privilege-17",
        "PostgreSQL 17 added the MAINTAIN privilege, part of ALL on tables and of an owner's privileges",
        _maintain,
    ),
    Rule(
        "procedure-argument-modes-14",
        "PostgreSQL 14 spells the IN mode of procedure arguments",
        _procedure_modes,
    ),
    Rule(
        "trigger-execute-function-12",
        "PostgreSQL 12 prints EXECUTE FUNCTION in trigger definitions where 11 printed EXECUTE PROCEDURE",
        _execute_function,
    ),
    Rule(
        "extension-default-version",
        "the extension is at the default version the target installs (upgraded on purpose)",
        _extension_default,
    ),
    Rule(
        "target-own-role",
        "the target's bootstrap superuser, connecting role and pre-existing roles keep their own attributes",
        _target_own_role,
    ),
    Rule(
        "role-only-on-target",
        "a role that exists only on the target holds nothing of the source",
        _role_only_on_target,
    ),
    Rule(
        "sequence-moved-on",
        "the source's sequence went on after its database's dump read it (sequence values are not"
        " transactional; the rows that used the new values are later than the dump)",
        _sequence_moved_on,
    ),
    Rule(
        "public-schema-15",
        "PostgreSQL 15 gives schema public to pg_database_owner and revokes CREATE from PUBLIC",
        _public_schema_15,
    ),
)

RULE_NAMES: tuple[str, ...] = tuple(r.name for r in RULES)


def classify(
    candidates: list[Candidate], ctx: Context, rules: tuple[Rule, ...] = RULES
) -> tuple[list[Difference], list[ExplainedDifference]]:
    """Split differences into real ones and those a rule explains."""
    real: list[Difference] = []
    expected: list[ExplainedDifference] = []
    for cand in candidates:
        rule = next((r for r in rules if r.applies(cand, ctx)), None)
        if rule is None:
            real.append(cand.difference)
        else:
            expected.append(ExplainedDifference(rule.name, rule.reason, cand.difference))
    return real, expected
