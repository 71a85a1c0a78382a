"""R-ORD-01/02 end to end through the REST gateway of the started suite: li.wei's contract is
approved through the org chart and signed in the contracts service; its contract.signed reaches
the orders service; li.wei places an order against it, is refused (409) when the contract would
be exceeded, records a delivery, and customer service (he.jing) sees it all on the customer's
order overview."""

from __future__ import annotations

import datetime as dt
import uuid

import httpx
import nats

from crm.orders.v1 import events_pb2 as orders_ev
from crm_devstack import Suite
from crmkit.events.envelope import subject_of

TODAY = dt.date.today()
# Whoever the demo approval rules may name for a contract of li.wei's.
APPROVERS = ("chen.jie", "sun.hao", "liu.yang", "zhao.min")


async def _signed_contract(api: httpx.AsyncClient, rep, sign_in, customer_id: str) -> dict:
    """Drafted, submitted, approved by each step's approver, signed: the contracts service's flow."""
    # 100 ball valves at 1200.00 less 5 % (net 114 000.00) and 2 days of commissioning at 5000.00
    # (net 10 000.00); 13 % and 6 % tax: 128 820.00 + 10 600.00 = 139 420.00.
    drafted = await api.post("/api/v1/contracts", headers=rep.headers, json={
        "customer_id": customer_id, "title": "Ball valves 2027", "customer_name": "Xiamen Valve Works",
        "start_date": TODAY.isoformat(), "end_date": (TODAY + dt.timedelta(days=364)).isoformat(),
        "lines": [{"product": "Ball valve DN100", "specification": "316L, PN40", "quantity": "100", "unit": "pcs",
                   "unit_price": "1200", "discount_percent": "5", "tax_rate_percent": "13"},
                  {"product": "Commissioning", "quantity": "2", "unit": "day", "unit_price": "5000",
                   "tax_rate_percent": "6"}],
        "instalments": [{"due_date": TODAY.isoformat(), "amount": "41826.00", "label": "deposit 30 %"},
                        {"due_date": (TODAY + dt.timedelta(days=90)).isoformat(), "amount": "97594.00",
                         "label": "on delivery"}]})
    assert drafted.status_code == 201, drafted.text
    contract = drafted.json()
    assert contract["amount"]["amount"] == "139420.00", contract["amount"]
    url = f"/api/v1/contracts/{contract['id']}"
    submitted = await api.post(f"{url}/submit", headers=rep.headers)
    assert submitted.status_code == 200, submitted.text
    people = {p.id: p for p in (sign_in(u) for u in APPROVERS)}
    for _ in range(10):
        steps = (await api.get(f"{url}/approval-steps", headers=rep.headers)).json()["items"]
        pending = [s for s in steps if s["state"] == "pending"]
        if not pending:
            break
        approver = next(people[i] for i in pending[0]["approver_ids"] if i in people)
        decided = await api.post(f"/api/v1/approvals/{pending[0]['id']}/approve", headers=approver.headers,
                                 json={"reason": ""})
        assert decided.status_code == 200, decided.text
    signed = await api.post(f"{url}/sign", headers=rep.headers)
    assert signed.status_code == 200, signed.text
    return signed.json()


