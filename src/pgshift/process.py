"""The one place that runs child programs.

Children start in their own session (process group) so that Ctrl-C reaches pgshift alone and
pgshift then stops the whole group; their stderr is streamed line by line to a callback, decoded
with ``errors="replace"`` (a LATIN1 database produces non-UTF-8 messages), with every known secret
redacted. Commands are given their environment explicitly: the caller builds it (see
``conninfo.Endpoint.child_env``), nothing is inherited by accident.

Programs inside a Docker image run through ``run_in_container`` here too, with the same callbacks.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import shlex
import signal
import subprocess
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pgshift.errors import Interrupted, StepFailed, ToolchainError

LineCallback = Callable[[str], None]

# Variables a child may inherit from pgshift's own environment. Everything else, notably every
# PG* variable, is dropped: libpq would apply the target's PGHOST to the source's pg_dump.
_INHERITED = ("PATH", "HOME", "TMPDIR", "TZ", "USER", "LOGNAME", "SYSTEMROOT", "LD_LIBRARY_PATH")

_CONNINFO_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_URI_PASSWORD = re.compile(r"(postgres(?:ql)?://[^:/@\s]*:)([^@\s]*)(@)", re.IGNORECASE)
REDACTED = "********"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Hide passwords: known secret values, ``password=…`` pairs and ``user:pass@`` in URIs."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    text = _CONNINFO_PASSWORD.sub(lambda m: m.group(1) + REDACTED, text)
    return _URI_PASSWORD.sub(lambda m: m.group(1) + REDACTED + m.group(3), text)


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A clean environment for a child: a few neutral variables, C messages, then ``extra``."""
    env = {k: v for k, v in os.environ.items() if k in _INHERITED}
    # Children's messages must be matchable ("does not exist", "permission denied").
    env["LC_ALL"] = "C"
    env["LANG"] = "C"
    if extra:
        env.update(extra)
    return env


@dataclass(frozen=True)
class Command:
    """A program to run: argv, full environment, and what is secret in them."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=base_env)
    cwd: str | None = None
    secrets: tuple[str, ...] = ()
    run_as: str | None = None  # a user name: only when pgshift runs as root

    @property
    def program(self) -> str:
        return Path(self.argv[0]).name

    def display(self) -> str:
        """The command as a log line: quoted for a shell, secrets redacted."""
        return redact(shlex.join(self.argv), self.secrets)


@dataclass(frozen=True)
class Completed:
    command: Command
    returncode: int
    stdout: str
    stderr_tail: tuple[str, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


# Process groups of running children, so that a signal handler or atexit hook can stop them.
_running: set[int] = set()
_running_lock = threading.Lock()
# Set (under _running_lock) while ``stopping_children`` stops everything: a worker thread that had
# passed its own cancel check a moment before must not start a child nobody will stop (that child
# ran to its end and its step was journaled done after Ctrl-C).
_refusing = False


def _register(pid: int) -> None:
    """Record a started child; under ``stopping_children`` stop it at once instead."""
    with _running_lock:
        if not _refusing:
            _running.add(pid)
            return
    terminate_group(pid, grace=1.0)
    raise Interrupted("interrupted before the program could start its work")


def running_groups() -> set[int]:
    with _running_lock:
        return set(_running)


def terminate_group(pgid: int, *, grace: float = 5.0) -> None:
    """SIGTERM a child's whole process group, then SIGKILL what is left after ``grace`` seconds."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def terminate_all() -> None:
    """Stop every running child: local process groups, then client containers (``run_in_container``)."""
    for pgid in running_groups():
        terminate_group(pgid)
    _kill_containers()


@contextlib.contextmanager
def stopping_children() -> Iterator[None]:
    """Stop every running child, and any a worker starts before the block ends (wait for them in it)."""
    global _refusing
    with _running_lock:
        _refusing = True
    try:
        terminate_all()
        yield
    finally:
        with _running_lock:
            _refusing = False


# Ids of client containers being waited for, so that terminate_all (called from the main thread
# on Ctrl-C/SIGTERM while workers wait) can stop them; their waits then return at once.
_containers: set[str] = set()


def _kill_containers() -> None:
    with _running_lock:
        ids = list(_containers)
    if not ids:
        return
    try:
        import docker

        api = docker.from_env(timeout=30).api  # a client of its own: the workers' are busy waiting
    except Exception:  # best effort while stopping
        return
    for container_id in ids:
        with contextlib.suppress(Exception):
            api.kill(container_id)


