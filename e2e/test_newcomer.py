"""A newcomer's first deal (issue 22), following only README.md and docs/api-guide.md: sign in,
ask who you are, and walk a lead from marketing to a settled invoice.

Every id comes from a response, from /me, from a list filter or from a link; nothing waits by
sleeping: each asynchronous step is awaited the way the guide says, by polling the list filter
or the record it names until a deadline."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from crm_devstack import Suite

TODAY = dt.date.today()
PASSWORD = "Lingbo-demo-2026"  # README.md, "Demo users"
SAP_SIMULATOR_AUTH = ("CRM_INTEGRATION", "simulator-dev-2026")  # README.md, the make dev output


async def until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 45.0) -> Any:  # noqa: ASYNC109
    """The guide's way of waiting: ask again until the answer is there, up to a deadline."""
    deadline = time.monotonic() + timeout
    while (answer := await check()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not there after {timeout} s")
        await asyncio.sleep(0.2)  # between polls, never as the assertion
    return answer


async def test_a_newcomer_takes_a_lead_to_a_settled_invoice(suite: Suite, demo_org: dict[str, Any]) -> None:
    simulator = next(h.url for h in suite.config.http_services if h.name == "sap-simulator")
    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=30) as api:

        async def sign_in(login: str) -> dict[str, str]:
            r = await api.post("/api/v1/auth/token",
                               data={"grant_type": "password", "username": login, "password": PASSWORD})
            assert r.status_code == 200, r.text
            return {"Authorization": f"Bearer {r.json()['access_token']}"}

        async def call(method: str, url: str, who: dict[str, str], expect: int = 200, **kwargs: Any) -> Any:
            r = await api.request(method, url, headers=who | kwargs.pop("headers", {}), **kwargs)
            assert r.status_code == expect, f"{method} {url} -> {r.status_code}: {r.text}"
            return r

        # -- marketing enters a lead; the seeded assignment rule gives it to a rep ------------------
        marketing = await sign_in("xu.na")
        me = (await call("GET", "/api/v1/me", marketing)).json()
        assert me["roles"] == ["marketing"] and "leads.write" in me["permissions"]
        company = f"Guangzhou Pump Works {uuid.uuid4().hex[:6]}"
        lead = (await call("POST", "/api/v1/leads", marketing, 201, json={
            "name": "Huang Lei", "company": company, "phone": "13912345678", "region": "Guangdong",
            "source": "trade_show", "campaign": "newcomer", "channel": "offline"})).json()
        assert lead["owner_id"], "the seeded lead-assignment rule assigns every lead"
        owner = (await call("GET", f"/api/v1/users/{lead['owner_id']}", marketing)).json()

        # -- the rep: who am I, then lead → customer + opportunity → quote → accepted ------------
        rep = await sign_in(owner["login"])
        rep_me = (await call("GET", "/api/v1/me", rep)).json()
        assert rep_me["subject"] == lead["owner_id"] and rep_me["data_scope"] == "own" and rep_me["manager"]
        converted = (await call("POST", f"/api/v1/leads/{lead['id']}/convert", rep, json={
            "opportunity": {"amount": {"amount": "200000", "currency": "CNY"}}})).json()
        customer_url = f"/api/v1/customers/{converted['customer']['id']}"
        quote = (await call("POST", "/api/v1/quotes", rep, 201, json={
            "opportunity_id": converted["opportunity"]["id"],
            "valid_until": (TODAY + dt.timedelta(days=14)).isoformat(),
            "lines": [{"product": "Stainless pump housing", "specification": "316L, DN50", "quantity": "100",
                       "unit_price": "1500", "tax_rate_percent": "13"}]})).json()
        await call("POST", f"/api/v1/quotes/{quote['id']}/send", rep)           # actions take no body
        accepted = await call("POST", f"/api/v1/quotes/{quote['id']}/accept", rep)
        assert accepted.json()["opportunity"]["status"] == "won"
        contracts_of_quote = accepted.json()["links"]["contract"]
        assert f'<{contracts_of_quote}>; rel="contract"' in accepted.headers["Link"]

        # -- the contract is drafted asynchronously: poll the link -----------------------------------
        async def drafted() -> dict | None:
            items = (await call("GET", contracts_of_quote, rep)).json()["items"]
            return items[0] if items else None

        contract = await until(drafted, "the contract drafted from the accepted quote")
        contract_url = f"/api/v1/contracts/{contract['id']}"
        await call("PATCH", contract_url, rep, json={
            "start_date": TODAY.isoformat(), "end_date": (TODAY + dt.timedelta(days=364)).isoformat()})
        total = contract["amount"]["amount"]
        await call("PUT", f"{contract_url}/receivable-plan", rep, json={"instalments": [
            {"due_date": (TODAY + dt.timedelta(days=30)).isoformat(), "amount": total, "label": "on delivery"}]})

        # -- approvals: each approver named in the submission signs in and approves ----------------
        steps = (await call("POST", f"{contract_url}/submit", rep)).json()["items"]
        assert steps and all(step["approver_ids"] for step in steps)
        for step in steps:
            approver = (await call("GET", f"/api/v1/users/{step['approver_ids'][0]}", rep)).json()
            approver_h = await sign_in(approver["login"])
            waiting = (await call("GET", "/api/v1/approvals", approver_h)).json()["items"]
            [mine] = [s for s in waiting if s["contract_id"] == contract["id"]]
            decided = (await call("POST", f"/api/v1/approvals/{mine['id']}/approve", approver_h)).json()
        assert decided["contract"]["status"] == "approved"
        signed = await call("POST", f"{contract_url}/sign", rep)
        assert signed.json()["status"] == "active"
        orders_of_contract = _link(signed, "orders")

        # -- contract.signed, asynchronously: the prospect becomes a customer ------------------------
        async def a_customer() -> dict | None:
            customer = (await call("GET", customer_url, rep)).json()
            return customer if customer["lifecycle_stage"] == "customer" else None

        customer = await until(a_customer, "the customer's lifecycle after contract.signed")
        assert customer["tier"]

        # -- the order: 404 until orders has the signed contract; retry with the same key ---------
        order_body = {"contract_id": contract["id"], "customer_reference": f"PO-{quote['id'][:8]}",
                      "requested_delivery_date": (TODAY + dt.timedelta(days=30)).isoformat(),
                      "lines": [{"contract_line_id": signed.json()["lines"][0]["line_id"], "quantity": "100"}]}

        async def placed() -> httpx.Response | None:
            r = await api.post("/api/v1/orders", headers=rep | {"Idempotency-Key": f"order-{contract['id']}"},
                               json=order_body)
            return None if r.status_code == 404 else r

        order_reply = await until(placed, "the signed contract in the orders service")
        assert order_reply.status_code == 201, order_reply.text
        order_url = order_reply.headers["Location"]
        invoices_of_order = _link(order_reply, "invoices")
        assert [o["id"] for o in (await call("GET", orders_of_contract, rep)).json()["items"]] == [
            order_reply.json()["id"]]

        async def order_in(status: str) -> dict | None:
            order = (await call("GET", order_url, rep)).json()
            return order if order["status"] == status else None

        order = await until(lambda: order_in("confirmed"), "SAP's confirmation of the order")
        assert order["sap_sales_order"]

        # -- SAP's part, played with the simulator as docs/api-guide.md shows -------------------------
        async with httpx.AsyncClient(base_url=simulator, auth=SAP_SIMULATOR_AUTH, timeout=10) as sap:
            delivered = await sap.post(f"/_sim/sales-orders/{order['sap_sales_order']}/deliver", json={})
            assert delivered.status_code == 200, delivered.text
            await until(lambda: order_in("delivered"), "the SAP delivery on the order")
            billed = await sap.post(f"/_sim/sales-orders/{order['sap_sales_order']}/bill")
            assert billed.status_code == 200, billed.text

        # -- finance: the invoice appears under the order's link; a payment settles it --------------
        finance = await sign_in("liu.yang")

        async def invoiced() -> dict | None:
            items = (await call("GET", invoices_of_order, finance)).json()["items"]
            return items[0] if items else None

        invoice = await until(invoiced, "the invoice from SAP's billing document")
        await call("POST", "/api/v1/payments", finance, 201, json={
            "customer_id": customer["id"], "amount": invoice["total"], "reference": invoice["invoice_number"]})
        settled = (await call("GET", f"/api/v1/invoices/{invoice['id']}", finance)).json()
        assert (settled["status"], settled["open_amount"]["amount"]) == ("settled", "0.00")


def _link(response: httpx.Response, rel: str) -> str:
    """The URL of one relation in an RFC 8288 Link header."""
    for part in response.headers["Link"].split(","):
        url, _, params = part.strip().partition(";")
        if params.strip() == f'rel="{rel}"':
            return url.strip().strip("<>")
    raise AssertionError(f"no rel={rel} in {response.headers['Link']}")
