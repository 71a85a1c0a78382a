"""The wiring on real NATS JetStream: the service's consumers (one per producer stream) turn a
published ApprovalStepAssigned into the approver's inbox item, once, even when it is published
twice."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import nats
import pytest

from crm.contracts.v1 import events_pb2 as contracts
from crm_notifications.app.handling import Notifier
from crm_notifications.main import subscriptions
from crmkit.events.consumer import EventConsumer
from crmkit.events.streams import ensure_service_stream

pytestmark = pytest.mark.integration


@pytest.fixture
async def js(nats_server) -> AsyncIterator[nats.js.JetStreamContext]:
    nc = await nats.connect(nats_server.url)
    yield nc.jetstream()
    await nc.close()


def test_one_consumer_per_producer_stream() -> None:
    subs = subscriptions(Notifier(directory=None, email_enabled=False))  # type: ignore[arg-type]
    assert [(s.name, s.stream, s.subjects) for s in subs] == [
        ("notifications-contracts", "CRM_CONTRACTS", ["crm.contracts.>"]),
        ("notifications-billing", "CRM_BILLING", ["crm.billing.>"]),
        ("notifications-sap", "CRM_SAP", ["crm.sap.>"]),
        ("notifications-customers", "CRM_CUSTOMERS", ["crm.customers.>"]),
    ]


async def test_published_step_assignment_lands_in_the_inbox_once(js, sessions, directory, event, sql,
                                                                 loop_time) -> None:
    directory.add("approver-1")
    await ensure_service_stream(js, "contracts", 1)
    [sub] = [s for s in subscriptions(Notifier(directory, email_enabled=False)) if s.stream == "CRM_CONTRACTS"]
    consumer = EventConsumer(sub, js, sessions, source="crm/notifications")
    task = asyncio.create_task(consumer.run())
    try:
        e = event(contracts.ApprovalStepAssigned(contract_id="c-7", contract_number="CON-7", step_name="Manager",
                                                 approver_ids=["approver-1"]))
        for _ in range(2):  # a producer retry; the second is a duplicate by Nats-Msg-Id or by event id
            await js.publish(e.subject, e.payload, headers=e.headers)
        deadline = loop_time() + 60  # a generous bound on a loaded machine; the loop ends as soon as it lands
        while not (rows := await sql("SELECT recipient_id, title FROM inbox_items")):
            assert loop_time() < deadline, "no inbox item"
            await asyncio.sleep(0.05)
        assert [(r.recipient_id, r.title) for r in rows] == [("approver-1", "待审批：合同 CON-7")]
        handled = await sql("SELECT event_id FROM processed_events WHERE consumer = 'notifications-contracts'")
        assert [str(h.event_id) for h in handled] == [e.id]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
