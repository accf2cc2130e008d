"""Throwaway PostgreSQL servers: started on 127.0.0.1, always stopped and deleted.

Each server lives in its own directory under ``paths.lab_root()`` (data, socket, log, TLS files).
When pgshift runs as root the server runs as an unprivileged user (``PGSHIFT_LAB_USER``, else
``postgres``, else ``nobody``): initdb and postgres refuse root. The postmaster is started
directly (not through pg_ctl) and armed to receive SIGQUIT when pgshift dies, so even a killed
test run leaves no server behind; directories of dead runs are removed by the next start.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from pgshift import paths
from pgshift.conninfo import Endpoint
from pgshift.errors import PgshiftError, StepFailed, ToolchainError
from pgshift.events import EventSink, discard
from pgshift.lab.binaries import server_binaries
from pgshift.process import Command, base_env, run, spawn
from pgshift.toolchain.discover import SERVER_PROGRAMS, Installation, inspect_dir
from pgshift.version import PgVersion

# Throwaway servers trade durability for speed.
FAST_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "60",
    "shared_buffers": "32MB",
    "max_wal_size": "1GB",
    "log_min_messages": "warning",
}


def lab_user() -> str | None:
    """The user servers run as: None when pgshift is not root."""
    if os.geteuid() != 0:
        return None
    for name in (os.environ.get("PGSHIFT_LAB_USER"), "postgres", "nobody"):
        if not name:
            continue
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise ToolchainError(
        "no unprivileged user to run lab servers as", hint="create one (useradd postgres) or set PGSHIFT_LAB_USER"
    )


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path


@dataclass
class LabServer:
    """A running throwaway server."""

    version: PgVersion
    bin_dir: Path
    root: Path
    port: int
    host: str = "127.0.0.1"
    superuser: str = "postgres"
    password: str | None = field(default=None, repr=False)
    tls: TlsFiles | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def major(self) -> int:
        return self.version.major

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def conninfo(self, dbname: str = "postgres", *, with_password: bool = True, **extra: str) -> str:
        params: dict[str, Any] = {"host": self.host, "port": self.port, "user": self.superuser, "dbname": dbname}
        if self.password and with_password:
            params["password"] = self.password
        if self.tls is not None:
            params.setdefault("sslmode", "verify-full")
            params.setdefault("sslrootcert", str(self.tls.ca_cert))
        params.update(extra)
        return make_conninfo("", **params)

    def uri(self, dbname: str = "postgres") -> str:
        """A URI without password, as a user would type it."""
        return f"postgresql://{self.superuser}@{self.host}:{self.port}/{dbname}"

    def endpoint(self, role: str = "server", dbname: str = "postgres") -> Endpoint:
        return Endpoint.parse(self.conninfo(dbname), role)

    def connect(self, dbname: str = "postgres", **kwargs: Any) -> psycopg.Connection[Any]:
        kwargs.setdefault("autocommit", True)
        return psycopg.connect(self.conninfo(dbname), **kwargs)

    def execute(self, sql: str, dbname: str = "postgres") -> None:
        """Run SQL as the superuser: one simple query (statements run in one implicit transaction)."""
        with self.connect(dbname) as conn:
            conn.execute(sql.encode())  # bytes: no placeholder parsing, multi-statement

    def psql_env(self) -> dict[str, str]:
        env = base_env()
        if self.password:
            env["PGPASSWORD"] = self.password
        return env

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Stop (immediate shutdown) and delete everything."""
        _live.discard(self)
        proc = self.process
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGQUIT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def detach(self, timeout: float = 60.0) -> None:
        """Leave the server running after pgshift exits (``pgshift rehearse --keep``).

        The postmaster was started to die with pgshift; it is shut down (fast, keeping its data)
        and started again on the same port without that tie. It is no longer stopped at exit, and
        its directory names the postmaster as owner, so the next start removes it only once the
        server is stopped.
        """
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # fast shutdown: the data stays
            proc.wait(timeout=timeout)
        user = lab_user()
        proc = spawn(
            Command((str(self.bin_dir / "postgres"), "-D", str(self.datadir)), env=base_env(), run_as=user),
            log_path=self.log_path,
            die_with_parent=None,
        )
        self.process = proc
        _wait_ready(self, timeout)
        (self.root / "owner.pid").write_text(str(proc.pid))
        _live.discard(self)

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other


