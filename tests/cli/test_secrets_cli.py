"""Secrets kept: no password on a child's command line, in a file of the work directory, in any report
format or in any error; work directories 0700 and their files 0600; a password file libpq ignores is
named; TLS with verify-full works, and a wrong CA or host name fails with exit 3 and a hint.

The servers here require passwords over TCP (lab ``password=``); the passwords are given the way
users give them, in the connection strings on pgshift's command line. docs/reliability.md lists these
tests (tests/unit/test_reliability_doc.py keeps its table and this file in step).
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from pgshift.lab import LabServer


def pgshift(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgshift", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def one_line(text: str) -> str:
    return " ".join(text.split())


class CommandLines:
    """Every command line of every process on the machine, sampled from /proc while a run goes on."""

    def __init__(self, *exclude: int) -> None:
        self.exclude = set(exclude)
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit() or int(entry.name) in self.exclude:
                    continue
                with contextlib.suppress(OSError):
                    with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                        raw = f.read()
                    if raw:
                        self.seen.add(raw.replace(b"\0", b" ").decode(errors="replace"))
            self._stop.wait(0.01)

    def __enter__(self) -> CommandLines:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def assert_no_secret(where: str, text: str | bytes, *secrets: str) -> None:
    for secret in secrets:
        needle: str | bytes = secret.encode() if isinstance(text, bytes) else secret
        assert needle not in text, f"a password is in {where}"


def private_tree(root: Path) -> list[str]:
    """What under ``root`` group or others may use (should be nothing)."""
    exposed = []
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            continue
        if mode & 0o077:
            exposed.append(f"{path} {stat.filemode(mode)}")
    return exposed


SOURCE_PASSWORD = "src-Secret-4711"
TARGET_PASSWORD = "tgt-Secret-0815"


@pytest.fixture
def protected(fresh_server: Any) -> tuple[LabServer, LabServer]:
    source = fresh_server(16, password=SOURCE_PASSWORD)
    target = fresh_server(17, password=TARGET_PASSWORD)
    source.execute("CREATE DATABASE hush")
    source.execute(
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 200000) g;"
        "CREATE INDEX t_v ON t (v); CREATE ROLE hush_app LOGIN PASSWORD 'app-Secret-1234';",
        "hush",
    )
    return source, target


def test_a_migrate_shows_no_password_on_any_command_line_file_report_or_error(
    protected: tuple[LabServer, LabServer], tmp_path: Path
) -> None:
    source, target = protected
    secrets = (SOURCE_PASSWORD, TARGET_PASSWORD)
    workdir = tmp_path / "run"
    argv = [sys.executable, "-m", "pgshift", "migrate", source.conninfo(), target.conninfo(), "-d", "hush"]
    argv += ["--workdir", str(workdir), "--jobs", "2", "--json"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # pgshift's own command line holds the passwords (the user put them there); its children's must not.
    with CommandLines(proc.pid, os.getpid()) as lines:
        out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    children = [c for c in lines.seen if str(workdir) in c or "--dbname" in c]
    assert any("pg_dump" in c for c in children) and any("pg_restore" in c for c in children), children
    # A child between fork and exec still shows pgshift's own command line: that is not the child's.
    own = " ".join(argv) + " "
    for cmdline in lines.seen - {own}:
        assert_no_secret(f"the command line {cmdline[:200]!r}", cmdline, *secrets)
    assert_no_secret("migrate's JSON report", out, *secrets)
    assert_no_secret("migrate's stderr", err, *secrets)
    # Every file the run wrote: journal, log, lock, dumps, scripts.
    files = [p for p in workdir.rglob("*") if p.is_file()]
    assert len(files) > 3, files
    for path in files:
        assert_no_secret(str(path), path.read_bytes(), *secrets)
    assert not private_tree(workdir), private_tree(workdir)
    # The other report formats of the run, and of check and verify after it.
    md = pgshift("migrate", "--resume", str(workdir), "--format", "markdown")
    assert_no_secret("migrate's Markdown report", md.stdout + md.stderr, *secrets)
    for command in ("check", "verify"):
        for fmt in ("json", "markdown", "html"):
            report = tmp_path / f"{command}.{fmt}"
            done = pgshift(
                command, source.conninfo(), target.conninfo(), "-d", "hush", "--format", fmt, "-o", str(report)
            )
            assert done.returncode in (0, 1, 2), done.stderr
            assert report.stat().st_size > 0
            assert_no_secret(f"{command} --format {fmt}", report.read_text() + done.stdout + done.stderr, *secrets)


@pytest.mark.parametrize("wrong", ["source", "target"])
def test_a_wrong_password_fails_with_exit_3_and_shows_neither_password(
    protected: tuple[LabServer, LabServer], tmp_path: Path, wrong: str
) -> None:
    source, target = protected
    given = "Wrong-Secret-99"
    src = source.conninfo(password=given) if wrong == "source" else source.conninfo()
    tgt = target.conninfo(password=given) if wrong == "target" else target.conninfo()
    for command in (("migrate", "--workdir", str(tmp_path / "run")), ("check",), ("verify",)):
        args = [command[0], src, tgt, "-d", "hush", *command[1:]] if command[0] != "check" else ["check", src, tgt]
        done = pgshift(*args, timeout=120)
        text = one_line(done.stderr)
        assert done.returncode == 3, done.stderr
        assert f"cannot connect to the {wrong}" in text and "password authentication failed" in text, text
        assert "hint: check the user and password" in text
        assert_no_secret(f"{command[0]}'s error", done.stdout + done.stderr, given, SOURCE_PASSWORD, TARGET_PASSWORD)
    assert not (tmp_path / "run").exists()  # refused before anything was made


def test_a_password_file_readable_by_others_is_named_with_the_fix(servers: Any, tmp_path: Path) -> None:
    server = servers.get(17, password=TARGET_PASSWORD)
    other = servers.get(16)
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{server.port}:*:postgres:{TARGET_PASSWORD}\n")
    passfile.chmod(0o644)
    env = {**os.environ, "PGPASSFILE": str(passfile)}
    env.pop("PGPASSWORD", None)
    without_password = server.conninfo(with_password=False)
    done = pgshift("verify", without_password, other.conninfo(), "--no-rows", env=env, timeout=120)
    text = one_line(done.stderr)
    assert done.returncode == 3, done.stderr
    assert f"hint: the password file {passfile} may be read by others (mode 0644), so libpq ignores it" in text, text
    assert f"chmod 600 {passfile}" in text
    assert_no_secret("the error", done.stdout + done.stderr, TARGET_PASSWORD)
    passfile.chmod(0o600)  # the fix the hint names works
    fixed = pgshift("verify", without_password, other.conninfo(), "--no-rows", "--no-globals", env=env, timeout=120)
    assert fixed.returncode in (0, 1), fixed.stderr
    assert "cannot connect" not in fixed.stderr


# --- TLS -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA that signed nothing the lab servers present."""
    where = tmp_path_factory.mktemp("other-ca")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=some other CA",
         "-keyout", str(where / "ca.key"), "-out", str(where / "ca.crt")],
        capture_output=True, check=True,
    )  # fmt: skip
    return where / "ca.crt"


