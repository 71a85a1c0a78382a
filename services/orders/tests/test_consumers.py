"""The service's consumers on a real NATS: a contract signed on CRM_CONTRACTS and SAP's sales
order on CRM_SAP reach the order through the wired subscriptions, each applied once."""

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

from crm.sap.v1 import events_pb2 as sap_ev
from crm_orders import main
from crm_orders.adapters.repository import Repository
from crm_orders.app import use_cases as uc
from crm_orders.domain.model import OrderStatus, RequestedLine
from crmkit.events.consumer import EventConsumer, Subscription
from crmkit.events.envelope import build_headers, subject_of
from crmkit.events.streams import ensure_dead_letter_stream, ensure_stream
from crmkit.testing.principals import EAST_REP

pytestmark = pytest.mark.integration


@pytest.fixture
async def js(nats_server: Any) -> AsyncIterator[Any]:
    nc = await nats.connect(nats_server.url, name="orders-tests")
    js = nc.jetstream()
    for stream in ("CRM_CONTRACTS", "CRM_SAP"):
        try:
            await js.delete_stream(stream)
        except NotFoundError:
            pass
        await ensure_stream(js, stream, [f"crm.{stream.removeprefix('CRM_').lower()}.>"], 1)
    await ensure_dead_letter_stream(js, 1)
    yield js
    for stream in ("CRM_CONTRACTS", "CRM_SAP"):
        await js.delete_stream(stream)
    await nc.close()


async def publish(js: Any, message: Any, *, event_id: str | None = None, source: str) -> str:
    event_id = event_id or str(uuid.uuid4())
    headers = build_headers(event_id=event_id, event_type=message.DESCRIPTOR.full_name, source=source,
                            actor="", subject_id="", time=dt.datetime.now(dt.UTC))
    await js.publish(subject_of(message), message.SerializeToString(), headers=headers)
    return event_id


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_wired_consumers_apply_contract_and_sap_events(js, sessions, call, contract_of) -> None:
    subs = {s.stream: s for s in main.subscriptions()}
    assert sorted(subs) == ["CRM_BILLING", "CRM_CONTRACTS", "CRM_CUSTOMERS", "CRM_SAP"]
    assert subs["CRM_SAP"].subjects == ["crm.sap.sales_order.created", "crm.sap.sales_order.status_changed",
                                        "crm.sap.outbound_delivery.changed"]
    suffix = uuid.uuid4().hex[:6]
    tasks = [asyncio.create_task(EventConsumer(
        Subscription(f"{s.name}-{suffix}", s.stream, s.subjects, s.handler), js, sessions, source="crm/orders",
        max_deliver=2).run()) for s in (subs["CRM_CONTRACTS"], subs["CRM_SAP"])]
    try:
        signed = contract_of()
        event_id = await publish(js, signed, source="crm/contracts")
        await publish(js, signed, event_id=event_id, source="crm/contracts")  # deduplicated by NATS

        async def copied() -> bool:
            async with sessions() as s:
                return await Repository(s).contract(uuid.UUID(signed.contract_id)) is not None
        await eventually(copied)

        view = await call(EAST_REP, uc.create_order, uc.NewOrder(
            uuid.UUID(signed.contract_id), [RequestedLine("L1", Decimal(5))], dt.date.today()))
        created = sap_ev.SalesOrderCreated(order_id=str(view.order.id), sales_order="4500099",
                                           item_numbers={str(view.order.lines[0].id): "10"})
        await publish(js, created, source="crm/sap")
        # the SAP integration published it again with a new id (a retry after a crash): applied once
        await publish(js, created, source="crm/sap")

        async def confirmed() -> bool:
            order = (await call(EAST_REP, uc.get_order, view.order.id)).order
            return order.status is OrderStatus.CONFIRMED and order.sap_sales_order == "4500099"
        await eventually(confirmed)

        async def settled() -> bool:
            info = await js.consumer_info("CRM_SAP", f"orders-sap-{suffix}")
            return info.num_pending == 0 and info.num_ack_pending == 0 and info.delivered.stream_seq == 2
        await eventually(settled)
        order = (await call(EAST_REP, uc.get_order, view.order.id)).order
        assert (order.status, order.version, order.lines[0].sap_item) == (OrderStatus.CONFIRMED, 2, "10")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
