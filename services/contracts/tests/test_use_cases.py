"""Use cases on a real PostgreSQL: drafting (by hand and from quote.accepted, once), numbers,
the approval workflow from the org chart (R-CON-02) with returns, resubmission, delegates and
concurrent decisions, signing and contract.signed, the receivable plan (R-CON-03), amendments
(R-CON-01), renewals and the periodic passes (R-CON-04), data scopes, the PDF document."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import re
import uuid
import zlib
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import partial

import pytest

from crm.common.v1 import money_pb2
from crm.opportunities.v1 import events_pb2 as opp_ev
from crm.opportunities.v1 import opportunities_pb2 as opp_pb
from crm_contracts.adapters import document
from crm_contracts.app import use_cases as uc
from crm_contracts.app.references import OpportunityFacts, Owners
from crm_contracts.domain import approvals as ap
from crm_contracts.domain import model
from crm_contracts.domain.model import Instalment, Status
from crmkit.auth import DataScope, Principal
from crmkit.db import UnitOfWork
from crmkit.errors import Conflict, InvalidArgument, NotFound, PermissionDenied, StaleVersion
from crmkit.events.envelope import Event
from crmkit.testing.principals import ADMIN, EAST_MANAGER, EAST_REP, EAST_REP_2, FINANCE, WEST_REP
from crmkit.testing.service import EveryCustomer

pytestmark = pytest.mark.integration

CUSTOMER = uuid.UUID("01930000-0000-7000-8000-00000000c001")


@dataclass
class OpportunitiesOf:
    """Stands in for the opportunities service in tests of the use cases' own rules: every
    opportunity named exists, is in scope, and is `customer_id`'s."""

    customer_id: str

    async def opportunity(self, opportunity_id: str) -> OpportunityFacts:
        return OpportunityFacts(id=opportunity_id, customer_id=self.customer_id)


def every_owner(customer_id: str, name: str = "华东医疗器械有限公司", customer_type: str = "domestic") -> Owners:
    """Owners for the use-case tests: every customer exists as `name`, every opportunity is
    `customer_id`'s. The reference checks themselves run against the real services (test_references)."""
    return Owners(customers=EveryCustomer(name, customer_type), opportunities=OpportunitiesOf(customer_id))


create_contract = partial(uc.create_contract, owners=every_owner(str(CUSTOMER)))
create_renewal = partial(uc.create_renewal, owners=every_owner(str(CUSTOMER)))
DIRECTOR = Principal(subject="director", name="Zhao Lei", roles=("sales_director",), department_path="/sales/",
                     data_scope=DataScope.DEPARTMENT)
FINANCE_2 = replace(FINANCE, subject="finance-2", name="Qian Yi")
GM = Principal(subject="gm", roles=("general_manager",), data_scope=DataScope.ALL)
START, END = dt.date(2027, 1, 1), dt.date(2027, 12, 31)


def lines(qty: str = "100", price: str = "1000") -> list[model.Line]:
    """100 × 1000 = 100,000 net, 13,000 tax: 113,000.00 gross."""
    return [model.parse_line(0, "Catheter 6F", "PTFE liner", qty, "pcs", price, "0", "13", "catheters")]


def plan(total: str, parts: int = 2) -> list[Instalment]:
    whole = Decimal(total)
    first = (whole * Decimal("0.3")).quantize(Decimal("0.01"))
    if parts == 1:
        return [Instalment(1, START, whole, "full")]
    return [Instalment(1, START, first, "deposit 30 %"), Instalment(2, dt.date(2027, 3, 1), whole - first,
                                                                     "on delivery")]


def terms(qty: str = "100", price: str = "1000", **kw) -> uc.Terms:
    return uc.Terms(**({"customer_id": CUSTOMER, "lines": lines(qty, price), "currency": "CNY",
                        "title": "Catheters 2027", "customer_name": "华东医疗器械有限公司", "start_date": START,
                        "end_date": END} | kw))


async def draft(call, principal: Principal = EAST_REP, qty: str = "100", price: str = "1000") -> model.Contract:
    c = await call(principal, create_contract, terms(qty, price))
    return await call(principal, uc.set_plan, c.id, plan(str(c.amount)), c.revision)


