"""The requirement-request part of OpportunitiesService (R-OPP-02). Mixed into
OpportunitiesServicer, which provides `_uow()`, `_reviewer_role` and `_reviewers`."""

from __future__ import annotations

import logging
from typing import Any

import grpc

from crm.opportunities.v1 import opportunities_pb2 as pb
from crm_opportunities.app import requirements
from crm_opportunities.app.messages import parse_date
from crm_opportunities.domain.requirements import Attachment, RequirementStatus
from crmkit.auth import current_principal
from crmkit.db import UnitOfWork
from crmkit.errors import InvalidArgument
from crmkit.ids import parse_id

log = logging.getLogger(__name__)


def _status(value: int) -> str:
    if not value:
        return ""
    try:
        return RequirementStatus(pb.RequirementStatus.Name(value).removeprefix("REQUIREMENT_STATUS_").lower()).value
    except ValueError:
        raise InvalidArgument.of("status", "unknown requirement status") from None


class RequirementRpcs:
    _reviewer_role: str
    _reviewers: requirements.ReviewerLookup | None

    def _uow(self) -> UnitOfWork:
        raise NotImplementedError

    async def _reviewer_ids(self) -> list[str]:
        """Who to tell: the reviewer role's holders. Identity being down does not stop a
        submission (reviewers also find it by listing submitted requests); it is logged."""
        if self._reviewers is None:
            return []
        try:
            return await self._reviewers(self._reviewer_role)
        except Exception:
            log.warning("reviewer lookup failed; the request is submitted without named reviewers", exc_info=True)
            return []

    async def CreateRequirementRequest(self, request: pb.CreateRequirementRequestRequest,
                                       context: grpc.aio.ServicerContext) -> Any:
        r = request.requirement_request
        new = requirements.NewRequirement(
            opportunity_id=parse_id(r.opportunity_id, "opportunity_id"), title=r.title, specification=r.specification,
            quantity=r.quantity, unit=r.unit, target_price=r.target_price.amount, currency=r.target_price.currency,
            requested_date=parse_date(r.requested_date, "requested_date"),
            attachments=tuple(Attachment(name=a.name.strip(), size_bytes=a.size_bytes,
                                         content_type=a.content_type.strip(), url=a.url.strip())
                              for a in r.attachments))
        reviewers = await self._reviewer_ids()
        async with self._uow() as uow:
            saved = await requirements.create(uow, current_principal(), new, reviewers)
        return pb.CreateRequirementRequestResponse(requirement_request=requirements.to_pb(saved),
                                                   reviewer_ids=reviewers)

    async def GetRequirementRequest(self, request: pb.GetRequirementRequestRequest,
                                    context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            found = await requirements.get(uow, current_principal(), parse_id(request.id), self._reviewer_role)
        return pb.GetRequirementRequestResponse(requirement_request=requirements.to_pb(found))

    async def ListRequirementRequests(self, request: pb.ListRequirementRequestsRequest,
                                      context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            items, token = await requirements.list_requests(
                uow, current_principal(), self._reviewer_role, page_token=request.page_token, limit=request.page_size,
                opportunity_id=parse_id(request.opportunity_id, "opportunity_id") if request.opportunity_id else None,
                status=_status(request.status))
        return pb.ListRequirementRequestsResponse(requirement_requests=[requirements.to_pb(x) for x in items],
                                                  next_page_token=token)

    async def StartRequirementReview(self, request: pb.StartRequirementReviewRequest,
                                     context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            saved = await requirements.start_review(uow, current_principal(), parse_id(request.id),
                                                    self._reviewer_role, request.expected_version)
        return pb.StartRequirementReviewResponse(requirement_request=requirements.to_pb(saved))

    async def DecideRequirementRequest(self, request: pb.DecideRequirementRequestRequest,
                                       context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            saved = await requirements.decide(uow, current_principal(), parse_id(request.id), self._reviewer_role,
                                              feasible=request.feasible, notes=request.notes,
                                              expected_version=request.expected_version)
        return pb.DecideRequirementRequestResponse(requirement_request=requirements.to_pb(saved))
