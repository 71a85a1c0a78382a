"""R-BIL-01..04 end to end through the REST gateway of the started suite. li.wei's customer has a
signed contract with a two-instalment receivable plan (drafted, approved by chen.jie and signed
through the contracts service), and SAP bills the first delivery
(crm.sap.billing_document.changed on CRM_SAP, published with crmkit's envelope: the SAP
integration is not in suite.toml yet). Finance (liu.yang) sees the invoice, records a partial and
then the final payment (回款; both allocated automatically), issues the month's statement (對賬單)
and records the customer's confirmation; li.wei sees the contract awaiting the second
instalment."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx
import nats

from crm.common.v1 import money_pb2
from crm.sap.v1 import events_pb2 as sap_ev
from crm_devstack import Suite
from crmkit.events.envelope import build_headers, subject_of
from crmkit.events.streams import ensure_service_stream
from e2e.chain import signed_contract

TODAY = dt.datetime.now(dt.UTC).date()


def _cny(amount: str) -> money_pb2.Money:
    return money_pb2.Money(amount=amount, currency="CNY")


async def _announce(suite: Suite, producer: str, message: Any, actor: str, subject_id: str) -> None:
    """The fact as its producing service publishes it: its stream, its envelope."""
    nc = await nats.connect(suite.nats_url)
    try:
        js = nc.jetstream()
        await ensure_service_stream(js, producer, 1)  # what the producer creates on start
        event_id = str(uuid.uuid4())
        headers = build_headers(event_id=event_id, event_type=message.DESCRIPTOR.full_name,
                                source=f"crm/{producer}", actor=actor, subject_id=subject_id,
                                time=dt.datetime.now(dt.UTC))
        await js.publish(subject_of(message), message.SerializeToString(), headers=headers)
    finally:
        await nc.close()


async def test_invoice_payments_and_confirmed_statement(suite: Suite, sign_in, eventually) -> None:
    rep, manager, finance = sign_in("li.wei"), sign_in("chen.jie"), sign_in("liu.yang")
    suffix = uuid.uuid4().hex[:6]
    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=30) as api:
        customer = await api.post("/api/v1/customers", headers=rep.headers, json={
            "name": f"Ningbo Valve Works {suffix}", "industry": "machinery", "region": "Zhejiang"})
        assert customer.status_code == 201, customer.text
        customer_id = customer.json()["id"]
        # 2 valves at 1000.00 and 13 % tax: 2260.00, under 100,000: the manager's approval alone
        contract = await signed_contract(api, rep, (manager,), customer_id, title=f"Valves {suffix}", lines=[
            {"product": "Gate valve DN50", "quantity": "2", "unit": "pcs", "unit_price": "1000",
             "tax_rate_percent": "13"}], instalments=[
            {"due_date": (TODAY + dt.timedelta(days=30)).isoformat(), "amount": "1130.00", "label": "on delivery"},
            {"due_date": (TODAY + dt.timedelta(days=90)).isoformat(), "amount": "1130.00", "label": "acceptance"}])
        assert contract["amount"] == {"amount": "2260.00", "currency": "CNY"}, contract["amount"]
        contract_id = contract["id"]
        sap_number = f"9{uuid.uuid4().int % 10**8:08d}"
        await _announce(suite, "sap", sap_ev.BillingDocumentChanged(
            billing_document=sap_number, document_type="F2", customer_id=customer_id,
            billing_date=TODAY.isoformat(), net_amount=_cny("1000.00"), tax_amount=_cny("130.00"),
            total=_cny("1130.00")), "service:sap", sap_number)

        # SAP's billing document is an invoice, owned by li.wei through the contract copy.
        async def invoiced() -> dict | None:
            page = await api.get("/api/v1/invoices", headers=finance.headers, params={"customer_id": customer_id})
            found = [i for i in page.json()["items"] if i["invoice_number"] == sap_number]
            return found[0] if found and found[0]["owner_id"] == rep.id else None

        # No SAP integration in the suite: CRM_SAP appears only now, and billing's consumer, which
        # waits for a missing stream with a backoff of up to 30 s, may take that long to bind.
        invoice = await eventually(invoiced, timeout=60, what="the invoice from the SAP billing document")
        assert (invoice["total"]["amount"], invoice["tax_amount"]["amount"], invoice["status"]) == (
            "1130.00", "130.00", "open")
        assert invoice["due_on"] == (TODAY + dt.timedelta(days=30)).isoformat()  # net 30

        # a partial payment naming the invoice, then the rest (matches the open balance exactly)
        partial = await api.post("/api/v1/payments", headers=finance.headers, json={
            "customer_id": customer_id, "amount": {"amount": "500.00", "currency": "CNY"},
            "reference": f"ICBC TT {sap_number}"})
        assert partial.status_code == 201, partial.text
        assert partial.json()["allocated_to_invoices"]["amount"] == "500.00"
        after = await api.get(f"/api/v1/invoices/{invoice['id']}", headers=finance.headers)
        assert (after.json()["status"], after.json()["open_amount"]["amount"]) == ("open", "630.00")
        final = await api.post("/api/v1/payments", headers=finance.headers, json={
            "customer_id": customer_id, "amount": {"amount": "630.00", "currency": "CNY"}})
        assert final.status_code == 201, final.text
        assert final.json()["unallocated"]["amount"] == "0.00"
        after = await api.get(f"/api/v1/invoices/{invoice['id']}", headers=finance.headers)
        assert (after.json()["status"], after.json()["open_amount"]["amount"]) == ("settled", "0.00")
        # the first payment named the invoice, not an instalment: finance puts it on the plan by hand
        plan = (await api.get("/api/v1/instalments", params={"contract_id": contract_id},
                              headers=finance.headers)).json()["items"]
        placed = await api.post(f"/api/v1/payments/{partial.json()['id']}/allocations", headers=finance.headers,
                                json={"target_kind": "instalment", "target_id": plan[0]["id"]})
        assert placed.status_code == 201, placed.text
        plan = (await api.get("/api/v1/instalments", params={"contract_id": contract_id},
                              headers=finance.headers)).json()["items"]
        assert [(i["state"], i["received"]["amount"]) for i in plan] == [
            ("partially_received", "500.00"), ("pending", "0.00")]

        # the statement of this month: 1130 invoiced, 500 + 630 paid, closing 0
        period = {"customer_id": customer_id, "period_start": TODAY.replace(day=1).isoformat(),
                  "period_end": TODAY.isoformat()}
        draft = await api.post("/api/v1/statements", headers=finance.headers, json=period)
        assert draft.status_code == 201, draft.text
        body = draft.json()
        assert (body["opening_balance"]["amount"], body["invoices"]["amount"], body["payments"]["amount"],
                body["closing_balance"]["amount"], len(body["lines"])) == ("0.00", "1130.00", "1130.00", "0.00", 3)
        issued = await api.post(f"/api/v1/statements/{body['id']}/issue", headers=finance.headers | {
            "If-Match": draft.headers["ETag"]})
        assert issued.status_code == 200 and issued.json()["status"] == "issued", issued.text
        confirmed = await api.post(f"/api/v1/statements/{body['id']}/confirm", headers=finance.headers | {
            "If-Match": issued.headers["ETag"]})
        assert confirmed.status_code == 200 and confirmed.json()["status"] == "confirmed", confirmed.text
        pdf = await api.get(f"/api/v1/statements/{body['id']}/export", params={"format": "pdf"},
                            headers=finance.headers)
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")

        # R-BIL-04: li.wei's contract awaits the second instalment
        awaiting = await api.get("/api/v1/reports/awaiting-payment", headers=rep.headers)
        assert awaiting.status_code == 200, awaiting.text
        [mine] = [c for c in awaiting.json()["items"] if c["contract_id"] == contract_id]
        assert (mine["received"]["amount"], mine["outstanding"]["amount"], mine["owner_id"]) == (
            "500.00", "1760.00", rep.id)
        aging = await api.get("/api/v1/reports/aging", params={"group_by": "customer"}, headers=finance.headers)
        assert str(customer_id) not in [r["key"] for r in aging.json()["rows"]]  # nothing open any more
