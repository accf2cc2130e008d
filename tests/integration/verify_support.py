"""Build equal server pairs for the verify tests: globals and databases copied with the real
pg_dumpall, pg_dump and pg_restore of the target's major (migrate is not used, so verify's tests
do not depend on it)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from pgshift.lab import LabServer, corpus
from pgshift.toolchain.clients import run_client
from pgshift.toolchain.discover import discover
from pgshift.toolchain.select import ClientChoice, select_client
from tests.fixtures import corpus as fixture_corpus


def client_for(source: LabServer, target: LabServer) -> ClientChoice:
    return select_client(discover(), source.version, target.version)


def load_corpus(server: LabServer, names: tuple[str, ...]) -> list[str]:
    """Corpus samples in databases ``corpus_<name>``; returns the databases loaded.

    Only the samples packaged with pgshift load: a name that is not packaged (``world``, which
    states no licence) is left out, so the tests run the same in any clone.
    """
    wanted = tuple(n for n in names if corpus.SAMPLES[n].packaged)
    return sorted(fixture_corpus.load_corpus(server, "corpus", wanted))


def copy_globals(source: LabServer, target: LabServer) -> None:
    choice = client_for(source, target)
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "globals.sql"
        run_client(
            choice,
            "pg_dumpall",
            ["--globals-only", f"--dbname={source.conninfo()}", f"--file={script}"],
            env=source.psql_env(),
        )
        # "role postgres already exists" is expected: no ON_ERROR_STOP.
        run_client(
            choice, "psql", ["-X", "-q", "-d", target.conninfo(), "-f", str(script)], env=target.psql_env(), check=True
        )


def copy_database(
    source: LabServer, target: LabServer, dbname: str, target_name: str | None = None, *, create_options: str = ""
) -> None:
    """pg_dump -Fc of the source database, restored with pg_restore: with --create, or into a new
    database ``target_name`` made from template0 with ``create_options`` (e.g. another collation)."""
    choice = client_for(source, target)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "db.dump"
        run_client(
            choice,
            "pg_dump",
            ["-Fc", f"--file={archive}", f"--dbname={source.conninfo(dbname)}", *choice.dump_flags],
            env=source.psql_env(),
        )
        if target_name is None:
            args = ["--create", "--exit-on-error", f"--dbname={target.conninfo()}", str(archive)]
        else:
            target.execute(f"CREATE DATABASE {target_name} TEMPLATE template0 {create_options}")
            args = ["--exit-on-error", f"--dbname={target.conninfo(target_name)}", str(archive)]
        run_client(choice, "pg_restore", args, env=target.psql_env())
