"""The suite manifest, deploy/local/suite.toml: every process `make dev` and e2e start.

Format (all ports are shifted by `--port-offset`):

    [postgres]            port
    [nats]                port, monitor_port
    [[services]]          name, serve = [argv], migrate = [argv] (optional), database,
                          grpc_port, metrics_port, env = {EXTRA = "..."} (optional),
                          ready_timeout = seconds (optional, default 60)
    [gateway]             serve = [argv], http_port, metrics_port (optional), env (optional),
                          ready_timeout (optional)
    [[http_services]]     name, serve = [argv] ("{port}" stands for http_port), http_port,
                          ready_path (default /healthz), env (optional), ready_timeout (optional):
                          plain HTTP processes started before every service, e.g. the SAP
                          simulator; "{<name>_url}" in any env value is its base URL
                          (name with "-" as "_": {sap_simulator_url}); "{data_dir}" is the
                          suite's data dir

A command's first word is looked up next to the running interpreter first (the workspace's
.venv/bin), then on PATH.
"""

from __future__ import annotations

import os
import shutil
import sys
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    serve: tuple[str, ...]
    migrate: tuple[str, ...] | None
    database: str
    grpc_port: int
    metrics_port: int
    env: dict[str, str] = field(default_factory=dict)
    ready_timeout: float = DEFAULT_READY_TIMEOUT

    @property
    def target_env_name(self) -> str:
        return f"CRM_{self.name.upper().replace('-', '_')}_TARGET"


@dataclass(frozen=True)
class GatewaySpec:
    serve: tuple[str, ...]
    http_port: int
    metrics_port: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    ready_timeout: float = DEFAULT_READY_TIMEOUT


@dataclass(frozen=True)
class HttpServiceSpec:
    """A plain HTTP process the services depend on (a simulator of an external system)."""

    name: str
    serve: tuple[str, ...]
    http_port: int
    ready_path: str = "/healthz"
    env: dict[str, str] = field(default_factory=dict)
    ready_timeout: float = DEFAULT_READY_TIMEOUT

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def placeholder(self) -> str:
        return f"{self.name.replace('-', '_')}_url"

    def argv(self) -> tuple[str, ...]:
        return tuple(arg.replace("{port}", str(self.http_port)) for arg in self.serve)


@dataclass(frozen=True)
class SuiteConfig:
    postgres_port: int
    nats_port: int
    nats_monitor_port: int
    services: tuple[ServiceSpec, ...]
    gateway: GatewaySpec | None
    source: Path | None = None
    http_services: tuple[HttpServiceSpec, ...] = ()

    def shifted(self, offset: int) -> SuiteConfig:
        if not offset:
            return self
        return replace(
            self,
            postgres_port=self.postgres_port + offset,
            nats_port=self.nats_port + offset,
            nats_monitor_port=self.nats_monitor_port + offset,
            services=tuple(replace(s, grpc_port=s.grpc_port + offset,
                                   metrics_port=s.metrics_port + offset) for s in self.services),
            gateway=None if self.gateway is None else replace(
                self.gateway, http_port=self.gateway.http_port + offset,
                metrics_port=None if self.gateway.metrics_port is None
                else self.gateway.metrics_port + offset),
            http_services=tuple(replace(h, http_port=h.http_port + offset) for h in self.http_services),
        )

    def ports(self) -> dict[str, int]:
        """Every port the suite listens on, by what listens there."""
        ports = {"postgres": self.postgres_port, "nats": self.nats_port,
                 "nats monitor": self.nats_monitor_port}
        for h in self.http_services:
            ports[f"{h.name} http"] = h.http_port
        for s in self.services:
            ports[f"{s.name} grpc"] = s.grpc_port
            ports[f"{s.name} metrics"] = s.metrics_port
        if self.gateway is not None:
            ports["gateway http"] = self.gateway.http_port
            if self.gateway.metrics_port is not None:
                ports["gateway metrics"] = self.gateway.metrics_port
        return ports


def default_suite_file() -> Path:
    """$CRM_SUITE_FILE, else deploy/local/suite.toml of this checkout, else of the cwd."""
    if env := os.environ.get("CRM_SUITE_FILE"):
        return Path(env)
    beside = Path(__file__).resolve().parents[2] / "suite.toml"  # editable install
    if beside.is_file():
        return beside
    return Path.cwd() / "deploy" / "local" / "suite.toml"


def _argv(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list) or not value or not all(isinstance(x, str) for x in value):
        raise ValueError(f"{where}: a command is a non-empty list of strings")
    return tuple(value)


def _env(value: object, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{where}.env must be a table")
    return {str(k): str(v) for k, v in value.items()}


def load_suite(path: str | os.PathLike[str] | None = None) -> SuiteConfig:
    source = Path(path) if path is not None else default_suite_file()
    with open(source, "rb") as f:
        doc = tomllib.load(f)
    try:
        services = []
        names: set[str] = set()
        for i, s in enumerate(doc.get("services", [])):
            where = f"{source}: services[{i}]"
            if s["name"] in names:
                raise ValueError(f"{where}: duplicate service name {s['name']!r}")
            names.add(s["name"])
            services.append(ServiceSpec(
                name=str(s["name"]),
                serve=_argv(s["serve"], f"{where}.serve"),
                migrate=_argv(s["migrate"], f"{where}.migrate") if s.get("migrate") else None,
                database=str(s["database"]),
                grpc_port=int(s["grpc_port"]),
                metrics_port=int(s["metrics_port"]),
                env=_env(s.get("env"), where),
                ready_timeout=float(s.get("ready_timeout", DEFAULT_READY_TIMEOUT)),
            ))
        http_services = []
        for i, h in enumerate(doc.get("http_services", [])):
            where = f"{source}: http_services[{i}]"
            if h["name"] in names:
                raise ValueError(f"{where}: duplicate name {h['name']!r}")
            names.add(h["name"])
            http_services.append(HttpServiceSpec(
                name=str(h["name"]), serve=_argv(h["serve"], f"{where}.serve"), http_port=int(h["http_port"]),
                ready_path=str(h.get("ready_path", "/healthz")), env=_env(h.get("env"), where),
                ready_timeout=float(h.get("ready_timeout", DEFAULT_READY_TIMEOUT)),
            ))
        gw = doc.get("gateway")
        gateway = None if gw is None else GatewaySpec(
            serve=_argv(gw["serve"], f"{source}: gateway.serve"),
            http_port=int(gw["http_port"]),
            metrics_port=int(gw["metrics_port"]) if gw.get("metrics_port") else None,
            env=_env(gw.get("env"), f"{source}: gateway"),
            ready_timeout=float(gw.get("ready_timeout", DEFAULT_READY_TIMEOUT)),
        )
        return SuiteConfig(
            postgres_port=int(doc["postgres"]["port"]),
            nats_port=int(doc["nats"]["port"]),
            nats_monitor_port=int(doc["nats"]["monitor_port"]),
            services=tuple(services),
            gateway=gateway,
            source=source,
            http_services=tuple(http_services),
        )
    except KeyError as exc:
        raise ValueError(f"{source}: missing key {exc}") from exc


def resolve_command(argv: tuple[str, ...], env: dict[str, str] | None = None) -> list[str]:
    """The command with its executable made absolute where it can be found."""
    exe = argv[0]
    if os.sep not in exe:
        beside = Path(sys.executable).parent / exe
        if beside.is_file() and os.access(beside, os.X_OK):
            exe = str(beside)
        else:
            exe = shutil.which(exe, path=(env or os.environ).get("PATH")) or exe
    return [exe, *argv[1:]]