async def submit(call, org, c: model.Contract, principal: Principal = EAST_REP, **chosen: str):
    return await call(principal, uc.submit, c.id, 0, {int(k[1:]): v for k, v in chosen.items()}, org)


async def pending_step(call, principal: Principal, contract_id: uuid.UUID) -> ap.Step:
    mine = [s for s, c in await call(principal, uc.my_approvals) if c.id == contract_id]
    assert len(mine) == 1, f"{principal.subject} has {len(mine)} steps of the contract waiting"
    return mine[0]


async def decide(call, org, principal: Principal, contract_id: uuid.UUID, decision: str = "approve",
                 reason: str = ""):
    step = await pending_step(call, principal, contract_id)
    return await call(principal, uc.decide, step.id, ap.Decision(decision), reason, org)


# Drafting -----------------------------------------------------------------------------------------

async def test_a_hand_draft_gets_a_number_amounts_and_the_callers_scope(call, outbox) -> None:
    c = await call(EAST_REP, create_contract, terms())
    year = dt.datetime.now(dt.UTC).year
    assert c.number == f"CON-{year}-000001" and c.status is Status.DRAFT
    assert (c.totals.net, c.totals.tax, c.amount) == (Decimal("100000.00"), Decimal("13000.00"), Decimal("113000.00"))
    assert (c.owner_id, c.team_id, c.department_path, c.created_by) == ("rep-east", "east", "/sales/east/",
                                                                          "rep-east")
    second = await call(EAST_REP, create_contract, terms())
    assert second.number == f"CON-{year}-000002"
    [e1, e2] = await outbox()
    assert e1.subject == "crm.contracts.contract.drafted" and e1.message().contract_number == c.number
    assert e2.message().amount.amount == "113000.00"


async def test_a_draft_or_its_edit_in_a_currency_that_is_not_iso_4217_is_refused(call) -> None:
    with pytest.raises(InvalidArgument) as drafted:
        await call(EAST_REP, create_contract, terms(currency="ZZZ"))
    assert drafted.value.violations[0].field == "currency"
    c = await call(EAST_REP, create_contract, terms(currency="usd"))
    assert c.currency == "USD"
    with pytest.raises(InvalidArgument):
        await call(EAST_REP, uc.update_contract, c.id, terms(currency="ABC"), c.revision)


async def test_numbers_never_repeat_under_concurrency(call, sql) -> None:
    made = await asyncio.gather(*(call(EAST_REP, create_contract, terms()) for _ in range(16)))
    numbers = sorted(c.number for c in made)
    year = dt.datetime.now(dt.UTC).year
    assert numbers == [f"CON-{year}-{n:06d}" for n in range(1, 17)]
    assert (await sql("SELECT last FROM number_counters WHERE year = :y", y=year))[0].last == 16


async def test_hand_draft_validation_and_assignment(call) -> None:
    with pytest.raises(InvalidArgument):
        await call(EAST_REP, create_contract, terms(customer_id=None))
    with pytest.raises(InvalidArgument):
        await call(EAST_REP, create_contract, terms(start_date=END, end_date=START))
    with pytest.raises(InvalidArgument):
        await call(EAST_REP, create_contract, terms(instalments=[Instalment(1, START, Decimal("1"), "")]))
    with pytest.raises(PermissionDenied):
        await call(EAST_REP, create_contract, terms(owner_id="rep-west", team_id="west"))
    with pytest.raises(PermissionDenied):  # finance reads signed contracts; it drafts none
        await call(FINANCE, create_contract, terms())


def quote_accepted(quote_id: str, event_id: str) -> Event:
    quote = opp_pb.Quote(
        id=quote_id, opportunity_id=str(uuid.uuid4()), customer_id=str(CUSTOMER), currency="CNY",
        lines=[opp_pb.QuoteLine(product="Tubing", specification="316L", quantity="200", unit_price="52.5",
                                discount_percent="5", tax_rate_percent="13")],
        net_total=money_pb2.Money(amount="9975.00", currency="CNY"), owner_id="rep-east", team_id="east",
        department_path="/sales/east/")
    message = opp_ev.QuoteAccepted(quote=quote, opportunity_name="Tubing for 2027")
    return Event(id=event_id, subject=uc.QUOTE_ACCEPTED_SUBJECT, type=message.DESCRIPTOR.full_name,
                 payload=message.SerializeToString(), headers={"ce-actor": "rep-east"})


