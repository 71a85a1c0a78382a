"""The read models fed by events and the dashboard on real PostgreSQL: the figures of a small
month of business, for each level of scope, whatever order the events arrive in and however often."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest

from crm.billing.v1 import events_pb2 as billing_ev
from crm.common.v1 import money_pb2
from crm.contracts.v1 import events_pb2 as contracts_ev
from crm.customers.v1 import customers_pb2
from crm.customers.v1 import events_pb2 as customers_ev
from crm_insights.app import use_cases as uc
from crm_insights.domain.periods import PeriodKind
from crm_insights.domain.targets import Level
from crmkit.errors import PermissionDenied
from crmkit.testing.principals import ADMIN, EAST_MANAGER, EAST_REP, EAST_REP_2, FINANCE, WEST_REP

pytestmark = pytest.mark.integration

TODAY = dt.date(2026, 5, 20)
C_EAST, C_WEST = uuid.UUID(int=0xC1), uuid.UUID(int=0xC2)
K1, K2, K3, K4 = (uuid.UUID(int=0xA0 + i) for i in range(1, 5))
I1, P1, P2, A1 = uuid.UUID(int=0x11), uuid.UUID(int=0x21), uuid.UUID(int=0x22), uuid.UUID(int=0x31)


def money(amount: str) -> money_pb2.Money:
    return money_pb2.Money(amount=amount, currency="CNY")


def customer(customer_id: uuid.UUID, owner: str, team: str, department: str,
             version: int = 1) -> customers_pb2.Customer:
    return customers_pb2.Customer(id=str(customer_id), owner_id=owner, team_id=team, department_path=department,
                                  version=version)


def signed(contract_id: uuid.UUID, customer_id: uuid.UUID, day: dt.date, amount: str, by: str, team: str,
           department: str, plan: tuple[tuple[dt.date, str], ...] = (),
           end: dt.date | None = None) -> contracts_ev.ContractSigned:
    message = contracts_ev.ContractSigned(
        contract_id=str(contract_id), customer_id=str(customer_id), amount=money(amount), owner_id=by, signed_by=by,
        team_ids=[team], department_path=department, end_date=end.isoformat() if end else "",
        instalments=[contracts_ev.Instalment(instalment_id=str(uuid.uuid5(contract_id, str(i))), sequence=i + 1,
                                             due_date=due.isoformat(), amount=money(part))
                     for i, (due, part) in enumerate(plan)])
    message.sign_time.FromDatetime(dt.datetime.combine(day, dt.time(), dt.UTC))
    return message


def month_of_business() -> list:
    """May 2026: rep-east signs a new customer (100,000, 30,000 due in May) and again for it (50,000);
    rep-west, whose customer's first contract was in April (80,000), signs again (60,000). The east
    customer is invoiced 113,000 (due 15 May) and pays 40,000 on it; the west customer pays 20,000."""
    return [
        customers_ev.CustomerCreated(customer=customer(C_EAST, "rep-east", "east", "/sales/east/")),
        customers_ev.CustomerCreated(customer=customer(C_WEST, "rep-west", "west", "/sales/west/")),
        signed(K3, C_WEST, dt.date(2026, 4, 20), "80000.00", "rep-west", "west", "/sales/west/"),
        signed(K1, C_EAST, dt.date(2026, 5, 3), "100000.00", "rep-east", "east", "/sales/east/",
               ((dt.date(2026, 5, 10), "30000.00"), (dt.date(2026, 7, 10), "70000.00"))),
        signed(K2, C_EAST, dt.date(2026, 5, 12), "50000.00", "rep-east", "east", "/sales/east/"),
        signed(K4, C_WEST, dt.date(2026, 5, 15), "60000.00", "rep-west", "west", "/sales/west/"),
        billing_ev.InvoiceIssued(invoice_id=str(I1), kind="invoice", customer_id=str(C_EAST), contract_id=str(K1),
                                 total=money("113000.00"), issued_on="2026-05-05", due_on="2026-05-15",
                                 owner_id="rep-east"),
        billing_ev.PaymentReceived(payment_id=str(P1), customer_id=str(C_EAST), amount=money("40000.00"),
                                   received_on="2026-05-08", owner_id="rep-east"),
        billing_ev.PaymentAllocated(payment_id=str(P1), allocation_id=str(A1), target_kind="invoice",
                                    target_id=str(I1), amount=money("40000.00"), customer_id=str(C_EAST)),
        billing_ev.PaymentReceived(payment_id=str(P2), customer_id=str(C_WEST), amount=money("20000.00"),
                                   received_on="2026-05-18", owner_id="rep-west"),
    ]


async def dashboard(call, principal, level: Level | None = None, **query) -> uc.Dashboard:
    return await call(principal, uc.get_dashboard, uc.DashboardQuery(level=level, **query), currency="CNY",
                      today=TODAY)


def money_figures(f: uc.Figures) -> tuple:
    s = f.sums
    return (s.signed, s.signed_new_customers, s.new_customers, s.due, s.collected, s.outstanding, s.overdue)


COMPANY_MAY = (Decimal("210000.00"), Decimal("100000.00"), 1, Decimal("30000.00"), Decimal("60000.00"),
               Decimal("73000.00"), Decimal("73000.00"))


@pytest.mark.parametrize("order", ["as published", "reversed", "every event twice"])
async def test_the_company_month_adds_up_whatever_the_order_of_arrival(call, deliver, order) -> None:
    events = month_of_business()
    if order == "reversed":  # a payment before its invoice, an allocation before its payment
        events.reverse()
    if order == "every event twice":  # a redelivery, and a replay under a new event id
        events = [e for event in events for e in (event, event)]
    for event in events:
        await deliver(event)

    board = await dashboard(call, ADMIN)
    assert board.level is Level.COMPANY
    assert money_figures(board.current) == COMPANY_MAY
    assert (board.current.collection_rate, board.current.collected_of_signed) == (Decimal("200.00"),
                                                                                  Decimal("28.57"))
    assert board.previous_period.period.start == dt.date(2026, 4, 1)
    assert (board.previous_period.sums.signed, board.previous_period.sums.new_customers) == (Decimal("80000.00"), 1)
    assert board.last_year.sums.signed == 0
    assert [(e.figures.person_id, e.figures.signed, e.figures.collected, e.figures.new_customers, e.rank,
             e.previous_rank) for e in board.leaderboard.entries] == [
        ("rep-east", Decimal("150000.00"), Decimal("40000.00"), 1, 1, 0),
        ("rep-west", Decimal("60000.00"), Decimal("20000.00"), 0, 2, 1)]


async def test_each_caller_sees_the_figures_of_their_scope_only(call, deliver) -> None:
    for event in month_of_business():
        await deliver(event)

    east = (Decimal("150000.00"), Decimal("100000.00"), 1, Decimal("30000.00"), Decimal("40000.00"),
            Decimal("73000.00"), Decimal("73000.00"))
    assert money_figures((await dashboard(call, EAST_REP)).current) == east
    manager = await dashboard(call, EAST_MANAGER)
    assert manager.level is Level.TEAM and money_figures(manager.current) == east
    assert money_figures((await dashboard(call, WEST_REP)).current) == (
        Decimal("60000.00"), 0, 0, 0, Decimal("20000.00"), 0, 0)
    # a colleague in the same team sees nothing of rep-east's at their own level
    assert money_figures((await dashboard(call, EAST_REP_2)).current) == (0, 0, 0, 0, 0, 0, 0)
    assert [e.figures.person_id for e in (await dashboard(call, EAST_MANAGER)).leaderboard.entries] == ["rep-east"]
    # finance: the company's money, every customer here has a signed contract
    assert money_figures((await dashboard(call, FINANCE)).current) == COMPANY_MAY
    with pytest.raises(PermissionDenied):
        await dashboard(call, EAST_REP, Level.TEAM)


async def test_an_empty_scope_answers_zeros(call) -> None:
    board = await dashboard(call, ADMIN, period=PeriodKind.YEAR)
    assert money_figures(board.current) == (0, 0, 0, 0, 0, 0, 0)
    assert (board.current.completion, board.current.collection_rate, board.leaderboard.entries) == (None, None, [])


async def test_money_follows_the_customer_and_credit_for_signing_stays(call, deliver) -> None:
    for event in month_of_business():
        await deliver(event)
    await deliver(customers_ev.CustomerReassigned(customer=customer(C_EAST, "rep-east-2", "east", "/sales/east/", 2),
                                                  previous_owner_id="rep-east", owner_id="rep-east-2"))
    # an older version arriving late changes nothing
    await deliver(customers_ev.CustomerUpdated(after=customer(C_EAST, "rep-east", "east", "/sales/east/", 1)))

    mine = (await dashboard(call, EAST_REP)).current.sums
    theirs = (await dashboard(call, EAST_REP_2)).current.sums
    assert (mine.signed, mine.collected, mine.outstanding) == (Decimal("150000.00"), 0, 0)
    assert (theirs.signed, theirs.collected, theirs.outstanding) == (0, Decimal("40000.00"), Decimal("73000.00"))


async def test_receivables_are_as_of_the_end_of_the_period(call, deliver) -> None:
    for event in month_of_business():
        await deliver(event)
    await deliver(billing_ev.InvoiceIssued(
        invoice_id=str(uuid.UUID(int=0x12)), kind="invoice", customer_id=str(C_WEST), total=money("5000.00"),
        issued_on="2026-05-19", due_on="2026-06-18", owner_id="rep-west"))
    may, april = (await dashboard(call, ADMIN)).current.sums, (await dashboard(call, ADMIN)).previous_period.sums
    assert (may.outstanding, may.overdue) == (Decimal("78000.00"), Decimal("73000.00"))
    assert (april.outstanding, april.overdue) == (0, 0)
    # 6 May: invoiced, not yet paid, not yet due
    early = await dashboard(call, ADMIN, period=PeriodKind.CUSTOM, start=dt.date(2026, 5, 1), end=dt.date(2026, 5, 6))
    assert (early.current.sums.outstanding, early.current.sums.overdue) == (Decimal("113000.00"), 0)
    # a cancelled invoice is owed by nobody
    await deliver(billing_ev.InvoiceCancelled(invoice_id=str(I1), customer_id=str(C_EAST)))
    assert (await dashboard(call, ADMIN)).current.sums.outstanding == Decimal("5000.00")


async def test_an_amendment_replaces_the_amount_and_plan_and_an_older_one_is_ignored(call, deliver) -> None:
    for event in month_of_business():
        await deliver(event)
    plan = [contracts_ev.Instalment(instalment_id=str(uuid.uuid5(K1, "0")), due_date="2026-05-10",
                                    amount=money("50000.00"))]
    await deliver(contracts_ev.ContractAmended(contract_id=str(K1), version=3, amount=money("120000.00"),
                                               instalments=plan, customer_id=str(C_EAST)))
    await deliver(contracts_ev.ContractAmended(contract_id=str(K1), version=2, amount=money("1.00"),
                                               customer_id=str(C_EAST)))
    sums = (await dashboard(call, ADMIN)).current.sums
    assert (sums.signed, sums.due) == (Decimal("230000.00"), Decimal("50000.00"))


async def test_malformed_events_are_dropped(call, deliver) -> None:
    await deliver(billing_ev.PaymentReceived(payment_id="not-an-id", customer_id=str(C_EAST), amount=money("5.00"),
                                             received_on="2026-05-08"))
    await deliver(billing_ev.PaymentReceived(payment_id=str(P1), customer_id=str(C_EAST), amount=money("5.00"),
                                             received_on="yesterday"))
    assert (await dashboard(call, ADMIN)).current.sums.collected == 0