class _Pump:
    """Reads one output stream of a child to its end, line by line, whatever its callback does.

    A callback that raises (the log's disk is full) must not end the reading: a child whose pipe
    nobody drains blocks on its next write, and pgshift would wait for it for ever. The first
    failure is kept for ``run`` to raise once the child has ended, ``on_failure`` stops the child,
    and the rest of the stream is still read (into the tail only).
    """

    def __init__(
        self,
        stream: IO[bytes],
        tail: deque[str],
        secrets: tuple[str, ...],
        on_line: LineCallback | None,
        on_failure: Callable[[], None],
    ) -> None:
        self.stream = stream
        self.tail = tail
        self.secrets = secrets
        self.on_line = on_line
        self.on_failure = on_failure
        self.error: BaseException | None = None

    def __call__(self) -> None:
        try:
            for raw in iter(self.stream.readline, b""):
                line = redact(raw.decode("utf-8", errors="replace").rstrip("\r\n"), self.secrets)
                self.tail.append(line)
                if self.on_line is not None and self.error is None:
                    try:
                        self.on_line(line)
                    except BaseException as exc:  # kept, raised by run() in its own thread
                        self.error = exc
                        self.on_failure()
        finally:
            self.stream.close()


def run(
    command: Command,
    *,
    on_stderr: LineCallback | None = None,
    on_stdout: LineCallback | None = None,
    stdout_path: Path | None = None,
    capture_stdout: bool = True,
    stdin_data: bytes | None = None,
    timeout: float | None = None,
    check: bool = True,
    tail_lines: int = 40,
) -> Completed:
    """Run a command to its end.

    stderr is streamed to ``on_stderr`` and its last ``tail_lines`` lines are kept; stdout is
    captured (default), streamed to ``on_stdout``, written to ``stdout_path`` or dropped. With
    ``check`` a non-zero exit raises ``StepFailed`` carrying the stderr tail. A KeyboardInterrupt
    stops the child's whole process group before it propagates as ``Interrupted``.
    """
    started = time.monotonic()
    out_file: IO[bytes] | None = None
    if stdout_path is not None:
        out_file = open(stdout_path, "wb")  # noqa: SIM115 - closed in finally
        os.chmod(stdout_path, 0o600)
    stdout_target: Any
    if out_file is not None:
        stdout_target = out_file
    elif capture_stdout or on_stdout is not None:
        stdout_target = subprocess.PIPE
    else:
        stdout_target = subprocess.DEVNULL
    try:
        with _signals_held():
            proc = subprocess.Popen(
                list(command.argv),
                env=dict(command.env),
                cwd=command.cwd,
                stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
                stdout=stdout_target,
                stderr=subprocess.PIPE,
                start_new_session=True,
                user=command.run_as,
                preexec_fn=_child_setup(signal.SIGTERM),
            )
            try:
                _register(proc.pid)
            except Interrupted:
                proc.communicate()  # reaps it and closes its pipes
                if out_file is not None:
                    out_file.close()
                raise
    except FileNotFoundError as exc:
        if out_file is not None:
            out_file.close()
        raise ToolchainError(
            f"program not found: {command.argv[0]}",
            hint="check the installation (pgshift toolchain list) or pass --pg-bin DIR",
        ) from exc
    except PermissionError as exc:
        if out_file is not None:
            out_file.close()
        raise ToolchainError(
            f"program cannot be run: {command.argv[0]} ({exc.strerror})",
            hint="check the file's permissions, or pass another --pg-bin DIR",
        ) from exc
    stderr_tail: deque[str] = deque(maxlen=tail_lines)
    stdout_chunks: list[str] = []
    threads: list[threading.Thread] = []
    pumps: list[_Pump] = []

    def _stop_child() -> None:
        # In a thread of its own: the pump goes on draining while the child gets its grace period.
        threading.Thread(target=terminate_group, args=(proc.pid,), daemon=True).start()

    assert proc.stderr is not None
    pumps.append(_Pump(proc.stderr, stderr_tail, command.secrets, on_stderr, _stop_child))
    if proc.stdout is not None and on_stdout is not None:
        pumps.append(_Pump(proc.stdout, deque(maxlen=1), command.secrets, on_stdout, _stop_child))
    threads.extend(threading.Thread(target=pump, daemon=True) for pump in pumps)
    if proc.stdout is not None and on_stdout is None:

        def _collect(stream: IO[bytes] = proc.stdout) -> None:
            stdout_chunks.append(stream.read().decode("utf-8", errors="replace"))
            stream.close()

        threads.append(threading.Thread(target=_collect, daemon=True))
    for thread in threads:
        thread.start()
    try:
        if stdin_data is not None and proc.stdin is not None:
            try:
                proc.stdin.write(stdin_data)
                proc.stdin.close()
            except BrokenPipeError:
                pass
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            terminate_group(proc.pid)
            proc.wait()
            raise StepFailed(
                f"{command.program} did not finish within {timeout:g} s",
                program=command.program,
                detail="\n".join(stderr_tail),
            ) from None
        for thread in threads:
            thread.join()
    except KeyboardInterrupt:
        terminate_group(proc.pid)
        proc.wait()
        raise Interrupted(f"interrupted while {command.program} was running") from None
    finally:
        with _running_lock:
            _running.discard(proc.pid)
        if out_file is not None:
            out_file.close()
    for pump in pumps:
        if pump.error is not None:
            # The child was stopped because its output could not be handled: that is the cause.
            raise pump.error
    completed = Completed(
        command=command,
        returncode=returncode,
        stdout=redact("".join(stdout_chunks), command.secrets),
        stderr_tail=tuple(stderr_tail),
        seconds=time.monotonic() - started,
    )
    if check and returncode != 0:
        raise StepFailed(
            f"{command.program} {how_it_ended(returncode)}",
            program=command.program,
            returncode=returncode,
            detail="\n".join(stderr_tail),
        )
    return completed


