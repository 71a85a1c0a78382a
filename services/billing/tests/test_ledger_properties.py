"""Property-based, against the real database: whatever the sequence of SAP invoices, credit memos,
cancellations, payments and allocations by hand, the stored balances stay within their bounds and
agree with the allocations, aging equals the ledger, and a statement closes on opening + invoices −
payments + adjustments (and on the ledger's balance)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as s
from sqlalchemy import text

from crm_billing.app import use_cases as uc
from crm_billing.main import migrate
from crmkit.db import UnitOfWork, create_engine, session_factory
from crmkit.errors import Conflict, NotFound
from crmkit.testing.principals import FINANCE

D = Decimal
amounts = s.decimals(min_value=D("0.01"), max_value=D("5000"), places=2)
steps = s.lists(s.one_of(
    s.tuples(s.just("invoice"), amounts, s.integers(0, 2)),
    s.tuples(s.just("credit"), amounts, s.integers(0, 2)),
    s.tuples(s.just("cancel"), s.integers(0, 9)),
    s.tuples(s.just("pay"), amounts, s.integers(0, 9), s.booleans()),
    s.tuples(s.just("allocate"), s.integers(0, 9), s.integers(0, 9), s.none() | amounts),
), min_size=1, max_size=12)


@pytest.fixture
def database_url(database_factory) -> str:
    return database_factory("billing_props", migrate)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps)
# Always tried as well: a paid invoice cancelled; a credit memo applied, then its invoice cancelled;
# an over-payment allocated by hand beyond the open balance.
@example([("invoice", D("100.00"), 0), ("pay", D("60.00"), 0, True), ("cancel", 0)])
@example([("invoice", D("100.00"), 1), ("credit", D("30.00"), 1), ("pay", D("70.00"), 0, False), ("cancel", 0),
          ("cancel", 1)])
@example([("invoice", D("50.00"), 2), ("pay", D("80.00"), 0, False), ("allocate", 0, 0, D("60.00")),
          ("allocate", 0, 0, None), ("invoice", D("40.00"), 2), ("allocate", 0, 1, None)])
def test_stored_balances_stay_consistent(database_url, facts, references, ops) -> None:
    # Each example in its own event loop and engine (hypothesis drives a plain function); each one
    # a new customer, so examples never see each other's documents. Not asyncio.run: it would leave
    # the main thread without a current event loop for the tests that come after.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_scenario(ops, database_url, facts, references))
    finally:
        loop.close()


async def _scenario(ops: list[tuple], database_url: str, facts: Any, references: Any) -> None:
    engine = create_engine(database_url, pool_size=2)
    try:
        await _run(ops, session_factory(engine), facts, references)
    finally:
        await engine.dispose()


async def _run(ops: list[tuple], sessions: Any, facts: Any, references: Any) -> None:
    async def call(principal, use_case, *args, **kwargs):
        async with UnitOfWork(sessions, "crm/billing", actor=principal.subject) as uow:
            return await use_case(uow, principal, *args, **kwargs)

    async def deliver(handler, event):
        async with UnitOfWork(sessions, "crm/billing", actor=event.actor) as uow:
            await handler(uow, event)
            await uow.commit()

    async def sql(query: str, **params: Any) -> list[Any]:
        async with sessions() as session:
            return list((await session.execute(text(query), params)).all())

    customer = uuid.uuid4()
    await deliver(uc.on_contract_signed, facts.event_of(facts.contract_signed(customer_id=customer)))
    orders = [str(uuid.uuid4()) for _ in range(3)]
    documents: list[tuple[str, str, str, bool]] = []  # number, total, order, credit
    payments: list[uuid.UUID] = []
    day = dt.date(2026, 1, 1)
    for op in ops:
        match op:
            case ("invoice" | "credit") as kind, amount, order:
                number = f"9{uuid.uuid4().int % 10**9:09d}"
                documents.append((number, str(amount), orders[order], kind == "credit"))
                await deliver(uc.on_billing_document, facts.event_of(facts.billing_document(
                    number=number, customer_id=customer, total=str(amount), order_id=orders[order],
                    credit=kind == "credit", billing_date=day.isoformat())))
            case ("cancel", which) if documents:
                number, total, order, credit = documents[which % len(documents)]
                await deliver(uc.on_billing_document, facts.event_of(facts.billing_document(
                    number=number, customer_id=customer, total=total, order_id=order, credit=credit,
                    cancelled=True)))
            case ("pay", amount, which, name_it):
                reference = documents[which % len(documents)][0] if name_it and documents else ""
                payment, _ = await call(FINANCE, partial(uc.record_payment, references=references), uc.NewPayment(
                    customer, None, str(amount), "CNY", day, reference))
                payments.append(payment.id)
            case ("allocate", p, i, amount) if payments and documents:
                [target] = await sql("SELECT id FROM invoices WHERE invoice_number = :n",
                                     n=documents[i % len(documents)][0])
                try:
                    await call(FINANCE, uc.allocate_payment, payments[p % len(payments)], "invoice", target.id,
                               str(amount) if amount is not None else "")
                except (Conflict, NotFound):
                    pass  # refused (over-allocation, settled, cancelled) or not an invoice (a credit note)

    # every stored balance within bounds and equal to its live allocations
    for row in await sql("""
            SELECT i.kind, i.status, i.total, i.allocated,
                   coalesce((SELECT sum(a.amount) FROM allocations a WHERE NOT a.released AND
                             (a.target_id = i.id OR a.source_id = i.id)), 0) AS live
            FROM invoices i WHERE i.customer_id = :c""", c=customer):
        assert D(0) <= row.allocated <= row.total
        assert row.allocated == row.live
        if row.status == "cancelled":
            assert row.allocated == 0
    for row in await sql("""
            SELECT p.amount, p.allocated_invoices,
                   coalesce((SELECT sum(a.amount) FROM allocations a WHERE NOT a.released AND a.source_id = p.id
                             AND a.target_kind = 'invoice'), 0) AS live
            FROM payments p WHERE p.customer_id = :c""", c=customer):
        assert D(0) <= row.allocated_invoices <= row.amount
        assert row.allocated_invoices == row.live

    [ledger] = await sql("""
        SELECT coalesce((SELECT sum(CASE WHEN kind = 'invoice' THEN total ELSE -total END) FROM invoices
                         WHERE customer_id = :c AND status != 'cancelled'), 0)
             - coalesce((SELECT sum(amount) FROM payments WHERE customer_id = :c), 0) AS balance""", c=customer)
    _, rows, _ = await call(FINANCE, uc.aging, "customer", day, "CNY")
    mine = [r for r in rows if r.key == str(customer)]
    assert (mine[0].total if mine else D(0)) == ledger.balance

    statement, lines = await call(FINANCE, uc.create_statement, customer, day, day, "CNY", references=references)
    assert statement.closing_balance == (statement.opening_balance + statement.invoices - statement.payments
                                         + statement.adjustments)
    assert statement.closing_balance == statement.opening_balance + sum((li.amount for li in lines), D(0))
    assert statement.closing_balance == ledger.balance
