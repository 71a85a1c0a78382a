"""/api/v1/pipelines, /opportunities, /quotes, /reports/funnel: REST in front of
crm.opportunities.v1.OpportunitiesService (R-OPP-01, R-OPP-03, R-OPP-04)."""

from __future__ import annotations

import datetime as dt
from datetime import UTC
from functools import partial
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from google.protobuf.timestamp_pb2 import Timestamp

from crm.common.v1 import money_pb2
from crm.opportunities.v1 import opportunities_pb2 as pb
from crm_gateway import permissions as p
from crm_gateway.api_route import ApiRoute
from crm_gateway.auth import Caller, authenticated, require
from crm_gateway.backends import backend
from crm_gateway.etags import etag_of, expected_version
from crm_gateway.problems import API_ERRORS
from crm_gateway.routes import opportunities_schemas as s
from crm_gateway.routes.common import IDEMPOTENCY, IF_MATCH, link_header
from crm_gateway.routes.common import json_response as _json

_stub = partial(backend, name="opportunities")
router = APIRouter(prefix="/api/v1", route_class=ApiRoute, tags=["opportunities"],
                   dependencies=[Depends(authenticated)], responses=API_ERRORS)

_READ = Depends(require(p.OPPORTUNITIES_READ))
_WRITE = Depends(require(p.OPPORTUNITIES_WRITE))
_CONFLICT = {409: {"description": "The rule named by `reason` forbids it in the current state, e.g. "
                                  "OPPORTUNITY_CLOSED, QUOTE_NOT_SENT, QUOTE_EXPIRED"}}



def _time(t: Timestamp, present: bool = True) -> dt.datetime | None:
    return t.ToDatetime(UTC) if present else None


def _money(m: money_pb2.Money) -> s.Money:
    return s.Money.of(m.amount, m.currency)



def _pipeline_json(m: pb.Pipeline) -> s.Pipeline:
    return s.Pipeline(id=m.id, name=m.name, is_default=m.is_default, stages=[
        s.Stage(id=st.id, name=st.name, order=st.order, default_probability=st.default_probability,
                is_won=st.is_won, is_lost=st.is_lost) for st in m.stages])


def _opportunity_json(m: pb.Opportunity) -> s.Opportunity:
    return s.Opportunity(
        id=m.id, customer_id=m.customer_id, name=m.name, pipeline_id=m.pipeline_id, stage_id=m.stage_id,
        amount=_money(m.amount), probability=m.probability,
        expected_close_date=dt.date.fromisoformat(m.expected_close_date) if m.expected_close_date else None,
        status=pb.OpportunityStatus.Name(m.status).removeprefix("OPPORTUNITY_STATUS_").lower(),  # type: ignore[arg-type]
        lost_reason=m.lost_reason or None, lost_note=m.lost_note, owner_id=m.owner_id, team_id=m.team_id,
        department_path=m.department_path, version=m.version, created_at=m.create_time.ToDatetime(UTC),
        updated_at=m.update_time.ToDatetime(UTC), closed_at=_time(m.close_time, m.HasField("close_time")),
        created_by=m.created_by, lead_id=m.lead_id or None, won_by=m.won_by or None)


def _quote_json(m: pb.Quote) -> s.Quote:
    return s.Quote(
        id=m.id, opportunity_id=m.opportunity_id, customer_id=m.customer_id, quote_version=m.quote_version,
        status=pb.QuoteStatus.Name(m.status).removeprefix("QUOTE_STATUS_").lower(),  # type: ignore[arg-type]
        currency=m.currency, lines=[
            s.QuoteLine(product=li.product, specification=li.specification, quantity=li.quantity,
                        unit_price=li.unit_price, discount_percent=li.discount_percent,
                        tax_rate_percent=li.tax_rate_percent, net_amount=li.net_amount, tax_amount=li.tax_amount,
                        gross_amount=li.gross_amount) for li in m.lines],
        net_total=_money(m.net_total), tax_total=_money(m.tax_total), gross_total=_money(m.gross_total),
        valid_until=dt.date.fromisoformat(m.valid_until), note=m.note, owner_id=m.owner_id, team_id=m.team_id,
        department_path=m.department_path, created_at=m.create_time.ToDatetime(UTC),
        sent_at=_time(m.send_time, m.HasField("send_time")), decided_at=_time(m.decide_time, m.HasField("decide_time")),
        created_by=m.created_by, requirement_request_id=m.requirement_request_id or None)