def test_verify_full_against_the_lab_ca_works(servers: Any) -> None:
    tls = servers.get(17, tls=True)
    assert "sslmode=verify-full" in tls.conninfo() and "sslrootcert=" in tls.conninfo()
    done = pgshift("verify", servers.get(16).conninfo(), tls.conninfo(), "--no-globals", "-d", "postgres")
    assert done.returncode in (0, 1), done.stderr
    assert "cannot connect" not in done.stderr
    with tls.connect() as conn:  # the session pgshift would get is encrypted and checked
        assert conn.pgconn.ssl_in_use


@pytest.mark.parametrize(
    ("case", "needles"),
    [
        (
            "wrong CA",
            ("certificate verify failed", "hint: the server's certificate is not signed by a CA in sslrootcert="),
        ),
        (
            "wrong host name",
            (
                'does not match host name "wrong.example"',
                "hint: the server's certificate is not issued for the host name given",
            ),
        ),
    ],
)
def test_a_wrong_ca_or_host_name_fails_with_exit_3_and_a_hint(
    servers: Any, other_ca: Path, case: str, needles: tuple[str, ...]
) -> None:
    tls = servers.get(17, tls=True)
    bad = (
        tls.conninfo(sslrootcert=str(other_ca))
        if case == "wrong CA"
        else tls.conninfo(host="wrong.example", hostaddr="127.0.0.1")
    )
    for command in ("check", "verify"):
        args = (command, bad) if command == "check" else (command, bad, servers.get(16).conninfo())
        done = pgshift(*args, timeout=120)
        text = one_line(done.stderr)
        assert done.returncode == 3, done.stderr
        assert "cannot connect to the source" in text
        for needle in needles:
            assert needle in text, text
        assert "Traceback" not in done.stderr