async def test_one_draft_per_accepted_quote_even_when_delivered_again(sessions, call, outbox) -> None:
    quote_id = str(uuid.uuid4())
    for event_id in ("e-1", "e-1", "e-2"):  # a redelivery, then a replay under a new event id
        async with UnitOfWork(sessions, "crm/contracts") as uow:
            await uc.draft_from_quote(uow, quote_accepted(quote_id, event_id), EveryCustomer())
            await uow.commit()
    [c] = (await call(EAST_REP, uc.list_contracts, page_token="", limit=50))[0]
    # 200 × 52.5 × 0.95 = 9975.00 net; 13 % tax = 1296.75
    assert (str(c.quote_id), c.title, c.owner_id, c.department_path, c.amount) == (
        quote_id, "Tubing for 2027", "rep-east", "/sales/east/", Decimal("11271.75"))
    assert [li.product for li in c.lines] == ["Tubing"] and c.created_by == "rep-east"
    assert [e.subject for e in await outbox()] == ["crm.contracts.contract.drafted"]


async def test_two_concurrent_deliveries_of_one_quote_draft_once(sessions, call) -> None:
    quote_id = str(uuid.uuid4())

    async def deliver(event_id: str) -> str:
        try:
            async with UnitOfWork(sessions, "crm/contracts") as uow:
                await uc.draft_from_quote(uow, quote_accepted(quote_id, event_id), EveryCustomer())
                await uow.commit()
            return "ok"
        except Exception as exc:  # the loser hits the unique quote id; its redelivery finds the draft
            return type(exc).__name__

    outcomes = await asyncio.gather(deliver("a"), deliver("b"))
    assert "ok" in outcomes
    assert len((await call(EAST_REP, uc.list_contracts, page_token="", limit=50))[0]) == 1


# Approval -----------------------------------------------------------------------------------------

async def test_below_100000_only_the_manager_approves_then_sign(call, org, outbox) -> None:
    c = await draft(call, qty="50")  # 50,000 net, 56,500 gross
    submitted, steps = await submit(call, org, c)
    assert submitted.status is Status.PENDING_APPROVAL and submitted.approval_attempt == 1
    assert [(s.name, s.approver_ids, s.state) for s in steps] == [("Manager", ("mgr-east",), ap.StepState.PENDING)]
    with pytest.raises(Conflict) as e:
        await call(EAST_REP, uc.sign, c.id, None, 0)
    assert e.value.reason == "SIGN_ONLY_WHEN_APPROVED"
    step, approved = await decide(call, org, EAST_MANAGER, c.id)
    assert step.state is ap.StepState.APPROVED and approved.status is Status.APPROVED
    signed = await call(EAST_REP, uc.sign, c.id, dt.date(2026, 11, 1), 0)
    assert signed.status is Status.SIGNED and signed.sign_date == dt.date(2026, 11, 1)
    events = await outbox()
    assert [e.subject for e in events][1:] == [
        "crm.contracts.contract.updated", "crm.contracts.contract.submitted", "crm.contracts.approval.step_assigned",
        "crm.contracts.approval.decided", "crm.contracts.contract.approved", "crm.contracts.contract.signed"]
    decided = events[4].message()
    assert (decided.decision, decided.decided_by, decided.final) == ("approved", "mgr-east", True)
    s = events[-1].message()
    assert (s.contract_number, s.customer_id, s.amount.amount, s.owner_id, s.start_date, s.end_date,
            s.department_path, list(s.team_ids), s.customer_name) == (
        c.number, str(CUSTOMER), "56500.00", "rep-east", "2027-01-01", "2027-12-31", "/sales/east/", ["east"],
        "华东医疗器械有限公司")
    assert [(i.sequence, i.due_date, i.amount.amount, i.label) for i in s.instalments] == [
        (1, "2027-01-01", "16950.00", "deposit 30 %"), (2, "2027-03-01", "39550.00", "on delivery")]
    assert [(li.product, li.quantity, li.unit, li.unit_price.amount, li.amount.amount, li.tax_rate,
             li.tax_amount.amount) for li in s.lines] == [
        ("Catheter 6F", "50", "pcs", "1000", "50000.00", "0.13", "6500.00")]
    assert s.sign_time.ToDatetime().date() == dt.date(2026, 11, 1)