class OutputStream:
    """A running child whose stdout is read in large chunks by the caller (``output_stream``)."""

    def __init__(self, proc: subprocess.Popen[bytes], command: Command, tail: deque[str]) -> None:
        self.proc = proc
        self.command = command
        self.tail = tail

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            data = os.read(fd, size)
            if not data:
                return
            yield data

    def stop(self) -> None:
        """Stop the child now (another worker failed, Ctrl-C): its reader then sees the end."""
        terminate_group(self.proc.pid, grace=1.0)

    def check_ended(self) -> None:
        """Once its output has ended: wait for the child, and raise ``StepFailed`` unless it exited 0
        — before the caller takes what it read for complete (a COPY it feeds must fail, not end)."""
        returncode = self.proc.wait()
        if returncode != 0:
            raise _ended_badly(self.command, returncode, self.tail)


def _ended_badly(command: Command, returncode: int, tail: deque[str]) -> StepFailed:
    return StepFailed(
        f"{command.program} {how_it_ended(returncode)}",
        program=command.program,
        returncode=returncode,
        detail="\n".join(tail),
    )


@contextlib.contextmanager
def output_stream(command: Command, *, on_stderr: LineCallback | None = None) -> Iterator[OutputStream]:
    """Run ``command`` with its stdout for the caller to read (``OutputStream.chunks``), at C speed
    and without a line-by-line Python loop: stream mode's ``COPY … TO STDOUT`` goes through psql.

    Leaving the block waits for the child; an exit other than 0 raises ``StepFailed`` (a reader
    that saw the data end must not take it for complete). Leaving by an exception stops it.
    """
    try:
        proc = subprocess.Popen(
            list(command.argv),
            env=dict(command.env),
            cwd=command.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_child_setup(signal.SIGTERM),
        )
    except OSError as exc:
        raise ToolchainError(
            f"program cannot be run: {command.argv[0]} ({exc.strerror})",
            hint="check the installation (pgshift toolchain list) or pass --pg-bin DIR",
        ) from exc
    try:
        _register(proc.pid)
    except Interrupted:
        proc.communicate()
        raise
    tail: deque[str] = deque(maxlen=40)
    assert proc.stderr is not None
    pump = _Pump(proc.stderr, tail, command.secrets, on_stderr, lambda: terminate_group(proc.pid, grace=1.0))
    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    stream = OutputStream(proc, command, tail)
    try:
        yield stream
        returncode = proc.wait()
        reader.join()
    except BaseException:
        terminate_group(proc.pid, grace=1.0)
        proc.wait()
        reader.join(timeout=5)
        raise
    finally:
        with _running_lock:
            _running.discard(proc.pid)
        if proc.stdout is not None:
            proc.stdout.close()
    if pump.error is not None:
        raise pump.error
    if returncode != 0:
        raise _ended_badly(command, returncode, tail)


