"""Delta pulls: the simulator confirms, delivers and bills; the pull publishes the status change,
the delivery (items mapped to CRM order lines) and the invoice once each, paging through SAP's
`$top`/`$skip` and `__next` pages, and publishes again only what changed."""

from __future__ import annotations

import uuid

import pytest
from sap_test_helpers import Bus, created, customer, drain_outbound, line_id, order

from crm.orders.v1 import events_pb2 as order_events

pytestmark = pytest.mark.integration

ACME = uuid.UUID("01930000-0000-7000-8000-0000000000a1")
LINES = [("VALVE-DN50", "2", "100.00"), ("SEAL-KIT", "3", "50.00")]
ORDERS = [uuid.UUID(f"01930000-0000-7000-8000-0000000000f{n}") for n in range(1, 6)]


async def test_order_delivery_and_invoice_flow_back_once(
        nats_server, sessions, simulator, sap, outbound, inbound, clock, outbox, sql):
    async with Bus(nats_server.url, sessions) as bus:
        await bus.publish(created(customer(ACME, "Acme Valves")), *[
            order_events.OrderSubmitted(order=order(o, ACME, LINES, number=f"SO-2026-00000{n}"))
            for n, o in enumerate(ORDERS, 1)])
        await bus.drain()
    await drain_outbound(outbound, clock)
    numbers = dict(await sql("SELECT crm_id, sap_number FROM sync_records WHERE kind = 'sales_order'"))
    first = numbers[ORDERS[0]]

    # Fresh orders in status A/A/A are not news: SalesOrderCreated told the CRM already.
    assert await inbound.run_pass() == {"A_SalesOrder": 0, "A_OutbDeliveryHeader": 0, "A_BillingDocument": 0}
    # The first pass also held the system's $metadata against what the client uses: nothing lacks.
    assert inbound.missing == {"API_BUSINESS_PARTNER": [], "API_SALES_ORDER_SRV": [],
                               "API_OUTBOUND_DELIVERY_SRV;v=0002": [], "API_BILLING_DOCUMENT_SRV": []}

    delivery = simulator.command("POST", f"/_sim/sales-orders/{first}/deliver",
                                 {"bill_of_lading": "SF1234567890", "means_of_transport": "SF Express"})["key"]
    assert await inbound.run_pass() == {"A_SalesOrder": 1, "A_OutbDeliveryHeader": 1, "A_BillingDocument": 0}
    [status] = await outbox("crm.sap.sales_order.status_changed")
    assert (status.order_id, status.sales_order, status.overall_status, status.delivery_status,
            status.billing_status) == (str(ORDERS[0]), first, "B", "C", "A")
    [dlv] = await outbox("crm.sap.outbound_delivery.changed")
    assert (dlv.delivery_document, dlv.order_id, dlv.sales_order, dlv.goods_movement_status) == (
        delivery, str(ORDERS[0]), first, "C")
    assert (dlv.carrier, dlv.tracking_number) == ("SF Express", "SF1234567890")
    assert dlv.goods_movement_date == clock.now.date().isoformat() or len(dlv.goods_movement_date) == 10
    assert [(i.delivery_item, i.sales_order_item, i.order_line_id, i.material, i.quantity) for i in dlv.items] == [
        ("10", "10", line_id(ORDERS[0], 1), "VALVE-DN50", "2"),
        ("20", "20", line_id(ORDERS[0], 2), "SEAL-KIT", "3")]

    bill = simulator.command("POST", f"/_sim/sales-orders/{first}/bill")["key"]
    assert await inbound.run_pass() == {"A_SalesOrder": 1, "A_OutbDeliveryHeader": 1, "A_BillingDocument": 1}
    [invoice] = await outbox("crm.sap.billing_document.changed")
    # 2 x 100.00 + 3 x 50.00 = 350.00 net; 13 % VAT = 45.50; 395.50 gross.
    assert (invoice.billing_document, invoice.document_type, invoice.order_id, invoice.customer_id,
            invoice.sales_order, invoice.cancelled, invoice.credit) == (
        bill, "F2", str(ORDERS[0]), str(ACME), first, False, False)
    assert (invoice.net_amount.amount, invoice.tax_amount.amount, invoice.total.amount, invoice.total.currency) == (
        "350.00", "45.50", "395.50", "CNY")
    statuses = [(m.overall_status, m.delivery_status, m.billing_status)
                for m in await outbox("crm.sap.sales_order.status_changed")]
    assert statuses == [("B", "C", "A"), ("C", "C", "C")]

    # Nothing changed since: the overlap re-reads, nothing is published twice.
    assert await inbound.run_pass() == {"A_SalesOrder": 0, "A_OutbDeliveryHeader": 0, "A_BillingDocument": 0}
    marks = dict(await sql("SELECT entity_set, value FROM watermarks"))
    assert set(marks) == {"A_SalesOrder", "A_OutbDeliveryHeader", "A_BillingDocument"}

    # A cancelled invoice is published again, as cancelled.
    simulator.command("POST", f"/_sim/billing-documents/{bill}/cancel")
    await inbound.run_pass()
    changed = [(m.billing_document, m.cancelled, m.document_type, m.credit)
               for m in await outbox("crm.sap.billing_document.changed")]
    assert changed[0] == (bill, False, "F2", False)
    assert sorted(changed[1:]) == sorted([(bill, True, "F2", False), (str(int(bill) + 1), False, "S1", True)])

    # Paging: every order delivered, 5 rows through $top=3 pages and the server's 2-row __next pages.
    for n in ORDERS[1:]:
        simulator.command("POST", f"/_sim/sales-orders/{numbers[n]}/deliver")
    published = await inbound.run_pass()
    assert published["A_SalesOrder"] == 4 and published["A_OutbDeliveryHeader"] == 4
    delivered = {m.order_id for m in await outbox("crm.sap.outbound_delivery.changed")}
    assert delivered == {str(o) for o in ORDERS}
