"""/api/v1/leads, /lead-assignment-rules, /reports/lead-attribution, /customers/{id}/reassign:
REST in front of the leads part of crm.customers.v1.CustomersService (R-LEAD-01, R-CUS-11).

Conversion is composed here: the customers service converts the lead (customer + contact, lead
marked converted, in one transaction), then the opportunities service creates the opportunity
keyed by the lead id (one per lead), then the customers service records it on the lead. Every
step is idempotent, so a failure after the first step leaves a converted lead without an
opportunity that the same request, repeated, completes — never a half-made customer.
"""

from __future__ import annotations

import datetime as dt
from datetime import UTC
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response

from crm.common.v1 import lifecycle_pb2, money_pb2
from crm.customers.v1 import customers_pb2 as pb
from crm.opportunities.v1 import opportunities_pb2 as opp_pb
from crm_gateway import permissions as p
from crm_gateway.api_route import ApiRoute
from crm_gateway.auth import Caller, authenticated, require
from crm_gateway.etags import etag_of, expected_version
from crm_gateway.problems import API_ERRORS
from crm_gateway.routes import leads_schemas as s
from crm_gateway.routes.common import IDEMPOTENCY, IF_MATCH
from crm_gateway.routes.common import json_response as _json
from crm_gateway.routes.common_schemas import Money
from crm_gateway.routes.customers import _contact_json, _customer_json
from crm_gateway.routes.opportunities import _opportunity_json
from crmkit.errors import PermissionDenied, Unavailable

router = APIRouter(prefix="/api/v1", route_class=ApiRoute, tags=["leads"],
                   dependencies=[Depends(authenticated)], responses=API_ERRORS)

_READ = Depends(require(p.LEADS_READ))
_WRITE = Depends(require(p.LEADS_WRITE))
_ASSIGN = Depends(require(p.LEADS_ASSIGN))
_CUSTOMERS_WRITE = Depends(require(p.CUSTOMERS_WRITE))
_CONFLICT = {409: {"description": "The rule named by `reason` forbids it, e.g. LEAD_CONVERTED, LEAD_UNQUALIFIED, "
                                  "LEAD_STATUS_TRANSITION"}}


def _customers(request: Request) -> Any:
    stub = request.app.state.customers
    if stub is None:
        raise Unavailable("the customers service is not configured (CRM_CUSTOMERS_TARGET)")
    return stub


def _opportunities(request: Request) -> Any:
    stub = request.app.state.opportunities
    if stub is None:
        raise Unavailable("the opportunities service is not configured (CRM_OPPORTUNITIES_TARGET)")
    return stub



def _status(value: int) -> str:
    return pb.LeadStatus.Name(value).removeprefix("LEAD_STATUS_").lower()


def _lead_json(m: pb.Lead) -> s.Lead:
    return s.Lead(
        id=m.id, name=m.name, phone=m.phone, email=m.email, company=m.company, title=m.title, region=m.region,
        industry=m.industry, source=m.source, campaign=m.campaign, channel=m.channel,
        status=_status(m.status),  # type: ignore[arg-type]
        lifecycle_stage=lifecycle_pb2.LifecycleStage.Name(m.lifecycle_stage)  # type: ignore[arg-type]
        .removeprefix("LIFECYCLE_STAGE_").lower(),
        owner_id=m.owner_id or None, team_id=m.team_id, department_path=m.department_path,
        assignment_rule_id=m.assignment_rule_id or None, unassigned_reason=m.unassigned_reason or None,
        customer_id=m.customer_id or None, contact_id=m.contact_id or None, opportunity_id=m.opportunity_id or None,
        converted_at=m.convert_time.ToDatetime(UTC) if m.HasField("convert_time") else None, version=m.version,
        created_at=m.create_time.ToDatetime(UTC), updated_at=m.update_time.ToDatetime(UTC), created_by=m.created_by)


def _with_etag(m: pb.Lead, status_code: int = 200) -> Response:
    lead = _lead_json(m)
    headers = {"ETag": etag_of(lead.version)}
    if status_code == 201:
        headers["Location"] = f"/api/v1/leads/{lead.id}"
    return _json(lead, status_code, headers)


def _lead_pb(body: s.LeadCreate) -> pb.Lead:
    return pb.Lead(**body.model_dump())


def _rule_json(m: pb.AssignmentRule) -> s.Rule:
    return s.Rule(id=m.id, name=m.name, priority=m.priority, regions=list(m.regions), industries=list(m.industries),
                  user_ids=list(m.user_ids), team_id=m.team_id, department_path=m.department_path,
                  cap_count=m.cap_count, cap_days=m.cap_days, active=m.active, version=m.version)


# Leads -----------------------------------------------------------------------------------------

@router.post("/leads", status_code=201, response_model=s.Lead,
             summary="Create a lead; without an owner the assignment rules choose one")
