"""quote.accepted through real NATS JetStream: the consumer the service wires drafts exactly one
contract per accepted quote, whether the event arrives twice (same event id) or is replayed under
a new one (R-CON-01)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator

import nats
import pytest

from crm.common.v1 import money_pb2
from crm.opportunities.v1 import events_pb2 as opp_ev
from crm.opportunities.v1 import opportunities_pb2 as opp_pb
from crm_contracts.app import use_cases as uc
from crmkit.events.consumer import EventConsumer, Subscription
from crmkit.events.envelope import build_headers
from crmkit.events.streams import ensure_dead_letter_stream, ensure_service_stream
from crmkit.testing.service import EveryCustomer

pytestmark = pytest.mark.integration


@pytest.fixture
async def js(nats_server) -> AsyncIterator[nats.js.JetStreamContext]:
    nc = await nats.connect(nats_server.url)
    yield nc.jetstream()
    await nc.close()


async def publish(js, message: opp_ev.QuoteAccepted, event_id: str) -> None:
    headers = build_headers(event_id=event_id, event_type=message.DESCRIPTOR.full_name, source="crm/opportunities",
                            actor="rep-east", subject_id=message.quote.id, time=dt.datetime.now(dt.UTC))
    # A distinct Nats-Msg-Id, so JetStream's own de-duplication does not hide the repeat.
    headers["Nats-Msg-Id"] = str(uuid.uuid4())
    await js.publish(uc.QUOTE_ACCEPTED_SUBJECT, message.SerializeToString(), headers=headers)


async def test_quote_accepted_over_nats_drafts_once(js, sessions, sql) -> None:
    await ensure_service_stream(js, "opportunities", 1)
    await ensure_dead_letter_stream(js, 1)
    subscription = Subscription(name=f"contracts-test-{uuid.uuid4().hex[:8]}", stream="CRM_OPPORTUNITIES",
                                subjects=[uc.QUOTE_ACCEPTED_SUBJECT],
                                handler=uc.drafting_from_quote(EveryCustomer("Tubing Buyer Ltd")))
    consumer = asyncio.create_task(EventConsumer(subscription, js, sessions, source="crm/contracts").run())
    quote_id = str(uuid.uuid4())
    message = opp_ev.QuoteAccepted(opportunity_name="Tubing 2027", quote=opp_pb.Quote(
        id=quote_id, opportunity_id=str(uuid.uuid4()), customer_id=str(uuid.uuid4()), currency="CNY",
        lines=[opp_pb.QuoteLine(product="Tubing", quantity="10", unit_price="100", discount_percent="0",
                                tax_rate_percent="13")],
        net_total=money_pb2.Money(amount="1000.00", currency="CNY"), owner_id="rep-east", team_id="east",
        department_path="/sales/east/"))
    first = str(uuid.uuid4())
    try:
        await publish(js, message, first)
        await publish(js, message, first)  # delivered again
        await publish(js, message, str(uuid.uuid4()))  # replayed under a new event id
        deadline = time.monotonic() + 15
        while True:
            handled = await sql("SELECT count(*) AS n FROM processed_events WHERE consumer = :c",
                                c=subscription.name)
            if handled[0].n == 2 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert handled[0].n == 2  # two distinct event ids; the repeat was recognised
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
    rows = await sql("SELECT quote_id, amount, title, owner_id, status FROM contracts")
    assert [(str(r.quote_id), str(r.amount), r.title, r.owner_id, r.status) for r in rows] == [
        (quote_id, "1130.00", "Tubing 2027", "rep-east", "draft")]
