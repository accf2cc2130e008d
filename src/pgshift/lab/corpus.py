"""Real sample databases (pagila, chinook, northwind, iso3166) packaged with pgshift, and their loader.

The data files are upstream's, byte for byte (provenance and licenses in
``pgshift/data/corpus/README.md``). ``load`` applies the same adjustments as the corpus's own
``load.sh`` scripts — pagila: drop ``SET default_table_access_method`` on servers older than 12;
chinook: strip its DROP/CREATE DATABASE and ``\\c`` lines — and runs ``psql -v ON_ERROR_STOP=1``
of an installed client through ``pgshift.process``.

A sample that is not packaged (``world``: no license is stated) loads from a corpus directory
given by the caller (the shared test corpus).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from pgshift.catalog import samples as samples_sql
from pgshift.catalog.session import resolve, server_version, session
from pgshift.conninfo import Endpoint, ResolvedEndpoint
from pgshift.errors import StepFailed, ToolchainError, UsageError
from pgshift.events import EventSink, Level, Message, StepFinished, StepProgress, StepStarted, discard
from pgshift.lab.server import LabServer
from pgshift.process import Command, run
from pgshift.toolchain.discover import Discovery, Installation, discover
from pgshift.version import PgVersion

Adjust = Callable[[bytes, PgVersion], bytes]


def _keep_all(data: bytes, _server: PgVersion) -> bytes:
    return data


def _drop_lines(data: bytes, predicate: Callable[[bytes], bool]) -> bytes:
    return b"".join(line for line in data.splitlines(keepends=True) if not predicate(line.rstrip(b"\r\n")))


def _pagila_schema(data: bytes, server: PgVersion) -> bytes:
    # The schema is a pg_dump of 12: table access methods (12) are unknown to 11.
    if server.major >= 12:
        return data
    return _drop_lines(data, lambda line: line.startswith(b"SET default_table_access_method"))


_CHINOOK_DB_LINES = {b"DROP DATABASE IF EXISTS chinook;", b"CREATE DATABASE chinook;", b"\\c chinook;"}


def _chinook(data: bytes, _server: PgVersion) -> bytes:
    # The upstream script drops, creates and \c's into its own database: load into ours instead.
    return _drop_lines(data, lambda line: line in _CHINOOK_DB_LINES)


@dataclass(frozen=True)
class SampleFile:
    name: str
    adjust: Adjust = _keep_all
    single_transaction: bool = False


@dataclass(frozen=True)
class Sample:
    """A sample database: its files, where it came from, its license, what it holds."""

    name: str
    files: tuple[SampleFile, ...]
    summary: str
    upstream: str
    license: str
    total_rows: int
    min_major: int = 10  # the oldest server it loads on
    packaged: bool = True
    needs_postgres_role: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "files": [f.name for f in self.files],
            "summary": self.summary,
            "upstream": self.upstream,
            "license": self.license,
            "total_rows": self.total_rows,
            "min_major": self.min_major,
            "packaged": self.packaged,
        }


SAMPLES: dict[str, Sample] = {
    s.name: s
    for s in (
        Sample(
            "pagila",
            (SampleFile("pagila-schema.sql", _pagila_schema), SampleFile("pagila-data.sql")),
            "DVD rental store: 22 tables incl. a partitioned table, views, an unpopulated matview, enum, "
            "domains, functions, triggers, full-text search",
            "devrimgunduz/pagila @ 5ba5a57aeb159f75f02aca2432d3c262186d13d3",
            "MIT-style (LICENSE.txt, Devrim Gündüz)",
            49_636,
            # 10 allows no primary key on a partitioned table (payment has one).
            min_major=11,
            needs_postgres_role=True,
        ),
        Sample(
            "chinook",
            (SampleFile("Chinook_PostgreSql.sql", _chinook, single_transaction=True),),
            "digital music store: 11 tables, keys, 15k single-row INSERTs",
            "lerocha/chinook-database @ 7f67772503d71ba90f19283c38e93923addb43fa (Chinook 1.4.5)",
            "MIT (LICENSE.md)",
            15_607,
        ),
        Sample(
            "northwind",
            (SampleFile("northwind.sql", single_transaction=True),),
            "Microsoft's trading company: 14 tables, bytea pictures, 2 empty tables",
            "pthom/northwind_psql @ cd0ef28d66369fbe177778e604e4be0f153c9e5c",
            "Ms-PL (LICENSE)",
            3_362,
        ),
        Sample(
            "iso3166",
            (SampleFile("iso-3166.sql"),),
            "countries and subdivisions: 2 tables, COPY with a custom delimiter",
            "morenoh149/postgresDBSamples @ 2bdc9539762092912655e1b82b7433d3151389dc (pgFoundry iso-3166)",
            "BSD 3-clause (per README)",
            4_237,
        ),
        Sample(
            "world",
            (SampleFile("world.sql"),),
            "MySQL's world example (LATIN1 file): 3 tables",
            "morenoh149/postgresDBSamples @ 2bdc9539762092912655e1b82b7433d3151389dc (pgFoundry world-1.0)",
            "no license stated: not packaged",
            5_302,
            packaged=False,
        ),
    )
}
DEFAULT_SAMPLE = "pagila"


def packaged_names() -> list[str]:
    return [name for name, s in SAMPLES.items() if s.packaged]


def sample(name: str) -> Sample:
    try:
        return SAMPLES[name]
    except KeyError:
        raise UsageError(
            f"no sample database named {name!r}",
            hint=f"choose one of: {', '.join(packaged_names())}",
        ) from None


def packaged_dir() -> Traversable:
    """The packaged corpus (``pgshift/data/corpus``)."""
    return resources.files("pgshift") / "data" / "corpus"


@dataclass(frozen=True)
class LoadResult:
    sample: str
    dbname: str
    server_version: str
    psql: str
    seconds: float
    created: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "sample": self.sample,
            "dbname": self.dbname,
            "server_version": self.server_version,
            "psql": self.psql,
            "seconds": round(self.seconds, 3),
            "created": self.created,
        }


def choose_psql(server: PgVersion, discovery: Discovery | None = None) -> Installation:
    """psql of the server's major when installed, else the newest installed one."""
    found = discovery if discovery is not None else discover()
    with_psql = [inst for inst in found.installations if inst.has("psql")]
    same = [inst for inst in with_psql if inst.major == server.major]
    if same:
        return same[0]
    if with_psql:
        return max(with_psql, key=lambda inst: inst.version.num)
    raise ToolchainError(
        "loading a sample database needs psql, and no PostgreSQL client is installed",
        hint="install one with 'pgshift toolchain install 18'",
    )


