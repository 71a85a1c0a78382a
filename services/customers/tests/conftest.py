from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from google.protobuf.message import Message
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.customers.v1 import events_pb2
from crm_customers.main import migrate
from crmkit.auth import Principal
from crmkit.db import UnitOfWork, create_engine, session_factory


@pytest.fixture
async def sessions(database_factory) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_factory("customers", migrate), pool_size=5)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
def uow(sessions):
    def make(actor: str = "test") -> UnitOfWork:
        return UnitOfWork(sessions, "crm/customers", actor=actor)
    return make


@pytest.fixture
def call(uow) -> Callable[..., Awaitable[Any]]:
    """`await call(principal, use_case, *args)`: one unit of work acting as `principal`, the way
    the gRPC servicer runs a use case (the actor is the principal's subject)."""

    async def run(principal: Principal, use_case: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        async with uow(principal.subject) as u:
            return await use_case(u, principal, *args, **kwargs)

    return run


@dataclass(frozen=True)
class OutboxRow:
    subject: str
    type: str
    headers: dict[str, str]
    payload: bytes

    def message(self) -> Message:
        cls = getattr(events_pb2, self.type.removeprefix("crm.customers.v1."))
        assert cls.DESCRIPTOR.full_name == self.type
        return cls.FromString(self.payload)


@pytest.fixture
def outbox(sessions) -> Callable[[], Awaitable[list[OutboxRow]]]:
    """`await outbox()`: every event written so far, in commit order."""

    async def read() -> list[OutboxRow]:
        async with sessions() as s:
            rows = await s.execute(text("SELECT subject, type, headers, payload FROM outbox ORDER BY id"))
            return [OutboxRow(r.subject, r.type, dict(r.headers), bytes(r.payload)) for r in rows]

    return read


@pytest.fixture
def counts(sessions) -> Callable[[], Awaitable[dict[str, int]]]:
    """`await counts()`: rows per table, to prove a failed mutation left nothing behind."""

    async def read() -> dict[str, int]:
        async with sessions() as s:
            result = {}
            for table in ("customers", "customer_tags", "contacts", "follow_ups", "industries", "outbox"):
                result[table] = int(await s.scalar(text(f"SELECT count(*) FROM {table}")))
            result["live_customers"] = int(await s.scalar(
                text("SELECT count(*) FROM customers WHERE deleted_at IS NULL")))
            return result

    return read
