from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.contracts.v1 import events_pb2
from crmkit.db import create_engine, session_factory
from crmkit.testing.service import OutboxRow, outbox_reader, sql_runner, use_case_runner


@dataclass
class FakeOrg:
    """The org chart of crmkit.testing.principals, as identity would answer it:
    rep-east → mgr-east → director → gm; the head of /sales/ (and so of /sales/east/) is
    `director`; `finance` holds the finance role, `gm` general_manager."""

    managers: dict[str, str] = field(default_factory=lambda: {
        "rep-east": "mgr-east", "rep-east-2": "mgr-east", "mgr-east": "director", "director": "gm",
        "rep-west": "mgr-west", "mgr-west": "director"})
    heads: dict[str, str] = field(default_factory=lambda: {"east": "director", "west": "director",
                                                           "sales": "director"})
    roles: dict[str, list[str]] = field(default_factory=lambda: {"finance": ["finance"], "general_manager": ["gm"]})
    users: set[str] = field(default_factory=lambda: {"rep-east", "rep-east-2", "mgr-east", "director", "gm",
                                                     "finance", "rep-west", "mgr-west", "auditor"})
    calls: list[str] = field(default_factory=list)

    async def manager_chain(self, user_id: str, levels: int) -> list[str]:
        self.calls.append(f"chain:{user_id}:{levels}")
        chain, current = [], user_id
        while current in self.managers and len(chain) < levels:
            current = self.managers[current]
            chain.append(current)
        return chain

    async def department_head(self, department_id: str) -> str | None:
        self.calls.append(f"head:{department_id}")
        return self.heads.get(department_id)

    async def role_holders(self, role: str, department_id: str) -> list[str]:
        self.calls.append(f"role:{role}:{department_id}")
        return list(self.roles.get(role, []))

    async def user_exists(self, user_id: str) -> bool:
        return user_id in self.users


@pytest.fixture
def org() -> FakeOrg:
    return FakeOrg()


@pytest.fixture
async def sessions(database_factory) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    from crm_contracts.main import migrate

    engine = create_engine(database_factory("contracts", migrate), pool_size=10)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
def call(sessions) -> Callable[..., Awaitable[Any]]:
    return use_case_runner(sessions, "crm/contracts")


@pytest.fixture
def outbox(sessions) -> Callable[[], Awaitable[list[OutboxRow]]]:
    return outbox_reader(sessions, events_pb2)


@pytest.fixture
def sql(sessions) -> Callable[..., Awaitable[list[Any]]]:
    return sql_runner(sessions)