def _with_etag(reply_opportunity: pb.Opportunity, status_code: int = 200) -> Response:
    opportunity = _opportunity_json(reply_opportunity)
    headers = {"ETag": etag_of(opportunity.version)}
    if status_code == 201:
        headers["Location"] = f"/api/v1/opportunities/{opportunity.id}"
    return _json(opportunity, status_code, headers)


# Pipelines and lost reasons --------------------------------------------------------------------

@router.get("/pipelines", response_model=s.PipelineList, summary="List pipelines with their stages in order")
async def list_pipelines(request: Request, caller: Caller = _READ) -> Response:
    reply = await _stub(request).ListPipelines(pb.ListPipelinesRequest(), metadata=caller.metadata)
    return _json(s.PipelineList(items=[_pipeline_json(x) for x in reply.pipelines]))


@router.post("/pipelines", status_code=201, response_model=s.Pipeline,
             summary="Create a pipeline (administrators)")
async def create_pipeline(body: s.PipelineCreate, request: Request, caller: Caller = _WRITE,
                          idempotency_key: str | None = IDEMPOTENCY) -> Response:
    message = pb.Pipeline(name=body.name, stages=[
        pb.Stage(name=st.name, order=i, default_probability=st.default_probability, is_won=st.is_won,
                 is_lost=st.is_lost) for i, st in enumerate(body.stages, start=1)])
    reply = await _stub(request).CreatePipeline(pb.CreatePipelineRequest(pipeline=message), metadata=caller.metadata)
    return _json(_pipeline_json(reply.pipeline), 201, {"Location": "/api/v1/pipelines"})


@router.get("/lost-reasons", response_model=s.LostReasonList, summary="The reasons an opportunity may be lost")
async def list_lost_reasons(request: Request, caller: Caller = _READ) -> Response:
    reply = await _stub(request).ListLostReasons(pb.ListLostReasonsRequest(), metadata=caller.metadata)
    return _json(s.LostReasonList(items=[s.LostReason(code=r.code, name=r.name) for r in reply.lost_reasons]))


@router.post("/lost-reasons", status_code=201, response_model=s.LostReason,
             summary="Add a lost reason (administrators)")
async def create_lost_reason(body: s.LostReason, request: Request, caller: Caller = _WRITE,
                             idempotency_key: str | None = IDEMPOTENCY) -> Response:
    reply = await _stub(request).CreateLostReason(
        pb.CreateLostReasonRequest(lost_reason=pb.LostReason(code=body.code, name=body.name)),
        metadata=caller.metadata)
    return _json(s.LostReason(code=reply.lost_reason.code, name=reply.lost_reason.name), 201)


# Opportunities ---------------------------------------------------------------------------------

@router.post("/opportunities", status_code=201, response_model=s.Opportunity, summary="Create an opportunity")
async def create_opportunity(body: s.OpportunityCreate, request: Request, caller: Caller = _WRITE,
                             idempotency_key: str | None = IDEMPOTENCY) -> Response:
    message = pb.Opportunity(
        customer_id=body.customer_id, name=body.name, pipeline_id=body.pipeline_id,
        amount=money_pb2.Money(amount=body.amount.amount, currency=body.amount.currency),
        probability=body.probability,
        expected_close_date=body.expected_close_date.isoformat() if body.expected_close_date else "",
        owner_id=body.owner_id, team_id=body.team_id)
    reply = await _stub(request).CreateOpportunity(pb.CreateOpportunityRequest(opportunity=message),
                                                   metadata=caller.metadata)
    return _with_etag(reply.opportunity, 201)


@router.get("/opportunities", response_model=s.OpportunityPage,
            summary="List opportunities in your data scope, newest first")
async def list_opportunities(
    request: Request, caller: Caller = _READ,
    limit: int = Query(50, ge=1, le=200), cursor: str = Query("", max_length=2000),
    customer_id: UUID | None = None, pipeline_id: UUID | None = None, stage_id: UUID | None = None,
    status: s.OpportunityStatus | None = None, owner_id: str = Query("", max_length=100),
    team_id: str = Query("", max_length=100),
) -> Response:
    reply = await _stub(request).ListOpportunities(pb.ListOpportunitiesRequest(
        page_size=limit, page_token=cursor, customer_id=str(customer_id or ""), pipeline_id=str(pipeline_id or ""),
        stage_id=str(stage_id or ""),
        status=pb.OpportunityStatus.Value(f"OPPORTUNITY_STATUS_{status.upper()}") if status else 0,
        owner_id=owner_id, team_id=team_id), metadata=caller.metadata)
    return _json(s.OpportunityPage(items=[_opportunity_json(o) for o in reply.opportunities],
                                   next_cursor=reply.next_page_token or None))


