"""The target's own roles: what a migration never touches is not reported as lost."""

from __future__ import annotations

from typing import Any

from pgshift.verify import verify_servers
from tests.integration.verify_support import copy_database, copy_globals


def test_target_superuser_password_and_target_only_roles_are_expected_not_differences(fresh_server: Any) -> None:
    source, target = fresh_server(16), fresh_server(17, password="target-own-pw")
    source.execute("CREATE ROLE app_owner LOGIN PASSWORD 'app-pw'; CREATE ROLE readers; GRANT readers TO app_owner")
    source.execute("CREATE DATABASE vr_app OWNER app_owner")
    source.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)", dbname="vr_app")
    target.execute("CREATE ROLE svc_monitor LOGIN; GRANT pg_monitor TO svc_monitor")
    copy_globals(source, target)
    copy_database(source, target, "vr_app")

    report = verify_servers(source.endpoint("source"), target.endpoint("target"), databases=[("vr_app", "vr_app")])
    assert report.equal, [d.message for d in report.differences]
    rules = {(e.rule, e.difference.object) for e in report.expected}
    assert ("target-own-role", "role postgres") in rules
    assert ("role-only-on-target", "role svc_monitor") in rules

    # A role the migration did create is compared as strictly as ever.
    target.execute("ALTER ROLE app_owner NOLOGIN; REVOKE readers FROM app_owner")
    report = verify_servers(source.endpoint("source"), target.endpoint("target"), databases=[("vr_app", "vr_app")])
    assert not report.equal
    objects = {d.object for d in report.differences}
    assert "role app_owner" in objects and "membership of app_owner in readers" in objects
