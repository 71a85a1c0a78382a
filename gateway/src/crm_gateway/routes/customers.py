"""/api/v1/customers and what hangs off it: REST in front of crm.customers.v1.CustomersService."""

from __future__ import annotations

from datetime import UTC
from functools import partial
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response, status
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.json_format import MessageToDict

from crm.common.v1 import lifecycle_pb2
from crm.customers.v1 import customers_pb2 as pb
from crm_gateway import permissions as p
from crm_gateway.api_route import ApiRoute
from crm_gateway.auth import Caller, authenticated, require
from crm_gateway.backends import backend
from crm_gateway.etags import etag_of, expected_version
from crm_gateway.problems import API_ERRORS
from crm_gateway.routes import customer_schemas as s
from crm_gateway.routes.common import IDEMPOTENCY, IF_MATCH
from crm_gateway.routes.common import json_response as _json

_stub = partial(backend, name="customers")
router = APIRouter(prefix="/api/v1", route_class=ApiRoute, tags=["customers"],
                   dependencies=[Depends(authenticated)], responses=API_ERRORS)

# What each route needs (crm_gateway.permissions); ApiRoute documents it as x-permission.
_READ = Depends(require(p.CUSTOMERS_READ))
_WRITE = Depends(require(p.CUSTOMERS_WRITE))
_DELETE = Depends(require(p.CUSTOMERS_DELETE))
_MANAGE_INDUSTRIES = Depends(require(p.INDUSTRIES_MANAGE))



def _enum(prefix: str, value: str) -> str:
    return f"{prefix}_{value.upper()}"


def _unenum(prefix: str, name: str) -> str:
    return name.removeprefix(prefix + "_").lower()


def _customer_pb(fields: dict[str, Any]) -> pb.Customer:
    message = pb.Customer()
    for key, value in fields.items():
        if key == "origin":
            message.origin = pb.Origin.Value(_enum("ORIGIN", value))
        elif key == "status":
            message.status = pb.CustomerStatus.Value(_enum("CUSTOMER_STATUS", value))
        elif key == "lifecycle_stage":
            message.lifecycle_stage = lifecycle_pb2.LifecycleStage.Value(_enum("LIFECYCLE_STAGE", value))
        elif key == "tags":
            message.tags.extend(value)
        elif key == "addresses":
            message.addresses.extend(
                pb.Address(**(a | {"kind": pb.AddressKind.Value(_enum("ADDRESS_KIND", a["kind"]))})) for a in value)
        else:
            setattr(message, key, value)
    return message


def _customer_json(m: pb.Customer) -> s.Customer:
    return s.Customer(
        id=m.id, name=m.name, tax_id=m.tax_id, industry=m.industry, region=m.region,
        origin=_unenum("ORIGIN", pb.Origin.Name(m.origin)),  # type: ignore[arg-type]
        status=_unenum("CUSTOMER_STATUS", pb.CustomerStatus.Name(m.status)),  # type: ignore[arg-type]
        lifecycle_stage=_unenum("LIFECYCLE_STAGE",  # type: ignore[arg-type]
                                lifecycle_pb2.LifecycleStage.Name(m.lifecycle_stage)),
        owner_id=m.owner_id, team_id=m.team_id, department_path=m.department_path, tags=list(m.tags),
        addresses=[s.Address(kind=_unenum("ADDRESS_KIND", pb.AddressKind.Name(a.kind)),  # type: ignore[arg-type]
                             line=a.line, city=a.city, province=a.province, country=a.country,
                             postal_code=a.postal_code) for a in m.addresses],
        version=m.version, created_at=m.create_time.ToDatetime(UTC), updated_at=m.update_time.ToDatetime(UTC),
        created_by=m.created_by, tier=m.tier,
        signed_amount=s.Money.of(m.signed_amount.amount, m.signed_amount.currency)
        if m.signed_amount.amount else None)


def _contact_json(m: pb.Contact) -> s.Contact:
    return s.Contact(id=m.id, customer_id=m.customer_id, name=m.name, title=m.title, phones=list(m.phones),
                     email=m.email, wechat=m.wechat, is_key=m.is_key, version=m.version,
                     created_at=m.create_time.ToDatetime(UTC), updated_at=m.update_time.ToDatetime(UTC))


def _follow_up_json(m: pb.FollowUp) -> s.FollowUp:
    return s.FollowUp(id=m.id, customer_id=m.customer_id,
                      kind=_unenum("FOLLOW_UP_KIND", pb.FollowUpKind.Name(m.kind)),  # type: ignore[arg-type]
                      occurred_at=m.occur_time.ToDatetime(UTC), summary=m.summary, content=m.content,
                      key_facts=list(m.key_facts), contact_id=m.contact_id or None, author_id=m.author_id,
                      author_name=m.author_name, created_at=m.create_time.ToDatetime(UTC))



