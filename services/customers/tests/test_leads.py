"""Leads against a real PostgreSQL (R-LEAD-01, R-CUS-06, R-CUS-11): assignment fairness and caps
under concurrent transactions, conversion, attribution, tier, reassignment."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from crm.common.v1 import money_pb2
from crm.contracts.v1 import events_pb2 as contracts_ev
from crm.customers.v1 import events_pb2 as ev
from crm.opportunities.v1 import events_pb2 as opp_ev
from crm.opportunities.v1 import opportunities_pb2 as opp_pb
from crm_customers.app import imports, reassign
from crm_customers.app import leads as uc
from crm_customers.app import use_cases as customers_uc
from crm_customers.domain.leads import LeadStatus
from crm_customers.domain.model import LifecycleStage
from crmkit.errors import Conflict, InvalidArgument, NotFound, PermissionDenied
from crmkit.events.envelope import Event
from crmkit.testing.principals import ADMIN, EAST_MANAGER, EAST_REP, MARKETING, WEST_REP

pytestmark = pytest.mark.integration

MARKETER = dataclasses.replace(MARKETING, permissions=("leads.read", "leads.write", "leads.assign"))
BOSS = dataclasses.replace(ADMIN, permissions=("*",))


def new_lead(i: int = 0, **fields: Any) -> dict[str, Any]:
    return {"name": f"Person {i}", "company": f"Company {i}", "source": "trade_show", "campaign": "canton-2026",
            "channel": "offline", "phone": f"+86138{i:08d}"[:14], **fields}


async def add_rule(call: Any, **fields: Any) -> Any:
    return await call(BOSS, uc.create_rule, {"name": "East pool", "user_ids": ("a", "b", "c"), "team_id": "east",
                                             "department_path": "/sales/east/", "cap_days": 7, **fields})


def event(message: Any, subject: str) -> Event:
    return Event(id=str(uuid.uuid4()), subject=subject, type=message.DESCRIPTOR.full_name,
                 payload=message.SerializeToString(), headers={})


async def test_batch_of_1000_spreads_evenly_and_records_the_rule(call, sql_rows) -> None:
    rule = await add_rule(call)
    created = await call(MARKETER, uc.create_leads, [new_lead(i) for i in range(1000)])
    counts = Counter(lead.owner_id for lead in created)
    assert counts == {"a": 334, "b": 333, "c": 333}
    assert {lead.assignment_rule_id for lead in created} == {rule.id}
    assert {(lead.team_id, lead.department_path) for lead in created} == {("east", "/sales/east/")}
    rows = await sql_rows("SELECT rule_id, count(*) AS n FROM lead_assignments GROUP BY rule_id")
    assert [(r.rule_id, r.n) for r in rows] == [(rule.id, 1000)]


async def test_parallel_requests_stay_fair(call, sql_rows) -> None:
    await add_rule(call, user_ids=("p", "q", "r", "s"))
    # 12 concurrent transactions of 7 leads each: 84 leads, 21 each.
    results = await asyncio.gather(*(call(MARKETER, uc.create_leads, [new_lead(b * 10 + i) for i in range(7)])
                                     for b in range(12)))
    counts = Counter(lead.owner_id for batch in results for lead in batch)
    assert counts == {"p": 21, "q": 21, "r": 21, "s": 21}
    singles = await asyncio.gather(*(call(MARKETER, uc.create_leads, [new_lead(i)]) for i in range(10)))
    counts.update(batch[0].owner_id for batch in singles)
    assert max(counts.values()) - min(counts.values()) <= 1


async def test_cap_is_never_exceeded_under_concurrency(call, sql_rows) -> None:
    rule = await add_rule(call, user_ids=("x", "y"), cap_count=5, cap_days=7)
    results = await asyncio.gather(*(call(MARKETER, uc.create_leads, [new_lead(b * 10 + i) for i in range(3)])
                                     for b in range(6)))
    leads = [lead for batch in results for lead in batch]
    assert Counter(lead.owner_id for lead in leads) == {"x": 5, "y": 5, "": 8}
    unassigned = [lead for lead in leads if not lead.owner_id]
    assert all("capacity" in lead.unassigned_reason and rule.name in lead.unassigned_reason for lead in unassigned)
    # Raising the cap lets the rules take an unassigned lead on a second try.
    await call(BOSS, uc.update_rule, rule.id, {"cap_count": 6}, rule.version)
    again = await call(MARKETER, uc.assign_lead, unassigned[0].id, "", "", 0)
    assert again.owner_id in {"x", "y"} and again.unassigned_reason == ""


async def test_rules_by_region_and_no_match(call) -> None:
    west = await call(BOSS, uc.create_rule, {"name": "West", "priority": 1, "regions": ("West",),
                                             "user_ids": ("rep-west",), "team_id": "west"})
    [matched, unmatched] = await call(MARKETER, uc.create_leads, [new_lead(1, region="west"),
                                                                  new_lead(2, region="north")])
    assert (matched.owner_id, matched.assignment_rule_id) == ("rep-west", west.id)
    assert unmatched.owner_id == "" and unmatched.unassigned_reason == "no assignment rule matches the lead"
    # The owner sees it; another rep does not (data scope as for customers).
    assert (await call(WEST_REP, uc.get_lead, matched.id)).id == matched.id
    with pytest.raises(NotFound):
        await call(EAST_REP, uc.get_lead, matched.id)


async def test_batch_validation_names_each_row_and_creates_nothing(call, sql_rows) -> None:
    with pytest.raises(InvalidArgument) as err:
        await call(MARKETER, uc.create_leads, [new_lead(1), new_lead(2, name="", source="")])
    assert {v.field for v in err.value.violations} == {"leads[1].name", "leads[1].source"}
    with pytest.raises(InvalidArgument):
        await call(MARKETER, uc.create_leads, [new_lead(i) for i in range(1001)])
    assert (await sql_rows("SELECT count(*) AS n FROM leads"))[0].n == 0


async def test_hand_assignment_is_scoped(call) -> None:
    [mine] = await call(EAST_REP, uc.create_leads, [new_lead(1, owner_id="rep-east")])
    assert (mine.owner_id, mine.team_id) == ("rep-east", "east")
    with pytest.raises(PermissionDenied):
        await call(EAST_REP, uc.create_leads, [new_lead(2, owner_id="rep-west", team_id="west")])
    moved = await call(EAST_MANAGER, uc.assign_lead, mine.id, "rep-east-2", "east", mine.version)
    assert moved.owner_id == "rep-east-2" and moved.version == mine.version + 1


async def test_conversion_creates_customer_contact_and_is_idempotent(call, outbox) -> None:
    [lead] = await call(EAST_REP, uc.create_leads, [new_lead(7, owner_id="rep-east", title="Buyer",
                                                              email="buyer@acme.example")])
    lead = await call(EAST_REP, uc.update_lead_status, lead.id, LeadStatus.QUALIFIED, 0)
    done = await call(EAST_REP, uc.convert_lead, lead.id)
    assert done.customer_created and done.customer.name == "Company 7"
    assert done.customer.lifecycle_stage is LifecycleStage.PROSPECT
    assert (done.customer.owner_id, done.customer.team_id) == ("rep-east", "east")
    assert (done.contact.name, done.contact.title, done.contact.email) == ("Person 7", "Buyer", "buyer@acme.example")
    assert done.lead.status is LeadStatus.CONVERTED and done.lead.customer_id == done.customer.id
    again = await call(EAST_REP, uc.convert_lead, lead.id)
    assert (again.customer.id, again.contact.id, again.customer_created) == (done.customer.id, done.contact.id, False)
    subjects = [row.subject for row in await outbox()]
    assert subjects.count("crm.customers.lead.converted") == 1
    assert subjects.count("crm.customers.customer.created") == 1
    opportunity_id = uuid.uuid4()
    linked = await call(EAST_REP, uc.link_opportunity, lead.id, opportunity_id)
    assert linked.opportunity_id == opportunity_id
    with pytest.raises(Conflict):
        await call(EAST_REP, uc.update_lead_status, lead.id, LeadStatus.WORKING, 0)


async def test_conversion_attaches_to_an_existing_customer_by_name_or_tax_id(call) -> None:
    existing = await call(EAST_REP, customers_uc.create_customer, {"name": "Acme Valves"})
    [by_name] = await call(EAST_REP, uc.create_leads, [new_lead(1, company="ACME valves", owner_id="rep-east")])
    done = await call(EAST_REP, uc.convert_lead, by_name.id)
    assert (done.customer.id, done.customer_created) == (existing.id, False)
    # Outside the caller's scope an exact name match does not attach: a new customer is made.
    [west] = await call(WEST_REP, uc.create_leads, [new_lead(2, company="Acme Valves", owner_id="rep-west")])
    other = await call(WEST_REP, uc.convert_lead, west.id)
    assert other.customer.id != existing.id and other.customer_created
    # The name is compared literally: a % or _ in it is no wildcard.
    [wild] = await call(EAST_REP, uc.create_leads, [new_lead(4, company="Acme%", owner_id="rep-east")])
    assert (await call(EAST_REP, uc.convert_lead, wild.id)).customer_created
    [unq] = await call(EAST_REP, uc.create_leads, [new_lead(3, owner_id="rep-east")])
    await call(EAST_REP, uc.update_lead_status, unq.id, LeadStatus.UNQUALIFIED, 0)
    with pytest.raises(Conflict) as err:
        await call(EAST_REP, uc.convert_lead, unq.id)
    assert err.value.reason == "LEAD_UNQUALIFIED"


async def test_attribution_counts_conversions_and_won_amounts(call, uow) -> None:
    created = await call(MARKETER, uc.create_leads, [
        new_lead(1, source="web", campaign="spring", channel="seo", owner_id="rep-east", team_id="east"),
        new_lead(2, source="web", campaign="spring", channel="seo", owner_id="rep-east", team_id="east"),
        new_lead(3, source="expo", campaign="", channel="offline", owner_id="rep-east", team_id="east")])
    done = await call(EAST_REP, uc.convert_lead, created[0].id)
    opportunity_id = uuid.uuid4()
    await call(EAST_REP, uc.link_opportunity, created[0].id, opportunity_id)
    won = opp_ev.OpportunityWon(opportunity=opp_pb.Opportunity(
        id=str(opportunity_id), customer_id=str(done.customer.id), lead_id=str(created[0].id),
        amount=money_pb2.Money(amount="120000.50", currency="CNY")))
    async with uow() as u:
        await uc.on_opportunity_won(u, event(won, uc.OPPORTUNITY_WON_SUBJECT))
        await u.commit()
    rows = {(r.source, r.campaign, r.channel): r for r in await call(MARKETER, uc.attribution, from_date=None,
                                                                      to_date=None)}
    web = rows[("web", "spring", "seo")]
    assert (web.leads, web.converted, web.won, web.won_amounts) == (2, 1, 1, ((Decimal("120000.50"), "CNY"),))
    expo = rows[("expo", "", "offline")]
    assert (expo.leads, expo.converted, expo.won, expo.won_amounts) == (1, 0, 0, ())


async def test_tier_follows_cumulative_signed_amount(call, uow, outbox) -> None:
    customer = await call(EAST_REP, customers_uc.create_customer, {"name": "Tiered Co"})

    async def sign(amount: str) -> None:
        signed = contracts_ev.ContractSigned(contract_id=str(uuid.uuid4()), customer_id=str(customer.id),
                                             amount=money_pb2.Money(amount=amount, currency="CNY"))
        async with uow() as u:
            await customers_uc.on_contract_signed(u, event(signed, customers_uc.CONTRACT_SIGNED_SUBJECT))
            await u.commit()

    await sign("600000.00")
    assert (await call(EAST_REP, customers_uc.get_customer, customer.id)).tier == "C"
    await sign("500000.00")
    got = await call(EAST_REP, customers_uc.get_customer, customer.id)
    assert (got.tier, got.signed_amount, got.signed_currency) == ("B", "1100000.00", "CNY")
    last = [r.message() for r in await outbox() if r.subject == "crm.customers.customer.updated"][-1]
    assert list(last.changed_fields) == ["tier"] and last.after.tier == "B"


class OrgChart:
    """identity's org chart as the owner directory answers it (a port: imports.OwnerDirectory)."""

    async def resolve(self, names: set[str]) -> dict[str, imports.Owner | None]:
        known = {"rep-west": imports.Owner("rep-west", "west", "/sales/west/", "wang.fang")}
        return {n: known.get(n) for n in names}


