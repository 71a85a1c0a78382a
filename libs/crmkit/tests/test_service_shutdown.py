"""A service process always ends after SIGTERM: every shutdown step has a timeout and the whole a
grace period, even with PostgreSQL and NATS already gone and a background task that ignores
cancellation or blocks the event loop. Each test runs `crmkit.service.serve` in a process of its
own against its own real PostgreSQL and NATS, which it may stop first."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from crmkit.auth.keys import generate_keypair
from crmkit.embedded import EmbeddedNats, EmbeddedPostgres
from crmkit.testing.servers import free_port

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX signals")]

DEADLINE = 60.0  # far beyond the 1 s steps the service is given: only a hang reaches it

# A service whose one background task misbehaves as CRM_TEST_TASK says: "polite" stops when
# cancelled, "stubborn" swallows every cancellation, "blocking" blocks the event loop on it.
_SERVICE = textwrap.dedent("""
    import asyncio, os, time
    from crmkit.db import create_engine
    from crmkit.outbox.schema import metadata
    from crmkit.service import serve
    from crmkit.settings import ServiceSettings

    MODE = os.environ["CRM_TEST_TASK"]

    async def sweeper():
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if MODE == "polite":
                    raise
                if MODE == "blocking":
                    time.sleep(3600)

    async def main():
        settings = ServiceSettings()
        engine = create_engine(settings.database_url.get_secret_value())
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        await engine.dispose()
        await serve("shutdowntest", settings, lambda runtime: runtime.add_background("sweeper", sweeper))

    asyncio.run(main())
""")


@dataclass
class Servers:
    postgres: EmbeddedPostgres
    nats: EmbeddedNats


@pytest.fixture
def servers() -> Iterator[Servers]:
    base = Path(tempfile.mkdtemp(prefix="crm-sd-", dir="/tmp"))  # short: PostgreSQL's socket path
    postgres = EmbeddedPostgres(base / "pg", free_port(), settings={"fsync": "off"})
    nats_server = EmbeddedNats(base / "nats", free_port(), free_port())
    try:
        postgres.start()
        nats_server.start()
        yield Servers(postgres, nats_server)
    finally:
        nats_server.stop()
        postgres.stop()
        shutil.rmtree(base, ignore_errors=True)


class ServiceProcess:
    def __init__(self, servers: Servers, task: str, log_file: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")} | {
            "CRM_TEST_TASK": task,
            "CRM_DATABASE_URL": servers.postgres.url("postgres", driver="asyncpg"),
            "CRM_NATS_URL": servers.nats.url,
            "CRM_GRPC_HOST": "127.0.0.1",
            "CRM_GRPC_PORT": str(free_port()),
            "CRM_METRICS_PORT": str(free_port()),
            "CRM_PRINCIPAL_PUBLIC_KEY": generate_keypair().public_pem,
            "CRM_SHUTDOWN_GRACE_SECONDS": "1",
            "CRM_SHUTDOWN_STEP_SECONDS": "1",
        }
        self.log_file = log_file
        with open(log_file, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-c", _SERVICE], env=env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)

    def records(self) -> list[dict]:
        out = []
        for line in self.log_file.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"message": line})
        return out

    def wait_until_serving(self) -> None:
        deadline = time.monotonic() + DEADLINE
        while not any(r.get("message") == "serving" for r in self.records()):
            assert self.proc.poll() is None, self.log_file.read_text()
            assert time.monotonic() < deadline, "the service did not start:\n" + self.log_file.read_text()
            time.sleep(0.05)

    def terminate_and_wait(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the service outlived its shutdown:\n" + self.log_file.read_text()) from None


@pytest.fixture
def start_service(servers: Servers, tmp_path: Path) -> Iterator:
    started: list[ServiceProcess] = []

    def start(task: str) -> ServiceProcess:
        service = ServiceProcess(servers, task, tmp_path / f"{task}.log")
        started.append(service)
        service.wait_until_serving()
        return service

    yield start
    for service in started:
        if service.proc.poll() is None:
            service.proc.kill()
            service.proc.wait()


def test_a_clean_shutdown_completes_every_step(start_service) -> None:
    service = start_service("polite")
    assert service.terminate_and_wait() == 0
    messages = [r["message"] for r in service.records()]
    assert "shutting down" in messages
    assert not [m for m in messages if "hung" in m or "shutdown step failed" in m]


def test_with_postgres_and_nats_gone_a_task_ignoring_cancellation_does_not_keep_the_process(
        servers: Servers, start_service) -> None:
    service = start_service("stubborn")
    servers.nats.stop()
    servers.postgres.stop()
    assert service.terminate_and_wait() == 1
    records = service.records()
    [hung] = [r for r in records if r["message"] == "shutdown step hung; going on without it"]
    assert (hung["step"], hung["pending"]) == ("cancel tasks", ["sweeper"])
    [incomplete] = [r for r in records if r["message"] == "shutdown incomplete: exiting without the steps that hung"]
    assert incomplete["hung"] == ["cancel tasks (sweeper)"]  # the steps after it ended, if with errors


def test_a_task_blocking_the_event_loop_ends_at_the_grace_period(start_service) -> None:
    service = start_service("blocking")
    assert service.terminate_and_wait() == 1
    [gave_up] = [r for r in service.records() if r["message"] == "shutdown outlasted its grace period: exiting"]
    assert gave_up["step"] == "cancel tasks"
    assert gave_up["grace_seconds"] == 7.0  # 1 s drain + 6 steps of 1 s
