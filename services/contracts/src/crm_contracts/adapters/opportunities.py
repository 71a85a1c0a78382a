"""The opportunities service, asked about the opportunity a contract names (R-SEC-02): over a
`Runtime.caller_channel`, so out of the caller's scope and missing both answer "not found"."""

from __future__ import annotations

import grpc

from crm.opportunities.v1 import opportunities_pb2 as opp_pb
from crm.opportunities.v1 import opportunities_pb2_grpc as opp_grpc
from crm_contracts.app.references import OpportunityFacts
from crmkit.references import look_up


class OpportunityDirectory:
    """`crm_contracts.app.references.OpportunityLookup` over OpportunitiesService."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = opp_grpc.OpportunitiesServiceStub(channel)

    async def opportunity(self, opportunity_id: str) -> OpportunityFacts:
        reply = await look_up(self._stub.GetOpportunity, opp_pb.GetOpportunityRequest(id=opportunity_id),
                              what="opportunity")
        return OpportunityFacts(id=reply.opportunity.id, customer_id=reply.opportunity.customer_id)
