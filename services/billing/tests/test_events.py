"""The consumers on real NATS JetStream: upstream facts published with crmkit's envelope reach
billing's handlers through the subscriptions `wire()` registers, once each."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import grpc
import nats
import pytest

from crm_billing import main
from crm_billing.settings import BillingSettings
from crmkit.events.consumer import EventConsumer, Subscription
from crmkit.events.streams import ensure_dead_letter_stream, ensure_service_stream


@pytest.fixture
async def js(nats_server: Any) -> AsyncIterator[Any]:
    nc = await nats.connect(nats_server.url, name="billing-tests")
    stream = nc.jetstream()
    for producer in ("contracts", "orders", "sap", "customers"):
        await ensure_service_stream(stream, producer, 1)
    await ensure_dead_letter_stream(stream, 1)
    yield stream
    await nc.close()


def _wired() -> tuple[list[Subscription], dict[str, Any]]:
    settings = BillingSettings(database_url="postgresql+asyncpg://unused/db", principal_public_key="unused",
                               default_payment_terms_days=45)
    added: dict[str, Any] = {}
    runtime = SimpleNamespace(settings=settings, sessions=None, subscriptions=[],
                              grpc=SimpleNamespace(add=lambda *args: None),
                              # never called here: the consumers ask no other service
                              caller_channel=lambda target: grpc.aio.insecure_channel("127.0.0.1:9"),
                              add_periodic=lambda name, run, interval: added.__setitem__(name, run))
    main.wire(runtime)  # type: ignore[arg-type]
    return runtime.subscriptions, added


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_contract_and_sap_billing_document_events_become_an_invoice_once(js, sessions, sql, facts) -> None:
    subscriptions, background = _wired()
    assert list(background) == ["billing-overdue-pass"]
    by_subject = {s: sub for sub in subscriptions for s in sub.subjects}
    assert by_subject["crm.sap.billing_document.changed"].stream == "CRM_SAP"
    assert by_subject["crm.contracts.contract.signed"].stream == "CRM_CONTRACTS"
    assert by_subject["crm.orders.order.confirmed"].stream == "CRM_ORDERS"

    customer = uuid.uuid4()
    contract = facts.contract_signed(customer_id=customer, plan=[("2026-09-01", "1130.00")])
    document = facts.billing_document(number=f"9{uuid.uuid4().int % 10**8:08d}", customer_id=customer,
                                      net="1000.00", tax="130.00", total="1130.00", billing_date="2026-08-01")
    signed_event, doc_event = facts.event_of(contract), facts.event_of(document)
    await js.publish(signed_event.subject, signed_event.payload, headers=signed_event.headers)
    # the same document twice (SAP re-sent it; a new event id each time)
    for event in (doc_event, facts.event_of(document)):
        await js.publish(event.subject, event.payload, headers=event.headers)

    suffix = uuid.uuid4().hex[:6]
    tasks = [asyncio.create_task(EventConsumer(
        Subscription(f"{sub.name}-{suffix}", sub.stream, sub.subjects, sub.handler), js, sessions,
        source="crm/billing", max_deliver=2).run()) for sub in subscriptions]
    try:
        async def settled() -> bool:
            rows = await sql("SELECT total, due_on, owner_id FROM invoices WHERE sap_billing_document = :n",
                             n=document.billing_document)
            return bool(rows) and rows[0].owner_id == "rep-east"

        await _until(settled)
        [invoice] = await sql("SELECT total, due_on, owner_id FROM invoices WHERE sap_billing_document = :n",
                              n=document.billing_document)
        # terms from the settings (45 days), owner from the contract copy
        assert (invoice.total, invoice.due_on.isoformat()) == (Decimal("1130.00"), "2026-09-15")
        [instalment] = await sql("SELECT amount, state FROM instalments WHERE customer_id = :c", c=customer)
        assert instalment.amount == Decimal("1130.00")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
