from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.opportunities.v1 import events_pb2
from crm_opportunities.main import migrate
from crmkit.db import create_engine, session_factory
from crmkit.testing.service import OutboxRow, outbox_reader, sql_runner, use_case_runner


@pytest.fixture
async def sessions(database_factory) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_factory("opportunities", migrate), pool_size=5)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
def call(sessions) -> Callable[..., Awaitable[Any]]:
    return use_case_runner(sessions, "crm/opportunities")


@pytest.fixture
def outbox(sessions) -> Callable[[], Awaitable[list[OutboxRow]]]:
    return outbox_reader(sessions, events_pb2)


@pytest.fixture
def sql(sessions) -> Callable[..., Awaitable[list[Any]]]:
    return sql_runner(sessions)
