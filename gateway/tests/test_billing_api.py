"""The billing routes against the real billing service (in-process, real PostgreSQL): invoices,
payments and allocations, statements through issue/dispute/resolve/confirm, exports, aging,
contracts awaiting payment; problem+json for the rules; permissions and scopes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import uuid
from typing import Any

import pytest
from openpyxl import load_workbook

from crm.common.v1 import money_pb2
from crm.contracts.v1 import events_pb2 as contract_events
from crm.sap.v1 import events_pb2 as sap_events
from crm_billing.app import use_cases as billing
from crm_customers.adapters.repository import CustomerRepository
from crm_customers.domain.model import Customer
from crmkit.db import UnitOfWork
from crmkit.events.envelope import Event, build_headers, subject_of
from crmkit.testing.principals import EAST_MANAGER, EAST_REP, FINANCE, WEST_REP

# customers.read and orders.read as finance holds them: billing asks the owners of what a write names as the caller.
FIN = dataclasses.replace(FINANCE, permissions=("billing.read", "billing.write", "contracts.read", "customers.read",
                                                "orders.read"))
MANAGER = dataclasses.replace(EAST_MANAGER, permissions=("billing.read", "contracts.read"))
REP = dataclasses.replace(EAST_REP, permissions=("contracts.read",))
WEST = dataclasses.replace(WEST_REP, permissions=("contracts.read",))
TODAY = dt.datetime.now(dt.UTC).date()


def _event(message: Any) -> Event:
    event_id = str(uuid.uuid4())
    return Event(id=event_id, subject=subject_of(message), type=message.DESCRIPTOR.full_name,
                 payload=message.SerializeToString(),
                 headers=build_headers(event_id=event_id, event_type=message.DESCRIPTOR.full_name, source="test",
                                       actor="test", subject_id="", time=dt.datetime.now(dt.UTC)))


def _cny(amount: str) -> money_pb2.Money:
    return money_pb2.Money(amount=amount, currency="CNY")


@pytest.fixture
def auth(token):
    """Bearer headers for these tests' principals. Not the session's `auth`: it caches one token
    per subject, and these principals share subjects with the shared ones but carry other
    permissions."""
    return lambda principal: {"Authorization": f"Bearer {token(principal)}"}


@pytest.fixture
async def feed(billing_sessions: Any):
    async def deliver(handler: Any, message: Any) -> None:
        async with UnitOfWork(billing_sessions, "crm/billing", actor="test") as uow:
            await handler(uow, _event(message))
            await uow.commit()

    return deliver


async def _customer_with_contract(feed: Any, customers_sessions: Any, *,
                                  plan: list[tuple[dt.date, str]]) -> tuple[str, str]:
    """A customer of the east rep in the customers service (signed: in finance's scope), with a
    contract whose copy billing holds."""
    customer, contract = str(uuid.uuid4()), str(uuid.uuid4())
    async with customers_sessions() as s, s.begin():
        await CustomerRepository(s).add(Customer(
            id=uuid.UUID(customer), name="厦门海通电子", owner_id=EAST_REP.subject, team_id="east",
            department_path="/sales/east/", has_signed_contract=True))
    await feed(billing.on_contract_signed, contract_events.ContractSigned(
        contract_id=contract, contract_number=f"CON-{contract[:8]}", customer_id=customer, amount=_cny("2260.00"),
        owner_id=EAST_REP.subject, team_ids=["east"], department_path="/sales/east/", customer_name="厦门海通电子",
        instalments=[contract_events.Instalment(instalment_id=str(uuid.uuid4()), sequence=i, due_date=d.isoformat(),
                                                amount=_cny(a)) for i, (d, a) in enumerate(plan, start=1)]))
    return customer, contract


async def test_invoice_payments_statement_round_trip(client, auth, feed, assert_problem, customers_sessions) -> None:
    customer, contract = await _customer_with_contract(
        feed, customers_sessions,
        plan=[(TODAY + dt.timedelta(days=10), "1130.00"), (TODAY + dt.timedelta(days=40), "1130.00")])
    sap_number = f"9{uuid.uuid4().int % 10**8:08d}"
    await feed(billing.on_billing_document, sap_events.BillingDocumentChanged(
        billing_document=sap_number, document_type="F2", customer_id=customer, billing_date=TODAY.isoformat(),
        net_amount=_cny("1000.00"), tax_amount=_cny("130.00"), total=_cny("1130.00")))

    # an invoice by hand: tax per line, half-up
    r = await client.post("/api/v1/invoices", headers=auth(FIN), json={
        "customer_id": customer, "contract_id": contract, "payment_terms_days": 15,
        "lines": [{"description": "定制线束", "quantity": "3", "unit_price": "33.335", "tax_rate_percent": "13"}]})
    assert r.status_code == 201, r.text
    manual = r.json()
    assert (manual["net_amount"]["amount"], manual["tax_amount"]["amount"], manual["total"]["amount"]) == (
        "100.01", "13.00", "113.01")
    assert manual["due_on"] == (TODAY + dt.timedelta(days=15)).isoformat() and manual["owner_id"] == EAST_REP.subject

    r = await client.get("/api/v1/invoices", params={"customer_id": customer}, headers=auth(FIN))
    invoices = {i["invoice_number"]: i for i in r.json()["items"]}
    assert set(invoices) == {sap_number, manual["invoice_number"]}
    r = await client.get("/api/v1/invoices", params={"customer_id": customer, "order_id": str(uuid.uuid4())},
                         headers=auth(FIN))
    assert r.status_code == 200 and r.json()["items"] == []  # none billed for that order
    # a customer nobody has: as absent as one out of scope
    r = await client.post("/api/v1/invoices", headers=auth(FIN), json={
        "customer_id": str(uuid.uuid4()), "lines": [{"description": "x", "quantity": "1", "unit_price": "1"}]})
    assert_problem(r, 404, reason="REFERENCE_NOT_FOUND")
    sap_invoice = invoices[sap_number]

    # a partial payment naming the SAP invoice, then the rest
    r = await client.post("/api/v1/payments", headers=auth(FIN), json={
        "customer_id": customer, "amount": {"amount": "500.00", "currency": "CNY"}, "reference": f"TT {sap_number}"})
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["allocated_to_invoices"]["amount"] == "500.00" and first["unallocated"]["amount"] == "0.00"
    r = await client.post("/api/v1/payments", headers=auth(FIN), json={
        "customer_id": customer, "amount": {"amount": "700.00", "currency": "CNY"}})
    second = r.json()
    assert second["allocations"] == []  # 700 matches no open balance: waits for a person
    # by hand: too much for the invoice -> 409 OVER_ALLOCATION as problem+json
    r = await client.post(f"/api/v1/payments/{second['id']}/allocations", headers=auth(FIN),
                          json={"target_kind": "invoice", "target_id": sap_invoice["id"], "amount": "630.01"})
    assert_problem(r, 409, reason="OVER_ALLOCATION")
    r = await client.post(f"/api/v1/payments/{second['id']}/allocations", headers=auth(FIN),
                          json={"target_kind": "invoice", "target_id": sap_invoice["id"]})
    assert r.status_code == 201, r.text
    assert (r.json()["allocation"]["amount"]["amount"], r.json()["payment"]["unallocated"]["amount"]) == (
        "630.00", "70.00")
    r = await client.get(f"/api/v1/invoices/{sap_invoice['id']}", headers=auth(FIN))
    assert (r.json()["status"], r.json()["open_amount"]["amount"], len(r.json()["allocations"])) == (
        "settled", "0.00", 2)

    # plan track by hand
    r = await client.get("/api/v1/instalments", params={"contract_id": contract}, headers=auth(FIN))
    first_instalment = r.json()["items"][0]
    r = await client.post(f"/api/v1/payments/{second['id']}/allocations", headers=auth(FIN),
                          json={"target_kind": "instalment", "target_id": first_instalment["id"], "amount": "700"})
    assert r.status_code == 201, r.text
    r = await client.get("/api/v1/instalments", params={"contract_id": contract}, headers=auth(FIN))
    assert [(i["state"], i["received"]["amount"]) for i in r.json()["items"]] == [
        ("partially_received", "700.00"), ("pending", "0.00")]

    # statement: draft -> issued (If-Match) -> disputed -> resolved -> confirmed
    period = {"customer_id": customer, "period_start": (TODAY - dt.timedelta(days=1)).isoformat(),
              "period_end": (TODAY + dt.timedelta(days=1)).isoformat()}
    r = await client.post("/api/v1/statements", headers=auth(FIN), json=period)
    assert r.status_code == 201, r.text
    draft = r.json()
    # 1130 + 113.01 − 500 − 700
    assert (draft["status"], draft["closing_balance"]["amount"], len(draft["lines"])) == ("draft", "43.01", 4)
    r = await client.post(f"/api/v1/statements/{draft['id']}/issue", headers=auth(FIN) | {"If-Match": '"v9"'})
    assert_problem(r, 412)
    r = await client.post(f"/api/v1/statements/{draft['id']}/issue", headers=auth(FIN) | {"If-Match": r'"v1"'})
    assert r.status_code == 200, r.text
    issued = r.json()
    assert issued["status"] == "issued" and r.headers["ETag"] == '"v2"'
    r = await client.post(f"/api/v1/statements/{draft['id']}/issue", headers=auth(FIN))
    assert_problem(r, 409, reason="STATEMENT_NOT_DRAFT")
    line = issued["lines"][0]["id"]
    r = await client.post(f"/api/v1/statements/{draft['id']}/dispute", headers=auth(FIN),
                          json={"lines": [{"line_id": line, "reason": "单价与合同不符"}]})
    assert r.json()["status"] == "disputed" and r.json()["lines"][0]["dispute_reason"] == "单价与合同不符"
    r = await client.post(f"/api/v1/statements/{draft['id']}/resolve", headers=auth(FIN),
                          json={"line_id": line, "resolution": "price confirmed with the customer"})
    assert r.json()["status"] == "resolved"
    r = await client.post(f"/api/v1/statements/{draft['id']}/confirm", headers=auth(FIN))
    assert (r.json()["status"], r.json()["closing_balance"]["amount"]) == ("confirmed", "43.01")

    # exports
    r = await client.get(f"/api/v1/statements/{draft['id']}/export", params={"format": "pdf"}, headers=auth(FIN))
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf" and r.content.startswith(b"%PDF")
    assert issued["statement_number"] in r.headers["content-disposition"]
    r = await client.get(f"/api/v1/statements/{draft['id']}/export", params={"format": "xlsx"}, headers=auth(FIN))
    sheet = load_workbook(io.BytesIO(r.content)).active
    assert [row for row in sheet.iter_rows(values_only=True)][-1][4:6] == ("期末余额 Closing balance", 43.01)

    # aging by owner: the rep's receivables, sums reconciling to the cent
    r = await client.get("/api/v1/reports/aging", params={"group_by": "owner", "currency": "CNY"},
                         headers=auth(MANAGER))
    assert r.status_code == 200, r.text
    body = r.json()
    [row] = [x for x in body["rows"] if x["key"] == EAST_REP.subject]
    parts = sum(float(row[k]["amount"]) * 100 for k in ("current", "days_0_30", "days_31_60", "days_61_90",
                                                          "days_over_90")) - float(row["unapplied"]["amount"]) * 100
    assert round(parts) == round(float(row["total"]["amount"]) * 100)

    # contracts awaiting payment: the rep sees theirs (no billing.read needed), the west rep not
    r = await client.get("/api/v1/reports/awaiting-payment", headers=auth(REP))
    assert r.status_code == 200, r.text
    [mine] = [c for c in r.json()["items"] if c["contract_id"] == contract]
    assert (mine["received"]["amount"], mine["outstanding"]["amount"]) == ("700.00", "1560.00")
    r = await client.get("/api/v1/reports/awaiting-payment", headers=auth(WEST))
    assert contract not in [c["contract_id"] for c in r.json()["items"]]


async def test_permissions_and_validation(client, auth, assert_problem) -> None:
    r = await client.get("/api/v1/invoices", headers=auth(REP))
    assert_problem(r, 403, reason="PERMISSION_DENIED")
    r = await client.post("/api/v1/payments", headers=auth(MANAGER), json={
        "customer_id": str(uuid.uuid4()), "amount": {"amount": "1.00", "currency": "CNY"}})
    assert_problem(r, 403, reason="PERMISSION_DENIED")
    r = await client.post("/api/v1/payments", headers=auth(FIN), json={
        "customer_id": str(uuid.uuid4()), "amount": {"amount": "0", "currency": "CNY"}})
    assert_problem(r, 422, fields=("amount.amount",))
    r = await client.get(f"/api/v1/statements/{uuid.uuid4()}", headers=auth(FIN))
    assert_problem(r, 404)
    r = await client.post("/api/v1/statements", headers=auth(FIN), json={
        "customer_id": str(uuid.uuid4()), "period_start": "2026-03-31", "period_end": "2026-03-01"})
    assert_problem(r, 422, fields=("period_end",))
