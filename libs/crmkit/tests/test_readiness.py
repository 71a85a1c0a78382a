"""Readiness follows PostgreSQL and NATS, against the real servers, and recovers by itself;
liveness does not follow them (crmkit.service.Readiness, the gRPC health names)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import nats
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from crmkit.auth import PrincipalVerifier
from crmkit.db import create_engine
from crmkit.embedded import EmbeddedNats
from crmkit.grpc.server import LIVENESS, GrpcServer
from crmkit.service import Readiness

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _free_port(start: int) -> int:
    """A free port in a block of this test's own (the team's offset 9000 above the usual ones)."""
    for port in range(start, start + 100):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


async def _eventually(condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.1)


async def test_readiness_follows_the_database_and_nats_and_liveness_does_not(
        postgres_server, service_key, tmp_path: Path) -> None:
    name = "readiness_check"
    url = postgres_server.create_database(name)
    server_nats = EmbeddedNats(tmp_path / "nats", _free_port(17400), _free_port(17500)).start()
    nc = await nats.connect(server_nats.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    engine = create_engine(url, pool_size=2)
    server = GrpcServer("readiness", PrincipalVerifier(service_key.public_pem))
    port = await server.start("127.0.0.1:0")
    readiness = asyncio.create_task(Readiness("readiness", engine, nc, server, interval=0.2).run())
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    health = health_pb2_grpc.HealthStub(channel)

    async def status(service: str = "") -> int:
        return (await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)).status

    def becomes(wanted: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return await status() == wanted
        return check

    try:
        await _eventually(becomes(SERVING), "ready at start")

        server_nats.stop()
        await _eventually(becomes(NOT_SERVING), "not ready without NATS")
        assert await status(LIVENESS) == SERVING
        server_nats.start()
        await _eventually(becomes(SERVING), "ready again once NATS is back")

        postgres_server.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false",
                                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        await _eventually(becomes(NOT_SERVING), "not ready without the database")
        assert await status(LIVENESS) == SERVING
        assert REGISTRY.get_sample_value("crm_dependency_up", {"service": "readiness", "dependency": "database"}) == 0
        postgres_server.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        await _eventually(becomes(SERVING), "ready again once the database is back")
    finally:
        readiness.cancel()
        await channel.close()
        await server.stop(0)
        await nc.close()
        await engine.dispose()
        server_nats.stop()
        postgres_server.drop_database(name)
