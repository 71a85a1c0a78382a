from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_customers.main import migrate
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