@router.get("/opportunities/{opportunity_id}", response_model=s.Opportunity, summary="Read an opportunity")
async def get_opportunity(opportunity_id: UUID, request: Request, caller: Caller = _READ) -> Response:
    reply = await _stub(request).GetOpportunity(pb.GetOpportunityRequest(id=str(opportunity_id)),
                                                metadata=caller.metadata)
    return _with_etag(reply.opportunity)


@router.post("/opportunities/{opportunity_id}/stage", response_model=s.Opportunity, responses=_CONFLICT,
             summary="Move an open opportunity to another open stage (recorded in its stage history)")
async def move_stage(opportunity_id: UUID, body: s.StageMove, request: Request, caller: Caller = _WRITE,
                     if_match: str | None = IF_MATCH) -> Response:
    reply = await _stub(request).MoveStage(pb.MoveStageRequest(
        id=str(opportunity_id), stage_id=body.stage_id, probability=body.probability,
        expected_version=expected_version(if_match)), metadata=caller.metadata)
    return _with_etag(reply.opportunity)


@router.post("/opportunities/{opportunity_id}/won", response_model=s.Opportunity, responses=_CONFLICT,
             summary="Mark an open opportunity won")
async def mark_won(opportunity_id: UUID, request: Request, caller: Caller = _WRITE,
                   if_match: str | None = IF_MATCH) -> Response:
    reply = await _stub(request).MarkWon(pb.MarkWonRequest(id=str(opportunity_id),
                                                           expected_version=expected_version(if_match)),
                                         metadata=caller.metadata)
    return _with_etag(reply.opportunity)


@router.post("/opportunities/{opportunity_id}/lost", response_model=s.Opportunity, responses=_CONFLICT,
             summary="Mark an open opportunity lost, with a reason from the lost-reason list")
async def mark_lost(opportunity_id: UUID, body: s.LostOutcome, request: Request, caller: Caller = _WRITE,
                    if_match: str | None = IF_MATCH) -> Response:
    reply = await _stub(request).MarkLost(pb.MarkLostRequest(
        id=str(opportunity_id), reason=body.reason, note=body.note, expected_version=expected_version(if_match)),
        metadata=caller.metadata)
    return _with_etag(reply.opportunity)


@router.get("/opportunities/{opportunity_id}/stage-history", response_model=s.StageHistory,
            summary="The opportunity's stage changes, oldest first: who and when")
async def stage_history(opportunity_id: UUID, request: Request, caller: Caller = _READ) -> Response:
    reply = await _stub(request).ListStageHistory(pb.ListStageHistoryRequest(opportunity_id=str(opportunity_id)),
                                                  metadata=caller.metadata)
    return _json(s.StageHistory(items=[
        s.StageChange(from_stage_id=c.from_stage_id or None, to_stage_id=c.to_stage_id, changed_by=c.changed_by,
                      changed_at=c.change_time.ToDatetime(UTC)) for c in reply.changes]))


# Quotes ----------------------------------------------------------------------------------------

@router.post("/quotes", status_code=201, response_model=s.Quote, responses=_CONFLICT,
             summary="Create the next quote version of an opportunity (a draft); totals are computed")
async def create_quote(body: s.QuoteCreate, request: Request, caller: Caller = _WRITE,
                       idempotency_key: str | None = IDEMPOTENCY) -> Response:
    message = pb.Quote(opportunity_id=body.opportunity_id, currency=body.currency,
                       valid_until=body.valid_until.isoformat(), note=body.note,
                       lines=[pb.QuoteLine(**li.model_dump()) for li in body.lines],
                       requirement_request_id=body.requirement_request_id)
    reply = await _stub(request).CreateQuote(pb.CreateQuoteRequest(quote=message), metadata=caller.metadata)
    quote = _quote_json(reply.quote)
    return _json(quote, 201, {"Location": f"/api/v1/quotes/{quote.id}"})


@router.get("/quotes", response_model=s.QuotePage, summary="List quotes in your data scope, newest first")
async def list_quotes(request: Request, caller: Caller = _READ, opportunity_id: UUID | None = None,
                      limit: int = Query(50, ge=1, le=200), cursor: str = Query("", max_length=2000)) -> Response:
    reply = await _stub(request).ListQuotes(pb.ListQuotesRequest(
        opportunity_id=str(opportunity_id or ""), page_size=limit, page_token=cursor), metadata=caller.metadata)
    return _json(s.QuotePage(items=[_quote_json(q) for q in reply.quotes], next_cursor=reply.next_page_token or None))


