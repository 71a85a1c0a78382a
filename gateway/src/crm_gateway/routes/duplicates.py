"""/api/v1/customers/duplicates and /api/v1/customers/{id}/merge (R-CUS-03): likely duplicate
customers and their merge, REST in front of the customers service.

Registered before routes/customers.py, so `/customers/duplicates` is not taken for a customer id.
"""

from __future__ import annotations

from functools import partial
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from crm.customers.v1 import customers_pb2 as pb
from crm_gateway import permissions as p
from crm_gateway.api_route import ApiRoute
from crm_gateway.auth import Caller, authenticated, require
from crm_gateway.backends import backend
from crm_gateway.etags import etag_of
from crm_gateway.problems import API_ERRORS
from crm_gateway.routes import customer_schemas as s
from crm_gateway.routes.common import json_response as _json
from crm_gateway.routes.customers import _customer_json

_stub = partial(backend, name="customers")
router = APIRouter(prefix="/api/v1", route_class=ApiRoute, tags=["customers"],
                   dependencies=[Depends(authenticated)], responses=API_ERRORS)

_READ = Depends(require(p.CUSTOMERS_READ))
_WRITE = Depends(require(p.CUSTOMERS_WRITE))


class DuplicatePair(BaseModel):
    first: s.Customer
    second: s.Customer
    same_tax_id: bool
    name_similarity: float = Field(description="Trigram similarity of the names without legal-form words "
                                               "(有限公司, Co., Ltd. ...), 0..1")


class DuplicatePage(BaseModel):
    items: list[DuplicatePair]
    next_cursor: str | None = None


class MergeRequest(BaseModel):
    merged_id: UUID = Field(description="The customer merged into the one in the path, and deleted")


class MergeResult(BaseModel):
    customer: s.Customer
    filled_fields: list[str] = Field(description="The survivor's empty fields that took the merged customer's "
                                                 "values")
    moved_contacts: int
    moved_follow_ups: int


class DismissRequest(BaseModel):
    other_id: UUID




@router.get("/customers/duplicates", response_model=DuplicatePage, summary="Likely duplicate customers",
            description="Pairs of customers in your data scope with the same tax ID, or names whose trigram "
                        "similarity reaches min_similarity, ignoring legal-form words; pairs declared not "
                        "duplicates are left out. Ordered by the first customer's id.")
async def list_duplicates(
    request: Request, caller: Caller = _READ,
    min_similarity: float = Query(0.5, ge=0.2, le=1.0), customer_id: UUID | None = Query(
        None, description="Only this customer's likely duplicates"),
    limit: int = Query(50, ge=1, le=200), cursor: str = Query("", max_length=2000),
) -> Response:
    reply = await _stub(request).ListDuplicateCustomers(pb.ListDuplicateCustomersRequest(
        min_similarity=min_similarity, customer_id=str(customer_id) if customer_id else "", page_size=limit,
        page_token=cursor), metadata=caller.metadata)
    return _json(DuplicatePage(
        items=[DuplicatePair(first=_customer_json(x.first), second=_customer_json(x.second),
                             same_tax_id=x.same_tax_id, name_similarity=x.name_similarity) for x in reply.pairs],
        next_cursor=reply.next_page_token or None))


@router.post("/customers/{customer_id}/merge", response_model=MergeResult,
             summary="Merge another customer into this one",
             description="Every contact, follow-up and tag of the merged customer moves to this one; this "
                         "customer's empty fields (tax ID, industry, region, addresses, bank accounts) take the "
                         "merged customer's values. The merged customer is deleted; the merge is in the audit "
                         "trail and a crm.customers.customer.merged event tells other services to repoint "
                         "their references. 400 when the two have different tax IDs.")
async def merge_customers(customer_id: UUID, body: MergeRequest, request: Request,
                          caller: Caller = _WRITE) -> Response:
    reply = await _stub(request).MergeCustomers(pb.MergeCustomersRequest(
        surviving_id=str(customer_id), merged_id=str(body.merged_id)), metadata=caller.metadata)
    customer = _customer_json(reply.customer)
    return _json(MergeResult(customer=customer, filled_fields=list(reply.filled_fields),
                             moved_contacts=reply.moved_contacts, moved_follow_ups=reply.moved_follow_ups),
                 headers={"ETag": etag_of(customer.version)})


@router.post("/customers/{customer_id}/not-duplicates", status_code=204,
             summary="Declare two customers not duplicates",
             description="The pair leaves the duplicates report (for everyone).")
async def dismiss_duplicate(customer_id: UUID, body: DismissRequest, request: Request,
                            caller: Caller = _WRITE) -> Response:
    await _stub(request).DismissDuplicate(pb.DismissDuplicateRequest(
        customer_id=str(customer_id), other_id=str(body.other_id)), metadata=caller.metadata)
    return Response(status_code=204)
