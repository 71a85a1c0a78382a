"""The gRPC face of the service: protobuf in, use case, protobuf out. No rules live here."""

from __future__ import annotations

import datetime as dt
from typing import Any

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.customers.v1 import customers_pb2 as pb
from crm.customers.v1 import customers_pb2_grpc as pb_grpc
from crm_customers.app import use_cases
from crm_customers.app.messages import (
    contact_fields_from_pb,
    contact_to_pb,
    customer_fields_from_pb,
    customer_to_pb,
    follow_up_fields_from_pb,
    follow_up_to_pb,
)
from crm_customers.domain.model import Contact, Customer
from crmkit.auth import current_principal
from crmkit.db import UnitOfWork
from crmkit.ids import parse_id

SOURCE = "crm/customers"


# R-SEC-04: phones, tax IDs and account numbers in full only for a principal that sees them.
def _customer_out(customer: Customer) -> pb.Customer:
    return customer_to_pb(customer, reveal=current_principal().sees_sensitive)


def _contact_out(contact: Contact) -> pb.Contact:
    return contact_to_pb(contact, reveal=current_principal().sees_sensitive)


class CustomersServicer(pb_grpc.CustomersServiceServicer):
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    def _uow(self) -> UnitOfWork:
        return UnitOfWork(self._sessions, SOURCE, actor=current_principal().subject)

    async def CreateCustomer(self, request: pb.CreateCustomerRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            customer = await use_cases.create_customer(uow, current_principal(),
                                                       customer_fields_from_pb(request.customer))
        return pb.CreateCustomerResponse(customer=_customer_out(customer))

    async def GetCustomer(self, request: pb.GetCustomerRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            customer = await use_cases.get_customer(uow, current_principal(), parse_id(request.id))
        return pb.GetCustomerResponse(customer=_customer_out(customer))

    async def UpdateCustomer(self, request: pb.UpdateCustomerRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            customer = await use_cases.update_customer(
                uow, current_principal(), parse_id(request.customer.id, "customer.id"),
                customer_fields_from_pb(request.customer), list(request.update_mask.paths),
                request.expected_version)
        return pb.UpdateCustomerResponse(customer=_customer_out(customer))

    async def DeleteCustomer(self, request: pb.DeleteCustomerRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            await use_cases.delete_customer(uow, current_principal(), parse_id(request.id), request.expected_version)
        return pb.DeleteCustomerResponse()

    async def ListCustomers(self, request: pb.ListCustomersRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            items, token = await use_cases.list_customers(
                uow, current_principal(), page_token=request.page_token, limit=request.page_size,
                order_by=request.order_by, name_contains=request.name_contains, industry=request.industry,
                owner_id=request.owner_id, tag=request.tag, team_id=request.team_id)
        return pb.ListCustomersResponse(customers=[_customer_out(c) for c in items], next_page_token=token)

    async def AddContact(self, request: pb.AddContactRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            contact = await use_cases.add_contact(uow, current_principal(),
                                                  parse_id(request.customer_id, "customer_id"),
                                                  contact_fields_from_pb(request.contact))
        return pb.AddContactResponse(contact=_contact_out(contact))

    async def UpdateContact(self, request: pb.UpdateContactRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            contact = await use_cases.update_contact(
                uow, current_principal(), parse_id(request.contact.customer_id, "customer_id"),
                parse_id(request.contact.id, "contact_id"), contact_fields_from_pb(request.contact),
                list(request.update_mask.paths), request.expected_version)
        return pb.UpdateContactResponse(contact=_contact_out(contact))

    async def RemoveContact(self, request: pb.RemoveContactRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            await use_cases.remove_contact(uow, current_principal(), parse_id(request.customer_id, "customer_id"),
                                           parse_id(request.contact_id, "contact_id"))
        return pb.RemoveContactResponse()

    async def ListContacts(self, request: pb.ListContactsRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            contacts = await use_cases.list_contacts(uow, current_principal(),
                                                     parse_id(request.customer_id, "customer_id"))
        return pb.ListContactsResponse(contacts=[_contact_out(c) for c in contacts])

    async def RecordFollowUp(self, request: pb.RecordFollowUpRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            follow_up = await use_cases.record_follow_up(
                uow, current_principal(), parse_id(request.customer_id, "customer_id"),
                follow_up_fields_from_pb(request.follow_up, dt.datetime.now(dt.UTC)))
        return pb.RecordFollowUpResponse(follow_up=follow_up_to_pb(follow_up))

    async def ListFollowUps(self, request: pb.ListFollowUpsRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            items, token = await use_cases.list_follow_ups(
                uow, current_principal(), parse_id(request.customer_id, "customer_id"),
                page_token=request.page_token, limit=request.page_size)
        return pb.ListFollowUpsResponse(follow_ups=[follow_up_to_pb(f) for f in items], next_page_token=token)

    async def ListIndustries(self, request: pb.ListIndustriesRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            rows = await use_cases.list_industries(uow)
        return pb.ListIndustriesResponse(industries=[pb.Industry(code=c, name=n, name_zh=z) for c, n, z in rows])

    async def CreateIndustry(self, request: pb.CreateIndustryRequest, context: grpc.aio.ServicerContext) -> Any:
        i = request.industry
        async with self._uow() as uow:
            code, name, name_zh = await use_cases.create_industry(uow, current_principal(), i.code, i.name,
                                                                  i.name_zh)
        return pb.CreateIndustryResponse(industry=pb.Industry(code=code, name=name, name_zh=name_zh))

    async def ListTags(self, request: pb.ListTagsRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            rows = await use_cases.list_tags(uow, current_principal())
        return pb.ListTagsResponse(tags=[pb.TagUsage(name=t, customer_count=n) for t, n in rows])


