"""The cluster catalog reads the same facts on every major."""

from __future__ import annotations

import pytest

from pgshift.catalog import cluster
from pgshift.catalog.session import session
from tests.conftest import ALL_MAJORS, ServerPool


@pytest.mark.parametrize("major", ALL_MAJORS)
def test_cluster_facts_on_every_major(servers: ServerPool, major: int) -> None:
    server = servers.get(major)
    tag = f"cc{major}"
    server.execute(f"DROP DATABASE IF EXISTS {tag}_db")
    server.execute(f"DROP ROLE IF EXISTS {tag}_member")
    server.execute(f"DROP ROLE IF EXISTS {tag}_group")
    server.execute(
        f"CREATE ROLE {tag}_group NOLOGIN; CREATE ROLE {tag}_member LOGIN PASSWORD 'x' CONNECTION LIMIT 3;"
        f"GRANT {tag}_group TO {tag}_member WITH ADMIN OPTION; ALTER ROLE {tag}_member SET work_mem = '8MB';"
        f"COMMENT ON ROLE {tag}_group IS 'the group'"
    )
    server.execute(f"CREATE DATABASE {tag}_db OWNER {tag}_member CONNECTION LIMIT 7")
    server.execute(
        f"ALTER DATABASE {tag}_db SET search_path = public; COMMENT ON DATABASE {tag}_db IS 'c';"
        f"REVOKE CONNECT ON DATABASE {tag}_db FROM PUBLIC"
    )
    with session(server.endpoint()) as conn:
        info = cluster.server_info(conn)
        dbs = {d.name: d for d in cluster.list_databases(conn)}
        roles = {r.name: r for r in cluster.list_roles(conn)}
        members = cluster.list_memberships(conn)
        available = cluster.available_extensions(conn)
    assert info.version.major == major and info.is_superuser
    assert info.settings["server_encoding"] == "UTF8"
    db = dbs[f"{tag}_db"]
    assert (db.owner, db.connlimit, db.encoding, db.comment) == (f"{tag}_member", 7, "UTF8", "c")
    assert db.settings == ("search_path=public",)
    assert not db.acl_is_default and all("=c/" not in a or a.startswith(f"{tag}") for a in db.acl if a.startswith("="))
    assert db.locale_provider == "libc" and db.collate == "C.UTF-8"
    assert db.size_bytes and db.size_bytes > 0
    member = roles[f"{tag}_member"]
    assert member.login and member.connlimit == 3
    assert member.password_type in ("scram-sha-256", "md5")
    assert (None, "work_mem=8MB") in member.settings
    assert roles[f"{tag}_group"].comment == "the group"
    assert any(m.role == f"{tag}_group" and m.member == f"{tag}_member" and m.admin_option for m in members)
    assert "pg_trgm" in available and available["pg_trgm"].versions
