"""REST in front of the orders service: placing orders against a contract copy, 409 when the
contract would be exceeded, cancel / confirm / production / deliveries / close, the order overview,
403 without the permission, data scopes (R-ORD-01, R-ORD-02)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest
from sqlalchemy import text

from crm.billing.v1 import events_pb2 as billing_ev
from crm.common.v1 import money_pb2
from crm.contracts.v1 import events_pb2 as contracts_ev
from crm_customers.adapters.repository import CustomerRepository
from crm_customers.domain.model import Customer
from crm_orders.app import handlers
from crmkit.db import UnitOfWork
from crmkit.events.envelope import Event, build_headers, subject_of
from crmkit.testing.principals import EAST_REP, MARKETING, WEST_REP

pytestmark = pytest.mark.integration

# customers.read as reps hold it: orders asks the customers service about the order's customer as the caller.
PERMS = ("orders.read", "orders.write", "customers.read")
REP = dataclasses.replace(EAST_REP, subject=f"ord-rep-{uuid.uuid4().hex[:6]}", permissions=PERMS)
OTHER_REP = dataclasses.replace(WEST_REP, subject=f"ord-west-{uuid.uuid4().hex[:6]}", permissions=PERMS)
# Every role that reads orders reads customers too: the overview is shown only of a customer the caller sees.
READER = dataclasses.replace(MARKETING, subject=f"ord-reader-{uuid.uuid4().hex[:6]}",
                             permissions=("orders.read", "customers.read"))
NOBODY = dataclasses.replace(MARKETING, subject=f"ord-nobody-{uuid.uuid4().hex[:6]}",
                             permissions=("customers.read",))
TODAY = dt.date.today()
SOON = (TODAY + dt.timedelta(days=14)).isoformat()


def _money(amount: str) -> money_pb2.Money:
    return money_pb2.Money(amount=amount, currency="CNY")


async def _handle(sessions, message) -> None:
    """The event as the orders service's consumer applies it."""
    event_id = str(uuid.uuid4())
    event = Event(id=event_id, subject=subject_of(message), type=message.DESCRIPTOR.full_name,
                  payload=message.SerializeToString(),
                  headers=build_headers(event_id=event_id, event_type=message.DESCRIPTOR.full_name,
                                        source="crm/test", actor="", subject_id="", time=dt.datetime.now(dt.UTC)))
    handler = handlers.on_contract_event if message.DESCRIPTOR.file.package == "crm.contracts.v1" \
        else handlers.on_billing_event
    async with UnitOfWork(sessions, "crm/orders") as uow:
        await handler(uow, event)
        await uow.commit()


async def _customer(customers_sessions, owner=REP, customer_id: str | None = None) -> str:
    """A customer of `owner` in the customers service (a new one, or `customer_id` moved to them)."""
    async with customers_sessions() as s, s.begin():
        if customer_id is None:
            customer = await CustomerRepository(s).add(Customer(
                id=uuid.uuid4(), name="Minhou Pumps", owner_id=owner.subject, team_id=owner.team_ids[0],
                department_path=owner.department_path))
            return str(customer.id)
        await s.execute(text("UPDATE customers SET owner_id = :o, team_id = :t, department_path = :d WHERE id = :id"),
                        {"o": owner.subject, "t": owner.team_ids[0], "d": owner.department_path, "id": customer_id})
        return customer_id


async def _contract(sessions, customer_id: str, owner=REP) -> str:
    """A contract signed for `customer_id`, owned by `owner`: 100 valves at 250.00, 2 installs at 3000.00."""
    contract_id = str(uuid.uuid4())
    await _handle(sessions, contracts_ev.ContractSigned(
        contract_id=contract_id, contract_number="CON-2026-000777", customer_id=customer_id,
        customer_name="Minhou Pumps", amount=_money("31000.00"), owner_id=owner.subject,
        team_ids=list(owner.team_ids), department_path=owner.department_path,
        start_date=(TODAY - dt.timedelta(days=1)).isoformat(), end_date=(TODAY + dt.timedelta(days=300)).isoformat(),
        lines=[contracts_ev.ContractLine(line_id="valve", product="Valve DN80", quantity="100", unit="pcs",
                                         unit_price=_money("250.00")),
               contracts_ev.ContractLine(line_id="install", product="Installation", quantity="2", unit="day",
                                         unit_price=_money("3000.00"))]))
    return contract_id


