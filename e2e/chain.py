"""The lead-to-cash chain of ARCHITECTURE.md through the REST gateway of a running suite, with the
SAP simulator standing in for S/4HANA: e2e/test_lead_to_cash.py walks it once, and
e2e/test_day_after.py once before and once after a restart of the suite on the same data.

lead (marketing's rule gives it to li.wei) → converted to customer + contact + opportunity →
requirement request found feasible by the sales director → quote accepted → contract drafted
from quote.accepted → the approval chain from the org chart (chen.jie → sun.hao, who returns it
→ resubmitted → chen.jie → sun.hao → liu.yang), the first approver hearing of it once in the inbox
and once on the live stream → signed: the customer becomes a customer → the customer is a
business partner in SAP → order → SAP sales order, confirmed in the CRM → SAP delivers: customer
service sees the delivery → SAP bills: finance sees the invoice → partial and final payment →
the month's reconciliation statement issued and confirmed."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import jwt

from crm_devstack import Suite, demo
from crm_devstack.keys import login
from crm_sap.domain.model import sales_order_reference

SAP = "/sap/opu/odata/sap"
SAP_AUTH = ("CRM_INTEGRATION", "simulator-dev-2026")


@dataclass(frozen=True)
class Person:
    login: str
    token: str
    id: str
    team_ids: tuple[str, ...]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def signed_in(gateway_url: str, user: str) -> Person:
    """A demo user signed in through the gateway (identity checks the password)."""
    token = login(gateway_url, user, demo.DEMO_PASSWORD)
    claims = jwt.decode(token, options={"verify_signature": False})
    return Person(user, token, claims["sub"], tuple(claims.get("teams", [])))


@dataclass(frozen=True)
class SapDocuments:
    """The SAP numbers one walk of the chain produced."""

    sales_order: str
    delivery: str
    billing_document: str


async def lead_to_cash(suite: Suite, sign_in: Callable[[str], Any],
                       eventually: Callable[..., Awaitable[Any]]) -> SapDocuments:
    """Walks the chain once, with fresh names; asserts every step; returns the SAP documents."""
    today = dt.date.today()
    marketing, rep, manager, director, finance, desk = (sign_in(u) for u in (
        "xu.na", "li.wei", "chen.jie", "sun.hao", "liu.yang", "he.jing"))
    suffix = uuid.uuid4().hex[:6]
    simulator = next(h.url for h in suite.config.http_services if h.name == "sap-simulator")
    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=30) as api:
        # -- lead → conversion ------------------------------------------------------------------
        rule = await api.post("/api/v1/lead-assignment-rules", headers=marketing.headers, json={
            "name": f"L2C {suffix}", "priority": -1000, "regions": [f"L2C-{suffix}"], "user_ids": [rep.id],
            "team_id": rep.team_ids[0], "department_path": "/", "cap_count": 50, "cap_days": 7})
        assert rule.status_code == 201, rule.text
        lead = await api.post("/api/v1/leads", headers=marketing.headers, json={
            "name": "Wu Lei", "company": f"Changzhou Gear Works {suffix}", "phone": "13912345678",
            "region": f"L2C-{suffix}", "source": "trade_show", "campaign": f"l2c-{suffix}", "channel": "offline"})
        assert lead.status_code == 201, lead.text
        assert lead.json()["owner_id"] == rep.id
        converted = await api.post(f"/api/v1/leads/{lead.json()['id']}/convert", headers=rep.headers, json={
            "opportunity": {"amount": {"amount": "500000", "currency": "CNY"}}})
        assert converted.status_code == 200, converted.text
        customer_id = converted.json()["customer"]["id"]
        opportunity_id = converted.json()["opportunity"]["id"]

        # -- requirement request → feasible → quote accepted ---------------------------------------
        request = await api.post("/api/v1/requirement-requests", headers=rep.headers, json={
            "opportunity_id": opportunity_id, "title": "Helical gearbox 1:25",
            "specification": "IP66, 4 kW, hollow shaft 40 mm", "quantity": "40", "unit": "pcs",
            "target_price": {"amount": "11800", "currency": "CNY"},
            "requested_date": (today + dt.timedelta(days=60)).isoformat()})
        assert request.status_code == 201, request.text
        request_url = f"/api/v1/requirement-requests/{request.json()['id']}"
        assert (await api.post(f"{request_url}/review", headers=director.headers)).status_code == 200
        decided = await api.post(f"{request_url}/decide", headers=director.headers,
                                 json={"feasible": True, "notes": "standard housing; 5 weeks"})
        assert decided.json()["status"] == "feasible", decided.text
        quote = await api.post("/api/v1/quotes", headers=rep.headers, json={
            "opportunity_id": opportunity_id, "valid_until": (today + dt.timedelta(days=14)).isoformat(),
            "requirement_request_id": request.json()["id"],
            "lines": [{"product": "Helical gearbox 1:25", "specification": "IP66, 4 kW", "quantity": "40",
                       "unit_price": "12000", "discount_percent": "2.5", "tax_rate_percent": "13"}]})
        assert quote.status_code == 201, quote.text
        quote_id = quote.json()["id"]
        assert (await api.post(f"/api/v1/quotes/{quote_id}/send", headers=rep.headers)).status_code == 200
        accepted = await api.post(f"/api/v1/quotes/{quote_id}/accept", headers=rep.headers)
        assert accepted.status_code == 200 and accepted.json()["opportunity"]["status"] == "won", accepted.text

        # -- the contract, drafted from quote.accepted ----------------------------------------------
        async def drafted() -> dict | None:
            page = await api.get("/api/v1/contracts", headers=rep.headers, params={"customer_id": customer_id})
            return next((c for c in page.json()["items"] if c["quote_id"] == quote_id), None)

        contract = await eventually(drafted, what="the contract drafted from the accepted quote")
        contract_url = f"/api/v1/contracts/{contract['id']}"
        # 40 × 12000 × 0.975 = 468,000.00 net; 13 % tax 60,840.00: the customer pays 528,840.00
        assert (contract["status"], contract["amount"]["amount"]) == ("draft", "528840.00")
        assert (await api.patch(contract_url, headers=rep.headers, json={
            "start_date": today.isoformat(),
            "end_date": (today + dt.timedelta(days=364)).isoformat()})).status_code == 200
        plan = await api.put(f"{contract_url}/receivable-plan", headers=rep.headers, json={"instalments": [
            {"due_date": today.isoformat(), "amount": "158652.00", "label": "deposit 30 %"},
            {"due_date": (today + dt.timedelta(days=60)).isoformat(), "amount": "370188.00", "label": "delivery"}]})
        assert plan.status_code == 200, plan.text

        # -- approvals from the org chart; the first approver hears of it once, on both channels --
        async with _live_stream(suite, manager.headers) as heard:
            submitted = await api.post(f"{contract_url}/submit", headers=rep.headers)
            assert submitted.status_code == 200, submitted.text
            assert [(s["name"], s["approver_ids"]) for s in submitted.json()["items"]] == [
                ("Manager", [manager.id]), ("Sales director", [director.id]), ("Finance", [finance.id])]
            pushed = await heard.next_about(contract["contract_number"])

        async def inbox_items() -> list[dict]:
            items = (await api.get("/api/v1/notifications", headers=manager.headers)).json()["items"]
            return [i for i in items if contract["contract_number"] in i["title"]]

        [inbox_item] = await eventually(inbox_items, what="the approver's inbox item")
        assert inbox_item["sequence"] == pushed["sequence"]

        async def decide(person: Any, decision: str = "approve", reason: str = "") -> dict:
            waiting = (await api.get("/api/v1/approvals", headers=person.headers)).json()["items"]
            [step] = [s for s in waiting if s["contract_id"] == contract["id"]]
            reply = await api.post(f"/api/v1/approvals/{step['id']}/{decision}", headers=person.headers,
                                   json={"reason": reason})
            assert reply.status_code == 200, reply.text
            return reply.json()

        await decide(manager)
        assert (await decide(director, "return", "confirm the deposit"))["contract"]["status"] == "returned"
        assert (await api.post(f"{contract_url}/submit", headers=rep.headers)).status_code == 200
        for person in (manager, director, finance):
            last = await decide(person)
        assert last["contract"]["status"] == "approved"
        signed = await api.post(f"{contract_url}/sign", headers=rep.headers)
        assert signed.status_code == 200 and signed.json()["status"] == "active", signed.text
        # one item per step chen.jie was asked to decide: the first submission's and the resubmission's
        assert len(await inbox_items()) == 2

        async def is_customer() -> dict | None:
            customer = (await api.get(f"/api/v1/customers/{customer_id}", headers=rep.headers)).json()
            return customer if customer["lifecycle_stage"] == "customer" else None

        customer = await eventually(is_customer, what="the customer's lifecycle after contract.signed")
        # R-CUS-06: 528,840.00 signed, below B's 1,000,000: tier C
        assert (customer["tier"], customer["signed_amount"]) == ("C", {"amount": "528840.00", "currency": "CNY"})

        # -- order → SAP ---------------------------------------------------------------------------
        line_id = signed.json()["lines"][0]["line_id"]

        async def ordered() -> httpx.Response | None:
            reply = await api.post("/api/v1/orders", headers=rep.headers | {"Idempotency-Key": contract["id"]},
                                   json={"contract_id": contract["id"], "customer_reference": f"PO-{suffix}",
                                         "requested_delivery_date": (today + dt.timedelta(days=35)).isoformat(),
                                         "lines": [{"contract_line_id": line_id, "quantity": "40"}]})
            return reply if reply.status_code != 404 else None  # 404 until orders has the contract

        reply = await eventually(ordered, what="the signed contract in the orders service")
        assert reply.status_code == 201, reply.text
        order = reply.json()
        assert order["amount"] == {"amount": "468000.00", "currency": "CNY"}
        order_url = f"/api/v1/orders/{order['id']}"

        async def confirmed() -> dict | None:
            current = (await api.get(order_url, headers=rep.headers)).json()
            return current if current["status"] == "confirmed" else None

        confirmed_order = await eventually(confirmed, timeout=45, what="the order confirmed by SAP")
        async with httpx.AsyncClient(base_url=simulator, auth=SAP_AUTH, timeout=10) as sap:
            found = await sap.get(f"{SAP}/API_SALES_ORDER_SRV/A_SalesOrder", params={
                "$format": "json", "sap-client": "100",
                "$filter": f"PurchaseOrderByCustomer eq '{sales_order_reference(order['id'])}'"})
            [sales_order] = found.json()["d"]["results"]
            assert confirmed_order["sap_sales_order"] == sales_order["SalesOrder"]

            # -- SAP delivers: customer service sees it ----------------------------------------------
            delivered = await sap.post(f"/_sim/sales-orders/{sales_order['SalesOrder']}/deliver",
                                       json={"bill_of_lading": f"SF{suffix}", "means_of_transport": "SF Express"})
            assert delivered.status_code == 200, delivered.text

            async def shipped() -> dict | None:
                overview = (await api.get(f"/api/v1/customers/{customer_id}/order-overview",
                                          headers=desk.headers)).json()
                [entry] = overview["orders"]
                return entry if entry["deliveries"] and entry["order"]["status"] == "delivered" else None

            entry = await eventually(shipped, timeout=45, what="the SAP delivery in the order overview")
            assert [d["tracking_number"] for d in entry["deliveries"]] == [f"SF{suffix}"]

            # -- SAP bills: finance sees the invoice ---------------------------------------------------
            billed = await sap.post(f"/_sim/sales-orders/{sales_order['SalesOrder']}/bill")
            assert billed.status_code == 200, billed.text
            documents = SapDocuments(sales_order["SalesOrder"], delivered.json()["key"], billed.json()["key"])

        async def invoiced() -> dict | None:
            page = (await api.get("/api/v1/invoices", headers=finance.headers,
                                  params={"customer_id": customer_id})).json()
            return next((i for i in page["items"] if i["sap_billing_document"] == billed.json()["key"]), None)

        invoice = await eventually(invoiced, timeout=45, what="the invoice from the SAP billing document")
        assert (invoice["net_amount"]["amount"], invoice["contract_id"]) == ("468000.00", contract["id"])
        total = invoice["total"]["amount"]

        # -- payments (回款): a partial one, then the rest -------------------------------------------
        first = await api.post("/api/v1/payments", headers=finance.headers, json={
            "customer_id": customer_id, "amount": {"amount": "100000.00", "currency": "CNY"},
            "reference": f"ICBC TT {invoice['invoice_number']}"})
        assert first.status_code == 201 and first.json()["allocated_to_invoices"]["amount"] == "100000.00"
        rest = str(Decimal(total) - Decimal("100000.00"))
        second = await api.post("/api/v1/payments", headers=finance.headers, json={
            "customer_id": customer_id, "amount": {"amount": rest, "currency": "CNY"}})
        assert second.status_code == 201 and second.json()["unallocated"]["amount"] == "0.00", second.text
        settled = (await api.get(f"/api/v1/invoices/{invoice['id']}", headers=finance.headers)).json()
        assert (settled["status"], settled["open_amount"]["amount"]) == ("settled", "0.00")

        # -- the month's reconciliation statement (對賬單), issued and confirmed ----------------------
        draft = await api.post("/api/v1/statements", headers=finance.headers, json={
            "customer_id": customer_id, "period_start": today.replace(day=1).isoformat(),
            "period_end": today.isoformat()})
        assert draft.status_code == 201, draft.text
        body = draft.json()
        assert (body["invoices"]["amount"], body["payments"]["amount"], body["closing_balance"]["amount"]) == (
            total, total, "0.00")
        issued = await api.post(f"/api/v1/statements/{body['id']}/issue",
                                headers=finance.headers | {"If-Match": draft.headers["ETag"]})
        assert issued.status_code == 200, issued.text
        confirmed_statement = await api.post(f"/api/v1/statements/{body['id']}/confirm",
                                             headers=finance.headers | {"If-Match": issued.headers["ETag"]})
        assert confirmed_statement.json()["status"] == "confirmed", confirmed_statement.text

        return documents

class _LiveStream:
    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def event(self) -> dict[str, str]:
        fields: dict[str, str] = {}
        async for line in self._lines:
            if not line:
                if fields:
                    return fields
                continue
            if not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
        raise AssertionError("the event stream ended")

    async def next_about(self, text: str, timeout: float = 60.0) -> dict[str, Any]:  # noqa: ASYNC109
        async def find() -> dict[str, Any]:
            while True:
                event = await self.event()
                if event.get("event") == "notification" and text in (item := json.loads(event["data"]))["title"]:
                    return item

        return await asyncio.wait_for(find(), timeout)


@contextlib.asynccontextmanager
async def _live_stream(suite: Suite, headers: dict[str, str]) -> AsyncIterator[_LiveStream]:
    """A person's Server-Sent Events stream through the gateway, open before anything happens."""
    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=httpx.Timeout(10, read=None)) as client, \
            client.stream("GET", "/api/v1/notifications/stream", headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        stream = _LiveStream(response)
        assert (await stream.event())["event"] == "ready"
        yield stream


async def signed_contract(api: httpx.AsyncClient, rep: Person, approvers: tuple[Person, ...], customer_id: str,
                          *, title: str, lines: list[dict[str, Any]],
                          instalments: list[dict[str, Any]]) -> dict[str, Any]:
    """A contract of `rep`'s customer drafted, submitted, approved at each step by whichever of
    `approvers` it names, and signed: the contracts service's own flow. Scenarios sharing a suite
    make their contracts this way rather than publishing a contract.signed themselves: a contract
    the contracts service does not hold would still count on the dashboard (e2e/test_insights.py)."""
    today = dt.date.today()
    drafted = await api.post("/api/v1/contracts", headers=rep.headers, json={
        "customer_id": customer_id, "title": title, "start_date": today.isoformat(),
        "end_date": (today + dt.timedelta(days=364)).isoformat(), "lines": lines, "instalments": instalments})
    assert drafted.status_code == 201, drafted.text
    url = f"/api/v1/contracts/{drafted.json()['id']}"
    submitted = await api.post(f"{url}/submit", headers=rep.headers)
    assert submitted.status_code == 200, submitted.text
    by_id = {person.id: person for person in approvers}
    while pending := [s for s in (await api.get(f"{url}/approval-steps", headers=rep.headers)).json()["items"]
                      if s["state"] == "pending"]:
        approver = next((by_id[i] for i in pending[0]["approver_ids"] if i in by_id), None)
        assert approver is not None, f"none of the approvers given is asked: {pending[0]}"
        decided = await api.post(f"/api/v1/approvals/{pending[0]['id']}/approve", headers=approver.headers,
                                 json={"reason": ""})
        assert decided.status_code == 200, decided.text
    signed = await api.post(f"{url}/sign", headers=rep.headers)
    assert signed.status_code == 200, signed.text
    return dict(signed.json())
