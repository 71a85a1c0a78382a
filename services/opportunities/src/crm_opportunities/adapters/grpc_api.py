"""The gRPC face of the service: protobuf in, use case, protobuf out. No rules live here."""

from __future__ import annotations

import datetime as dt
from typing import Any

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.opportunities.v1 import opportunities_pb2 as pb
from crm.opportunities.v1 import opportunities_pb2_grpc as pb_grpc
from crm_opportunities.adapters.requirements_grpc import RequirementRpcs
from crm_opportunities.app import requirements, use_cases
from crm_opportunities.app.messages import (
    money,
    opportunity_to_pb,
    parse_date,
    pipeline_to_pb,
    quote_to_pb,
    stage_change_to_pb,
)
from crm_opportunities.domain.model import OpportunityStatus
from crm_opportunities.domain.money import parse_line
from crmkit.auth import current_principal
from crmkit.db import UnitOfWork
from crmkit.ids import parse_id

SOURCE = "crm/opportunities"


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _optional_id(value: str, field: str) -> Any:
    return parse_id(value, field) if value else None


# Defence in depth (R-SEC-03): what each RPC needs, checked by the shared interceptor; the
# gateway checks the same, and the data scope is checked per record in the use cases.
_READ, _WRITE = "opportunities.read", "opportunities.write"
PERMISSIONS = {
    "ListPipelines": _READ, "CreatePipeline": _WRITE, "ListLostReasons": _READ, "CreateLostReason": _WRITE,
    "CreateOpportunity": _WRITE, "GetOpportunity": _READ, "ListOpportunities": _READ, "MoveStage": _WRITE,
    "MarkWon": _WRITE, "MarkLost": _WRITE, "ListStageHistory": _READ, "CreateQuote": _WRITE, "GetQuote": _READ,
    "ListQuotes": _READ, "SendQuote": _WRITE, "AcceptQuote": _WRITE, "RejectQuote": _WRITE, "GetFunnel": _READ,
    "CreateRequirementRequest": _WRITE, "GetRequirementRequest": _READ, "ListRequirementRequests": _READ,
    "StartRequirementReview": _WRITE, "DecideRequirementRequest": _WRITE,
}

