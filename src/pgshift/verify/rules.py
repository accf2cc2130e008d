"""Expected differences: what a newer major creates or spells by itself.

Each rule has a name (shown in reports and documented in docs/verify.md) and a test. A rule
that follows a PostgreSQL change only ever explains a difference between two *different*
majors in the direction of an upgrade. One rule holds for any pair: the names the server
chooses itself for what it clones onto partitions (server-named-clone).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pgshift.catalog.inventory import DbObject
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


def _not_null_table(c: Candidate, ctx: Context) -> bool:
    # 18 catalogs every NOT NULL column constraint in pg_constraint (contype 'n').
    obj = _extra(c)
    return ctx.crosses(180000) and obj is not None and {"contype:n", "on:table"} <= obj.flags


def _not_null_domain(c: Candidate, ctx: Context) -> bool:
    # 17 catalogs domain NOT NULL constraints in pg_constraint (contype 'n').
    obj = _extra(c)
    return ctx.crosses(170000) and obj is not None and {"contype:n", "on:domain"} <= obj.flags


def _multirange(c: Candidate, ctx: Context) -> bool:
    # 14 creates a multirange type and three constructor functions for every range type.
    obj = _extra(c)
    return ctx.crosses(140000) and obj is not None and bool({"multirange", "multirange-constructor"} & obj.flags)


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


def acl_name(role: str) -> str:
    """A role name as aclitem text spells it (quoted unless letters, digits and underscores)."""
    return role if role and all(ch.isalnum() or ch == "_" for ch in role) else '"' + role.replace('"', '""') + '"'


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
    # default privileges and ALTER DEFAULT PRIVILEGES … GRANT ALL ON TABLES include it.
    if not ctx.crosses(170000) or c.attribute != "acl" or c.source is None or c.target is None:
        return False
    if not {"relation", "defacl:r"} & c.target.flags:
        return False
    owner = c.target.owner or next((f[12:] for f in c.target.flags if f.startswith("defacl-role:")), None)
    # A NULL ACL is the owner's defaults, which gained MAINTAIN in 17.
    src = c.source.acl if c.source.acl is not None else _relation_default(c.source.owner, maintain=False)
    tgt = c.target.acl if c.target.acl is not None else _relation_default(c.target.owner, maintain=True)
    stripped = [i for i in (_strip_maintain(i, owner) for i in tgt) if i is not None]
    return sorted(src) == sorted(stripped) and sorted(src) != sorted(tgt)


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
    if not ctx.crosses(140000) or c.attribute != "arguments":
        return False
    src, tgt = c.difference.source or "", c.difference.target or ""
    return re.sub(r"(^|, )IN ", r"\1", tgt) == src


def _execute_function(c: Candidate, ctx: Context) -> bool:
    # 12 prints trigger definitions with EXECUTE FUNCTION (11 and older printed EXECUTE PROCEDURE).
    if not ctx.crosses(120000) or c.attribute != "definition":
        return False
    src, tgt = c.difference.source or "", c.difference.target or ""
    return src.replace(" EXECUTE PROCEDURE ", " EXECUTE FUNCTION ") == tgt


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


RULES: tuple[Rule, ...] = (
    Rule(
        "server-named-clone",
        "the server names the constraints and indexes it clones onto partitions itself (pg_dump does not dump them)",
        _server_named_clone,
    ),
    Rule(
        "not-null-constraints-18",
        "PostgreSQL 18 catalogs NOT NULL column constraints in pg_constraint",
        _not_null_table,
    ),
    Rule(
        "domain-not-null-constraints-17",
        "PostgreSQL 17 catalogs domain NOT NULL constraints in pg_constraint",
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