async def _place(client, auth, contract_id: str, *lines: tuple[str, str], principal=REP):
    return await client.post("/api/v1/orders", headers=auth(principal), json={
        "contract_id": contract_id, "requested_delivery_date": SOON, "customer_reference": "PO-2026-118",
        "lines": [{"contract_line_id": lid, "quantity": q} for lid, q in lines]})


async def test_order_lifecycle_over_rest(client, auth, assert_problem, orders_sessions, customers_sessions) -> None:
    customer = await _customer(customers_sessions)
    contract_id = await _contract(orders_sessions, customer)
    placed = await _place(client, auth, contract_id, ("valve", "60"), ("install", "1"))
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert placed.headers["location"] == f"/api/v1/orders/{order['id']}" and placed.headers["etag"] == '"v1"'
    assert order["order_number"].startswith(f"SO-{TODAY.year}-") and len(order["order_number"]) == 14
    assert (order["status"], order["amount"], order["customer_id"], order["contract_number"]) == (
        "submitted", {"amount": "18000.00", "currency": "CNY"}, customer, "CON-2026-000777")
    assert [(li["line_number"], li["quantity"], li["unit_price"]["amount"], li["amount"]["amount"],
             li["delivered_quantity"]) for li in order["lines"]] == [(1, "60", "250.00", "15000.00", "0"),
                                                                     (2, "1", "3000.00", "3000.00", "0")]
    # 60 + 41 > 100 valves: refused, naming the rule
    exceeded = await _place(client, auth, contract_id, ("valve", "41"))
    body = assert_problem(exceeded, 409, reason="CONTRACT_QUANTITY_EXCEEDED", detail_mentions=("40",))
    assert body["type"] == "/problems/contract-quantity-exceeded"
    bad = await _place(client, auth, contract_id, ("valve", "-3"))
    assert_problem(bad, 422)
    unknown = await _place(client, auth, contract_id, ("nut", "1"))
    assert_problem(unknown, 422, fields=("lines[0].contract_line_id",))

    url = f"/api/v1/orders/{order['id']}"
    listed = await client.get("/api/v1/orders", params={"contract_id": contract_id, "status": "submitted"},
                              headers=auth(REP))
    assert [o["id"] for o in listed.json()["items"]] == [order["id"]]
    stale = await client.post(f"{url}/confirm", headers=auth(REP) | {"If-Match": '"v9"'})
    assert_problem(stale, 412, reason="STALE_VERSION")
    confirmed = await client.post(f"{url}/confirm", headers=auth(REP) | {"If-Match": '"v1"'})
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "confirmed"
    assert confirmed.headers["etag"] == '"v2"'
    producing = await client.post(f"{url}/start-production", headers=auth(REP))
    assert producing.json()["status"] == "in_production"
    early = await client.post(f"{url}/close", headers=auth(REP))
    assert_problem(early, 409, reason="ORDER_NOT_DELIVERED")

    lines = {li["contract_line_id"]: li["id"] for li in order["lines"]}
    shipped = await client.post("/api/v1/deliveries", headers=auth(REP), json={
        "order_id": order["id"], "shipped_on": TODAY.isoformat(), "carrier": "SF Express",
        "tracking_number": "SF100200300", "lines": [{"order_line_id": lines["valve"], "quantity": "60"}]})
    assert shipped.status_code == 201, shipped.text
    delivery = shipped.json()
    assert (delivery["source"], delivery["status"], delivery["order_number"], delivery["sap_delivery"]) == (
        "manual", "shipped", order["order_number"], None)
    assert (await client.get(url, headers=auth(REP))).json()["status"] == "shipped"
    too_late = await client.post(f"{url}/cancel", json={"reason": "changed plans"}, headers=auth(REP))
    assert_problem(too_late, 409, reason="ORDER_NOT_CANCELLABLE")
    over = await client.post("/api/v1/deliveries", headers=auth(REP), json={
        "order_id": order["id"], "shipped_on": TODAY.isoformat(),
        "lines": [{"order_line_id": lines["install"], "quantity": "2"}]})
    assert_problem(over, 409, reason="DELIVERY_QUANTITY_EXCEEDED")
    rest = await client.post("/api/v1/deliveries", headers=auth(REP), json={
        "order_id": order["id"], "shipped_on": TODAY.isoformat(),
        "lines": [{"order_line_id": lines["install"], "quantity": "1"}]})
    assert rest.status_code == 201
    delivered = (await client.get(url, headers=auth(REP))).json()
    assert delivered["status"] == "delivered"
    assert [li["delivered_quantity"] for li in delivered["lines"]] == ["60", "1"]
    of_order = await client.get("/api/v1/deliveries", params={"order_id": order["id"]}, headers=auth(REP))
    assert [d["id"] for d in of_order.json()["items"]] == [rest.json()["id"], delivery["id"]]
    one = await client.get(f"/api/v1/deliveries/{delivery['id']}", headers=auth(REP))
    assert one.json()["tracking_number"] == "SF100200300"
    closed = await client.post(f"{url}/close", headers=auth(REP))
    assert closed.json()["status"] == "closed"


