"""Use cases and event handlers on a real PostgreSQL: the contract copy, the cap under real
concurrency, SAP confirmation / status / deliveries, manual deliveries, scopes, the overview."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from decimal import Decimal

import pytest

from crm.billing.v1 import events_pb2 as billing_ev
from crm.common.v1 import money_pb2
from crm.contracts.v1 import events_pb2 as contracts_ev
from crm.sap.v1 import events_pb2 as sap_ev
from crm_orders.app import use_cases as uc
from crm_orders.domain.model import DeliveryLine, DeliveryStatus, OrderStatus, RequestedLine
from crmkit.auth import DataScope, Principal
from crmkit.errors import Conflict, NotFound
from crmkit.testing.principals import ADMIN, DIRECTOR, EAST_MANAGER, EAST_REP, FINANCE, WEST_REP

pytestmark = pytest.mark.integration

D = Decimal
CUSTOMER = uuid.UUID("01930000-0000-7000-8000-00000000c001")
TODAY = dt.date.today()
SERVICE_DESK = Principal(subject="cs", roles=("customer_service",), department_path="/service/",
                         data_scope=DataScope.ALL, permissions=("customers.read", "contracts.read", "orders.read"))
SOON = TODAY + dt.timedelta(days=20)


def new(contract_id: str | uuid.UUID, *lines: tuple[str, str], **kw) -> uc.NewOrder:
    return uc.NewOrder(**({"contract_id": uuid.UUID(str(contract_id)),
                           "lines": [RequestedLine(lid, D(q)) for lid, q in lines],
                           "requested_delivery_date": SOON, "customer_reference": "PO-7781"} | kw))


def money(amount: str) -> money_pb2.Money:
    return money_pb2.Money(amount=amount, currency="CNY")


@pytest.fixture
def signed(deliver, contract_of):
    """`await signed(deliver, **kw)`: a contract signed and copied (100 × L1 at 1000, 10 × L2 at 5000)."""

    async def sign(_deliver, **kw) -> contracts_ev.ContractSigned:
        message = contract_of(**kw)
        await deliver(message)
        return message

    return sign


async def test_an_order_against_a_signed_contract(call, deliver, outbox, signed) -> None:
    c = await signed(deliver)
    view = await call(EAST_REP, uc.create_order, new(c.contract_id, ("L1", "20"), ("L2", "2")))
    o = view.order
    assert re.fullmatch(rf"SO-{TODAY.year}-\d{{6}}", o.number)
    assert (o.status, o.amount, o.currency, o.customer_id, o.owner_id, o.team_ids, o.contract_number) == (
        OrderStatus.SUBMITTED, D("30000.00"), "CNY", CUSTOMER, "rep-east", ("east",), "CON-2026-000123")
    assert [(li.line_number, li.contract_line_id, li.quantity, li.unit_price, li.amount) for li in o.lines] == [
        (1, "L1", D(20), D("1000.00"), D("20000.00")), (2, "L2", D(2), D("5000.00"), D("10000.00"))]
    second = (await call(EAST_REP, uc.create_order, new(c.contract_id, ("L1", "1")))).order
    assert int(second.number[-6:]) == int(o.number[-6:]) + 1
    [first_event, _] = await outbox()
    assert first_event.subject == "crm.orders.order.submitted"
    snap = first_event.message().order
    assert (snap.order_id, snap.order_number, snap.status, snap.amount.amount, snap.customer_reference) == (
        str(o.id), o.number, "submitted", "30000.00", "PO-7781")
    assert [(li.line_id, li.quantity, li.unit_price.amount, li.requested_delivery_date) for li in snap.lines] == [
        (str(o.lines[0].id), "20", "1000.00", SOON.isoformat()), (str(o.lines[1].id), "2", "5000.00", SOON.isoformat())]


async def test_orders_may_not_exceed_the_contract_together(call, deliver, signed) -> None:
    c = await signed(deliver)
    first = (await call(EAST_REP, uc.create_order, new(c.contract_id, ("L1", "60")))).order
    with pytest.raises(Conflict) as err:
        await call(EAST_REP, uc.create_order, new(c.contract_id, ("L1", "41")))
    assert err.value.reason == "CONTRACT_QUANTITY_EXCEEDED" and err.value.metadata["remaining"] == "40"
    await call(EAST_REP, uc.create_order, new(c.contract_id, ("L1", "40")))
    # a cancelled order's quantities are free again
    await call(EAST_REP, uc.cancel_order, first.id, "customer postponed")
    await call(EAST_REP, uc.create_order, new(c.contract_id, ("L1", "60")))
    with pytest.raises(Conflict):
        await call(EAST_REP, uc.create_order, new(c.contract_id, ("L1", "1")))


async def test_the_amount_cap(call, deliver, signed) -> None:
    # lines without net amounts, priced at list price (150 000 in all); the contract amount caps them
    c = await signed(deliver, amount="120000.00", line_amounts=False)
    await call(EAST_REP, uc.create_order, new(c.contract_id, ("L1", "100")))
    with pytest.raises(Conflict) as err:
        await call(EAST_REP, uc.create_order, new(c.contract_id, ("L2", "5")))
    assert err.value.reason == "CONTRACT_AMOUNT_EXCEEDED" and err.value.metadata["remaining"] == "20000.00"
    await call(EAST_REP, uc.create_order, new(c.contract_id, ("L2", "4")))


async def test_concurrent_orders_cannot_together_exceed_the_contract(call, deliver, sessions, signed) -> None:
    c = await signed(deliver)
    # Eight orders of 30 valves at once, each in its own connection: only three fit in 100.
    results = await asyncio.gather(*(call(EAST_REP, uc.create_order, new(c.contract_id, ("L1", "30")))
                                     for _ in range(8)), return_exceptions=True)
    placed = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(placed) == 3 and len(refused) == 5
    assert all(isinstance(r, Conflict) and r.reason == "CONTRACT_QUANTITY_EXCEEDED" for r in refused)
    orders, _ = await call(EAST_REP, uc.list_orders, page_token="", limit=50, contract_id=uuid.UUID(c.contract_id))
    assert sum(o.order.lines[0].quantity for o in orders) == D(90)
    assert len({o.order.number for o in orders}) == 3


async def test_only_live_contracts_and_amendments(call, deliver, signed) -> None:
    c = await signed(deliver)
    with pytest.raises(NotFound):
        await call(EAST_REP, uc.create_order, new(uuid.uuid4(), ("L1", "1")))
    await call(EAST_REP, uc.create_order, new(c.contract_id, ("L1", "100")))
    await deliver(contracts_ev.ContractAmended(
        contract_id=c.contract_id, version=2, amount=money("200000.00"), lines=[
            contracts_ev.ContractLine(line_id="L1", product="Valve", quantity="150", unit="pcs",
                                      unit_price=money("1000.00"))]))
    await call(EAST_REP, uc.create_order, new(c.contract_id, ("L1", "50")))
    with pytest.raises(Conflict) as err:  # L2 was dropped by the amendment
        await call(EAST_REP, uc.create_order, new(c.contract_id, ("L2", "1")))
    assert err.value.reason == "CONTRACT_LINE_REMOVED"
    # a late, older amendment changes nothing
    await deliver(contracts_ev.ContractAmended(contract_id=c.contract_id, version=1, amount=money("1.00")))
    with pytest.raises(Conflict) as err:
        await call(EAST_REP, uc.create_order, new(c.contract_id, ("L1", "1")))
    assert err.value.reason == "CONTRACT_QUANTITY_EXCEEDED"
    await deliver(contracts_ev.ContractTerminated(contract_id=c.contract_id, reason="customer insolvent"))
    with pytest.raises(Conflict) as err:
        await call(EAST_REP, uc.create_order, new(c.contract_id, ("L1", "0.5")))
    assert err.value.reason == "CONTRACT_TERMINATED"
    expired = await signed(deliver, end_date=TODAY - dt.timedelta(days=1))
    with pytest.raises(Conflict) as err:
        await call(EAST_REP, uc.create_order, new(expired.contract_id, ("L1", "1")))
    assert err.value.reason == "CONTRACT_EXPIRED"


async def test_data_scope_of_orders_is_the_contracts(call, deliver, signed) -> None:
    east = await signed(deliver)
    with pytest.raises(NotFound):  # a contract outside the caller's scope cannot be ordered against
        await call(WEST_REP, uc.create_order, new(east.contract_id, ("L1", "1")))
    o = (await call(EAST_REP, uc.create_order, new(east.contract_id, ("L1", "1")))).order
    for who in (EAST_REP, EAST_MANAGER, DIRECTOR, ADMIN, FINANCE, SERVICE_DESK):
        assert (await call(who, uc.get_order, o.id)).order.id == o.id
    with pytest.raises(NotFound):
        await call(WEST_REP, uc.get_order, o.id)
    listed, _ = await call(WEST_REP, uc.list_orders, page_token="", limit=10)
    assert listed == []


async def test_sap_confirms_moves_and_delivers_the_order(call, deliver, outbox, signed) -> None:
    c = await signed(deliver)
    o = (await call(EAST_REP, uc.create_order, new(c.contract_id, ("L1", "10"), ("L2", "2")))).order
    l1, l2 = o.lines
    created = sap_ev.SalesOrderCreated(order_id=str(o.id), sales_order="4500012",
                                       item_numbers={str(l1.id): "10", str(l2.id): "20"})
    await deliver(created)
    await deliver(created)  # SAP integration retried: nothing new
    view = await call(EAST_REP, uc.get_order, o.id)
    assert (view.order.status, view.order.sap_sales_order, [li.sap_item for li in view.order.lines]) == (
        OrderStatus.CONFIRMED, "4500012", ["10", "20"])

    await deliver(sap_ev.SalesOrderStatusChanged(order_id=str(o.id), sales_order="4500012", overall_status="B",
                                                 delivery_status="A"))
    assert (await call(EAST_REP, uc.get_order, o.id)).order.status is OrderStatus.IN_PRODUCTION

    # a delivery created in SAP, goods not issued: planned, the order does not move
    planned = sap_ev.OutboundDeliveryChanged(
        delivery_document="80000001", order_id=str(o.id), sales_order="4500012", goods_movement_status="A",
        items=[sap_ev.OutboundDeliveryItem(delivery_item="10", sales_order_item="10", quantity="4", unit="PC"),
               sap_ev.OutboundDeliveryItem(delivery_item="20", sales_order_item="10", quantity="2", unit="PC")])
    await deliver(planned)
    assert (await call(EAST_REP, uc.get_order, o.id)).order.status is OrderStatus.IN_PRODUCTION
    # the same delivery, goods issued (items by CRM line id this time): shipped, partially
    issued = sap_ev.OutboundDeliveryChanged()
    issued.CopyFrom(planned)
    issued.goods_movement_status, issued.goods_movement_date = "C", TODAY.isoformat()
    issued.carrier, issued.tracking_number = "SF Express", "SF1234567890"
    await deliver(issued)
    await deliver(issued)  # unchanged: no second event
    view = await call(EAST_REP, uc.get_order, o.id)
    assert view.order.status is OrderStatus.SHIPPED and view.delivered == {l1.id: D(6)}
    [d] = (await call(EAST_REP, uc.list_deliveries, order_id=o.id, page_token="", limit=10))[0]
    assert (d.sap_delivery, d.status, d.shipped_on, d.carrier, [(li.order_line_id, li.quantity) for li in d.lines]) \
        == ("80000001", DeliveryStatus.SHIPPED, TODAY, "SF Express", [(l1.id, D(6))])
    # a late status report does not take it back to production
    await deliver(sap_ev.SalesOrderStatusChanged(order_id=str(o.id), sales_order="4500012", overall_status="B",
                                                 delivery_status="B"))
    assert (await call(EAST_REP, uc.get_order, o.id)).order.status is OrderStatus.SHIPPED
    with pytest.raises(Conflict) as err:
        await call(EAST_REP, uc.cancel_order, o.id, "too late")
    assert err.value.reason == "ORDER_NOT_CANCELLABLE"
    # the rest in a second delivery: delivered
    await deliver(sap_ev.OutboundDeliveryChanged(
        delivery_document="80000002", order_id=str(o.id), sales_order="4500012", goods_movement_status="C",
        goods_movement_date=TODAY.isoformat(), items=[
            sap_ev.OutboundDeliveryItem(sales_order_item="10", order_line_id=str(l1.id), quantity="4"),
            sap_ev.OutboundDeliveryItem(sales_order_item="000020", quantity="2")]))
    view = await call(EAST_REP, uc.get_order, o.id)
    assert view.order.status is OrderStatus.DELIVERED and view.delivered == {l1.id: D(10), l2.id: D(2)}
    await deliver(sap_ev.SalesOrderStatusChanged(order_id=str(o.id), sales_order="4500012", overall_status="C",
                                                 delivery_status="C", billing_status="C"))
    assert (await call(EAST_REP, uc.get_order, o.id)).order.status is OrderStatus.CLOSED

    events = [(e.subject, e.message()) for e in await outbox()]
    assert [s for s, _ in events] == [
        "crm.orders.order.submitted",
        "crm.orders.order.status_changed", "crm.orders.order.confirmed",  # SAP created it
        "crm.orders.order.status_changed",  # in production
        "crm.orders.delivery.recorded",  # planned
        "crm.orders.delivery.recorded", "crm.orders.order.status_changed",  # goods issued → shipped
        "crm.orders.delivery.recorded", "crm.orders.order.status_changed",  # the rest → delivered
        "crm.orders.order.status_changed",  # closed
    ]
    assert [(m.from_status, m.to_status) for s, m in events if s.endswith("status_changed")] == [
        ("submitted", "confirmed"), ("confirmed", "in_production"), ("in_production", "shipped"),
        ("shipped", "delivered"), ("delivered", "closed")]
    confirmed = events[2][1]
    assert confirmed.sap_sales_order == "4500012" and confirmed.order.status == "confirmed"
    shipped = events[5][1]
    assert (shipped.sap_delivery, shipped.status, shipped.shipped_on, shipped.tracking_number,
            [(li.order_line_id, li.quantity) for li in shipped.lines]) == (
        "80000001", "shipped", TODAY.isoformat(), "SF1234567890", [(str(l1.id), "6")])


async def test_manual_deliveries_for_setups_without_sap(call, deliver, outbox, signed) -> None:
    c = await signed(deliver)
    o = (await call(EAST_REP, uc.create_order, new(c.contract_id, ("L1", "10")))).order
    await call(EAST_REP, uc.confirm_order, o.id, 1)
    await call(EAST_REP, uc.start_production, o.id)
    line = o.lines[0].id
    first = await call(EAST_REP, uc.create_delivery, uc.NewDelivery(o.id, TODAY, [DeliveryLine(line, D(7))],
                                                                    "Deppon", "DP-1"))
    assert (first.source.value, first.status, first.order_number) == ("manual", DeliveryStatus.SHIPPED, o.number)
    assert (await call(EAST_REP, uc.get_order, o.id)).order.status is OrderStatus.SHIPPED
    with pytest.raises(Conflict) as err:
        await call(EAST_REP, uc.create_delivery, uc.NewDelivery(o.id, TODAY, [DeliveryLine(line, D(4))]))
    assert err.value.reason == "DELIVERY_QUANTITY_EXCEEDED"
    await call(EAST_REP, uc.create_delivery, uc.NewDelivery(o.id, TODAY, [DeliveryLine(line, D(3))]))
    assert (await call(EAST_REP, uc.get_order, o.id)).order.status is OrderStatus.DELIVERED
    closed = await call(EAST_REP, uc.close_order, o.id)
    assert (closed.order.status, closed.order.version) == (OrderStatus.CLOSED, 6)
    assert (await call(EAST_REP, uc.get_delivery, first.id)).tracking_number == "DP-1"
    with pytest.raises(NotFound):
        await call(WEST_REP, uc.get_delivery, first.id)
    assert [e.subject for e in await outbox()].count("crm.orders.delivery.recorded") == 2


async def test_the_order_overview(call, deliver, signed, owners) -> None:
    c = await signed(deliver)
    other = await signed(deliver)
    west = await signed(deliver, owner_id="rep-west", team_ids=("west",), department_path="/sales/west/")
    # The customer was West's when West ordered (no reassignment event reached orders since).
    await owners.move_customer(owner_id="rep-west", team_id="west", department_path="/sales/west/")
    o3 = (await call(WEST_REP, uc.create_order, new(west.contract_id, ("L1", "1")))).order
    await owners.move_customer(owner_id="rep-east", team_id="east", department_path="/sales/east/")
    o1 = (await call(EAST_REP, uc.create_order, new(c.contract_id, ("L1", "10")))).order
    o2 = (await call(EAST_REP, uc.create_order, new(other.contract_id, ("L2", "1")))).order
    await call(EAST_REP, uc.create_delivery, uc.NewDelivery(o1.id, TODAY, [DeliveryLine(o1.lines[0].id, D(4))]))
    invoice = billing_ev.InvoiceIssued(
        invoice_id=str(uuid.uuid4()), invoice_number="INV-2026-000007", kind="invoice", customer_id=str(CUSTOMER),
        contract_id=c.contract_id, order_id=str(o1.id), net_amount=money("4000.00"), tax_amount=money("520.00"),
        total=money("4520.00"), issued_on=TODAY.isoformat(), due_on=(TODAY + dt.timedelta(days=30)).isoformat())
    await deliver(invoice)
    deposit = billing_ev.InvoiceIssued(invoice_id=str(uuid.uuid4()), invoice_number="INV-2026-000008",
                                       kind="invoice", customer_id=str(CUSTOMER), contract_id=other.contract_id,
                                       total=money("1000.00"))
    await deliver(deposit)
    payment = billing_ev.PaymentReceived(
        payment_id=str(uuid.uuid4()), customer_id=str(CUSTOMER), amount=money("3000.00"),
        allocated=money("3000.00"), unallocated=money("0.00"), received_on=TODAY.isoformat(), reference="BANK-1",
        contract_ids=[c.contract_id])
    await deliver(payment)
    payment.allocated.amount, payment.amount.amount = "4520.00", "4520.00"  # re-announced after allocation
    await deliver(payment)
    await deliver(billing_ev.PaymentReceived(payment_id=str(uuid.uuid4()), customer_id=str(CUSTOMER),
                                             amount=money("9.00"), contract_ids=[west.contract_id]))

    desk = await call(SERVICE_DESK, uc.order_overview, CUSTOMER)
    assert [e.view.order.id for e in desk.entries] == [o2.id, o1.id, o3.id] and not desk.truncated
    e1 = desk.entries[1]
    assert e1.view.delivered == {o1.lines[0].id: D(4)} and len(e1.deliveries) == 1
    assert [(i.number, i.total) for i in e1.invoices] == [("INV-2026-000007", D("4520.00"))]
    assert [i.number for i in desk.contract_invoices] == ["INV-2026-000008"]
    assert sorted(p.amount for p in desk.payments) == [D("9.00"), D("4520.00")]

    # the east rep sees only their own orders, and payments of those contracts only
    rep = await call(EAST_REP, uc.order_overview, CUSTOMER)
    assert [e.view.order.id for e in rep.entries] == [o2.id, o1.id]
    assert [(p.reference, p.allocated) for p in rep.payments] == [("BANK-1", D("4520.00"))]
    truncated = await call(SERVICE_DESK, uc.order_overview, CUSTOMER, limit=2)
    assert truncated.truncated and len(truncated.entries) == 2
    # a customer that does not exist, or that the caller may not see, has no overview at all
    for who, customer_id in ((SERVICE_DESK, uuid.uuid4()), (WEST_REP, CUSTOMER)):
        with pytest.raises(NotFound) as absent:
            await call(who, uc.order_overview, customer_id)
        assert absent.value.reason == "REFERENCE_NOT_FOUND"


async def test_sap_reports_for_cancelled_or_unknown_orders(call, deliver, outbox, signed) -> None:
    c = await signed(deliver)
    o = (await call(EAST_REP, uc.create_order, new(c.contract_id, ("L1", "3")))).order
    await call(EAST_REP, uc.cancel_order, o.id, "customer withdrew")
    await deliver(sap_ev.SalesOrderCreated(order_id=str(o.id), sales_order="4500077"))
    await deliver(sap_ev.SalesOrderStatusChanged(order_id=str(o.id), sales_order="4500077", overall_status="C"))
    await deliver(sap_ev.SalesOrderCreated(order_id=str(uuid.uuid4()), sales_order="4500078"))
    await deliver(sap_ev.SalesOrderCreated(order_id="not-an-id", sales_order="4500079"))
    after = (await call(EAST_REP, uc.get_order, o.id)).order
    assert (after.status, after.sap_sales_order) == (OrderStatus.CANCELLED, "4500077")
    assert [e.subject for e in await outbox()] == ["crm.orders.order.submitted", "crm.orders.order.status_changed",
                                                   "crm.orders.order.cancelled"]
    # a status report that overtook the creation report still confirms (and numbers) the order
    o2 = (await call(EAST_REP, uc.create_order, new(c.contract_id, ("L1", "3")))).order
    await deliver(sap_ev.SalesOrderStatusChanged(sales_order="4500080", order_id=str(o2.id), overall_status="B"))
    after2 = (await call(EAST_REP, uc.get_order, o2.id)).order
    assert (after2.status, after2.sap_sales_order) == (OrderStatus.IN_PRODUCTION, "4500080")
    assert [e.subject for e in await outbox()][-3:] == ["crm.orders.order.status_changed",
                                                        "crm.orders.order.confirmed",
                                                        "crm.orders.order.status_changed"]


async def test_orders_are_priced_net_and_add_up_to_the_line(call, deliver, contract_of, outbox) -> None:
    # 3 seals at 70.00 list with a discount: 200.00 net for the line (contract amount incl. tax 226.00)
    message = contract_of(amount="226.00", lines=[("S", "3", "70.00")])
    message.lines[0].amount.amount = "200.00"
    await deliver(message)
    amounts = [(await call(EAST_REP, uc.create_order, new(message.contract_id, ("S", "1")))).order.amount
               for _ in range(3)]
    assert amounts == [D("66.67"), D("66.67"), D("66.66")]
    [first, *_] = await outbox()
    line = first.message().order.lines[0]
    assert (line.unit_price.amount, line.amount.amount) == ("66.6667", "66.67")
    with pytest.raises(Conflict) as err:
        await call(EAST_REP, uc.create_order, new(message.contract_id, ("S", "0.001")))
    assert err.value.reason == "CONTRACT_QUANTITY_EXCEEDED"


async def test_lists_page_with_cursors(call, deliver, signed) -> None:
    c = await signed(deliver)
    placed = [(await call(EAST_REP, uc.create_order, new(c.contract_id, ("L1", "1")))).order.id for _ in range(3)]
    first, token = await call(EAST_REP, uc.list_orders, page_token="", limit=2)
    second, end = await call(EAST_REP, uc.list_orders, page_token=token, limit=2)
    assert [v.order.id for v in first + second] == placed[::-1] and token and end == ""
    for oid in placed[:2]:
        await call(EAST_REP, uc.confirm_order, oid)
        await call(EAST_REP, uc.create_delivery, uc.NewDelivery(oid, TODAY, [
            DeliveryLine((await call(EAST_REP, uc.get_order, oid)).order.lines[0].id, D("0.5"))]))
    page, token = await call(EAST_REP, uc.list_deliveries, order_id=None, page_token="", limit=1)
    rest, end = await call(EAST_REP, uc.list_deliveries, order_id=None, page_token=token, limit=1)
    assert [d.order_id for d in page + rest] == [placed[1], placed[0]] and end == ""
    shipped, _ = await call(EAST_REP, uc.list_orders, page_token="", limit=10, status="shipped")
    assert sorted(v.order.id for v in shipped) == sorted(placed[:2])
