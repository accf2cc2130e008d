"""How the schema trial reads pg_restore's statements: the grantee of a GRANT/REVOKE (tried once more
for PUBLIC when the role is missing) and the parameter a session statement sets."""

from __future__ import annotations

import pytest

from pgshift.checks.trial import _for_public, _setting_of


@pytest.mark.parametrize(
    ("statement", "role", "expected"),
    [
        (
            "GRANT SELECT,MAINTAIN ON TABLE public.t TO mboth;",
            "mboth",
            "GRANT SELECT,MAINTAIN ON TABLE public.t TO PUBLIC;",
        ),
        (
            'GRANT MAINTAIN ON TABLE public."to x" TO "Mixed ""Case""" WITH GRANT OPTION;',
            'Mixed "Case"',
            'GRANT MAINTAIN ON TABLE public."to x" TO PUBLIC;',  # PUBLIC takes no grant option
        ),
        ("REVOKE ALL ON TABLE public.t FROM r;\n", "r", "REVOKE ALL ON TABLE public.t FROM PUBLIC;"),
        (
            "ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA s GRANT MAINTAIN ON TABLES TO r;",
            "r",
            "ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA s GRANT MAINTAIN ON TABLES TO PUBLIC;",
        ),
        # Another grantee than the missing role (the owner in FOR ROLE …): not rewritten.
        ("ALTER DEFAULT PRIVILEGES FOR ROLE gone GRANT SELECT ON TABLES TO r;", "gone", None),
        ("ALTER TABLE public.t OWNER TO r;", "r", None),
    ],
)
def test_a_grant_is_sent_to_public_only_in_place_of_the_missing_grantee(
    statement: str, role: str, expected: str | None
) -> None:
    assert _for_public(statement, role) == expected


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("SET default_table_access_method = heap;", "default_table_access_method"),
        ("SET transaction_timeout TO 0;", "transaction_timeout"),
        ("SELECT pg_catalog.set_config('search_path', '', false);", "search_path"),
        ("SET SESSION AUTHORIZATION app;", None),
        ("SET ROLE app;", None),
    ],
)
def test_the_parameter_of_a_session_statement(statement: str, expected: str | None) -> None:
    assert _setting_of(statement) == expected
