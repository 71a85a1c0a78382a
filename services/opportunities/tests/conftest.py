from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from google.protobuf.message import Message
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.opportunities.v1 import events_pb2
from crm_opportunities.main import migrate
from crmkit.auth import Principal
from crmkit.db import UnitOfWork, create_engine, session_factory


@pytest.fixture
async def sessions(database_factory) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_factory("opportunities", migrate), pool_size=5)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
def call(sessions) -> Callable[..., Awaitable[Any]]:
    """`await call(principal, use_case, *args)`: one unit of work acting as `principal`."""

    async def run(principal: Principal, use_case: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        async with UnitOfWork(sessions, "crm/opportunities", actor=principal.subject) as u:
            return await use_case(u, principal, *args, **kwargs)

    return run


@dataclass(frozen=True)
class OutboxRow:
    subject: str
    type: str
    payload: bytes

    def message(self) -> Message:
        cls = getattr(events_pb2, self.type.removeprefix("crm.opportunities.v1."))
        return cls.FromString(self.payload)


@pytest.fixture
def outbox(sessions) -> Callable[[], Awaitable[list[OutboxRow]]]:
    """`await outbox()`: every event written so far, in commit order."""

    async def read() -> list[OutboxRow]:
        async with sessions() as s:
            rows = await s.execute(text("SELECT subject, type, payload FROM outbox ORDER BY id"))
            return [OutboxRow(r.subject, r.type, bytes(r.payload)) for r in rows]

    return read


@pytest.fixture
def sql(sessions) -> Callable[..., Awaitable[list[Any]]]:
    async def run(query: str, **params: Any) -> list[Any]:
        async with sessions() as s, s.begin():
            result = await s.execute(text(query), params)
            return list(result.all()) if result.returns_rows else []

    return run