class OpportunitiesServicer(RequirementRpcs, pb_grpc.OpportunitiesServiceServicer):
    permissions = PERMISSIONS

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *,
                 reviewer_role: str = requirements.DEFAULT_REVIEWER_ROLE,
                 reviewers: requirements.ReviewerLookup | None = None,
                 customers: use_cases.CustomerLookup) -> None:
        self._sessions = sessions
        self._customers = customers
        self._reviewer_role = reviewer_role
        self._reviewers = reviewers

    def _uow(self) -> UnitOfWork:
        return UnitOfWork(self._sessions, SOURCE, actor=current_principal().subject)

    async def ListPipelines(self, request: pb.ListPipelinesRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            items = await use_cases.list_pipelines(uow, current_principal())
        return pb.ListPipelinesResponse(pipelines=[pipeline_to_pb(p) for p in items])

    async def CreatePipeline(self, request: pb.CreatePipelineRequest, context: grpc.aio.ServicerContext) -> Any:
        p = request.pipeline
        async with self._uow() as uow:
            created = await use_cases.create_pipeline(
                uow, current_principal(), p.name,
                [(s.name, s.default_probability, s.is_won, s.is_lost) for s in sorted(p.stages, key=lambda s: s.order)])
        return pb.CreatePipelineResponse(pipeline=pipeline_to_pb(created))

    async def ListLostReasons(self, request: pb.ListLostReasonsRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            rows = await use_cases.list_lost_reasons(uow, current_principal())
        return pb.ListLostReasonsResponse(lost_reasons=[pb.LostReason(code=c, name=n) for c, n in rows])

    async def CreateLostReason(self, request: pb.CreateLostReasonRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            code, name = await use_cases.create_lost_reason(uow, current_principal(), request.lost_reason.code,
                                                            request.lost_reason.name)
        return pb.CreateLostReasonResponse(lost_reason=pb.LostReason(code=code, name=name))

    async def CreateOpportunity(self, request: pb.CreateOpportunityRequest,
                                context: grpc.aio.ServicerContext) -> Any:
        o = request.opportunity
        new = use_cases.NewOpportunity(
            customer_id=parse_id(o.customer_id, "customer_id"), name=o.name,
            pipeline_id=_optional_id(o.pipeline_id, "pipeline_id"), amount=o.amount.amount,
            currency=o.amount.currency, probability=o.probability,
            expected_close_date=parse_date(o.expected_close_date, "expected_close_date"), owner_id=o.owner_id,
            team_id=o.team_id, lead_id=_optional_id(o.lead_id, "lead_id"))
        async with self._uow() as uow:
            created = await use_cases.create_opportunity(uow, current_principal(), new, customers=self._customers)
        return pb.CreateOpportunityResponse(opportunity=opportunity_to_pb(created))

    async def GetOpportunity(self, request: pb.GetOpportunityRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            found = await use_cases.get_opportunity(uow, current_principal(), parse_id(request.id))
        return pb.GetOpportunityResponse(opportunity=opportunity_to_pb(found))

    async def ListOpportunities(self, request: pb.ListOpportunitiesRequest,
                                context: grpc.aio.ServicerContext) -> Any:
        status = ""
        if request.status:
            status = OpportunityStatus(pb.OpportunityStatus.Name(request.status)
                                       .removeprefix("OPPORTUNITY_STATUS_").lower()).value
        async with self._uow() as uow:
            items, token = await use_cases.list_opportunities(
                uow, current_principal(), page_token=request.page_token, limit=request.page_size,
                customer_id=_optional_id(request.customer_id, "customer_id"),
                pipeline_id=_optional_id(request.pipeline_id, "pipeline_id"),
                stage_id=_optional_id(request.stage_id, "stage_id"), status=status, owner_id=request.owner_id,
                team_id=request.team_id)
        return pb.ListOpportunitiesResponse(opportunities=[opportunity_to_pb(o) for o in items],
                                            next_page_token=token)

    async def MoveStage(self, request: pb.MoveStageRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            moved = await use_cases.move_stage(uow, current_principal(), parse_id(request.id),
                                               parse_id(request.stage_id, "stage_id"), request.probability,
                                               request.expected_version)
        return pb.MoveStageResponse(opportunity=opportunity_to_pb(moved))

    async def MarkWon(self, request: pb.MarkWonRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            won = await use_cases.mark_won(uow, current_principal(), parse_id(request.id), request.expected_version)
        return pb.MarkWonResponse(opportunity=opportunity_to_pb(won))

    async def MarkLost(self, request: pb.MarkLostRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            lost = await use_cases.mark_lost(uow, current_principal(), parse_id(request.id), request.reason,
                                             request.note, request.expected_version)
        return pb.MarkLostResponse(opportunity=opportunity_to_pb(lost))

    async def ListStageHistory(self, request: pb.ListStageHistoryRequest,
                               context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            changes = await use_cases.stage_history(uow, current_principal(),
                                                    parse_id(request.opportunity_id, "opportunity_id"))
        return pb.ListStageHistoryResponse(changes=[stage_change_to_pb(c) for c in changes])

    async def CreateQuote(self, request: pb.CreateQuoteRequest, context: grpc.aio.ServicerContext) -> Any:
        q = request.quote
        lines = [parse_line(i, li.product, li.specification, li.quantity, li.unit_price, li.discount_percent,
                            li.tax_rate_percent) for i, li in enumerate(q.lines)]
        async with self._uow() as uow:
            created = await use_cases.create_quote(uow, current_principal(),
                                                   parse_id(q.opportunity_id, "opportunity_id"), q.currency, lines,
                                                   parse_date(q.valid_until, "valid_until"), q.note,
                                                   _optional_id(q.requirement_request_id, "requirement_request_id"))
        return pb.CreateQuoteResponse(quote=quote_to_pb(created, _today()))

    async def GetQuote(self, request: pb.GetQuoteRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            found = await use_cases.get_quote(uow, current_principal(), parse_id(request.id))
        return pb.GetQuoteResponse(quote=quote_to_pb(found, _today()))

    async def ListQuotes(self, request: pb.ListQuotesRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            items, token = await use_cases.list_quotes(
                uow, current_principal(), opportunity_id=_optional_id(request.opportunity_id, "opportunity_id"),
                page_token=request.page_token, limit=request.page_size)
        today = _today()
        return pb.ListQuotesResponse(quotes=[quote_to_pb(q, today) for q in items], next_page_token=token)

    async def SendQuote(self, request: pb.SendQuoteRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            sent = await use_cases.send_quote(uow, current_principal(), parse_id(request.id))
        return pb.SendQuoteResponse(quote=quote_to_pb(sent, _today()))

    async def AcceptQuote(self, request: pb.AcceptQuoteRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            quote, opportunity = await use_cases.accept_quote(uow, current_principal(), parse_id(request.id))
        return pb.AcceptQuoteResponse(quote=quote_to_pb(quote, _today()), opportunity=opportunity_to_pb(opportunity))

    async def RejectQuote(self, request: pb.RejectQuoteRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            rejected = await use_cases.reject_quote(uow, current_principal(), parse_id(request.id))
        return pb.RejectQuoteResponse(quote=quote_to_pb(rejected, _today()))

    async def GetFunnel(self, request: pb.GetFunnelRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            pipeline, currency, stages = await use_cases.funnel(
                uow, current_principal(), pipeline_id=_optional_id(request.pipeline_id, "pipeline_id"),
                owner_id=request.owner_id, team_id=request.team_id,
                from_date=parse_date(request.from_date, "from_date"), to_date=parse_date(request.to_date, "to_date"),
                currency=request.currency)
        return pb.GetFunnelResponse(pipeline_id=str(pipeline.id), stages=[
            pb.FunnelStage(stage_id=str(s.stage_id), name=s.name, order=s.order, is_won=s.is_won, is_lost=s.is_lost,
                           count=s.count, amount=money(s.amount, currency), reached=s.reached,
                           conversion_to_next=str(s.conversion_to_next) if s.conversion_to_next is not None else "",
                           average_days=str(s.average_days) if s.average_days is not None else "")
            for s in stages])
