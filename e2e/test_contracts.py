"""R-CON-01..04 end to end through the REST gateway of the started suite: li.wei's customer
accepts a quote of 113,000.00; the contract is drafted from quote.accepted; li.wei sets the term
and the receivable plan and submits; the demo rule routes it from the org chart (identity) to
chen.jie (manager) → sun.hao (head of Sales) → liu.yang (finance); sun.hao returns it, li.wei
resubmits, everyone approves, li.wei signs; the customers service makes the customer a
customer (contract.signed). Finance then sees the contract; the PDF renders."""

from __future__ import annotations

import datetime as dt
import uuid

import httpx

from crm_devstack import Suite


async def test_quote_to_signed_contract_through_the_org_chart(suite: Suite, sign_in, eventually) -> None:
    rep, manager, director, finance = (sign_in(u) for u in ("li.wei", "chen.jie", "sun.hao", "liu.yang"))
    suffix = uuid.uuid4().hex[:6]
    today = dt.date.today()
    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=30) as api:
        customer = await api.post("/api/v1/customers", headers=rep.headers, json={
            "name": f"Hangzhou Catheter Works {suffix}", "industry": "medical_devices", "region": "Zhejiang"})
        assert customer.status_code == 201, customer.text
        customer_id = customer.json()["id"]
        assert customer.json()["lifecycle_stage"] == "prospect"
        opportunity = await api.post("/api/v1/opportunities", headers=rep.headers, json={
            "customer_id": customer_id, "name": f"Catheters 2027 {suffix}",
            "amount": {"amount": "100000", "currency": "CNY"}})
        assert opportunity.status_code == 201, opportunity.text
        quote = await api.post("/api/v1/quotes", headers=rep.headers, json={
            "opportunity_id": opportunity.json()["id"], "valid_until": (today + dt.timedelta(days=14)).isoformat(),
            "lines": [{"product": "Catheter 6F", "specification": "PTFE liner", "quantity": "100",
                       "unit_price": "1000", "discount_percent": "0", "tax_rate_percent": "13"}]})
        assert quote.status_code == 201, quote.text
        quote_id = quote.json()["id"]
        assert (await api.post(f"/api/v1/quotes/{quote_id}/send", headers=rep.headers)).status_code == 200
        accepted = await api.post(f"/api/v1/quotes/{quote_id}/accept", headers=rep.headers)
        assert accepted.status_code == 200, accepted.text

        # quote.accepted drafts the contract (once).
        async def drafted() -> dict | None:
            page = await api.get("/api/v1/contracts", headers=rep.headers, params={"customer_id": customer_id})
            return next((c for c in page.json()["items"] if c["quote_id"] == quote_id), None)

        contract = await eventually(drafted, what="the contract drafted from the accepted quote")
        url = f"/api/v1/contracts/{contract['id']}"
        # 100 × 1000 = 100,000 net + 13 % = 113,000.00
        assert (contract["status"], contract["amount"]["amount"], contract["owner_id"]) == (
            "draft", "113000.00", rep.id)
        assert contract["contract_number"].startswith(f"CON-{dt.datetime.now(dt.UTC).year}-")

        term = await api.patch(url, headers=rep.headers, json={
            "start_date": today.isoformat(), "end_date": (today + dt.timedelta(days=364)).isoformat()})
        assert term.status_code == 200, term.text
        plan = await api.put(f"{url}/receivable-plan", headers=rep.headers, json={"instalments": [
            {"due_date": today.isoformat(), "amount": "33900.00", "label": "deposit 30 %"},
            {"due_date": (today + dt.timedelta(days=60)).isoformat(), "amount": "79100.00", "label": "on delivery"}]})
        assert plan.status_code == 200, plan.text

        submitted = await api.post(f"{url}/submit", headers=rep.headers)
        assert submitted.status_code == 200, submitted.text
        chain = [(s["name"], s["approver_ids"]) for s in submitted.json()["items"]]
        assert chain == [("Manager", [manager.id]), ("Sales director", [director.id]), ("Finance", [finance.id])]

        async def decide(person, decision: str = "approve", reason: str = "") -> dict:
            waiting = (await api.get("/api/v1/approvals", headers=person.headers)).json()["items"]
            [step] = [s for s in waiting if s["contract_id"] == contract["id"]]
            reply = await api.post(f"/api/v1/approvals/{step['id']}/{decision}", headers=person.headers,
                                   json={"reason": reason})
            assert reply.status_code == 200, reply.text
            return reply.json()

        await decide(manager)
        early = await api.post(f"{url}/sign", headers=rep.headers)
        assert early.status_code == 409 and early.json()["reason"] == "SIGN_ONLY_WHEN_APPROVED"
        returned = await decide(director, "return", "deposit due on signing, please confirm with finance")
        assert returned["contract"]["status"] == "returned"
        again = await api.post(f"{url}/submit", headers=rep.headers)
        assert again.status_code == 200, again.text
        for person in (manager, director, finance):
            last = await decide(person)
        assert last["contract"]["status"] == "approved"
        steps = (await api.get(f"{url}/approval-steps", headers=rep.headers)).json()["items"]
        assert [(s["attempt"], s["name"], s["state"], s["decided_by"]) for s in steps] == [
            (1, "Manager", "approved", manager.id), (1, "Sales director", "returned", director.id),
            (1, "Finance", "cancelled", None), (2, "Manager", "approved", manager.id),
            (2, "Sales director", "approved", director.id), (2, "Finance", "approved", finance.id)]

        signed = await api.post(f"{url}/sign", headers=rep.headers)
        assert signed.status_code == 200, signed.text
        assert signed.json()["status"] == "active"  # the term began today

        # contract.signed → the customers service: a customer now (R-CUS-11).
        async def became_customer() -> bool:
            reply = await api.get(f"/api/v1/customers/{customer_id}", headers=rep.headers)
            return reply.json()["lifecycle_stage"] == "customer"

        await eventually(became_customer, what="the customer's lifecycle stage after contract.signed")
        seen_by_finance = await api.get(url, headers=finance.headers)
        assert seen_by_finance.status_code == 200 and seen_by_finance.json()["status"] == "active"
        pdf = await api.get(f"{url}/document", headers=rep.headers)
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
        renewals = (await api.get("/api/v1/renewals", params={"within": "13m"}, headers=rep.headers)).json()
        assert contract["id"] in [c["id"] for c in renewals["items"]]
