"""crm_db_pool_connections_in_use follows the connections a service's pool has checked out."""

from __future__ import annotations

from prometheus_client import REGISTRY
from sqlalchemy import text

from crmkit.db import create_engine


def _in_use() -> float | None:
    return REGISTRY.get_sample_value("crm_db_pool_connections_in_use", {"service": "pool-metric"})


async def test_pool_in_use_counts_checked_out_connections(postgres_server) -> None:
    engine = create_engine(postgres_server.url("postgres"), pool_size=2, service="pool-metric")
    try:
        async with engine.connect() as first:
            await first.execute(text("SELECT 1"))
            assert _in_use() == 1
            async with engine.connect() as second:
                await second.execute(text("SELECT 1"))
                assert _in_use() == 2
            assert _in_use() == 1
        assert _in_use() == 0
    finally:
        await engine.dispose()
