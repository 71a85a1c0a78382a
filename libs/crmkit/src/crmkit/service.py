"""The host every service runs in: telemetry, metrics endpoint, database, NATS, the outbox
relay, event consumers and the gRPC server, started in order and stopped on SIGTERM step by step,
each step with a timeout and the whole within a grace period (`Shutdown`): a process always ends."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from crmkit import idempotency, metrics, migrations, telemetry
from crmkit.auth import PrincipalVerifier, ServiceToken, current_principal_token
from crmkit.db import create_engine, session_factory
from crmkit.events import connection
from crmkit.events.consumer import EventConsumer, Subscription
from crmkit.events.permissions import check_subscriptions
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


class Readiness:
    """Readiness follows the service's dependencies: every `interval` seconds PostgreSQL must
    answer `SELECT 1` and the NATS connection must be up, or the gRPC health turns NOT_SERVING
    (the kubelet's readiness probe takes the pod out of its Service) until both are back. Liveness
    (`crmkit.grpc.server.LIVENESS`) never follows it: a database blip restarts nothing."""

    def __init__(self, service: str, engine: AsyncEngine, nc: NATS, server: GrpcServer, *,
                 interval: float = 2.0) -> None:
        self._service, self._engine, self._nc, self._server = service, engine, nc, server
        self._interval = interval
        self.ready = True

    async def check(self) -> dict[str, bool]:
        """Each dependency's state, also exported as crm_dependency_up (the PostgreSQL and NATS alerts)."""
        checks = {"database": await self._database_answers(), "nats": self._nc.is_connected}
        for dependency, up in checks.items():
            metrics.DEPENDENCY_UP.labels(self._service, dependency).set(1 if up else 0)
        return checks

    async def _database_answers(self) -> bool:
        try:
            async with asyncio.timeout(self._interval), self._engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:  # any failure to answer, of any layer, means not ready
            return False
        return True

    async def run(self) -> None:
        while True:
            checks = await self.check()
            ready = all(checks.values())
            if ready != self.ready:
                failing = sorted(name for name, ok in checks.items() if not ok)
                log.warning("ready again" if ready else "not ready", extra={"failing": failing})
                await self._server.set_ready(ready)
                self.ready = ready
            await asyncio.sleep(self._interval)


def split_pems(value: str) -> list[str]:
    """Several PEM keys may be configured at once while a key rotates."""
    marker = "-----END PUBLIC KEY-----"
    return [part.strip() + "\n" + marker + "\n" for part in value.split(marker) if part.strip()]


async def serve(name: str, settings: ServiceSettings, wire: Callable[[Runtime], None], *,
                public_methods: frozenset[str] = frozenset()) -> None:
    telemetry.setup(name, log_level=settings.log_level, otlp_endpoint=settings.otlp_endpoint)
    start_metrics_server(settings.metrics_port)
    database_url = settings.database_url.get_secret_value()
    engine = create_engine(database_url, pool_size=settings.database_pool_size, service=name)
    nc = await connection.connect(settings, f"crm-{name}")
    js = nc.jetstream()
    await ensure_service_stream(js, name, settings.stream_replicas)
    await ensure_dead_letter_stream(js, settings.stream_replicas)
    service_keys = settings.service_public_keys.get_secret_value() if settings.service_public_keys else ""
    verifier = PrincipalVerifier(*split_pems(settings.principal_public_key.get_secret_value()),
                                 service_pems=tuple(split_pems(service_keys)))
    runtime = Runtime(name=name, settings=settings, engine=engine, sessions=session_factory(engine),
                      nc=nc, js=js, grpc=GrpcServer(name, verifier, public_methods))
    wire(runtime)
    check_subscriptions(name, runtime.subscriptions)
    runtime.add_periodic("forget-idempotency-keys", lambda: idempotency.forget_expired(runtime.sessions), 3600.0)

    relay = OutboxRelay(database_url, js, name, retention_days=settings.outbox_retention_days)
    tasks = [asyncio.create_task(relay.run(), name="outbox-relay")]
    for sub in runtime.subscriptions:
        consumer = EventConsumer(sub, js, runtime.sessions, source=f"crm/{name}",
                                 max_deliver=settings.consumer_max_deliver)
        tasks.append(asyncio.create_task(consumer.run(), name=f"consumer-{sub.name}"))
    for task_name, run in runtime.background.items():
        tasks.append(asyncio.create_task(run(), name=task_name))
    port = await runtime.grpc.start(f"{settings.grpc_host}:{settings.grpc_port}")
    # Not among `tasks`: it never ends on its own, and a failure of its checks is "not ready".
    readiness = asyncio.create_task(Readiness(name, engine, nc, runtime.grpc).run(), name="readiness")
    log.info("serving", extra={"grpc_port": port, "metrics_port": settings.metrics_port})

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    crashed = asyncio.create_task(_first_crash(tasks))
    await asyncio.wait([asyncio.create_task(stop.wait()), crashed], return_when=asyncio.FIRST_COMPLETED)

    log.info("shutting down")
    step_seconds = settings.shutdown_step_seconds
    shutdown = Shutdown(total_seconds=settings.shutdown_grace_seconds + 6 * step_seconds)
    readiness.cancel()
    await shutdown.step("drain gRPC", runtime.grpc.stop(settings.shutdown_grace_seconds),
                        settings.shutdown_grace_seconds + step_seconds)
    await shutdown.step("cancel tasks", cancel_tasks(tasks), step_seconds,
                        pending=lambda: [t.get_name() for t in tasks if not t.done()])
    # Consumers and the relay are stopped; what is left to send is flushed. (drain() would wait
    # out its 30 s timeout on the pull subscriptions of cancelled fetches.)
    await shutdown.step("flush NATS", nc.flush(timeout=max(step_seconds - 0.5, 0.5)), step_seconds)
    await shutdown.step("close NATS", nc.close(), step_seconds)
    await shutdown.step("close channels", close_channels(runtime.channels), step_seconds)
    await shutdown.step("dispose engine", engine.dispose(), step_seconds)
    shutdown.finish()
    if crashed.done() and not crashed.cancelled() and crashed.exception():
        raise crashed.exception()  # type: ignore[misc]


class Shutdown:
    """The steps of a process's shutdown, each with a timeout, within one total grace period.

    A step that outlasts its timeout is logged by name and left behind; the next step runs.
    Whatever was left behind would keep the process alive (asyncio.run waits for every task it
    cancels, forever for one that ignores cancellation), so `finish()` then ends the process at
    once. A watchdog thread ends it too when the whole shutdown outlasts `total_seconds`: a step
    that blocks the event loop itself cannot be timed out from inside the loop. Either way the
    log says which step hung. For a process's own shutdown only: `serve`, the gateway's lifespan.
    """

    def __init__(self, total_seconds: float) -> None:
        self.total_seconds = total_seconds
        self.current = "starting"
        self.hung: list[str] = []
        self._watchdog = threading.Timer(total_seconds, self._give_up)
        self._watchdog.daemon = True  # must not keep a process that ends in time alive
        self._watchdog.start()

    async def step(self, name: str, work: Awaitable[object], seconds: float, *,
                   pending: Callable[[], list[str]] | None = None) -> bool:
        """Runs `work` for at most `seconds`; returns whether it finished."""
        self.current = name
        task = asyncio.ensure_future(work)
        done, _ = await asyncio.wait({task}, timeout=seconds)
        if not done:
            task.cancel()  # not awaited: it may never finish
            left = pending() if pending else []
            self.hung.append(f"{name} ({', '.join(left)})" if left else name)
            log.error("shutdown step hung; going on without it",
                      extra={"step": name, "timeout_seconds": seconds, "pending": left})
            return False
        if not task.cancelled() and task.exception() is not None:  # a server already gone: nothing left to do there
            log.warning("shutdown step failed", extra={"step": name, "error": repr(task.exception())})
        return True

    def finish(self) -> None:
        """Ends the process now if a step hung; otherwise disarms the watchdog and returns."""
        if self.hung:
            log.error("shutdown incomplete: exiting without the steps that hung",
                      extra={"hung": self.hung})
            _exit_now(1)
        self._watchdog.cancel()

    def _give_up(self) -> None:
        log.critical("shutdown outlasted its grace period: exiting",
                     extra={"step": self.current, "grace_seconds": self.total_seconds, "hung": self.hung})
        _exit_now(1)


def _exit_now(status: int) -> None:
    logging.shutdown()  # flush what says why
    os._exit(status)


async def cancel_tasks(tasks: list[asyncio.Task[None]]) -> None:
    """A shutdown step: cancels `tasks` and waits until they have ended."""
    for task in tasks:
        task.cancel()
    if tasks:  # asyncio.wait, not gather: it never cancels or re-waits a task that ignores cancellation
        await asyncio.wait(tasks)


async def close_channels(channels: list[grpc.aio.Channel]) -> None:
    for channel in channels:
        await channel.close()


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