def _endpoint(target: LabServer | Endpoint | ResolvedEndpoint) -> Endpoint | ResolvedEndpoint:
    if isinstance(target, LabServer):
        return target.endpoint("sample server")
    return target


def load(
    target: LabServer | Endpoint | ResolvedEndpoint,
    name: str,
    dbname: str,
    sink: EventSink = discard,
    *,
    create: bool = False,
    corpus_dir: Path | None = None,
    discovery: Discovery | None = None,
) -> LoadResult:
    """Load sample ``name`` into database ``dbname`` (created from template0 with ``create``)."""
    spec = sample(name)
    base: Traversable
    if corpus_dir is not None:
        base = corpus_dir / name
    elif spec.packaged:
        base = packaged_dir() / name
    else:
        raise UsageError(
            f"the {name} sample is not packaged with pgshift ({spec.license})",
            hint="pass the directory of the shared test corpus that holds it",
        )
    missing = [f.name for f in spec.files if not (base / f.name).is_file()]
    if missing:
        raise UsageError(f"the {name} sample's files are missing from {base}: {', '.join(missing)}")
    endpoint = _endpoint(target)
    with session(endpoint) as conn:
        version = server_version(conn)
        if version.major < spec.min_major:
            raise UsageError(
                f"the {name} sample cannot be loaded into PostgreSQL {version.major_label}: "
                f"it needs {spec.min_major} or newer",
                hint=f"use a server of {spec.min_major} or newer, or another sample",
            )
        created = False
        if create:
            if samples_sql.database_exists(conn, dbname):
                raise UsageError(
                    f"database {dbname!r} already exists on the {endpoint.role}",
                    hint="choose another database name, or drop that database first",
                )
            samples_sql.create_empty_database(conn, dbname)
            created = True
    resolved = endpoint if isinstance(endpoint, ResolvedEndpoint) else resolve(endpoint)
    psql = choose_psql(version, discovery)
    step = f"sample:{name}:{dbname}"
    title = f"load sample {name} into {dbname} (PostgreSQL {version})"
    sink(StepStarted(title, step=step, total=len(spec.files), unit="files"))
    started = time.monotonic()

    def on_stderr(line: str) -> None:
        sink(Message(line, level=Level.DEBUG, source="psql"))

    for done, file in enumerate(spec.files, 1):
        data = file.adjust((base / file.name).read_bytes(), version)
        argv = [str(psql.program("psql")), "-X", "-q", "-v", "ON_ERROR_STOP=1"]
        if file.single_transaction:
            argv.append("--single-transaction")
        argv += ["-d", resolved.child_conninfo(dbname), "-f", "-"]
        command = Command(tuple(argv), env=resolved.child_env(), secrets=resolved.secrets)
        try:
            run(command, stdin_data=data, on_stderr=on_stderr, capture_stdout=False)
        except StepFailed as exc:
            sink(StepFinished(title, step=step, ok=False, seconds=time.monotonic() - started))
            hint = None
            if spec.needs_postgres_role and 'role "postgres" does not exist' in (exc.detail or ""):
                hint = f"the {name} sample assigns its objects to a role named postgres: create that role first"
            raise StepFailed(
                f"loading the {name} sample ({file.name}) into {dbname} failed",
                hint=hint,
                detail=exc.detail,
                program="psql",
                returncode=exc.returncode,
            ) from None
        sink(StepProgress(title, step=step, completed=done, total=len(spec.files)))
    seconds = time.monotonic() - started
    sink(StepFinished(title, step=step, seconds=seconds))
    return LoadResult(name, dbname, str(version), f"psql {psql.version} ({psql.bin_dir})", seconds, created)