@router.get("/quotes/{quote_id}", response_model=s.Quote, summary="Read a quote")
async def get_quote(quote_id: UUID, request: Request, caller: Caller = _READ) -> Response:
    reply = await _stub(request).GetQuote(pb.GetQuoteRequest(id=str(quote_id)), metadata=caller.metadata)
    return _json(_quote_json(reply.quote))


@router.post("/quotes/{quote_id}/send", response_model=s.Quote, responses=_CONFLICT,
             summary="Send a draft quote to the customer")
async def send_quote(quote_id: UUID, request: Request, caller: Caller = _WRITE) -> Response:
    reply = await _stub(request).SendQuote(pb.SendQuoteRequest(id=str(quote_id)), metadata=caller.metadata)
    return _json(_quote_json(reply.quote))


@router.post("/quotes/{quote_id}/accept", response_model=s.QuoteAcceptance, responses=_CONFLICT,
             summary="Accept a sent, unexpired quote: the opportunity is won and the contract is drafted",
             description="No body. The opportunity is won at once. The contract is drafted **asynchronously** "
                         "(contracts consumes `quote.accepted`): it appears within seconds in "
                         "`GET /api/v1/contracts?quote_id=…`, the URL in `links.contract` and in the "
                         "`Link: <…>; rel=\"contract\"` header. Poll that list until it has one item.")
async def accept_quote(quote_id: UUID, request: Request, caller: Caller = _WRITE) -> Response:
    reply = await _stub(request).AcceptQuote(pb.AcceptQuoteRequest(id=str(quote_id)), metadata=caller.metadata)
    links = s.AcceptanceLinks(contract=f"/api/v1/contracts?quote_id={reply.quote.id}")
    return _json(s.QuoteAcceptance(quote=_quote_json(reply.quote), opportunity=_opportunity_json(reply.opportunity),
                                   links=links), headers={"Link": link_header(links.model_dump())})


@router.post("/quotes/{quote_id}/reject", response_model=s.Quote, responses=_CONFLICT,
             summary="Record the customer's rejection of a sent quote")
async def reject_quote(quote_id: UUID, request: Request, caller: Caller = _WRITE) -> Response:
    reply = await _stub(request).RejectQuote(pb.RejectQuoteRequest(id=str(quote_id)), metadata=caller.metadata)
    return _json(_quote_json(reply.quote))


# Funnel ----------------------------------------------------------------------------------------

@router.get("/reports/funnel", response_model=s.Funnel,
            summary="Sales funnel: per stage counts, amounts, conversion and days in stage (R-OPP-04)")
async def funnel(request: Request, caller: Caller = _READ, pipeline_id: UUID | None = None,
                 owner_id: str = Query("", max_length=100), team_id: str = Query("", max_length=100),
                 from_date: dt.date | None = Query(None, alias="from", description="Created on or after"),
                 to_date: dt.date | None = Query(None, alias="to", description="Created before"),
                 currency: str = Query("CNY", min_length=3, max_length=3)) -> Response:
    reply = await _stub(request).GetFunnel(pb.GetFunnelRequest(
        pipeline_id=str(pipeline_id or ""), owner_id=owner_id, team_id=team_id,
        from_date=from_date.isoformat() if from_date else "", to_date=to_date.isoformat() if to_date else "",
        currency=currency), metadata=caller.metadata)
    return _json(s.Funnel(pipeline_id=reply.pipeline_id, currency=currency.upper(), stages=[
        s.FunnelStage(stage_id=st.stage_id, name=st.name, order=st.order, is_won=st.is_won, is_lost=st.is_lost,
                      count=st.count, amount=_money(st.amount), reached=st.reached,
                      conversion_to_next=st.conversion_to_next or None, average_days=st.average_days or None)
        for st in reply.stages]))


# Requirement requests (需求申請, R-OPP-02) ----------------------------------------------------------

def _requirement_json(m: pb.RequirementRequest) -> s.RequirementRequest:
    return s.RequirementRequest(
        id=m.id, opportunity_id=m.opportunity_id, customer_id=m.customer_id, title=m.title,
        specification=m.specification, quantity=m.quantity, unit=m.unit,
        target_price=_money(m.target_price) if m.HasField("target_price") else None,
        requested_date=dt.date.fromisoformat(m.requested_date) if m.requested_date else None,
        attachments=[s.Attachment(name=a.name, size_bytes=a.size_bytes, content_type=a.content_type, url=a.url)
                     for a in m.attachments],
        status=pb.RequirementStatus.Name(m.status).removeprefix("REQUIREMENT_STATUS_").lower(),  # type: ignore[arg-type]
        reviewer_id=m.reviewer_id or None, review_notes=m.review_notes, quote_id=m.quote_id or None,
        owner_id=m.owner_id, team_id=m.team_id, department_path=m.department_path, version=m.version,
        created_at=m.create_time.ToDatetime(UTC), updated_at=m.update_time.ToDatetime(UTC),
        decided_at=_time(m.decide_time, m.HasField("decide_time")), created_by=m.created_by)