async def test_from_100000_the_chain_returns_restarts_and_is_approved_through(call, org, outbox) -> None:
    """The demo chain: rep → manager → sales director → finance. The director returns it; the
    default rule restarts from the first step on resubmission."""
    c = await draft(call)  # 113,000.00
    _, steps = await submit(call, org, c)
    assert [(s.name, s.approver_ids) for s in steps] == [
        ("Manager", ("mgr-east",)), ("Sales director", ("director",)), ("Finance", ("finance",))]
    assert [s.state for s in steps] == [ap.StepState.PENDING, ap.StepState.WAITING, ap.StepState.WAITING]
    await decide(call, org, EAST_MANAGER, c.id)
    with pytest.raises(InvalidArgument):
        await decide(call, org, DIRECTOR, c.id, "return")  # a return needs a reason
    _, returned = await decide(call, org, DIRECTOR, c.id, "return", "split the deposit")
    assert returned.status is Status.RETURNED and returned.returned_position == 2
    assert await call(FINANCE, uc.my_approvals) == []
    # Returned: editable again, and resubmitted (restart from the first step, as the rule says).
    fixed = await call(EAST_REP, uc.set_plan, c.id, plan(str(c.amount), 1), 0)
    _, again = await submit(call, org, fixed)
    assert [s.state for s in again] == [ap.StepState.PENDING, ap.StepState.WAITING, ap.StepState.WAITING]
    assert {s.attempt for s in again} == {2}
    await decide(call, org, EAST_MANAGER, c.id)
    await decide(call, org, DIRECTOR, c.id)
    step, approved = await decide(call, org, FINANCE, c.id)
    assert approved.status is Status.APPROVED and step.name == "Finance"
    _, history = await call(EAST_REP, uc.list_steps, c.id)
    assert [(s.attempt, s.position, s.state.value, s.decided_by) for s in history] == [
        (1, 1, "approved", "mgr-east"), (1, 2, "returned", "director"), (1, 3, "cancelled", ""),
        (2, 1, "approved", "mgr-east"), (2, 2, "approved", "director"), (2, 3, "approved", "finance")]
    decisions = [e.message() for e in await outbox() if e.subject == "crm.contracts.approval.decided"]
    assert [(d.decision, d.decided_by, d.reason, d.final) for d in decisions] == [
        ("approved", "mgr-east", "", False), ("returned", "director", "split the deposit", False),
        ("approved", "mgr-east", "", False), ("approved", "director", "", False), ("approved", "finance", "", True)]


async def test_a_rule_may_resume_from_the_step_that_returned_it(call, org) -> None:
    definition = ap.default_rule_definition() | {"restart": "returning_step"}
    import json

    await call(ADMIN, uc.put_rule, None, "Resume", 1, True, json.dumps(definition))
    c = await draft(call)
    await submit(call, org, c)
    await decide(call, org, EAST_MANAGER, c.id)
    await decide(call, org, DIRECTOR, c.id, "return", "wrong end date")
    updated = await call(EAST_REP, uc.update_contract, c.id, terms(end_date=dt.date(2027, 6, 30),
                                                                   instalments=plan(str(c.amount))), 0)
    _, steps = await submit(call, org, updated)
    assert [(s.position, s.state.value, s.decided_by) for s in steps] == [
        (1, "approved", "mgr-east"), (2, "pending", ""), (3, "waiting", "")]
    assert "carried over" in steps[0].reason
    assert await call(EAST_MANAGER, uc.my_approvals) == []
    await decide(call, org, DIRECTOR, c.id)
    _, approved = await decide(call, org, FINANCE, c.id)
    assert approved.status is Status.APPROVED


