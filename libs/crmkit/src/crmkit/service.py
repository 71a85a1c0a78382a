"""The host every service runs in: telemetry, metrics endpoint, database, NATS, the outbox
relay, event consumers and the gRPC server, started in order and stopped gracefully on SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from crmkit import migrations, telemetry
from crmkit.auth import PrincipalVerifier, ServiceToken, current_principal_token
from crmkit.db import create_engine, session_factory
from crmkit.events.consumer import EventConsumer, Subscription
from crmkit.events.streams import ensure_dead_letter_stream, ensure_service_stream
from crmkit.grpc import client
from crmkit.grpc.server import GrpcServer
from crmkit.metrics import start_metrics_server
from crmkit.outbox.relay import OutboxRelay
from crmkit.settings import ServiceSettings

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What a service's wiring gets to build its servicers and handlers from."""

    name: str
    settings: ServiceSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    nc: NATS
    js: JetStreamContext
    grpc: GrpcServer
    subscriptions: list[Subscription] = field(default_factory=list)
    background: dict[str, Callable[[], Awaitable[None]]] = field(default_factory=dict)
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    def add_background(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """`run` is started next to the consumers and runs for the life of the process; if it
        raises, the process stops (and Kubernetes restarts it) rather than limp on without it."""
        if name in self.background:
            raise ValueError(f"background task {name!r} is already registered")
        self.background[name] = run

    def add_periodic(self, name: str, run_pass: Callable[[], Awaitable[object]], interval: float, *,
                     busy: Callable[[object], bool] = lambda _: False) -> None:
        """A background task repeating `run_pass` every `interval` seconds (see `periodic`)."""
        self.add_background(name, periodic(name, run_pass, interval, busy=busy))

    def caller_channel(self, target: str) -> grpc.aio.Channel:
        """A channel to another service whose calls carry the current caller's own signed
        principal: for checking, within a request, that a record the caller names exists and is
        theirs to use (the owning service applies its scope). See `crmkit.references`."""
        if not target:
            raise RuntimeError("the target of a caller channel is not configured")
        channel = client.channel(target, current_principal_token)
        self.channels.append(channel)
        return channel

    def internal_channel(self, target: str) -> grpc.aio.Channel:
        """A channel to another service whose calls carry this service's own principal (kind
        `service`, `SERVICE_PERMISSIONS` only): for event handlers and background jobs."""
        key = self.settings.service_private_key
        if key is None:
            raise RuntimeError("set CRM_SERVICE_PRIVATE_KEY: this service calls others on its own behalf")
        if not target:
            raise RuntimeError("the target of an internal channel is not configured")
        channel = client.channel(target, ServiceToken(self.name, key.get_secret_value()))
        self.channels.append(channel)
        return channel


def split_pems(value: str) -> list[str]:
    """Several PEM keys may be configured at once while a key rotates."""
    marker = "-----END PUBLIC KEY-----"
    return [part.strip() + "\n" + marker + "\n" for part in value.split(marker) if part.strip()]


async def serve(name: str, settings: ServiceSettings, wire: Callable[[Runtime], None], *,
                public_methods: frozenset[str] = frozenset()) -> None:
    telemetry.setup(name, log_level=settings.log_level, otlp_endpoint=settings.otlp_endpoint)
    start_metrics_server(settings.metrics_port)
    database_url = settings.database_url.get_secret_value()
    engine = create_engine(database_url, pool_size=settings.database_pool_size)
    nc = await nats.connect(settings.nats_url, name=f"crm-{name}", max_reconnect_attempts=-1)
    js = nc.jetstream()
    await ensure_service_stream(js, name, settings.stream_replicas)
    await ensure_dead_letter_stream(js, settings.stream_replicas)
    service_keys = settings.service_public_keys.get_secret_value() if settings.service_public_keys else ""
    verifier = PrincipalVerifier(*split_pems(settings.principal_public_key.get_secret_value()),
                                 service_pems=tuple(split_pems(service_keys)))
    runtime = Runtime(name=name, settings=settings, engine=engine, sessions=session_factory(engine),
                      nc=nc, js=js, grpc=GrpcServer(name, verifier, public_methods))
    wire(runtime)

    relay = OutboxRelay(database_url, js, name, retention_days=settings.outbox_retention_days)
    tasks = [asyncio.create_task(relay.run(), name="outbox-relay")]
    for sub in runtime.subscriptions:
        consumer = EventConsumer(sub, js, runtime.sessions, source=f"crm/{name}",
                                 max_deliver=settings.consumer_max_deliver)
        tasks.append(asyncio.create_task(consumer.run(), name=f"consumer-{sub.name}"))
    for task_name, run in runtime.background.items():
        tasks.append(asyncio.create_task(run(), name=task_name))
    port = await runtime.grpc.start(f"{settings.grpc_host}:{settings.grpc_port}")
    log.info("serving", extra={"grpc_port": port, "metrics_port": settings.metrics_port})

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    crashed = asyncio.create_task(_first_crash(tasks))
    await asyncio.wait([asyncio.create_task(stop.wait()), crashed], return_when=asyncio.FIRST_COMPLETED)

    log.info("shutting down")
    await runtime.grpc.stop(settings.shutdown_grace_seconds)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    # Consumers and the relay are stopped; what is left to send is flushed. (drain() would wait
    # out its 30 s timeout on the pull subscriptions of cancelled fetches.)
    try:
        await nc.flush(timeout=5)
    except Exception:  # shutting down either way
        log.warning("NATS did not confirm the last publishes before shutdown")
    await nc.close()
    for channel in runtime.channels:
        await channel.close()
    await engine.dispose()
    if crashed.done() and crashed.exception():
        raise crashed.exception()  # type: ignore[misc]


def periodic(name: str, run_pass: Callable[[], Awaitable[object]], interval: float, *,
             busy: Callable[[object], bool] = lambda _: False) -> Callable[[], Awaitable[None]]:
    """A background task (`runtime.add_background`) that repeats `run_pass`: one pass, then a
    pause of `interval` seconds, none while `busy(result)` says there is more to do. A failing pass
    (the database briefly away, a dependency down) is logged and the next one tries again, so one
    bad minute does not stop reminders or syncs for good. Tests call `run_pass` directly."""

    async def run() -> None:
        while True:
            try:
                result = await run_pass()
            except Exception:
                log.exception("background pass failed; the next one tries again", extra={"task": name})
                result = None
            if not busy(result):
                await asyncio.sleep(interval)

    return run


def command_line(name: str, settings_type: type[ServiceSettings], wire: Callable[[Runtime], None],
                 migrations_dir: Path, *, description: str | None = None,
                 public_methods: frozenset[str] = frozenset()) -> None:
    """`crm-<name> serve | migrate`: what every service's console script does."""
    parser = argparse.ArgumentParser(prog=f"crm-{name}", description=description)
    parser.add_argument("command", choices=["serve", "migrate"])
    args = parser.parse_args()
    settings = settings_type()
    if args.command == "migrate":
        migrations.upgrade(migrations_dir, settings.database_url.get_secret_value())
        return
    asyncio.run(serve(name, settings, wire, public_methods=public_methods))


async def _first_crash(tasks: list[asyncio.Task[None]]) -> None:
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    for task in done:
        if not task.cancelled() and task.exception():
            log.error("background task crashed", exc_info=task.exception(), extra={"task": task.get_name()})
            raise task.exception()  # type: ignore[misc]
