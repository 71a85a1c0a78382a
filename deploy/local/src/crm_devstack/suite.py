"""The whole suite on one machine: what `crm-dev up` and the e2e tests both run.

    with Suite(data_dir, port_offset=100) as suite:       # or: async with Suite(...)
        token = suite.token(user="bob", roles=["sales_manager"], data_scope="team")
        httpx.get(f"{suite.gateway_url}/api/v1/customers",
                  headers={"Authorization": f"Bearer {token}"})

Start order: PostgreSQL, NATS, the plain HTTP processes (simulators of external systems, waiting
for their ready path), one database per service, every service's migration, every service
(waiting for its gRPC health check), the gateway (waiting for GET /readyz). `stop()`
goes the other way: gateway, services in reverse order, NATS, PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from crm_devstack.config import HttpServiceSpec, ServiceSpec, SuiteConfig, load_suite, resolve_command
from crm_devstack.keys import AUDIENCE, ISSUER, DevKeys, ensure_keys, issue_token, nats_passwords
from crm_devstack.supervisor import Child, Output, run_to_end
from crmkit.embedded import EmbeddedNats, EmbeddedPostgres, ServerStartError, wait_until
from crmkit.events.permissions import DEV_ADMIN, nats_config

DEFAULT_DATA_DIR = ".crm/dev"
MARKER = ".crm-devstack"
STATE_FILE = "suite.json"


POSTGRES_MAX_CONNECTIONS = 400


class SuiteError(RuntimeError):
    pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def running_launcher(data_dir: str | os.PathLike[str]) -> int | None:
    """The pid of a launcher running the suite on `data_dir`, if any."""
    try:
        state = json.loads((Path(data_dir) / STATE_FILE).read_text())
        pid = int(state["launcher_pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if pid != os.getpid() and _pid_alive(pid) else None


def leftover_servers(data_dir: str | os.PathLike[str]) -> dict[str, int]:
    """The suite's servers still running on `data_dir` (from their pid files), by name."""
    data = Path(data_dir)
    found = {}
    if (pid := EmbeddedPostgres(data / "postgres", 0).running_pid()) is not None:
        found["postgres"] = pid
    if (pid := EmbeddedNats(data / "nats", 0, 0).running_pid()) is not None:
        found["nats"] = pid
    return found


def stop_command(name: str, pid: int) -> str:
    """How to stop a leftover by hand. PostgreSQL: fast shutdown (SIGINT), since a plain SIGTERM
    waits for every client, and its clients may be leftovers too."""
    return f"kill -INT {pid}" if name == "postgres" else f"kill {pid}"


def _leftover_lines(leftovers: dict[str, int]) -> list[str]:
    return [f"{name} (pid {pid}) from an earlier run: stop it with `{stop_command(name, pid)}`"
            for name, pid in leftovers.items()]


def reset(data_dir: str | os.PathLike[str]) -> bool:
    """Deletes the data dir; refuses while anything of the suite runs on it."""
    data = Path(data_dir)
    if not data.exists():
        return False
    if (pid := running_launcher(data)) is not None:
        raise SuiteError(f"the suite is running on {data} (crm-dev pid {pid}); stop it first "
                         f"(Ctrl-C where it runs, or `kill {pid}`)")
    if leftovers := leftover_servers(data):
        raise SuiteError(f"still running on {data}:\n  " + "\n  ".join(_leftover_lines(leftovers)))
    if any(data.iterdir()) and not (data / MARKER).exists():
        raise SuiteError(
            f"{data} does not look like a crm-dev data dir (no {MARKER}); not deleting it")
    shutil.rmtree(data)
    return True