async def test_rejection_is_final_and_cancels_the_rest(call, org, outbox) -> None:
    c = await draft(call)
    await submit(call, org, c)
    with pytest.raises(InvalidArgument):
        await decide(call, org, EAST_MANAGER, c.id, "reject")
    _, rejected = await decide(call, org, EAST_MANAGER, c.id, "reject", "customer is in arrears")
    assert rejected.status is Status.REJECTED
    with pytest.raises(Conflict) as e:
        await submit(call, org, rejected)
    assert e.value.reason == "SUBMIT_ONLY_FROM_DRAFT_OR_RETURNED"
    last = (await outbox())[-1]
    assert last.subject == "crm.contracts.contract.rejected" and last.message().reason == "customer is in arrears"


async def test_only_the_current_approver_decides(call, org) -> None:
    c = await draft(call)
    _, steps = await submit(call, org, c)
    for intruder in (EAST_REP, DIRECTOR, FINANCE):  # the submitter, a later approver, someone else
        with pytest.raises(PermissionDenied):
            await call(intruder, uc.decide, steps[0].id, ap.Decision.APPROVE, "", org)
    with pytest.raises(Conflict):  # a step not reached yet
        await call(DIRECTOR, uc.decide, steps[1].id, ap.Decision.APPROVE, "", org)


async def test_a_step_is_resolved_again_when_reached(call, org) -> None:
    c = await draft(call)
    _, steps = await submit(call, org, c)
    assert steps[1].approver_ids == ("director",)
    org.heads["east"] = "new-director"  # the org chart changes while the manager decides
    await decide(call, org, EAST_MANAGER, c.id)
    _, history = await call(EAST_REP, uc.list_steps, c.id)
    assert [s.approver_ids for s in history] == [("mgr-east",), ("new-director",), ("finance",)]
    org.managers["rep-east"] = "someone-else"  # decided steps are never rewritten
    assert (await call(EAST_REP, uc.list_steps, c.id))[1][0].approver_ids == ("mgr-east",)


async def test_two_approvers_on_one_step_at_once_exactly_one_wins(call, org, sessions) -> None:
    org.roles["finance"] = ["finance", "finance-2"]
    c = await draft(call)
    await submit(call, org, c)
    await decide(call, org, EAST_MANAGER, c.id)
    await decide(call, org, DIRECTOR, c.id)
    step = await pending_step(call, FINANCE, c.id)
    assert step.approver_ids == ("finance", "finance-2") and step.mode is ap.Mode.ANY

    async def act(who: Principal, decision: ap.Decision, reason: str) -> str:
        try:
            await call(who, uc.decide, step.id, decision, reason, org)
            return "won"
        except Conflict as exc:
            return exc.reason

    outcomes = await asyncio.gather(act(FINANCE, ap.Decision.APPROVE, ""),
                                    act(FINANCE_2, ap.Decision.REJECT, "duplicate order"))
    assert sorted(outcomes) == ["STEP_NOT_PENDING", "won"]
    final = await call(EAST_REP, uc.get_contract, c.id)
    decided = (await call(EAST_REP, uc.list_steps, c.id))[1][-1]
    assert final.status is (Status.APPROVED if decided.state is ap.StepState.APPROVED else Status.REJECTED)
    assert decided.decided_by in {"finance", "finance-2"}


