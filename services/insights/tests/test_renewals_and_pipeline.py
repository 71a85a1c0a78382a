"""Key-customer renewals (R-DASH-02) and the pipeline matrix (R-DASH-03) on real PostgreSQL, fed by
events, within each caller's scope; records follow their customer."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest

from crm.billing.v1 import events_pb2 as billing_ev
from crm.customers.v1 import customers_pb2
from crm.customers.v1 import events_pb2 as customers_ev
from crm.opportunities.v1 import events_pb2 as opportunities_ev
from crm.opportunities.v1 import opportunities_pb2
from crm_insights.app import use_cases as uc
from crm_insights.domain.targets import Level
from crmkit.errors import InvalidArgument, PermissionDenied
from crmkit.testing.principals import ADMIN, EAST_MANAGER, EAST_REP, EAST_REP_2, WEST_REP

from .test_dashboard import C_EAST, C_WEST, customer, money, signed

pytestmark = pytest.mark.integration

TODAY = dt.date(2026, 5, 20)
C_BIG = uuid.UUID(int=0xC3)
EAST, WEST = ("rep-east", "east", "/sales/east/"), ("rep-west", "west", "/sales/west/")


def named(customer_id: uuid.UUID, name: str, place: tuple[str, str, str]) -> customers_ev.CustomerCreated:
    created = customer(customer_id, *place)
    created.name = name
    return customers_ev.CustomerCreated(customer=created)


async def renewals(call, principal, level: Level | None = None) -> list:
    return await call(principal, uc.key_renewals, level, 0, currency="CNY", today=TODAY)


async def test_key_customers_renewing_within_six_months_by_two_years_of_signing(call, deliver) -> None:
    for event in (
        named(C_EAST, "Fuzhou Valve Works", EAST), named(C_BIG, "Ningbo Pump Co.", EAST),
        named(C_WEST, "Xiamen Seals", WEST),
        # ends in 5 months; 100,000 signed within two years (900,000 three years ago does not count)
        signed(uuid.UUID(int=0xB1), C_EAST, dt.date(2023, 1, 10), "900000.00", *EAST, end=dt.date(2026, 1, 9)),
        signed(uuid.UUID(int=0xB2), C_EAST, dt.date(2025, 10, 1), "100000.00", *EAST, end=dt.date(2026, 10, 15)),
        # ends in 2 months, 400,000 within two years; 30,000 overdue
        signed(uuid.UUID(int=0xB3), C_BIG, dt.date(2025, 7, 1), "400000.00", *EAST, end=dt.date(2026, 7, 20)),
        # ends in 8 months: not a renewal yet
        signed(uuid.UUID(int=0xB4), C_WEST, dt.date(2026, 1, 5), "700000.00", *WEST, end=dt.date(2027, 1, 15)),
        billing_ev.InvoiceIssued(invoice_id=str(uuid.UUID(int=0xE1)), kind="invoice", customer_id=str(C_BIG),
                                 total=money("50000.00"), issued_on="2026-03-01", due_on="2026-04-01"),
        billing_ev.PaymentReceived(payment_id=str(uuid.UUID(int=0xE2)), customer_id=str(C_BIG),
                                   amount=money("20000.00"), received_on="2026-04-10"),
        billing_ev.PaymentAllocated(payment_id=str(uuid.UUID(int=0xE2)), allocation_id=str(uuid.UUID(int=0xE3)),
                                    target_kind="invoice", target_id=str(uuid.UUID(int=0xE1)),
                                    amount=money("20000.00")),
    ):
        await deliver(event)
    follow_up = customers_pb2.FollowUp(id=str(uuid.uuid4()), customer_id=str(C_BIG), author_id="rep-east")
    follow_up.occur_time.FromDatetime(dt.datetime(2026, 5, 18, 9))
    await deliver(customers_ev.FollowUpRecorded(follow_up=follow_up))
    await deliver(opportunities_ev.OpportunityCreated(opportunity=opportunity(C_BIG, "renewal", "120000.00", 50)))

    found = await renewals(call, ADMIN)
    assert [(r.customer_name, r.signed_two_years, r.end_date, r.overdue, r.open_opportunities,
             r.open_opportunity_amount) for r in found] == [
        ("Ningbo Pump Co.", Decimal("400000.00"), dt.date(2026, 7, 20), Decimal("30000.00"), 1, Decimal("120000.00")),
        ("Fuzhou Valve Works", Decimal("100000.00"), dt.date(2026, 10, 15), 0, 0, 0)]
    assert found[0].last_follow_up == dt.datetime(2026, 5, 18, 9, tzinfo=dt.UTC) and found[1].last_follow_up is None
    assert [r.customer_name for r in await renewals(call, EAST_REP)] == ["Ningbo Pump Co.", "Fuzhou Valve Works"]
    assert await renewals(call, WEST_REP) == []
    with pytest.raises(InvalidArgument):
        await call(ADMIN, uc.key_renewals, None, 501, currency="CNY", today=TODAY)


def opportunity(customer_id: uuid.UUID, stage: str, amount: str, probability: int, *, owner=EAST,
                opportunity_id: uuid.UUID | None = None, version: int = 1,
                status: int = opportunities_pb2.OPPORTUNITY_STATUS_OPEN) -> opportunities_pb2.Opportunity:
    return opportunities_pb2.Opportunity(
        id=str(opportunity_id or uuid.uuid4()), customer_id=str(customer_id), pipeline_id="standard",
        stage_id=stage, amount=money(amount), probability=probability, status=status, owner_id=owner[0],
        team_id=owner[1], department_path=owner[2], version=version)


async def test_the_pipeline_by_stage_and_salesperson(call, deliver) -> None:
    moving = uuid.uuid4()
    for event in (
        customers_ev.CustomerCreated(customer=customer(C_EAST, *EAST)),
        customers_ev.CustomerCreated(customer=customer(C_WEST, *WEST)),
        opportunities_ev.OpportunityCreated(opportunity=opportunity(C_EAST, "qualify", "100000.00", 20)),
        opportunities_ev.OpportunityCreated(opportunity=opportunity(C_EAST, "qualify", "50000.00", 20)),
        opportunities_ev.OpportunityCreated(opportunity=opportunity(C_EAST, "quote", "80000.00", 60,
                                                                    opportunity_id=moving)),
        opportunities_ev.OpportunityCreated(opportunity=opportunity(C_WEST, "qualify", "30000.00", 20, owner=WEST)),
        opportunities_ev.OpportunityLost(opportunity=opportunity(
            C_WEST, "lost", "999.00", 0, owner=WEST, status=opportunities_pb2.OPPORTUNITY_STATUS_LOST)),
        # moved on to negotiate; the older snapshot arriving again changes nothing
        opportunities_ev.OpportunityStageChanged(opportunity=opportunity(C_EAST, "negotiate", "80000.00", 75,
                                                                         opportunity_id=moving, version=2)),
        opportunities_ev.OpportunityCreated(opportunity=opportunity(C_EAST, "quote", "80000.00", 60,
                                                                    opportunity_id=moving)),
    ):
        await deliver(event)

    def cells(found: list) -> list[tuple]:
        return [(c.stage_id, c.person_id, c.count, c.amount, c.weighted) for c in found]

    level, company = await call(ADMIN, uc.pipeline_matrix, None, currency="CNY")
    assert level is Level.COMPANY
    assert cells(company) == [
        ("negotiate", "rep-east", 1, Decimal("80000.00"), Decimal("60000.00")),
        ("qualify", "rep-east", 2, Decimal("150000.00"), Decimal("30000.00")),
        ("qualify", "rep-west", 1, Decimal("30000.00"), Decimal("6000.00"))]
    assert cells((await call(EAST_MANAGER, uc.pipeline_matrix, None, currency="CNY"))[1]) == cells(company)[:2]
    with pytest.raises(PermissionDenied):
        await call(EAST_REP, uc.pipeline_matrix, Level.COMPANY, currency="CNY")

    # the customer moves to another rep: its opportunities move with it
    await deliver(customers_ev.CustomerReassigned(customer=customer(C_EAST, "rep-east-2", "east", "/sales/east/", 2),
                                                  owner_id="rep-east-2", previous_owner_id="rep-east"))
    assert (await call(EAST_REP, uc.pipeline_matrix, None, currency="CNY"))[1] == []
    assert [c.person_id for c in (await call(EAST_REP_2, uc.pipeline_matrix, None, currency="CNY"))[1]] == [
        "rep-east-2", "rep-east-2"]
