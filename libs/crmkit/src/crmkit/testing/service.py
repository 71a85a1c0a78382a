"""What a service's own tests need around its database, one way for every service:

    @pytest.fixture
    def call(sessions):   return use_case_runner(sessions, "crm/contracts")
    @pytest.fixture
    def outbox(sessions): return outbox_reader(sessions, events_pb2)
    @pytest.fixture
    def sql(sessions):    return sql_runner(sessions)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from google.protobuf.message import Message
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crmkit.auth import Principal
from crmkit.db import UnitOfWork

Sessions = async_sessionmaker[AsyncSession]


def use_case_runner(sessions: Sessions, source: str) -> Callable[..., Awaitable[Any]]:
    """`await call(principal, use_case, *args)`: one unit of work acting as `principal`."""

    async def run(principal: Principal, use_case: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        async with UnitOfWork(sessions, source, actor=principal.subject) as uow:
            return await use_case(uow, principal, *args, **kwargs)

    return run


@dataclass(frozen=True)
class OutboxRow:
    subject: str
    type: str
    payload: bytes
    events: ModuleType

    def message(self) -> Message:
        cls = getattr(self.events, self.type.rsplit(".", 1)[-1])
        return cls.FromString(self.payload)


def outbox_reader(sessions: Sessions, events: ModuleType) -> Callable[[], Awaitable[list[OutboxRow]]]:
    """`await outbox()`: every event written so far, in commit order, decoded with `events`."""

    async def read() -> list[OutboxRow]:
        async with sessions() as s:
            rows = await s.execute(text("SELECT subject, type, payload FROM outbox ORDER BY id"))
            return [OutboxRow(r.subject, r.type, bytes(r.payload), events) for r in rows]

    return read


def sql_runner(sessions: Sessions) -> Callable[..., Awaitable[list[Any]]]:
    """`await sql(query, **params)`: a statement in its own transaction; the rows, if any."""

    async def run(query: str, **params: Any) -> list[Any]:
        async with sessions() as s, s.begin():
            result = await s.execute(text(query), params)
            return list(result.all()) if result.returns_rows else []

    return run