# Customers -----------------------------------------------------------------------------------

@router.post("/customers", status_code=201, response_model=s.Customer, summary="Create a customer",
             responses={409: {"description": "A customer with this tax ID exists (named when visible to you)"}})
async def create_customer(body: s.CustomerCreate, request: Request, caller: Caller = _WRITE,
                          idempotency_key: str | None = IDEMPOTENCY) -> Response:
    reply = await _stub(request).CreateCustomer(
        pb.CreateCustomerRequest(customer=_customer_pb(body.model_dump())), metadata=caller.metadata)
    customer = _customer_json(reply.customer)
    return _json(customer, 201, {"ETag": etag_of(customer.version), "Location": f"/api/v1/customers/{customer.id}"})


@router.get("/customers", response_model=s.CustomerPage, summary="List customers in your data scope")
async def list_customers(
    request: Request, caller: Caller = _READ,
    limit: int = Query(50, ge=1, le=200), cursor: str = Query("", max_length=2000),
    sort: s.CustomerSort = Query("-create_time"), name: str = Query("", max_length=200, description="Name contains"),
    industry: str = Query("", max_length=50), owner_id: str = Query("", max_length=100),
    tag: str = Query("", max_length=50), team_id: str = Query("", max_length=100),
) -> Response:
    reply = await _stub(request).ListCustomers(pb.ListCustomersRequest(
        page_size=limit, page_token=cursor, order_by=sort, name_contains=name, industry=industry,
        owner_id=owner_id, tag=tag, team_id=team_id), metadata=caller.metadata)
    return _json(s.CustomerPage(items=[_customer_json(c) for c in reply.customers],
                                next_cursor=reply.next_page_token or None))


@router.get("/customers/{customer_id}", response_model=s.Customer, summary="Read a customer")
async def get_customer(customer_id: UUID, request: Request, caller: Caller = _READ) -> Response:
    reply = await _stub(request).GetCustomer(pb.GetCustomerRequest(id=str(customer_id)), metadata=caller.metadata)
    customer = _customer_json(reply.customer)
    return _json(customer, headers={"ETag": etag_of(customer.version)})


@router.patch("/customers/{customer_id}", response_model=s.Customer, summary="Change a customer (merge patch)")
async def update_customer(customer_id: UUID, body: s.CustomerPatch, request: Request,
                          caller: Caller = _WRITE, if_match: str | None = IF_MATCH) -> Response:
    # The fields sent, each whole: an address sent without `kind` has the default kind.
    full = body.model_dump()
    fields = {name: full[name] for name in body.model_fields_set}
    message = _customer_pb({k: v for k, v in fields.items() if v is not None})
    message.id = str(customer_id)
    reply = await _stub(request).UpdateCustomer(pb.UpdateCustomerRequest(
        customer=message, update_mask=FieldMask(paths=sorted(fields)), expected_version=expected_version(if_match)),
        metadata=caller.metadata)
    customer = _customer_json(reply.customer)
    return _json(customer, headers={"ETag": etag_of(customer.version)})


@router.delete("/customers/{customer_id}", status_code=204, summary="Delete a customer")
async def delete_customer(customer_id: UUID, request: Request, caller: Caller = _DELETE,
                          if_match: str | None = IF_MATCH) -> Response:
    await _stub(request).DeleteCustomer(
        pb.DeleteCustomerRequest(id=str(customer_id), expected_version=expected_version(if_match)),
        metadata=caller.metadata)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# Contacts ------------------------------------------------------------------------------------

@router.post("/customers/{customer_id}/contacts", status_code=201, response_model=s.Contact,
             summary="Add a contact")
async def add_contact(customer_id: UUID, body: s.ContactFields, request: Request,
                      caller: Caller = _WRITE, idempotency_key: str | None = IDEMPOTENCY) -> Response:
    reply = await _stub(request).AddContact(
        pb.AddContactRequest(customer_id=str(customer_id), contact=pb.Contact(**body.model_dump())),
        metadata=caller.metadata)
    contact = _contact_json(reply.contact)
    return _json(contact, 201, {"ETag": etag_of(contact.version),
                                "Location": f"/api/v1/customers/{customer_id}/contacts/{contact.id}"})


