from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf.message import Message
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.sap.v1 import events_pb2
from crm_sap.adapters.odata import ODataClient
from crm_sap.app.inbound import Inbound
from crm_sap.app.outbound import Outbound
from crm_sap.domain.model import SapDefaults
from crm_sap.main import migrate
from crm_sap_simulator.app import Simulator
from crm_sap_simulator.testing import running
from crmkit.db import create_engine, session_factory

sys.path.insert(0, str(Path(__file__).parent))  # sap_test_helpers

SIM_USER, SIM_PASSWORD, SIM_CLIENT = "CRM_INTEGRATION", "sim-secret", "100"


def specs_dir() -> Path:
    """The real SAP specifications: $CRM_SAP_SPECS_DIR, else ../shared/sap beside the repository."""
    if env := os.environ.get("CRM_SAP_SPECS_DIR"):
        return Path(env)
    repo_root = Path(__file__).resolve().parents[3]
    return repo_root.parent / "shared" / "sap"


class Clock:
    """The workers' clock, moved by the test instead of waiting. It starts a minute ahead of the
    wall clock, so what the test queues (stamped by the database) is due at once."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += dt.timedelta(**kw)


@dataclass
class SimServer:
    url: str
    sim: Simulator

    def command(self, method: str, path: str, json: Any = None) -> Any:
        response = httpx.request(method, f"{self.url}{path}", json=json, timeout=10)
        response.raise_for_status()
        return response.json()

    def log(self) -> list[dict[str, Any]]:
        return self.command("GET", "/_sim/log")


@pytest.fixture(scope="session")
def sim_server() -> Iterator[SimServer]:
    """The simulator as a real HTTP server on loopback, small server pages so that `__next`
    paging is exercised."""
    sim = Simulator(user=SIM_USER, password=SIM_PASSWORD, client=SIM_CLIENT, page_size=2)
    with running(sim) as url:
        yield SimServer(url, sim)


@pytest.fixture
def simulator(sim_server: SimServer) -> SimServer:
    sim_server.command("POST", "/_sim/reset")
    return sim_server


@pytest.fixture
async def sap(simulator: SimServer) -> AsyncIterator[ODataClient]:
    client = ODataClient(simulator.url, SIM_USER, SIM_PASSWORD, sap_client=SIM_CLIENT, timeout=10)
    yield client
    await client.aclose()


@pytest.fixture
async def sessions(database_factory) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_factory("sap", migrate), pool_size=5)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def outbound(sessions, sap, clock) -> Outbound:
    import random
    return Outbound(sessions, sap, SapDefaults(), batch_size=50, retry_base=5, retry_max=600, claim_seconds=60,
                    rand=random.Random(7), clock=clock)


@pytest.fixture
def inbound(sessions, sap, clock) -> Inbound:
    return Inbound(sessions, sap, page_size=3, clock=clock)


@dataclass(frozen=True)
class OutboxRow:
    subject: str
    type: str
    payload: bytes

    def message(self) -> Message:
        cls = getattr(events_pb2, self.type.removeprefix("crm.sap.v1."))
        return cls.FromString(self.payload)


@pytest.fixture
def outbox(sessions) -> Callable[..., Awaitable[list[Any]]]:
    """`await outbox("crm.sap.sales_order.created")`: the messages written so far, in commit order."""

    async def read(subject: str | None = None) -> list[Any]:
        async with sessions() as s:
            rows = await s.execute(text("SELECT subject, type, payload FROM outbox ORDER BY id"))
            out = [OutboxRow(r.subject, r.type, bytes(r.payload)) for r in rows]
        return [r.message() for r in out if subject is None or r.subject == subject]

    return read


@pytest.fixture
def sql(sessions) -> Callable[..., Awaitable[list[Any]]]:
    async def run(query: str, **params: Any) -> list[Any]:
        async with sessions() as s, s.begin():
            result = await s.execute(text(query), params)
            return list(result.all()) if result.returns_rows else []

    return run
