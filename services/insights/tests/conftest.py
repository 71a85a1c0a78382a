from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.insights.v1 import events_pb2
from crm_insights.app import handlers
from crm_insights.domain.targets import Place
from crmkit.db import UnitOfWork, create_engine, session_factory
from crmkit.events.envelope import Event, build_headers, subject_of
from crmkit.testing.service import OutboxRow, outbox_reader, sql_runner, use_case_runner


@pytest.fixture
async def sessions(database_factory) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    from crm_insights.main import migrate

    engine = create_engine(database_factory("insights", migrate), pool_size=10)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
def call(sessions) -> Callable[..., Awaitable[Any]]:
    return use_case_runner(sessions, "crm/insights")


@pytest.fixture
def outbox(sessions) -> Callable[[], Awaitable[list[OutboxRow]]]:
    return outbox_reader(sessions, events_pb2)


@pytest.fixture
def sql(sessions) -> Callable[..., Awaitable[list[Any]]]:
    return sql_runner(sessions)


def as_event(message: Message, *, event_id: str | None = None) -> Event:
    event_id = event_id or str(uuid.uuid4())
    headers = build_headers(event_id=event_id, event_type=message.DESCRIPTOR.full_name, source="crm/test", actor="",
                            subject_id="", time=dt.datetime.now(dt.UTC))
    return Event(id=event_id, subject=subject_of(message), type=message.DESCRIPTOR.full_name,
                 payload=message.SerializeToString(), headers=headers)


@pytest.fixture
def deliver(sessions) -> Callable[..., Awaitable[None]]:
    """`await deliver(message)`: the message handled as its consumer handles it (one unit of work)."""
    by_package = {"crm.contracts.v1": handlers.on_contract_event, "crm.billing.v1": handlers.on_billing_event,
                  "crm.customers.v1": handlers.on_customer_event,
                  "crm.opportunities.v1": handlers.on_opportunity_event}

    async def run(message: Message) -> None:
        async with UnitOfWork(sessions, "crm/insights") as u:
            await by_package[message.DESCRIPTOR.file.package](u, as_event(message))
            await u.commit()

    return run


@dataclass
class FakeOrg:
    """The org chart of crmkit.testing.principals, as identity would place its people and teams."""

    people: dict[str, Place] = field(default_factory=lambda: {
        "rep-east": Place("rep-east", "east", "/sales/east/"),
        "rep-east-2": Place("rep-east-2", "east", "/sales/east/"),
        "mgr-east": Place("mgr-east", "east", "/sales/east/"),
        "rep-west": Place("rep-west", "west", "/sales/west/")})
    teams: dict[str, Place] = field(default_factory=lambda: {
        "east": Place("", "east", "/sales/east/"), "west": Place("", "west", "/sales/west/")})

    async def person(self, user_id: str) -> Place | None:
        return self.people.get(user_id)

    async def team(self, team_id: str) -> Place | None:
        return self.teams.get(team_id)


@pytest.fixture
def org() -> FakeOrg:
    return FakeOrg()
