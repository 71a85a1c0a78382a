"""The service's wired consumers on a real NATS: a payment published on CRM_BILLING before the
contract it pays on CRM_CONTRACTS, each delivered twice, ends in the same dashboard."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import nats
import pytest
from nats.js.errors import NotFoundError

from crm_insights import main
from crmkit.events.consumer import EventConsumer, Subscription
from crmkit.events.envelope import build_headers, subject_of
from crmkit.events.permissions import SUITE
from crmkit.events.streams import ensure_dead_letter_stream, ensure_stream
from crmkit.testing.principals import ADMIN

from .test_dashboard import COMPANY_MAY, dashboard, money_figures, month_of_business

pytestmark = pytest.mark.integration

STREAMS = ("CRM_CONTRACTS", "CRM_CUSTOMERS", "CRM_BILLING", "CRM_OPPORTUNITIES")


@pytest.fixture
async def js(nats_server: Any) -> AsyncIterator[Any]:
    nc = await nats.connect(nats_server.url, name="insights-tests")
    js = nc.jetstream()
    for stream in STREAMS:
        try:
            await js.delete_stream(stream)
        except NotFoundError:
            pass
        await ensure_stream(js, stream, [f"crm.{stream.removeprefix('CRM_').lower()}.>"], 1)
    await ensure_dead_letter_stream(js, 1)
    yield js
    for stream in STREAMS:
        await js.delete_stream(stream)
    await nc.close()


async def publish(js: Any, message: Any) -> None:
    headers = build_headers(event_id=str(uuid.uuid4()), event_type=message.DESCRIPTOR.full_name, source="crm/test",
                            actor="", subject_id="", time=dt.datetime.now(dt.UTC))
    await js.publish(subject_of(message), message.SerializeToString(), headers=headers)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_wired_consumers_fill_the_dashboard_whatever_the_order(js, sessions, call) -> None:
    subscriptions = main.subscriptions()
    assert all(SUITE["insights"].grants(s.stream, s.name) for s in subscriptions)
    # billing's events first (payments before the contracts and customers they belong to), each twice
    events = sorted(month_of_business(), key=lambda m: m.DESCRIPTOR.file.package != "crm.billing.v1")
    for message in events + events:
        await publish(js, message)
    suffix = uuid.uuid4().hex[:6]
    tasks = [asyncio.create_task(EventConsumer(
        Subscription(f"{s.name}-{suffix}", s.stream, s.subjects, s.handler), js, sessions, source="crm/insights",
        max_deliver=2).run()) for s in subscriptions]
    try:
        async def arrived() -> bool:
            return money_figures((await dashboard(call, ADMIN)).current) == COMPANY_MAY
        await eventually(arrived)

        async def settled() -> bool:
            for s in subscriptions:
                info = await js.consumer_info(s.stream, f"{s.name}-{suffix}")
                if info.num_pending or info.num_ack_pending:
                    return False
            return True
        await eventually(settled)
        board = await dashboard(call, ADMIN)
        assert money_figures(board.current) == COMPANY_MAY
        assert board.previous_period.sums.signed == Decimal("80000.00")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