def listening_pid(port: int) -> int | None:
    """The process listening on 127.0.0.1/0.0.0.0 TCP `port`, when this system shows it (Linux's
    /proc, for our own user's processes or as root); None otherwise."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return int(proc.name)
    return None


def command_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def grpc_serving(target: str, timeout: float = 1.0) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=timeout)
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def http_ready(url: str, timeout: float = 1.0) -> bool:
    import httpx

    return httpx.get(url, timeout=timeout).status_code == 200


class Suite:
    def __init__(
        self,
        data_dir: str | os.PathLike[str] = DEFAULT_DATA_DIR,
        port_offset: int = 0,
        *,
        suite_file: str | os.PathLike[str] | None = None,
        config: SuiteConfig | None = None,
        services: Iterable[str] | None = None,
        extra_env: dict[str, str] | None = None,
        output: IO[str] | Output | None = None,
        cwd: str | os.PathLike[str] | None = None,
        log_level: str = "INFO",
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        config = (config or load_suite(suite_file)).shifted(port_offset)
        if services is not None:
            wanted = set(services)
            unknown = wanted - {s.name for s in config.services}
            if unknown:
                raise SuiteError(f"unknown services: {', '.join(sorted(unknown))}")
            config = replace(config, services=tuple(s for s in config.services if s.name in wanted))
        self.config = config
        self.port_offset = port_offset
        self.extra_env = dict(extra_env or {})
        self.output = output if isinstance(output, Output) else Output(output)
        self.cwd = str(cwd) if cwd is not None else None
        self.log_level = log_level
        # Every service keeps a pool of up to 20 connections plus its relay's: nine services need
        # more than PostgreSQL's default of 100 under load (a production server is sized apart).
        self.postgres = EmbeddedPostgres(self.data_dir / "postgres", config.postgres_port,
                                         settings={"max_connections": str(POSTGRES_MAX_CONNECTIONS)},
                                         log_file=self.data_dir / "postgres.log")
        self.nats = EmbeddedNats(self.data_dir / "nats", config.nats_port, config.nats_monitor_port)
        self.keys: DevKeys | None = None
        self.children: dict[str, Child] = {}
        self._started = False

    # addresses ---------------------------------------------------------------------------
    @property
    def gateway_url(self) -> str:
        if self.config.gateway is None:
            raise SuiteError("this suite has no gateway")
        return f"http://127.0.0.1:{self.config.gateway.http_port}"

    @property
    def nats_url(self) -> str:
        """NATS as the development admin (every right): for tests and tools, never a service."""
        password = nats_passwords(self.data_dir)[DEV_ADMIN]
        return self.nats.url.replace("nats://", f"nats://{DEV_ADMIN}:{password}@", 1)

    @property
    def postgres_url(self) -> str:
        """The admin URL (database `postgres`), plain libpq form."""
        return self.postgres.admin_url

    def database_url(self, service: str, *, driver: str | None = "asyncpg") -> str:
        return self.postgres.url(self.service(service).database, driver=driver)

    def service(self, name: str) -> ServiceSpec:
        for spec in self.config.services:
            if spec.name == name:
                return spec
        raise SuiteError(f"no service {name!r}")

    def grpc_target(self, service: str) -> str:
        return f"127.0.0.1:{self.service(service).grpc_port}"

    def metrics_url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.service(service).metrics_port}/metrics"

    def pids(self) -> dict[str, int]:
        """Every process this suite started and that still runs, by name."""
        pids = {name: c.pid for name, c in self.children.items() if c.pid and c.poll() is None}
        if self.postgres.pid and not self.postgres.reused:
            pids["postgres"] = self.postgres.pid
        if self.nats.pid and not self.nats.reused:
            pids["nats"] = self.nats.pid
        return pids  # type: ignore[return-value]

    def token(self, user: str = "alice", **kwargs: Any) -> str:
        """A bearer token for the gateway; see crm_devstack.keys.issue_token for the options."""
        return issue_token(self.keys or ensure_keys(self.data_dir), user=user, **kwargs)

    # environment -------------------------------------------------------------------------
    def _base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
        env.update(PYTHONUNBUFFERED="1", CRM_LOG_LEVEL=self.log_level, CRM_NATS_URL=self.nats.url)
        env.update(self.extra_env)
        return env

    def service_env(self, spec: ServiceSpec) -> dict[str, str]:
        assert self.keys is not None
        env = self._base_env()
        env.update(
            CRM_SERVICE_NAME=spec.name,
            CRM_NATS_USER=spec.name,
            CRM_NATS_PASSWORD=nats_passwords(self.data_dir).get(spec.name, ""),
            CRM_DATABASE_URL=self.database_url(spec.name),
            CRM_GRPC_PORT=str(spec.grpc_port),
            CRM_METRICS_PORT=str(spec.metrics_port),
            CRM_PRINCIPAL_PUBLIC_KEY=self.keys.principal_public_pem,
            CRM_SERVICE_PRIVATE_KEY=self.keys.service_private_pem,
            CRM_SERVICE_PUBLIC_KEYS=self.keys.service_public_pem,
        )
        env.update(self._targets())
        env.update({name: value.format_map(self.placeholders()) for name, value in spec.env.items()})
        return env

    def placeholders(self) -> dict[str, str]:
        """What `{name}` stands for in suite.toml env values: the development secrets, each
        HTTP process's base URL as `{<name>_url}`, and `{data_dir}` (state that must survive a
        restart and go with `make reset`)."""
        assert self.keys is not None
        return (self.keys.placeholders() | {h.placeholder: h.url for h in self.config.http_services}
                | {"data_dir": str(self.data_dir)})

    def http_service_env(self, spec: HttpServiceSpec) -> dict[str, str]:
        env = self._base_env()
        env.update({name: value.format_map(self.placeholders()) for name, value in spec.env.items()})
        return env

    def start_http_services(self) -> None:
        """Starts every plain HTTP process and waits until each answers 200 on its ready path."""
        for spec in self.config.http_services:
            env = self.http_service_env(spec)
            child = Child(spec.name, resolve_command(spec.argv(), env), env, self.output, self.cwd).start()
            self.children[spec.name] = child
            wait_until(lambda s=spec: http_ready(s.url + s.ready_path), timeout=spec.ready_timeout,
                       what=f"{spec.name} ({spec.url}{spec.ready_path})", interval=0.1, alive=child.exited)

    def _targets(self) -> dict[str, str]:
        """Where every service listens (CRM_<NAME>_TARGET), for the gateway and for each other."""
        return {spec.target_env_name: f"127.0.0.1:{spec.grpc_port}" for spec in self.config.services}

    def gateway_env(self) -> dict[str, str]:
        assert self.keys is not None and self.config.gateway is not None
        gateway = self.config.gateway
        env = self._base_env()
        env.update(
            CRM_SERVICE_NAME="gateway",
            CRM_NATS_USER="gateway",
            CRM_NATS_PASSWORD=nats_passwords(self.data_dir)["gateway"],
            CRM_HTTP_PORT=str(gateway.http_port),
            CRM_JWT_JWKS=self.keys.jwks,
            CRM_JWT_ISSUER=ISSUER,
            CRM_JWT_AUDIENCE=AUDIENCE,
            CRM_PRINCIPAL_PRIVATE_KEY=self.keys.principal_private_pem,
        )
        if gateway.metrics_port is not None:
            env["CRM_METRICS_PORT"] = str(gateway.metrics_port)
        env.update(self._targets())
        env.update({name: value.format_map(self.placeholders()) for name, value in gateway.env.items()})
        return env

    # lifecycle ---------------------------------------------------------------------------
    def start(self) -> Suite:
        if self._started:
            return self
        if (pid := running_launcher(self.data_dir)) is not None:
            raise SuiteError(f"the suite already runs on {self.data_dir} (crm-dev pid {pid}); "
                             f"to stop it: Ctrl-C where it runs, or `kill {pid}`")
        self._started = True
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _check_leftovers(self) -> None:
        """Refuses to start beside a leftover of an earlier run (its launcher killed, say): a
        server still running on this data dir, or any process holding one of our ports. Each is
        named with its pid and the command that stops it; nothing is stopped for the user."""
        leftovers = leftover_servers(self.data_dir)
        problems = _leftover_lines(leftovers)
        for what, port in self.config.ports().items():
            if not _port_in_use(port):
                continue
            pid = listening_pid(port)
            if pid is None:
                problems.append(f"port {port} ({what}) is in use by a process we cannot see")
            elif pid not in leftovers.values():
                problems.append(f"port {port} ({what}) is held by pid {pid} ({command_of(pid)}): "
                                f"stop it with `kill {pid}`")
        if problems:
            raise SuiteError("cannot start, in the way:\n  " + "\n  ".join(problems)
                             + "\n(another suite on purpose? then choose other ports with --port-offset)")

    def _start(self) -> None:
        started = time.monotonic()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / MARKER).touch()
        self._check_leftovers()
        self.keys = ensure_keys(self.data_dir)
        say = self.output.say

        say(f"starting PostgreSQL on 127.0.0.1:{self.config.postgres_port}")
        self.postgres.start()
        say(f"starting NATS JetStream on 127.0.0.1:{self.config.nats_port}")
        self.nats.extra_config = nats_config(nats_passwords(self.data_dir))
        self.nats.start()
        self._write_state()
        if self.config.http_services:
            say("starting " + ", ".join(f"{h.name} on {h.url}" for h in self.config.http_services))
            self.start_http_services()
            self._write_state()

        for spec in self.config.services:
            if self.postgres.create_database(spec.database):
                say(f"created database {spec.database}")
        for spec in self.config.services:
            if spec.migrate:
                env = self.service_env(spec)
                code = run_to_end(f"{spec.name}:migrate", resolve_command(spec.migrate, env), env,
                                  self.output, self.cwd)
                if code != 0:
                    raise SuiteError(f"{spec.name}: migration failed with status {code}")

        for spec in self.config.services:
            env = self.service_env(spec)
            self.children[spec.name] = Child(spec.name, resolve_command(spec.serve, env), env,
                                             self.output, self.cwd).start()
            self._write_state()
        for spec in self.config.services:
            child = self.children[spec.name]
            target = f"127.0.0.1:{spec.grpc_port}"
            wait_until(lambda t=target: grpc_serving(t), timeout=spec.ready_timeout,
                       what=f"{spec.name} (gRPC health on {target})", interval=0.1,
                       alive=child.exited)

        if self.config.gateway is not None:
            env = self.gateway_env()
            child = Child("gateway", resolve_command(self.config.gateway.serve, env), env,
                          self.output, self.cwd).start()
            self.children["gateway"] = child
            self._write_state()
            wait_until(lambda: http_ready(f"{self.gateway_url}/readyz"),
                       timeout=self.config.gateway.ready_timeout,
                       what=f"gateway ({self.gateway_url}/readyz)", interval=0.1,
                       alive=child.exited)
        say(f"suite ready in {time.monotonic() - started:.1f}s")

    def stop(self, timeout: float = 15.0) -> None:
        """Stops everything this suite started, newest first; safe to call more than once."""
        for child in reversed(list(self.children.values())):
            child.stop(timeout)  # one at a time: nothing loses a peer it still talks to
        self.children.clear()
        # only servers this suite started: a leftover it refused to start beside is the user's
        for server in (self.nats, self.postgres):
            if server.pid is not None:
                with contextlib.suppress(Exception):
                    server.stop()
        with contextlib.suppress(OSError):
            state = self.data_dir / STATE_FILE
            if state.exists() and json.loads(state.read_text()).get("launcher_pid") == os.getpid():
                state.unlink()
        self._started = False

    def failed_child(self) -> Child | None:
        """A child that exited although nobody asked it to."""
        for child in self.children.values():
            if child.poll() is not None and not child.stopping:
                return child
        return None

    def wait(self, poll_interval: float = 0.25) -> Child:
        """Blocks until a child exits on its own; returns it. Signals interrupt the wait."""
        while True:
            if (child := self.failed_child()) is not None:
                return child
            for server, name in ((self.postgres, "postgres"), (self.nats, "nats")):
                if server.pid is not None and not _pid_alive(server.pid):
                    raise ServerStartError(f"{name} exited unexpectedly")
            time.sleep(poll_interval)

    def _write_state(self) -> None:
        state = {
            "launcher_pid": os.getpid(),
            "port_offset": self.port_offset,
            "postgres_url": self.postgres_url,
            "nats_url": self.nats.url,
            "gateway_url": self.gateway_url if self.config.gateway else None,
            "pids": self.pids(),
        }
        tmp = self.data_dir / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.data_dir / STATE_FILE)

    # context managers --------------------------------------------------------------------
    def __enter__(self) -> Suite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Suite:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    # the summary `up` prints -------------------------------------------------------------
    def summary(self) -> str:
        lines = ["", "CRM suite is up."]
        if self.config.gateway is not None:
            lines += [f"  REST API          {self.gateway_url}/api/v1",
                      f"  interactive docs  {self.gateway_url}/docs"]
            metrics = (f"http://127.0.0.1:{self.config.gateway.metrics_port}/metrics"
                       if self.config.gateway.metrics_port else f"{self.gateway_url}/metrics")
            lines.append(f"  gateway metrics   {metrics}")
        for h in self.config.http_services:
            lines.append(f"  {h.name:<17} HTTP {h.url}")
        for spec in self.config.services:
            lines.append(f"  {spec.name:<17} gRPC 127.0.0.1:{spec.grpc_port}   "
                         f"metrics {self.metrics_url(spec.name)}")
        lines += [
            f"  PostgreSQL        {self.postgres_url}   (log {self.postgres.log_file})",
            f"  NATS              {self.nats.url}   (monitor {self.nats.monitor_url}; users and "
            f"passwords in {self.data_dir / 'keys' / 'nats'})",
            f"  data              {self.data_dir}",
            "  a token           make token USER=li.wei   (demo users and passwords: README.md)",
            "  stop              Ctrl-C",
        ]
        return "\n".join(lines)