def _requirement_response(m: pb.RequirementRequest) -> Response:
    item = _requirement_json(m)
    return _json(item, 200, {"ETag": etag_of(item.version)})


_REVIEW_CONFLICT = {409: {"description": "The rule named by `reason` forbids it, e.g. REQUIREMENT_NOT_SUBMITTED, "
                                         "REQUIREMENT_NOT_UNDER_REVIEW, NOT_THE_REVIEWER"}}


@router.post("/requirement-requests", status_code=201, response_model=s.RequirementRequestCreated,
             responses=_CONFLICT,
             summary="Submit a customer's requirement request for a customised product; the reviewers are told")
async def create_requirement_request(body: s.RequirementRequestCreate, request: Request, caller: Caller = _WRITE,
                                     idempotency_key: str | None = IDEMPOTENCY) -> Response:
    message = pb.RequirementRequest(
        opportunity_id=body.opportunity_id, title=body.title, specification=body.specification,
        quantity=body.quantity, unit=body.unit,
        target_price=money_pb2.Money(amount=body.target_price.amount, currency=body.target_price.currency)
        if body.target_price else None,
        requested_date=body.requested_date.isoformat() if body.requested_date else "",
        attachments=[pb.Attachment(**a.model_dump()) for a in body.attachments])
    reply = await _stub(request).CreateRequirementRequest(
        pb.CreateRequirementRequestRequest(requirement_request=message), metadata=caller.metadata)
    item = _requirement_json(reply.requirement_request)
    created = s.RequirementRequestCreated(**item.model_dump(), reviewer_ids=list(reply.reviewer_ids))
    return _json(created, 201, {"ETag": etag_of(item.version), "Location": f"/api/v1/requirement-requests/{item.id}"})


@router.get("/requirement-requests", response_model=s.RequirementRequestPage,
            summary="List requirement requests (reviewers see all, others their data scope), newest first")
async def list_requirement_requests(request: Request, caller: Caller = _READ, opportunity_id: UUID | None = None,
                                    status: s.RequirementStatus | None = None,
                                    limit: int = Query(50, ge=1, le=200),
                                    cursor: str = Query("", max_length=2000)) -> Response:
    reply = await _stub(request).ListRequirementRequests(pb.ListRequirementRequestsRequest(
        page_size=limit, page_token=cursor, opportunity_id=str(opportunity_id or ""),
        status=pb.RequirementStatus.Value(f"REQUIREMENT_STATUS_{status.upper()}") if status else 0),
        metadata=caller.metadata)
    return _json(s.RequirementRequestPage(items=[_requirement_json(x) for x in reply.requirement_requests],
                                          next_cursor=reply.next_page_token or None))


@router.get("/requirement-requests/{request_id}", response_model=s.RequirementRequest,
            summary="Read a requirement request")
async def get_requirement_request(request_id: UUID, request: Request, caller: Caller = _READ) -> Response:
    reply = await _stub(request).GetRequirementRequest(pb.GetRequirementRequestRequest(id=str(request_id)),
                                                       metadata=caller.metadata)
    return _requirement_response(reply.requirement_request)


@router.post("/requirement-requests/{request_id}/review", response_model=s.RequirementRequest,
             responses=_REVIEW_CONFLICT, summary="Take a submitted request into feasibility review (reviewer role)")
async def start_requirement_review(request_id: UUID, request: Request, caller: Caller = _WRITE,
                                   if_match: str | None = IF_MATCH) -> Response:
    reply = await _stub(request).StartRequirementReview(pb.StartRequirementReviewRequest(
        id=str(request_id), expected_version=expected_version(if_match)), metadata=caller.metadata)
    return _requirement_response(reply.requirement_request)


@router.post("/requirement-requests/{request_id}/decide", response_model=s.RequirementRequest,
             responses=_REVIEW_CONFLICT, summary="Decide feasible or not feasible, with notes (the reviewer)")
async def decide_requirement_request(request_id: UUID, body: s.RequirementDecision, request: Request,
                                     caller: Caller = _WRITE, if_match: str | None = IF_MATCH) -> Response:
    reply = await _stub(request).DecideRequirementRequest(pb.DecideRequirementRequestRequest(
        id=str(request_id), feasible=body.feasible, notes=body.notes, expected_version=expected_version(if_match)),
        metadata=caller.metadata)
    return _requirement_response(reply.requirement_request)