async def test_cancel_frees_the_contract(client, auth, assert_problem, orders_sessions, customers_sessions) -> None:
    contract_id = await _contract(orders_sessions, await _customer(customers_sessions))
    first = (await _place(client, auth, contract_id, ("install", "2"))).json()
    assert_problem(await _place(client, auth, contract_id, ("install", "1")), 409,
                   reason="CONTRACT_QUANTITY_EXCEEDED")
    empty = await client.post(f"/api/v1/orders/{first['id']}/cancel", json={"reason": ""}, headers=auth(REP))
    assert_problem(empty, 422)
    cancelled = await client.post(f"/api/v1/orders/{first['id']}/cancel", json={"reason": "customer postponed"},
                                  headers=auth(REP) | {"If-Match": '"v1"'})
    assert (cancelled.json()["status"], cancelled.json()["cancel_reason"]) == ("cancelled", "customer postponed")
    assert (await _place(client, auth, contract_id, ("install", "2"))).status_code == 201


async def test_order_overview(client, auth, assert_problem, orders_sessions, customers_sessions) -> None:
    # The customer was the west rep's when they ordered, then moved to this rep (no reassignment
    # event reached orders in between, so the west order keeps its scope).
    customer = await _customer(customers_sessions, OTHER_REP)
    contract_id = await _contract(orders_sessions, customer)
    west_contract = await _contract(orders_sessions, customer, owner=OTHER_REP)
    theirs = (await _place(client, auth, west_contract, ("valve", "5"), principal=OTHER_REP)).json()
    await _customer(customers_sessions, REP, customer)
    mine = (await _place(client, auth, contract_id, ("valve", "10"))).json()
    await client.post("/api/v1/deliveries", headers=auth(REP), json={
        "order_id": mine["id"], "shipped_on": TODAY.isoformat(),
        "lines": [{"order_line_id": mine["lines"][0]["id"], "quantity": "4"}]})
    await _handle(orders_sessions, billing_ev.InvoiceIssued(
        invoice_id=str(uuid.uuid4()), invoice_number="INV-2026-000301", kind="invoice", customer_id=customer,
        contract_id=contract_id, order_id=mine["id"], net_amount=_money("1000.00"), tax_amount=_money("130.00"),
        total=_money("1130.00"), issued_on=TODAY.isoformat(), due_on=SOON))
    await _handle(orders_sessions, billing_ev.PaymentReceived(
        payment_id=str(uuid.uuid4()), customer_id=customer, amount=_money("1130.00"), allocated=_money("1130.00"),
        unallocated=_money("0.00"), received_on=TODAY.isoformat(), reference="CMB-778", contract_ids=[contract_id]))

    # a reader with scope all (customer service, here marketing's scope) sees both orders
    overview = await client.get(f"/api/v1/customers/{customer}/order-overview", headers=auth(READER))
    assert overview.status_code == 200, overview.text
    body = overview.json()
    assert [e["order"]["id"] for e in body["orders"]] == [mine["id"], theirs["id"]]
    entry = body["orders"][0]
    assert entry["order"]["lines"][0]["delivered_quantity"] == "4"
    assert [(d["status"], d["lines"][0]["quantity"]) for d in entry["deliveries"]] == [("shipped", "4")]
    assert [(i["invoice_number"], i["total"]["amount"]) for i in entry["invoices"]] == [("INV-2026-000301",
                                                                                          "1130.00")]
    assert [(p["reference"], p["allocated"]["amount"]) for p in body["payments"]] == [("CMB-778", "1130.00")]
    assert body["truncated"] is False and body["contract_invoices"] == []
    # the rep sees only their own order
    own = (await client.get(f"/api/v1/customers/{customer}/order-overview", headers=auth(REP))).json()
    assert [e["order"]["id"] for e in own["orders"]] == [mine["id"]]
    # the west rep does not see the east order at all
    hidden = await client.get(f"/api/v1/orders/{mine['id']}", headers=auth(OTHER_REP))
    assert hidden.status_code == 404
    # nor the customer's overview, now the customer is this rep's: 404 as for a customer that does not exist
    for principal, customer_id in ((OTHER_REP, customer), (READER, str(uuid.uuid4()))):
        assert_problem(await client.get(f"/api/v1/customers/{customer_id}/order-overview", headers=auth(principal)),
                       404, reason="REFERENCE_NOT_FOUND")


