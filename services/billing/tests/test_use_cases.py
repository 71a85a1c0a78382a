"""Use cases on a real PostgreSQL: SAP billing documents, payments and allocation, statements,
aging, the overdue pass, data scopes, exports."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import uuid
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from crm_billing.adapters import export
from crm_billing.app import use_cases as uc
from crm_billing.domain.money import InvoiceLineInput
from crmkit.db import UnitOfWork
from crmkit.errors import Conflict, InvalidArgument, NotFound, StaleVersion
from crmkit.testing.principals import ADMIN, EAST_MANAGER, EAST_REP, FINANCE, WEST_REP

D = Decimal
TODAY = uc.today()


def days(n: int) -> str:
    return (TODAY + dt.timedelta(days=n)).isoformat()


async def signed(deliver, facts, customer_id: uuid.UUID, **kwargs):
    message = facts.contract_signed(customer_id=customer_id, **kwargs)
    await deliver(uc.on_contract_signed, facts.event_of(message))
    return message


async def sap_invoice(deliver, facts, **kwargs) -> None:
    await deliver(uc.on_billing_document, facts.event_of(facts.billing_document(**kwargs), actor="service:sap"))


async def invoice_row(sql, number: str):
    [row] = await sql("SELECT * FROM invoices WHERE invoice_number = :n", n=number)
    return row


def pay(customer_id: uuid.UUID, amount: str, reference: str = "", currency: str = "CNY",
        contract_id: uuid.UUID | None = None) -> uc.NewPayment:
    return uc.NewPayment(customer_id=customer_id, contract_id=contract_id, amount=amount, currency=currency,
                         received_on=TODAY, reference=reference)


# SAP billing documents -> invoices (R-BIL-01) ---------------------------------------------------


async def test_sap_billing_document_becomes_an_invoice_once(deliver, facts, sql, outbox) -> None:
    customer = uuid.uuid4()
    contract = await signed(deliver, facts, customer)
    order_id = uuid.uuid4()
    from crm.orders.v1 import events_pb2 as orders

    await deliver(uc.on_order, facts.event_of(orders.OrderSubmitted(order=orders.OrderSnapshot(
        order_id=str(order_id), order_number="SO-2026-000045", contract_id=contract.contract_id,
        customer_id=str(customer)))))
    document = facts.billing_document(number="90000123", customer_id=customer, net="1000.00", tax="130.00",
                                      total="1130.00", order_id=str(order_id), billing_date="2026-03-10")
    event = facts.event_of(document)
    await deliver(uc.on_billing_document, event)
    await deliver(uc.on_billing_document, facts.event_of(document))  # SAP sends the same document again
    [row] = await sql("SELECT * FROM invoices")
    assert (row.invoice_number, row.kind, row.source, row.total, row.tax_amount) == (
        "90000123", "invoice", "sap", D("1130.00"), D("130.00"))
    # the order copy maps it to the contract; due date: net 30 from the billing date
    assert (str(row.contract_id), row.owner_id, row.team_id) == (contract.contract_id, "rep-east", "east")
    assert row.due_on == dt.date(2026, 4, 9)
    issued = [r.message() for r in await outbox() if r.subject == "crm.billing.invoice.issued"]
    assert len(issued) == 1 and issued[0].total.amount == "1130.00" and issued[0].sap_billing_document == "90000123"


async def test_sap_credit_memo_settles_the_orders_invoice_and_cancellation_releases(
        deliver, facts, sql, outbox, call) -> None:
    customer, order_id = uuid.uuid4(), str(uuid.uuid4())
    await signed(deliver, facts, customer)
    await sap_invoice(deliver, facts, number="90000200", customer_id=customer, total="1000.00", order_id=order_id)
    await sap_invoice(deliver, facts, number="90000201", customer_id=customer, total="200.00", order_id=order_id,
                      credit=True)
    invoice, credit = await invoice_row(sql, "90000200"), await invoice_row(sql, "90000201")
    assert (credit.kind, credit.status, credit.allocated) == ("credit_note", "settled", D("200.00"))
    assert (invoice.status, invoice.allocated) == ("open", D("200.00"))
    # a payment of the rest settles it
    payment, _ = await call(FINANCE, uc.record_payment, pay(customer, "800.00"))
    assert payment.allocated_invoices == D("800.00")
    assert (await invoice_row(sql, "90000200")).status == "settled"
    # SAP cancels the invoice: what was allocated to it is released, the credit note is open again
    await sap_invoice(deliver, facts, number="90000200", customer_id=customer, total="1000.00", order_id=order_id,
                      cancelled=True)
    invoice, credit = await invoice_row(sql, "90000200"), await invoice_row(sql, "90000201")
    assert (invoice.status, invoice.allocated) == ("cancelled", D("0.00"))
    assert (credit.status, credit.allocated) == ("open", D("0.00"))
    [p] = await sql("SELECT allocated_invoices FROM payments")
    assert p.allocated_invoices == D("0.00")
    assert "crm.billing.invoice.cancelled" in [r.subject for r in await outbox()]


async def test_invoice_by_hand_computes_tax_per_line(call, deliver, facts, outbox) -> None:
    customer = uuid.uuid4()
    contract = await signed(deliver, facts, customer)
    new = uc.NewInvoice(customer_id=customer, contract_id=uuid.UUID(contract.contract_id), order_id=None,
                        kind="invoice", currency="cny", issued_on=dt.date(2026, 5, 1), payment_terms_days=0,
                        lines=[InvoiceLineInput("定制阀门", D("3"), D("33.335"), D("13")),
                               InvoiceLineInput("安装", D("1"), D("1.25"), D("10"))])
    row = await call(FINANCE, uc.create_invoice, new)
    assert (row.net_amount, row.tax_amount, row.total, row.currency) == (D("101.26"), D("13.13"), D("114.39"), "CNY")
    assert row.invoice_number.startswith("INV-2026-") and row.due_on == dt.date(2026, 5, 31)
    assert [li["tax_amount"] for li in row.lines] == ["13.00", "0.13"]
    assert (await outbox())[-1].subject == "crm.billing.invoice.issued"
    with pytest.raises(InvalidArgument):
        await call(FINANCE, uc.create_invoice, uc.NewInvoice(customer, None, None, "invoice", "CNY", None, 0, []))
    # three letters that are no ISO 4217 currency
    with pytest.raises(InvalidArgument) as not_a_currency:
        await call(FINANCE, uc.create_invoice, dataclasses.replace(new, currency="ZZZ"))
    assert not_a_currency.value.violations[0].field == "currency"


# Payments and allocation (R-BIL-02) --------------------------------------------------------------


async def test_payment_auto_allocates_to_the_one_matching_invoice_and_instalment(
        call, deliver, facts, sql, outbox) -> None:
    customer = uuid.uuid4()
    contract = await signed(deliver, facts, customer, plan=[(days(10), "3000.00"), (days(40), "7000.00")])
    await sap_invoice(deliver, facts, number="90000300", customer_id=customer, total="3000.00")
    await sap_invoice(deliver, facts, number="90000301", customer_id=customer, total="7000.00")
    payment, allocations = await call(FINANCE, uc.record_payment, pay(customer, "3000.00", "TT ref 88"))
    # 3000 matches exactly one invoice balance and exactly one instalment
    assert {(a.target_kind, a.amount, a.automatic) for a in allocations} == {
        ("invoice", D("3000.00"), True), ("instalment", D("3000.00"), True)}
    assert (await invoice_row(sql, "90000300")).status == "settled"
    plan = await call(FINANCE, uc.list_instalments, uuid.UUID(contract.contract_id))
    assert [(r.state, r.received) for r in plan] == [("received", D("3000.00")), ("pending", D("0.00"))]
    # a reference naming the invoice wins over the amount; the rest stays unallocated
    payment, allocations = await call(FINANCE, uc.record_payment, pay(customer, "7500.00", "for 90000301"))
    invoice_allocs = [a for a in allocations if a.target_kind == "invoice"]
    assert [a.amount for a in invoice_allocs] == [D("7000.00")]
    assert payment.amount - payment.allocated_invoices == D("500.00")  # over-payment stays open
    subjects = [r.subject for r in await outbox()]
    assert subjects.count("crm.billing.payment.received") == 2
    changed = [r.message() for r in await outbox() if r.subject == "crm.billing.instalment.state_changed"]
    assert ("pending", "received") in [(m.from_state, m.to_state) for m in changed]


async def test_ambiguous_payment_waits_and_is_allocated_by_hand_within_the_rules(call, deliver, facts, sql) -> None:
    customer = uuid.uuid4()
    contract = await signed(deliver, facts, customer, plan=[(days(5), "1000.00"), (days(35), "1000.00")])
    await sap_invoice(deliver, facts, number="90000400", customer_id=customer, total="1000.00")
    await sap_invoice(deliver, facts, number="90000401", customer_id=customer, total="1000.00")
    payment, allocations = await call(FINANCE, uc.record_payment, pay(customer, "1000.00"))
    assert allocations == []  # two invoices and two instalments of 1000: nobody guesses
    inv = await invoice_row(sql, "90000401")
    # partial by hand
    payment, allocation, _ = await call(FINANCE, uc.allocate_payment, payment.id, "invoice", inv.id, "400.00")
    assert (allocation.amount, payment.allocated_invoices) == (D("400.00"), D("400.00"))
    assert (await invoice_row(sql, "90000401")).status == "open"
    # more than is left of the payment, more than is open on the item: refused, nothing changes
    with pytest.raises(Conflict) as over:
        await call(FINANCE, uc.allocate_payment, payment.id, "invoice", inv.id, "600.01")
    assert over.value.reason == "OVER_ALLOCATION"
    other = await invoice_row(sql, "90000400")
    await call(FINANCE, uc.allocate_payment, payment.id, "invoice", other.id, "")  # as much as fits: 600
    assert (await invoice_row(sql, "90000400")).allocated == D("600.00")
    with pytest.raises(Conflict) as spent:
        await call(FINANCE, uc.allocate_payment, payment.id, "invoice", inv.id, "")
    assert spent.value.reason == "PAYMENT_FULLY_ALLOCATED"
    # the instalment track is separate: the same payment counts against the plan
    [first, _second] = await call(FINANCE, uc.list_instalments, uuid.UUID(contract.contract_id))
    await call(FINANCE, uc.allocate_payment, payment.id, "instalment", first.id, "250.00")
    [first, _] = await call(FINANCE, uc.list_instalments, uuid.UUID(contract.contract_id))
    assert (first.state, first.received) == ("partially_received", D("250.00"))
    [totals] = await sql("SELECT sum(amount) AS s FROM allocations WHERE source_id = :p AND target_kind = 'invoice'",
                         p=payment.id)
    assert totals.s == D("1000.00")


async def test_currency_must_match(call, deliver, facts, sql) -> None:
    customer = uuid.uuid4()
    await signed(deliver, facts, customer)
    await sap_invoice(deliver, facts, number="90000500", customer_id=customer, total="100.00")
    payment, allocations = await call(FINANCE, uc.record_payment, pay(customer, "100.00", currency="USD"))
    assert allocations == []
    inv = await invoice_row(sql, "90000500")
    with pytest.raises(Conflict) as mismatch:
        await call(FINANCE, uc.allocate_payment, payment.id, "invoice", inv.id, "")
    assert mismatch.value.reason == "CURRENCY_MISMATCH"


# Amendments -----------------------------------------------------------------------------------


async def test_amendment_replaces_only_what_nothing_was_received_on(call, deliver, facts) -> None:
    from crm.contracts.v1 import events_pb2 as contracts

    customer = uuid.uuid4()
    contract = await signed(deliver, facts, customer, plan=[(days(5), "100.00"), (days(30), "200.00")])
    [first, second] = await call(FINANCE, uc.list_instalments, uuid.UUID(contract.contract_id))
    await call(FINANCE, uc.record_payment, pay(customer, "40.00", contract_id=uuid.UUID(contract.contract_id)))
    payment_plan = await call(FINANCE, uc.list_instalments, uuid.UUID(contract.contract_id))
    assert payment_plan[0].received == D("0.00")  # 40 matched nothing: left for a person
    payment, _ = (await call(FINANCE, uc.list_payments, page_token="", limit=10, customer_id=customer))
    await call(FINANCE, uc.allocate_payment, payment[0].id, "instalment", first.id, "40.00")
    amended = contracts.ContractAmended(
        contract_id=contract.contract_id, version=2, amount=facts.cny("500.00"), customer_id=str(customer),
        instalments=[contracts.Instalment(instalment_id=str(first.id), sequence=1, due_date=days(5),
                                          amount=facts.cny("100.00")),
                     contracts.Instalment(instalment_id=str(uuid.uuid4()), sequence=2, due_date=days(60),
                                          amount=facts.cny("400.00"))])
    await deliver(uc.on_contract_amended, facts.event_of(amended))
    plan = await call(FINANCE, uc.list_instalments, uuid.UUID(contract.contract_id))
    assert sorted((r.id == first.id, r.id == second.id, r.state, r.amount) for r in plan) == [
        (False, False, "pending", D("400.00")), (False, True, "void", D("200.00")),
        (True, False, "partially_received", D("100.00"))]


# Statements (R-BIL-03) ----------------------------------------------------------------------------


async def test_statement_issue_is_immutable_and_corrections_go_into_the_next(call, deliver, facts, sql,
                                                                             outbox) -> None:
    customer = uuid.uuid4()
    await signed(deliver, facts, customer)
    await sap_invoice(deliver, facts, number="90000600", customer_id=customer, total="1000.00",
                      billing_date="2026-01-15")
    await sap_invoice(deliver, facts, number="90000601", customer_id=customer, total="500.00",
                      billing_date="2026-02-03")
    await sap_invoice(deliver, facts, number="90000602", customer_id=customer, total="50.00", credit=True,
                      billing_date="2026-02-12")
    payment = uc.NewPayment(customer, None, "800.00", "CNY", dt.date(2026, 2, 10), "BANK-9")
    await call(FINANCE, uc.record_payment, payment)
    feb, lines = await call(FINANCE, uc.create_statement, customer, dt.date(2026, 2, 1), dt.date(2026, 2, 28), "CNY")
    assert (feb.status, feb.opening_balance, feb.invoices, feb.payments, feb.adjustments, feb.closing_balance) == (
        "draft", D("1000.00"), D("500.00"), D("800.00"), D("-50.00"), D("650.00"))
    assert [li.document_number for li in lines] == ["90000601", "BANK-9", "90000602"]
    # a late document dated in February arrives before issue: the issue recomputes
    await sap_invoice(deliver, facts, number="90000603", customer_id=customer, total="10.00",
                      billing_date="2026-02-20")
    feb, lines = await call(FINANCE, uc.issue_statement, feb.id, feb.version)
    assert (feb.status, feb.closing_balance, len(lines)) == ("issued", D("660.00"), 4)
    with pytest.raises(Conflict):
        await call(FINANCE, uc.issue_statement, feb.id, 0)
    with pytest.raises(StaleVersion):
        await call(FINANCE, uc.confirm_statement, feb.id, feb.version - 1)
    # after issue: a late February invoice and a cancellation of a stated one change nothing on it...
    await sap_invoice(deliver, facts, number="90000604", customer_id=customer, total="5.00",
                      billing_date="2026-02-25")
    await sap_invoice(deliver, facts, number="90000601", customer_id=customer, total="500.00", cancelled=True)
    again, again_lines = await call(FINANCE, uc.get_statement, feb.id)
    assert (again.closing_balance, [li.id for li in again_lines]) == (D("660.00"), [li.id for li in lines])
    # ...they go into March's, which opens on February's closing balance
    with pytest.raises(Conflict) as overlap:
        await call(FINANCE, uc.create_statement, customer, dt.date(2026, 2, 15), dt.date(2026, 3, 31), "CNY")
    assert overlap.value.reason == "STATEMENT_PERIOD_OVERLAP"
    mar, mar_lines = await call(FINANCE, uc.create_statement, customer, dt.date(2026, 3, 1), dt.date(2026, 3, 31),
                                "CNY")
    assert [(li.kind, li.document_number, li.amount) for li in mar_lines] == [
        ("reversal", "90000601", D("-500.00")), ("invoice", "90000604", D("5.00"))]
    # 660 + 5 − 500
    assert (mar.opening_balance, mar.closing_balance) == (D("660.00"), D("165.00"))
    assert "crm.billing.statement.issued" in [r.subject for r in await outbox()]


async def test_statement_dispute_tracked_to_resolution_then_confirmed(call, deliver, facts, outbox) -> None:
    customer = uuid.uuid4()
    await signed(deliver, facts, customer)
    await sap_invoice(deliver, facts, number="90000700", customer_id=customer, total="300.00",
                      billing_date="2026-04-02")
    await sap_invoice(deliver, facts, number="90000701", customer_id=customer, total="200.00",
                      billing_date="2026-04-03")
    draft, _ = await call(FINANCE, uc.create_statement, customer, dt.date(2026, 4, 1), dt.date(2026, 4, 30), "CNY")
    with pytest.raises(Conflict):  # a draft is not sent yet: nothing to dispute
        await call(FINANCE, uc.dispute_statement, draft.id, [("x", "y")], 0)
    issued, lines = await call(FINANCE, uc.issue_statement, draft.id, 0)
    with pytest.raises(InvalidArgument):
        await call(FINANCE, uc.dispute_statement, issued.id, [(str(lines[0].id), " ")], 0)
    disputed, lines = await call(FINANCE, uc.dispute_statement, issued.id, [
        (str(lines[0].id), "price differs from the contract"), (str(lines[1].id), "goods not received")], 0)
    assert disputed.status == "disputed" and [li.disputed for li in lines] == [True, True]
    event = next(r.message() for r in await outbox() if r.subject == "crm.billing.statement.disputed")
    assert (event.disputed_lines, list(event.reasons)) == (2, ["price differs from the contract",
                                                               "goods not received"])
    half, _ = await call(FINANCE, uc.resolve_dispute, disputed.id, str(lines[0].id), "credit note in May", 0)
    assert half.status == "disputed"
    with pytest.raises(Conflict):
        await call(FINANCE, uc.confirm_statement, half.id, 0)
    done, lines = await call(FINANCE, uc.resolve_dispute, disputed.id, str(lines[1].id), "delivered 04-05, POD sent",
                             0)
    assert done.status == "resolved" and lines[1].resolved_by == FINANCE.subject
    confirmed, _ = await call(FINANCE, uc.confirm_statement, done.id, 0)
    assert confirmed.status == "confirmed" and confirmed.closing_balance == D("500.00")  # never changed


async def test_exports_render_chinese_pdf_and_reconciling_xlsx(call, deliver, facts) -> None:
    customer = uuid.uuid4()
    await signed(deliver, facts, customer)
    await sap_invoice(deliver, facts, number="90000800", customer_id=customer, total="1234.56",
                      billing_date="2026-04-02")
    statement, lines = await call(FINANCE, uc.create_statement, customer, dt.date(2026, 4, 1),
                                  dt.date(2026, 4, 30), "CNY")
    pdf = export.to_pdf(statement, lines)
    assert pdf.startswith(b"%PDF") and b"STSong-Light" in pdf
    book = load_workbook(io.BytesIO(export.to_xlsx(statement, lines)))
    sheet = book["对账单"]
    values = [row for row in sheet.iter_rows(values_only=True)]
    assert ("客户 Customer", "福州精密机械有限公司") == values[1][:2]
    assert values[-1][4:6] == ("期末余额 Closing balance", 1234.56)


# Reports and the overdue pass (R-BIL-04) ---------------------------------------------------------


async def test_aging_by_owner_and_awaiting_payment_reconcile(call, deliver, facts, sessions) -> None:
    east_customer, west_customer = uuid.uuid4(), uuid.uuid4()
    await signed(deliver, facts, east_customer, plan=[(days(-45), "1000.00"), (days(20), "500.00")])
    await signed(deliver, facts, west_customer, owner="rep-west", team="west", department="/sales/west/",
                 plan=[(days(-100), "80.00")])
    await sap_invoice(deliver, facts, number="90000900", customer_id=east_customer, total="1000.00",
                      billing_date=days(-75))  # due 45 days ago
    await sap_invoice(deliver, facts, number="90000901", customer_id=east_customer, total="500.00",
                      billing_date=days(-10))  # due in 20 days
    await sap_invoice(deliver, facts, number="90000902", customer_id=west_customer, total="80.00",
                      billing_date=days(-130))  # 100 days overdue
    await call(FINANCE, uc.record_payment, pay(east_customer, "120.00", "no match"))
    _day, rows, sums = await call(FINANCE, uc.aging, "owner", None, "CNY")
    by_key = {r.key: r for r in rows}
    east = by_key["rep-east"]
    assert (east.days_31_60, east.current, east.unapplied, east.total) == (D("1000.00"), D("500.00"), D("120.00"),
                                                                          D("1380.00"))
    assert by_key["rep-west"].days_over_90 == D("80.00")
    assert sums[0].total == sum((r.total for r in rows), D(0)) == D("1460.00")
    # scopes: the east rep sees only their own; the manager their team
    _, rep_rows, _ = await call(EAST_REP, uc.aging, "customer", None, "")
    assert [(r.key, r.label) for r in rep_rows] == [(str(east_customer), "福州精密机械有限公司")]
    _, west_rows, _ = await call(WEST_REP, uc.aging, "team", None, "")
    assert [(r.key, r.total) for r in west_rows] == [("west", D("80.00"))]
    awaiting = await call(EAST_MANAGER, uc.awaiting_payment, "", None)
    assert [(r.outstanding, r.overdue, r.overdue_count) for r in awaiting] == [(D("1500.00"), D("1000.00"), 1)]
    with pytest.raises(InvalidArgument):
        await call(FINANCE, uc.aging, "planet", None, "")

    # the daily pass: once per overdue spell, and instalments past due become overdue
    from crm_billing.main import run_overdue_pass

    # the instalments were overdue when the contract arrived; both overdue invoices are notified
    assert await run_overdue_pass(sessions) == (2, 0)
    assert await run_overdue_pass(sessions) == (0, 0)  # idempotent
    async with UnitOfWork(sessions, "crm/billing") as uow:  # 25 days on, the 500 invoice and instalment
        assert await uc.overdue_pass(uow, TODAY + dt.timedelta(days=25)) == (1, 1)


async def test_overdue_events_once_per_invoice(sessions, deliver, facts, outbox) -> None:
    customer = uuid.uuid4()
    await signed(deliver, facts, customer)
    await sap_invoice(deliver, facts, number="90001000", customer_id=customer, total="10.00", billing_date=days(-40))
    async with UnitOfWork(sessions, "crm/billing") as uow:
        assert await uc.overdue_pass(uow) == (1, 0)
    async with UnitOfWork(sessions, "crm/billing") as uow:
        assert await uc.overdue_pass(uow, TODAY + dt.timedelta(days=1)) == (0, 0)  # the next day: nothing new
    [event] = [r.message() for r in await outbox() if r.subject == "crm.billing.invoice.overdue"]
    assert (event.invoice_number, event.days_overdue, event.outstanding.amount) == ("90001000", 10, "10.00")


async def test_scopes_hide_other_owners_records(call, deliver, facts) -> None:
    customer = uuid.uuid4()
    await signed(deliver, facts, customer, owner="rep-west", team="west", department="/sales/west/")
    await sap_invoice(deliver, facts, number="90001100", customer_id=customer, total="10.00")
    rows, _ = await call(EAST_REP, uc.list_invoices, page_token="", limit=50)
    assert rows == []
    rows, _ = await call(WEST_REP, uc.list_invoices, page_token="", limit=50)
    assert [r.invoice_number for r in rows] == ["90001100"]
    rows, _ = await call(FINANCE, uc.list_invoices, page_token="", limit=50)  # SIGNED: every billing record
    assert len(rows) == 1
    with pytest.raises(NotFound):
        await call(EAST_REP, uc.get_invoice, rows[0].id)
    assert (await call(ADMIN, uc.get_invoice, rows[0].id))[0].invoice_number == "90001100"