async def test_a_delegate_decides_for_the_approver_while_the_delegation_lasts(call, org, outbox) -> None:
    today = dt.datetime.now(dt.UTC).date()
    delegation = await call(EAST_MANAGER, uc.create_delegation, "mgr-west", today, today + dt.timedelta(days=3))
    mgr_west = replace(WEST_REP, subject="mgr-west", data_scope=DataScope.TEAM)
    c = await draft(call, qty="10")
    await submit(call, org, c)
    # The delegate sees the step and the contract, though it is outside their data scope.
    step = await pending_step(call, mgr_west, c.id)
    assert (await call(mgr_west, uc.get_contract, c.id)).id == c.id
    decided, approved = await call(mgr_west, uc.decide, step.id, ap.Decision.APPROVE, "", org)
    assert (decided.decided_by, decided.acting_for, approved.status) == ("mgr-west", "mgr-east", Status.APPROVED)
    event = next(e.message() for e in await outbox() if e.subject == "crm.contracts.approval.decided")
    assert (event.decided_by, event.acting_for) == ("mgr-west", "mgr-east")
    await call(EAST_MANAGER, uc.revoke_delegation, delegation.id)
    other = await draft(call, qty="10")
    await submit(call, org, other)
    assert [c2 for _, c2 in await call(mgr_west, uc.my_approvals)] == []
    [listed] = await call(EAST_MANAGER, uc.list_delegations)
    assert listed.revoked


async def test_approval_rules_are_admin_editable_data(call, org) -> None:
    import json

    [default] = await call(EAST_REP, uc.list_rules)
    assert default.name.startswith("Default") and [s.approver.kind for s in default.steps] == [
        ap.Kind.MANAGER, ap.Kind.DEPARTMENT_HEAD, ap.Kind.ROLE]
    body = json.dumps({"conditions": {"product_lines": ["catheters"]},
                       "steps": [{"name": "Expert", "approver": {"kind": "submitter_choice",
                                                                  "allowed_user_ids": ["gm", "director"]}}]})
    with pytest.raises(PermissionDenied):
        await call(EAST_REP, uc.put_rule, None, "Catheters", 5, True, body)
    rule = await call(ADMIN, uc.put_rule, None, "Catheters", 5, True, body)
    c = await draft(call)
    with pytest.raises(InvalidArgument):  # the submitter must pick from the allowed set
        await submit(call, org, c, p1="finance")
    _, steps = await submit(call, org, c, p1="gm")
    assert [(s.name, s.approver_ids) for s in steps] == [("Expert", ("gm",))]
    off = await call(ADMIN, uc.put_rule, rule.id, "Catheters", 5, False, body)
    assert off.revision == 2 and not off.active
    with pytest.raises(InvalidArgument):
        await call(ADMIN, uc.put_rule, None, "Broken", 5, True, '{"steps": []}')


async def passes(sessions, fn, *args):
    async with UnitOfWork(sessions, "crm/contracts", actor="service:contracts") as uow:
        return await fn(uow, *args)


async def test_overdue_steps_are_reminded_once(call, org, outbox, sessions) -> None:
    c = await draft(call, qty="10")
    _, [step] = await submit(call, org, c)
    assert step.due_at == step.reached_at + dt.timedelta(hours=24)
    assert await passes(sessions, uc.overdue_pass, step.due_at - dt.timedelta(seconds=1)) == 0
    assert await passes(sessions, uc.overdue_pass, step.due_at) == 1
    assert await passes(sessions, uc.overdue_pass, step.due_at + dt.timedelta(hours=5)) == 0
    reminder = (await outbox())[-1]
    assert reminder.subject == "crm.contracts.approval.step_overdue"
    assert (reminder.message().step_id, list(reminder.message().approver_ids)) == (str(step.id), ["mgr-east"])


async def signed(call, org, principal: Principal = EAST_REP, **kw) -> model.Contract:
    c = await call(principal, create_contract, terms(qty="10", **kw))
    c = await call(principal, uc.set_plan, c.id, plan(str(c.amount)), 0)
    await submit(call, org, c, principal)
    await decide(call, org, EAST_MANAGER, c.id)
    return await call(principal, uc.sign, c.id, None, 0)


