"""Requirement requests (R-OPP-02) and lead-keyed opportunities on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import uuid
from decimal import Decimal
from functools import partial

import pytest

from crm.opportunities.v1 import opportunities_pb2 as pb
from crm_opportunities.app import requirements as rq
from crm_opportunities.app import use_cases as uc
from crm_opportunities.domain import requirements as rules
from crm_opportunities.domain.money import parse_line
from crm_opportunities.domain.requirements import Attachment, RequirementStatus
from crmkit.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, PermissionDenied
from crmkit.testing.principals import DIRECTOR, EAST_REP, WEST_REP
from crmkit.testing.service import EveryCustomer

create_opportunity = partial(uc.create_opportunity, customers=EveryCustomer())

pytestmark = pytest.mark.integration

ROLE = "sales_director"
CUSTOMER = uuid.UUID("01930000-0000-7000-8000-00000000c002")
VALID = dt.date.today() + dt.timedelta(days=30)
LINES = [parse_line(0, "Valve DN50", "316L, PN40", "200", "880", "", "13")]
SECOND_REVIEWER = dataclasses.replace(DIRECTOR, subject="director-2")


def new_opportunity(**kw: object) -> uc.NewOpportunity:
    return uc.NewOpportunity(**({"customer_id": CUSTOMER, "name": "Custom valves", "pipeline_id": None,
                                 "amount": "0", "currency": "CNY", "probability": 0, "expected_close_date": None}
                                | kw))


def new_request(opportunity_id: uuid.UUID, **kw: object) -> rq.NewRequirement:
    return rq.NewRequirement(**({
        "opportunity_id": opportunity_id, "title": "DN50 valve, 316L", "specification": "316L body, PN40, -40°C",
        "quantity": "200", "unit": "pcs", "target_price": "850.5", "currency": "", "requested_date": VALID,
        "attachments": (Attachment("drawing.pdf", 123456, "application/pdf", "s3://crm-files/drawing.pdf"),)}
        | kw))


async def test_submit_review_decide_and_quote(call, outbox) -> None:
    opp = await call(EAST_REP, create_opportunity, new_opportunity())
    submitted = await call(EAST_REP, rq.create, new_request(opp.id), ["director"])
    assert (submitted.status, submitted.owner_id, submitted.customer_id) == (
        RequirementStatus.SUBMITTED, "rep-east", CUSTOMER)
    assert (submitted.quantity, submitted.target_price, submitted.currency) == (Decimal("200"), Decimal("850.5"),
                                                                                 "CNY")
    message = rq.to_pb(submitted)
    assert (message.quantity, message.target_price.amount, message.attachments[0].size_bytes) == ("200", "850.50",
                                                                                                   123456)
    # A quote cannot answer it before it is found feasible.
    with pytest.raises(Conflict) as exc:
        await call(EAST_REP, uc.create_quote, opp.id, "", LINES, VALID, "", submitted.id)
    assert exc.value.reason == "REQUIREMENT_NOT_FEASIBLE"
    with pytest.raises(PermissionDenied):
        await call(EAST_REP, rq.start_review, submitted.id, ROLE, 0)
    reviewing = await call(DIRECTOR, rq.start_review, submitted.id, ROLE, submitted.version)
    assert (reviewing.status, reviewing.reviewer_id) == (RequirementStatus.UNDER_REVIEW, "director")
    with pytest.raises(Conflict) as exc:
        await call(SECOND_REVIEWER, rq.decide, submitted.id, ROLE, feasible=True, notes="", expected_version=0)
    assert exc.value.reason == "NOT_THE_REVIEWER"
    feasible = await call(DIRECTOR, rq.decide, submitted.id, ROLE, feasible=True, notes="Can do in 6 weeks",
                          expected_version=0)
    assert (feasible.status, feasible.review_notes) == (RequirementStatus.FEASIBLE, "Can do in 6 weeks")
    quote = await call(EAST_REP, uc.create_quote, opp.id, "", LINES, VALID, "", submitted.id)
    assert quote.requirement_request_id == submitted.id
    quoted = await call(EAST_REP, rq.get, submitted.id, ROLE)
    assert (quoted.status, quoted.quote_id) == (RequirementStatus.QUOTED, quote.id)
    events = [(e.subject, e.message()) for e in await outbox()]
    [submitted_event] = [m for s, m in events if s == "crm.opportunities.requirement_request.submitted"]
    assert list(submitted_event.reviewer_ids) == ["director"]
    changes = [m for s, m in events if s == "crm.opportunities.requirement_request.status_changed"]
    assert [(m.previous_status, m.requirement_request.status) for m in changes] == [
        (pb.REQUIREMENT_STATUS_SUBMITTED, pb.REQUIREMENT_STATUS_UNDER_REVIEW),
        (pb.REQUIREMENT_STATUS_UNDER_REVIEW, pb.REQUIREMENT_STATUS_FEASIBLE),
        (pb.REQUIREMENT_STATUS_FEASIBLE, pb.REQUIREMENT_STATUS_QUOTED)]


async def test_not_feasible_needs_notes_and_blocks_quotes(call) -> None:
    opp = await call(EAST_REP, create_opportunity, new_opportunity())
    submitted = await call(EAST_REP, rq.create, new_request(opp.id), [])
    await call(DIRECTOR, rq.start_review, submitted.id, ROLE, 0)
    with pytest.raises(InvalidArgument):
        await call(DIRECTOR, rq.decide, submitted.id, ROLE, feasible=False, notes=" ", expected_version=0)
    refused = await call(DIRECTOR, rq.decide, submitted.id, ROLE, feasible=False, notes="-40°C seals unavailable",
                         expected_version=0)
    assert refused.status is RequirementStatus.NOT_FEASIBLE and refused.decided_at is not None
    with pytest.raises(Conflict):
        await call(EAST_REP, uc.create_quote, opp.id, "", LINES, VALID, "", submitted.id)
    with pytest.raises(Conflict) as exc:
        await call(DIRECTOR, rq.start_review, submitted.id, ROLE, 0)
    assert exc.value.reason == "REQUIREMENT_NOT_SUBMITTED"


async def test_scope_validation_and_closed_opportunities(call) -> None:
    opp = await call(EAST_REP, create_opportunity, new_opportunity())
    with pytest.raises(NotFound):
        await call(WEST_REP, rq.create, new_request(opp.id), [])
    with pytest.raises(InvalidArgument) as exc:
        await call(EAST_REP, rq.create, new_request(opp.id, title="", quantity="0", requested_date=dt.date(2020, 1, 1),
                                                     attachments=(Attachment("", -1, "", ""),)), [])
    assert {v.field for v in exc.value.violations} == {
        "title", "quantity", "requested_date", "attachments[0].name", "attachments[0].url",
        "attachments[0].size_bytes"}
    mine = await call(EAST_REP, rq.create, new_request(opp.id), [])
    with pytest.raises(NotFound):
        await call(WEST_REP, rq.get, mine.id, ROLE)
    # Reviewers see every request (a company-wide function), owners their scope.
    assert (await call(DIRECTOR, rq.get, mine.id, ROLE)).id == mine.id
    listed, _ = await call(WEST_REP, rq.list_requests, ROLE, page_token="", limit=50, opportunity_id=None, status="")
    assert mine.id not in {r.id for r in listed}
    await call(EAST_REP, uc.mark_lost, opp.id, "price", "", 0)
    with pytest.raises(Conflict) as closed:
        await call(EAST_REP, rq.create, new_request(opp.id), [])
    assert closed.value.reason == "OPPORTUNITY_CLOSED"


async def test_one_opportunity_per_lead_even_concurrently(call) -> None:
    lead = uuid.uuid4()
    results = await asyncio.gather(*(call(EAST_REP, create_opportunity, new_opportunity(lead_id=lead))
                                     for _ in range(5)))
    assert len({o.id for o in results}) == 1 and results[0].lead_id == lead
    with pytest.raises(AlreadyExists) as exc:
        await call(WEST_REP, create_opportunity, new_opportunity(lead_id=lead))
    assert exc.value.reason == "LEAD_HAS_OPPORTUNITY"


def test_domain_transitions() -> None:
    now = dt.datetime.now(dt.UTC)
    base = rules.RequirementRequest(
        id=uuid.uuid4(), opportunity_id=uuid.uuid4(), customer_id=CUSTOMER, title="t", specification="s",
        quantity=Decimal(1), unit="", target_price=None, currency="CNY", requested_date=None, attachments=(),
        owner_id="o")
    with pytest.raises(Conflict):
        rules.decide(base, "r", feasible=True, notes="", now=now)
    reviewing = rules.start_review(base, "r")
    assert rules.decide(reviewing, "x", feasible=True, notes="", now=now, override=True).reviewer_id == "x"
    feasible = rules.decide(reviewing, "r", feasible=True, notes="", now=now)
    with pytest.raises(InvalidArgument):
        rules.quote(feasible, uuid.uuid4(), uuid.uuid4())
    quoted = rules.quote(feasible, base.opportunity_id, uuid.uuid4())
    assert rules.quote(quoted, base.opportunity_id, uuid.uuid4()).status is RequirementStatus.QUOTED