@router.get("/customers/{customer_id}/contacts", response_model=s.ContactList, summary="List contacts")
async def list_contacts(customer_id: UUID, request: Request, caller: Caller = _READ) -> Response:
    reply = await _stub(request).ListContacts(pb.ListContactsRequest(customer_id=str(customer_id)),
                                              metadata=caller.metadata)
    return _json(s.ContactList(items=[_contact_json(c) for c in reply.contacts]))


@router.patch("/customers/{customer_id}/contacts/{contact_id}", response_model=s.Contact,
              summary="Change a contact (merge patch)")
async def update_contact(customer_id: UUID, contact_id: UUID, body: s.ContactPatch, request: Request,
                         caller: Caller = _WRITE, if_match: str | None = IF_MATCH) -> Response:
    fields = body.model_dump(exclude_unset=True)
    message = pb.Contact(id=str(contact_id), customer_id=str(customer_id),
                         **{k: v for k, v in fields.items() if v is not None})
    reply = await _stub(request).UpdateContact(pb.UpdateContactRequest(
        contact=message, update_mask=FieldMask(paths=sorted(fields)), expected_version=expected_version(if_match)),
        metadata=caller.metadata)
    contact = _contact_json(reply.contact)
    return _json(contact, headers={"ETag": etag_of(contact.version)})


@router.delete("/customers/{customer_id}/contacts/{contact_id}", status_code=204, summary="Remove a contact")
async def remove_contact(customer_id: UUID, contact_id: UUID, request: Request,
                         caller: Caller = _WRITE) -> Response:
    await _stub(request).RemoveContact(
        pb.RemoveContactRequest(customer_id=str(customer_id), contact_id=str(contact_id)), metadata=caller.metadata)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# Follow-ups ----------------------------------------------------------------------------------

@router.post("/customers/{customer_id}/follow-ups", status_code=201, response_model=s.FollowUp,
             summary="Record a follow-up on the customer's timeline")
async def record_follow_up(customer_id: UUID, body: s.FollowUpCreate, request: Request,
                           caller: Caller = _WRITE,
                           idempotency_key: str | None = IDEMPOTENCY) -> Response:
    message = pb.FollowUp(kind=pb.FollowUpKind.Value(_enum("FOLLOW_UP_KIND", body.kind)), summary=body.summary,
                          content=body.content, key_facts=body.key_facts, contact_id=body.contact_id)
    if body.occurred_at is not None:
        message.occur_time.FromDatetime(body.occurred_at)
    reply = await _stub(request).RecordFollowUp(
        pb.RecordFollowUpRequest(customer_id=str(customer_id), follow_up=message), metadata=caller.metadata)
    return _json(_follow_up_json(reply.follow_up), 201)


@router.get("/customers/{customer_id}/follow-ups", response_model=s.FollowUpPage,
            summary="The customer's timeline, newest first")
async def list_follow_ups(customer_id: UUID, request: Request, caller: Caller = _READ,
                          limit: int = Query(50, ge=1, le=200), cursor: str = Query("", max_length=2000)) -> Response:
    reply = await _stub(request).ListFollowUps(
        pb.ListFollowUpsRequest(customer_id=str(customer_id), page_size=limit, page_token=cursor),
        metadata=caller.metadata)
    return _json(s.FollowUpPage(items=[_follow_up_json(f) for f in reply.follow_ups],
                                next_cursor=reply.next_page_token or None))


# Reference data ------------------------------------------------------------------------------

@router.get("/industries", response_model=s.IndustryList, summary="The normalised industry list")
async def list_industries(request: Request, caller: Caller = _READ) -> Response:
    reply = await _stub(request).ListIndustries(pb.ListIndustriesRequest(), metadata=caller.metadata)
    return _json(s.IndustryList(items=[s.Industry(**MessageToDict(i, preserving_proto_field_name=True))
                                       for i in reply.industries]))


@router.post("/industries", status_code=201, response_model=s.Industry, summary="Add an industry (administrators)")
async def create_industry(body: s.Industry, request: Request, caller: Caller = _MANAGE_INDUSTRIES,
                          idempotency_key: str | None = IDEMPOTENCY) -> Response:
    reply = await _stub(request).CreateIndustry(pb.CreateIndustryRequest(industry=pb.Industry(**body.model_dump())),
                                                metadata=caller.metadata)
    return _json(s.Industry(**MessageToDict(reply.industry, preserving_proto_field_name=True)), 201)


@router.get("/tags", response_model=s.TagList, summary="Tags in use in your data scope")
async def list_tags(request: Request, caller: Caller = _READ) -> Response:
    reply = await _stub(request).ListTags(pb.ListTagsRequest(), metadata=caller.metadata)
    return _json(s.TagList(items=[s.TagUsage(name=t.name, customer_count=t.customer_count) for t in reply.tags]))