def how_it_ended(returncode: int) -> str:
    """'was killed by signal 9 (SIGKILL)' for a child a signal ended, else 'failed with exit code N'."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"was killed by signal {-returncode} ({name})"
    return f"failed with exit code {returncode}"


def output_of(argv: Sequence[str], *, timeout: float = 20.0) -> str:
    """stdout of a short helper command (``pg_dump --version``); raises StepFailed/ToolchainError."""
    return run(Command(tuple(argv)), timeout=timeout).stdout


# --- Docker -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerCommand:
    """A program to run inside a Docker image, with host networking."""

    image: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    mounts: Mapping[str, str] = field(default_factory=dict)  # host path -> container path
    secrets: tuple[str, ...] = ()
    user: str | None = None

    def display(self) -> str:
        return redact(f"docker run --network host {self.image} " + shlex.join(self.argv), self.secrets)


def docker_client() -> Any:
    """A client for the local Docker daemon, or ToolchainError naming how to start one."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as exc:  # pragma: no cover - docker is a declared dependency
        raise ToolchainError("the docker Python package is not installed") from exc
    client = None
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except DockerException as exc:
        if client is not None:
            client.close()
        else:
            # from_env failed half-way (its API version probe): its socket is unreachable, so it is
            # collected now, quietly, instead of warning at some later garbage collection.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                gc.collect()
        where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        if "PermissionError" in str(exc) or "Permission denied" in str(exc):
            raise ToolchainError(
                f"the Docker daemon at {where} does not let this user in (permission denied)",
                hint="add the user to the docker group (sudo usermod -aG docker $USER, then log in again), "
                "or install a local client with 'pgshift toolchain install N'",
                detail=str(exc),
            ) from exc
        raise ToolchainError(
            f"no Docker daemon is reachable at {where}",
            hint="start the Docker daemon (or set DOCKER_HOST), or install a local client with "
            "'pgshift toolchain install N'",
            detail=str(exc),
        ) from exc
    return client


def create_container(
    command: ContainerCommand,
    *,
    labels: Mapping[str, str] | None = None,
    name: str | None = None,
    client: Any | None = None,
) -> Any:
    """Create (not start) a container of ``command`` with host networking; returns the docker SDK container.

    An image that is not on this machine is pulled once, like ``docker run`` does; when that fails
    too (no registry here) the ToolchainError names how to build one locally.
    """
    from docker.errors import DockerException, ImageNotFound

    client = client or docker_client()
    volumes = {host: {"bind": inside, "mode": "rw"} for host, inside in command.mounts.items()}
    try:
        try:
            client.images.get(command.image)
        except ImageNotFound:
            try:
                client.images.pull(command.image)
            except DockerException as exc:
                raise ImageNotFound(str(exc)) from exc
        return client.containers.create(
            command.image,
            list(command.argv),
            environment=dict(command.env),
            volumes=volumes,
            network_mode="host",
            user=command.user,
            labels=dict(labels or {}),
            name=name,
        )
    except ImageNotFound as exc:
        raise ToolchainError(
            f"Docker image {command.image} is not on this machine and cannot be pulled",
            hint="build one from pgshift's cache with 'pgshift toolchain docker-image MAJOR', "
            "then pass --docker-image TAG",
            detail=str(exc),
        ) from exc
    except DockerException as exc:
        raise ToolchainError(f"cannot create a container of {command.image}", detail=str(exc)) from exc