async def test_order_against_a_signed_contract_end_to_end(suite: Suite, sign_in, eventually) -> None:
    rep = sign_in("li.wei")
    desk = sign_in("he.jing")  # customer service: every customer's orders
    nc = await nats.connect(suite.nats_url)
    submitted: list[orders_ev.OrderSubmitted] = []

    async def on_submitted(msg: nats.aio.msg.Msg) -> None:
        submitted.append(orders_ev.OrderSubmitted.FromString(msg.data))

    await nc.subscribe(subject_of(orders_ev.OrderSubmitted), cb=on_submitted)
    await nc.flush()  # subscribed at the server before the requests below
    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=30) as api:
        created = await api.post("/api/v1/customers", headers=rep.headers,
                                 json={"name": f"Xiamen Valve Works {uuid.uuid4().hex[:6]}"})
        assert created.status_code == 201, created.text
        customer_id = created.json()["id"]
        contract = await _signed_contract(api, rep, sign_in, customer_id)
        valves, commissioning = (li["line_id"] for li in contract["lines"])
        order_body = {"contract_id": contract["id"], "customer_reference": "PO-XM-0042",
                      "requested_delivery_date": (TODAY + dt.timedelta(days=30)).isoformat(),
                      "lines": [{"contract_line_id": valves, "quantity": "80"},
                                {"contract_line_id": commissioning, "quantity": "1",
                                 "requested_delivery_date": (TODAY + dt.timedelta(days=45)).isoformat()}]}

        async def placed() -> httpx.Response | None:
            # 404 until the orders service has copied the contract from contract.signed
            reply = await api.post("/api/v1/orders", headers=rep.headers | {"Idempotency-Key": contract["id"]},
                                   json=order_body)
            return reply if reply.status_code != 404 else None
        reply = await eventually(placed, what="the signed contract copied into orders")
        assert reply.status_code == 201, reply.text
        order = reply.json()
        # net terms: 80 × 1140.00 = 91 200.00, 1 × 5000.00
        assert (order["status"], order["amount"], order["customer_id"], order["contract_number"]) == (
            "submitted", {"amount": "96200.00", "currency": "CNY"}, customer_id, contract["contract_number"])
        assert [(li["quantity"], li["unit_price"]["amount"]) for li in order["lines"]] == [("80", "1140.00"),
                                                                                         ("1", "5000.00")]
        assert order["order_number"].startswith(f"SO-{TODAY.year}-")

        # 80 of 100 valves are ordered: 21 more would exceed the contract
        exceeded = await api.post("/api/v1/orders", headers=rep.headers, json=order_body | {
            "lines": [{"contract_line_id": valves, "quantity": "21"}]})
        assert exceeded.status_code == 409, exceeded.text
        assert exceeded.headers["content-type"].startswith("application/problem+json")
        assert exceeded.json()["reason"] == "CONTRACT_QUANTITY_EXCEEDED"
        fits = await api.post("/api/v1/orders", headers=rep.headers, json=order_body | {
            "lines": [{"contract_line_id": valves, "quantity": "20"}]})
        assert fits.status_code == 201, fits.text

        delivery = await api.post("/api/v1/deliveries", headers=rep.headers, json={
            "order_id": order["id"], "shipped_on": TODAY.isoformat(), "carrier": "SF Express",
            "tracking_number": "SF0042", "lines": [{"order_line_id": order["lines"][0]["id"], "quantity": "30"}]})
        assert delivery.status_code == 201, delivery.text

        overview = await api.get(f"/api/v1/customers/{customer_id}/order-overview", headers=desk.headers)
        assert overview.status_code == 200, overview.text
        entries = overview.json()["orders"]
        assert [e["order"]["id"] for e in entries] == [fits.json()["id"], order["id"]]
        shipped = entries[1]
        assert shipped["order"]["status"] == "shipped"
        assert [li["delivered_quantity"] for li in shipped["order"]["lines"]] == ["30", "0"]
        assert [(d["carrier"], d["tracking_number"]) for d in shipped["deliveries"]] == [("SF Express", "SF0042")]
        # another scope's rep, and a customer that does not exist: no overview, 404 alike
        west = sign_in("wang.fang")
        for who, absent_id in ((west, customer_id), (desk, str(uuid.uuid4()))):
            absent = await api.get(f"/api/v1/customers/{absent_id}/order-overview", headers=who.headers)
            assert absent.status_code == 404 and absent.json()["reason"] == "REFERENCE_NOT_FOUND", absent.text

    await eventually(lambda: _has(submitted, order["id"]), what="order.submitted on NATS")
    await nc.close()


async def _has(submitted: list[orders_ev.OrderSubmitted], order_id: str) -> bool:
    return any(s.order.order_id == order_id for s in submitted)
