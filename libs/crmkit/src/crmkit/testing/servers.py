# ruff: noqa: S106, S108, S608  (throwaway test servers; quoted identifiers)
"""PostgreSQL and NATS servers for tests, and cheap fresh migrated databases.

Where a server comes from (ARCHITECTURE.md, "Real servers, embedded by default"):

1. an environment variable: `CRM_TEST_POSTGRES_URL` (`postgresql://user:pw@host:port/db`, a
   superuser or a role with CREATEDB) and `CRM_TEST_NATS_URL` (a NATS with JetStream);
2. else testcontainers, when a Docker engine answers (set `CRM_TEST_DOCKER=0` to skip it);
3. else the embedded servers from PyPI wheels, in a temporary directory.

Each server is started once per test session and stopped at its end. Databases are made fresh
per test from a migrated template: `migrate` runs once per session and name prefix, then every
`fresh_database(...)` is a `CREATE DATABASE ... TEMPLATE ...`, which takes milliseconds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmkit.embedded import (
    EmbeddedNats,
    EmbeddedPostgres,
    quote_ident,
    quote_literal,
    run_admin_sql,
    wait_until,
)

__all__ = [
    "NatsServer",
    "PostgresServer",
    "docker_available",
    "free_port",
    "fresh_database",
    "start_nats_server",
    "start_postgres_server",
]

_log = logging.getLogger(__name__)

POSTGRES_IMAGE = os.environ.get("CRM_TEST_POSTGRES_IMAGE", "postgres:17-alpine")
NATS_IMAGE = os.environ.get("CRM_TEST_NATS_IMAGE", "nats:2.11-alpine")

# PostgreSQL settings for throwaway test clusters: durability is not what tests check here
TEST_PG_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
                    "max_connections": "300"}

Migrate = Callable[[str], None]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _with_database(url: str, database: str, driver: str | None) -> str:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    name = "postgresql+" + driver if driver else "postgresql"
    return u.set(drivername=name, database=database).render_as_string(hide_password=False)


@dataclass
class PostgresServer:
    """A PostgreSQL server for a test session.

    `admin_url` is a plain `postgresql://` URL to the maintenance database; `url(db)` gives the
    `postgresql+asyncpg://` URL services use (CRM_DATABASE_URL).
    """

    admin_url: str
    source: str  # "env" | "docker" | "embedded"
    _stop: Callable[[], None] | None = None
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    _created: list[str] = field(default_factory=list)
    _templates: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, database: str, *, driver: str | None = "asyncpg") -> str:
        return _with_database(self.admin_url, database, driver)

    def execute(self, *statements: str, database: str = "postgres") -> list[list[Any]]:
        return run_admin_sql(self.url(database, driver=None), *statements)

    def create_database(self, name: str, template: str | None = None) -> str:
        """Creates database `name` (from `template` if given); returns its asyncpg URL."""
        sql = f"CREATE DATABASE {quote_ident(name)}"
        if template:
            sql += f" TEMPLATE {quote_ident(template)}"
        self.execute(sql)
        with self._lock:
            self._created.append(name)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        exists = self.execute(f"SELECT 1 FROM pg_database WHERE datname = {quote_literal(name)}")
        if exists[0]:
            self.execute(
                f"ALTER DATABASE {quote_ident(name)} IS_TEMPLATE false",
                f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)",
            )
        with self._lock:
            if name in self._created:
                self._created.remove(name)

    def close(self) -> None:
        """Stops a server we started; on an external server, drops what this session created."""
        if self._stop is not None:
            self._stop()
            return
        for name in reversed(list(self._created)):
            with contextlib.suppress(Exception):
                self.drop_database(name)


@dataclass
class NatsServer:
    url: str
    source: str
    monitor_url: str | None = None
    _stop: Callable[[], None] | None = None

    def close(self) -> None:
        if self._stop is not None:
            self._stop()


# --------------------------------------------------------------------------------------------
# docker detection

_docker: bool | None = None


def docker_available() -> bool:
    """True when a Docker engine answers; decided quickly, quietly and once per process."""
    global _docker
    if _docker is None:
        _docker = _probe_docker()
    return _docker


def _probe_docker() -> bool:
    if os.environ.get("CRM_TEST_DOCKER", "").lower() in {"0", "false", "no", "off"}:
        return False
    host = os.environ.get("DOCKER_HOST", "")
    sockets = [Path("/var/run/docker.sock"), Path.home() / ".docker/run/docker.sock"]
    if not host and not any(s.exists() for s in sockets):
        return False  # nothing to ask: skip the client's own connect timeout
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception as exc:
        _log.debug("no Docker engine: %s", exc)
        return False


# --------------------------------------------------------------------------------------------
# starting servers


def start_postgres_server(base_dir: str | os.PathLike[str] | None = None) -> PostgresServer:
    url = os.environ.get("CRM_TEST_POSTGRES_URL")
    if url:
        return PostgresServer(admin_url=_with_database(url, "postgres", None), source="env")
    if docker_available():
        return _docker_postgres()
    return _embedded_postgres(base_dir)


def start_nats_server(base_dir: str | os.PathLike[str] | None = None) -> NatsServer:
    url = os.environ.get("CRM_TEST_NATS_URL")
    if url:
        return NatsServer(url=url, source="env")
    if docker_available():
        return _docker_nats()
    return _embedded_nats(base_dir)


def _temp_dir(base_dir: str | os.PathLike[str] | None, prefix: str) -> tuple[Path, bool]:
    if base_dir is not None:
        path = Path(base_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path, False
    # short and under /tmp: the server's unix socket path must stay short
    tmp = "/tmp" if os.path.isdir("/tmp") else None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=tmp)), True


def _embedded_postgres(base_dir: str | os.PathLike[str] | None) -> PostgresServer:
    root, owned = _temp_dir(base_dir, "crm-pg-")
    server = EmbeddedPostgres(root / "pgdata", free_port(), settings=TEST_PG_SETTINGS).start()

    def stop() -> None:
        server.stop()
        if owned:
            shutil.rmtree(root, ignore_errors=True)

    return PostgresServer(admin_url=server.admin_url, source="embedded", _stop=stop)


def _embedded_nats(base_dir: str | os.PathLike[str] | None) -> NatsServer:
    root, owned = _temp_dir(base_dir, "crm-nats-")
    server = EmbeddedNats(root / "nats", free_port(), free_port(), server_name="crm-test").start()

    def stop() -> None:
        server.stop()
        if owned:
            shutil.rmtree(root, ignore_errors=True)

    return NatsServer(url=server.url, source="embedded", monitor_url=server.monitor_url, _stop=stop)


def _docker_postgres() -> PostgresServer:
    from testcontainers.community.postgres import PostgresContainer

    container = PostgresContainer(POSTGRES_IMAGE, username="postgres", password="postgres",
                                  dbname="postgres", driver=None)
    container.with_command("postgres -c fsync=off -c synchronous_commit=off -c max_connections=300")
    container.start()
    url = container.get_connection_url(driver=None)
    return PostgresServer(admin_url=url, source="docker", _stop=container.stop)


_DOCKER_NATS_CONF = b"""
listen: 0.0.0.0:4222
http: 0.0.0.0:8222
jetstream {
  store_dir: "/data"
  sync_interval: always
}
"""


def _docker_nats() -> NatsServer:
    from testcontainers.core.container import DockerContainer

    container = (
        DockerContainer(NATS_IMAGE)
        .with_exposed_ports(4222, 8222)
        .with_copy_into_container(_DOCKER_NATS_CONF, "/etc/nats/crm.conf")
        .with_command("-c /etc/nats/crm.conf")
    )
    container.start()
    host = container.get_container_host_ip()
    monitor = f"http://{host}:{container.get_exposed_port(8222)}"

    def ready() -> bool:
        url = f"{monitor}/healthz?js-enabled-only=true"
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
            return response.status == 200

    try:
        wait_until(ready, timeout=60, what="NATS container")
    except Exception:
        container.stop()
        raise
    return NatsServer(url=f"nats://{host}:{container.get_exposed_port(4222)}", source="docker",
                      monitor_url=monitor, _stop=container.stop)


# --------------------------------------------------------------------------------------------
# fresh migrated databases


def _db_name(prefix: str, suffix: str) -> str:
    clean = re.sub(r"[^a-z0-9_]", "_", prefix.lower()).strip("_") or "db"
    return f"{clean[: 62 - len(suffix)]}_{suffix}"


def _run_in_thread(fn: Callable[[], None]) -> None:
    """Runs `fn` in its own thread, so an `asyncio.run` inside works from async tests too."""
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=worker, name="crm-migrate")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def template_database(server: PostgresServer, name_prefix: str, migrate: Migrate) -> str:
    """The session's migrated template for `name_prefix`, made on first use."""
    with server._lock:
        name = server._templates.get(name_prefix)
    if name is not None:
        return name
    name = _db_name(name_prefix, f"tpl_{server.session_id}")
    server.drop_database(name)  # a leftover of a crashed session with the same id is stale
    server.create_database(name)
    started = time.monotonic()
    try:
        _run_in_thread(lambda: migrate(server.url(name)))
    except BaseException:
        with contextlib.suppress(Exception):
            server.drop_database(name)
        raise
    _log.info("migrated template %s in %.2fs", name, time.monotonic() - started)
    # a template must have no sessions when it is copied: end any the migration left behind
    server.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = {quote_literal(name)} AND pid <> pg_backend_pid()",
        f"ALTER DATABASE {quote_ident(name)} IS_TEMPLATE true ALLOW_CONNECTIONS false",
    )
    with server._lock:
        server._templates[name_prefix] = name
    return name


def fresh_database(server: PostgresServer, name_prefix: str, migrate: Migrate) -> str:
    """A new database with every migration applied; returns its `postgresql+asyncpg://` URL.

    `migrate(database_url)` is the service's own sync migration entry point (Alembic upgrade
    head). It runs once per session and prefix; each call after that copies the template.
    Safe to call from sync and async tests and fixtures.
    """
    template = template_database(server, name_prefix, migrate)
    name = _db_name(name_prefix, uuid.uuid4().hex[:12])
    return server.create_database(name, template=template)


def database_name(url: str) -> str:
    from sqlalchemy.engine import make_url

    return str(make_url(url).database)