async def test_a_reassigned_customer_takes_the_new_owners_department(call, outbox, monkeypatch) -> None:
    """Data scopes follow the customer: the event carries the new owner's department path, which
    opportunities, contracts, orders and billing copy onto the customer's records."""
    monkeypatch.setattr(imports, "_owners", OrgChart())
    customer = await call(EAST_REP, customers_uc.create_customer, {"name": "Moving West Ltd"})
    moved = await call(ADMIN, reassign.reassign_customer, customer.id, "rep-west", "west", customer.version)
    assert (moved.owner_id, moved.team_id, moved.department_path) == ("rep-west", "west", "/sales/west/")
    [row] = [r for r in await outbox() if r.subject == "crm.customers.customer.reassigned"]
    assert row.message().customer.department_path == "/sales/west/"


async def test_reassign_customer_emits_old_and_new_owner(call, outbox) -> None:
    customer = await call(EAST_REP, customers_uc.create_customer, {"name": "Handover Ltd"})
    moved = await call(EAST_MANAGER, reassign.reassign_customer, customer.id, "rep-east-2", "", customer.version)
    assert (moved.owner_id, moved.team_id, moved.version) == ("rep-east-2", "east", customer.version + 1)
    [row] = [r for r in await outbox() if r.subject == "crm.customers.customer.reassigned"]
    message = row.message()
    assert isinstance(message, ev.CustomerReassigned)
    assert (message.previous_owner_id, message.owner_id) == ("rep-east", "rep-east-2")
    with pytest.raises(PermissionDenied):
        await call(EAST_MANAGER, reassign.reassign_customer, customer.id, "rep-west", "west", 0)


@pytest.fixture
def sql_rows(sessions):
    async def run(query: str) -> list[Any]:
        async with sessions() as s:
            return list((await s.execute(text(query))).all())
    return run
