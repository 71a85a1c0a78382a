"""The leads part of CustomersService (R-LEAD-01): protobuf in, use case, protobuf out.
Mixed into CustomersServicer, which provides `_uow()`."""

from __future__ import annotations

import datetime as dt
from typing import Any

import grpc

from crm.customers.v1 import customers_pb2 as pb
from crm_customers.app import leads as use_cases
from crm_customers.app import reassign
from crm_customers.app.lead_messages import (
    lead_fields_from_pb,
    lead_to_pb,
    rule_fields_from_pb,
    rule_to_pb,
    status_from_pb,
)
from crm_customers.app.messages import contact_to_pb, customer_to_pb
from crm_customers.domain.leads import Lead
from crmkit.auth import current_principal
from crmkit.db import UnitOfWork
from crmkit.errors import InvalidArgument
from crmkit.ids import parse_id


def _lead_out(lead: Lead) -> pb.Lead:
    return lead_to_pb(lead, reveal=current_principal().sees_sensitive)


def _date(value: str, field: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidArgument.of(field, "must be an ISO 8601 date (YYYY-MM-DD)") from None


class LeadsRpcs:
    def _uow(self) -> UnitOfWork:
        raise NotImplementedError

    async def CreateLead(self, request: pb.CreateLeadRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            [lead] = await use_cases.create_leads(uow, current_principal(), [lead_fields_from_pb(request.lead)])
        return pb.CreateLeadResponse(lead=_lead_out(lead))

    async def BatchCreateLeads(self, request: pb.BatchCreateLeadsRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            created = await use_cases.create_leads(uow, current_principal(),
                                                   [lead_fields_from_pb(m) for m in request.leads])
        return pb.BatchCreateLeadsResponse(leads=[_lead_out(lead) for lead in created])

    async def GetLead(self, request: pb.GetLeadRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            lead = await use_cases.get_lead(uow, current_principal(), parse_id(request.id))
        return pb.GetLeadResponse(lead=_lead_out(lead))

    async def ListLeads(self, request: pb.ListLeadsRequest, context: grpc.aio.ServicerContext) -> Any:
        status = status_from_pb(request.status).value if request.status else ""
        async with self._uow() as uow:
            items, token = await use_cases.list_leads(
                uow, current_principal(), page_token=request.page_token, limit=request.page_size, status=status,
                owner_id=request.owner_id, source=request.source, campaign=request.campaign,
                unassigned=request.unassigned)
        return pb.ListLeadsResponse(leads=[_lead_out(x) for x in items], next_page_token=token)

    async def UpdateLeadStatus(self, request: pb.UpdateLeadStatusRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            lead = await use_cases.update_lead_status(uow, current_principal(), parse_id(request.id),
                                                      status_from_pb(request.status), request.expected_version)
        return pb.UpdateLeadStatusResponse(lead=_lead_out(lead))

    async def AssignLead(self, request: pb.AssignLeadRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            lead = await use_cases.assign_lead(uow, current_principal(), parse_id(request.id), request.owner_id,
                                               request.team_id, request.expected_version)
        return pb.AssignLeadResponse(lead=_lead_out(lead))

    async def ConvertLead(self, request: pb.ConvertLeadRequest, context: grpc.aio.ServicerContext) -> Any:
        principal = current_principal()
        async with self._uow() as uow:
            done = await use_cases.convert_lead(
                uow, principal, parse_id(request.id),
                customer_id=parse_id(request.customer_id, "customer_id") if request.customer_id else None,
                tax_id=request.tax_id, customer_name=request.customer_name)
        reveal = principal.sees_sensitive
        return pb.ConvertLeadResponse(lead=_lead_out(done.lead), customer=customer_to_pb(done.customer, reveal=reveal),
                                      contact=contact_to_pb(done.contact, reveal=reveal),
                                      customer_created=done.customer_created)

    async def LinkLeadOpportunity(self, request: pb.LinkLeadOpportunityRequest,
                                  context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            lead = await use_cases.link_opportunity(uow, current_principal(), parse_id(request.id),
                                                    parse_id(request.opportunity_id, "opportunity_id"))
        return pb.LinkLeadOpportunityResponse(lead=_lead_out(lead))

    async def ListAssignmentRules(self, request: pb.ListAssignmentRulesRequest,
                                  context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            rules = await use_cases.list_rules(uow, current_principal())
        return pb.ListAssignmentRulesResponse(rules=[rule_to_pb(r) for r in rules])

    async def CreateAssignmentRule(self, request: pb.CreateAssignmentRuleRequest,
                                   context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            rule = await use_cases.create_rule(uow, current_principal(), rule_fields_from_pb(request.rule))
        return pb.CreateAssignmentRuleResponse(rule=rule_to_pb(rule))

    async def UpdateAssignmentRule(self, request: pb.UpdateAssignmentRuleRequest,
                                   context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            rule = await use_cases.update_rule(uow, current_principal(), parse_id(request.rule.id, "rule.id"),
                                               rule_fields_from_pb(request.rule), request.expected_version)
        return pb.UpdateAssignmentRuleResponse(rule=rule_to_pb(rule))

    async def GetLeadAttribution(self, request: pb.GetLeadAttributionRequest,
                                 context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            rows = await use_cases.attribution(uow, current_principal(),
                                               from_date=_date(request.from_date, "from_date"),
                                               to_date=_date(request.to_date, "to_date"))
        return pb.GetLeadAttributionResponse(rows=[use_cases.attribution_to_pb(r) for r in rows])

    async def ReassignCustomer(self, request: pb.ReassignCustomerRequest, context: grpc.aio.ServicerContext) -> Any:
        principal = current_principal()
        async with self._uow() as uow:
            customer = await reassign.reassign_customer(uow, principal, parse_id(request.id), request.owner_id,
                                                        request.team_id, request.expected_version)
        return pb.ReassignCustomerResponse(customer=customer_to_pb(customer, reveal=principal.sees_sensitive))