async def test_signing_activates_a_begun_term_and_the_daily_pass_expires_and_warns(call, org, outbox,
                                                                                   sessions) -> None:
    today = dt.datetime.now(dt.UTC).date()
    running = await signed(call, org, start_date=today - dt.timedelta(days=30), end_date=today + dt.timedelta(days=60))
    assert running.status is Status.ACTIVE
    future = await signed(call, org, start_date=today + dt.timedelta(days=10), end_date=today + dt.timedelta(days=400))
    assert future.status is Status.SIGNED
    # Within 6 months: the running one (once per window), not the one ending in 400 days.
    assert await passes(sessions, uc.lifecycle_pass, today, 6) == 1
    assert await passes(sessions, uc.lifecycle_pass, today, 6) == 0
    expiring = [e.message() for e in await outbox() if e.subject == "crm.contracts.contract.expiring"]
    assert [(x.contract_id, x.end_date, x.owner_id) for x in expiring] == [
        (str(running.id), (today + dt.timedelta(days=60)).isoformat(), "rep-east")]
    # Ten days on the future one begins; past the running one's end it expires.
    assert await passes(sessions, uc.lifecycle_pass, today + dt.timedelta(days=10), 6) == 1
    assert (await call(EAST_REP, uc.get_contract, future.id)).status is Status.ACTIVE
    await passes(sessions, uc.lifecycle_pass, today + dt.timedelta(days=61), 6)
    assert (await call(EAST_REP, uc.get_contract, running.id)).status is Status.EXPIRED


async def test_renewals_list_and_a_signed_renewal_renews_its_predecessor(call, org, outbox) -> None:
    today = dt.datetime.now(dt.UTC).date()
    soon = await signed(call, org, start_date=today - dt.timedelta(days=300), end_date=today + dt.timedelta(days=65))
    await signed(call, org, start_date=today, end_date=today + dt.timedelta(days=800))
    colleague = await signed(call, org, EAST_REP_2, start_date=today,
                        end_date=today + dt.timedelta(days=20))
    assert [c.id for c in await call(EAST_REP, uc.renewals, 6)] == [soon.id]  # own scope
    assert [c.id for c in await call(EAST_MANAGER, uc.renewals, 6)] == [colleague.id, soon.id]  # by end date
    assert await call(EAST_REP, uc.renewals, 1) == []
    with pytest.raises(InvalidArgument):
        await call(EAST_REP, uc.renewals, 0)
    renewal = await call(EAST_REP, create_renewal, soon.id)
    assert (renewal.predecessor_id, renewal.start_date, renewal.status) == (
        soon.id, soon.end_date + dt.timedelta(days=1), Status.DRAFT)
    assert renewal.end_date == renewal.start_date + (soon.end_date - soon.start_date)
    renewal = await call(EAST_REP, uc.set_plan, renewal.id, plan(str(renewal.amount)), 0)
    await submit(call, org, renewal)
    await decide(call, org, EAST_MANAGER, renewal.id)
    await call(EAST_REP, uc.sign, renewal.id, None, 0)
    before = await call(EAST_REP, uc.get_contract, soon.id)
    assert (before.status, before.successor_id) == (Status.RENEWED, renewal.id)
    renewed = [e.message() for e in await outbox() if e.subject == "crm.contracts.contract.renewed"]
    assert [(r.contract_id, r.successor_id) for r in renewed] == [(str(soon.id), str(renewal.id))]


async def test_amendments_make_versions_and_every_version_stays_readable(call, org, outbox) -> None:
    c = await signed(call, org)  # 11,300.00
    with pytest.raises(InvalidArgument):  # the plan must follow the new amount
        await call(EAST_REP, uc.amend, c.id, terms(qty="20"), "more catheters", 0)
    with pytest.raises(StaleVersion):
        await call(EAST_REP, uc.amend, c.id, terms(qty="20", instalments=plan("22600.00")), "x", c.revision - 1)
    amended = await call(EAST_REP, uc.amend, c.id, terms(qty="20", instalments=plan("22600.00")), "more catheters",
                         c.revision)
    assert (amended.version, amended.amount, amended.number, amended.status) == (
        2, Decimal("22600.00"), c.number, c.status)
    versions = await call(EAST_REP, uc.amendments, c.id)
    assert [(v.version, v.snapshot["amount"]["amount"], v.reason) for v in versions] == [
        (1, "11300.00", "signed"), (2, "22600.00", "more catheters")]
    event = (await outbox())[-1].message()
    assert (event.version, event.amount.amount, len(event.instalments)) == (2, "22600.00", 2)
    draft_one = await draft(call)
    with pytest.raises(Conflict) as e:
        await call(EAST_REP, uc.amend, draft_one.id, terms(), "x", 0)
    assert e.value.reason == "AMEND_ONLY_IN_FORCE"
    terminated = await call(EAST_REP, uc.terminate, c.id, "customer went bankrupt", 0)
    assert terminated.status is Status.TERMINATED
    with pytest.raises(Conflict) as e:
        await call(EAST_REP, uc.terminate, c.id, "again", 0)
    assert e.value.reason == "TERMINATE_ONLY_IN_FORCE"