async def create_lead(body: s.LeadCreate, request: Request, caller: Caller = _WRITE,
                      idempotency_key: str | None = IDEMPOTENCY) -> Response:
    reply = await _customers(request).CreateLead(pb.CreateLeadRequest(lead=_lead_pb(body)), metadata=caller.metadata)
    return _with_etag(reply.lead, 201)


@router.post("/leads/batch", status_code=201, response_model=s.LeadBatch,
             summary="Create up to 1,000 leads at once, spread fairly by the assignment rules (all or nothing)")
async def create_leads(body: s.LeadBatchCreate, request: Request, caller: Caller = _WRITE,
                       idempotency_key: str | None = IDEMPOTENCY) -> Response:
    reply = await _customers(request).BatchCreateLeads(
        pb.BatchCreateLeadsRequest(leads=[_lead_pb(x) for x in body.leads]), metadata=caller.metadata)
    return _json(s.LeadBatch(items=[_lead_json(x) for x in reply.leads]), 201)


@router.get("/leads", response_model=s.LeadPage, summary="List leads in your data scope, newest first")
async def list_leads(
    request: Request, caller: Caller = _READ,
    limit: int = Query(50, ge=1, le=200), cursor: str = Query("", max_length=2000),
    status: s.LeadStatus | None = None, owner_id: str = Query("", max_length=100),
    source: str = Query("", max_length=50), campaign: str = Query("", max_length=100),
    unassigned: bool = Query(False, description="Only leads nobody was assigned"),
) -> Response:
    reply = await _customers(request).ListLeads(pb.ListLeadsRequest(
        page_size=limit, page_token=cursor, status=pb.LeadStatus.Value(f"LEAD_STATUS_{status.upper()}") if status
        else 0, owner_id=owner_id, source=source, campaign=campaign, unassigned=unassigned), metadata=caller.metadata)
    return _json(s.LeadPage(items=[_lead_json(x) for x in reply.leads], next_cursor=reply.next_page_token or None))


@router.get("/leads/{lead_id}", response_model=s.Lead, summary="Read a lead")
async def get_lead(lead_id: UUID, request: Request, caller: Caller = _READ) -> Response:
    reply = await _customers(request).GetLead(pb.GetLeadRequest(id=str(lead_id)), metadata=caller.metadata)
    return _with_etag(reply.lead)


@router.post("/leads/{lead_id}/status", response_model=s.Lead, responses=_CONFLICT,
             summary="Change a lead's status (converted only by converting it)")
async def change_status(lead_id: UUID, body: s.LeadStatusChange, request: Request, caller: Caller = _WRITE,
                        if_match: str | None = IF_MATCH) -> Response:
    reply = await _customers(request).UpdateLeadStatus(pb.UpdateLeadStatusRequest(
        id=str(lead_id), status=pb.LeadStatus.Value(f"LEAD_STATUS_{body.status.upper()}"),
        expected_version=expected_version(if_match)), metadata=caller.metadata)
    return _with_etag(reply.lead)


@router.post("/leads/{lead_id}/assign", response_model=s.Lead, responses=_CONFLICT,
             summary="Assign a lead by hand, or (no owner) run the assignment rules again")
async def assign_lead(lead_id: UUID, request: Request, body: s.LeadAssign | None = None, caller: Caller = _WRITE,
                      if_match: str | None = IF_MATCH) -> Response:
    body = body or s.LeadAssign()
    reply = await _customers(request).AssignLead(pb.AssignLeadRequest(
        id=str(lead_id), owner_id=body.owner_id, team_id=body.team_id, expected_version=expected_version(if_match)),
        metadata=caller.metadata)
    return _with_etag(reply.lead)


@router.post("/leads/{lead_id}/convert", response_model=s.LeadConversion, responses=_CONFLICT,
             summary="Convert a lead into a customer (new or existing), a contact and an opportunity; "
                     "repeating it completes or returns the same conversion")