def run_in_container(
    command: ContainerCommand,
    *,
    on_stderr: LineCallback | None = None,
    on_container: Callable[[Any], None] | None = None,
    check: bool = True,
    tail_lines: int = 40,
) -> Completed:
    """Run a program in a throwaway container; credentials travel in its environment only.

    ``on_container`` sees the created container before it starts (tests inspect its arguments).
    """
    from docker.errors import DockerException

    started = time.monotonic()
    container = create_container(command)
    try:
        if on_container is not None:
            on_container(container)
        container.start()
    except DockerException as exc:
        with contextlib.suppress(DockerException):
            container.remove(force=True, v=True)
        raise ToolchainError(f"cannot start a container of {command.image}", detail=str(exc)) from exc
    except BaseException:
        with contextlib.suppress(DockerException):
            container.remove(force=True, v=True)
        raise
    stderr_tail: deque[str] = deque(maxlen=tail_lines)
    with _running_lock:
        refused = _refusing
        if not refused:
            _containers.add(container.id)
    if refused:
        with contextlib.suppress(DockerException):
            container.remove(force=True, v=True)
        raise Interrupted(f"interrupted before {command.argv[0]} could start its work in Docker")
    failure: list[BaseException] = []

    def follow() -> None:
        # stderr line by line as the program writes it (pg_dump --verbose, pg_restore): the progress
        # of a containerised client is live, like a local one's. A callback that fails stops the
        # container; the rest is still read, into the tail only.
        pending = b""
        with contextlib.suppress(DockerException):
            for chunk in container.logs(stdout=False, stderr=True, stream=True, follow=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    deliver(raw)
        if pending:
            deliver(pending)

    def deliver(raw: bytes) -> None:
        line = redact(raw.decode("utf-8", errors="replace").rstrip("\r"), command.secrets)
        stderr_tail.append(line)
        if on_stderr is not None and not failure:
            try:
                on_stderr(line)
            except BaseException as exc:  # raised once the container has ended
                failure.append(exc)
                with contextlib.suppress(DockerException):
                    container.kill()

    reader = threading.Thread(target=follow, name="container-stderr", daemon=True)
    reader.start()
    try:
        result = container.wait()
        returncode = int(result.get("StatusCode", 1))
        reader.join(timeout=30)
        stdout = container.logs(stdout=True, stderr=False).decode("utf-8", errors="replace")
        if failure:
            raise failure[0]
    except KeyboardInterrupt:
        container.kill()
        raise Interrupted(f"interrupted while {command.argv[0]} was running in Docker") from None
    finally:
        with _running_lock:
            _containers.discard(container.id)
        with contextlib.suppress(DockerException):
            container.remove(force=True, v=True)
    completed = Completed(
        command=Command(command.argv, env={}, secrets=command.secrets),
        returncode=returncode,
        stdout=redact(stdout, command.secrets),
        stderr_tail=tuple(stderr_tail),
        seconds=time.monotonic() - started,
    )
    if check and returncode != 0:
        raise StepFailed(
            f"{Path(command.argv[0]).name} failed in Docker with exit code {returncode}",
            program=command.argv[0],
            returncode=returncode,
            detail="\n".join(stderr_tail),
        )
    return completed


# --- Long-running children (lab servers) ----------------------------------------------------------

_PR_SET_PDEATHSIG = 1


_libc: Any = None


_HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait while the main thread forks a child.

    Arriving inside the fork's own handlers (logging's at-fork lock release), a KeyboardInterrupt
    left logging's lock held and the next log call hung for ever (a demo stopped during provision
    never ended). The signal is delivered as soon as the child exists; the child unblocks it first
    thing (``_child_setup``).
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # Python runs signal handlers in the main thread only: a worker's fork is not interrupted
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _child_setup(die_with_parent: int | None) -> Callable[[], None]:
    """Between fork and exec: the parent's held signals unblocked, then PR_SET_PDEATHSIG armed."""
    arm = _die_with_parent(die_with_parent) if die_with_parent else None

    def _setup() -> None:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD_SIGNALS)
        if arm is not None:
            arm()

    return _setup


def _die_with_parent(signum: int) -> Callable[[], None] | None:
    """A preexec function that arms PR_SET_PDEATHSIG, or None where the platform has no prctl.

    Linux only: the kernel sends ``signum`` to the child when the thread that started it ends, and so
    when pgshift dies, even by SIGKILL (the OOM killer, ``kill -9``): a killed pgshift leaves no
    pg_dump, pg_restore or server behind to race a later resume. libc is loaded here, in the parent:
    between fork and exec the child may only call it (an import there could deadlock on a lock
    another thread held at the fork). Armed after the switch of user, which would clear it.
    """
    global _libc
    if _libc is None:
        try:
            import ctypes

            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.prctl  # noqa: B018 - fails here, not in the child, where there is no prctl
        except (OSError, AttributeError):
            _libc = False
    if _libc is False:
        return None
    libc = _libc

    def _arm() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)

    return _arm


def spawn(command: Command, *, log_path: Path, die_with_parent: int | None = signal.SIGQUIT) -> subprocess.Popen[bytes]:
    """Start a long-running child (a postmaster) with its output in ``log_path``.

    The child gets its own session; with ``die_with_parent`` it receives that signal when this
    process exits for any reason.
    """
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
    proc: subprocess.Popen[bytes] | None = None
    try:
        with _signals_held():
            proc = subprocess.Popen(
                list(command.argv),
                env=dict(command.env),
                cwd=command.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=command.run_as,
                preexec_fn=_child_setup(die_with_parent),
            )
        return proc
    except KeyboardInterrupt:
        if proc is not None:  # the Ctrl-C held during the start arrived before the caller had the child
            proc.kill()
        raise
    except FileNotFoundError as exc:
        raise ToolchainError(f"program not found: {command.argv[0]}") from exc
    finally:
        log.close()