async def test_plan_is_editable_only_while_draft_or_returned(call, org) -> None:
    c = await draft(call, qty="10")
    with pytest.raises(InvalidArgument) as e:
        await call(EAST_REP, uc.set_plan, c.id, [Instalment(1, START, Decimal("11299.99"), "")], 0)
    assert e.value.reason == "PLAN_TOTAL_MISMATCH"
    await submit(call, org, c)
    with pytest.raises(Conflict) as e:
        await call(EAST_REP, uc.set_plan, c.id, plan(str(c.amount)), 0)
    assert e.value.reason == "EDIT_ONLY_DRAFT_OR_RETURNED"
    unplanned = await call(EAST_REP, create_contract, terms())
    with pytest.raises(Conflict) as e:
        await submit(call, org, unplanned)
    assert e.value.reason == "PLAN_REQUIRED"


async def test_data_scopes_on_reads_and_writes(call, org) -> None:
    c = await draft(call)
    with pytest.raises(NotFound):
        await call(WEST_REP, uc.get_contract, c.id)
    assert (await call(EAST_MANAGER, uc.get_contract, c.id)).id == c.id
    assert (await call(DIRECTOR, uc.get_contract, c.id)).id == c.id
    with pytest.raises(NotFound):  # finance sees signed contracts only
        await call(FINANCE, uc.get_contract, c.id)
    done = await signed(call, org)
    assert [x.id for x in (await call(FINANCE, uc.list_contracts, page_token="", limit=50))[0]] == [done.id]
    with pytest.raises(PermissionDenied):  # seeing it is not changing it
        await call(FINANCE, uc.terminate, done.id, "no", 0)
    with pytest.raises(StaleVersion):
        await call(EAST_REP, uc.set_plan, c.id, plan(str(c.amount)), c.revision + 5)


async def test_the_document_is_a_pdf_in_chinese_and_english(call) -> None:
    c = await draft(call)
    pdf = document.render(c)
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    offset = int(re.search(rb"startxref\s+(\d+)", pdf).group(1))
    assert pdf[offset:offset + 4] == b"xref"
    assert b"/BaseFont /STSong-Light" in pdf and b"/UniGB-UCS2-H" in pdf
    text = _text(pdf)
    for phrase in ("销售合同 Sales Contract", "华东医疗器械有限公司", c.number, "回款计划 Receivable plan",
                   "Catheter 6F", "合同金额 Amount: 113000.00 CNY", "deposit 30 %"):
        assert phrase in text, phrase


def _text(pdf: bytes) -> str:
    """The text shown on the pages: the Tj string operands (UTF-16BE for the CID font)."""
    shown = []
    for stream in _streams(pdf):
        for literal in re.findall(rb"\((.*?)(?<!\\)\) Tj", stream, re.S):
            raw = re.sub(rb"\\([0-7]{1,3}|.)", lambda m: bytes([int(m.group(1), 8)]) if m.group(1).isdigit()
                         else m.group(1), literal)
            shown.append(raw.decode("utf-16-be"))
    return "\n".join(shown)


def _streams(pdf: bytes) -> list[bytes]:
    """The page content streams, decoded as reportlab writes them (ASCII85, then Flate)."""
    out = []
    for m in re.finditer(rb"/Filter \[ /ASCII85Decode /FlateDecode \][^>]*>>\s*stream\r?\n(.*?)endstream", pdf,
                         re.S):
        out.append(zlib.decompress(base64.a85decode(m.group(1).strip(), adobe=True)))
    return out