async def test_permissions(client, auth, assert_problem, orders_sessions, customers_sessions) -> None:
    customer = await _customer(customers_sessions)
    contract_id = await _contract(orders_sessions, customer)
    assert_problem(await _place(client, auth, contract_id, ("valve", "1"), principal=READER), 403,
                   reason="PERMISSION_DENIED")
    assert_problem(await client.get(f"/api/v1/customers/{customer}/order-overview", headers=auth(NOBODY)), 403,
                   reason="PERMISSION_DENIED")
    assert_problem(await client.get("/api/v1/deliveries", headers=auth(NOBODY)), 403, reason="PERMISSION_DENIED")
    # the contract is out of the west rep's scope: as if it did not exist
    assert_problem(await _place(client, auth, contract_id, ("valve", "1"), principal=OTHER_REP), 404,
                   reason="CONTRACT_NOT_FOUND")


async def test_a_record_saved_before_currencies_were_checked_is_still_readable(client, auth, orders_sessions,
                                                                               customers_sessions) -> None:
    # A contract copied before ISO 4217 was enforced, in a 3-letter code that is no currency: its
    # order reads back as stored (the rule guards what comes in, not what was saved earlier).
    customer = await _customer(customers_sessions)
    contract_id = await _contract(orders_sessions, customer)
    async with orders_sessions() as s, s.begin():
        await s.execute(text("UPDATE contracts SET currency = 'ZZZ' WHERE id = :id"), {"id": contract_id})
    placed = await _place(client, auth, contract_id, ("valve", "2"))
    assert placed.status_code == 201, placed.text
    read = await client.get(f"/api/v1/orders/{placed.json()['id']}", headers=auth(REP))
    assert read.status_code == 200, read.text
    assert read.json()["amount"] == {"amount": "500.00", "currency": "ZZZ"}
    overview = await client.get(f"/api/v1/customers/{customer}/order-overview", headers=auth(REP))
    assert overview.status_code == 200 and overview.json()["orders"][0]["order"]["amount"]["currency"] == "ZZZ"