# --- lifecycle guards ------------------------------------------------------------------------------

_live: set[LabServer] = set()
_guard_lock = threading.Lock()
_guards_installed = False


def stop_all() -> None:
    for server in list(_live):
        with contextlib.suppress(Exception):
            server.stop()


def _on_sigterm(signum: int, _frame: object) -> None:
    # Turn SIGTERM into an exception so that context managers and finally blocks stop servers.
    raise SystemExit(128 + signum)


def _install_guards() -> None:
    global _guards_installed
    with _guard_lock:
        if _guards_installed:
            return
        _guards_installed = True
        atexit.register(stop_all)
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) in (
            signal.SIG_DFL,
            None,
        ):
            signal.signal(signal.SIGTERM, _on_sigterm)


def _remove_stale(root: Path) -> None:
    """Delete directories of lab servers whose owning process is gone."""
    if not root.is_dir():
        return
    for entry in root.iterdir():
        owner_file = entry / "owner.pid"
        try:
            pid = int(owner_file.read_text().strip())
        except (OSError, ValueError):
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(entry, ignore_errors=True)
        except PermissionError:
            continue


# --- starting ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _chown_tree(path: Path, user: str | None) -> None:
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, entry.pw_uid, entry.pw_gid)
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def _make_tls(directory: Path) -> TlsFiles:
    """A CA and a server certificate for 127.0.0.1/localhost, made with openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ToolchainError("TLS lab servers need the openssl program", hint="install openssl")
    directory.mkdir(mode=0o700)
    ca_key, ca_cert = directory / "ca.key", directory / "ca.crt"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def ossl(*args: str) -> None:
        run(Command((openssl, *args)), timeout=60)

    ossl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=pgshift lab CA",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca_cert),
    )
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(csr))
    ossl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca_cert),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        str(ext),
        "-out",
        str(cert),
    )
    key.chmod(0o600)
    return TlsFiles(ca_cert, cert, key)


def _wait_ready(server: LabServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        assert server.process is not None
        if server.process.poll() is not None:
            raise StepFailed(
                f"PostgreSQL {server.version} lab server exited during start",
                detail=_log_tail(server.log_path),
            )
        try:
            with psycopg.connect(server.conninfo(), connect_timeout=2):
                return
        except psycopg.OperationalError as exc:
            last_error = str(exc)
            time.sleep(0.1)
    raise StepFailed(
        f"PostgreSQL {server.version} lab server did not accept connections within {timeout:g} s",
        detail=last_error + "\n" + _log_tail(server.log_path),
    )


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def start(
    major: int,
    *,
    encoding: str = "UTF8",
    locale: str | None = None,
    settings: Mapping[str, str] | None = None,
    tls: bool = False,
    password: str | None = None,
    initdb_args: tuple[str, ...] = (),
    sink: EventSink = discard,
    start_timeout: float = 60.0,
    bin_dir: Path | None = None,
) -> LabServer:
    """Start a throwaway server of ``major``; the caller must ``stop()`` it (or use ``lab_server``).

    ``password`` turns on scram-sha-256 for TCP connections (the socket stays trust). ``bin_dir``
    runs another installation of that major (a distribution's build, with ICU for example)
    instead of pgshift's cached binaries.
    """
    if bin_dir is None:
        installation = server_binaries(major, sink=sink)
    else:
        found = inspect_dir(bin_dir, "lab")
        if not isinstance(found, Installation) or found.major != major or not found.has(*SERVER_PROGRAMS):
            raise ToolchainError(f"{bin_dir} holds no PostgreSQL {major} server (initdb, pg_ctl, postgres)")
        installation = found
    _install_guards()
    root_parent = paths.lab_root()
    root_parent.mkdir(parents=True, exist_ok=True)
    root_parent.chmod(0o755)
    _remove_stale(root_parent)
    root = Path(tempfile.mkdtemp(prefix=f"pg{major}-", dir=root_parent))
    (root / "owner.pid").write_text(str(os.getpid()))
    user = lab_user()
    try:
        return _start_in(
            root, installation, user, encoding, locale, settings or {}, tls, password, initdb_args, start_timeout
        )
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def _start_in(
    root: Path,
    installation: Any,
    user: str | None,
    encoding: str,
    locale: str | None,
    settings: Mapping[str, str],
    tls: bool,
    password: str | None,
    initdb_args: tuple[str, ...],
    start_timeout: float,
) -> LabServer:
    bin_dir: Path = installation.bin_dir
    if locale is None:
        # C.UTF-8 exists on every machine; other encodings need a locale that accepts them.
        locale = "C.UTF-8" if encoding.upper().replace("-", "") in ("UTF8", "UNICODE") else "C"
    (root / "sock").mkdir()
    tls_files = _make_tls(root / "tls") if tls else None
    argv = [
        str(bin_dir / "initdb"),
        "-D",
        str(root / "data"),
        "-U",
        "postgres",
        "-E",
        encoding,
        f"--locale={locale}",
        "--auth-local=trust",
        "--no-sync",
    ]
    if password:
        pwfile = root / "pwfile"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        argv += ["--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
    else:
        argv += ["--auth-host=trust"]
    argv += list(initdb_args)
    _chown_tree(root, user)
    run(Command(tuple(argv), env=base_env(), run_as=user), timeout=300)
    if password:
        (root / "pwfile").unlink()

    conf: dict[str, str] = {
        **FAST_SETTINGS,
        "listen_addresses": "'127.0.0.1'",
        "unix_socket_directories": f"'{root / 'sock'}'",
    }
    if password:
        conf["password_encryption"] = "'scram-sha-256'"
    if tls_files is not None:
        conf.update(
            ssl="on",
            ssl_cert_file=f"'{tls_files.server_cert}'",
            ssl_key_file=f"'{tls_files.server_key}'",
            ssl_ca_file=f"'{tls_files.ca_cert}'",
        )
    for key, value in settings.items():
        conf[key] = value if value.startswith("'") or value.replace(".", "").isdigit() else f"'{value}'"
    version = installation.version
    last_error: PgshiftError | None = None
    for _attempt in range(5):
        port = _free_port()
        lines = [f"{k} = {v}" for k, v in {**conf, "port": str(port)}.items()]
        (root / "data" / "postgresql.auto.conf").write_text("\n".join(lines) + "\n")
        _chown_tree(root, user)
        log = root / "server.log"
        proc = spawn(
            Command((str(bin_dir / "postgres"), "-D", str(root / "data")), env=base_env(), run_as=user), log_path=log
        )
        server = LabServer(
            version=version, bin_dir=bin_dir, root=root, port=port, password=password, tls=tls_files, process=proc
        )
        _live.add(server)
        try:
            _wait_ready(server, start_timeout)
            return server
        except StepFailed as exc:
            _live.discard(server)
            if proc.poll() is None:
                proc.send_signal(signal.SIGQUIT)
                proc.wait()
            if "could not bind" in (exc.detail or "") or "already in use" in (exc.detail or ""):
                last_error = exc
                continue
            raise
    assert last_error is not None
    raise last_error


@contextlib.contextmanager
def lab_server(major: int, **kwargs: Any) -> Iterator[LabServer]:
    """A server for the duration of a ``with`` block."""
    server = start(major, **kwargs)
    try:
        yield server
    finally:
        server.stop()


def random_password() -> str:
    return secrets.token_urlsafe(18)