async def convert_lead(lead_id: UUID, request: Request, body: s.LeadConvert | None = None, caller: Caller = _WRITE,
                       idempotency_key: str | None = IDEMPOTENCY) -> Response:
    body = body or s.LeadConvert()
    if not p.allows(caller.principal, p.OPPORTUNITIES_WRITE):
        raise PermissionDenied(f"converting a lead creates an opportunity: this needs the permission "
                               f"{p.OPPORTUNITIES_WRITE}", reason="PERMISSION_DENIED",
                               metadata={"permission": p.OPPORTUNITIES_WRITE})
    customers, opportunities = _customers(request), _opportunities(request)
    converted = await customers.ConvertLead(pb.ConvertLeadRequest(
        id=str(lead_id), customer_id=body.customer_id, tax_id=body.tax_id, customer_name=body.customer_name),
        metadata=caller.metadata)
    lead = converted.lead
    if lead.opportunity_id:
        opportunity = (await opportunities.GetOpportunity(opp_pb.GetOpportunityRequest(id=lead.opportunity_id),
                                                          metadata=caller.metadata)).opportunity
    else:
        wanted = body.opportunity
        opportunity = (await opportunities.CreateOpportunity(opp_pb.CreateOpportunityRequest(
            opportunity=opp_pb.Opportunity(
                customer_id=converted.customer.id, name=wanted.name or converted.customer.name,
                pipeline_id=wanted.pipeline_id,
                amount=money_pb2.Money(amount=wanted.amount.amount, currency=wanted.amount.currency),
                expected_close_date=wanted.expected_close_date.isoformat() if wanted.expected_close_date else "",
                lead_id=lead.id)), metadata=caller.metadata)).opportunity
        lead = (await customers.LinkLeadOpportunity(pb.LinkLeadOpportunityRequest(
            id=lead.id, opportunity_id=opportunity.id), metadata=caller.metadata)).lead
    return _json(s.LeadConversion(lead=_lead_json(lead), customer=_customer_json(converted.customer),
                                  customer_created=converted.customer_created,
                                  contact=_contact_json(converted.contact), opportunity=_opportunity_json(opportunity)))


# Assignment rules ------------------------------------------------------------------------------

@router.get("/lead-assignment-rules", response_model=s.RuleList, summary="The lead assignment rules, by priority")
async def list_rules(request: Request, caller: Caller = _ASSIGN) -> Response:
    reply = await _customers(request).ListAssignmentRules(pb.ListAssignmentRulesRequest(), metadata=caller.metadata)
    return _json(s.RuleList(items=[_rule_json(r) for r in reply.rules]))


@router.post("/lead-assignment-rules", status_code=201, response_model=s.Rule,
             summary="Create a lead assignment rule: match conditions, a pool of people, a capacity cap")
async def create_rule(body: s.RuleFields, request: Request, caller: Caller = _ASSIGN,
                      idempotency_key: str | None = IDEMPOTENCY) -> Response:
    reply = await _customers(request).CreateAssignmentRule(
        pb.CreateAssignmentRuleRequest(rule=pb.AssignmentRule(**body.model_dump())), metadata=caller.metadata)
    rule = _rule_json(reply.rule)
    return _json(rule, 201, {"ETag": etag_of(rule.version), "Location": f"/api/v1/lead-assignment-rules/{rule.id}"})


@router.put("/lead-assignment-rules/{rule_id}", response_model=s.Rule, summary="Replace a lead assignment rule")
async def update_rule(rule_id: UUID, body: s.RuleFields, request: Request, caller: Caller = _ASSIGN,
                      if_match: str | None = IF_MATCH) -> Response:
    reply = await _customers(request).UpdateAssignmentRule(pb.UpdateAssignmentRuleRequest(
        rule=pb.AssignmentRule(id=str(rule_id), **body.model_dump()), expected_version=expected_version(if_match)),
        metadata=caller.metadata)
    rule = _rule_json(reply.rule)
    return _json(rule, 200, {"ETag": etag_of(rule.version)})


# Attribution and reassignment ------------------------------------------------------------------

@router.get("/reports/lead-attribution", response_model=s.Attribution,
            summary="Leads, conversions and won amounts per source, campaign and channel")
async def attribution(request: Request, caller: Caller = _READ,
                      from_date: dt.date | None = Query(None, alias="from", description="Created on or after"),
                      to_date: dt.date | None = Query(None, alias="to", description="Created before")) -> Response:
    reply = await _customers(request).GetLeadAttribution(pb.GetLeadAttributionRequest(
        from_date=from_date.isoformat() if from_date else "", to_date=to_date.isoformat() if to_date else ""),
        metadata=caller.metadata)
    return _json(s.Attribution(items=[
        s.AttributionRow(source=r.source, campaign=r.campaign, channel=r.channel, leads=r.leads,
                         converted=r.converted, won=r.won,
                         won_amounts=[Money.of(m.amount, m.currency) for m in r.won_amounts])
        for r in reply.rows]))


@router.post("/customers/{customer_id}/reassign", response_model=s.cs.Customer, tags=["customers"],
             summary="Hand a customer to another owner (and team) within your scope")
async def reassign_customer(customer_id: UUID, body: s.CustomerReassign, request: Request,
                            caller: Caller = _CUSTOMERS_WRITE, if_match: str | None = IF_MATCH) -> Response:
    reply = await _customers(request).ReassignCustomer(pb.ReassignCustomerRequest(
        id=str(customer_id), owner_id=body.owner_id, team_id=body.team_id,
        expected_version=expected_version(if_match)), metadata=caller.metadata)
    customer = _customer_json(reply.customer)
    return _json(customer, 200, {"ETag": etag_of(customer.version)})
