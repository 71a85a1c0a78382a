"""Ownership follows the customer (issue 12; docs/architecture.md "Ownership after reassignment and
merge"): customer.reassigned and customer.merged move every opportunity, quote and requirement
request of the customer, open or closed, into the new owner's scope; won_by keeps the credit."""

from __future__ import annotations

import datetime as dt
import uuid
from functools import partial

import pytest
from google.protobuf.message import Message

from crm.customers.v1 import customers_pb2 as cpb
from crm.customers.v1 import events_pb2 as customer_events
from crm_opportunities.app import ownership
from crm_opportunities.app import use_cases as uc
from crm_opportunities.domain.model import OpportunityStatus
from crm_opportunities.domain.money import parse_line
from crmkit.db import UnitOfWork
from crmkit.errors import NotFound
from crmkit.events.envelope import Event
from crmkit.testing.principals import EAST_REP, WEST_REP
from crmkit.testing.service import EveryCustomer

pytestmark = pytest.mark.integration

create_opportunity = partial(uc.create_opportunity, customers=EveryCustomer())
WEST_OWNER = cpb.Customer(owner_id=WEST_REP.subject, team_id="west", department_path="/sales/west/")
VALID = dt.date.today() + dt.timedelta(days=30)
LINES = [parse_line(0, "Valve DN50", "", "1", "100", "", "13")]


def opportunity_for(customer_id: uuid.UUID, name: str) -> uc.NewOpportunity:
    return uc.NewOpportunity(customer_id=customer_id, name=name, pipeline_id=None, amount="100", currency="CNY",
                             probability=0, expected_close_date=None)


def event(message: Message, event_id: str) -> Event:
    return Event(id=event_id, subject="crm.customers.test", type=message.DESCRIPTOR.full_name,
                 payload=message.SerializeToString(), headers={})


async def deliver(sessions, handler, message: Message, event_id: str) -> None:
    async with UnitOfWork(sessions, "crm/opportunities") as uow:
        await handler(uow, event(message, event_id))
        await uow.commit()


async def test_a_reassigned_customers_records_follow_it_and_the_win_stays_credited(call, sessions) -> None:
    customer = uuid.uuid4()
    won = await call(EAST_REP, create_opportunity, opportunity_for(customer, "Won deal"))
    won = await call(EAST_REP, uc.mark_won, won.id, 0)
    open_one = await call(EAST_REP, create_opportunity, opportunity_for(customer, "Open deal"))
    quote = await call(EAST_REP, uc.create_quote, open_one.id, "", LINES, VALID)
    untouched = await call(EAST_REP, create_opportunity, opportunity_for(uuid.uuid4(), "Another customer"))
    with pytest.raises(NotFound):
        await call(WEST_REP, uc.get_opportunity, open_one.id)

    reassigned = customer_events.CustomerReassigned(
        customer=cpb.Customer(id=str(customer), **{f.name: v for f, v in WEST_OWNER.ListFields()}),
        previous_owner_id=EAST_REP.subject, owner_id=WEST_REP.subject, previous_team_id="east")
    for delivery in ("ev-1", "ev-2"):  # the second is a replay under a new id: nothing more changes
        await deliver(sessions, ownership.on_customer_moved, reassigned, delivery)

    moved_won = await call(WEST_REP, uc.get_opportunity, won.id)
    assert (moved_won.owner_id, moved_won.team_id, moved_won.department_path) == (
        WEST_REP.subject, "west", "/sales/west/")
    assert moved_won.status is OpportunityStatus.WON and moved_won.won_by == EAST_REP.subject
    assert moved_won.version == won.version + 1
    assert (await call(WEST_REP, uc.get_opportunity, open_one.id)).owner_id == WEST_REP.subject
    assert (await call(WEST_REP, uc.get_quote, quote.id)).owner_id == WEST_REP.subject
    with pytest.raises(NotFound):
        await call(EAST_REP, uc.get_opportunity, open_one.id)
    assert (await call(EAST_REP, uc.get_opportunity, untouched.id)).owner_id == EAST_REP.subject


async def test_a_merged_customers_records_are_repointed_to_the_survivor(call, sessions) -> None:
    merged, survivor = uuid.uuid4(), uuid.uuid4()
    old = await call(EAST_REP, create_opportunity, opportunity_for(merged, "On the duplicate"))
    quote = await call(EAST_REP, uc.create_quote, old.id, "", LINES, VALID)
    message = customer_events.CustomersMerged(
        surviving_id=str(survivor), merged_id=str(merged),
        surviving=cpb.Customer(id=str(survivor), **{f.name: v for f, v in WEST_OWNER.ListFields()}),
        merged=cpb.Customer(id=str(merged), owner_id=EAST_REP.subject))
    await deliver(sessions, ownership.on_customer_moved, message, "merge-1")

    moved = await call(WEST_REP, uc.get_opportunity, old.id)
    assert (moved.customer_id, moved.owner_id) == (survivor, WEST_REP.subject)
    moved_quote = await call(WEST_REP, uc.get_quote, quote.id)
    assert (moved_quote.customer_id, moved_quote.owner_id) == (survivor, WEST_REP.subject)
    listed, _ = await call(WEST_REP, uc.list_opportunities, page_token="", limit=10, customer_id=survivor)
    assert [o.id for o in listed] == [old.id]
